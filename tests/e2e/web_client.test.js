// roomcast end-to-end test: two Chromium pages on two server instances (one Redis), one room, a restart;
// with ROOMCAST_E2E_AUTH=1 the servers require tokens, the pages carry them, and one user is disconnected.
// Rule: it starts and stops everything it uses itself, on free loopback ports, and downloads nothing.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (_) {
  throw new Error('playwright-core is not installed: run `npm ci` in tests/e2e first');
}

const HERE = __dirname;
const STANDALONE = process.env.ROOMCAST_E2E_STANDALONE === '1';
const HISTORY = process.env.ROOMCAST_E2E_HISTORY === '1';
const AUTH = process.env.ROOMCAST_E2E_AUTH === '1';
const JWT_SECRET = crypto.randomBytes(24).toString('base64');  // used only when AUTH
const API_KEY = crypto.randomBytes(24).toString('base64');
const BIN = path.resolve(process.env.ROOMCAST_BIN || path.join(HERE, '../../build/server/roomcast'));
const STATIC = path.resolve(process.env.ROOMCAST_STATIC || path.join(HERE, '../../client-web'));
const OUT = path.resolve(process.env.ROOMCAST_E2E_OUT || path.join(HERE, 'out'));
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const READY_MS = 30000;   // a server or Redis must be ready within this
const WAIT_MS = 20000;    // any single wait for something on a page
const STOP_MS = 8000;     // SIGTERM grace before SIGKILL (the contract says 5 s)

// ---------- processes ----------

const children = new Set(); // every live child, killed hard if the runner itself exits early
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch (_) { /* gone */ } } });

// A child process whose output goes to a log file under OUT/logs.
class Proc {
  constructor(name, cmd, args) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.logPath = path.join(OUT, 'logs', `${name}.log`);
    this.child = null;
    this.exit = null;     // {code, signal} once it exited
    this.exited = null;   // promise of that
  }

  start() {
    fs.mkdirSync(path.dirname(this.logPath), { recursive: true });
    const fd = fs.openSync(this.logPath, 'a');
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} ${this.cmd} ${this.args.join(' ')}\n`);
    this.exit = null;
    const child = spawn(this.cmd, this.args, { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.child = child;
    children.add(child);
    this.exited = new Promise((resolve) => {
      child.on('error', (err) => { this.exit = { code: null, signal: null, error: err.message }; children.delete(child); resolve(this.exit); });
      child.on('exit', (code, signal) => { this.exit = { code, signal }; children.delete(child); resolve(this.exit); });
    });
    return this;
  }

  // SIGTERM, then SIGKILL after STOP_MS; resolves to {code, signal, killed}.
  async stop() {
    if (!this.child || this.exit) return { ...this.exit, killed: false };
    this.child.kill('SIGTERM');
    const timer = new Promise((r) => setTimeout(r, STOP_MS, 'timeout'));
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
      return { ...this.exit, killed: true };
    }
    return { ...this.exit, killed: false };
  }

  tail(lines = 40) {
    try { return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n'); } catch (_) { return ''; }
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function httpGetJson(port, urlPath) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(body); } catch (_) { /* not JSON */ }
        resolve({ status: res.statusCode, json, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, json: null, body: err.message }));
  });
}

function httpPostJson(port, urlPath, headers, obj) {
  return new Promise((resolve) => {
    const body = JSON.stringify(obj);
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'POST', timeout: 2000,
      headers: { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
        resolve({ status: res.statusCode, json, body: text });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, json: null, body: err.message }));
    req.end(body);
  });
}

// A token from the server's own `roomcast token` (AUTH only).
function mintToken(sub, name, ttl = '1h') {
  return execFileSync(BIN, ['token', '--secret', JWT_SECRET, '--sub', sub, '--name', name, '--ttl', ttl],
    { encoding: 'utf8' }).trim();
}

function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    s.setTimeout(1000, () => { s.destroy(); resolve(false); });
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => { got += d; if (got.includes('\r\n')) { s.destroy(); resolve(got.startsWith('+PONG')); } });
    s.on('error', () => resolve(false));
  });
}

async function waitUntil(what, proc, probe) {
  const deadline = Date.now() + READY_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exit) throw new Error(`${proc.name} exited (${JSON.stringify(proc.exit)}) while waiting for ${what}\n${proc.tail()}`);
    const r = await probe();
    if (r === true) return;
    last = r || last;
    await sleep(150);
  }
  throw new Error(`${proc.name}: no ${what} within ${READY_MS} ms (last: ${last})\n${proc.tail()}`);
}

function roomcast(name, port, redisUrl) {
  const args = ['--host', '127.0.0.1', '--port', String(port), '--static', STATIC];
  if (redisUrl) args.push('--redis', redisUrl);
  // No clock leeway, so that a short token's expiry (4001) comes within the test's time.
  if (AUTH) args.push('--jwt-secret', JWT_SECRET, '--api-key', API_KEY, '--jwt-leeway', '0');
  args.push('--log-level', 'info');
  const proc = new Proc(name, BIN, args);
  proc.port = port;
  proc.base = `http://127.0.0.1:${port}`;
  proc.ready = () => waitUntil('healthy /healthz', proc, async () => {
    const r = await httpGetJson(port, '/healthz');
    if (r.status === 200 && (!redisUrl || (r.json && r.json.redis === 'up'))) return true;
    return `HTTP ${r.status} ${r.body.slice(0, 200)}`;
  });
  return proc;
}

