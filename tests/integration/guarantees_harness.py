# Helpers of the regression tests of section 5's guarantees (test_guarantees_*.py), on top of cluster_harness.
# Rule: faults are made on the wire (a link proxy, Redis commands, signals) and checked on the wire and /metrics only.
"""Pieces shared by tests/integration/test_guarantees_*.py:

  * LinkProxy: a TCP link between one instance and Redis that can hold what the instance sends for a while
    (`delay`), be cut (every connection reset, new ones refused) and restored, and tell which Redis
    connections are its own (so one instance's subscription connection can be killed with CLIENT KILL ID).
  * chats_of(), assert_once_in_order(): what a client saw of a room, checked against what was acked.
  * redis_channels(), pubsub_clients_of(): Redis's view of subscriptions.
"""

import asyncio
import contextlib

from cluster_harness import SCALE, id_parts, quiet_port

__all__ = ["LinkProxy", "chats_of", "assert_once_in_order", "redis_channels", "pubsub_clients_of", "LONG",
           "set_nofile"]

LONG = 20.0 * SCALE   # waiting for something that comes only after a fault has healed


class LinkProxy:
    """Proxy in front of Redis for one instance. Bytes the instance sends are held `delay` seconds (replies and
    pushed messages pass at once). cut(): every connection is reset and new ones are closed at once until
    restore(); the instance sees Redis vanish while every other client of Redis is unaffected."""

    def __init__(self, upstream_port, delay=0.0):
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = None
        self.is_cut = False
        self._server = None
        self._links = []      # [(client writer, upstream writer)]
        self._tasks = set()

    async def start(self):
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", quiet_port())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def upstream_ports(self):
        """Local ports of the live proxy->Redis connections (Redis lists them as addr=127.0.0.1:<port>)."""
        out = set()
        for _, u in self._links:
            if not u.is_closing():
                with contextlib.suppress(Exception):
                    out.add(u.get_extra_info("sockname")[1])
        return out

    def _spawn(self, coro):
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _serve(self, c_reader, c_writer):
        if self.is_cut:
            c_writer.transport.abort()
            return
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            c_writer.transport.abort()
            return
        link = (c_writer, u_writer)
        self._links.append(link)
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        def close_both():
            for w in link:
                with contextlib.suppress(Exception):
                    w.transport.abort()
            with contextlib.suppress(ValueError):
                self._links.remove(link)

        async def read_client():
            with contextlib.suppress(Exception):
                while True:
                    data = await c_reader.read(65536)
                    await queue.put((loop.time() + self.delay, data))
                    if not data:
                        return
            await queue.put((loop.time(), b""))

        async def write_upstream():
            with contextlib.suppress(Exception):
                while True:
                    due, data = await queue.get()
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    if not data:
                        break
                    u_writer.write(data)
                    await u_writer.drain()
            close_both()

        async def replies():
            with contextlib.suppress(Exception):
                while True:
                    data = await u_reader.read(65536)
                    if not data:
                        break
                    c_writer.write(data)
                    await c_writer.drain()
            close_both()

        for coro in (read_client(), write_upstream(), replies()):
            self._spawn(coro)

    def cut(self):
        self.is_cut = True
        for c, u in list(self._links):
            for w in (c, u):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self._links.clear()

    def restore(self):
        self.is_cut = False

    async def close(self):
        self.cut()
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def chats_of(peer, room):
    """Every chat event of `room` this Peer has received so far, in arrival order."""
    return [m for m in peer.seen if m.get("type") == "chat" and m.get("roomId") == room]


def assert_once_in_order(tc, label, got_ids, expected_ids):
    """got_ids must be exactly expected_ids: each once, in that (increasing) order. The failure names the
    duplicates, the missing ids and the first place the order breaks."""
    if list(got_ids) == list(expected_ids):
        return
    dups = sorted({i for i in got_ids if list(got_ids).count(i) > 1}, key=id_parts)
    missing = [i for i in expected_ids if i not in got_ids]
    extra = [i for i in got_ids if i not in expected_ids]
    disorder = next((k for k in range(1, len(got_ids)) if id_parts(got_ids[k]) <= id_parts(got_ids[k - 1])), None)
    tc.fail("%s: chats not exactly once in order: %d received, %d expected; duplicates %r; missing %r; unexpected %r;"
            " first out-of-order position %r\n received %r\n expected %r"
            % (label, len(got_ids), len(expected_ids), dups[:10], missing[:10], extra[:10], disorder,
               list(got_ids)[:80], list(expected_ids)[:80]))


async def redis_channels(redis, pattern="room:*"):
    return sorted(await redis.acommand("PUBSUB", "CHANNELS", pattern))


async def pubsub_clients_of(redis, ports):
    """CLIENT LIST entries (dicts) of the pubsub connections whose client port is in `ports`."""
    text = await redis.acommand("CLIENT", "LIST", "TYPE", "pubsub")
    out = []
    for line in text.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        port = int(fields.get("addr", ":0").rsplit(":", 1)[1])
        if port in ports:
            out.append(fields)
    return out


def set_nofile(n):
    """Raise this process's open-file limit to at least n (children, the servers, inherit it). Returns the limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
