// The STOMP side of the page: one RxStomp client (stock @stomp/rx-stomp) plus the two
// conventions of the chat contract (chat-plugin/README.md) that every feature uses:
//
//  * commands are SENDs with a `receipt`; the RECEIPT comes once the command is done and
//    carries its result headers, or `x-error` (a refusal keeps the connection);
//  * queries (list, info, history) also answer with MESSAGEs to a `reply-to`. This tab uses
//    its own reply destination `/user/queue/web-chat-{tab}`: the inbox `/user/queue/chat`
//    reaches every session of the user, and another tab must not see this tab's answers.

import { uid } from './util.js';

/** How long a command or query may take before the page gives up on it (ms). */
const COMMAND_TIMEOUT = 15_000;

export class ChatConnection {
  /**
   * @param {string} user the STOMP `login` (the user name in the development auth mode)
   * @param {string} brokerURL ws(s)://host/ws
   */
  constructor(user, brokerURL) {
    this.user = user;
    this.replyTo = `/user/queue/web-chat-${uid()}`;
    /** receipt id -> { onReceipt(frame), onLost() }: what waits for a RECEIPT. */
    this.receipts = new Map();
    /** correlation id -> { messages, resolve, reject, timer, end } */
    this.queries = new Map();

    this.rx = new RxStomp.RxStomp();
    this.rx.configure({
      brokerURL,
      connectHeaders: { login: user, passcode: '' },
      // Reconnect quickly after a drop; rooms resume from their cursors (see room.js).
      reconnectDelay: 1000,
      heartbeatIncoming: 10_000,
      heartbeatOutgoing: 10_000,
      debug: () => {},
    });

    this.state$ = this.rx.connectionState$; // RxStomp.RxStompState values
    this.connected$ = this.rx.connected$;
    this.errors$ = this.rx.stompErrors$;

    // Every RECEIPT the page asked for is dispatched from here.
    this.rx.unhandledReceipts$.subscribe((frame) => {
      const id = frame.headers['receipt-id'];
      const waiter = this.receipts.get(id);
      if (waiter) {
        this.receipts.delete(id);
        waiter.onReceipt(frame);
      }
    });
    // A RECEIPT never outlives its connection: when it drops, whatever waits is told at once
    // (posts stay in their outbox and are sent again on the next connect).
    this.rx.connectionState$.subscribe((state) => {
      if (state !== RxStomp.RxStompState.CLOSED) return;
      const lost = [...this.receipts.values()];
      this.receipts.clear();
      for (const waiter of lost) waiter.onLost();
    });

    // Answers to this tab's queries. rx-stomp re-subscribes after every reconnect.
    this.rx.watch({ destination: this.replyTo }).subscribe((m) => this.onReply(m));
  }

  activate() { this.rx.activate(); }

  async close() {
    for (const q of this.queries.values()) {
      clearTimeout(q.timer);
      q.reject(new Error('signed out'));
    }
    this.queries.clear();
    await this.rx.deactivate();
  }

  get isConnected() { return this.rx.connected(); }

  /** Watch a destination; `headers` may be a function (evaluated at every (re)subscribe). */
  watch(destination, headers = {}) {
    return this.rx.watch({ destination, subHeaders: headers });
  }

  /** Publish a frame now (throws when not connected: callers keep their own outbox). */
  publish(destination, headers = {}, body = '') {
    this.rx.publish({ destination, headers, body, retryIfDisconnected: false });
  }

  /**
   * Publish with a receipt; resolves with the RECEIPT's headers, rejects on `x-error`,
   * on timeout, when not connected, or when the connection drops first.
   */
  command(destination, headers = {}, body = '', receipt = uid()) {
    return new Promise((resolve, reject) => {
      if (!this.isConnected) {
        reject(new Error('not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.receipts.delete(receipt);
        reject(new Error(`no answer to ${destination}`));
      }, COMMAND_TIMEOUT);
      this.receipts.set(receipt, {
        onReceipt: (frame) => {
          clearTimeout(timer);
          if (frame.headers['x-error']) reject(new Error(frame.headers['x-error']));
          else resolve(frame.headers);
        },
        onLost: () => {
          clearTimeout(timer);
          reject(new Error('not connected: the connection dropped'));
        },
      });
      try {
        this.publish(destination, { ...headers, receipt }, body);
      } catch (err) {
        clearTimeout(timer);
        this.receipts.delete(receipt);
        reject(err);
      }
    });
  }

  /**
   * A query answered on this tab's reply destination: resolves with
   * { end: the final MESSAGE (reply / history-end), messages: the ones before it }.
   * `endEvent` is the `x-event` that ends the answer.
   */
  query(destination, headers = {}, endEvent = 'reply') {
    const id = uid();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.queries.delete(id);
        reject(new Error(`no answer to ${destination}`));
      }, COMMAND_TIMEOUT);
      const finish = (err, value) => {
        if (!this.queries.has(id)) return;
        clearTimeout(timer);
        this.queries.delete(id);
        if (err) reject(err); else resolve(value);
      };
      this.queries.set(id, { messages: [], endEvent, finish });
      // A refusal before the command reaches the room comes back on the RECEIPT only.
      this.command(destination, { ...headers, 'reply-to': this.replyTo, 'correlation-id': id }, '', id)
        .catch((err) => finish(err));
    });
  }

  onReply(message) {
    const q = this.queries.get(message.headers['correlation-id']);
    if (!q) return; // an answer to a query that timed out, or of before a reload
    const event = message.headers['x-event'];
    if (event === 'error') q.finish(new Error(message.headers['x-error'] || 'error'));
    else if (event === q.endEvent) q.finish(null, { end: message, messages: q.messages });
    else q.messages.push(message);
  }
}

/** The broker's WebSocket endpoint: same origin as the page, unless ?ws=… says otherwise. */
export function defaultBrokerURL() {
  const fromQuery = new URLSearchParams(location.search).get('ws');
  if (fromQuery) return fromQuery;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host || '127.0.0.1:15674'}/ws`;
}
