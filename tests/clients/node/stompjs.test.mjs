// @stomp/stompjs over WebSocket (the `ws` package) against a freshly started broker.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Versions } from '@stomp/stompjs';

import {
  collect, connectStomp, publishConfirmed, receiptPromise, startBroker, unique, waitFor,
} from './harness.mjs';

let broker;
const open = [];

async function connect(options) {
  const c = await connectStomp(broker.wsUrl, options);
  open.push(c);
  return c;
}

before(async () => {
  broker = await startBroker('stompjs');
});

after(async () => {
  await Promise.all(open.map((c) => c.close()));
  await broker?.stop();
});

describe('stompjs over WebSocket', () => {
  test('connects with STOMP 1.2 on the v12.stomp subprotocol', async () => {
    const { client, connected, socket } = await connect();
    assert.equal(connected.command, 'CONNECTED');
    assert.equal(connected.headers.version, '1.2');
    assert.equal(client.connectedVersion, '1.2');
    assert.equal(socket.protocol, 'v12.stomp', 'negotiated WebSocket subprotocol');
  });

  test('a 1.1-only client gets 1.1 on the v11.stomp subprotocol', async () => {
    const { connected, socket } = await connect({
      protocols: ['v11.stomp'], stompVersions: new Versions(['1.1']),
    });
    assert.equal(connected.headers.version, '1.1');
    assert.equal(socket.protocol, 'v11.stomp');
  });

  test('topic pub-sub between two connections', async () => {
    const dest = `/topic/${unique('ws-topic')}`;
    const sub = await connect();
    const pub = await connect();
    const inbox = await collect(sub.client, dest);
    for (let i = 0; i < 5; i++) {
      pub.client.publish({ destination: dest, body: `hello ${i} ☃`, headers: { 'x-seq': String(i) } });
    }
    const got = await inbox.waitCount(5);
    assert.deepEqual(got.map((m) => m.body), [0, 1, 2, 3, 4].map((i) => `hello ${i} ☃`));
    assert.deepEqual(got.map((m) => m.headers['x-seq']), ['0', '1', '2', '3', '4']);
    for (const m of got) {
      assert.equal(m.headers.destination, dest);
      assert.equal(m.headers.subscription, inbox.id);
      assert.ok(m.headers['message-id']);
    }
    await inbox.assertQuiet((m) => !m.body.startsWith('hello'), 'extra message');
  });

  test('queue with client-individual ack and nack redelivers the nacked message', async () => {
    const dest = `/queue/${unique('ws-queue')}`;
    const consumer = await connect();
    const producer = await connect();
    const inbox = await collect(consumer.client, dest, { ack: 'client-individual' });
    producer.client.publish({ destination: dest, body: 'keep' });
    producer.client.publish({ destination: dest, body: 'retry' });
    const [keep, retry] = await inbox.waitCount(2);
    assert.equal(keep.body, 'keep');
    assert.equal(retry.body, 'retry');
    assert.ok(keep.headers.ack, 'STOMP 1.2 MESSAGE in client-individual mode carries an ack header');
    assert.notEqual(keep.headers.redelivered, 'true');

    const ackReceipt = unique('ack');
    const ackDone = receiptPromise(consumer.client, ackReceipt);
    keep.ack({ receipt: ackReceipt });
    await ackDone;
    const nackReceipt = unique('nack');
    const nackDone = receiptPromise(consumer.client, nackReceipt);
    retry.nack({ receipt: nackReceipt });
    await nackDone;

    await inbox.waitCount(3, 'redelivery after NACK');
    const again = inbox.messages[2];
    assert.equal(again.body, 'retry');
    assert.equal(again.headers.redelivered, 'true');
    const lastAck = unique('ack');
    const lastDone = receiptPromise(consumer.client, lastAck);
    again.ack({ receipt: lastAck });
    await lastDone;

    // Everything is settled: a fresh consumer sees only what is sent next.
    await consumer.close();
    const fresh = await connect();
    const freshInbox = await collect(fresh.client, dest, { ack: 'client-individual' });
    producer.client.publish({ destination: dest, body: 'marker' });
    const [first] = await freshInbox.waitCount(1);
    assert.equal(first.body, 'marker', `settled message came back: ${first.body}`);
  });

  test('receipts via watchForReceipt', async () => {
    const { client } = await connect();
    const dest = `/topic/${unique('ws-receipt')}`;
    const ids = [unique('r1'), unique('r2'), unique('r3')];
    const all = ids.map((id) => receiptPromise(client, id));
    client.subscribe(dest, () => {}, { id: 'rsub', receipt: ids[0] });
    client.publish({ destination: dest, body: 'x', headers: { receipt: ids[1] } });
    client.unsubscribe('rsub', { receipt: ids[2] });
    const frames = await Promise.all(all);
    assert.deepEqual(frames.map((f) => f.command), ['RECEIPT', 'RECEIPT', 'RECEIPT']);
    assert.deepEqual(frames.map((f) => f.headers['receipt-id']), ids);
  });

  test('binary body with NUL bytes round-trips (binaryBody)', async () => {
    const dest = `/queue/${unique('ws-binary')}`;
    const receiver = await connect();
    const sender = await connect();
    const inbox = await collect(receiver.client, dest);
    const size = 1024 * 1024;
    const body = new Uint8Array(size);
    for (let i = 0; i < size; i++) body[i] = (i * 7919 + (i >> 8)) & 0xff;
    for (let i = 0; i < size; i += 97) body[i] = 0; // plenty of NULs
    body[size - 1] = 0;
    await publishConfirmed(sender.client, {
      destination: dest, binaryBody: body, headers: { 'content-type': 'application/octet-stream' },
    });
    await inbox.waitCount(1).catch((err) => {
      const closed = receiver.state.closed;
      throw closed ? new Error(`${err.message}; receiver WebSocket closed: ${closed.code} ${closed.reason}`) : err;
    });
    const [m] = inbox.messages;
    assert.equal(m.headers['content-type'], 'application/octet-stream');
    assert.equal(Number(m.headers['content-length']), size);
    assert.equal(m.binaryBody.length, size);
    assert.ok(Buffer.from(m.binaryBody).equals(Buffer.from(body)), 'binary body corrupted in transit');
  });

  test('heart-beats at 1000 ms keep the connection up', async () => {
    let beats = 0;
    let lost = 0;
    const c = await connect({
      heartbeatIncoming: 1000,
      heartbeatOutgoing: 1000,
      onHeartbeatReceived: () => { beats += 1; },
      onHeartbeatLost: () => { lost += 1; },
    });
    const hb = c.connected.headers['heart-beat'];
    assert.match(hb ?? '', /^\d+,\d+$/, 'CONNECTED carries a heart-beat header');
    const [sx, sy] = hb.split(',').map(Number);
    assert.ok(sx > 0, `broker should send heart-beats when asked for them (heart-beat:${hb})`);
    assert.ok(sy > 0, `broker should expect ours when we offer them (heart-beat:${hb})`);
    await sleep(3200); // the behaviour under test is staying alive over time
    assert.equal(lost, 0, 'stompjs saw no server activity within its grace period');
    assert.equal(c.state.closed, null, 'WebSocket closed during heart-beating');
    assert.ok(c.client.connected);
    // Negotiated broker -> client interval is max(sx, 1000); beats are due only if it fits the window.
    const interval = Math.max(sx, 1000);
    const due = Math.floor(3200 / interval) - 1;
    assert.ok(beats >= due, `expected >= ${due} heart-beats from the broker (every ${interval} ms), got ${beats}`);
    const dest = `/topic/${unique('ws-hb')}`;
    const inbox = await collect(c.client, dest);
    c.client.publish({ destination: dest, body: 'still here' });
    assert.equal((await inbox.waitCount(1))[0].body, 'still here');
  });

  test('transactions: commit delivers, abort discards (client.begin)', async () => {
    const dest = `/queue/${unique('ws-tx')}`;
    const consumer = await connect();
    const producer = await connect();
    const inbox = await collect(consumer.client, dest);

    const tx = producer.client.begin();
    producer.client.publish({ destination: dest, body: 'tx-1', headers: { transaction: tx.id } });
    producer.client.publish({ destination: dest, body: 'tx-2', headers: { transaction: tx.id } });
    producer.client.publish({ destination: dest, body: 'plain-1' });
    const [first] = await inbox.waitCount(1);
    assert.equal(first.body, 'plain-1', 'transactional message delivered before COMMIT');
    await inbox.assertQuiet((m) => m.body.startsWith('tx-'), 'message before COMMIT');
    tx.commit();
    await inbox.waitCount(3);
    assert.deepEqual(inbox.messages.map((m) => m.body), ['plain-1', 'tx-1', 'tx-2']);

    const doomed = producer.client.begin();
    producer.client.publish({ destination: dest, body: 'doomed', headers: { transaction: doomed.id } });
    doomed.abort();
    producer.client.publish({ destination: dest, body: 'plain-2' });
    await inbox.waitCount(4);
    assert.equal(inbox.messages[3].body, 'plain-2', 'aborted message was delivered');
    await inbox.assertQuiet((m) => m.body === 'doomed', 'aborted message');
  });

  test('temp-queue request/reply over WebSocket', async () => {
    const service = `/queue/${unique('ws-service')}`;
    const responder = await connect();
    const requester = await connect();
    const requests = await collect(responder.client, service);
    const replies = [];
    requester.client.onUnhandledMessage = (m) => replies.push(m);
    requester.client.publish({
      destination: service, body: 'question', headers: { 'reply-to': '/temp-queue/answers', 'correlation-id': 'c1' },
    });
    const [req] = await requests.waitCount(1);
    assert.notEqual(req.headers['reply-to'], '/temp-queue/answers', 'reply-to was not rewritten');
    responder.client.publish({
      destination: req.headers['reply-to'], body: 'answer', headers: { 'correlation-id': req.headers['correlation-id'] },
    });
    await waitFor(() => replies.length >= 1, { what: 'reply on the temp-queue' });
    assert.equal(replies[0].body, 'answer');
    assert.equal(replies[0].headers['correlation-id'], 'c1');
  });
});
