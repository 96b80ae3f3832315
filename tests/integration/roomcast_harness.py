# Shared harness of the black-box tests: starts real roomcast (and redis-server) processes and talks to them.
# Rule: every process and temp dir it creates is cleaned up, and a server that crashes or leaks fails the test.
"""Harness for roomcast integration tests.

Pieces:
  * RoomcastServer / start_servers(): run `roomcast` on a free port (or N of them), wait for
    /healthz, stop with SIGTERM and assert exit 0 and a log free of sanitizer reports; rss_kib() and
    peak_rss_kib() (VmHWM) for memory bounds.
  * RedisServer: a throw-away `redis-server` on a free port in a temp dir (for the cluster suite).
  * http_request() / HttpConn: exact bytes in, parsed HTTP response out; bound_hits(): the
    roomcast_bound_hits_total counters of /metrics.
  * WsClient: a websockets (10.x, asyncio) client speaking the JSON protocol.
  * RawWs: a raw-socket WebSocket client for hand-made frames and close codes.
  * RoomcastTestCase: an IsolatedAsyncioTestCase with one server per test class.

Environment: ROOMCAST_BIN (server binary), ROOMCAST_STATIC (client-web folder),
ROOMCAST_TIMEOUT_SCALE (multiplies every timeout, default 1), ROOMCAST_KEEP_LOGS=1 (print every server log).
"""

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import websockets
import websockets.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SCALE = float(os.environ.get("ROOMCAST_TIMEOUT_SCALE", "1") or "1")
TIMEOUT = 10.0 * SCALE  # waiting for something that must happen
QUIET = 0.5 * SCALE     # window in which nothing may arrive
STARTUP_TIMEOUT = 15.0 * SCALE
STOP_TIMEOUT = 5.0       # contract: exit within 5 s of SIGTERM (not scaled: it is the contract)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ROOM_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
GENERATED_ROOM_RE = re.compile(r"^[a-z2-7]{10}$")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")

# Opcodes.
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def server_binary():
    path = os.environ.get("ROOMCAST_BIN")
    if not path:
        for candidate in ("build-it/server/roomcast", "build/server/roomcast"):
            p = os.path.join(REPO, candidate)
            if os.path.exists(p):
                path = p
                break
    if not path or not os.path.exists(path):
        raise RuntimeError("ROOMCAST_BIN is not set or does not exist: %r" % path)
    return path


def static_dir():
    return os.environ.get("ROOMCAST_STATIC") or os.path.join(REPO, "client-web")


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def new_ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def id_parts(msg_id):
    """Chat id '<a>-<b>-...' as a tuple of ints, for ordering (section 4)."""
    assert isinstance(msg_id, str), "chat id must be a string: %r" % (msg_id,)
    parts = msg_id.split("-")
    assert all(p.isdigit() for p in parts), "chat id is not dash-separated numbers: %r" % (msg_id,)
    return tuple(int(p) for p in parts)


def user(uid, name=None):
    return {"id": uid, "name": name if name is not None else uid.capitalize()}


def unique(prefix="r"):
    """A fresh valid room id (tests share one server per class)."""
    return "%s-%s" % (prefix, base64.b32encode(os.urandom(5)).decode().lower())


# ---------------------------------------------------------------------------------------------------------------------
# Processes


class ServerError(AssertionError):
    pass


