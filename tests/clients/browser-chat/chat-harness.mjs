// Helpers for the example chat page tests: a stompede serving examples/web-chat
// (`--static-dir`), headless Chromium, and a ChatUser that drives the page like a person
// (the sign-in form, the room list, the composer) and reads what the page shows.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startBroker, TIMEOUT } from '../node/harness.mjs';

export { TIMEOUT };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
export const STATIC_DIR = path.join(REPO, 'examples', 'web-chat');
const nodeDir = path.resolve(here, '..', 'node');
// playwright-core lives in tests/clients/node/node_modules.
const { chromium } = createRequire(path.join(nodeDir, 'package.json'))('playwright-core');

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
/** Screenshots go here (gitignored); CI keeps them as artifacts. */
export const ARTIFACTS = process.env.STOMP_TEST_ARTIFACTS || path.resolve(here, '..', 'artifacts');

/**
 * stompede with the example page: WebSocket + static files on one free port, TCP on another,
 * memory store, no admin listener. Returns { base, wsUrl, logPath, logTail(), stop() }.
 */
export async function startChatBroker() {
  if (process.env.STOMP_WS_URL) {
    throw new Error('the web-chat suite starts its own broker with the example page; unset STOMP_WS_URL');
  }
  const broker = await startBroker('web-chat', ['--static-dir', STATIC_DIR]);
  return { ...broker, base: new URL('/', broker.wsUrl.replace(/^ws/, 'http')).href };
}