// ---------- pages ----------

const dialogs = [];    // every dialog any page opened (there must be none)
const pageErrors = []; // uncaught exceptions in the pages

async function openBrowser(name) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `roomcast-e2e-${name}-`));
  const ctx = await chromium.launchPersistentContext(dataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 720 },
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('dialog', (d) => { dialogs.push(`${name}: ${d.type()} ${d.message()}`); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => { pageErrors.push(`${name}: ${e.message}`); });
  return { name, ctx, page, dataDir };
}

const sel = {
  conn: (state) => `[data-testid="conn-status"][data-state="${state}"]`,
  list: (room) => `[data-testid="messages"][data-room="${room}"]`,
  members: (room) => `[data-testid="members"][data-room="${room}"]`,
};

const waitConn = (page, state) => page.waitForSelector(sel.conn(state), { state: 'attached' });

// Waits until the room's list shows a message with exactly this text; returns its element data.
async function waitMessage(page, room, text) {
  await page.waitForFunction(([list, t]) => Array.from(document.querySelectorAll(`${list} [data-testid="message-text"]`))
    .some((e) => e.textContent === t), [sel.list(room), text]);
  return page.$eval(sel.list(room), (list, t) => {
    const m = Array.from(list.querySelectorAll('[data-testid="message"]'))
      .find((e) => e.querySelector('[data-testid="message-text"]').textContent === t);
    return {
      id: m.dataset.id,
      own: m.dataset.own,
      sender: m.querySelector('[data-testid="message-sender"]').textContent,
    };
  }, text);
}

function messages(page, room) {
  return page.$$eval(`${sel.list(room)} [data-testid="message"]`, (els) => els.map((e) => ({
    id: e.dataset.id,
    text: e.querySelector('[data-testid="message-text"]').textContent,
  })));
}

async function waitMember(page, room, name) {
  await page.waitForFunction(([list, n]) => Array.from(document.querySelectorAll(`${list} [data-testid="member"]`))
    .some((e) => e.textContent.replace(/ \(you\)$/, '') === n), [sel.members(room), name]);
}

// Without authentication the page names itself; with it, the identity comes from the page's token and
// is shown instead of the name form.
async function setName(page, name) {
  if (AUTH) {
    await page.waitForSelector('[data-testid="whoami"]:not([hidden])');
    assert.equal(await page.textContent('[data-testid="whoami-name"]'), name, 'the identity shown is the token\'s');
    assert.equal(await page.isHidden('[data-testid="name-form"]'), true, 'no name form with a token');
    return;
  }
  await page.fill('[data-testid="name-input"]', name);
  await page.click('[data-testid="name-save"]');
  await waitConn(page, 'connected');
}

// The page's address: with AUTH, the page's token rides along in ?token=.
function pageUrl(base, who, params = {}) {
  const q = new URLSearchParams(params);
  if (AUTH) q.set('token', env.tokens[who]);
  const qs = q.toString();
  return `${base}/${qs ? `?${qs}` : ''}`;
}