class RoomcastServer:
    """One roomcast process. start() returns self once /healthz answers 200."""

    def __init__(self, args=(), port=None, host="127.0.0.1", static=None, env=None, name="roomcast"):
        self.args = list(args)
        self.host = host
        self.port = port
        self.fixed_port = port is not None
        self.static = static or static_dir()
        self.env = env
        self.name = name
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="roomcast-it-")
        self.log_path = os.path.join(self.tmp, "%s.log" % name)
        self.returncode = None
        self._log_file = None

    # -- start / stop
    def command(self):
        return [server_binary(), "--host", self.host, "--port", str(self.port), "--static", self.static] + self.args

    def start(self, timeout=STARTUP_TIMEOUT):
        attempts = 1 if self.fixed_port else 3
        for attempt in range(attempts):
            if not self.fixed_port:
                self.port = free_port(self.host)
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except ServerError:
                if self.proc.poll() is not None and not self.fixed_port and attempt + 1 < attempts \
                        and "in use" in self.log().lower():
                    continue  # lost a race for the port with a parallel test; take another
                self.kill()
                raise
        raise AssertionError("unreachable")

    def _spawn(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if self.env:
            env.update(self.env)
        if self._log_file:
            self._log_file.close()
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(("### %s\n" % " ".join(self.command())).encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=self._log_file, env=env)
        self.returncode = None

    READY_POLL = 0.05                               # wait_ready: seconds between two asks
    HEALTHZ_ERRORS = (OSError, EOFError, ValueError)  # wait_ready: what healthz_status may raise before it is up

    def healthz_status(self):
        """(status, what to report of the answer) of GET /healthz, for wait_ready."""
        resp = http_request_sync(self.port, b"GET /healthz HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                                 % (self.host.encode(), self.port), timeout=2.0, host=self.host)
        return resp.status, "status %d" % resp.status

    def wait_ready(self, timeout=STARTUP_TIMEOUT, statuses=(200,)):
        """Until /healthz answers with one of `statuses` (503 too for an instance whose Redis is down)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("%s exited with %s before it was ready\n%s"
                                  % (self.name, self.proc.returncode, self.log_tail()))
            try:
                status, said = self.healthz_status()
                if status in statuses:
                    return
                last = said
            except self.HEALTHZ_ERRORS as e:
                last = repr(e)
            time.sleep(self.READY_POLL)
        raise ServerError("%s not ready within %.0fs (last: %s)\n%s" % (self.name, timeout, last, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for the process to exit; returns its exit code, or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, check=True):
        """SIGTERM, expect exit 0 within 5 s and no sanitizer report. Raises ServerError (after cleanup) if not."""
        if self.proc is None:
            return
        problems = []
        if self.proc.poll() is not None:
            problems.append("%s had already exited with %s" % (self.name, self.proc.returncode))
        else:
            t0 = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            code = self.wait_exit(STOP_TIMEOUT + 1.0 * SCALE)
            if code is None:
                problems.append("%s did not exit within %.1fs of SIGTERM" % (self.name, STOP_TIMEOUT))
                self.kill()
            elif code != 0:
                problems.append("%s exited with %s after SIGTERM (%.2fs)" % (self.name, code, time.monotonic() - t0))
        self.returncode = self.proc.returncode
        problems += self.sanitizer_reports()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if os.environ.get("ROOMCAST_KEEP_LOGS") == "1" or (problems and check):
            sys.stderr.write("\n----- %s log (%s) -----\n%s\n----- end of log -----\n"
                             % (self.name, self.log_path, self.log()))
        self.proc = None
        if problems and check:
            raise ServerError("; ".join(problems))

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cleanup(self):
        """Last resort: kill and remove the temp dir (used as a class cleanup)."""
        self.kill()
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- logs
    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=80):
        return "\n".join(self.log().splitlines()[-lines:])

    def sanitizer_reports(self):
        text = self.log()
        return ["sanitizer report in %s log: %s" % (self.name, m) for m in SANITIZER_MARKERS if m in text]

    # -- convenience
    def url(self, path="/ws"):
        return "ws://%s:%d%s" % (self.host, self.port, path)

    def rss_kib(self):
        return self._status_kib("VmRSS:")

    def peak_rss_kib(self):
        """The high-water mark of the resident set (VmHWM): catches memory that was freed before we looked."""
        return self._status_kib("VmHWM:")

    def _status_kib(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
        return 0


def start_servers(n, args=(), shared_port=False, name="roomcast"):
    """Start n roomcast processes with the same extra args. With shared_port they all listen on one port
    (SO_REUSEPORT, section 1). Returns the list; stop each with .stop()."""
    servers = []
    try:
        port = free_port() if shared_port else None
        for i in range(n):
            s = RoomcastServer(args, port=port, name="%s-%d" % (name, i))
            servers.append(s)
            s.start()
        return servers
    except BaseException:
        for s in servers:
            s.cleanup()
        raise


def stop_process(proc, timeout=10):
    """SIGTERM, then SIGKILL if it has not exited within timeout seconds; None or an exited process: nothing."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RedisServer:
    """A throw-away redis-server: free port, temp dir, no persistence. `extra_args` go after the defaults
    (a cluster node's settings, for one)."""

    def __init__(self, binary="redis-server", extra_args=()):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.port = None
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="roomcast-redis-")
        self.log_path = os.path.join(self.tmp, "redis.log")

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, port=None, timeout=STARTUP_TIMEOUT):
        attempts = 1 if port else 3
        for attempt in range(attempts):
            self.port = port or free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", self.tmp] + self.extra_args,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if self.command("PING") == "PONG":
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.stop()
                raise RuntimeError("redis-server not ready on port %d" % self.port)
            if attempt + 1 == attempts:
                raise RuntimeError("redis-server exited: %s" % open(self.log_path, errors="replace").read())
        return self

    def command(self, *args, timeout=5.0):
        """One RESP command; returns a simple reply (str, int, None, list) -- enough for tests."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return _resp_read(f)

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _resp_read(f):
    line = f.readline()
    if not line:
        raise EOFError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError("redis error: " + rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise ValueError("bad RESP line %r" % line)


# ---------------------------------------------------------------------------------------------------------------------
# HTTP


class HttpResponse:
    def __init__(self, status_line, headers, body):
        self.status_line = status_line
        parts = status_line.split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = headers  # list of (name, value) in order
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        body = self.body[:300]
        return "<HTTP %d headers=%r body=%r%s>" % (self.status, self.headers, body,
                                                   "..." if len(self.body) > 300 else "")


def _parse_head(head):
    lines = head.decode("iso-8859-1").split("\r\n")
    status_line = lines[0]
    if not status_line.startswith("HTTP/1."):
        raise ValueError("not an HTTP response: %r" % status_line)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return status_line, headers


def _body_mode(resp_status, headers, request_method):
    """'none', ('length', n), 'chunked' or 'eof'."""
    if request_method == "HEAD" or resp_status in (101, 204, 304) or 100 <= resp_status < 200:
        return "none"
    te = ",".join(v for k, v in headers if k.lower() == "transfer-encoding").lower()
    if "chunked" in te:
        return "chunked"
    cl = [v for k, v in headers if k.lower() == "content-length"]
    if cl:
        return ("length", int(cl[0]))
    return "eof"


class HttpConn:
    """One TCP connection to the server, for exact bytes and keep-alive (asyncio)."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port, host="127.0.0.1", timeout=TIMEOUT):
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 24), timeout)
        return cls(reader, writer)

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def read_response(self, method="GET", timeout=TIMEOUT):
        async def _read():
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, headers = _parse_head(head[:-4])
            mode = _body_mode(int(status_line.split(" ")[1]), headers, method)
            if mode == "none":
                body = b""
            elif mode == "chunked":
                body = b""
                while True:
                    size_line = await self.reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        await self.reader.readuntil(b"\r\n")  # (no trailers expected)
                        break
                    body += await self.reader.readexactly(size)
                    await self.reader.readexactly(2)
            elif mode == "eof":
                body = await self.reader.read()
            else:
                body = await self.reader.readexactly(mode[1])
            return HttpResponse(status_line, headers, body)
        return await asyncio.wait_for(_read(), timeout)

    async def request(self, data, method=None, timeout=TIMEOUT):
        if method is None:
            method = data.split(b" ", 1)[0].decode("ascii", "replace")
        await self.send(data)
        return await self.read_response(method, timeout)

    async def closed_by_peer(self, timeout=TIMEOUT):
        """True once the server closes the connection (EOF or reset), False if it is still open at timeout.
        Bytes that still arrive are returned in self.extra."""
        self.extra = b""
        try:
            async def _drain():
                while True:
                    chunk = await self.reader.read(65536)
                    if not chunk:
                        return
                    self.extra += chunk
            await asyncio.wait_for(_drain(), timeout)
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except asyncio.TimeoutError:
            return False

    def close(self):
        with contextlib.suppress(Exception):
            self.writer.close()


