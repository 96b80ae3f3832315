# Cluster harness: per test, a throw-away redis-server and roomcast instances in Redis mode, and clients for them.
# Rule: all it starts is stopped even after a failure; an instance that crashed or did not exit 0 fails the test.
"""Helpers for the Redis scale-out suite (tests/integration/test_cluster_*.py), on top of roomcast_harness.

  * Redis: RedisServer plus kill (SIGKILL), restart on the same port, freeze/thaw and async commands.
  * Instance: a roomcast process in Redis mode with an --instance-id; restarts keep its port; it may be
    started before Redis is up (ready = any /healthz answer).
  * Peer: a WebSocket client whose messages are read in the background into an inbox, so a test takes the
    message it waits for and keeps the others (acks, presence and chats interleave across instances).
  * ChildClient: a member living in a separate process, to be killed with SIGKILL.
  * DelayProxy: a slow link (requests held for a while) between one instance and Redis.
  * ClusterTestCase: per test, one Redis (unless start_redis is False) and the instances the test launches.
"""

import asyncio
import contextlib
import json
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

import websockets
import websockets.exceptions

from roomcast_harness import (QUIET, SCALE, STARTUP_TIMEOUT, TIMEOUT, RedisServer, RoomcastServer, ServerError,
                              WsClient, free_port, http_request, http_request_sync, id_parts, req, unique, user)

__all__ = ["QUIET", "SCALE", "TIMEOUT", "ClusterTestCase", "Instance", "Peer", "Redis", "ChildClient", "DelayProxy",
           "health", "metrics", "metric", "get_json", "wait_until", "chat_key", "id_parts", "unique", "user",
           "quiet_port"]


# ---------------------------------------------------------------------------------------------------------------------
# Ports


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def quiet_port():
    """A free port below the ephemeral range. A port that must stay ours across restarts (Redis coming back on its
    port, an instance restarted on its port) must not be one the kernel hands out as the source port of some
    outgoing connection meanwhile, as a port from free_port() may be."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(20000, max(20001, low))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


# ---------------------------------------------------------------------------------------------------------------------
# Polling


async def wait_until(probe, timeout=TIMEOUT, what="condition", interval=0.05):
    """Call the async `probe` until it returns something truthy; return that. On timeout raise AssertionError
    naming `what` and the last value (or exception) seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = await probe()
            if last:
                return last
        except (OSError, EOFError, ValueError, asyncio.TimeoutError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError("%s: not within %.1fs (last: %r)" % (what, timeout, last))
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------------------------------------------------------
# HTTP views of an instance


async def get_json(port, path, timeout=5.0):
    """(status, body as JSON) of GET path, whatever the status."""
    resp = await http_request(port, req("GET", path, port, [("Connection", "close")]), timeout=timeout)
    return resp.status, resp.json()


async def health(port, timeout=5.0):
    """(status, body as JSON) of GET /healthz, whatever the status."""
    return await get_json(port, "/healthz", timeout)


async def metrics(port, timeout=5.0):
    """GET /metrics as {sample name with labels: float}; also {'__instance__': id} from roomcast_info."""
    resp = await http_request(port, req("GET", "/metrics", port, [("Connection", "close")]), timeout=timeout)
    assert resp.status == 200, "GET /metrics: %r" % (resp,)
    out = {}
    for line in resp.body.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
        if name.startswith("roomcast_info{"):
            out["__instance__"] = name.split('instance="', 1)[1].split('"', 1)[0]
    return out


async def metric(port, name):
    m = await metrics(port)
    assert name in m, "metric %s missing from /metrics on port %d" % (name, port)
    return m[name]


# ---------------------------------------------------------------------------------------------------------------------
# Processes


class Redis(RedisServer):
    """RedisServer that can also be killed, restarted on its port, frozen and thawed."""

    def __init__(self, extra_args=()):
        super().__init__(extra_args=extra_args)
        self.frozen = False

    def start(self, port=None, timeout=STARTUP_TIMEOUT):
        if port is not None:
            return super().start(port=port, timeout=timeout)
        for attempt in range(3):
            try:
                return super().start(port=quiet_port(), timeout=timeout)
            except RuntimeError:
                if attempt == 2:
                    raise
        return self

    def reserve_port(self):
        """Pick the port now, start later (instances that come up before Redis)."""
        self.port = quiet_port()
        return self.port

    def kill(self):
        """SIGKILL: no goodbye to the clients, data gone (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.frozen = False

    def restart(self):
        """Start again on the same port (after kill or stop)."""
        return self.start(port=self.port)

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    async def acommand(self, *args, timeout=5.0):
        return await asyncio.to_thread(self.command, *args, timeout=timeout)

    async def numsub(self, channel):
        reply = await self.acommand("PUBSUB", "NUMSUB", channel)
        assert reply[0] == channel, reply
        return int(reply[1])

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self):
        if self.proc is not None and self.frozen:
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGCONT)
        self.frozen = False
        super().cleanup()


class Instance(RoomcastServer):
    """roomcast in Redis mode. Ready means /healthz answers at all unless require_up (then 200 "redis":"up")."""

    def __init__(self, redis_url, instance_id, port=None, args=(), require_up=True, broker_args=None):
        # broker_args replaces ["--redis", redis_url] (e.g. ["--redis-cluster", seeds]).
        broker = list(broker_args) if broker_args is not None else ["--redis", redis_url]
        super().__init__(broker + ["--instance-id", instance_id] + list(args), port=port,
                         name="instance-%s" % instance_id)
        self.instance_id = instance_id
        self.require_up = require_up
        self.killed = False

    def start(self, timeout=STARTUP_TIMEOUT):
        attempts = 1
        if not self.fixed_port:
            attempts = 3
            self.fixed_port = True   # a restart comes back on the same port
            self.port = quiet_port()
        for attempt in range(attempts):
            try:
                super().start(timeout)
                break
            except ServerError:
                if attempt + 1 == attempts or "in use" not in self.log().lower():
                    raise
                self.port = quiet_port()
        self.killed = False
        return self

    def wait_ready(self, timeout=STARTUP_TIMEOUT):
        return super().wait_ready(timeout, statuses=(200,) if self.require_up else (200, 503))

    def sigkill(self):
        self.kill()
        self.killed = True
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    async def health(self):
        return await health(self.port)

    async def metrics(self):
        return await metrics(self.port)

    async def metric(self, name):
        return await metric(self.port, name)

    def log_lines(self, needle):
        return [line for line in self.log().splitlines() if needle in line]


CHILD_CLIENT = r"""
import asyncio, json, sys
import websockets

async def main(port, room, uid):
    async with websockets.connect("ws://127.0.0.1:%s/ws" % port, compression=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "hello", "user": {"id": uid, "name": uid}}))
        await ws.send(json.dumps({"type": "join", "roomId": room}))
        while True:
            msg = json.loads(await ws.recv())
            print(json.dumps(msg), flush=True)

