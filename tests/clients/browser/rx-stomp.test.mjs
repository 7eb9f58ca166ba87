// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) loads a page that
// uses @stomp/rx-stomp over WebSocket; a Node @stomp/stompjs client exchanges messages with it
// in both directions.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  collect, connectStomp, publishConfirmed, startBroker, TIMEOUT, unique, waitFor,
} from '../node/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = path.resolve(here, '..', 'node');
// playwright-core lives in tests/clients/node/node_modules.
const { chromium } = createRequire(path.join(nodeDir, 'package.json'))('playwright-core');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Files the page may load: URL path -> file on disk (nothing else is served).
const FILES = {
  '/': [path.join(here, 'page.html'), 'text/html; charset=utf-8'],
  '/page.js': [path.join(here, 'page.js'), 'text/javascript; charset=utf-8'],
  '/lib/rxjs.umd.js': [path.join(nodeDir, 'node_modules/rxjs/dist/bundles/rxjs.umd.js'), 'text/javascript'],
  '/lib/stomp.umd.js': [path.join(nodeDir, 'node_modules/@stomp/stompjs/bundles/stomp.umd.js'), 'text/javascript'],
  '/lib/rx-stomp.umd.js': [path.join(nodeDir, 'node_modules/@stomp/rx-stomp/bundles/rx-stomp.umd.js'), 'text/javascript'],
};

let broker;
let server;
let pageBase;
let context;
let userDataDir;
const clients = [];

before(async () => {
  for (const [file] of Object.values(FILES)) {
    assert.ok(fs.existsSync(file), `missing ${file}: run scripts/install-test-deps.sh`);
  }
  assert.ok(fs.existsSync(CHROMIUM), `missing ${CHROMIUM}: run scripts/install-test-deps.sh`);
  broker = await startBroker('browser');

  server = http.createServer((req, res) => {
    const pathname = new URL(req.url, 'http://x').pathname;
    const entry = FILES[pathname];
    if (pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    if (!entry) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': entry[1], 'cache-control': 'no-store' });
    fs.createReadStream(entry[0]).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  pageBase = `http://127.0.0.1:${server.address().port}/`;

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompede-chromium-'));
  // launchPersistentContext is how Playwright takes an explicit (empty, temporary) profile.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await context?.close().catch(() => {});
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  await broker?.stop();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

async function openPage(inDest, outDest) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
  const url = `${pageBase}?${new URLSearchParams({ ws: broker.wsUrl, in: inDest, out: outDest })}`;
  await page.goto(url, { timeout: TIMEOUT });
  try {
    await page.waitForFunction(() => window.stompTest && window.stompTest.connected && window.stompTest.subscribed,
      null, { timeout: TIMEOUT });
  } catch (err) {
    const state = await page.evaluate(() => window.stompTest).catch(() => null);
    throw new Error(`page did not connect and subscribe: ${err.message}; state ${JSON.stringify(state)}; `
      + `${problems.join('; ')}`);
  }
  return { page, problems };
}

describe('rx-stomp in headless Chromium', () => {
  test('page and Node client exchange messages both ways', async () => {
    const toPage = `/topic/${unique('to-page')}`;
    const fromPage = `/topic/${unique('from-page')}`;
    const { page, problems } = await openPage(toPage, fromPage);
    assert.equal(await page.evaluate(() => window.stompTest.version), '1.2');

    const node = await connectStomp(broker.wsUrl);
    clients.push(node);
    const inbox = await collect(node.client, fromPage);

    // Node -> page.
    const sent = ['plain text', 'ünïcödé ☃ text', 'third'];
    for (const [i, body] of sent.entries()) {
      await publishConfirmed(node.client, { destination: toPage, body, headers: { 'x-from': 'node', 'x-seq': String(i) } });
    }
    await page.waitForFunction((n) => window.stompTest.received.length >= n, sent.length, { timeout: TIMEOUT });
    const received = await page.evaluate(() => window.stompTest.received);
    assert.deepEqual(received.map((m) => m.body), sent);
    assert.deepEqual(received.map((m) => m.headers['x-seq']), ['0', '1', '2']);
    for (const m of received) {
      assert.equal(m.headers['x-from'], 'node');
      assert.equal(m.headers.destination, toPage);
    }

    // Page -> Node.
    await page.evaluate(() => window.publishFromPage('hello from the browser', { 'x-from': 'page' }));
    const [fromBrowser] = await inbox.waitCount(1);
    assert.equal(fromBrowser.body, 'hello from the browser');
    assert.equal(fromBrowser.headers['x-from'], 'page');
    assert.equal(fromBrowser.headers.destination, fromPage);

    // Round trip started by Node: the page answers on the reply-to destination.
    const replies = `/topic/${unique('replies')}`;
    const replyInbox = await collect(node.client, replies);
    node.client.publish({ destination: toPage, body: 'ping', headers: { 'reply-to': replies, 'correlation-id': 'rt-1' } });
    const [reply] = await replyInbox.waitCount(1);
    assert.equal(reply.body, 'page echoes: ping');
    assert.equal(reply.headers['correlation-id'], 'rt-1');

    const state = await page.evaluate(() => window.stompTest);
    assert.deepEqual(state.errors, []);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('two pages share a queue as competing consumers', async () => {
    const queue = `/queue/${unique('pages')}`;
    const unused = `/topic/${unique('unused')}`;
    const a = await openPage(queue, unused);
    const b = await openPage(queue, unused);
    const node = await connectStomp(broker.wsUrl);
    clients.push(node);
    const n = 10;
    for (let i = 0; i < n; i++) node.client.publish({ destination: queue, body: `job-${i}` });
    const bodies = async () => {
      const ra = await a.page.evaluate(() => window.stompTest.received.map((m) => m.body));
      const rb = await b.page.evaluate(() => window.stompTest.received.map((m) => m.body));
      return [ra, rb];
    };
    await waitFor(async () => {
      const [ra, rb] = await bodies();
      return ra.length + rb.length >= n;
    }, { what: `${n} queue messages across two pages` });
    const [ra, rb] = await bodies();
    assert.deepEqual([...ra, ...rb].sort(), Array.from({ length: n }, (_, i) => `job-${i}`).sort(),
      'each message delivered exactly once');
    assert.ok(ra.length > 0 && rb.length > 0, `both pages should get work: ${ra.length}/${rb.length}`);
    await a.page.close();
    await b.page.close();
  });
});