def req(method, path, port, headers=(), body=b"", host=None, version="HTTP/1.1"):
    """Build request bytes: a Host header (unless given in headers), the headers, and Content-Length for a body."""
    lines = ["%s %s %s" % (method, path, version)]
    names = [h[0].lower() for h in headers]
    if "host" not in names and host is not False:
        lines.append("Host: %s" % (host or "127.0.0.1:%d" % port))
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if body and "content-length" not in names:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def http_request(port, data, method=None, timeout=TIMEOUT):
    """Send exact bytes on a fresh connection, return the first response."""
    conn = await HttpConn.open(port)
    try:
        return await conn.request(data, method=method, timeout=timeout)
    finally:
        conn.close()


async def http_get_json(port, path, expect_status=200):
    resp = await http_request(port, req("GET", path, port, [("Connection", "close")]))
    assert resp.status == expect_status, "GET %s: expected %d, got %r" % (path, expect_status, resp)
    return resp.json()


async def healthz(port):
    return await http_get_json(port, "/healthz")


async def bound_hits(port):
    """{bound name: count} from roomcast_bound_hits_total in /metrics."""
    resp = await http_request(port, req("GET", "/metrics", port, [("Connection", "close")]))
    assert resp.status == 200, "GET /metrics: %r" % (resp,)
    hits = {}
    for line in resp.body.decode().splitlines():
        m = re.match(r'^roomcast_bound_hits_total\{bound="([a-z_]+)"\} (\d+)$', line)
        if m:
            hits[m.group(1)] = int(m.group(2))
    assert hits, "no roomcast_bound_hits_total in /metrics"
    return hits


