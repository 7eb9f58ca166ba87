// Presence ("who is here") and typing indicators for the open room: ephemeral, nothing stored.
// Contract (chat-plugin/README.md, "Presence and typing"):
//   SUBSCRIBE /room/{id}/presence: x-event:presence, x-presence: snapshot|join|leave, x-user,
//     body {online: [...]} (always the full list). A user is present while one of their
//     sessions watches the room's timeline, which this page does for the open room.
//   SUBSCRIBE /room/{id}/typing: x-event:typing, body {typing: [...]} (the full list, the
//     sender included). SEND /room/{id}/typing starts or renews (expires after ~6 s),
//     `x-typing: false` ends it.
//
// Brokers whose chat plugin predates these destinations refuse the SUBSCRIBE (a RECEIPT with
// `x-error`, or one `x-event:denied` MESSAGE): the page then hides the feature.

import { avatar, el, uid } from './util.js';

/** Renew "I am typing" at most this often while keys are pressed (ms; the server's TTL is 6 s). */
const TYPING_EVERY = 3000;
/** Say "stopped typing" after this long without a key press (ms). */
const TYPING_IDLE = 3000;
/** Forget a typer we heard nothing more from after this long (ms), in case an update is lost. */
const TYPING_TTL = 8000;

export class Extras {
  constructor(conn, me, onChange) {
    this.conn = conn;
    this.me = me;
    this.onChange = onChange;
    /** null = not known yet, true/false once the server answered. */
    this.supported = { presence: null, typing: null };
    this.room = null;
    this.subs = [];
    this.present = new Set();
    this.typers = new Map(); // user -> expiry time
    this.lastTypingSent = 0;
    this.sweeper = setInterval(() => this.expireTypers(), 1000);
  }

  open(room) {
    this.close();
    this.room = room;
    if (this.supported.presence !== false) this.watch('presence', (m) => this.onPresence(m));
    if (this.supported.typing !== false) this.watch('typing', (m) => this.onTyping(m));
  }

  close() {
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    this.present.clear();
    this.typers.clear();
    if (this.room && this.lastTypingSent) this.stopTyping();
    this.room = null;
  }

  /** SUBSCRIBE with a fresh receipt each time (rx-stomp re-subscribes after reconnects). */
  watch(feature, handler) {
    const room = this.room;
    const headers = () => {
      const receipt = uid();
      this.conn.receipts.set(receipt, {
        onReceipt: (frame) => {
          if (frame.headers['x-error']) this.unsupported(feature);
          else if (this.supported[feature] === null) {
            this.supported[feature] = true;
            this.onChange();
          }
        },
        onLost: () => {},
      });
      return { receipt };
    };
    const sub = this.conn.watch(`/room/${room.id}/${feature}`, headers).subscribe((m) => {
      if (m.headers['x-event'] === 'denied') this.unsupported(feature);
      else handler(m);
    });
    sub.feature = feature;
    this.subs.push(sub);
  }

  unsupported(feature) {
    for (const s of this.subs.filter((x) => x.feature === feature)) s.unsubscribe();
    this.subs = this.subs.filter((x) => x.feature !== feature);
    if (this.supported[feature] === false) return;
    this.supported[feature] = false;
    console.info(`the broker's chat plugin offers no ${feature}: hidden`);
    this.onChange();
  }

  static list(body, key) {
    try {
      const value = JSON.parse(body || '{}')[key];
      return Array.isArray(value) ? value.filter((u) => typeof u === 'string') : null;
    } catch {
      return null;
    }
  }

  onPresence(m) {
    const list = Extras.list(m.body, 'online');
    const user = m.headers['x-user'];
    if (list) this.present = new Set(list);
    else if (user && m.headers['x-presence'] === 'leave') this.present.delete(user);
    else if (user && m.headers['x-presence'] === 'join') this.present.add(user);
    this.onChange();
  }

  onTyping(m) {
    const list = Extras.list(m.body, 'typing');
    if (!list) return;
    const until = Date.now() + TYPING_TTL;
    this.typers = new Map(list.filter((u) => u !== this.me).map((u) => [u, until]));
    this.onChange();
  }

  expireTypers() {
    const now = Date.now();
    let changed = false;
    for (const [u, t] of this.typers) if (t < now) { this.typers.delete(u); changed = true; }
    if (changed) this.onChange();
  }

  /** Called on every keystroke in the composer: start/renew, and stop after a pause. */
  typing() {
    if (!this.room || this.supported.typing !== true || !this.conn.isConnected) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE);
    const now = Date.now();
    if (now - this.lastTypingSent < TYPING_EVERY) return;
    this.lastTypingSent = now;
    this.conn.publish(`/room/${this.room.id}/typing`);
  }

  /** After sending, leaving the room, or a pause. */
  stopTyping() {
    clearTimeout(this.idleTimer);
    if (!this.room || !this.lastTypingSent || !this.conn.isConnected) return;
    this.lastTypingSent = 0;
    this.conn.publish(`/room/${this.room.id}/typing`, { 'x-typing': 'false' });
  }

  render() {
    const presence = document.getElementById('presence');
    presence.hidden = this.supported.presence !== true;
    if (!presence.hidden) {
      const users = [...this.present].sort();
      const more = users.length > 6 ? [el('span', { class: 'more' }, `+${users.length - 6}`)] : [];
      presence.replaceChildren(...users.slice(0, 6).map((u) => avatar(u, 'small online')), ...more,
        el('span', { class: 'more' }, `${users.length} here`));
      presence.title = users.length ? `Here now: ${users.join(', ')}` : 'Nobody else here';
      presence.dataset.users = users.join(',');
    }
    const typing = document.getElementById('typing');
    const typers = [...this.typers.keys()].sort();
    const text = this.supported.typing !== true || !typers.length ? ''
      : typers.length === 1 ? `${typers[0]} is typing…`
        : typers.length < 4 ? `${typers.join(', ')} are typing…` : 'Several people are typing…';
    if (typing.textContent !== text) typing.textContent = text;
  }
}
