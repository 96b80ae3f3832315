// roomcast web client: one WebSocket, several rooms, reconnect with backoff and gap-free re-join.
// Rule: text from the network reaches the page only through textContent or attributes, never as HTML.
import { Connection } from './connection.js';

const MAX_BYTES = 16384;           // protocol limit on a chat message, in UTF-8 bytes
const ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/; // room ids and user ids (PROTOCOL.md section 2)
const CREATE_TIMEOUT_MS = 10000;   // no `created` by then: give the button back
const JOIN_RETRY_MS = 3000;        // a join refused for a passing reason is asked again after this
const MAX_ITEMS = 1000;            // messages and notices kept per room in the page
const LS_USER_ID = 'roomcast.userId';
const LS_NAME = 'roomcast.name';
const SS_ROOMS = 'roomcast.rooms';
const CLOSE_EXPIRED = 4001;        // the token expired (PROTOCOL.md section 8): get a new one first
const CLOSE_KICKED = 4003;         // disconnected by the server (section 9): do not reconnect on our own

// A token in the page's own URL (`?token=`, from the application that sent the user here) is the
// identity: it goes on the WebSocket upgrade and on every HTTP call, and the name cannot be changed.
const authToken = new URLSearchParams(location.search).get('token') || '';

// The token's `exp` (seconds), read without verifying (the server verifies); 0 when absent or unreadable.
function tokenExp(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part + '='.repeat((4 - part.length % 4) % 4)));
    return typeof claims.exp === 'number' ? claims.exp : 0;
  } catch (_) { return 0; }
}
const tokenExpired = () => { const exp = authToken ? tokenExp(authToken) : 0; return exp > 0 && exp * 1000 <= Date.now(); };

function authHeaders() {
  return authToken ? { Authorization: `Bearer ${authToken}` } : {};
}

// ---------- small helpers ----------

const $ = (sel, root = document) => root.querySelector(sel);
const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);
const encoder = new TextEncoder();
const utf8Length = (s) => encoder.encode(s).length;

function store(kind, key, value) {
  try { (kind === 'local' ? localStorage : sessionStorage).setItem(key, value); } catch (_) { /* storage off */ }
}
function load(kind, key) {
  try { return (kind === 'local' ? localStorage : sessionStorage).getItem(key); } catch (_) { return null; }
}

function randomToken(n) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

// Names: 1-64 characters, no control characters (PROTOCOL.md section 2).
function cleanName(raw) {
  const s = String(raw || '').replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').trim();
  return Array.from(s).slice(0, 64).join('');
}

// Chat ids compare by their dash-separated numeric parts, left to right (Redis stream ids).
function compareIds(a, b) {
  const pa = String(a).split('-');
  const pb = String(b).split('-');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i], y = pb[i];
    if (/^\d+$/.test(x) && /^\d+$/.test(y)) {
      const xs = x.replace(/^0+(?=\d)/, ''), ys = y.replace(/^0+(?=\d)/, '');
      if (xs.length !== ys.length) return xs.length < ys.length ? -1 : 1;
      if (xs !== ys) return xs < ys ? -1 : 1;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return pa.length - pb.length;
}

function userName(u) {
  return u && typeof u.name === 'string' && u.name ? u.name : (u && u.id) || 'someone';
}

function describeError(code, message) {
  switch (code) {
    case 'rate_limited': return 'You are sending too fast. Wait a moment and try again.';
    case 'too_large': return `That message is too long (the limit is ${MAX_BYTES} bytes).`;
    case 'unavailable': return 'The server cannot deliver messages right now. Try again in a moment.';
    case 'bad_room': return 'That is not a valid room code.';
    case 'not_member': return 'You are not in that room.';
    case 'unauthorized': return 'You are not allowed to do that.';
    default: return message ? `Server error (${code || 'unknown'}): ${message}` : `Server error (${code || 'unknown'}).`;
  }
}

// ---------- elements ----------