def http_request_sync(port, data, timeout=TIMEOUT, host="127.0.0.1"):
    """Blocking variant (for setUpClass and readiness polling)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError("connection closed before the response head")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line, headers = _parse_head(head)
        mode = _body_mode(int(status_line.split(" ")[1]), headers, data.split(b" ", 1)[0].decode())
        if mode == "none":
            return HttpResponse(status_line, headers, b"")
        if isinstance(mode, tuple):
            while len(rest) < mode[1]:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            return HttpResponse(status_line, headers, rest[:mode[1]])
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return HttpResponse(status_line, headers, rest)


# ---------------------------------------------------------------------------------------------------------------------
# WebSocket: JSON client over the websockets library


class WsClient:
    """A websockets client that speaks roomcast JSON. Every received message is parsed; `history` keeps all of them."""

    def __init__(self, ws, label=""):
        self.ws = ws
        self.label = label
        self.history = []   # every message received, in order
        self.skipped = []   # messages wait_for() passed over

    @classmethod
    async def connect(cls, port, path="/ws", *, origin=None, headers=None, label="", host="127.0.0.1",
                      timeout=TIMEOUT, **kw):
        kw.setdefault("compression", None)
        kw.setdefault("ping_interval", None)   # the server pings; the library answers by itself
        kw.setdefault("max_size", None)
        kw.setdefault("max_queue", None)       # never stop reading the socket because the test is slow to read
        kw.setdefault("close_timeout", TIMEOUT)
        ws = await websockets.connect("ws://%s:%d%s" % (host, port, path), origin=origin, extra_headers=headers,
                                      open_timeout=timeout, **kw)
        return cls(ws, label=label)

    def __repr__(self):
        return "<WsClient %s>" % self.label

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def recv(self, timeout=TIMEOUT):
        """The next message, parsed as JSON."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%s: no message within %.1fs" % (self.label or "client", timeout)) from None
        except websockets.exceptions.ConnectionClosed as e:
            raise AssertionError("%s: connection closed while waiting for a message (code %s, reason %r)"
                                 % (self.label or "client", e.code, e.reason)) from None
        assert isinstance(raw, str), "%s: server sent a binary message %r" % (self.label, raw[:100])
        try:
            msg = json.loads(raw)
        except ValueError:
            raise AssertionError("%s: server sent invalid JSON %r" % (self.label, raw[:300])) from None
        assert isinstance(msg, dict), "%s: server sent a non-object %r" % (self.label, raw[:300])
        self.history.append(msg)
        return msg

    async def expect(self, type_, timeout=TIMEOUT, **fields):
        """The next message must have this type and these field values."""
        msg = await self.recv(timeout)
        assert msg.get("type") == type_, "%s: expected a %r message, got %r" % (self.label, type_, msg)
        for k, v in fields.items():
            assert k in msg, "%s: %r message lacks field %r: %r" % (self.label, type_, k, msg)
            assert msg[k] == v, "%s: %r message has %s=%r, expected %r: %r" % (self.label, type_, k, msg[k], v, msg)
        return msg

    async def expect_error(self, code, timeout=TIMEOUT, **fields):
        msg = await self.expect("error", timeout, **fields)
        assert msg.get("code") == code, "%s: expected error %r, got %r" % (self.label, code, msg)
        assert isinstance(msg.get("message"), str) and msg["message"], \
            "%s: error without a human-readable message: %r" % (self.label, msg)
        return msg

    async def wait_for(self, type_, timeout=TIMEOUT, pred=None):
        """Skip messages (kept in self.skipped) until one of this type (and matching pred) arrives."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: no %r message within %.1fs (skipped: %r)"
                                     % (self.label, type_, timeout, self.skipped[-10:]))
            msg = await self.recv(left)
            if msg.get("type") == type_ and (pred is None or pred(msg)):
                return msg
            self.skipped.append(msg)

    async def recv_n(self, n, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        out = []
        for _ in range(n):
            out.append(await self.recv(max(0.01, deadline - time.monotonic())))
        return out

    async def expect_silence(self, seconds=QUIET):
        """Nothing may arrive within `seconds`."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), seconds)
        except asyncio.TimeoutError:
            return
        except websockets.exceptions.ConnectionClosed as e:
            raise AssertionError("%s: connection closed (code %s) where silence was expected" % (self.label, e.code))
        raise AssertionError("%s: expected nothing, got %r" % (self.label, raw[:300]))

    async def ping(self, ref=None):
        """JSON ping -> pong: proves the connection is alive and the server answers it."""
        msg = {"type": "ping"}
        if ref is not None:
            msg["ref"] = ref
        await self.send(msg)
        reply = await self.expect("pong")
        if ref is not None:
            assert reply.get("ref") == ref, "%s: pong without ref %r: %r" % (self.label, ref, reply)
        return reply

    async def hello(self, u):
        await self.send({"type": "hello", "user": u})
        return await self.expect("hello", user=u)

    async def join(self, room, **extra):
        await self.send(dict({"type": "join", "roomId": room}, **extra))
        return await self.expect("joined", roomId=room)

    async def expect_close(self, code=None, timeout=TIMEOUT):
        """Read (and keep) messages until the server closes; assert the close code. Returns the messages."""
        got = []

        async def _drain():
            while True:
                try:
                    got.append(await self.ws.recv())
                except websockets.exceptions.ConnectionClosed:
                    return
        try:
            await asyncio.wait_for(_drain(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%s: connection not closed within %.1fs (got %d messages, last %r)"
                                 % (self.label, timeout, len(got), got[-3:])) from None
        if code is not None:
            assert self.ws.close_code == code, "%s: expected close code %s, got %s (reason %r)" \
                % (self.label, code, self.ws.close_code, self.ws.close_reason)
        return got

    async def close(self):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), TIMEOUT)


