# Red-team helper: a TCP proxy between one roomcast instance and Redis that can swallow or hold back the traffic of
# the instance's command ("pub") connection, cut every connection, and refuse new ones.
# Rule: it never delays by a clock; everything it holds is held until the test says so.
"""GateProxy for tests/integration/test_redteam_*.py.

Each proxied connection is tagged "pub" or "sub" from the CLIENT SETNAME roomcast:<id>:pub|sub it starts with.
  * swallow_pub_replies: replies to pub connections are dropped (the instance never reads them).
  * gate_pub: requests of pub connections are kept back until open_gate() (the subscriber link still flows).
  * refuse: new connections are closed at once.
  * cut(): aborts every current connection, both sides.
"""

import asyncio

from cluster_harness import quiet_port


class GateProxy:

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.port = None
        self.swallow_pub_replies = False
        self.gate_pub = False
        self.refuse = False
        self._gated = []
        self._server = None
        self._conns = []
        self._tasks = set()

    async def start(self):
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", quiet_port())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def _spawn(self, coro):
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _serve(self, c_reader, c_writer):
        if self.refuse:
            c_writer.transport.abort()
            return
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            c_writer.transport.abort()
            return
        conn = {"role": None, "c": c_writer, "u": u_writer}
        self._conns.append(conn)

        async def up():
            seen = b""
            while True:
                data = await c_reader.read(65536)
                if not data:
                    u_writer.close()
                    return
                if conn["role"] is None:
                    seen += data
                    if b":pub\r\n" in seen:
                        conn["role"] = "pub"
                    elif b":sub\r\n" in seen:
                        conn["role"] = "sub"
                if self.gate_pub and conn["role"] == "pub":
                    self._gated.append((u_writer, data))
                    continue
                u_writer.write(data)
                await u_writer.drain()

        async def down():
            while True:
                data = await u_reader.read(65536)
                if not data:
                    c_writer.close()
                    return
                if self.swallow_pub_replies and conn["role"] == "pub":
                    continue
                c_writer.write(data)
                await c_writer.drain()

        self._spawn(up())
        self._spawn(down())

    def open_gate(self):
        self.gate_pub = False
        for w, data in self._gated:
            if not w.is_closing():
                w.write(data)
        self._gated = []

    def cut(self):
        for conn in self._conns:
            for w in (conn["c"], conn["u"]):
                try:
                    w.transport.abort()
                except Exception:  # noqa: BLE001 -- already gone
                    pass
        self._conns = []

    async def close(self):
        if self._server is not None:
            self._server.close()
        self.cut()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
