# Keep-alive (PROTOCOL.md section 6): the server pings every --ping-interval and closes silent peers with 1001.
# Rule: any traffic keeps a connection alive; a peer that never answers (not even the close) is still dropped.
import asyncio
import json
import time

from roomcast_harness import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RoomcastTestCase, build_frame, unique

INTERVAL = 0.5
DROP_BOUND = 10.0  # seconds within which a peer that ignores the close handshake must lose its TCP connection


class Idle(RoomcastTestCase):
    server_args = ["--ping-interval", str(INTERVAL)]

    async def test_library_client_that_answers_pings_stays(self):
        c = await self.client()
        await c.join(unique("idle"))
        await asyncio.sleep(8 * INTERVAL)   # the library answers the server's pings by itself
        await c.ping("still-here")

    async def test_raw_client_that_answers_pings_stays(self):
        raw = await self.raw()
        pings = 0
        deadline = time.monotonic() + 8 * INTERVAL
        while time.monotonic() < deadline:
            try:
                f = await raw.read_frame(timeout=deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            self.assertNotEqual(f.opcode, OP_CLOSE, "closed a client that answered every ping: %r" % f)
            if f.opcode == OP_PING:
                pings += 1
                await raw.send_frame(OP_PONG, f.payload)
        self.assertGreaterEqual(pings, 3, "server pinged %d times in %.1fs with --ping-interval %s"
                                % (pings, 8 * INTERVAL, INTERVAL))
        await raw.send_text({"type": "ping", "ref": "raw"})
        self.assertEqual(await raw.expect_json("pong"), {"type": "pong", "ref": "raw"})

    async def test_client_sending_data_stays(self):
        # Traffic of any kind counts: this client never answers pings but talks every 0.3 intervals.
        raw = await self.raw()
        t_end = time.monotonic() + 8 * INTERVAL
        n = 0
        while time.monotonic() < t_end:
            await raw.send_text({"type": "ping", "ref": n})
            while True:
                f = await raw.read_frame()
                self.assertNotEqual(f.opcode, OP_CLOSE, "closed a client that kept sending: %r" % f)
                if f.opcode == OP_TEXT:
                    self.assertEqual(f.json(), {"type": "pong", "ref": n})
                    break
            n += 1
            await asyncio.sleep(0.3 * INTERVAL)

    async def test_silent_client_closed_1001(self):
        raw = await self.raw()
        t0 = time.monotonic()
        close, skipped = await raw.expect_close(1001, timeout=10 * INTERVAL + 5, reply=True)
        elapsed = time.monotonic() - t0
        self.assertTrue(any(f.opcode == OP_PING for f in skipped), "closed without pinging first: %r" % skipped)
        self.assertGreaterEqual(elapsed, 1.6 * INTERVAL, "closed after %.2fs, before two intervals" % elapsed)
        self.assertLess(elapsed, 6 * INTERVAL + 1, "closed only after %.2fs" % elapsed)

    async def test_peer_ignoring_close_is_dropped(self):
        raw = await self.raw()
        await raw.expect_close(1001, timeout=10 * INTERVAL + 5, reply=False)
        t0 = time.monotonic()
        await raw.expect_eof(DROP_BOUND)  # never answered the close: the server must still drop the TCP connection
        self.assertLess(time.monotonic() - t0, DROP_BOUND)

    async def test_peer_ignoring_close_after_protocol_error_is_dropped(self):
        raw = await self.raw()
        await raw.send(build_frame(OP_TEXT, b'{"type":"ping"}', mask=False))
        await raw.expect_close(1002, reply=False)
        await raw.expect_eof(DROP_BOUND)

    async def test_silent_member_leaves_room(self):
        room = unique("idle")
        watcher = await self.client(label="watcher")
        await watcher.join(room)
        raw = await self.raw("/ws?room=%s&name=Silent" % room)
        joined = await raw.expect_json("joined")
        pres = await watcher.expect("presence")
        self.assertEqual(pres["event"], "join")
        await raw.expect_close(1001, timeout=10 * INTERVAL + 5, reply=False)
        pres = await watcher.expect("presence", timeout=DROP_BOUND + 2)
        self.assertEqual((pres["event"], pres["user"]), ("leave", joined["user"]))


if __name__ == "__main__":
    import unittest
    unittest.main()
