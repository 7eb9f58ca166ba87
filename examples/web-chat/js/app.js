// The page: sign-in, the room list with unread badges (from the inbox), the open room, and
// the forms. The protocol lives in connection.js (commands, queries) and room.js (timeline,
// resume, history, receipts, outbox); rendering in view.js; presence and typing in extras.js.

import { ChatConnection, defaultBrokerURL } from './connection.js';
import { Extras } from './extras.js';
import { Room } from './room.js';
import { renderRoomList, roomTitle, TimelineView } from './view.js';
import { avatarFor, fileName, guessType } from './util.js';

const $ = (id) => document.getElementById(id);
const INBOX = '/user/queue/chat';
const USER_KEY = 'stompede-chat-user';

const app = {
  me: null,
  conn: null,
  /** room id -> summary {room, kind, name, role, head, read_seq, unread} */
  rooms: new Map(),
  /** room id -> Room (the rooms opened in this tab; they keep their cursor when closed) */
  opened: new Map(),
  active: null,
  view: null,
  extras: null,
  everConnected: false,
};
// For debugging from the console (and read by the browser tests for replay details).
window.webChat = app;

// ---- small UI helpers ---------------------------------------------------------------------

let toastTimer;
function toast(text, kind = 'info') {
  const t = $('toast');
  t.textContent = text;
  t.dataset.kind = kind;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

let renderQueued = false;
/** Coalesce renders: many MESSAGEs (a replay) arrive in one burst. */
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 0);
}

function render() {
  renderRoomList(app.rooms, {
    me: app.me, active: app.active, onOpen: openRoom, onJoin: joinRoom,
  });
  const total = [...app.rooms.values()].reduce((n, r) => n + (r.role === 'invited' ? 0 : Number(r.unread) || 0), 0);
  document.title = total ? `(${total}) Stompede chat` : 'Stompede chat';
  const room = app.active && app.opened.get(app.active);
  $('room-view').hidden = !room;
  $('no-room').hidden = !!room;
  if (!room) return;
  const summary = app.rooms.get(room.id) || room;
  $('room-title').textContent = roomTitle({ ...summary, room: room.id }, app.me);
  $('room-sub').textContent = room.error ? room.error
    : room.kind === 'direct' ? 'Direct chat'
      : `${room.memberCount ? `${room.memberCount} member${room.memberCount === 1 ? '' : 's'} · ` : ''}${room.id}`;
  $('room-leave').hidden = false;
  $('composer-text').disabled = !!room.error;
  app.view.render();
  app.extras.render();
}

// ---- sign-in ------------------------------------------------------------------------------

$('login-user').value = localStorage.getItem(USER_KEY) || '';
$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const user = $('login-user').value.trim();
  if (user) start(user);
});
$('logout').addEventListener('click', async () => {
  await app.conn?.close();
  location.hash = '';
  location.reload();
});

function start(user) {
  localStorage.setItem(USER_KEY, user);
  app.me = user;
  $('login-error').hidden = true;
  $('login-screen').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = user;
  const { letters, hue } = avatarFor(user);
  $('me-avatar').textContent = letters;
  $('me-avatar').style.setProperty('--hue', hue);

  const conn = new ChatConnection(user, defaultBrokerURL());
  app.conn = conn;
  app.view = new TimelineView({
    me: user,
    onVisible: (seq) => app.opened.get(app.active)?.markRead(seq),
    onNearTop: () => loadOlder(),
    onAction: (verb, ev, extra) => relate(verb, ev, extra),
  });
  app.extras = new Extras(conn, user, scheduleRender);

  conn.state$.subscribe((s) => {
    // RxStompState: CONNECTING 0, OPEN 1, CLOSING 2, CLOSED 3
    const online = s === RxStomp.RxStompState.OPEN;
    const label = online ? 'online' : app.everConnected ? 'reconnecting…' : 'connecting…';
    $('conn-state').textContent = label;
    $('conn-state').dataset.state = online ? 'online' : 'offline';
    document.body.dataset.conn = online ? 'online' : 'offline';
  });
  conn.errors$.subscribe((frame) => {
    const why = frame.headers.message || frame.body || 'error';
    if (!app.everConnected) {
      // The broker refused the CONNECT (bad login …): back to the form.
      conn.close();
      $('app').hidden = true;
      $('login-screen').hidden = false;
      $('login-error').textContent = `Cannot sign in: ${why}`;
      $('login-error').hidden = false;
    } else {
      toast(why, 'error');
    }
  });
  conn.connected$.subscribe(() => {
    app.everConnected = true;
    refreshRooms();
    // Posts and read markers that could not go out while offline.
    for (const room of app.opened.values()) {
      room.flushOutbox();
      room.sendRead();
    }
  });
  // The inbox: unread counts, read markers of all this user's sessions, membership notices.
  conn.watch(INBOX).subscribe(onInbox);
  conn.activate();
}

