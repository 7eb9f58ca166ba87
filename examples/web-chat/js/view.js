// DOM rendering: the room list and the timeline of the open room.
//
// The timeline is rendered by key (one <li> per event, pending post, day or divider) and only
// what changed is touched, so images do not reload and the scroll position can be kept when
// older history is prepended. Everything a user wrote is set as text, never as HTML.

import {
  avatar, directPeer, el, fileName, formatDay, formatSize, formatTime, isImage, safeUrl,
} from './util.js';

/** How close to the bottom (px) counts as "at the bottom": new messages then scroll into view. */
const STICKY = 48;
/** Consecutive messages of one sender within this time share one avatar and name (ms). */
const GROUP_MS = 5 * 60 * 1000;

/** The display name of a room: a direct room is named after the other user. */
export function roomTitle(summary, me) {
  if (summary.kind === 'direct') return directPeer(summary.room, me) || summary.name;
  return summary.name || summary.room;
}

// ---- room list ------------------------------------------------------------------------------

/**
 * @param {Map<string, object>} rooms id -> {room, kind, name, role, unread}
 * @param {{me: string, active: string|null, onOpen: Function, onJoin: Function}} opts
 */
let lastListKey = '';

export function renderRoomList(rooms, { me, active, onOpen, onJoin }) {
  // Rebuilt only when something shown changed (it is rendered with every timeline update).
  const key = JSON.stringify([me, active, [...rooms.values()].map((r) => [r.room, r.name, r.role, r.unread])]);
  if (key === lastListKey) return;
  lastListKey = key;
  const lists = {
    invites: document.getElementById('invites'),
    groups: document.getElementById('groups'),
    directs: document.getElementById('directs'),
  };
  const sorted = [...rooms.values()].sort((a, b) => roomTitle(a, me).localeCompare(roomTitle(b, me)));
  const items = { invites: [], groups: [], directs: [] };
  for (const r of sorted) {
    const title = roomTitle(r, me);
    if (r.role === 'invited') {
      items.invites.push(el('li', { class: 'room-item invite', dataset: { room: r.room } },
        avatar(title),
        el('span', { class: 'room-name' }, title),
        el('button', { class: 'primary small join', onclick: () => onJoin(r.room) }, 'Join')));
      continue;
    }
    const unread = Number(r.unread) || 0;
    const li = el('li', {
      class: `room-item${r.room === active ? ' active' : ''}${unread ? ' has-unread' : ''}`,
      dataset: { room: r.room, unread: String(unread) },
    }, el('button', { class: 'room-open', onclick: () => onOpen(r.room) },
      avatar(title, r.kind === 'direct' ? 'round' : ''),
      el('span', { class: 'room-name' }, title),
      el('span', { class: 'badge', hidden: !unread, 'aria-label': `${unread} unread` }, unread > 99 ? '99+' : String(unread))));
    (r.kind === 'direct' ? items.directs : items.groups).push(li);
  }
  for (const [key, list] of Object.entries(lists)) {
    list.replaceChildren(...items[key]);
    if (!items[key].length && key !== 'invites') {
      list.append(el('li', { class: 'room-empty muted' }, key === 'groups' ? 'No rooms yet' : 'No direct chats yet'));
    }
  }
  document.getElementById('invites-title').hidden = !items.invites.length;
}

// ---- timeline -------------------------------------------------------------------------------

function linkified(text) {
  const parts = String(text).split(/(https?:\/\/[^\s<>"]+)/g);
  return parts.map((part, i) => {
    if (i % 2 === 0) return part;
    const href = safeUrl(part);
    return href ? el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, part) : part;
  });
}

/** A document icon (inline SVG: emoji fonts are not everywhere). */
function fileIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'file-icon');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', 'M6 2h8l5 5v13a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1.5V8h4.5');
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', '1.6');
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
}

