# The server API on one standalone instance (PROTOCOL.md section 9): key, bodies, publish, disconnect, room state.
# Rule: an API chat is a member's chat in every respect (event, history, ack id, order); refusals are exact.

import asyncio
import json
import time

from roomcast_harness import (HttpConn, bound_hits, RoomcastServer, RoomcastTestCase, WsClient, http_request, id_parts, req, unique,
                              user)

PLAIN_KEY = "s3cret-api-key"


def api(port, method, path, body=None, key=PLAIN_KEY, header="bearer", extra=()):
    headers = [("Connection", "close")] + list(extra)
    if key is not None:
        headers.append(("Authorization", "Bearer " + key) if header == "bearer" else ("X-API-Key", key))
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    if method == "POST" and not data:
        headers.append(("Content-Length", "0"))
    return http_request(port, req(method, path, port, headers, data))


class ApiStandalone(RoomcastTestCase):
    server_args = ["--api-key", PLAIN_KEY]

    async def client(self, uid, room=None):
        c = await WsClient.connect(self.port, label=uid)
        self._clients.append(c)
        await c.hello(user(uid))
        if room:
            await c.join(room)
        return c

    async def test_key_required_both_forms(self):
        room = unique("k")
        for header in ("bearer", "x-api-key"):
            with self.subTest(header=header):
                r = await api(self.port, "GET", "/api/rooms/" + room, header=header)
                self.assertEqual(r.status, 200, r)
                for bad in ("wrong", PLAIN_KEY + "x", PLAIN_KEY[:-1], ""):
                    r = await api(self.port, "GET", "/api/rooms/" + room, key=bad, header=header)
                    self.assertEqual(r.status, 401, (bad, r))
                    self.assertEqual(r.json(), {"error": "unauthorized"})
        r = await api(self.port, "GET", "/api/rooms/" + room, key=None)
        self.assertEqual((r.status, r.json()), (401, {"error": "unauthorized"}))
        r = await api(self.port, "POST", "/api/publish", {"roomId": room, "message": "x"}, key=None)
        self.assertEqual(r.status, 401, r)
        # Another scheme than Bearer is no key.
        r = await api(self.port, "GET", "/api/rooms/" + room, key=None, extra=[("Authorization", "Basic " + PLAIN_KEY)])
        self.assertEqual(r.status, 401, r)
        # Unknown API paths need the key too, then are 404.
        r = await api(self.port, "GET", "/api/nothing", key=None)
        self.assertEqual(r.status, 401, r)
        r = await api(self.port, "GET", "/api/nothing")
        self.assertEqual(r.status, 404, r)
        # The key is never logged (the harness's first line is the command line it ran).
        logged = [line for line in self.server.log().splitlines() if not line.startswith("### ")]
        self.assertFalse([line for line in logged if PLAIN_KEY in line], logged)

    async def test_publish_reaches_members_history_and_ack_order(self):
        room = unique("pub")
        a = await self.client("ann", room)
        b = await self.client("ben", room)
        r = await api(self.port, "POST", "/api/publish", {"roomId": room, "message": "from the backend"})
        self.assertEqual(r.status, 200, r)
        chat_id = r.json()["id"]
        self.assertEqual(set(r.json()), {"id"})
        for c in (a, b):
            ev = await c.wait_for("chat")
            self.assertEqual(ev["id"], chat_id)
            self.assertEqual(ev["user"], {"id": "server", "name": "server"})
            self.assertEqual(ev["message"], "from the backend")
            self.assertEqual(ev["roomId"], room)
        # With a user; then a member's chat comes after it.
        r = await api(self.port, "POST", "/api/publish", {"roomId": room, "message": "hi", "user": user("bot")})
        self.assertEqual(r.status, 200, r)
        ev = await a.wait_for("chat")
        self.assertEqual((ev["id"], ev["user"]), (r.json()["id"], user("bot")))
        await a.send({"type": "chat", "roomId": room, "message": "member", "ref": 1})
        ev = await a.wait_for("chat")
        ack = await a.expect("ack", ref=1)
        self.assertEqual(ack["id"], ev["id"])
        self.assertGreater(id_parts(ev["id"]), id_parts(r.json()["id"]))
        # History (joined and the API's room state) holds the published chats, oldest first.
        c = await self.client("cat")
        joined = await c.join(room)
        self.assertEqual([m["message"] for m in joined["history"]], ["from the backend", "hi", "member"])
        r = await api(self.port, "GET", "/api/rooms/" + room)
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["roomId"], room)
        self.assertEqual(body["count"], 3)
        self.assertEqual(sorted(m["id"] for m in body["members"]), ["ann", "ben", "cat"])
        self.assertEqual(body["history"], joined["history"])
        self.assertNotIn("truncated", body)

    async def test_publish_refusals(self):
        room = unique("bad")
        cases = [
            (b"not json", 400, "bad_request"),
            (b"[1,2]", 400, "bad_request"),
            (b"\"str\"", 400, "bad_request"),
            (b"", 400, "bad_request"),
            (json.dumps({"message": "m"}).encode(), 400, "bad_request"),
            (json.dumps({"roomId": room}).encode(), 400, "bad_request"),
            (json.dumps({"roomId": room, "message": ""}).encode(), 400, "bad_request"),
            (json.dumps({"roomId": room, "message": 5}).encode(), 400, "bad_request"),
            (json.dumps({"roomId": room, "message": "m", "user": {"id": "x y", "name": "n"}}).encode(), 400, "bad_request"),
            (json.dumps({"roomId": "bad room!", "message": "m"}).encode(), 400, "bad_room"),
            (json.dumps({"roomId": room, "message": "x" * 16385}).encode(), 400, "too_large"),
        ]
        for body, status, code in cases:
            with self.subTest(body=body[:60]):
                r = await api(self.port, "POST", "/api/publish", body)
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.json()["error"], code, r)
        r = await api(self.port, "POST", "/api/publish", {"roomId": room, "message": "x" * 16384})
        self.assertEqual(r.status, 200, r)
        r = await api(self.port, "POST", "/api/disconnect", {"user": "x"})
        self.assertEqual((r.status, r.json()["error"]), (400, "bad_request"))
        r = await api(self.port, "GET", "/api/rooms/bad%20room")
        self.assertEqual((r.status, r.json()["error"]), (400, "bad_room"))

    async def test_body_bounds(self):
        room = unique("big")
        # Over 64 KiB: 413, whatever the body.
        body = json.dumps({"roomId": room, "message": "m", "pad": "p" * 65536}).encode()
        r = await api(self.port, "POST", "/api/publish", body)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(r.json()["error"], "too_large")
        self.assertGreaterEqual((await bound_hits(self.port))["api_body"], 1)
        # Just 64 KiB is read (and is then refused for its message, not its size).
        body = json.dumps({"roomId": room, "message": "x" * 16385, "pad": ""}).encode()
        body = body[:-2] + b"p" * (65536 - len(body)) + b"\"}"
        self.assertEqual(len(body), 65536)
        r = await api(self.port, "POST", "/api/publish", body)
        self.assertEqual((r.status, r.json()["error"]), (400, "too_large"))
        # Transfer-Encoding is still refused.
        data = req("POST", "/api/publish", self.port, [("Authorization", "Bearer " + PLAIN_KEY),
                                                       ("Transfer-Encoding", "chunked")]) + b"0\r\n\r\n"
        r = await http_request(self.port, data)
        self.assertEqual(r.status, 400, r)
        # A body sent in pieces, then a pipelined request on the same connection: both answered in order.
        conn = await HttpConn.open(self.port)
        try:
            payload = json.dumps({"roomId": room, "message": "slow"}).encode()
            head = req("POST", "/api/publish", self.port, [("Authorization", "Bearer " + PLAIN_KEY),
                                                          ("Content-Length", str(len(payload)))])
            await conn.send(head + payload[:5])
            await asyncio.sleep(0.2)
            await conn.send(payload[5:] + req("GET", "/api/rooms/" + room, self.port,
                                              [("X-API-Key", PLAIN_KEY)]))
            r1 = await conn.read_response("POST")
            r2 = await conn.read_response("GET")
            self.assertEqual(r1.status, 200, r1)
            self.assertEqual(r2.status, 200, r2)
            self.assertEqual([m["id"] for m in r2.json()["history"]], [r1.json()["id"]])
        finally:
            conn.close()
        # The other POST keeps its 1 KiB bound.
        r = await http_request(self.port, req("POST", "/create-room", self.port, [("Connection", "close")], b"x" * 2000))
        self.assertEqual(r.status, 400, r)

    async def test_incomplete_body_is_closed(self):
        # The request deadline (10 s from the connection's start) covers the body as well as the head.
        conn = await HttpConn.open(self.port)
        try:
            await conn.send(req("POST", "/api/publish", self.port, [("X-API-Key", PLAIN_KEY), ("Content-Length", "100")])
                            + b'{"roomId":')
            t0 = time.monotonic()
            closed = await conn.closed_by_peer(25)
            elapsed = time.monotonic() - t0
            self.assertTrue(closed, "a request with half its body was kept open for 25 s")
            self.assertGreater(elapsed, 5, "closed after %.1fs, before the 10 s deadline" % elapsed)
            self.assertEqual(conn.extra, b"", "nothing is answered to half a request")
        finally:
            conn.close()

    async def test_disconnect(self):
        room = unique("dis")
        a1 = await self.client("ann", room)
        a2 = await self.client("ann")
        b = await self.client("ben", room)
        r = await api(self.port, "POST", "/api/disconnect", {"userId": "ann"})
        self.assertEqual((r.status, r.json()), (200, {"ok": True}))
        for c in (a1, a2):
            await c.expect_close(4003)
            self.assertEqual(c.ws.close_reason, "disconnected by the server")
        await b.wait_for("presence", pred=lambda m: m["event"] == "leave" and m["user"]["id"] == "ann")
        await b.ping()
        # Nobody of that name: still 200.
        r = await api(self.port, "POST", "/api/disconnect", {"userId": "nobody"}, header="x-api-key")
        self.assertEqual((r.status, r.json()), (200, {"ok": True}))
        await b.ping()

    async def test_metrics_count_calls(self):
        room = unique("m")
        await api(self.port, "GET", "/api/rooms/" + room)
        await api(self.port, "GET", "/api/rooms/" + room, key="nope")
        r = await http_request(self.port, req("GET", "/metrics", self.port, [("Connection", "close")]))
        text = r.body.decode()
        self.assertRegex(text, r'roomcast_api_requests_total\{route="rooms",status="200"\} [1-9]')
        self.assertRegex(text, r'roomcast_api_requests_total\{route="rooms",status="401"\} [1-9]')


class ApiOff(RoomcastTestCase):

    async def test_api_is_404_without_key(self):
        for method, path, body in (("GET", "/api/rooms/r1", None), ("POST", "/api/publish", {"roomId": "r", "message": "m"}),
                                   ("POST", "/api/disconnect", {"userId": "u"})):
            for key in (None, "anything"):
                with self.subTest(path=path, key=key):
                    r = await api(self.port, method, path, body, key=key)
                    self.assertEqual(r.status, 404, r)


class ApiKeyFromEnvironment(RoomcastTestCase):

    @classmethod
    def setUpClass(cls):
        # RoomcastTestCase starts the server with arguments only; this one takes the key from ROOMCAST_API_KEY.
        super(RoomcastTestCase, cls).setUpClass()
        cls.server = RoomcastServer([], name=cls.__name__, env={"ROOMCAST_API_KEY": "env-key"})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.port = cls.server.port

    async def test_env_key(self):
        r = await api(self.port, "GET", "/api/rooms/r1", key="env-key")
        self.assertEqual((r.status, r.json()["count"]), (200, 0))
        r = await api(self.port, "GET", "/api/rooms/r1", key=PLAIN_KEY)
        self.assertEqual(r.status, 401, r)