async function sendByEnter(page, text) {
  await page.fill('[data-testid="composer"]', text);
  await page.press('[data-testid="composer"]', 'Enter');
  await page.waitForFunction(() => document.querySelector('[data-testid="composer"]').value === '');
}

// The instance a server names itself by (--instance-id; host:pid by default), from its /healthz.
async function instanceOf(proc) {
  const r = await httpGetJson(proc.port, '/healthz');
  assert.ok(r.json && typeof r.json.instance === 'string' && r.json.instance, `/healthz names no instance: ${r.body}`);
  assert.equal(r.json.instance, `${os.hostname()}:${proc.child.pid}`, 'the default --instance-id is host:pid');
  return r.json.instance;
}

// Waits until the connection indicator's tooltip (title) is exactly `title`.
async function waitTooltip(page, title) {
  try {
    await page.waitForFunction((t) => document.querySelector('[data-testid="conn-status"]').title === t, title);
  } catch (err) {
    const got = await page.getAttribute('[data-testid="conn-status"]', 'title');
    throw new Error(`the connection tooltip is ${JSON.stringify(got)}, expected ${JSON.stringify(title)}`);
  }
}

// Whether the message box's placeholder is shown whole: the box's text, set to the placeholder, must
// fit in it without scrolling either way, and the box must lie within the viewport.
function placeholderFit(page) {
  return page.evaluate(async () => {
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));  // let resize handlers run
    const box = document.querySelector('[data-testid="composer"]');
    const rect = box.getBoundingClientRect();
    const saved = box.value;
    box.value = box.placeholder;
    const m = {
      placeholder: box.placeholder,
      scrollWidth: box.scrollWidth, clientWidth: box.clientWidth,
      scrollHeight: box.scrollHeight, clientHeight: box.clientHeight,
      left: rect.left, right: rect.right, viewport: window.innerWidth,
    };
    box.value = saved;
    m.fits = m.placeholder.trim() !== '' && m.scrollWidth <= m.clientWidth && m.scrollHeight <= m.clientHeight
      && m.left >= 0 && m.right <= m.viewport;
    return m;
  });
}

function assertNoDuplicates(list, who) {
  const ids = list.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${who} shows a chat id twice: ${JSON.stringify(list)}`);
}

// ---------- the scenario ----------

const env = {
  redis: null,     // Proc
  redisTmp: null,  // scratch folder of Redis
  s1: null,        // instance of page A
  s2: null,        // instance of page B (the same as s1 in standalone mode)
  a: null,         // {page, ctx, dataDir}
  b: null,
  room: null,      // the room code page A created
  tokens: {},      // AUTH: page name -> token
};

let broken = null; // first failed step: the ones after it are skipped, not failed again
function step(name, fn) {
  test(name, { timeout: 90000 }, async (t) => {
    if (broken) { t.skip(`"${broken}" failed`); return; }
    try { await fn(t); } catch (err) { broken = name; throw err; }
  });
}

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  fs.rmSync(path.join(OUT, 'logs'), { recursive: true, force: true });
  assert.ok(fs.existsSync(BIN), `server binary ${BIN} not found: build it or set ROOMCAST_BIN`);
  assert.ok(fs.existsSync(path.join(STATIC, 'index.html')), `no index.html in ${STATIC} (ROOMCAST_STATIC)`);
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found (apt-get install chromium)`);

  let redisUrl = null;
  if (!STANDALONE) {
    const port = await freePort();
    env.redisTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-e2e-redis-'));
    env.redis = new Proc('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', env.redisTmp]).start();
    await waitUntil('PONG', env.redis, () => redisPing(port));
    redisUrl = `redis://127.0.0.1:${port}`;
  }
  env.s1 = roomcast('roomcast-1', await freePort(), redisUrl);
  env.s2 = STANDALONE ? env.s1 : roomcast('roomcast-2', await freePort(), redisUrl);
  env.s1.start();
  if (env.s2 !== env.s1) env.s2.start();
  await Promise.all([env.s1.ready(), env.s2.ready()]);

  if (AUTH) env.tokens = { a: mintToken('alice', 'Alice'), b: mintToken('bob', 'Bob') };
  [env.a, env.b] = await Promise.all([openBrowser('a'), openBrowser('b')]);
});