const el = {
  nameForm: byTestId('name-form'),
  whoami: byTestId('whoami'),
  whoamiName: byTestId('whoami-name'),
  nameInput: byTestId('name-input'),
  conn: byTestId('conn-status'),
  connText: byTestId('conn-text'),
  globalError: byTestId('global-error'),
  globalErrorText: byTestId('global-error-text'),
  globalErrorDismiss: byTestId('global-error-dismiss'),
  createBtn: byTestId('create-room'),
  joinForm: byTestId('join-form'),
  joinCode: byTestId('join-code'),
  joinError: byTestId('join-error'),
  roomList: byTestId('room-list'),
  roomListEmpty: byTestId('room-list-empty'),
  welcome: byTestId('welcome'),
  roomView: byTestId('room-view'),
  roomCode: byTestId('room-code'),
  shareLink: byTestId('share-link'),
  copyBtn: byTestId('copy-link'),
  copyStatus: byTestId('copy-status'),
  leaveBtn: byTestId('leave-room'),
  messagesWrap: byTestId('messages-wrap'),
  membersWrap: byTestId('members-wrap'),
  memberCount: byTestId('member-count'),
  composerForm: byTestId('composer-form'),
  composer: byTestId('composer'),
  sendBtn: byTestId('send'),
  byteCount: byTestId('byte-count'),
  composerError: byTestId('composer-error'),
  roomItemTpl: $('#tpl-room-item'),
};

// ---------- state ----------

// The identity we ask for in `hello`; the id is random once and kept.
let userId = load('local', LS_USER_ID);
if (!userId || !ID_RE.test(userId)) {
  userId = 'u-' + randomToken(16);
  store('local', LS_USER_ID, userId);
}
let userNameWanted = cleanName(load('local', LS_NAME));
if (!userNameWanted) {
  userNameWanted = 'guest-' + randomToken(4);
  store('local', LS_NAME, userNameWanted);
}

const state = {
  me: null,            // user confirmed by the server (`hello` reply or `joined.user`)
  rooms: new Map(),    // room id -> Room, in list order
  active: null,        // id of the room on screen, or null
  conn: 'connecting',  // connecting | connected | reconnecting
  instance: null,      // the server instance of the last `hello` reply (its --instance-id), for support
  createBusy: false,   // a create request is in flight
};

// Room: what the page knows about one joined room.
function makeRoom(id) {
  return {
    id,
    joined: false,       // a `joined` arrived on the current connection
    loaded: false,       // a `joined` arrived at least once (so later history is news)
    ids: new Set(),      // chat ids shown, to drop duplicates
    lastId: null,        // largest chat id seen: the `since` of a re-join
    members: new Map(),  // user id -> user
    unread: 0,           // chats that arrived while another room was on screen
    draft: '',           // composer text kept while another room is on screen
    listEl: null,        // <ol> of messages and notices
    membersEl: null,     // <ul> of members
    itemEl: null,        // <li> in the room list
  };
}

// ---------- connection ----------

let refSeq = 0;
const pending = new Map();  // ref -> {kind, roomId?, text?}: requests still waiting for their reply

function nextRef(kind) { return `${kind}-${++refSeq}`; }

const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws'
  + (authToken ? `?token=${encodeURIComponent(authToken)}` : '');

const conn = new Connection(wsUrl, {
  onOpen() {
    const ref = nextRef('hello');
    pending.set(ref, { kind: 'hello' });
    send({ type: 'hello', user: { id: userId, name: userNameWanted }, ref });
    for (const room of state.rooms.values()) sendJoin(room);
  },
  onFrame: handleFrame,
  onDown(code) {
    for (const room of state.rooms.values()) {
      room.joined = false;
      room.itemEl.dataset.status = 'joining';
    }
    let lostChat = null;
    for (const [ref, p] of pending) {
      if (p.kind === 'chat') lostChat = p;
      if (p.kind === 'create') finishCreate();
      pending.delete(ref);
    }
    if (lostChat) {
      showRoomError(lostChat.roomId,
        'The connection dropped before the server confirmed your last message; it may not have been sent.');
    }
    if (code === CLOSE_KICKED) {
      setConn('closed', 'Disconnected by the server');
      showGlobalError('You were disconnected by the server. Reload the page to connect again.');
    } else if (code === CLOSE_EXPIRED || tokenExpired()) {
      setConn('closed', 'Session expired');
      showGlobalError('Your session token has expired. Get a new link from the application that sent you here, then open it.');
    } else {
      setConn('reconnecting');
    }
  },
  mayRetry: (code) => code !== CLOSE_KICKED && code !== CLOSE_EXPIRED && !tokenExpired(),
  onRetry(delayMs) {
    const secs = Math.max(1, Math.round(delayMs / 1000));
    el.connText.textContent = navigator.onLine === false
      ? 'Offline. Waiting for the network…'
      : `Reconnecting in ${secs} s…`;
  },
});

