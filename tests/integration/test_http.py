# HTTP side of the single port (PROTOCOL.md section 1): static files, rooms API, health, metrics, malformed requests.
# Rule: every request is exact bytes on a raw socket, and after each bad request a fresh client is still served.
import asyncio
import json
import os
import re
import time

from roomcast_harness import (GENERATED_ROOM_RE, HttpConn, RoomcastTestCase, WsClient, req, static_dir, unique,
                              user)


def read_static(name):
    path = os.path.join(static_dir(), name)
    if not os.path.exists(path):
        raise AssertionError("the static folder %s has no %s" % (static_dir(), name))
    with open(path, "rb") as f:
        return f.read()


class StaticFiles(RoomcastTestCase):

    async def test_root_serves_index_html(self):
        expected = read_static("index.html")
        resp = await self.get("/")
        self.assertEqual(resp.status, 200, resp)
        self.assertRegex(resp.header("Content-Type", ""), r"^text/html\b", resp)
        self.assertEqual(resp.body, expected)

    async def test_index_html_by_name(self):
        resp = await self.get("/index.html")
        self.assertEqual(resp.status, 200, resp)
        self.assertRegex(resp.header("Content-Type", ""), r"^text/html\b", resp)
        self.assertEqual(resp.body, read_static("index.html"))

    async def test_js_and_css_content_types(self):
        for name, ctype in (("app.js", r"^(application|text)/javascript\b"), ("style.css", r"^text/css\b")):
            with self.subTest(name=name):
                expected = read_static(name)
                resp = await self.get("/" + name)
                self.assertEqual(resp.status, 200, resp)
                self.assertRegex(resp.header("Content-Type", ""), ctype, resp)
                self.assertEqual(resp.body, expected)

    async def test_query_string_ignored_for_static(self):
        resp = await self.get("/app.js?v=123")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, read_static("app.js"))

    async def test_unknown_path_404(self):
        for path in ("/nope.txt", "/no/such/dir/", "/index.html/extra", "/rooms", "/healthzz"):
            with self.subTest(path=path):
                resp = await self.get(path)
                self.assertEqual(resp.status, 404, resp)

    async def test_path_traversal_404(self):
        # client-web/../CMakeLists.txt exists (repo root), as does /etc/passwd: none may leak.
        attempts = [
            "/../CMakeLists.txt",
            "/%2e%2e/CMakeLists.txt",
            "/%2E%2E/CMakeLists.txt",
            "/..%2fCMakeLists.txt",
            "/..%2FCMakeLists.txt",
            "/%2e%2e%2fCMakeLists.txt",
            "/.%2e/CMakeLists.txt",
            "/%2e./CMakeLists.txt",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/..%2f..%2fetc/passwd",
            "/../../../../../../etc/passwd",
            "/%2E%2E/",
            "/..",
            "/../",
            "//etc/passwd",
            "///etc/passwd",
            "/%2fetc/passwd",
            "/%2Fetc%2Fpasswd",
            "/%5c..%5c..%5cetc%5cpasswd",
            "/..%5c..%5cetc%5cpasswd",
            "/..%5CCMakeLists.txt",
            "/%252e%252e/CMakeLists.txt",
            "/./../CMakeLists.txt",
            "/css/../../CMakeLists.txt",
            "/index.html/../../CMakeLists.txt",
            "/%00../CMakeLists.txt",
        ]
        for path in attempts:
            with self.subTest(path=path):
                resp = await self.get(path)
                self.assertNotIn(b"cmake_minimum_required", resp.body, resp)
                self.assertNotIn(b"root:", resp.body, resp)
                self.assertEqual(resp.status, 404, "%s -> %r" % (path, resp))
        await self.assert_server_works()

    async def test_path_traversal_raw_backslashes(self):
        # A raw backslash may be rejected by the parser (400) or resolved to nothing (404); never a file.
        for path in ("/..\\CMakeLists.txt", "/..\\..\\etc\\passwd", "/\\etc\\passwd", "/\\..\\CMakeLists.txt"):
            with self.subTest(path=path):
                resp = await self.get(path)
                self.assertNotIn(b"cmake_minimum_required", resp.body, resp)
                self.assertNotIn(b"root:", resp.body, resp)
                self.assertIn(resp.status, (400, 404), "%s -> %r" % (path, resp))
        await self.assert_server_works()