after(async () => {
  for (const p of [env.a, env.b]) {
    if (!p) continue;
    await p.page.screenshot({ path: path.join(OUT, `page-${p.name}.png`), fullPage: true }).catch(() => {});
  }
  // Extra views for people: page A in dark mode, page B at phone width.
  if (env.a && env.room) {
    await env.a.page.emulateMedia({ colorScheme: 'dark' }).catch(() => {});
    await env.a.page.screenshot({ path: path.join(OUT, 'page-a-dark.png') }).catch(() => {});
  }
  if (env.b && env.room) {
    await env.b.page.setViewportSize({ width: 390, height: 800 }).catch(() => {});
    await env.b.page.screenshot({ path: path.join(OUT, 'page-b-phone.png') }).catch(() => {});
  }
  for (const p of [env.a, env.b]) {
    if (!p) continue;
    await p.ctx.close().catch(() => {});
    fs.rmSync(p.dataDir, { recursive: true, force: true });
  }
  const servers = [env.s1, env.s2 !== env.s1 ? env.s2 : null, env.redis].filter(Boolean);
  await Promise.all(servers.map((p) => p.stop()));
  if (broken) {
    for (const p of servers) process.stderr.write(`\n--- last lines of ${p.logPath} ---\n${p.tail()}\n`);
  }
  if (env.redisTmp) fs.rmSync(env.redisTmp, { recursive: true, force: true });
});

step('page A sets a name and creates a room', async () => {
  const { page } = env.a;
  await page.goto(pageUrl(env.s1.base, 'a'));
  await waitConn(page, 'connected');
  await setName(page, 'Alice');

  await page.click('[data-testid="create-room"]');
  await page.waitForSelector('[data-testid="room-view"]:not([hidden])');
  await page.waitForFunction(() => /\S/.test(document.querySelector('[data-testid="room-code"]').textContent));
  const code = (await page.textContent('[data-testid="room-code"]')).trim();
  assert.match(code, /^[a-z2-7]{10}$/, 'a generated room id is 10 base32 characters');
  env.room = code;

  const link = await page.inputValue('[data-testid="share-link"]');
  assert.equal(link, `${env.s1.base}/?room=${code}`);
  assert.equal(new URL(page.url()).searchParams.get('room'), code, 'the address bar names the room');
  await page.waitForSelector(`[data-testid="room-tab"][data-room="${code}"][data-status="joined"]`, { state: 'attached' });
  await waitMember(page, code, 'Alice');

  // Sent before B joins: B sees it through `history`, once the server keeps history.
  await sendByEnter(page, 'sent before Bob came');
  const m = await waitMessage(page, code, 'sent before Bob came');
  assert.equal(m.own, 'true');
  assert.equal(m.sender, 'Alice');
});

step('page B opens the share link on the other instance', async () => {
  const { page } = env.b;
  const room = env.room;
  await page.goto(pageUrl(env.s2.base, 'b'));
  await waitConn(page, 'connected');
  await setName(page, 'Bob');

  await page.goto(pageUrl(env.s2.base, 'b', { room }));
  await waitConn(page, 'connected');
  await page.waitForSelector(`[data-testid="room-view"][data-room="${room}"]:not([hidden])`);
  assert.equal((await page.textContent('[data-testid="room-code"]')).trim(), room);
  await page.waitForSelector(`[data-testid="room-tab"][data-room="${room}"][data-status="joined"]`, { state: 'attached' });

  // Presence: both see both; A is told that Bob joined.
  await waitMember(page, room, 'Alice');
  await waitMember(page, room, 'Bob');
  await waitMember(env.a.page, room, 'Bob');
  await env.a.page.waitForFunction((list) => Array.from(document.querySelectorAll(`${list} [data-testid="notice"]`))
    .some((e) => e.textContent.includes('Bob joined')), sel.list(room));

  if (HISTORY) {
    const m = await waitMessage(page, room, 'sent before Bob came');
    assert.equal(m.sender, 'Alice');
    assert.equal(m.own, 'false');
  }
});