const send = (obj) => conn.send(obj);
const isOpen = () => conn.isOpen();

// closed: the server ended the session for good (4001, 4003); `text` says why.
function setConn(s, text) {
  state.conn = s;
  el.conn.dataset.state = s;
  if (s === 'connected') el.connText.textContent = 'Connected';
  else if (s === 'connecting') el.connText.textContent = 'Connecting…';
  else if (s === 'closed') el.connText.textContent = text || 'Disconnected';
  else el.connText.textContent = 'Reconnecting…';
  el.composerForm.dataset.connected = String(s === 'connected');
  renderInstance();
}

// The tooltip of the connection indicator names the server instance (for support requests); while
// not connected it names the one last connected to.
function renderInstance() {
  if (!state.instance) {
    el.conn.removeAttribute('title');
    delete el.conn.dataset.instance;
    return;
  }
  el.conn.title = state.conn === 'connected'
    ? `Connected to server instance ${state.instance}`
    : `Last connected to server instance ${state.instance}`;
  el.conn.dataset.instance = state.instance;
}

function sendLeave(roomId) {
  const ref = nextRef('leave');
  pending.set(ref, { kind: 'leave', roomId });
  send({ type: 'leave', roomId, ref });
}

function sendJoin(room) {
  const msg = { type: 'join', roomId: room.id, ref: nextRef('join') };
  if (room.lastId !== null) msg.since = room.lastId;
  pending.set(msg.ref, { kind: 'join', roomId: room.id });
  send(msg);
}

// ---------- incoming ----------

function handleFrame(data) {
  let msg;
  try { msg = JSON.parse(data); } catch (_) { return; }
  if (!msg || typeof msg !== 'object') return;
  const ref = msg.ref === undefined || msg.ref === null ? null : String(msg.ref);
  switch (msg.type) {
    case 'hello':
      if (ref) pending.delete(ref);
      if (msg.user && typeof msg.user.id === 'string') state.me = msg.user;
      // roomcast names the instance that answered (docs/protocol.md, part 2); other servers may not.
      state.instance = typeof msg.instance === 'string' && msg.instance ? msg.instance : null;
      renderWhoami();
      conn.markGood();
      setConn('connected');
      rerenderOwnership();
      break;
    case 'created':
      if (ref) pending.delete(ref);
      finishCreate();
      if (typeof msg.roomId === 'string') openRoom(msg.roomId, { joinNow: false, focus: true });
      break;
    case 'joined':
      if (ref) pending.delete(ref);
      onJoined(msg);
      break;
    case 'presence': onPresence(msg); break;
    case 'chat': onChat(msg); break;
    case 'ack':
    case 'left':
      if (ref) pending.delete(ref);
      break;
    case 'error': onError(msg, ref); break;
    default: break; // pong and anything newer
  }
}