function attachmentNode(att, onImageLoad) {
  const href = safeUrl(att && att.url);
  if (!href) return null;
  const name = (att.name && String(att.name)) || fileName(href);
  const meta = [att.type, formatSize(att.size)].filter(Boolean).join(' · ');
  const image = isImage(att);
  return el('div', { class: `attachment${image ? ' image' : ''}`, dataset: { url: href } },
    image ? el('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'preview-link' },
      el('img', { class: 'preview', src: href, alt: name, loading: 'lazy', onload: onImageLoad })) : null,
    el('a', { class: 'file', href, target: '_blank', rel: 'noopener noreferrer', download: image ? null : name },
      fileIcon(),
      el('span', { class: 'file-text' },
        el('span', { class: 'file-name' }, name),
        meta ? el('span', { class: 'file-meta' }, meta) : null)));
}

function systemText(ev) {
  const who = ev.sender;
  switch (ev.kind) {
    case 'create': return `${who} created the room`;
    case 'join': return ev.target && ev.target !== who ? `${ev.target} was added by ${who}` : `${who} joined`;
    case 'leave': return `${who} left`;
    case 'invite': return `${who} invited ${ev.target}`;
    case 'kick': return `${who} removed ${ev.target}`;
    default: return `${who}: ${ev.kind}`;
  }
}