step('the connection indicator\'s tooltip names the server instance', async () => {
  // Each page is connected to its own instance (one and the same in standalone mode).
  env.instance1 = await instanceOf(env.s1);
  env.instance2 = await instanceOf(env.s2);
  if (!STANDALONE) assert.notEqual(env.instance1, env.instance2);
  await waitTooltip(env.a.page, `Connected to server instance ${env.instance1}`);
  await waitTooltip(env.b.page, `Connected to server instance ${env.instance2}`);
  assert.equal(await env.b.page.getAttribute('[data-testid="conn-status"]', 'data-instance'), env.instance2);
});

step('messages go both ways', async () => {
  const room = env.room;
  const a = env.a.page;
  const b = env.b.page;

  await sendByEnter(b, 'hello from Bob');
  let m = await waitMessage(a, room, 'hello from Bob');
  assert.deepEqual([m.sender, m.own], ['Bob', 'false']);
  m = await waitMessage(b, room, 'hello from Bob');
  assert.deepEqual([m.sender, m.own], ['Bob', 'true']);

  // The Send button, and the byte counter counting UTF-8 bytes.
  await a.fill('[data-testid="composer"]', 'hello from Alice ✓');
  assert.equal(await a.textContent('[data-testid="byte-count"]'), '20 / 16384 bytes');
  await a.click('[data-testid="send"]');
  m = await waitMessage(b, room, 'hello from Alice ✓');
  assert.deepEqual([m.sender, m.own], ['Alice', 'false']);
  await waitMessage(a, room, 'hello from Alice ✓');

  // Shift+Enter is a new line, Enter sends.
  await b.click('[data-testid="composer"]');
  await b.keyboard.type('line one');
  await b.keyboard.press('Shift+Enter');
  await b.keyboard.type('line two');
  await b.keyboard.press('Enter');
  await waitMessage(a, room, 'line one\nline two');
});

step('markup in a message stays text', async () => {
  const room = env.room;
  const evil = '<img src=x onerror=alert(1)>';
  await sendByEnter(env.a.page, evil);
  for (const p of [env.a.page, env.b.page]) {
    await waitMessage(p, room, evil);
  }
  await sleep(500); // give a would-be onerror time to fire
  for (const p of [env.a.page, env.b.page]) {
    assert.equal(await p.locator('img').count(), 0, 'no <img> element was created');
  }
  assert.deepEqual(dialogs, [], 'no dialog was opened');
});

step('page B reconnects after its instance restarts, without gaps or duplicates', async () => {
  const room = env.room;
  const a = env.a.page;
  const b = env.b.page;

  // Record every state of B's indicator from now on.
  await b.evaluate(() => {
    const ind = document.querySelector('[data-testid="conn-status"]');
    window.__connStates = [ind.dataset.state];
    new MutationObserver(() => window.__connStates.push(ind.dataset.state))
      .observe(ind, { attributes: true, attributeFilter: ['data-state'] });
  });

  const stopped = await env.s2.stop();
  assert.deepEqual(stopped, { code: 0, signal: null, killed: false }, 'SIGTERM ends the server with exit code 0 within the grace time');
  await waitConn(b, 'reconnecting');

  if (!STANDALONE) {
    // A's instance is still up: this one is sent while B is away.
    await waitConn(a, 'connected');
    await sendByEnter(a, 'sent while Bob was away');
    await waitMessage(a, room, 'sent while Bob was away');
  }

  env.s2.start();
  await env.s2.ready();
  await waitConn(b, 'connected');
  if (STANDALONE) await waitConn(a, 'connected');
  const states = await b.evaluate(() => window.__connStates);
  assert.ok(states.includes('reconnecting'), `states seen: ${states}`);
  assert.equal(states[states.length - 1], 'connected', `states seen: ${states}`);
  await b.waitForSelector(`[data-testid="room-tab"][data-room="${room}"][data-status="joined"]`, { state: 'attached' });
  await a.waitForSelector(`[data-testid="room-tab"][data-room="${room}"][data-status="joined"]`, { state: 'attached' });

  if (HISTORY && !STANDALONE) await waitMessage(b, room, 'sent while Bob was away');

  await sendByEnter(a, 'sent after the restart');
  const m = await waitMessage(b, room, 'sent after the restart');
  assert.equal(m.sender, 'Alice');
  await sendByEnter(b, 'Bob is back');
  await waitMessage(a, room, 'Bob is back');
  await waitMember(a, room, 'Bob');
  await waitMember(b, room, 'Alice');

  await sleep(500); // anything late and doubled would show up now
  const seenB = await messages(b, room);
  const seenA = await messages(a, room);
  assertNoDuplicates(seenB, 'page B');
  assertNoDuplicates(seenA, 'page A');

  // B's tooltip now names the restarted process (a new pid, so a new default instance id).
  const restarted = await instanceOf(env.s2);
  assert.notEqual(restarted, env.instance2, 'a restarted instance has a new pid');
  env.instance2 = restarted;
  await waitTooltip(b, `Connected to server instance ${restarted}`);
  for (const text of ['hello from Bob', 'hello from Alice ✓', 'sent after the restart', 'Bob is back']) {
    assert.equal(seenB.filter((x) => x.text === text).length, 1, `page B shows "${text}" once: ${JSON.stringify(seenB)}`);
  }
  if (HISTORY && !STANDALONE) {
    assert.equal(seenB.filter((x) => x.text === 'sent while Bob was away').length, 1);
  }
  assert.deepEqual(pageErrors, [], 'no uncaught exception in the pages');
});