function onJoined(msg) {
  const room = state.rooms.get(msg.roomId);
  if (!room) {
    // We left while the join was in flight: the server thinks we are in; tell it otherwise.
    if (typeof msg.roomId === 'string') sendLeave(msg.roomId);
    return;
  }
  if (msg.user && typeof msg.user.id === 'string') {
    const changed = !state.me || state.me.id !== msg.user.id;
    state.me = msg.user;
    renderWhoami();
    if (changed) rerenderOwnership();
  }
  room.joined = true;
  room.members.clear();
  if (Array.isArray(msg.members)) {
    for (const u of msg.members) if (u && typeof u.id === 'string') room.members.set(u.id, u);
  }
  if (state.me) room.members.set(state.me.id, state.me);
  if (Array.isArray(msg.history)) for (const c of msg.history) addChat(room, c);
  if (msg.truncated === true) {
    addNotice(room, 'info', 'Some messages sent while you were away are no longer kept by the server.');
  }
  room.loaded = true;
  room.itemEl.dataset.status = 'joined';
  renderMembers(room);
  renderUnread(room);
}

function onPresence(msg) {
  const room = state.rooms.get(msg.roomId);
  if (!room || !msg.user || typeof msg.user.id !== 'string') return;
  const isMe = state.me && msg.user.id === state.me.id;
  if (msg.event === 'join') {
    room.members.set(msg.user.id, msg.user);
    if (!isMe) addNotice(room, 'join', `${userName(msg.user)} joined`);
  } else if (msg.event === 'leave') {
    if (!isMe) {
      room.members.delete(msg.user.id);
      addNotice(room, 'leave', `${userName(msg.user)} left`);
    }
  }
  renderMembers(room);
}

function onChat(msg) {
  const room = state.rooms.get(msg.roomId);
  if (room) addChat(room, msg);
}

function onError(msg, ref) {
  const p = ref ? pending.get(ref) : null;
  if (ref) pending.delete(ref);
  const text = describeError(msg.code, typeof msg.message === 'string' ? msg.message : '');
  if (!p) { showGlobalError(text); return; }
  switch (p.kind) {
    case 'chat':
      showRoomError(p.roomId, `Not sent: ${text}`);
      if (p.roomId === state.active && el.composer.value === '') {
        el.composer.value = p.text;
        updateByteCount();
      }
      break;
    case 'join': {
      const room = state.rooms.get(p.roomId);
      if (!room) break;
      if (msg.code === 'bad_room' || msg.code === 'unauthorized') {
        removeRoom(p.roomId);
        showJoinError(`Could not join “${p.roomId}”: ${text}`);
        break;
      }
      addNotice(room, 'error', `Could not join: ${text} Trying again shortly.`);
      // Passing trouble (broker down, rate limit): ask again on this same connection.
      setTimeout(() => {
        if (isOpen() && state.rooms.get(room.id) === room && !room.joined) sendJoin(room);
      }, JOIN_RETRY_MS);
      break;
    }
    case 'leave':
      break; // not_member after a restart: we are out, which is what was asked
    case 'create':
      finishCreate();
      showGlobalError(`Could not create a room: ${text}`);
      break;
    case 'hello':
      // The server answered, so the link works; it gave this connection a guest identity instead.
      showGlobalError(`The server did not accept your name: ${text}`);
      conn.markGood();
      setConn('connected');
      break;
    default:
      showGlobalError(text);
  }
}

// ---------- rendering: messages ----------

function timeEl(ts) {
  const t = document.createElement('time');
  const d = new Date(typeof ts === 'number' && Number.isFinite(ts) ? ts : Date.now());
  t.dateTime = d.toISOString();
  t.title = d.toLocaleString();
  t.textContent = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  t.dataset.testid = 'message-time';
  return t;
}

// Keeps the view pinned to the newest item only if the reader was already there.
function withStickyScroll(room, fn) {
  const list = room.listEl;
  const pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
  fn();
  if (pinned) list.scrollTop = list.scrollHeight;
}

function trimList(room) {
  while (room.listEl.childElementCount > MAX_ITEMS) room.listEl.firstElementChild.remove();
}