class RoomsApi(RoomcastTestCase):

    async def create_room(self, headers=()):
        resp = await self.http(req("POST", "/create-room", self.port,
                                   list(headers) + [("Content-Length", "0"), ("Connection", "close")]))
        return resp

    async def test_create_room(self):
        ids = set()
        for _ in range(3):
            resp = await self.create_room()
            self.assertEqual(resp.status, 201, resp)
            self.assertRegex(resp.header("Content-Type", ""), r"^application/json\b", resp)
            body = resp.json()
            self.assertEqual(set(body), {"roomId"}, body)
            self.assertRegex(body["roomId"], GENERATED_ROOM_RE)
            ids.add(body["roomId"])
        self.assertEqual(len(ids), 3, "create-room returned a repeated id: %r" % ids)

    async def test_create_room_without_content_length(self):
        resp = await self.http(req("POST", "/create-room", self.port, [("Connection", "close")]))
        self.assertEqual(resp.status, 201, resp)
        self.assertRegex(resp.json()["roomId"], GENERATED_ROOM_RE)

    async def test_created_room_is_empty(self):
        room = (await self.create_room()).json()["roomId"]
        for prefix in ("/rooms/", "/join-room/"):
            with self.subTest(prefix=prefix):
                resp = await self.get(prefix + room)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.json(), {"roomId": room, "members": [], "count": 0, "ws": "/ws?room=" + room})

    async def test_room_info_for_unknown_room(self):
        for room in (unique("empty"), "A", "a" * 64, "Az09_-.:x"):
            for prefix in ("/rooms/", "/join-room/"):
                with self.subTest(room=room, prefix=prefix):
                    resp = await self.get(prefix + room)
                    self.assertEqual(resp.status, 200, resp)
                    self.assertRegex(resp.header("Content-Type", ""), r"^application/json\b", resp)
                    self.assertEqual(resp.json(),
                                     {"roomId": room, "members": [], "count": 0, "ws": "/ws?room=" + room})

    async def test_room_info_bad_id(self):
        for room in ("a" * 65, "bad!id", "bad%20id", "%C3%A9t%C3%A9", "bad%2Fid"):
            for prefix in ("/rooms/", "/join-room/"):
                with self.subTest(room=room, prefix=prefix):
                    resp = await self.get(prefix + room)
                    self.assertEqual(resp.status, 400, resp)
                    self.assertEqual(resp.json(), {"error": "bad_room"})

    async def test_room_info_lists_members(self):
        room = unique("members")
        a = await self.client(label="a")
        await a.hello(user("alice", "Alice"))
        await a.join(room)
        b = await self.client(label="b")
        await b.hello(user("bob", "Bob"))
        await b.join(room)
        resp = await self.get("/rooms/" + room)
        self.assertEqual(resp.status, 200, resp)
        body = resp.json()
        self.assertEqual(body["roomId"], room)
        self.assertEqual(body["count"], 2, body)
        self.assertEqual(sorted(m["id"] for m in body["members"]), ["alice", "bob"], body)
        self.assertIn({"id": "alice", "name": "Alice"}, body["members"])
        self.assertEqual(body["ws"], "/ws?room=" + room)
        await b.close()
        deadline = time.monotonic() + 5
        while True:
            body = (await self.get("/join-room/" + room)).json()
            if body["count"] == 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        self.assertEqual(body["count"], 1, body)
        self.assertEqual(body["members"], [{"id": "alice", "name": "Alice"}])