step('on a phone the message box shows its placeholder whole', async () => {
  const { page } = env.b;
  await page.waitForSelector('[data-testid="room-view"]:not([hidden])');
  const desktop = await placeholderFit(page);
  assert.ok(desktop.fits, `desktop: ${JSON.stringify(desktop)}`);
  try {
    for (const viewport of [{ width: 360, height: 640 }, { width: 320, height: 568 }]) {
      await page.setViewportSize(viewport);
      const m = await placeholderFit(page);
      assert.ok(m.fits, `the placeholder is cut off at ${viewport.width}x${viewport.height}: ${JSON.stringify(m)}`);
      assert.match(m.placeholder, /message/i, 'the placeholder still says what the box is for');
    }
  } finally {
    await page.setViewportSize({ width: 1100, height: 720 });
  }
  // Back at desktop width, the full hint (with the keys) returns.
  const back = await placeholderFit(page);
  assert.ok(back.fits, JSON.stringify(back));
  assert.equal(back.placeholder, desktop.placeholder);
  assert.match(back.placeholder, /Shift\+Enter/);
});

if (!AUTH) {
  step('a name typed but not saved is used to create and to join a room', async () => {
    const a = env.a.page;
    const b = env.b.page;
    // B types a new name, does not press Save, and creates a room.
    await b.fill('[data-testid="name-input"]', 'Robert');
    await b.click('[data-testid="create-room"]');
    await b.waitForFunction((old) => {
      const code = document.querySelector('[data-testid="room-view"]:not([hidden]) [data-testid="room-code"]');
      return code && /^[a-z2-7]{10}$/.test(code.textContent.trim()) && code.textContent.trim() !== old;
    }, env.room);
    const room = (await b.textContent('[data-testid="room-code"]')).trim();
    await b.waitForSelector(`[data-testid="room-tab"][data-room="${room}"][data-status="joined"]`, { state: 'attached' });
    await waitConn(b, 'connected');
    assert.equal(await b.$eval(`${sel.members(room)} li.me`, (e) => e.firstChild.textContent), 'Robert',
      'the creator is the typed name');
    await waitMember(b, room, 'Robert');
    await sendByEnter(b, 'Robert here');
    const m = await waitMessage(b, room, 'Robert here');
    assert.deepEqual([m.sender, m.own], ['Robert', 'true']);
    assert.equal(await b.inputValue('[data-testid="name-input"]'), 'Robert');

    // A types a new name, does not press Save, and joins B's room with its code.
    await a.fill('[data-testid="name-input"]', 'Alicia');
    await a.fill('[data-testid="join-code"]', room);
    await a.click('[data-testid="join-button"]');
    await a.waitForSelector(`[data-testid="room-tab"][data-room="${room}"][data-status="joined"]`, { state: 'attached' });
    assert.equal(await a.$eval(`${sel.members(room)} li.me`, (e) => e.firstChild.textContent), 'Alicia',
      'the joiner is the typed name');
    await waitMember(a, room, 'Alicia');
    await waitMember(a, room, 'Robert');
    await waitMember(b, room, 'Alicia');
    await b.waitForFunction((list) => Array.from(document.querySelectorAll(`${list} [data-testid="notice"]`))
      .some((e) => e.textContent.includes('Alicia joined')), sel.list(room));
    await sendByEnter(a, 'Alicia here');
    const seen = await waitMessage(b, room, 'Alicia here');
    assert.deepEqual([seen.sender, seen.own], ['Alicia', 'false']);
    // The name sticks: it is the one a reload starts with.
    assert.equal(await a.evaluate(() => localStorage.getItem('roomcast.name')), 'Alicia');
    // The earlier room was re-joined on the new connection.
    await a.waitForSelector(`[data-testid="room-tab"][data-room="${env.room}"][data-status="joined"]`, { state: 'attached' });
    assert.deepEqual(pageErrors, [], 'no uncaught exception in the pages');
  });
}

