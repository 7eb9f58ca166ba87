// One room as this tab knows it: the events it has loaded (by sequence), the cursor it resumes
// from, the read markers of the members, and an outbox of posts not yet confirmed.
//
// Gapless resume (chat-plugin/README.md, "Replay on SUBSCRIBE"): the timeline SUBSCRIBE carries
// `x-since-seq` + `x-epoch` from the cursor, computed by a function so that rx-stomp's automatic
// re-subscribe after a reconnect asks for exactly what was missed. The server replays, sends
// `x-event:replay-end` and attaches the live subscription in one step, so there is no gap and no
// duplicate. If it answers `x-recovered:false` (another epoch, cursor too old, too much missed),
// the page drops what it had and loads the latest page of history instead.

import { uid } from './util.js';

/** Events asked for when opening a room without a cursor, and per history page. */
export const PAGE = 50;
/** Wait before sending again a post refused as "rate limited" (ms). */
const RETRY_MS = 1000;
/** At most one read-marker SEND per this interval (the server limits them per user, ms). */
const READ_EVERY = 250;

/** A timeline MESSAGE (live, replayed or from a history page) as a plain object. */
export function parseEvent(message) {
  const h = message.headers;
  let body = null;
  if (message.body) {
    try {
      body = JSON.parse(message.body);
    } catch {
      body = { text: message.body }; // posted by a client that does not send JSON
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) body = { text: String(message.body) };
  }
  return {
    seq: Number(h['x-seq']),
    prevSeq: Number(h['x-prev-seq'] || 0),
    epoch: h['x-epoch'],
    kind: h['x-event'] || 'message',
    sender: h['x-sender'] || '',
    target: h['x-target'] || '',
    ts: Number(h['x-timestamp'] || 0),
    clientMsgId: h['x-client-msg-id'] || '',
    // Edits, reactions and redactions point at an earlier event.
    relatesTo: Number(h['x-relates-to'] || 0),
    reaction: h['x-reaction'] || '',
    redactedBy: Number(h['x-redacted-by'] || 0),
    body,
  };
}

export class Room {
  /**
   * @param {import('./connection.js').ChatConnection} conn
   * @param {{room: string, kind: string, name: string}} summary
   * @param {() => void} onChange called after anything visible changed
   */
  constructor(conn, summary, onChange) {
    this.conn = conn;
    this.id = summary.room;
    this.kind = summary.kind;
    this.name = summary.name;
    this.onChange = onChange;

    /** seq -> event */
    this.events = new Map();
    /** The resume cursor: the epoch and the highest sequence received. */
    this.epoch = null;
    this.cursor = 0;
    this.low = 0; // oldest stored sequence, from the server
    this.hasOlder = false;
    this.loadingOlder = false;
    this.reloadPending = false;
    /** Set once the first replay-end arrived: the timeline shows what the server has. */
    this.ready = false;
    /** The last SUBSCRIBE's replay headers and replay-end marker, for the curious (and the tests). */
    this.lastSubscribe = null;
    this.lastReplay = null;
    /** Sequence the unread divider goes after (the read marker when the room was opened). */
    this.dividerAfter = null;

    /** user -> public "read up to" marker, from /room/{id}/receipts. */
    this.markers = {};
    /** This user's read marker as confirmed by the server, and the highest one asked for. */
    this.readSeq = 0;
    this.readWanted = 0;
    this.readInFlight = false;

    /** client message id -> { clientMsgId, body, ts, state: 'pending'|'sent'|'failed', seq, attempt } */
    this.outbox = new Map();

    this.subscriptions = [];
    this.error = null;
    /** Called when a membership event arrives live. */
    this.onMembership = null;
  }

  // ---- subscriptions ------------------------------------------------------------------------

  /** Start watching the timeline and the read receipts (idempotent). */
  open() {
    if (this.subscriptions.length) return;
    this.error = null;
    const timeline = this.conn.watch(`/room/${this.id}`, () => this.subscribeHeaders());
    const receipts = this.conn.watch(`/room/${this.id}/receipts`);
    this.subscriptions.push(
      timeline.subscribe((m) => this.onTimeline(m)),
      receipts.subscribe((m) => this.onReceipts(m)),
    );
  }

  /** Stop watching (the cursor stays: opening the room again resumes from it). */
  close() {
    for (const s of this.subscriptions) s.unsubscribe();
    this.subscriptions = [];
  }

  /** Headers of the timeline SUBSCRIBE, evaluated at each (re)subscribe. */
  subscribeHeaders() {
    this.lastSubscribe = this.epoch && this.cursor > 0
      ? { 'x-since-seq': String(this.cursor), 'x-epoch': this.epoch }
      : { 'x-history': String(PAGE) };
    return this.lastSubscribe;
  }

