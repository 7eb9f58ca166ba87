// The example chat page (examples/web-chat, served by stompede itself with --static-dir) driven
// in headless Chromium by several users, each in their own browser context: they create and
// join rooms and chat; one loses its connection, misses messages and comes back to exactly
// what it missed; read ticks and unread badges follow, across tabs of the same user.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { connectStomp, publishConfirmed, waitFor } from '../node/harness.mjs';
import {
  ChatUser, CHROMIUM, launchBrowser, startChatBroker, STATIC_DIR,
} from './chat-harness.mjs';

let broker;
let browser;
const users = [];
const stompClients = [];

/** Users are new in every test (the broker is shared), so names get a suffix. */
const suffix = () => Math.random().toString(36).slice(2, 6);
function user(name) {
  const u = new ChatUser(browser, broker.base, `${name}-${suffix()}`);
  users.push(u);
  return u;
}

before(async () => {
  for (const f of ['index.html', 'js/app.js', 'vendor/rx-stomp.umd.js', 'vendor/stomp.umd.js', 'vendor/rxjs.umd.js']) {
    assert.ok(fs.existsSync(`${STATIC_DIR}/${f}`), `missing ${STATIC_DIR}/${f}`);
  }
  assert.ok(fs.existsSync(CHROMIUM), `missing ${CHROMIUM}: run scripts/install-test-deps.sh`);
  broker = await startChatBroker();
  browser = await launchBrowser();
});

after(async () => {
  await Promise.all(stompClients.map((c) => c.close()));
  await Promise.all(users.map((u) => u.close()));
  await browser?.close().catch(() => {});
  await broker?.stop();
});

/** No page errors and no console errors in any tab of these users. */
function assertClean(...who) {
  const problems = who.flatMap((u) => u.problems);
  assert.deepEqual(problems, [], `page problems: ${problems.join('\n')}`);
}

async function createRoom(tab, name, invite) {
  await tab.page.click('#new-room summary');
  await tab.page.fill('#create-name', name);
  await tab.page.fill('#create-invite', invite.join(', '));
  await tab.page.click('#create-form button[type=submit]');
  await tab.page.waitForFunction((t) => document.getElementById('room-title').textContent === t, name);
  return tab.activeRoom();
}

async function openDirect(tab, other) {
  await tab.page.click('#new-direct summary');
  await tab.page.fill('#direct-user', other);
  await tab.page.click('#direct-form button[type=submit]');
  await tab.page.waitForFunction((t) => document.getElementById('room-title').textContent === t, other);
  return tab.activeRoom();
}

