// Raw WebSocket (the `ws` package, no STOMP library): frames split across several
// WebSocket messages, and several frames in one message, must be reassembled by the broker.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startBroker, TIMEOUT, unique, WebSocket, withTimeout } from './harness.mjs';

let broker;
const sockets = [];

before(async () => {
  broker = await startBroker('raw-ws');
});

after(async () => {
  for (const s of sockets) s.terminate();
  await broker?.stop();
});

/** A raw STOMP-over-WebSocket connection with a small incremental frame parser. */
class RawStomp {
  constructor(url, protocols = ['v12.stomp']) {
    this.ws = new WebSocket(url, protocols);
    sockets.push(this.ws);
    this.buffer = Buffer.alloc(0);
    this.frames = [];
    this.heartbeats = 0;
    this.waiters = [];
    this.closed = null;
    this.ws.on('message', (data) => {
      this.buffer = Buffer.concat([this.buffer, Buffer.from(data)]);
      this.parse();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.notify();
    });
    this.opened = withTimeout(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    }), TIMEOUT, 'WebSocket open');
  }

  parse() {
    for (;;) {
      // Heart-beat EOLs between frames.
      while (this.buffer.length && (this.buffer[0] === 0x0a || this.buffer[0] === 0x0d)) {
        if (this.buffer[0] === 0x0a) this.heartbeats += 1;
        this.buffer = this.buffer.subarray(1);
      }
      const headerEnd = this.buffer.indexOf('\n\n');
      const crlfEnd = this.buffer.indexOf('\r\n\r\n');
      let end = headerEnd;
      let sepLen = 2;
      if (crlfEnd !== -1 && (headerEnd === -1 || crlfEnd < headerEnd)) { end = crlfEnd; sepLen = 4; }
      if (end === -1) return;
      const lines = this.buffer.subarray(0, end).toString('utf8').split(/\r?\n/);
      const command = lines[0];
      const headers = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        const key = line.slice(0, i);
        if (!(key in headers)) headers[key] = line.slice(i + 1); // first occurrence wins
      }
      const bodyStart = end + sepLen;
      let bodyEnd;
      if (headers['content-length'] !== undefined) {
        bodyEnd = bodyStart + Number(headers['content-length']);
        if (this.buffer.length < bodyEnd + 1) return;
        assert.equal(this.buffer[bodyEnd], 0, 'frame must end with NUL after content-length bytes');
      } else {
        bodyEnd = this.buffer.indexOf(0, bodyStart);
        if (bodyEnd === -1) return;
      }
      this.frames.push({ command, headers, body: Buffer.from(this.buffer.subarray(bodyStart, bodyEnd)) });
      this.buffer = this.buffer.subarray(bodyEnd + 1);
      this.notify();
    }
  }

  notify() {
    for (const w of [...this.waiters]) w();
  }

  /** Wait for the first frame (from index `from`) matching predicate; ERROR frames fail. */
  waitFrame(predicate, what, from = 0) {
    return withTimeout(new Promise((resolve, reject) => {
      const check = () => {
        const idx = this.frames.findIndex((f, i) => i >= from && predicate(f));
        const error = this.frames.find((f) => f.command === 'ERROR');
        if (idx !== -1) {
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve(this.frames[idx]);
        } else if (error) {
          this.waiters = this.waiters.filter((w) => w !== check);
          reject(new Error(`ERROR frame: ${JSON.stringify(error.headers)} ${error.body}`));
        } else if (this.closed) {
          this.waiters = this.waiters.filter((w) => w !== check);
          reject(new Error(`WebSocket closed (${this.closed.code}) while waiting for ${what}`));
        }
      };
      this.waiters.push(check);
      check();
    }), TIMEOUT, what);
  }

  /** Send the given pieces as separate WebSocket messages (strings: text, Buffers: binary). */
  async sendPieces(pieces) {
    for (const p of pieces) {
      await new Promise((resolve, reject) => this.ws.send(p, (err) => (err ? reject(err) : resolve())));
    }
  }

  async connect() {
    await this.opened;
    // CONNECT itself split mid-command, mid-header and before the NUL.
    await this.sendPieces(['CONN', 'ECT\naccept-version:1.2\nho', 'st:/\n\n', '\0']);
    return this.waitFrame((f) => f.command === 'CONNECTED', 'CONNECTED');
  }
}

