// roomcast web client: the WebSocket link, kept up by reconnecting with capped exponential backoff and jitter.
// Rule: one live socket at a time; a replaced socket's events are ignored, so nothing is handled twice.

const BACKOFF_BASE_MS = 500;       // first reconnect delay, before jitter
const BACKOFF_CAP_MS = 10000;      // longest reconnect delay
const CONNECT_TIMEOUT_MS = 10000;  // a socket not open by then is abandoned
const PING_EVERY_MS = 20000;       // application ping, to notice a link that died silently
const PONG_WITHIN_MS = 10000;      // no frame at all this long after a ping: the link is dead

// Delay before reconnect attempt number `attempt` (0-based): "equal jitter", half of the capped
// exponential delay fixed and half random, so that clients cut off together do not return together.
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + random() * (ceiling / 2);
}

export class Connection {
  // url: the ws(s):// address. Callbacks:
  //   onOpen()          the socket is open (send the greeting and the joins from here)
  //   onFrame(text)     a text frame arrived
  //   onDown(code)      the socket is gone (called once per socket that had been handed out); code is
  //                     the close code, or 0 when the client gave up on the socket itself
  //   onRetry(delayMs)  a reconnect is scheduled in delayMs
  //   mayRetry(code)    optional: false means do not reconnect after this close (4003, 4001)
  constructor(url, { onOpen, onFrame, onDown, onRetry, mayRetry }) {
    this.url_ = url;
    this.onOpen_ = onOpen;
    this.onFrame_ = onFrame;
    this.onDown_ = onDown;
    this.onRetry_ = onRetry;
    this.mayRetry_ = mayRetry || (() => true);
    this.ws_ = null;            // the current socket, or null while waiting to reconnect
    this.attempt_ = 0;          // reconnects since the last good session, for the backoff
    this.retryTimer_ = null;    // pending reconnect
    this.openTimer_ = null;     // connect timeout of the current socket
    this.pingTimer_ = null;     // heartbeat interval
    this.pongTimer_ = null;     // heartbeat deadline
    this.lastRx_ = 0;           // time the last frame arrived
  }

  // True while a socket is open and sending is possible.
  isOpen() {
    return this.ws_ !== null && this.ws_.readyState === WebSocket.OPEN;
  }

  // True while waiting for the backoff timer.
  isWaiting() {
    return this.retryTimer_ !== null;
  }

  // Sends one JSON message; returns false (and sends nothing) when not open.
  send(obj) {
    if (!this.isOpen()) return false;
    this.ws_.send(JSON.stringify(obj));
    return true;
  }

  // The server accepted this session: the next drop starts the backoff from the beginning.
  markGood() {
    this.attempt_ = 0;
  }

  // Opens a socket now, replacing any current one without reporting it down.
  connect() {
    clearTimeout(this.retryTimer_);
    this.retryTimer_ = null;
    this.discard_();
    let sock;
    try {
      sock = new WebSocket(this.url_);
    } catch (_) {
      this.scheduleRetry_();
      return;
    }
    this.ws_ = sock;
    this.openTimer_ = setTimeout(() => {
      if (sock === this.ws_ && sock.readyState !== WebSocket.OPEN) this.drop();
    }, CONNECT_TIMEOUT_MS);
    sock.onopen = () => {
      if (sock !== this.ws_) return;
      clearTimeout(this.openTimer_);
      this.lastRx_ = Date.now();
      this.startHeartbeat_();
      this.onOpen_();
    };
    sock.onmessage = (ev) => {
      if (sock !== this.ws_) return;
      this.lastRx_ = Date.now();
      if (typeof ev.data === 'string') this.onFrame_(ev.data);
    };
    sock.onclose = (ev) => { if (sock === this.ws_) this.down_(ev.code); };
    sock.onerror = () => { /* a close event follows */ };
  }

  // Gives up on the current socket at once (dead link, timeout) and reconnects after a backoff.
  drop() {
    if (this.ws_) this.down_();
  }

  // Closes the current socket on purpose and connects again at once (a new identity needs a new socket).
  restart() {
    const had = this.ws_ !== null;
    this.discard_();
    this.attempt_ = 0;
    if (had) this.onDown_(0);
    this.connect();
  }

  down_(code = 0) {
    this.discard_();
    this.onDown_(code);
    if (this.mayRetry_(code)) this.scheduleRetry_();
  }

  // Forgets the current socket: its handlers go quiet and it is closed if still open.
  discard_() {
    const sock = this.ws_;
    this.ws_ = null;
    clearTimeout(this.openTimer_);
    this.stopHeartbeat_();
    if (sock && sock.readyState <= WebSocket.OPEN) {
      try { sock.close(1000); } catch (_) { /* already closing */ }
    }
  }

  scheduleRetry_() {
    clearTimeout(this.retryTimer_);
    const delay = backoffDelay(this.attempt_++);
    this.retryTimer_ = setTimeout(() => { this.retryTimer_ = null; this.connect(); }, delay);
    this.onRetry_(delay);
  }

  startHeartbeat_() {
    this.stopHeartbeat_();
    this.pingTimer_ = setInterval(() => {
      if (!this.isOpen()) return;
      const sentAt = Date.now();
      this.send({ type: 'ping' });
      clearTimeout(this.pongTimer_);
      this.pongTimer_ = setTimeout(() => { if (this.lastRx_ < sentAt) this.drop(); }, PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  stopHeartbeat_() {
    clearInterval(this.pingTimer_);
    clearTimeout(this.pongTimer_);
    this.pingTimer_ = this.pongTimer_ = null;
  }
}