function addChat(room, c) {
  if (!c || typeof c.id !== 'string' || typeof c.message !== 'string') return;
  if (room.ids.has(c.id)) return;
  room.ids.add(c.id);
  const own = !!(state.me && c.user && c.user.id === state.me.id);

  const li = document.createElement('li');
  li.className = 'msg';
  li.dataset.testid = 'message';
  li.dataset.id = c.id;
  li.dataset.own = String(own);
  if (c.user && typeof c.user.id === 'string') li.dataset.userId = c.user.id;

  const meta = document.createElement('div');
  meta.className = 'msg-meta';
  const sender = document.createElement('span');
  sender.className = 'msg-sender';
  sender.dataset.testid = 'message-sender';
  sender.textContent = userName(c.user);
  const you = document.createElement('span');
  you.className = 'msg-you';
  you.textContent = ' (you)';
  meta.append(sender, you, ' ', timeEl(c.ts));

  const body = document.createElement('div');
  body.className = 'msg-text';
  body.dataset.testid = 'message-text';
  body.textContent = c.message;
  li.append(meta, body);

  withStickyScroll(room, () => {
    if (room.lastId === null || compareIds(c.id, room.lastId) > 0) {
      room.listEl.append(li);
      room.lastId = c.id;
    } else {
      // Older than something shown (rare): put it before the first later chat.
      const later = Array.from(room.listEl.querySelectorAll('li.msg'))
        .find((m) => compareIds(m.dataset.id, c.id) > 0);
      room.listEl.insertBefore(li, later || null);
    }
    trimList(room);
  });

  if (room.loaded && !own && room.id !== state.active) {
    room.unread++;
    renderUnread(room);
  }
}

function addNotice(room, kind, text) {
  const li = document.createElement('li');
  li.className = 'notice';
  li.dataset.testid = 'notice';
  li.dataset.kind = kind;
  const span = document.createElement('span');
  span.className = 'notice-text';
  span.textContent = text;
  li.append(span, ' ', timeEl(Date.now()));
  withStickyScroll(room, () => { room.listEl.append(li); trimList(room); });
}

// The server's idea of "me" may arrive after history was drawn.
function rerenderOwnership() {
  if (!state.me) return;
  for (const room of state.rooms.values()) {
    for (const m of room.listEl.querySelectorAll('li.msg')) {
      m.dataset.own = String(m.dataset.userId === state.me.id);
    }
    renderMembers(room);
  }
}

// ---------- rendering: members, rooms, unread ----------

function renderMembers(room) {
  const users = Array.from(room.members.values())
    .sort((a, b) => userName(a).localeCompare(userName(b)));
  const items = users.map((u) => {
    const li = document.createElement('li');
    li.dataset.testid = 'member';
    li.dataset.userId = u.id;
    li.textContent = userName(u);
    if (state.me && u.id === state.me.id) {
      li.classList.add('me');
      const you = document.createElement('span');
      you.className = 'muted';
      you.textContent = ' (you)';
      li.append(you);
    }
    return li;
  });
  room.membersEl.replaceChildren(...items);
  if (room.id === state.active) el.memberCount.textContent = `(${users.length})`;
}

function renderUnread(room) {
  const badge = byTestId('unread', room.itemEl);
  badge.hidden = room.unread === 0;
  badge.textContent = String(room.unread);
  const btn = byTestId('room-select', room.itemEl);
  if (room.unread) btn.setAttribute('aria-label', `${room.id}, ${room.unread} unread`);
  else btn.removeAttribute('aria-label');
  let total = 0;
  for (const r of state.rooms.values()) total += r.unread;
  document.title = total ? `(${total}) roomcast` : 'roomcast';
}

function shareUrl(id) {
  return `${location.origin}/?room=${encodeURIComponent(id)}`;
}

function saveRooms() {
  store('session', SS_ROOMS, JSON.stringify({ rooms: Array.from(state.rooms.keys()), active: state.active }));
}