if (AUTH) {
  step('the server disconnects Bob (4003): page B says so and does not reconnect', async () => {
    const room = env.room;
    const a = env.a.page;
    const b = env.b.page;
    await b.evaluate(() => {
      window.__sockets = 0;
      const Native = window.WebSocket;
      // Count the sockets the page opens from now on (the page's own code is untouched).
      window.WebSocket = class extends Native { constructor(...args) { super(...args); window.__sockets++; } };
    });
    const r = await httpPostJson(env.s1.port, '/api/disconnect', { 'X-API-Key': API_KEY }, { userId: 'bob' });
    assert.deepEqual([r.status, r.json], [200, { ok: true }], r.body);
    await waitConn(b, 'closed');
    assert.match(await b.textContent('[data-testid="conn-text"]'), /disconnected by the server/i);
    await b.waitForSelector('[data-testid="global-error"]:not([hidden])');
    assert.match(await b.textContent('[data-testid="global-error-text"]'), /disconnected by the server/i);
    await a.waitForFunction((list) => !Array.from(document.querySelectorAll(`${list} [data-testid="member"]`))
      .some((e) => e.textContent.replace(/ \(you\)$/, '') === 'Bob'), sel.members(room));

    await sleep(3000); // longer than the first backoff delays: a reconnect would have happened by now
    assert.equal(await b.getAttribute('[data-testid="conn-status"]', 'data-state'), 'closed');
    assert.equal(await b.evaluate(() => window.__sockets), 0, 'page B opened no new WebSocket');
    await waitConn(a, 'connected');
    await sendByEnter(a, 'Bob is gone');
    await waitMessage(a, room, 'Bob is gone');
    assert.deepEqual(pageErrors, [], 'no uncaught exception in the pages');
  });
}

if (AUTH) {
  step('a token that expires (4001): the page says so and does not reconnect', async () => {
    const room = env.room;
    const b = env.b.page;
    env.tokens.b = mintToken('bob', 'Bob', '5s');
    await b.goto(pageUrl(env.s2.base, 'b', { room }));
    await waitConn(b, 'connected');
    await b.waitForSelector(`[data-testid="room-tab"][data-room="${room}"][data-status="joined"]`, { state: 'attached' });
    await b.evaluate(() => {
      window.__sockets = 0;
      const Native = window.WebSocket;
      window.WebSocket = class extends Native { constructor(...args) { super(...args); window.__sockets++; } };
    });
    await b.waitForSelector(sel.conn('closed'), { state: 'attached', timeout: 15000 });
    assert.match(await b.textContent('[data-testid="conn-text"]'), /expired/i);
    assert.match(await b.textContent('[data-testid="global-error-text"]'), /token has expired/i);
    await sleep(3000);
    assert.equal(await b.getAttribute('[data-testid="conn-status"]', 'data-state'), 'closed');
    assert.equal(await b.evaluate(() => window.__sockets), 0, 'page B opened no new WebSocket');

    // Opened again with the expired token, the page says so at once and does not try.
    await b.reload();
    await waitConn(b, 'closed');
    assert.match(await b.textContent('[data-testid="global-error-text"]'), /token has expired/i);
    assert.deepEqual(pageErrors, [], 'no uncaught exception in the pages');
  });
}
