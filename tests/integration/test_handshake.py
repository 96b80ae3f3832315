# WebSocket opening handshake (PROTOCOL.md section 1, RFC 6455 section 4): accepted and refused upgrades, Origin.
# Rule: requests are exact bytes; a refused upgrade must never switch protocols.
import asyncio
import base64
import os

from roomcast_harness import (OP_PING, OP_PONG, OP_TEXT, HttpConn, RawWs, RoomcastTestCase, WsClient, build_frame,
                              handshake_request, new_ws_key, req, ws_accept)


class Handshake(RoomcastTestCase):

    async def upgrade(self, path="/ws", key=None, headers=(), method="GET", version="HTTP/1.1", omit=(), extra=b"",
                      host=None):
        """Send a handshake; returns (response, connection) with the connection still open."""
        conn = await HttpConn.open(self.port)
        self._clients.append(conn)
        await conn.send(handshake_request(path, self.port, key=key, headers=headers, method=method, version=version,
                                          omit=omit, host=host) + extra)
        resp = await conn.read_response("GET")
        return resp, conn

    def assert_switched(self, resp, key):
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("Upgrade", "").lower(), "websocket", resp)
        self.assertIn("upgrade", [t.strip().lower() for t in resp.header("Connection", "").split(",")], resp)
        self.assertEqual(resp.header("Sec-WebSocket-Accept"), ws_accept(key), resp)
        self.assertIsNone(resp.header("Sec-WebSocket-Extensions"), resp)
        self.assertIsNone(resp.header("Sec-WebSocket-Protocol"), resp)

    async def assert_ws_works(self, conn):
        """JSON ping over the upgraded connection -> JSON pong."""
        conn.writer.write(build_frame(OP_TEXT, b'{"type":"ping","ref":"hs"}'))
        raw = RawWs(conn.reader, conn.writer)
        msg = await raw.expect_json("pong")
        self.assertEqual(msg.get("ref"), "hs")

    async def test_upgrade_on_ws_path(self):
        key = new_ws_key()
        resp, conn = await self.upgrade("/ws", key=key)
        self.assert_switched(resp, key)
        await self.assert_ws_works(conn)

    async def test_upgrade_on_root_path(self):
        key = new_ws_key()
        resp, conn = await self.upgrade("/", key=key)
        self.assert_switched(resp, key)
        await self.assert_ws_works(conn)

    async def test_accept_value_rfc_example(self):
        # RFC 6455 section 1.3: key dGhlIHNhbXBsZSBub25jZQ== -> s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        resp, conn = await self.upgrade("/ws", key=key)
        self.assertEqual(resp.status, 101, resp)
        self.assertEqual(resp.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", resp)

    async def test_connection_keep_alive_upgrade(self):
        key = new_ws_key()
        resp, conn = await self.upgrade("/ws", key=key, headers=[("Connection", "keep-alive, Upgrade")])
        self.assert_switched(resp, key)
        await self.assert_ws_works(conn)

    async def test_header_names_and_tokens_case_insensitive(self):
        key = new_ws_key()
        data = ("GET /ws HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nupgrade: WebSocket\r\nconnection: upgrade\r\n"
                "sec-websocket-key: %s\r\nsec-websocket-version: 13\r\n\r\n" % (self.port, key)).encode()
        conn = await HttpConn.open(self.port)
        self._clients.append(conn)
        resp = await conn.request(data)
        self.assert_switched(resp, key)
        await self.assert_ws_works(conn)

    async def test_handshake_sent_byte_by_byte(self):
        key = new_ws_key()
        data = handshake_request("/ws", self.port, key=key)
        conn = await HttpConn.open(self.port)
        self._clients.append(conn)
        for i in range(len(data)):
            conn.writer.write(data[i:i + 1])
            await conn.writer.drain()
            if i % 16 == 0:
                await asyncio.sleep(0.002)
        resp = await conn.read_response()
        self.assert_switched(resp, key)
        await self.assert_ws_works(conn)

    async def test_version_8_gets_426(self):
        resp, conn = await self.upgrade(headers=[("Sec-WebSocket-Version", "8")])
        self.assertEqual(resp.status, 426, resp)
        self.assertEqual(resp.header("Sec-WebSocket-Version"), "13", resp)
        self.assertIsNone(resp.header("Sec-WebSocket-Accept"))
        await self.assert_server_works()

    async def test_bad_keys_get_400(self):
        keys = [
            "abc",
            base64.b64encode(os.urandom(15)).decode(),
            base64.b64encode(os.urandom(17)).decode(),
            "!!!!not-base64!!!!!!!==",
            "*" * 24,
            "",
        ]
        for key in keys:
            with self.subTest(key=key):
                resp, conn = await self.upgrade(key=key or " ")
                self.assertEqual(resp.status, 400, resp)
                self.assertIsNone(resp.header("Sec-WebSocket-Accept"))
        with self.subTest(key="missing"):
            resp, conn = await self.upgrade(omit=("sec-websocket-key",))
            self.assertEqual(resp.status, 400, resp)
        await self.assert_server_works()

    async def test_post_is_not_upgraded(self):
        for path in ("/ws", "/"):
            with self.subTest(path=path):
                resp, conn = await self.upgrade(path, method="POST", headers=[("Content-Length", "0")])
                self.assertNotEqual(resp.status, 101, resp)
                self.assertGreaterEqual(resp.status, 400, resp)
                self.assertIsNone(resp.header("Sec-WebSocket-Accept"))
        await self.assert_server_works()

    async def test_upgrade_on_other_paths_not_switched(self):
        for path in ("/healthz", "/app.js", "/rooms/abc", "/nope", "/ws/extra", "/wss"):
            with self.subTest(path=path):
                resp, conn = await self.upgrade(path)
                self.assertNotEqual(resp.status, 101, resp)
                self.assertIsNone(resp.header("Sec-WebSocket-Accept"))
        await self.assert_server_works()

    async def test_http10_is_not_upgraded(self):
        resp, conn = await self.upgrade("/ws", version="HTTP/1.0")
        self.assertNotEqual(resp.status, 101, resp)
        self.assertIsNone(resp.header("Sec-WebSocket-Accept"))
        await self.assert_server_works()

    async def test_permessage_deflate_offer_ignored(self):
        key = new_ws_key()
        resp, conn = await self.upgrade(key=key, headers=[
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
        self.assert_switched(resp, key)  # includes: no Sec-WebSocket-Extensions in the response
        await self.assert_ws_works(conn)

    async def test_library_client_offering_deflate(self):
        c = await self.client(compression="deflate")
        self.assertEqual(c.ws.extensions, [])
        await c.ping(ref=1)

    async def test_frames_in_same_write_as_request(self):
        frames = build_frame(OP_TEXT, b'{"type":"ping","ref":"early"}') + build_frame(OP_PING, b"early-ping")
        raw = await self.raw(extra=frames)
        got = [await raw.read_frame(), await raw.read_frame()]
        pongs = [f for f in got if f.opcode == OP_PONG]
        texts = [f for f in got if f.opcode == OP_TEXT]
        self.assertEqual(len(pongs), 1, got)
        self.assertEqual(pongs[0].payload, b"early-ping")
        self.assertEqual(len(texts), 1, got)
        self.assertEqual(texts[0].json(), {"type": "pong", "ref": "early"})

    async def test_foreign_origin_403(self):
        for origin in ("http://evil.example", "https://evil.example:%d" % self.port,
                       "http://127.0.0.1:%d" % (self.port ^ 1), "http://localhost:%d" % self.port, "null",
                       "http://127.0.0.1:%d.evil.example" % self.port, "http://127.0.0.1"):
            with self.subTest(origin=origin):
                resp, conn = await self.upgrade(headers=[("Origin", origin)])
                self.assertEqual(resp.status, 403, resp)
                self.assertIsNone(resp.header("Sec-WebSocket-Accept"))
        await self.assert_server_works()

    async def test_same_origin_allowed(self):
        for host, origin in (("127.0.0.1:%d" % self.port, "http://127.0.0.1:%d" % self.port),
                             ("127.0.0.1:%d" % self.port, "https://127.0.0.1:%d" % self.port),
                             ("localhost:%d" % self.port, "http://localhost:%d" % self.port)):
            with self.subTest(origin=origin, host=host):
                key = new_ws_key()
                resp, conn = await self.upgrade(key=key, host=host, headers=[("Origin", origin)])
                self.assert_switched(resp, key)
                await self.assert_ws_works(conn)

    async def test_no_origin_allowed(self):
        key = new_ws_key()
        resp, conn = await self.upgrade(key=key, omit=("origin",))
        self.assert_switched(resp, key)
        await self.assert_ws_works(conn)

    async def test_library_client_with_same_origin(self):
        c = await self.client(origin="http://127.0.0.1:%d" % self.port)
        await c.ping()


class AllowOrigin(RoomcastTestCase):
    server_args = ["--allow-origin", "app.example:3000,other.test:8443"]

    async def test_listed_origins_allowed(self):
        for origin in ("http://app.example:3000", "https://other.test:8443"):
            with self.subTest(origin=origin):
                raw = await self.raw(headers=[("Origin", origin)])
                await raw.send_text({"type": "ping", "ref": 7})
                self.assertEqual(await raw.expect_json("pong"), {"type": "pong", "ref": 7})
                resp = await self.http(req("POST", "/create-room", self.port,
                                           [("Origin", origin), ("Content-Length", "0"), ("Connection", "close")]))
                self.assertEqual(resp.status, 201, resp)

    async def test_unlisted_origins_still_403(self):
        for origin in ("http://evil.example", "http://app.example:3001", "http://app.example"):
            with self.subTest(origin=origin):
                conn = await HttpConn.open(self.port)
                self._clients.append(conn)
                resp = await conn.request(handshake_request("/ws", self.port, headers=[("Origin", origin)]))
                self.assertEqual(resp.status, 403, resp)
                resp = await self.http(req("POST", "/create-room", self.port,
                                           [("Origin", origin), ("Content-Length", "0"), ("Connection", "close")]))
                self.assertEqual(resp.status, 403, resp)

    async def test_same_origin_still_allowed(self):
        raw = await self.raw(headers=[("Origin", "http://127.0.0.1:%d" % self.port)])
        await raw.send_text({"type": "ping"})
        await raw.expect_json("pong")


if __name__ == "__main__":
    import unittest
    unittest.main()