// ---- the inbox ----------------------------------------------------------------------------

function setUnread(roomId, unread, readSeq, head) {
  const r = app.rooms.get(roomId);
  if (!r) return false;
  if (unread !== undefined && unread !== null && unread !== '') r.unread = Number(unread);
  if (readSeq) r.read_seq = Math.max(Number(r.read_seq) || 0, Number(readSeq));
  if (head) r.head = Math.max(Number(r.head) || 0, Number(head));
  app.opened.get(roomId)?.noteReadSeq(Number(r.read_seq) || 0);
  return true;
}

function onInbox(message) {
  const h = message.headers;
  switch (h['x-event']) {
    case 'unread-snapshot': {
      // Sent on every inbox SUBSCRIBE (so also after a reconnect): the counts are exact.
      let unknown = false;
      const body = JSON.parse(message.body || '{"rooms":[]}');
      const seen = new Set();
      for (const { room, unread, read_seq: readSeq } of body.rooms || []) {
        seen.add(room);
        if (!setUnread(room, unread, readSeq)) unknown = true;
      }
      for (const r of app.rooms.values()) if (r.role !== 'invited' && !seen.has(r.room)) r.unread = 0;
      if (unknown) refreshRooms();
      break;
    }
    case 'unread':
    case 'read':
      if (!setUnread(h['x-room'], h['x-unread'], h['x-read-seq'], h['x-head-seq'])) refreshRooms();
      break;
    case 'invited':
      toast(`${h['x-sender']} invited you to ${h['x-name'] || h['x-room']}`);
      refreshRooms();
      break;
    case 'added':
    case 'joined':
    case 'created': // a room this user created in another tab
      refreshRooms();
      break;
    case 'role':
      toast(`You are now ${h['x-role']} in ${h['x-name'] || h['x-room']}`);
      refreshRooms();
      break;
    case 'left':
    case 'kicked':
      if (h['x-event'] === 'kicked') toast(`${h['x-sender']} removed you from ${h['x-name'] || h['x-room']}`, 'error');
      if (app.active === h['x-room']) closeRoom();
      app.opened.get(h['x-room'])?.close();
      app.opened.delete(h['x-room']);
      refreshRooms();
      break;
    case 'error':
      toast(h['x-error'] || 'error', 'error');
      break;
    default:
      break; // replies of other tabs' commands without reply-to, future events
  }
  scheduleRender();
}

let refreshing = null;
let refreshAgain = false;
/** The full room list (all pages of /rooms/list); concurrent calls share one run. */
function refreshRooms() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      const all = new Map();
      let after = null;
      try {
        do {
          const headers = { 'x-limit': '200' };
          if (after) headers['x-after'] = after;
          const { end } = await app.conn.query('/rooms/list', headers);
          const page = JSON.parse(end.body || '{}');
          for (const r of page.rooms || []) all.set(r.room, r);
          after = page.next || null;
        } while (after);
      } catch (err) {
        console.warn('room list:', err.message);
        return;
      }
      app.rooms = all;
      for (const [id, room] of app.opened) {
        if (!all.has(id) || all.get(id).role === 'invited') {
          room.close();
          app.opened.delete(id);
          if (app.active === id) closeRoom();
        }
      }
      scheduleRender();
      // Open the room named in the address (#room=…) once it is known.
      const wanted = new URLSearchParams(location.hash.slice(1)).get('room');
      if (wanted && !app.active && all.has(wanted)) openRoom(wanted);
    } while (refreshAgain);
  })().finally(() => { refreshing = null; });
  return refreshing;
}

// ---- rooms --------------------------------------------------------------------------------

function openRoom(id) {
  const summary = app.rooms.get(id);
  if (!summary || summary.role === 'invited' || app.active === id) return;
  closeRoom();
  let room = app.opened.get(id);
  if (!room) {
    room = new Room(app.conn, summary, scheduleRender);
    room.onMembership = () => loadInfo(room);
    app.opened.set(id, room);
  }
  // The divider marks what arrived since the last visit; visible messages then count as read.
  room.dividerAfter = Number(summary.unread) > 0 ? Number(summary.read_seq) || 0 : null;
  room.noteReadSeq(Number(summary.read_seq) || 0);
  app.active = id;
  history.replaceState(null, '', `#room=${encodeURIComponent(id)}`);
  app.view.show(room);
  room.open();
  app.extras.open(room);
  loadInfo(room);
  scheduleRender();
  $('composer-text').focus();
}

function closeRoom() {
  const room = app.active && app.opened.get(app.active);
  if (room) {
    room.close();
    app.extras.close();
  }
  app.active = null;
  app.view?.show(null);
  scheduleRender();
}