  onTimeline(message) {
    const h = message.headers;
    switch (h['x-event']) {
      case 'denied':
        this.error = h['x-error'] || 'not allowed';
        this.onChange();
        return;
      case 'replay-end':
        this.onReplayEnd(h);
        return;
      default:
        break;
    }
    const event = parseEvent(message);
    if (!Number.isFinite(event.seq) || event.seq <= 0) return;
    if (this.epoch && event.epoch && event.epoch !== this.epoch) {
      // The room's history started over: nothing we hold is comparable any more.
      this.resetTo(event.epoch);
      this.reloadLatest();
    }
    this.add(event);
    // Live membership changes: the page refreshes the member list it shows.
    if (this.ready && ['join', 'leave', 'kick', 'invite'].includes(event.kind)) this.onMembership?.();
    this.onChange();
  }

  onReplayEnd(h) {
    const recovered = h['x-recovered'] === 'true';
    const epoch = h['x-epoch'];
    this.low = Number(h['x-low-seq'] || 0);
    this.lastReplay = {
      recovered, replayed: Number(h['x-replayed'] || 0), head: Number(h['x-head-seq'] || 0),
      asked: this.lastSubscribe,
    };
    if (!recovered || (this.epoch && epoch !== this.epoch) || this.reloadPending) {
      // Never a partial recovery: start from the latest page of history.
      this.resetTo(epoch);
      this.reloadLatest();
    } else {
      this.epoch = epoch;
      if (!this.ready) this.hasOlder = this.oldestSeq() > Math.max(this.low, 1);
    }
    this.ready = true;
    this.onChange();
  }

  resetTo(epoch) {
    this.events.clear();
    this.epoch = epoch;
    this.cursor = 0;
    this.hasOlder = false;
  }

  add(event) {
    if (this.events.has(event.seq)) return; // history and timeline may overlap: keep one
    this.events.set(event.seq, event);
    if (!this.epoch && event.epoch) this.epoch = event.epoch;
    this.cursor = Math.max(this.cursor, event.seq);
    // Our own post came back on the timeline: the outbox entry is done.
    if (event.kind === 'message' && event.sender === this.conn.user && event.clientMsgId) {
      this.outbox.delete(event.clientMsgId);
    }
  }

  oldestSeq() {
    let min = Infinity;
    for (const seq of this.events.keys()) min = Math.min(min, seq);
    return Number.isFinite(min) ? min : 0;
  }

  /** The events in order. */
  ordered() {
    return [...this.events.values()].sort((a, b) => a.seq - b.seq);
  }

  /**
   * What edits, reactions and redactions say about the events they relate to (all of them
   * are timeline events themselves): seq -> { edit, reactions: [{key, users, mine}], redacted }.
   * Only what is loaded is known: an edit of a message older than the loaded pages shows
   * once that page is loaded.
   */
  relations() {
    const out = new Map();
    const of = (seq) => {
      if (!out.has(seq)) out.set(seq, { edit: null, reactions: new Map(), redacted: false });
      return out.get(seq);
    };
    const redacted = new Set();
    for (const ev of this.events.values()) {
      if (ev.redactedBy) redacted.add(ev.seq);
      if (ev.kind === 'redact' && ev.relatesTo) redacted.add(ev.relatesTo);
    }
    for (const ev of this.ordered()) {
      if (!ev.relatesTo || redacted.has(ev.seq)) continue;
      if (ev.kind === 'edit') of(ev.relatesTo).edit = ev;
      if (ev.kind === 'reaction') {
        const r = of(ev.relatesTo).reactions;
        if (!r.has(ev.reaction)) r.set(ev.reaction, []);
        r.get(ev.reaction).push(ev);
      }
    }
    for (const seq of redacted) of(seq).redacted = true;
    return out;
  }

  /** Edit, react to or take back an event (RECEIPT-confirmed commands). */
  relate(verb, seq, headers = {}, body = '') {
    return this.conn.command(`/room/${this.id}/${verb}`, { 'x-relates-to': String(seq), ...headers }, body);
  }

  // ---- history ------------------------------------------------------------------------------

  /** After x-recovered:false: the newest page; live events keep arriving meanwhile. */
  async reloadLatest() {
    this.reloadPending = true;
    try {
      const page = await this.conn.query(`/room/${this.id}/history`, { 'x-limit': String(PAGE) }, 'history-end');
      this.takePage(page);
      this.reloadPending = false;
    } catch (err) {
      // Offline: the next replay-end (after the reconnect) sees reloadPending and tries again.
      console.warn(`history of ${this.id}:`, err.message);
    }
    this.onChange();
  }

  /** Scroll-back: the page before the oldest event shown. */
  async loadOlder() {
    if (this.loadingOlder || !this.hasOlder) return false;
    this.loadingOlder = true;
    this.onChange();
    try {
      const before = this.oldestSeq();
      const page = await this.conn.query(`/room/${this.id}/history`,
        { 'x-before-seq': String(before), 'x-limit': String(PAGE) }, 'history-end');
      this.takePage(page);
      return true;
    } catch (err) {
      console.warn(`older history of ${this.id}:`, err.message);
      return false;
    } finally {
      this.loadingOlder = false;
      this.onChange();
    }
  }

