// Shared helpers for the Node and browser client suites.
//
// startBroker(): a freshly started stompede binary on free loopback ports (binary from
// STOMPEDE_BIN, else $CARGO_TARGET_DIR/debug/stompede, CARGO_TARGET_DIR defaulting to
// ~/.cache/stompede/target), or the external broker named by STOMP_WS_URL.
// connectStomp(): an @stomp/stompjs client over `ws`, connected, with bounded waits.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

export { Client, WebSocket };

/** Default deadline for anything a test waits for, in ms. */
export const TIMEOUT = Number(process.env.STOMP_TEST_TIMEOUT ?? 10) * 1000;
/** How long a "nothing more arrives" check watches, in ms. */
export const QUIET = Number(process.env.STOMP_TEST_QUIET ?? 0.5) * 1000;
const STARTUP_DEADLINE = 20_000;
export const WS_PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

export function unique(prefix = 't') {
  return `${prefix}-${Math.random().toString(16).slice(2, 10)}${Date.now().toString(16).slice(-4)}`;
}

/** Poll `predicate` until truthy; reject after `timeout` ms. Returns the truthy value. */
export async function waitFor(predicate, { timeout = TIMEOUT, what = 'condition', interval = 20 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

/** Race a promise against a deadline. */
export function withTimeout(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------------------------
// Broker process
// ------------------------------------------------------------------------------------

/** Distinct free loopback ports: listen on port 0 for each (all at once), then release. */
export async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const srv = net.createServer();
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      servers.push(srv);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export function portAccepts(host, port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok) => { sock.destroy(); resolve(ok); };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export function defaultBinary() {
  if (process.env.STOMPEDE_BIN) return process.env.STOMPEDE_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache', 'stompede', 'target');
  return path.join(target, 'debug', 'stompede');
}

const running = new Set();
function killAll() {
  for (const child of running) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
// Safety net: never leave a broker behind, even when a test run is torn down abruptly.
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  });
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no broker log)';
  }
}

/**
 * Start a broker for one test file, with `extraArgs` added to its command line.
 * Returns { wsUrl, host, tcpPort, external, logPath, stop() }.
 */
export async function startBroker(name = 'node', extraArgs = []) {
  if (process.env.STOMP_WS_URL) {
    const url = new URL(process.env.STOMP_WS_URL);
    const port = Number(url.port || (url.protocol === 'wss:' ? 443 : 80));
    await waitFor(() => portAccepts(url.hostname, port), {
      timeout: STARTUP_DEADLINE, what: `external broker at ${url.host} to accept connections`,
    });
    return { wsUrl: url.toString(), external: true, logPath: null, stop: async () => {} };
  }

  const binary = defaultBinary();
  try {
    fs.accessSync(binary, fs.constants.X_OK);
  } catch {
    throw new Error(`stompede binary not found at ${binary}: build it with \`cargo build -p stompede\` `
      + 'or set STOMPEDE_BIN (or STOMP_WS_URL for an external broker)');
  }
  const logDir = process.env.STOMPEDE_LOG_DIR || fs.mkdtempSync(path.join(os.tmpdir(), `stompede-${name}-`));
  fs.mkdirSync(logDir, { recursive: true });

  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const [tcpPort, wsPort] = await freePorts(2);
    const logPath = path.join(logDir, `broker-${name}-${process.pid}-${attempt}.log`);
    const logFd = fs.openSync(logPath, 'w');
    const child = spawn(binary, ['--tcp-listen', `127.0.0.1:${tcpPort}`, '--ws-listen', `127.0.0.1:${wsPort}`, '--memory-store', '--admin-listen=', ...extraArgs], {
      stdio: ['ignore', logFd, logFd],
      env: process.env,
    });
    fs.closeSync(logFd);
    running.add(child);
    let exitCode = null;
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      exitCode = code ?? signal;
      running.delete(child);
      resolve();
    }));
    const stop = async () => {
      if (exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    };
    const deadline = Date.now() + STARTUP_DEADLINE;
    let ready = false;
    while (Date.now() < deadline && exitCode === null) {
      if (await portAccepts('127.0.0.1', tcpPort) && await portAccepts('127.0.0.1', wsPort)) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (ready) {
      return {
        wsUrl: `ws://127.0.0.1:${wsPort}/ws`, host: '127.0.0.1', tcpPort, external: false, logPath, stop,
        logTail: () => tail(logPath),
      };
    }
    const hung = exitCode === null;
    await stop();
    lastError = new Error(`stompede (${binary}) did not accept connections on 127.0.0.1:${tcpPort}/${wsPort} `
      + `within ${STARTUP_DEADLINE} ms (exit ${exitCode}); log ${logPath}:\n${tail(logPath)}`);
    if (hung) break; // it did not fail to bind, it hung: retrying will not help
  }
  throw lastError;
}