export async function launchBrowser() {
  // chromium.launch gives every run a fresh temporary profile (--user-data-dir).
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** One person: a browser context (own storage), one or more tabs of the chat page. */
export class ChatUser {
  constructor(browser, base, name) {
    this.browser = browser;
    this.base = base;
    this.name = name;
    this.problems = [];
    this.context = null;
  }

  /** A new tab signed in as this user (a new context the first time). */
  async tab() {
    if (!this.context) this.context = await this.browser.newContext({ viewport: { width: 1180, height: 760 } });
    const page = await this.context.newPage();
    const tab = new ChatTab(this, page);
    await tab.signIn();
    return tab;
  }

  async close() {
    await this.context?.close().catch(() => {});
  }
}

export class ChatTab {
  constructor(user, page) {
    this.user = user;
    this.page = page;
    this.blocked = false;
    this.sockets = [];
    /** Every SEND frame the page wrote, as text. */
    this.sends = [];
    const label = `${user.name}`;
    page.on('pageerror', (err) => user.problems.push(`${label} pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') user.problems.push(`${label} console: ${msg.text()}`);
    });
    page.setDefaultTimeout(TIMEOUT);
  }

  /**
   * The page's WebSocket goes through Playwright, so a test can cut it ("the network drops")
   * and refuse reconnects until `unblock()`; otherwise frames pass through untouched.
   */
  async route() {
    await this.page.routeWebSocket((url) => url.pathname === '/ws', (ws) => {
      if (this.blocked) {
        ws.close({ code: 1006, reason: 'blocked by the test' });
        return;
      }
      const server = ws.connectToServer();
      this.sockets.push(ws);
      // Page -> broker, passed on; optionally the connection is cut right after one frame, so
      // that the broker has it but the page never hears back (no RECEIPT, no MESSAGE).
      ws.onMessage((frame) => {
        server.send(frame);
        if (typeof frame === 'string' && frame.startsWith('SEND\n')) this.sends.push(frame);
        if (this.cutAfter && typeof frame === 'string' && this.cutAfter(frame)) {
          this.cutAfter = null;
          this.blocked = true;
          ws.close({ code: 1006, reason: 'cut by the test' }).catch(() => {});
        }
      });
    });
  }

  /** Cut the connection (and refuse reconnects) right after the next frame matching `match`. */
  cutAfterNext(match) {
    this.cutAfter = match;
  }

  async signIn() {
    await this.route();
    await this.page.goto(this.user.base);
    await this.page.fill('#login-user', this.user.name);
    await this.page.click('#login-form button[type=submit]');
    await this.online();
  }

  online() {
    return this.page.waitForSelector('#conn-state[data-state=online]');
  }

  async block() {
    this.blocked = true;
    const open = this.sockets.splice(0);
    for (const ws of open) await ws.close({ code: 1006, reason: 'blocked by the test' }).catch(() => {});
    await this.page.waitForSelector('#conn-state[data-state=offline]');
  }

  async unblock() {
    this.blocked = false;
    await this.online();
  }

  /** Room ids in the list, with title and badge. */
  roomList() {
    return this.page.$$eval('#room-list li[data-room]', (items) => items.map((li) => ({
      room: li.dataset.room,
      title: li.querySelector('.room-name')?.textContent,
      unread: li.dataset.unread === undefined ? null : Number(li.dataset.unread),
      invited: li.classList.contains('invite'),
    })));
  }

  /** Wait until the room titled `title` shows `unread` (0: no badge). */
  async waitUnread(title, unread) {
    try {
      await this.page.waitForFunction(([t, n]) => [...document.querySelectorAll('#room-list li[data-room]')]
        .some((li) => li.querySelector('.room-name')?.textContent === t && li.dataset.unread === String(n)
          && (n === 0) === li.querySelector('.badge')?.hidden),
      [title, unread]);
    } catch (err) {
      throw new Error(`${this.user.name}: room ${title} never showed ${unread} unread `
        + `(list: ${JSON.stringify(await this.roomList())}): ${err.message}`);
    }
  }

  async openRoom(title) {
    await this.page.click(`#room-list li[data-room] .room-open:has(.room-name:text-is("${title}"))`);
    await this.page.waitForFunction((t) => document.getElementById('room-title').textContent === t
      && !document.getElementById('room-view').hidden, title);
  }

  activeRoom() {
    return this.page.$eval('#room-list li.active', (li) => li.dataset.room);
  }

  async joinInvite(title) {
    await this.page.click(`#invites li:has(.room-name:text-is("${title}")) button.join`);
    await this.page.waitForFunction((t) => document.getElementById('room-title').textContent === t, title);
  }

  async send(text) {
    await this.page.fill('#composer-text', text);
    await this.page.press('#composer-text', 'Enter');
  }

  /** The texts of the messages shown (stored ones, then pending ones). */
  texts() {
    return this.page.$$eval('#messages li.msg .text', (els) => els.map((e) => e.textContent));
  }

  /** Every stored timeline event shown: [{seq, kind, sender, text}]. */
  events() {
    return this.page.$$eval('#messages li[data-seq]', (els) => els.map((li) => ({
      seq: Number(li.dataset.seq), kind: li.dataset.kind, sender: li.dataset.sender || '',
      text: li.querySelector('.text')?.textContent ?? null, state: li.dataset.state || null,
      readBy: li.dataset.readBy ?? null,
    })));
  }

  /** Wait until the shown message texts end with `expected` (in this order). */
  async waitTexts(expected, { exact = false } = {}) {
    try {
      await this.page.waitForFunction(([want, whole]) => {
        const got = [...document.querySelectorAll('#messages li.msg[data-seq] .text')].map((e) => e.textContent);
        const part = whole ? got : got.slice(-want.length);
        return part.length === want.length && part.every((t, i) => t === want[i]);
      }, [expected, exact]);
    } catch (err) {
      throw new Error(`${this.user.name}: messages never were ${JSON.stringify(expected)}; `
        + `shown: ${JSON.stringify(await this.texts())}: ${err.message}`);
    }
  }

  /** Wait until the own message `text` is read by exactly `readers` (sorted list). */
  async waitReadBy(text, readers) {
    const want = readers.join(',');
    try {
      await this.page.waitForFunction(([t, w]) => [...document.querySelectorAll('#messages li.msg.mine[data-seq]')]
        .some((li) => li.querySelector('.text')?.textContent === t && li.dataset.readBy === w
          && li.dataset.state === (w ? 'read' : 'sent')), [text, want]);
    } catch (err) {
      throw new Error(`${this.user.name}: "${text}" never read by [${want}]; `
        + `${JSON.stringify((await this.events()).filter((e) => e.text === text))}: ${err.message}`);
    }
  }

  async screenshot(name) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }
}