asyncio.run(main(*sys.argv[1:4]))
"""


class ChildClient:
    """A room member in its own process (SIGKILL leaves the kernel to close its socket)."""

    def __init__(self, proc, label):
        self.proc = proc
        self.label = label

    @classmethod
    async def start(cls, port, room, uid, timeout=TIMEOUT):
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD_CLIENT, str(port), room, uid,
                                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        self = cls(proc, uid)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                self.kill()
                raise AssertionError("child client %s: no joined within %.1fs" % (uid, timeout)) from None
            if not line:
                raise AssertionError("child client %s exited with %s before joined" % (uid, await proc.wait()))
            msg = json.loads(line)
            if msg.get("type") == "joined":
                assert msg.get("roomId") == room, msg
                return self
            if msg.get("type") == "error":
                self.kill()
                raise AssertionError("child client %s: %r" % (uid, msg))

    def kill(self):
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def reap(self):
        self.kill()
        await self.proc.wait()


class DelayProxy:
    """A TCP proxy in front of Redis that holds every chunk an instance sends for `delay` seconds (replies pass at
    once): a slow link between one instance and Redis, so that instance has commands in flight for that long."""

    def __init__(self, upstream_port, delay):
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = None
        self._server = None
        self._tasks = set()
        self._writers = []

    async def start(self):
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", quiet_port())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    async def _serve(self, c_reader, c_writer):
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            c_writer.close()
            return
        self._writers += [c_writer, u_writer]
        queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def read_client():
            while True:
                data = await c_reader.read(65536)
                await queue.put((loop.time() + self.delay, data))
                if not data:
                    return

        async def write_upstream():
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    u_writer.close()
                    return
                u_writer.write(data)
                await u_writer.drain()

        async def replies():
            while True:
                data = await u_reader.read(65536)
                if not data:
                    c_writer.close()
                    return
                c_writer.write(data)
                await c_writer.drain()

        for coro in (read_client(), write_upstream(), replies()):
            t = loop.create_task(coro)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def close(self):
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# ---------------------------------------------------------------------------------------------------------------------
# Clients


class Peer:
    """A WebSocket client whose messages are read in the background. take() removes and returns the first buffered
    message that matches (waiting for it); the others stay for later takes. `seen` keeps everything in order
    (`seen_at` the time each was read)."""

    def __init__(self, ws, label, port):
        self.ws = ws
        self.label = label
        self.port = port
        self.inbox = []
        self.seen = []
        self.seen_at = []         # time.monotonic() at which each message of `seen` was read
        self.closed = None        # (code, reason) once the connection is closed
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    def __repr__(self):
        return "<Peer %s on :%d>" % (self.label, self.port)

    @classmethod
    async def connect(cls, port, label, path="/ws", timeout=TIMEOUT):
        c = await WsClient.connect(port, path, label=label, timeout=timeout)
        return cls(c.ws, label, port)

    async def _read(self):
        try:
            while True:
                raw = await self.ws.recv()
                assert isinstance(raw, str), "%s: binary message %r" % (self.label, raw[:100])
                msg = json.loads(raw)
                assert isinstance(msg, dict), "%s: non-object %r" % (self.label, raw[:300])
                self.seen.append(msg)
                self.seen_at.append(time.monotonic())
                self.inbox.append(msg)
                self._changed.set()
        except websockets.exceptions.ConnectionClosed as e:
            self.closed = (e.code, e.reason)
        except Exception as e:  # noqa: BLE001 -- surfaced by take()
            self.closed = ("reader failed", repr(e))
        self._changed.set()

    # -- sending
    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def chat(self, room, message, ref=None):
        m = {"type": "chat", "roomId": room, "message": message}
        if ref is not None:
            m["ref"] = ref
        await self.send(m)

    # -- receiving
    def _match(self, msg, type_, pred, fields):
        if type_ is not None and msg.get("type") != type_:
            return False
        if any(msg.get(k) != v for k, v in fields.items()):
            return False
        return pred is None or pred(msg)

    def pending(self, type_=None, pred=None, **fields):
        """Buffered (not yet taken) messages that match; nothing is removed."""
        return [m for m in self.inbox if self._match(m, type_, pred, fields)]

    async def take(self, type_=None, timeout=TIMEOUT, pred=None, **fields):
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.inbox):
                if self._match(m, type_, pred, fields):
                    del self.inbox[i]
                    return m
            if self.closed is not None:
                raise AssertionError("%s: connection closed %r while waiting for %s %r (unread: %r)"
                                     % (self.label, self.closed, type_, fields, self.inbox[-10:]))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: no %s message %r within %.1fs (unread: %r)"
                                     % (self.label, type_, fields, timeout, self.inbox[-10:]))
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def take_n(self, n, type_=None, timeout=TIMEOUT, pred=None, **fields):
        deadline = time.monotonic() + timeout
        out = []
        for _ in range(n):
            try:
                out.append(await self.take(type_, max(0.0, deadline - time.monotonic()), pred, **fields))
            except AssertionError as e:
                raise AssertionError("%s: got %d of %d %s messages: %s" % (self.label, len(out), n, type_, e)) \
                    from None
        return out

    async def expect_none(self, type_=None, seconds=QUIET, pred=None, **fields):
        """No matching message may arrive (or be buffered) within `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            got = self.pending(type_, pred, **fields)
            assert not got, "%s: unexpected %r" % (self.label, got[:5])
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def answer(self, ref, timeout=TIMEOUT):
        """The ack or error that echoes `ref`."""
        return await self.take(None, timeout, pred=lambda m: m.get("ref") == ref and m.get("type") in ("ack", "error"))

    # -- protocol shortcuts
    async def hello(self, u):
        await self.send({"type": "hello", "user": u})
        return await self.take("hello", user=u)

    async def join(self, room, timeout=TIMEOUT, **extra):
        await self.send(dict({"type": "join", "roomId": room}, **extra))
        return await self.take("joined", timeout, roomId=room)

    async def leave(self, room):
        await self.send({"type": "leave", "roomId": room})
        return await self.take("left", roomId=room)

    async def chat_acked(self, room, message, ref, timeout=TIMEOUT):
        await self.chat(room, message, ref)
        a = await self.answer(ref, timeout)
        assert a.get("type") == "ack", "%s: chat %r not acked: %r" % (self.label, message, a)
        assert isinstance(a.get("id"), str), a
        return a

    async def ping(self, ref="alive"):
        await self.send({"type": "ping", "ref": ref})
        return await self.take("pong", pred=lambda m: m.get("ref") == ref)

    # -- ending
    async def close(self):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, TIMEOUT)

    def abort(self):
        """Reset the TCP connection (SO_LINGER 0): no close frame, no FIN."""
        sock = self.ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.ws.transport.abort()


def chat_key(ev):
    """What identifies one chat event as every member must see it."""
    return (ev["id"], ev["user"]["id"], ev["message"])


# ---------------------------------------------------------------------------------------------------------------------
# Test case base


class ClusterTestCase(unittest.IsolatedAsyncioTestCase):
    """Per test: a Redis (started in setUp unless start_redis is False) and instances from launch(). tearDown fails
    the test if an instance that was not killed on purpose died, then stops each with SIGTERM (exit 0 within 5 s,
    no sanitizer report). Logs of instances and Redis are printed when a test fails."""

    start_redis = True
    instance_args = ["--log-level", "debug"]

    def setUp(self):
        self.redis = Redis()
        self.addCleanup(self.redis.cleanup)
        if self.start_redis:
            self.redis.start()
        else:
            self.redis.reserve_port()
        self.instances = []
        self.peers = []
        self.children = []
        self.proxies = []

    async def launch(self, instance_id, port=None, args=(), require_up=None, redis_url=None, broker_args=None):
        """Start one instance (in a thread: the loop keeps serving the clients meanwhile). broker_args replaces
        ["--redis", redis_url] (see Instance); then self.redis is not used."""
        if broker_args is None:
            redis_url = redis_url or self.redis.url
            if require_up is None:
                require_up = self.redis.proc is not None
        inst = Instance(redis_url, instance_id, port=port, args=list(self.instance_args) + list(args),
                        require_up=require_up, broker_args=broker_args)
        self.instances.append(inst)
        self.addCleanup(inst.cleanup)
        await asyncio.to_thread(inst.start)
        return inst

    async def launch_n(self, n, shared_port=False, args=()):
        port = quiet_port() if shared_port else None
        return [await self.launch("i%d" % (i + 1), port=port, args=args) for i in range(n)]

    async def stop_instance(self, inst):
        """SIGTERM; exit 0 within 5 s and a clean log, or ServerError."""
        await asyncio.to_thread(inst.stop)

    async def restart(self, inst):
        await asyncio.to_thread(inst.start)
        return inst

    async def peer(self, inst_or_port, label, path="/ws"):
        port = inst_or_port if isinstance(inst_or_port, int) else inst_or_port.port
        p = await Peer.connect(port, label, path)
        self.peers.append(p)
        return p

    async def member(self, inst, uid, room):
        """A client on `inst` with identity `uid`, joined to `room`. Returns (peer, joined message)."""
        p = await self.peer(inst, uid)
        await p.hello(user(uid))
        joined = await p.join(room)
        return p, joined

    async def child(self, inst, room, uid):
        c = await ChildClient.start(inst.port, room, uid)
        self.children.append(c)
        return c

    async def restart_redis(self):
        await asyncio.to_thread(self.redis.restart)

    async def wait_health(self, inst, status, redis, timeout=TIMEOUT):
        """Poll /healthz until it answers `status` with "redis": `redis`; returns the body."""
        async def probe():
            st, body = await inst.health()
            return body if (st, body.get("redis")) == (status, redis) else None
        body = await wait_until(probe, timeout, "%s /healthz %d redis %s" % (inst.name, status, redis))
        if status == 200:
            self.assertEqual(body.get("status"), "ok", body)
        else:
            self.assertEqual(body.get("status"), "degraded", body)
        return body

    async def wait_numsub(self, room, n, timeout=TIMEOUT):
        channel = "room:%s" % room

        async def probe():
            return (await self.redis.numsub(channel)) == n
        try:
            await wait_until(probe, timeout, "PUBSUB NUMSUB %s == %d" % (channel, n))
        except AssertionError as e:
            raise AssertionError("%s (now %d)" % (e, await self.redis.numsub(channel))) from None

    async def delay_proxy(self, delay):
        proxy = await DelayProxy(self.redis.port, delay).start()
        self.proxies.append(proxy)
        return proxy

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()
        for proxy in self.proxies:
            await proxy.close()
        for c in self.children:
            await c.reap()

    def dump_broker_logs(self):
        """After a failure: the end of the broker's log (a subclass with other brokers overrides this)."""
        sys.stderr.write("\n----- redis log -----\n%s\n----- end -----\n" % "\n".join(
            self.redis.log().splitlines()[-30:]))

    def thaw_broker(self):
        if self.redis.frozen:
            self.redis.thaw()

    def _failed_so_far(self):
        # (_outcome.success is reset while tearDown runs; the result's lists still know.)
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return result is not None and any(t is self for t, _ in list(result.failures) + list(result.errors))

    def tearDown(self):
        failed = self._failed_so_far()
        died = [i for i in self.instances if i.proc is not None and not i.killed and not i.alive()]
        if failed or died:
            for inst in self.instances:
                sys.stderr.write("\n----- %s log (last 60 lines) -----\n%s\n" % (inst.name, inst.log_tail(60)))
            self.dump_broker_logs()
        self.thaw_broker()
        errors = []
        if died:
            errors.append("instances died during the test: %s" % ", ".join(
                "%s (exit %s)" % (i.name, i.proc.returncode) for i in died))
        for inst in self.instances:
            if inst.killed or inst.proc is None or inst in died:
                continue
            try:
                inst.stop(check=True)
            except ServerError as e:
                errors.append(str(e))
        if errors:
            self.fail("; ".join(errors))