// ------------------------------------------------------------------------------------
// stompjs clients
// ------------------------------------------------------------------------------------

/**
 * Connect an @stomp/stompjs Client over `ws`. Resolves to
 * { client, connected (the CONNECTED frame), socket (the ws instance), close() }.
 * Extra options are passed to the Client (heartbeats, connectHeaders, ...).
 */
export async function connectStomp(wsUrl, options = {}) {
  const { protocols = WS_PROTOCOLS, ...clientOptions } = options;
  let socket;
  const client = new Client({
    webSocketFactory: () => {
      socket = new WebSocket(wsUrl, protocols);
      return socket;
    },
    reconnectDelay: 0,
    connectionTimeout: TIMEOUT,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
    ...clientOptions,
  });
  const state = { errors: [], closed: null };
  const connected = new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onStompError = (frame) => {
      state.errors.push(frame);
      reject(new Error(`STOMP ERROR: ${frame.headers.message} ${frame.body}`));
    };
    client.onWebSocketError = (evt) => reject(new Error(`WebSocket error: ${evt?.message ?? evt}`));
    client.onWebSocketClose = (evt) => {
      state.closed = evt;
      reject(new Error(`WebSocket closed before CONNECTED (code ${evt?.code})`));
    };
  });
  client.activate();
  let frame;
  try {
    frame = await withTimeout(connected, TIMEOUT, 'CONNECTED frame');
  } catch (err) {
    await client.deactivate({ force: true }).catch(() => {});
    throw err;
  }
  // After CONNECTED: record instead of rejecting.
  client.onStompError = (f) => state.errors.push(f);
  client.onWebSocketClose = (evt) => { state.closed = evt; };
  return {
    client,
    connected: frame,
    socket,
    state,
    async close() {
      if (client.active) await withTimeout(client.deactivate(), TIMEOUT, 'client deactivate').catch(() => {});
    },
  };
}

/** Resolve when RECEIPT `receiptId` arrives (register before sending the frame). */
export function receiptPromise(client, receiptId) {
  return withTimeout(new Promise((resolve) => client.watchForReceipt(receiptId, resolve)),
    TIMEOUT, `RECEIPT ${receiptId}`);
}

/**
 * Subscribe, collect every MESSAGE into `messages`, and wait for the SUBSCRIBE receipt so the
 * subscription is live when this resolves.
 */
export async function collect(client, destination, headers = {}) {
  const messages = [];
  const receipt = unique('sub');
  const got = receiptPromise(client, receipt);
  const sub = client.subscribe(destination, (m) => messages.push(m), { ...headers, receipt });
  await got;
  return {
    id: sub.id,
    sub,
    messages,
    async waitCount(n, what = `${n} messages on ${destination}`) {
      await waitFor(() => messages.length >= n, { what: `${what} (have ${messages.length})` });
      return messages.slice(0, n);
    },
    /** Assert no message matching `predicate` arrives during QUIET ms. */
    async assertQuiet(predicate = () => true, what = 'message') {
      const deadline = Date.now() + QUIET;
      while (Date.now() < deadline) {
        const bad = messages.filter(predicate);
        if (bad.length) throw new Error(`unexpected ${what}: ${bad.map((m) => m.body).join(', ')}`);
        await sleep(20);
      }
      const bad = messages.filter(predicate);
      if (bad.length) throw new Error(`unexpected ${what}: ${bad.map((m) => m.body).join(', ')}`);
    },
  };
}

/** Publish with a receipt and wait for it. */
export async function publishConfirmed(client, params) {
  const receipt = unique('send');
  const got = receiptPromise(client, receipt);
  client.publish({ ...params, headers: { ...(params.headers ?? {}), receipt } });
  return got;
}