// Adds a room to the page (if new), joins it when asked and possible, and optionally shows it.
function openRoom(id, { joinNow = true, focus = false } = {}) {
  let room = state.rooms.get(id);
  if (!room) {
    room = makeRoom(id);
    room.listEl = document.createElement('ol');
    room.listEl.className = 'messages';
    room.listEl.dataset.testid = 'messages';
    room.listEl.dataset.room = id;
    room.listEl.setAttribute('role', 'log');
    room.listEl.setAttribute('aria-label', `Messages in ${id}`);
    room.listEl.tabIndex = 0;
    room.listEl.hidden = true;
    el.messagesWrap.append(room.listEl);

    room.membersEl = document.createElement('ul');
    room.membersEl.className = 'member-list';
    room.membersEl.dataset.testid = 'members';
    room.membersEl.dataset.room = id;
    room.membersEl.hidden = true;
    el.membersWrap.append(room.membersEl);

    const frag = el.roomItemTpl.content.cloneNode(true);
    room.itemEl = frag.querySelector('li');
    room.itemEl.dataset.room = id;
    room.itemEl.dataset.status = 'joining';
    byTestId('room-item-code', room.itemEl).textContent = id;
    byTestId('room-select', room.itemEl).addEventListener('click', () => activate(id));
    el.roomList.append(room.itemEl);

    state.rooms.set(id, room);
    if (joinNow && isOpen()) sendJoin(room);
    el.roomListEmpty.hidden = true;
    saveRooms();
  }
  activate(id);
  if (focus) el.composer.focus();
  return room;
}

function activate(id) {
  const prev = state.active ? state.rooms.get(state.active) : null;
  if (prev && prev.id !== id) prev.draft = el.composer.value;
  const room = state.rooms.get(id);
  state.active = room ? id : null;
  for (const r of state.rooms.values()) {
    const on = r.id === state.active;
    r.listEl.hidden = !on;
    r.membersEl.hidden = !on;
    const btn = byTestId('room-select', r.itemEl);
    if (on) btn.setAttribute('aria-current', 'true'); else btn.removeAttribute('aria-current');
  }
  el.welcome.hidden = !!room;
  el.roomView.hidden = !room;
  hideComposerError();
  const url = new URL(location.href);
  if (room) {
    el.roomView.dataset.room = id;
    el.roomCode.textContent = id;
    el.shareLink.value = shareUrl(id);
    el.copyStatus.textContent = '';
    if (prev !== room) el.composer.value = room.draft;
    updateByteCount();
    room.unread = 0;
    renderUnread(room);
    renderMembers(room);
    room.listEl.scrollTop = room.listEl.scrollHeight;
    url.searchParams.set('room', id);
  } else {
    delete el.roomView.dataset.room;
    el.memberCount.textContent = '';
    url.searchParams.delete('room');
  }
  history.replaceState(null, '', url.pathname + url.search + url.hash);
  saveRooms();
}

function removeRoom(id) {
  const room = state.rooms.get(id);
  if (!room) return;
  const keys = Array.from(state.rooms.keys());
  const idx = keys.indexOf(id);
  room.listEl.remove();
  room.membersEl.remove();
  room.itemEl.remove();
  state.rooms.delete(id);
  renderUnread(room); // refresh the title total
  el.roomListEmpty.hidden = state.rooms.size > 0;
  if (state.active === id) {
    const rest = keys.filter((k) => k !== id);
    activate(rest.length ? rest[Math.min(idx, rest.length - 1)] : null);
  } else {
    saveRooms();
  }
}

// ---------- errors on screen ----------

function showGlobalError(text) {
  el.globalErrorText.textContent = text;
  el.globalError.hidden = false;
}

function showJoinError(text) {
  el.joinError.textContent = text;
  el.joinError.hidden = !text;
}

function showRoomError(roomId, text) {
  if (roomId === state.active) {
    el.composerError.textContent = text;
    el.composerError.hidden = false;
  } else {
    const room = state.rooms.get(roomId);
    if (room) addNotice(room, 'error', text);
  }
}

function hideComposerError() {
  el.composerError.textContent = '';
  el.composerError.hidden = true;
}

// ---------- the composer's placeholder ----------