# ---------------------------------------------------------------------------------------------------------------------
# WebSocket: raw frames


class Frame:
    def __init__(self, fin, rsv, opcode, payload, masked):
        self.fin, self.rsv, self.opcode, self.payload, self.masked = fin, rsv, opcode, payload, masked

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE:
            return None
        if len(self.payload) < 2:
            return 1005
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def text(self):
        return self.payload.decode("utf-8")

    def json(self):
        return json.loads(self.payload.decode("utf-8"))

    def __repr__(self):
        return "<Frame fin=%d rsv=%d op=%#x len=%d %r>" % (self.fin, self.rsv, self.opcode, len(self.payload),
                                                            self.payload[:80])


def build_frame(opcode, payload=b"", *, fin=True, mask=True, rsv=0, length=None, mask_key=None):
    """A client frame. `length` overrides the announced payload length (the payload bytes are still appended)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    out = bytearray([b0])
    mbit = 0x80 if mask else 0
    if n < 126:
        out.append(mbit | n)
    elif n < 65536:
        out.append(mbit | 126)
        out += struct.pack("!H", n)
    else:
        out.append(mbit | 127)
        out += struct.pack("!Q", n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        out += key
        out += bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return bytes(out)


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def handshake_request(path="/ws", port=0, key=None, headers=(), host=None, method="GET", version="HTTP/1.1",
                      omit=()):
    """Bytes of an upgrade request. `headers` adds or overrides (by name), `omit` drops default headers by name."""
    base = [("Host", host or "127.0.0.1:%d" % port), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key or new_ws_key()), ("Sec-WebSocket-Version", "13")]
    override = {k.lower(): (k, v) for k, v in headers}
    lines = ["%s %s %s" % (method, path, version)]
    for k, v in base:
        if k.lower() in omit:
            continue
        if k.lower() in override:
            k, v = override.pop(k.lower())
        lines.append("%s: %s" % (k, v))
    for k, v in override.values():
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class RawWs:
    """A WebSocket client on a bare socket: exact frames out, frames (unmasked, as a server must send) in."""

    def __init__(self, reader, writer, sock=None):
        self.reader = reader
        self.writer = writer
        self.sock = sock
        self.response = None
        self.key = None

    @classmethod
    async def open(cls, port, host="127.0.0.1", rcvbuf=None, timeout=TIMEOUT):
        """TCP only (no handshake). rcvbuf sets SO_RCVBUF before connecting (a small receive window)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 24)
        return cls(reader, writer, sock)

    @classmethod
    async def connect(cls, port, path="/ws", *, headers=(), extra=b"", rcvbuf=None, timeout=TIMEOUT):
        """TCP + handshake; asserts 101 with the right Sec-WebSocket-Accept. `extra` is sent in the same write."""
        self = await cls.open(port, rcvbuf=rcvbuf, timeout=timeout)
        self.key = new_ws_key()
        await self.send(handshake_request(path, port, key=self.key, headers=headers) + extra)
        self.response = await self.read_http_response(timeout)
        assert self.response.status == 101, "handshake: expected 101, got %r" % (self.response,)
        assert self.response.header("Sec-WebSocket-Accept") == ws_accept(self.key), \
            "handshake: wrong Sec-WebSocket-Accept %r" % (self.response,)
        return self

    async def read_http_response(self, timeout=TIMEOUT):
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, headers = _parse_head(head[:-4])
        resp = HttpResponse(status_line, headers, b"")
        mode = _body_mode(resp.status, headers, "GET")
        if isinstance(mode, tuple):
            resp.body = await asyncio.wait_for(self.reader.readexactly(mode[1]), timeout)
        return resp

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    def send_nowait(self, data):
        self.writer.write(data)

    async def send_frame(self, opcode, payload=b"", **kw):
        await self.send(build_frame(opcode, payload, **kw))

    async def send_text(self, obj, **kw):
        if not isinstance(obj, (str, bytes)):
            obj = json.dumps(obj)
        await self.send_frame(OP_TEXT, obj, **kw)

    async def read_frame(self, timeout=TIMEOUT):
        """The next frame. Raises EOFError when the server closed TCP, asyncio.TimeoutError on timeout."""
        async def _read():
            try:
                h = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError as e:
                raise EOFError("EOF (%d stray bytes)" % len(e.partial)) from None
            fin, rsv, opcode = h[0] >> 7, (h[0] >> 4) & 7, h[0] & 0xF
            masked, n = h[1] >> 7, h[1] & 0x7F
            try:
                if n == 126:
                    n = struct.unpack("!H", await self.reader.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                key = await self.reader.readexactly(4) if masked else None
                payload = await self.reader.readexactly(n)
            except asyncio.IncompleteReadError:
                raise EOFError("EOF in the middle of a frame") from None
            if masked:
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            return Frame(fin, rsv, opcode, payload, masked)
        frame = await asyncio.wait_for(_read(), timeout)
        assert not frame.masked, "server sent a masked frame: %r" % (frame,)
        assert frame.rsv == 0, "server sent a frame with RSV bits: %r" % (frame,)
        return frame

    async def read_message(self, timeout=TIMEOUT, answer_pings=True):
        """The next data message (reassembled), skipping control frames (answering pings). Returns (opcode, bytes)."""
        deadline = time.monotonic() + timeout
        parts, first_op = [], None
        while True:
            f = await self.read_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                if answer_pings:
                    await self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                raise AssertionError("server closed (code %s) while a message was expected" % f.close_code)
            if first_op is None:
                assert f.opcode in (OP_TEXT, OP_BINARY), "unexpected frame %r" % (f,)
                first_op = f.opcode
            else:
                assert f.opcode == OP_CONT, "expected a continuation frame, got %r" % (f,)
            parts.append(f.payload)
            if f.fin:
                return first_op, b"".join(parts)

    async def read_json(self, timeout=TIMEOUT):
        op, data = await self.read_message(timeout)
        assert op == OP_TEXT, "server sent a binary message"
        return json.loads(data.decode("utf-8"))

    async def expect_json(self, type_, timeout=TIMEOUT):
        msg = await self.read_json(timeout)
        assert msg.get("type") == type_, "expected a %r message, got %r" % (type_, msg)
        return msg

    async def expect_close(self, code, timeout=TIMEOUT, reply=True, eof_timeout=TIMEOUT):
        """Skip frames until the server's close frame (within timeout); assert its code. With reply, answer it and
        expect the server to close TCP within eof_timeout. Returns (close frame, frames skipped)."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no close frame within %.1fs (frames: %r)" % (timeout, skipped[-5:]))
            try:
                f = await self.read_frame(left)
            except asyncio.TimeoutError:
                raise AssertionError("no close frame within %.1fs (frames: %r)" % (timeout, skipped[-5:])) from None
            except EOFError:
                raise AssertionError("server closed TCP without a close frame (expected %s; frames: %r)"
                                     % (code, skipped[-5:])) from None
            except ConnectionResetError:
                raise AssertionError("connection reset without a close frame (expected %s)" % code) from None
            if f.opcode == OP_CLOSE:
                break
            skipped.append(f)
        assert f.close_code == code, "expected close code %s, got %s (reason %r)" % (code, f.close_code,
                                                                                   f.close_reason)
        if f.payload[2:]:
            f.payload[2:].decode("utf-8")  # a close reason must be UTF-8 (raises otherwise)
        assert len(f.payload) <= 125, "close frame payload over 125 bytes"
        if reply:
            with contextlib.suppress(ConnectionError):
                await self.send_frame(OP_CLOSE, f.payload[:2])
            await self.expect_eof(eof_timeout)
        return f, skipped

    async def expect_eof(self, timeout=TIMEOUT):
        """The server must close TCP within timeout (frames still in flight are discarded and returned)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("server did not close TCP within %.1fs" % timeout)
            try:
                data = await asyncio.wait_for(self.reader.read(65536), left)
            except asyncio.TimeoutError:
                raise AssertionError("server did not close TCP within %.1fs" % timeout) from None
            except ConnectionResetError:
                return frames
            if not data:
                return frames
            frames.append(data)

    def pause_reading(self):
        """Stop taking bytes from the socket (asyncio would otherwise read ahead into its buffer): from now on the
        kernel's receive buffer fills and the server sees a reader that does not read."""
        self.writer.transport.pause_reading()

    def resume_reading(self):
        self.writer.transport.resume_reading()

    def close(self):
        with contextlib.suppress(Exception):
            self.writer.close()


# ---------------------------------------------------------------------------------------------------------------------
# Test case base


def quiet_slow_callback_warnings():
    """IsolatedAsyncioTestCase runs the loop in debug mode, which logs every step over 0.1 s ("Executing <Task...>
    took 0.4 seconds"): noise here, since tests block on purpose (process waits, big sends)."""
    asyncio.get_running_loop().slow_callback_duration = 10.0


class RoomcastTestCase(unittest.IsolatedAsyncioTestCase):
    """One roomcast server per test class (extra args in `server_args`). Each test checks the server is still
    running afterwards; the class ends with SIGTERM, exit 0 and a sanitizer-clean log."""

    server_args = []
    server = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = RoomcastServer(cls.server_args, name=cls.__name__)
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            super().tearDownClass()

    def setUp(self):
        self._clients = []

    async def asyncSetUp(self):
        quiet_slow_callback_warnings()

    async def asyncTearDown(self):
        for c in self._clients:
            if isinstance(c, WsClient):
                await c.close()
            else:
                c.close()

    def _failed_so_far(self):
        """Whether this test (or one of its subtests) has already been reported failed or errored."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        for t, _ in list(getattr(result, "failures", [])) + list(getattr(result, "errors", [])):
            if t is self or getattr(t, "test_case", None) is self:
                return True
        return False

    def tearDown(self):
        failed = self._failed_so_far()
        if not self.server.alive():
            sys.stderr.write("\n----- server log -----\n%s\n" % self.server.log_tail(200))
            self.fail("the server died during %s (exit %s)" % (self.id(), self.server.proc.poll()))
        if failed:
            sys.stderr.write("\n----- last server log lines after failed %s -----\n%s\n----- end -----\n"
                             % (self.id(), self.server.log_tail(40)))

    # -- helpers for tests
    async def client(self, path="/ws", label="", **kw):
        c = await WsClient.connect(self.port, path, label=label or "c%d" % len(self._clients), **kw)
        self._clients.append(c)
        return c

    async def raw(self, path="/ws", **kw):
        r = await RawWs.connect(self.port, path, **kw)
        self._clients.append(r)
        return r

    async def raw_tcp(self, **kw):
        r = await RawWs.open(self.port, **kw)
        self._clients.append(r)
        return r

    async def http(self, data, method=None, timeout=TIMEOUT):
        return await http_request(self.port, data, method=method, timeout=timeout)

    async def get(self, path, headers=()):
        return await self.http(req("GET", path, self.port, list(headers) + [("Connection", "close")]))

    async def assert_server_works(self):
        """A fresh client is served: /healthz over HTTP and a JSON ping over a WebSocket."""
        resp = await self.get("/healthz")
        self.assertEqual(resp.status, 200, resp)
        c = await WsClient.connect(self.port, label="fresh")
        try:
            await c.ping(ref="alive")
        finally:
            await c.close()