export class TimelineView {
  /**
   * @param {{me: string, onVisible: (seq: number) => void, onNearTop: () => void}} opts
   */
  constructor({ me, onVisible, onNearTop, onAction }) {
    this.me = me;
    this.onAction = onAction; // (verb: 'react'|'unreact'|'edit'|'delete', event, extra) => void
    this.scroller = document.getElementById('timeline');
    this.list = document.getElementById('messages');
    this.onVisible = onVisible;
    this.nodes = new Map(); // key -> element
    this.visible = new Set(); // seqs of events on screen
    this.room = null;
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        const seq = Number(e.target.dataset.seq);
        if (e.isIntersecting) this.visible.add(seq); else this.visible.delete(seq);
      }
      this.reportVisible();
    }, { root: this.scroller, threshold: 0.5 });
    this.scroller.addEventListener('scroll', () => {
      if (this.scroller.scrollTop < 120) onNearTop();
    }, { passive: true });
    document.addEventListener('visibilitychange', () => this.reportVisible());
  }

  /** The newest event on screen counts as read while the page is visible. */
  reportVisible() {
    // Not before the first positioning: the bottom may flash by while the replay renders.
    if (document.visibilityState !== 'visible' || !this.room || !this.positioned || !this.visible.size) return;
    this.onVisible(Math.max(...this.visible));
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < STICKY;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Show another room: forget the nodes of the previous one. */
  show(room) {
    this.room = room;
    this.observer.disconnect();
    this.visible.clear();
    this.nodes.clear();
    this.list.replaceChildren();
    this.positioned = false;
  }

  render() {
    const room = this.room;
    if (!room) return;
    const wasAtBottom = this.atBottom();
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    const firstKeyBefore = this.list.firstElementChild?.dataset.key;

    const wanted = this.items(room);
    const keep = new Set(wanted.map((i) => i.key));
    for (const [key, node] of this.nodes) {
      if (!keep.has(key)) {
        this.observer.unobserve(node);
        if (node.dataset.seq) this.visible.delete(Number(node.dataset.seq));
        node.remove();
        this.nodes.delete(key);
      }
    }
    let cursor = this.list.firstElementChild;
    for (const item of wanted) {
      let node = this.nodes.get(item.key);
      if (node && node.sig !== item.sig) {
        // Edited, deleted or reacted to: build it again.
        this.observer.unobserve(node);
        if (node === cursor) cursor = cursor.nextElementSibling;
        node.remove();
        node = null;
      }
      if (!node) {
        node = this.create(item);
        node.dataset.key = item.key;
        node.sig = item.sig;
        this.nodes.set(item.key, node);
        if (item.type === 'event') this.observer.observe(node);
      }
      this.update(node, item);
      if (node !== cursor) this.list.insertBefore(node, cursor);
      else cursor = cursor.nextElementSibling;
    }

    document.getElementById('load-older').hidden = !room.hasOlder;
    document.getElementById('load-older').disabled = room.loadingOlder;
    document.getElementById('load-older').textContent = room.loadingOlder ? 'Loading…' : 'Load older messages';
    document.getElementById('history-start').hidden = room.hasOlder || !room.ready;

    // Where to scroll: first time, to the unread divider (or the bottom); when older history
    // was prepended, keep what was on screen in place; otherwise follow new messages if the
    // reader was at the bottom.
    const prepended = firstKeyBefore && this.list.firstElementChild?.dataset.key !== firstKeyBefore && !wasAtBottom;
    if (!this.positioned && room.ready) {
      this.positioned = true;
      const divider = this.nodes.get('divider');
      if (divider) divider.scrollIntoView({ block: 'start' });
      else this.scrollToBottom();
    } else if (prepended) {
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    } else if (this.positioned && (wasAtBottom || this.forceBottom)) {
      this.scrollToBottom();
    }
    this.forceBottom = false;
    // What is on screen after this render counts (IntersectionObserver reports changes only).
    if (this.positioned) requestAnimationFrame(() => this.reportVisible());
  }

  /** What the timeline shows, in order, each with a stable key. */
  items(room) {
    const out = [];
    let lastDay = '';
    let prev = null;
    let dividerPlaced = false;
    // Edits, reactions and redactions show on the event they relate to, not on their own.
    const rel = room.relations();
    const events = room.ordered().filter((ev) => !['edit', 'reaction', 'redact'].includes(ev.kind));
    // "Seen by" goes under the newest own message that someone has read.
    let seenSeq = 0;
    for (const ev of events) {
      if (ev.kind === 'message' && ev.sender === this.me && room.readBy(ev.seq, this.me).length) seenSeq = ev.seq;
    }
    const dayOf = (ts) => (ts ? new Date(ts).toDateString() : '');
    const push = (item, ts) => {
      const day = dayOf(ts);
      if (day && day !== lastDay) {
        out.push({ key: `day-${day}`, type: 'day', ts });
        lastDay = day;
        prev = null;
      }
      out.push(item);
    };
    for (const ev of events) {
      if (!dividerPlaced && room.dividerAfter !== null && ev.seq > room.dividerAfter
          && ev.kind === 'message' && ev.sender !== this.me) {
        out.push({ key: 'divider', type: 'divider' });
        dividerPlaced = true;
        prev = null;
      }
      const cont = !!prev && prev.kind === 'message' && ev.kind === 'message'
        && prev.sender === ev.sender && ev.ts - prev.ts < GROUP_MS && dayOf(prev.ts) === dayOf(ev.ts);
      const r = rel.get(ev.seq);
      const sig = r ? JSON.stringify([r.edit?.seq, r.redacted,
        [...r.reactions].map(([k, list]) => [k, list.map((x) => x.seq)])]) : '';
      push({ key: `e${ev.seq}`, type: 'event', ev, rel: r, sig, cont, seen: ev.seq === seenSeq }, ev.ts);
      prev = ev;
    }
    for (const p of room.pendingPosts()) {
      push({ key: `p${p.clientMsgId}`, type: 'pending', p, cont: false }, p.ts);
    }
    return out;
  }

  create(item) {
    if (item.type === 'day') return el('li', { class: 'day' }, el('span', {}, formatDay(item.ts)));
    if (item.type === 'divider') return el('li', { class: 'divider', id: 'unread-divider' }, el('span', {}, 'New messages'));
    if (item.type === 'event' && item.ev.kind !== 'message') {
      return el('li', { class: 'sys', dataset: { seq: item.ev.seq, kind: item.ev.kind } },
        el('span', {}, systemText(item.ev)), el('time', {}, formatTime(item.ev.ts)));
    }
    const ev = item.type === 'event' ? item.ev
      : { sender: this.me, ts: item.p.ts, body: item.p.parsed, clientMsgId: item.p.clientMsgId };
    const mine = ev.sender === this.me;
    const rel = item.rel;
    const redacted = !!(rel?.redacted || ev.redactedBy);
    const body = (redacted ? null : rel?.edit?.body || ev.body) || {};
    const atts = Array.isArray(body.attachments) ? body.attachments : [];
    const stored = item.type === 'event';
    const onImageLoad = () => { if (this.atBottom() || this.stickAfterLoad) this.scrollToBottom(); };
    return el('li', {
      class: `msg ${mine ? 'mine' : 'theirs'}`,
      dataset: {
        seq: item.type === 'event' ? ev.seq : undefined, sender: ev.sender, kind: 'message',
        clientMsgId: ev.clientMsgId || undefined,
      },
    },
    mine ? null : avatar(ev.sender),
    el('div', { class: `bubble${redacted ? ' deleted' : ''}` },
      mine ? null : el('div', { class: 'sender' }, ev.sender),
      redacted ? el('div', { class: 'text deleted' }, 'Message deleted') : null,
      body.text ? el('div', { class: 'text' }, linkified(body.text)) : null,
      atts.length ? el('div', { class: 'attachments' }, atts.map((a) => attachmentNode(a, onImageLoad))) : null,
      el('div', { class: 'foot' },
        rel?.edit && !redacted ? el('span', { class: 'edited' }, 'edited') : null,
        el('time', { datetime: new Date(ev.ts || Date.now()).toISOString() }, formatTime(ev.ts)),
        mine ? el('span', { class: 'tick', 'aria-label': 'status' }) : null)),
    stored && !redacted && rel?.reactions.size ? this.reactions(ev, rel.reactions) : null,
    stored && !redacted ? this.actions(ev, mine, body) : null,
    mine ? el('div', { class: 'seen', hidden: true }) : null);
  }

  reactions(ev, reactions) {
    return el('div', { class: 'reactions' }, [...reactions].map(([key, list]) => {
      const own = list.find((x) => x.sender === this.me);
      return el('button', {
        class: `chip${own ? ' mine' : ''}`,
        title: list.map((x) => x.sender).join(', '),
        dataset: { reaction: key },
        onclick: () => this.onAction(own ? 'unreact' : 'react', ev, own ? own.seq : key),
      }, `${key} ${list.length}`);
    }));
  }

  /** The hover bar of a stored message: react; edit and delete one's own. */
  actions(ev, mine, body) {
    return el('div', { class: 'actions-bar' },
      ['👍', '❤️', '🎉'].map((key) => el('button', {
        class: 'act', title: `React ${key}`, onclick: () => this.onAction('react', ev, key),
      }, key)),
      mine && body.text !== undefined ? el('button', { class: 'act', onclick: () => this.onAction('edit', ev, body) }, 'Edit') : null,
      mine ? el('button', { class: 'act', onclick: () => this.onAction('delete', ev) }, 'Delete') : null);
  }

  /** The parts that change after creation: grouping, and the ticks of own messages. */
  update(node, item) {
    if (item.type !== 'event' && item.type !== 'pending') return;
    if (item.type === 'event' && item.ev.kind !== 'message') return;
    node.classList.toggle('cont', !!item.cont);
    const tick = node.querySelector('.tick');
    if (!tick) return;
    let state;
    let title;
    let readers = [];
    if (item.type === 'pending') {
      state = item.p.state; // pending | sent | failed
      title = state === 'failed' ? `Not sent: ${item.p.error}` : state === 'sent' ? 'Sent' : 'Sending…';
    } else {
      readers = this.room.readBy(item.ev.seq, this.me);
      state = readers.length ? 'read' : 'sent';
      title = readers.length ? `Read by ${readers.join(', ')}` : 'Sent';
    }
    if (node.dataset.state !== state) node.dataset.state = state;
    const readBy = readers.join(',');
    if (node.dataset.readBy !== readBy) node.dataset.readBy = readBy;
    tick.textContent = { pending: '…', sent: '✓', read: '✓✓', failed: '!' }[state];
    tick.title = title;
    const seen = node.querySelector('.seen');
    if (seen) {
      seen.hidden = !item.seen;
      const text = item.seen ? this.seenText(readers) : '';
      if (seen.textContent !== text) seen.textContent = text;
    }
  }

  seenText(readers) {
    const others = this.room.memberCount ? this.room.memberCount - 1 : 0;
    if (others > 1 && readers.length >= others) return 'Seen by everyone';
    return `Seen by ${readers.join(', ')}`;
  }
}