  takePage({ end, messages }) {
    const epoch = end.headers['x-epoch'];
    if (this.epoch && epoch !== this.epoch) return; // stale: a reset happened meanwhile
    for (const m of messages) this.add(parseEvent(m));
    this.low = Number(end.headers['x-low-seq'] || this.low);
    this.hasOlder = this.oldestSeq() > Math.max(this.low, 1) && end.headers['x-count'] !== '0';
  }

  // ---- posting ------------------------------------------------------------------------------

  /** Queue a post and send it; the outbox entry shows as pending until its RECEIPT. */
  post(body) {
    // The server counts our own post as read up to it, silently: a read marker sent after the
    // post for what we saw before it would be ignored and never reach the others' "read by".
    // So what was seen goes out first (the room handles commands in order).
    if (this.readWanted > this.readSeq && this.conn.isConnected) {
      this.conn.command(`/room/${this.id}/read`, { 'x-seq': String(this.readWanted) })
        .then((h) => { this.readSeq = Math.max(this.readSeq, Number(h['x-read-seq'] || 0)); }, () => {});
    }
    const entry = {
      clientMsgId: uid(), body: JSON.stringify(body), parsed: body, ts: Date.now(),
      state: 'pending', seq: null, attempt: 0, error: null,
    };
    this.outbox.set(entry.clientMsgId, entry);
    this.onChange();
    this.send(entry);
    return entry;
  }

  /** (Re)send every post without a RECEIPT: after a reconnect the server's dedupe by
   *  `x-client-msg-id` makes a repeat harmless (it answers with the original `x-seq`). */
  flushOutbox() {
    for (const entry of this.outbox.values()) {
      if (entry.state === 'pending') this.send(entry);
    }
  }

  send(entry) {
    if (!this.conn.isConnected) return; // sent by flushOutbox() on the next connect
    const attempt = ++entry.attempt;
    this.conn.command(`/room/${this.id}`, {
      'x-client-msg-id': entry.clientMsgId,
      'content-type': 'application/json',
    }, entry.body).then((headers) => {
      entry.state = 'sent';
      entry.seq = Number(headers['x-seq']);
      this.onChange();
    }, (err) => {
      if (attempt !== entry.attempt || entry.state !== 'pending') return; // superseded
      if (/rate limit/i.test(err.message)) {
        // The server's per-user post rate (chat.post_rate): try again shortly, still pending.
        setTimeout(() => { if (entry.state === 'pending') this.send(entry); }, RETRY_MS);
        return;
      }
      if (this.conn.isConnected && !/^no answer|not connected/.test(err.message)) {
        entry.state = 'failed'; // refused by the server (not a member, too long …)
        entry.error = err.message;
        this.onChange();
      }
    });
  }

  /** Posts not yet seen on the timeline, oldest first. */
  pendingPosts() {
    return [...this.outbox.values()].filter((e) => !(e.seq && this.events.has(e.seq)));
  }

  // ---- read markers -------------------------------------------------------------------------

  onReceipts(message) {
    if (message.headers['x-event'] !== 'receipts') return;
    try {
      const markers = JSON.parse(message.body || '{}');
      for (const [user, seq] of Object.entries(markers)) {
        this.markers[user] = Math.max(this.markers[user] || 0, Number(seq) || 0);
      }
    } catch {
      return;
    }
    this.onChange();
  }

  /** Who (other than the sender) has read up to `seq`. */
  readBy(seq, sender) {
    return Object.entries(this.markers)
      .filter(([user, marker]) => user !== sender && marker >= seq)
      .map(([user]) => user)
      .sort();
  }

  /** The user has seen everything up to `seq`: move the read marker (one request at a time). */
  markRead(seq) {
    if (seq <= Math.max(this.readSeq, this.readWanted)) return;
    this.readWanted = seq;
    this.sendRead();
  }

  sendRead() {
    if (this.readInFlight || this.readWanted <= this.readSeq || !this.conn.isConnected) return;
    this.readInFlight = true;
    const seq = this.readWanted;
    this.conn.command(`/room/${this.id}/read`, { 'x-seq': String(seq) }).then((h) => {
      this.readSeq = Math.max(this.readSeq, Number(h['x-read-seq'] || seq));
      // More may have become visible meanwhile: send that after a short pause.
      setTimeout(() => {
        this.readInFlight = false;
        this.sendRead();
      }, READ_EVERY);
    }, (err) => {
      // Offline: the app calls sendRead() again on the next connect.
      this.readInFlight = false;
      console.warn(`read marker of ${this.id}:`, err.message);
    });
  }

  /** The server says our marker moved (this or another tab/device read). */
  noteReadSeq(seq) {
    this.readSeq = Math.max(this.readSeq, seq);
  }
}