// The longest hint that fits the message box as it is now (a phone's box is narrow): the full one
// from index.html, else shorter ones. Measured, so it also holds for large fonts and zoom.
const PLACEHOLDERS = [el.composer.placeholder, 'Write a message. Enter sends.', 'Write a message', 'Message'];
const placeholderProbe = document.createElement('div');
placeholderProbe.className = 'placeholder-probe';
placeholderProbe.setAttribute('aria-hidden', 'true');
document.body.append(placeholderProbe);

function placeholderFits(text, cs, width, height) {
  placeholderProbe.style.width = `${width}px`;
  for (const prop of ['fontFamily', 'fontSize', 'fontWeight', 'fontStyle', 'fontStretch', 'lineHeight', 'letterSpacing', 'wordSpacing']) {
    placeholderProbe.style[prop] = cs[prop];
  }
  placeholderProbe.textContent = text;
  return placeholderProbe.scrollHeight <= height + 0.5 && placeholderProbe.scrollWidth <= width + 0.5;
}

function fitPlaceholder() {
  const box = el.composer;
  if (box.clientWidth === 0) return; // not on screen (no room open): measured when it is
  const cs = getComputedStyle(box);
  const width = box.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const height = box.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom);
  const text = PLACEHOLDERS.find((t) => placeholderFits(t, cs, width, height)) || PLACEHOLDERS[PLACEHOLDERS.length - 1];
  if (box.placeholder !== text) box.placeholder = text;
}

// ---------- user actions ----------

function updateByteCount() {
  const n = utf8Length(el.composer.value);
  el.byteCount.textContent = `${n} / ${MAX_BYTES} bytes`;
  const over = n > MAX_BYTES;
  el.byteCount.classList.toggle('over', over);
  el.composer.setAttribute('aria-invalid', String(over));
  el.sendBtn.disabled = over;
  return n;
}

function sendChat() {
  const room = state.active ? state.rooms.get(state.active) : null;
  if (!room) return;
  const text = el.composer.value;
  if (text.trim() === '') return;
  const n = updateByteCount();
  if (n > MAX_BYTES) {
    showRoomError(room.id, `That message is ${n - MAX_BYTES} bytes over the limit of ${MAX_BYTES}.`);
    return;
  }
  if (!isOpen()) {
    showRoomError(room.id, 'Not connected, so the message was not sent. It is still in the box; send it again once connected.');
    return;
  }
  const ref = nextRef('chat');
  pending.set(ref, { kind: 'chat', roomId: room.id, text });
  send({ type: 'chat', roomId: room.id, message: text, ref });
  el.composer.value = '';
  room.draft = '';
  updateByteCount();
  hideComposerError();
}

function finishCreate() {
  state.createBusy = false;
  el.createBtn.disabled = false;
  el.createBtn.removeAttribute('aria-busy');
}

async function createRoom() {
  if (state.createBusy) return;
  applyTypedName();
  state.createBusy = true;
  el.createBtn.disabled = true;
  el.createBtn.setAttribute('aria-busy', 'true');
  if (isOpen()) {
    const ref = nextRef('create');
    pending.set(ref, { kind: 'create' });
    send({ type: 'create', ref });
    setTimeout(() => {
      if (!pending.has(ref)) return;
      pending.delete(ref);
      finishCreate();
      showGlobalError('The server did not answer the request for a new room. Try again.');
    }, CREATE_TIMEOUT_MS);
    return;
  }
  // Not connected yet: ask over HTTP; the join goes out when the socket opens.
  try {
    const res = await fetch('/create-room', { method: 'POST', headers: authHeaders() });
    const body = await res.json();
    if (res.status !== 201 || typeof body.roomId !== 'string') throw new Error(`HTTP ${res.status}`);
    openRoom(body.roomId, { focus: true });
  } catch (e) {
    showGlobalError(`Could not create a room (${e.message}).`);
  } finally {
    finishCreate();
  }
}

// Accepts a bare code or a pasted share link.
function parseRoomInput(raw) {
  const s = String(raw || '').trim();
  if (s.includes('room=')) {
    try { return (new URL(s, location.href).searchParams.get('room') || '').trim(); } catch (_) { /* fall through */ }
  }
  return s;
}