describe('the example chat page', () => {
  test('three users chat; one drops off, misses messages and catches up exactly', async () => {
    const [alice, bob, carol] = [user('alice'), user('bob'), user('carol')];
    const a = await alice.tab();
    const b = await bob.tab();
    const c = await carol.tab();

    const room = await createRoom(a, 'Team', [bob.name, carol.name]);
    assert.match(room, /^g-/);
    await b.joinInvite('Team');
    await c.joinInvite('Team');

    await a.send('hello team');
    for (const t of [a, b, c]) await t.waitTexts(['hello team'], { exact: true });
    // Both have it on screen, so both read it: two ticks for alice, "Seen by everyone".
    await a.waitReadBy('hello team', [bob.name, carol.name].sort());
    await a.page.waitForSelector('#messages li.msg.mine .seen:text-is("Seen by everyone")');

    await b.send('hi alice');
    await b.waitTexts(['hello team', 'hi alice'], { exact: true });
    await c.send('hey both');
    const conversation = ['hello team', 'hi alice', 'hey both'];
    for (const t of [a, b, c]) await t.waitTexts(conversation, { exact: true });

    // Carol's network drops while she looks at Team.
    await c.block();

    // Meanwhile alice opens a direct chat with carol and writes twice …
    await openDirect(a, carol.name);
    await a.send('carol, are you there?');
    await a.send('ping me when back');
    await a.waitTexts(['carol, are you there?', 'ping me when back'], { exact: true });
    // … and alice and bob go on in Team.
    await a.openRoom('Team');
    const missed = ['m1 from alice', 'm2 from bob', 'm3 from alice'];
    await a.send(missed[0]);
    await b.waitTexts([...conversation, missed[0]], { exact: true });
    await b.send(missed[1]);
    await a.waitTexts([...conversation, ...missed.slice(0, 2)], { exact: true });
    await a.send(missed[2]);
    await b.waitTexts([...conversation, ...missed], { exact: true });

    assert.deepEqual(await c.texts(), conversation, 'carol is offline: nothing new yet');
    await c.screenshot('web-chat-1-carol-offline');

    // Back online: exactly what she missed, in order, once.
    await c.unblock();
    await c.waitTexts([...conversation, ...missed], { exact: true });
    const events = await c.events();
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), 'no duplicate, in sequence order');
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'no gap in the timeline');
    // The timeline resumed from its cursor (x-since-seq + x-epoch) and replayed the three.
    const replay = await c.page.evaluate((id) => window.webChat.opened.get(id).lastReplay, room);
    assert.equal(replay.recovered, true, JSON.stringify(replay));
    assert.ok(replay.asked['x-since-seq'] && replay.asked['x-epoch'], JSON.stringify(replay));
    assert.equal(replay.replayed, 3, JSON.stringify(replay));

    // The direct chat she missed is in her list with 2 unread; Team, on screen, is read.
    await c.waitUnread(alice.name, 2);
    await c.waitUnread('Team', 0);
    // Alice sees that carol has now read the messages of her absence.
    await a.waitReadBy('m3 from alice', [bob.name, carol.name].sort());
    await b.waitReadBy('m2 from bob', [alice.name, carol.name].sort());
    await c.screenshot('web-chat-2-carol-back');

    await c.openRoom(alice.name);
    await c.waitTexts(['carol, are you there?', 'ping me when back'], { exact: true });
    await c.page.waitForSelector('#unread-divider');
    await c.waitUnread(alice.name, 0);
    await a.openRoom(carol.name);
    await a.waitReadBy('ping me when back', [carol.name]);
    await a.screenshot('web-chat-3-alice-direct-read');
    assertClean(alice, bob, carol);
  });

  test('offline posting, a lost RECEIPT, a public room, a link to an image', async () => {
    const [dave, erin] = [user('dave'), user('erin')];
    const d = await dave.tab();
    const e = await erin.tab();
    await openDirect(d, erin.name);
    await e.openRoom(dave.name);

    // Written while offline: shown as pending, sent on reconnect.
    await d.block();
    await d.send('written offline');
    const pending = await d.page.waitForSelector('#messages li.msg.mine[data-state=pending]:not([data-seq])');
    assert.equal(await pending.$eval('.text', (n) => n.textContent), 'written offline');
    assert.equal(await pending.$eval('.tick', (n) => n.title), 'Sending…');
    await d.screenshot('web-chat-4-pending');
    await d.unblock();
    await d.waitReadBy('written offline', [erin.name]);
    await e.waitTexts(['written offline'], { exact: true });

    // The broker stores a post but the connection drops before its RECEIPT: the page sends it
    // again after reconnecting (same x-client-msg-id) and it is still there once.
    d.cutAfterNext((frame) => frame.startsWith('SEND\n') && frame.includes('"text":"lost receipt"'));
    await d.send('lost receipt');
    await d.page.waitForSelector('#conn-state[data-state=offline]');
    await e.waitTexts(['written offline', 'lost receipt'], { exact: true });
    await d.unblock();
    await d.waitReadBy('lost receipt', [erin.name]);
    await d.waitTexts(['written offline', 'lost receipt'], { exact: true });
    await e.waitTexts(['written offline', 'lost receipt'], { exact: true });
    assert.equal(await d.page.$$eval('#messages li.msg:not([data-seq])', (l) => l.length), 0, 'nothing pending');
    const tries = d.sends.filter((f) => f.includes('"text":"lost receipt"'));
    assert.equal(tries.length, 2, 'sent twice');
    const ids = tries.map((f) => /^x-client-msg-id:(.*)$/m.exec(f)?.[1]);
    assert.ok(ids[0] && ids[0] === ids[1], `the same x-client-msg-id: ${ids}`);

    // A resume the server cannot serve (here: a cursor of another epoch) answers
    // x-recovered:false; the page then reloads the latest page, without gap or duplicate.
    const direct = await d.activeRoom();
    await d.page.evaluate((id) => { window.webChat.opened.get(id).epoch = 'not-this-epoch'; }, direct);
    await d.block();
    await e.send('while dave was away');
    await d.unblock();
    await d.waitTexts(['written offline', 'lost receipt', 'while dave was away'], { exact: true });
    const replay = await d.page.evaluate((id) => window.webChat.opened.get(id).lastReplay, direct);
    assert.equal(replay.recovered, false, JSON.stringify(replay));
    const seqs = (await d.events()).map((ev) => ev.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'contiguous after the reload');

    // A public room: erin joins it by its id.
    await d.page.click('#new-room summary');
    await d.page.fill('#create-name', 'Lobby');
    await d.page.check('#create-public');
    await d.page.click('#create-form button[type=submit]');
    await d.page.waitForFunction(() => document.getElementById('room-title').textContent === 'Lobby');
    const lobby = await d.activeRoom();
    await e.page.click('#join-room summary');
    await e.page.fill('#join-id', lobby);
    await e.page.click('#join-form button[type=submit]');
    await e.page.waitForFunction(() => document.getElementById('room-title').textContent === 'Lobby');
    await d.page.waitForSelector(`#messages li.sys[data-kind=join]:has-text("${erin.name} joined")`);

    // Attachments are links with metadata in the JSON body; images get a preview.
    const url = new URL('icon.svg', broker.base).href;
    await d.page.click('#attach-toggle');
    await d.page.fill('#attach-url', url);
    await d.page.dispatchEvent('#attach-url', 'change');
    await d.page.fill('#attach-size', '812');
    await d.send('our logo');
    await e.waitTexts(['our logo'], { exact: true });
    const att = await e.page.waitForSelector('#messages li.msg .attachment.image');
    assert.equal(await att.$eval('.file-name', (n) => n.textContent), 'icon.svg');
    assert.equal(await att.$eval('.file-meta', (n) => n.textContent), 'image/svg+xml · 812 B');
    assert.equal(await att.$eval('a.file', (n) => n.href), url);
    await e.page.waitForFunction(() => document.querySelector('#messages .attachment img.preview')?.naturalWidth > 0);
    await e.screenshot('web-chat-5-erin-lobby-attachment');
    assertClean(dave, erin);
  });

  test('after closing the page: unread badge on return, history loads on scroll-back', async () => {
    const [frank, gina] = [user('frank'), user('gina')];
    const f = await frank.tab();
    let g = await gina.tab();
    await createRoom(f, 'Archive', [gina.name]);
    await g.joinInvite('Archive');
    await g.page.close();

    // Frank's other device (a Node stompjs client) posts 60 messages while gina is away.
    const phone = await connectStomp(broker.wsUrl, { connectHeaders: { login: frank.name, passcode: '' } });
    stompClients.push(phone);
    const room = await f.activeRoom();
    const n = 60;
    const all = Array.from({ length: n }, (_, i) => `note ${i + 1}`);
    for (const [i, text] of all.entries()) {
      // The chat plugin limits posts per user (chat.post_rate, post_burst): like any client,
      // send again (same x-client-msg-id) after a "rate limited" refusal.
      await waitFor(async () => {
        const receipt = await publishConfirmed(phone.client, {
          destination: `/room/${room}`,
          headers: { 'content-type': 'application/json', 'x-client-msg-id': `phone-${i}` },
          body: JSON.stringify({ text }),
        });
        const error = receipt.headers['x-error'];
        if (error && !/rate limit/i.test(error)) throw new Error(`post refused: ${error}`);
        return !error;
      }, { what: `post ${i + 1} accepted`, interval: 100 });
    }
    await f.waitTexts(all.slice(-5));

    g = await gina.tab();
    await g.waitUnread('Archive', n);
    await g.screenshot('web-chat-6-gina-unread');
    await g.openRoom('Archive');
    // The first screen is the latest page; older pages load when scrolling back.
    await g.waitTexts(all.slice(-30));
    await g.page.waitForSelector('#unread-divider');
    try {
      await g.page.waitForFunction(() => {
        const t = document.getElementById('timeline');
        t.scrollTop = 0;
        t.dispatchEvent(new Event('scroll'));
        return !document.getElementById('history-start').hidden;
      }, null, { polling: 100 });
    } catch (err) {
      throw new Error(`history never reached the beginning; shown ${JSON.stringify(await g.texts())}: ${err.message}`);
    }
    await g.waitTexts(all, { exact: true });
    const seqs = (await g.events()).map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'contiguous, in order, no duplicate');
    assert.equal(seqs[0], 1, 'down to the first event of the room');
    await g.screenshot('web-chat-7-gina-history');
    // Reading to the end clears the badge.
    await g.page.$eval('#timeline', (t) => { t.scrollTop = t.scrollHeight; });
    await g.waitUnread('Archive', 0);
    assertClean(frank, gina);
  });

  test('read state reaches every tab of both users; presence and typing', async (t) => {
    const [hank, ivy] = [user('hank'), user('ivy')];
    const h1 = await hank.tab();
    const h2 = await hank.tab();
    const i1 = await ivy.tab();
    const i2 = await ivy.tab();

    await openDirect(h1, ivy.name);
    const lines = ['one', 'two', 'three'];
    for (const line of lines) await h1.send(line);
    await h1.waitTexts(lines, { exact: true });
    // Hank's second tab learns of the room from its inbox and shows the same timeline.
    await h2.openRoom(ivy.name);
    await h2.waitTexts(lines, { exact: true });

    // Both of ivy's tabs count 3 unread; neither has the room open.
    await i1.waitUnread(hank.name, 3);
    await i2.waitUnread(hank.name, 3);
    await i2.screenshot('web-chat-8-ivy-tab2-unread');

    // Ivy reads in tab 1: tab 2's badge goes, hank's two tabs show the read ticks.
    await i1.openRoom(hank.name);
    await i1.waitTexts(lines, { exact: true });
    await i2.waitUnread(hank.name, 0);
    await h1.waitReadBy('three', [ivy.name]);
    await h2.waitReadBy('three', [ivy.name]);

    // Presence and typing, where the broker's chat plugin has them (the page checks: a plugin
    // without them refuses the SUBSCRIBE and the page hides both).
    await h1.page.waitForFunction(() => Object.values(window.webChat.extras.supported).every((v) => v !== null));
    const supported = await h1.page.evaluate(() => window.webChat.extras.supported);
    t.diagnostic(`presence/typing offered by this broker: ${JSON.stringify(supported)}`);
    if (supported.presence) {
      await h1.page.waitForFunction((n) => (document.getElementById('presence').dataset.users || '')
        .split(',').includes(n), ivy.name);
    } else {
      assert.equal(await h1.page.$eval('#presence', (n) => n.hidden), true, 'no presence: hidden');
    }
    if (supported.typing) {
      await i1.page.type('#composer-text', 'fou');
      await h1.page.waitForSelector(`#typing:text-is("${ivy.name} is typing…")`);
      await h2.page.waitForSelector(`#typing:text-is("${ivy.name} is typing…")`);
      await h2.screenshot('web-chat-9-hank-tab2-read-typing');
      await i1.send('four');
      await h1.waitTexts([...lines, 'four'], { exact: true });
      await h1.page.waitForFunction(() => document.getElementById('typing').textContent === '');
    } else {
      await h2.screenshot('web-chat-9-hank-tab2-read');
    }
    assertClean(hank, ivy);
  });
});