async function loadInfo(room) {
  try {
    const { end } = await app.conn.query(`/room/${room.id}/info`);
    const info = JSON.parse(end.body || '{}');
    room.memberCount = (info.members || []).filter((m) => m.role !== 'invited').length;
    room.members = info.members || [];
    room.name = info.name || room.name;
    scheduleRender();
  } catch (err) {
    console.warn('room info:', err.message);
  }
}

/** Reactions, edits and deletions of a message (each a timeline event of its own). */
async function relate(verb, ev, extra) {
  const room = app.opened.get(app.active);
  if (!room) return;
  try {
    if (verb === 'react') await room.relate('react', ev.seq, { 'x-reaction': extra });
    if (verb === 'unreact') await room.relate('redact', extra);
    if (verb === 'edit') {
      const text = prompt('Edit message', extra.text || '');
      if (text === null || text.trim() === (extra.text || '')) return;
      await room.relate('edit', ev.seq, { 'content-type': 'application/json' },
        JSON.stringify({ ...extra, text: text.trim() }));
    }
    if (verb === 'delete' && confirm('Delete this message for everyone?')) await room.relate('redact', ev.seq);
  } catch (err) {
    toast(err.message, 'error');
  }
}

async function loadOlder() {
  const room = app.opened.get(app.active);
  if (room && room.ready && room.hasOlder && !room.loadingOlder) await room.loadOlder();
}
$('load-older').addEventListener('click', () => loadOlder());

async function joinRoom(id) {
  try {
    await app.conn.command(`/room/${id}/join`);
    await refreshRooms();
    openRoom(id);
  } catch (err) {
    toast(`Cannot join ${id}: ${err.message}`, 'error');
  }
}

$('room-leave').addEventListener('click', async () => {
  const id = app.active;
  if (!id || !confirm(`Leave ${roomTitle(app.rooms.get(id) || { room: id }, app.me)}?`)) return;
  try {
    await app.conn.command(`/room/${id}/leave`);
  } catch (err) {
    toast(err.message, 'error');
  }
});

// ---- forms --------------------------------------------------------------------------------

async function createRoom(headers) {
  const { end } = await app.conn.query('/rooms/create', headers);
  let id = end.headers['x-room'];
  try { id = JSON.parse(end.body || '{}').room || id; } catch { /* headers suffice */ }
  await refreshRooms();
  openRoom(id);
  return id;
}

$('create-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const headers = { 'x-name': $('create-name').value.trim() };
  if ($('create-public').checked) headers['x-public'] = 'true';
  const invite = $('create-invite').value.split(/[\s,]+/).filter(Boolean).join(',');
  if (invite) headers['x-invite'] = invite;
  try {
    await createRoom(headers);
    e.target.reset();
    $('new-room').open = false;
  } catch (err) {
    toast(`Cannot create the room: ${err.message}`, 'error');
  }
});

$('direct-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await createRoom({ 'x-kind': 'direct', 'x-with': $('direct-user').value.trim() });
    e.target.reset();
    $('new-direct').open = false;
  } catch (err) {
    toast(`Cannot open the chat: ${err.message}`, 'error');
  }
});

$('join-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const id = $('join-id').value.trim();
  await joinRoom(id);
  if (app.active === id) {
    e.target.reset();
    $('join-room').open = false;
  }
});

// The composer: text and, optionally, one attachment given as a link with its metadata.
$('attach-toggle').addEventListener('click', () => {
  $('attach-panel').hidden = !$('attach-panel').hidden;
  if (!$('attach-panel').hidden) $('attach-url').focus();
});
$('attach-url').addEventListener('change', () => {
  const url = $('attach-url').value.trim();
  if (!$('attach-name').value) $('attach-name').value = fileName(url);
  if (!$('attach-type').value) $('attach-type').value = guessType(url);
});
$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const room = app.opened.get(app.active);
  if (!room) return;
  const text = $('composer-text').value.trim();
  const body = { text };
  const url = $('attach-url').value.trim();
  if (!$('attach-panel').hidden && url) {
    const size = Number($('attach-size').value);
    body.attachments = [{
      url,
      name: $('attach-name').value.trim() || fileName(url),
      type: $('attach-type').value.trim() || guessType(url),
      ...(Number.isFinite(size) && size > 0 ? { size } : {}),
    }];
  }
  if (!text && !body.attachments) return;
  // Replying at the bottom of the room: everything in it has been seen.
  if (app.view.atBottom()) room.markRead(room.cursor);
  room.post(body);
  app.view.forceBottom = true;
  $('composer').reset();
  $('attach-panel').hidden = true;
  app.extras.stopTyping();
});
$('composer-text').addEventListener('input', () => app.extras?.typing());