/** Split a Buffer into pieces at the given byte offsets. */
function splitAt(buf, offsets) {
  const pieces = [];
  let prev = 0;
  for (const o of [...offsets, buf.length]) {
    pieces.push(buf.subarray(prev, o));
    prev = o;
  }
  return pieces.filter((p) => p.length > 0);
}

describe('raw STOMP over WebSocket', () => {
  test('frames split across several WebSocket messages are reassembled', async () => {
    const c = new RawStomp(broker.wsUrl);
    const connected = await c.connect();
    assert.equal(connected.headers.version, '1.2');
    assert.equal(c.ws.protocol, 'v12.stomp');

    const dest = `/queue/${unique('split')}`;
    // SUBSCRIBE split inside the destination header, as text messages.
    const subscribe = `SUBSCRIBE\nid:s1\ndestination:${dest}\nreceipt:sub-1\n\n\0`;
    const cut = subscribe.indexOf(dest) + 5;
    await c.sendPieces([subscribe.slice(0, cut), subscribe.slice(cut, cut + 3), subscribe.slice(cut + 3)]);
    await c.waitFrame((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'sub-1', 'SUBSCRIBE receipt');

    // SEND with content-length and a body containing NULs, as binary messages cut at awkward
    // places: inside the command, right after the blank line, inside the body, before the NUL.
    const body = Buffer.from('part-one\0part-two\0\0part-three ☃', 'utf8');
    const head = Buffer.from(`SEND\ndestination:${dest}\ncontent-type:application/octet-stream\n`
      + `content-length:${body.length}\nreceipt:send-1\n\n`, 'utf8');
    const frame = Buffer.concat([head, body, Buffer.from([0])]);
    const pieces = splitAt(frame, [2, head.length, head.length + 5, head.length + 9, frame.length - 1]);
    assert.ok(pieces.length >= 5);
    await c.sendPieces(pieces);
    await c.waitFrame((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'send-1', 'SEND receipt');
    const msg = await c.waitFrame((f) => f.command === 'MESSAGE', 'MESSAGE');
    assert.equal(msg.headers.destination, dest);
    assert.equal(msg.headers.subscription, 's1');
    assert.ok(msg.body.equals(body), `body mismatch: ${JSON.stringify(msg.body.toString())}`);

    // One byte per WebSocket message, no content-length (body ends at the first NUL).
    const tiny = Buffer.from(`SEND\ndestination:${dest}\n\nbyte by byte\0`, 'utf8');
    await c.sendPieces([...tiny].map((b) => Buffer.from([b])));
    const m2 = await c.waitFrame((f) => f.command === 'MESSAGE' && f.body.toString() === 'byte by byte',
      'byte-by-byte MESSAGE');
    assert.equal(m2.headers.destination, dest);
  });

  test('several frames in one WebSocket message, with the last one split into the next', async () => {
    const c = new RawStomp(broker.wsUrl);
    await c.connect();
    const dest = `/topic/${unique('batch')}`;
    const batch = `SUBSCRIBE\nid:b1\ndestination:${dest}\nreceipt:sub-b\n\n\0`
      + `SEND\ndestination:${dest}\n\nfirst\0`
      + `SEND\ndestination:${dest}\n\nsecond\0`
      + 'SEND\ndestination:';
    await c.sendPieces([batch, `${dest}\n\nthird\0`]);
    await c.waitFrame((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'sub-b', 'receipt');
    await c.waitFrame((f) => f.command === 'MESSAGE' && f.body.toString() === 'third', 'third MESSAGE');
    const bodies = c.frames.filter((f) => f.command === 'MESSAGE').map((f) => f.body.toString());
    assert.deepEqual(bodies, ['first', 'second', 'third']);
  });
});
