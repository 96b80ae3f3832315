# Process lifecycle (PROTOCOL.md sections 1 and 6): SIGTERM/SIGINT shutdown and the /healthz connection count.
# Rule: on a stop signal every client gets close 1001 and the process exits 0 within 5 s, sanitizer-clean.
import asyncio
import json
import signal
import sys
import time
import unittest

from roomcast_harness import (OP_CLOSE, STOP_TIMEOUT, TIMEOUT, HttpConn, RawWs, RoomcastServer, RoomcastTestCase,
                              WsClient, healthz, quiet_slow_callback_warnings, unique, user)


class Shutdown(unittest.IsolatedAsyncioTestCase):
    """Each test owns its server, since each test stops it."""

    async def asyncSetUp(self):
        quiet_slow_callback_warnings()

    def setUp(self):
        self.server = RoomcastServer(name=self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.port = self.server.port

    async def shutdown_with_clients(self, sig):
        room = unique("bye")
        clients = []
        for i in range(3):
            c = await WsClient.connect(self.port, label="c%d" % i)
            await c.hello(user("u%d" % i))
            if i < 2:
                await c.join(room)
            clients.append(c)
        raw = await RawWs.connect(self.port, "/ws?room=%s&name=Raw" % room)
        await raw.expect_json("joined")
        raw_quiet = await RawWs.connect(self.port)  # will not answer the close frame
        half_http = await HttpConn.open(self.port)
        await half_http.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # an unfinished request

        t0 = time.monotonic()
        self.server.signal(sig)
        for c in clients:
            await c.expect_close(1001, timeout=STOP_TIMEOUT + 1)
        await raw.expect_close(1001, timeout=STOP_TIMEOUT + 1, reply=True, eof_timeout=STOP_TIMEOUT + 1)
        await raw_quiet.expect_close(1001, timeout=STOP_TIMEOUT + 1, reply=False)
        code = self.server.wait_exit(max(0.1, STOP_TIMEOUT - (time.monotonic() - t0)) + 0.5)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(code, "server still running %.1fs after %s" % (elapsed, sig.name))
        self.assertEqual(code, 0, "exit code after %s\n%s" % (sig.name, self.server.log_tail()))
        self.assertLess(elapsed, STOP_TIMEOUT + 0.5)
        self.assertEqual(self.server.sanitizer_reports(), [], self.server.log_tail())
        # every socket is gone with the process
        await raw_quiet.expect_eof(2)
        self.assertTrue(await half_http.closed_by_peer(2))
        half_http.close()
        # stopped accepting
        with self.assertRaises(OSError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 2)

    async def test_sigterm_closes_clients_1001_and_exits_0(self):
        await self.shutdown_with_clients(signal.SIGTERM)

    async def test_sigint_closes_clients_1001_and_exits_0(self):
        await self.shutdown_with_clients(signal.SIGINT)

    async def test_sigterm_idle_server(self):
        t0 = time.monotonic()
        self.server.signal(signal.SIGTERM)
        self.assertEqual(self.server.wait_exit(STOP_TIMEOUT), 0, self.server.log_tail())
        self.assertLess(time.monotonic() - t0, STOP_TIMEOUT)
        self.assertEqual(self.server.sanitizer_reports(), [])

    async def test_sigterm_during_traffic(self):
        room = unique("busy")
        a = await WsClient.connect(self.port, label="a")
        b = await WsClient.connect(self.port, label="b")
        await a.join(room)
        await b.join(room)

        async def chatter():
            i = 0
            try:
                while True:
                    await a.send({"type": "chat", "roomId": room, "message": "busy %d" % i})
                    i += 1
                    await asyncio.sleep(0.01)
            except Exception:
                return i

        task = asyncio.ensure_future(chatter())
        first = await b.wait_for("chat")
        self.server.signal(signal.SIGTERM)
        rest = await b.expect_close(1001, timeout=STOP_TIMEOUT + 1)
        # what b got before the close is the unbroken sequence: nothing queued for it was dropped midway
        got = [first["message"]] + [json.loads(r)["message"] for r in rest if json.loads(r).get("type") == "chat"]
        start = int(got[0].split()[1])
        self.assertEqual(got, ["busy %d" % i for i in range(start, start + len(got))])
        await a.expect_close(1001, timeout=STOP_TIMEOUT + 1)
        await asyncio.wait_for(task, TIMEOUT)
        self.assertEqual(self.server.wait_exit(STOP_TIMEOUT), 0, self.server.log_tail())
        self.assertEqual(self.server.sanitizer_reports(), [])

    def tearDown(self):
        if RoomcastTestCase._failed_so_far(self):
            sys.stderr.write("\n----- server log after failed %s -----\n%s\n----- end -----\n"
                             % (self.id(), self.server.log_tail(60)))
        if self.server.proc is not None and self.server.proc.poll() is None:
            self.server.stop()


class Connections(RoomcastTestCase):

    async def wait_count(self, expected, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            n = (await healthz(self.port))["connections"]
            if n == expected or time.monotonic() > deadline:
                return n
            await asyncio.sleep(0.05)

    async def test_healthz_connections_follow_clients(self):
        base = (await healthz(self.port))["connections"]
        clients = [await self.client(label="c%d" % i) for i in range(3)]
        self.assertEqual(await self.wait_count(base + 3), base + 3)
        raw = await self.raw()
        self.assertEqual(await self.wait_count(base + 4), base + 4)
        await clients[0].close()
        self.assertEqual(await self.wait_count(base + 3), base + 3)
        raw.writer.transport.abort()
        self.assertEqual(await self.wait_count(base + 2), base + 2)
        for c in clients[1:]:
            await c.close()
        self.assertEqual(await self.wait_count(base), base)

    async def test_many_connections(self):
        base = (await healthz(self.port))["connections"]
        room = unique("many")
        clients = []
        for i in range(50):
            c = await self.client(label="m%d" % i)
            clients.append(c)
        self.assertEqual(await self.wait_count(base + 50), base + 50)
        for c in clients:
            await c.send({"type": "join", "roomId": room})
        for c in clients:
            await c.wait_for("joined")
        self.assertEqual((await self.get("/rooms/" + room)).json()["count"], 50)
        await clients[0].send({"type": "chat", "roomId": room, "message": "to all"})
        for c in clients:
            self.assertEqual((await c.wait_for("chat"))["message"], "to all")
        await asyncio.gather(*(c.close() for c in clients))
        self.assertEqual(await self.wait_count(base), base)
        self.assertEqual((await self.get("/rooms/" + room)).json()["count"], 0)


if __name__ == "__main__":
    unittest.main()