class Health(RoomcastTestCase):

    async def test_healthz(self):
        resp = await self.get("/healthz")
        self.assertEqual(resp.status, 200, resp)
        self.assertRegex(resp.header("Content-Type", ""), r"^application/json\b", resp)
        body = resp.json()
        self.assertEqual(body.get("status"), "ok", body)
        self.assertEqual(body.get("redis"), "standalone", body)
        self.assertIsInstance(body.get("connections"), int, body)
        self.assertGreaterEqual(body["connections"], 0)

    @staticmethod
    def parse_metrics(text):
        """{name: [(labels, value)]}; asserts the Prometheus text format line by line."""
        metrics = {}
        sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$')
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line) or not \
                    re.match(r"^# (HELP|TYPE)", line), "bad comment line %r" % line
                continue
            m = sample.match(line)
            assert m, "not a Prometheus sample line: %r" % line
            value = m.group(3)
            assert re.match(r"^([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN)$", value), \
                "bad sample value in %r" % line
            metrics.setdefault(m.group(1), []).append((m.group(2) or "", float(value)))
        return metrics

    def find(self, metrics, *patterns):
        names = [n for n in metrics if all(re.search(p, n) for p in patterns)]
        self.assertTrue(names, "no metric matching %r among %r" % (patterns, sorted(metrics)))
        return sum(v for n in names for _, v in metrics[n])

    async def test_metrics(self):
        room = unique("metrics")
        a = await self.client(label="a")
        await a.join(room)
        resp = await self.get("/metrics")
        self.assertEqual(resp.status, 200, resp)
        self.assertRegex(resp.header("Content-Type", ""), r"^text/plain\b", resp)
        before = self.parse_metrics(resp.body.decode("utf-8"))
        self.assertGreaterEqual(self.find(before, r"connection"), 1)
        self.assertGreaterEqual(self.find(before, r"(^|_)rooms?(_|$)"), 1)
        in0 = self.find(before, r"message", r"(_in\b|_in_|received|inbound)")
        out0 = self.find(before, r"message", r"(_out\b|_out_|sent|outbound|delivered)")
        bytes0 = self.find(before, r"bytes", r"(out|sent)")
        self.assertGreaterEqual(self.find(before, r"slow"), 0)
        self.assertGreaterEqual(self.find(before, r"reconnect"), 0)
        # a publish latency histogram: TYPE histogram, cumulative buckets ending at +Inf == _count
        text = resp.body.decode("utf-8")
        hists = re.findall(r"^# TYPE (\S+) histogram$", text, re.M)
        self.assertTrue(hists, "no histogram in /metrics")
        h = hists[0]
        buckets = [v for labels, v in before.get(h + "_bucket", [])]
        self.assertTrue(buckets, "histogram %s has no buckets" % h)
        self.assertEqual(buckets, sorted(buckets), "buckets of %s not cumulative" % h)
        self.assertIn('le="+Inf"', "".join(labels for labels, _ in before[h + "_bucket"]))
        self.assertEqual(buckets[-1], before[h + "_count"][0][1])
        self.assertIn(h + "_sum", before)
        for i in range(3):
            await a.send({"type": "chat", "roomId": room, "message": "metric %d" % i})
            await a.expect("chat")
        after = self.parse_metrics((await self.get("/metrics")).body.decode("utf-8"))
        self.assertGreater(self.find(after, r"message", r"(_in\b|_in_|received|inbound)"), in0)
        self.assertGreater(self.find(after, r"message", r"(_out\b|_out_|sent|outbound|delivered)"), out0)
        self.assertGreater(self.find(after, r"bytes", r"(out|sent)"), bytes0)


class KeepAlive(RoomcastTestCase):

    async def test_two_requests_on_one_connection(self):
        conn = await HttpConn.open(self.port)
        try:
            r1 = await conn.request(req("GET", "/healthz", self.port))
            self.assertEqual(r1.status, 200, r1)
            r2 = await conn.request(req("GET", "/rooms/" + unique(), self.port))
            self.assertEqual(r2.status, 200, r2)
            r3 = await conn.request(req("POST", "/create-room", self.port, [("Content-Length", "0")]))
            self.assertEqual(r3.status, 201, r3)
            r4 = await conn.request(req("GET", "/nope", self.port))
            self.assertEqual(r4.status, 404, r4)
            r5 = await conn.request(req("GET", "/healthz", self.port))
            self.assertEqual(r5.status, 200, r5)
        finally:
            conn.close()

    async def test_pipelined_requests(self):
        conn = await HttpConn.open(self.port)
        try:
            await conn.send(req("GET", "/healthz", self.port) + req("GET", "/rooms/pipe", self.port))
            r1 = await conn.read_response()
            r2 = await conn.read_response()
            self.assertEqual(r1.status, 200, r1)
            self.assertEqual(r1.json()["status"], "ok")
            self.assertEqual(r2.status, 200, r2)
            self.assertEqual(r2.json()["roomId"], "pipe")
        finally:
            conn.close()

    async def test_connection_close_honoured(self):
        conn = await HttpConn.open(self.port)
        try:
            r = await conn.request(req("GET", "/healthz", self.port, [("Connection", "close")]))
            self.assertEqual(r.status, 200)
            self.assertTrue(await conn.closed_by_peer(5), "server kept the connection after Connection: close")
        finally:
            conn.close()