async function copyLink() {
  const link = el.shareLink.value;
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(link);
      ok = true;
    }
  } catch (_) { /* fall back below */ }
  if (!ok) {
    el.shareLink.focus();
    el.shareLink.select();
    try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
  }
  el.copyStatus.textContent = ok ? 'Link copied.' : 'Copy the link from the box by hand.';
}

// The name in the box counts even when Save was not pressed: creating or joining a room first takes
// it (a new identity needs a new connection, so the create or join then goes out on that one).
function applyTypedName() {
  if (authToken || el.nameForm.hidden) return;
  if (cleanName(el.nameInput.value) !== userNameWanted) saveName(el.nameInput.value);
}

function saveName(raw) {
  const name = cleanName(raw);
  if (!name) {
    el.nameInput.value = userNameWanted;
    return;
  }
  el.nameInput.value = name;
  if (name === userNameWanted && (!state.me || state.me.name === name)) return;
  userNameWanted = name;
  store('local', LS_NAME, name);
  // The server keeps the first identity of a connection, so a new name needs a new connection.
  conn.restart();
  setConn('connecting');
}

// With a token the server says who we are: show it instead of the name form.
function renderWhoami() {
  if (!authToken || !state.me) return;
  el.whoamiName.textContent = userName(state.me);
  el.whoami.title = `User id: ${state.me.id}`;
  el.whoami.dataset.userId = state.me.id;
  el.whoami.hidden = false;
}

// ---------- wiring ----------

el.nameInput.value = userNameWanted;
if (authToken) el.nameForm.hidden = true;
el.nameForm.addEventListener('submit', (e) => { e.preventDefault(); saveName(el.nameInput.value); });

el.globalErrorDismiss.addEventListener('click', () => { el.globalError.hidden = true; });
el.createBtn.addEventListener('click', createRoom);

el.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const id = parseRoomInput(el.joinCode.value);
  if (!ID_RE.test(id)) {
    showJoinError('A room code is 1 to 64 letters, digits, or _ - . :');
    el.joinCode.focus();
    return;
  }
  showJoinError('');
  el.joinCode.value = '';
  applyTypedName();
  openRoom(id, { focus: true });
});

el.copyBtn.addEventListener('click', copyLink);
el.leaveBtn.addEventListener('click', () => {
  const id = state.active;
  if (!id) return;
  if (isOpen()) sendLeave(id);
  removeRoom(id);
  (state.active ? byTestId('room-select', state.rooms.get(state.active).itemEl) : el.createBtn).focus();
});

el.composer.addEventListener('input', () => { updateByteCount(); });
// The box changes size with the window, the layout (phone or not) and by hand (resize: vertical).
if (typeof ResizeObserver === 'function') new ResizeObserver(fitPlaceholder).observe(el.composer);
window.addEventListener('resize', fitPlaceholder);
el.composer.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    sendChat();
  }
});
el.composerForm.addEventListener('submit', (e) => { e.preventDefault(); sendChat(); });

window.addEventListener('online', () => { if (conn.isWaiting()) conn.connect(); });

// Rooms open in this tab before a reload, then the room of the link.
try {
  const saved = JSON.parse(load('session', SS_ROOMS) || 'null');
  if (saved && Array.isArray(saved.rooms)) {
    for (const id of saved.rooms) if (typeof id === 'string' && ID_RE.test(id)) openRoom(id);
    if (typeof saved.active === 'string' && state.rooms.has(saved.active)) activate(saved.active);
  }
} catch (_) { /* ignore a damaged entry */ }
const linkRoom = new URLSearchParams(location.search).get('room');
if (linkRoom !== null) {
  if (ID_RE.test(linkRoom)) openRoom(linkRoom);
  else showJoinError('The room code in this link is not valid.');
}
if (!state.active) activate(null);
updateByteCount();
if (tokenExpired()) {
  setConn('closed', 'Session expired');
  showGlobalError('Your session token has expired. Get a new link from the application that sent you here, then open it.');
} else {
  setConn('connecting');
  conn.connect();
}

