# Bounds of the HTTP side of the port (PROTOCOL.md sections 1 and 6): pipelined requests, output held for a
# client that does not read, --max-connections.
# Rule: a connection's reading is paused only while answers are pending and always resumes; its output never grows
# past --max-outbound by more than one answer, and the server's memory with it.
import asyncio
import time

from roomcast_harness import (TIMEOUT, HttpConn, RawWs, RedisServer, RoomcastTestCase, _body_mode,
                              _parse_head, bound_hits, build_frame, handshake_request, req, unique, OP_TEXT)

QUICK = 3.0  # a connection that is still read answers within this; one that is not, never


async def read_http(reader, method="GET", timeout=TIMEOUT):
    """One response from a StreamReader: (head bytes, body bytes, status)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, headers = _parse_head(head[:-4])
    status = int(status_line.split(" ")[1])
    mode = _body_mode(status, headers, method)
    body = b""
    if isinstance(mode, tuple):
        body = await asyncio.wait_for(reader.readexactly(mode[1]), timeout)
    return head, body, status


class PipelinedMixin:
    """Pipelined requests on one keep-alive connection, where /rooms/X may be answered later (Redis mode)."""

    async def test_two_room_requests_in_one_write_then_more(self):
        a, b = unique("pa"), unique("pb")
        conn = await HttpConn.open(self.port)
        self._clients.append(conn)
        await conn.send(req("GET", "/rooms/" + a, self.port) + req("GET", "/rooms/" + b, self.port))
        r1 = await conn.read_response()
        r2 = await conn.read_response()
        self.assertEqual((r1.status, r1.json()["roomId"]), (200, a), r1)
        self.assertEqual((r2.status, r2.json()["roomId"]), (200, b), r2)
        # The connection is still read: a third request on it is answered.
        r3 = await conn.request(req("GET", "/healthz", self.port), timeout=QUICK)
        self.assertEqual(r3.status, 200, r3)
        r4 = await conn.request(req("GET", "/rooms/" + a, self.port), timeout=QUICK)
        self.assertEqual(r4.json()["roomId"], a, r4)

    async def test_room_requests_mixed_with_static_in_one_write(self):
        rooms = [unique("pm") for _ in range(3)]
        conn = await HttpConn.open(self.port)
        self._clients.append(conn)
        data = b""
        for r in rooms:
            data += req("GET", "/rooms/" + r, self.port) + req("GET", "/healthz", self.port)
        await conn.send(data)
        for r in rooms:
            resp = await conn.read_response()
            self.assertEqual(resp.json()["roomId"], r, resp)
            resp = await conn.read_response()
            self.assertEqual(resp.json()["status"], "ok", resp)
        r = await conn.request(req("GET", "/rooms/" + rooms[0], self.port), timeout=QUICK)
        self.assertEqual(r.json()["roomId"], rooms[0], r)

    async def test_room_request_then_upgrade_in_one_write(self):
        room = unique("pu")
        ws = await RawWs.open(self.port)
        self._clients.append(ws)
        ws.key = "dGhlIHNhbXBsZSBub25jZQ=="
        await ws.send(req("GET", "/rooms/" + room, self.port) + handshake_request("/ws", self.port, key=ws.key))
        info = await ws.read_http_response()
        self.assertEqual((info.status, info.json()["roomId"]), (200, room), info)
        up = await ws.read_http_response()
        self.assertEqual(up.status, 101, up)
        # The WebSocket is read: a JSON ping is answered.
        await ws.send(build_frame(OP_TEXT, '{"type":"ping","ref":"after-upgrade"}'))
        pong = await ws.expect_json("pong", timeout=QUICK)
        self.assertEqual(pong.get("ref"), "after-upgrade", pong)


class PipelinedRedis(PipelinedMixin, RoomcastTestCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.addClassCleanup(cls.redis.cleanup)
        cls.redis.start()
        cls.server_args = ["--redis", cls.redis.url]
        super().setUpClass()


class PipelinedStandalone(PipelinedMixin, RoomcastTestCase):
    pass


N_PIPELINED = 20000
MAX_GROWTH_KIB = 32 * 1024


class HttpOutbound(RoomcastTestCase):
    # default --max-outbound (1 MiB)

    async def test_pipelined_answers_wait_for_a_client_that_reads(self):
        one = req("GET", "/app.js", self.port)
        conn = await RawWs.open(self.port)
        self._clients.append(conn)
        conn.pause_reading()
        base = self.server.rss_kib()
        conn.send_nowait(one * N_PIPELINED)
        # While the client reads nothing, the server holds at most about --max-outbound for it.
        peak = base
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            peak = max(peak, self.server.peak_rss_kib())
            if peak - base > MAX_GROWTH_KIB:
                break
        self.assertLess(peak - base, MAX_GROWTH_KIB,
                        "%d pipelined GET /app.js to a client that does not read: RSS from %d KiB to %d KiB"
                        % (N_PIPELINED, base, peak))
        self.assertGreaterEqual((await bound_hits(self.port))["http_outbound"], 1)
        # Once it reads, every answer comes, in order, all the same bytes.
        conn.resume_reading()
        head, body, status = await read_http(conn.reader)
        self.assertEqual(status, 200)
        expected = head + body
        left = (N_PIPELINED - 1) * len(expected)
        buf = bytearray()
        checked = 1
        deadline = time.monotonic() + 120
        while left > 0:
            chunk = await asyncio.wait_for(conn.reader.read(1 << 20), max(0.1, deadline - time.monotonic()))
            self.assertTrue(chunk, "EOF after %d of %d answers" % (checked, N_PIPELINED))
            left -= len(chunk)
            buf += chunk
            n = len(buf) // len(expected)
            view = memoryview(buf)
            for i in range(n):
                if view[i * len(expected):(i + 1) * len(expected)] != expected:
                    self.fail("answer %d differs from the first" % (checked + i))
            del view
            del buf[:n * len(expected)]
            checked += n
        self.assertEqual(checked, N_PIPELINED)
        self.assertFalse(buf)
        # and the connection is still served
        await conn.send(req("GET", "/healthz", self.port))
        _, _, status = await read_http(conn.reader, timeout=QUICK)
        self.assertEqual(status, 200)


MAX_CONNECTIONS = 3


class MaxConnections(RoomcastTestCase):
    server_args = ["--max-connections", str(MAX_CONNECTIONS)]

    async def upgrade(self):
        """A raw upgrade attempt: (response, RawWs)."""
        ws = await RawWs.open(self.port)
        self._clients.append(ws)
        await ws.send(handshake_request("/ws", self.port))
        return await ws.read_http_response(), ws

    async def test_upgrades_beyond_the_limit_get_503(self):
        clients = [await self.client(label="c%d" % i) for i in range(MAX_CONNECTIONS)]
        resp, ws = await self.upgrade()
        self.assertEqual(resp.status, 503, resp)
        self.assertEqual(resp.json()["error"], "unavailable", resp)
        self.assertIsInstance(resp.json().get("message"), str, resp)
        self.assertEqual(resp.header("Connection"), "close", resp)
        await ws.expect_eof()
        # plain HTTP is still served at the limit, and the ones in are untouched
        self.assertEqual((await self.get("/healthz")).status, 200)
        for c in clients:
            await c.ping()
        self.assertGreaterEqual((await bound_hits(self.port))["max_connections"], 1)
        # one leaves: a new one gets in
        await clients.pop().close()
        deadline = time.monotonic() + TIMEOUT
        while True:
            resp, ws = await self.upgrade()
            if resp.status == 101 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        self.assertEqual(resp.status, 101, resp)


if __name__ == "__main__":
    import unittest
    unittest.main()