class BadRequests(RoomcastTestCase):
    """Each bad request gets its status, then the connection is closed and a fresh client is still served."""

    async def expect_rejected(self, data, status):
        conn = await HttpConn.open(self.port)
        try:
            await conn.send(data)
            resp = await conn.read_response()
            self.assertEqual(resp.status, status, "request %r -> %r" % (data[:200], resp))
            self.assertTrue(await conn.closed_by_peer(5), "connection not closed after %d" % status)
            self.assertEqual(conn.extra, b"", "bytes after the error response")
        finally:
            conn.close()
        await self.assert_server_works()
        return resp

    async def test_head_over_16k(self):
        big = "a" * (17 * 1024)
        await self.expect_rejected(req("GET", "/healthz", self.port, [("X-Big", big)]), 431)

    async def test_head_over_16k_in_many_headers(self):
        headers = [("X-H%d" % i, "b" * 300) for i in range(60)]  # ~18 KiB, 61 headers
        await self.expect_rejected(req("GET", "/healthz", self.port, headers), 431)

    async def test_head_over_16k_in_url(self):
        await self.expect_rejected(req("GET", "/" + "x" * (17 * 1024), self.port), 431)

    async def test_head_just_under_16k_is_fine(self):
        data = req("GET", "/healthz", self.port, [("Connection", "close"), ("X-Pad", "")])
        pad = 15 * 1024 - len(data)
        data = req("GET", "/healthz", self.port, [("Connection", "close"), ("X-Pad", "p" * pad)])
        self.assertLess(len(data), 16 * 1024)
        resp = await self.http(data)
        self.assertEqual(resp.status, 200, resp)

    async def test_over_100_headers(self):
        headers = [("X-H%d" % i, "v") for i in range(105)]
        await self.expect_rejected(req("GET", "/healthz", self.port, headers), 431)

    async def test_100_headers_is_fine(self):
        headers = [("X-H%d" % i, "v") for i in range(98)] + [("Connection", "close")]  # + Host = 100
        resp = await self.http(req("GET", "/healthz", self.port, headers))
        self.assertEqual(resp.status, 200, resp)

    async def test_transfer_encoding_chunked(self):
        await self.expect_rejected(req("POST", "/create-room", self.port, [("Transfer-Encoding", "chunked")])
                                   + b"0\r\n\r\n", 400)

    async def test_transfer_encoding_on_get(self):
        await self.expect_rejected(req("GET", "/healthz", self.port, [("Transfer-Encoding", "chunked")])
                                   + b"0\r\n\r\n", 400)

    async def test_bare_cr_in_head(self):
        data = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" \
            % self.port
        await self.expect_rejected(data, 400)

    async def test_bare_cr_in_request_line(self):
        data = b"GET /healthz\r HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % self.port
        await self.expect_rejected(data, 400)

    async def test_body_on_get(self):
        await self.expect_rejected(req("GET", "/healthz", self.port, [("Content-Length", "5")]) + b"hello", 400)

    async def test_body_on_get_static(self):
        await self.expect_rejected(req("GET", "/", self.port, [("Content-Length", "5")]) + b"hello", 400)

    async def test_malformed_request_lines(self):
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
            b"GET / HTTP/9.9x\r\nHost: x\r\n\r\n",
            b"GET  HTTP/1.1\r\nHost: x\r\n\r\n",
            b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / FTP/1.1\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS ClientHello
            b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        ]
        for data in cases:
            with self.subTest(data=data[:40]):
                await self.expect_rejected(data, 400)

    async def test_conflicting_content_length(self):
        data = req("POST", "/create-room", self.port, [("Content-Length", "0"), ("Content-Length", "3")]) + b"abc"
        await self.expect_rejected(data, 400)

    async def test_incomplete_head_is_closed(self):
        # Contract: a request head not complete within 10 s is closed.
        conn = await HttpConn.open(self.port)
        try:
            await conn.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            t0 = time.monotonic()
            closed = await conn.closed_by_peer(25)
            elapsed = time.monotonic() - t0
            self.assertTrue(closed, "an incomplete head was kept open for 25 s")
            self.assertGreater(elapsed, 5, "closed after %.1fs, before the 10 s head timeout" % elapsed)
        finally:
            conn.close()
        await self.assert_server_works()


class OriginOnHttp(RoomcastTestCase):

    async def test_create_room_foreign_origin_403(self):
        resp = await self.http(req("POST", "/create-room", self.port,
                                   [("Origin", "http://evil.example"), ("Content-Length", "0"),
                                    ("Connection", "close")]))
        self.assertEqual(resp.status, 403, resp)

    async def test_create_room_same_origin_allowed(self):
        resp = await self.http(req("POST", "/create-room", self.port,
                                   [("Origin", "http://127.0.0.1:%d" % self.port), ("Content-Length", "0"),
                                    ("Connection", "close")]))
        self.assertEqual(resp.status, 201, resp)

    async def test_create_room_other_port_403(self):
        resp = await self.http(req("POST", "/create-room", self.port,
                                   [("Origin", "http://127.0.0.1:%d" % (self.port ^ 1)), ("Content-Length", "0"),
                                    ("Connection", "close")]))
        self.assertEqual(resp.status, 403, resp)


if __name__ == "__main__":
    import unittest
    unittest.main()
