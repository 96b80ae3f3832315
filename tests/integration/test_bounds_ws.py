# Bounds of the WebSocket side (PROTOCOL.md sections 4 and 6): the closing handshake, pongs, deeply nested JSON,
# and the bound registry of /metrics.
# Rule: no input a client can send makes the server answer without limit or recurse without limit; every bound that
# bites is counted in roomcast_bound_hits_total.
import asyncio
import contextlib
import time

from roomcast_harness import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RoomcastTestCase, bound_hits, build_frame)

MAX_GROWTH_KIB = 32 * 1024
PING = build_frame(OP_PING, b"p" * 125)
PINGS = PING * 8000  # about 1 MB of pings in one write


async def ping_flood(ws, seconds):
    """Sends pings as fast as the server takes them for `seconds` (or until it closes). Returns bytes sent."""
    sent = 0
    deadline = time.monotonic() + seconds
    with contextlib.suppress(ConnectionError, BrokenPipeError):
        while time.monotonic() < deadline:
            ws.writer.write(PINGS)
            await asyncio.wait_for(ws.writer.drain(), max(0.05, deadline - time.monotonic() + 1))
            sent += len(PINGS)
    return sent


async def frames_until_eof(ws, timeout=10.0):
    """Every frame the server still sends, until it closes TCP."""
    frames = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            frames.append(await ws.read_frame(max(0.05, deadline - time.monotonic())))
        except (EOFError, ConnectionError):
            return frames


class ClosingHandshake(RoomcastTestCase):
    # --rate 1: a burst of 1100 messages is a flooder (over 1000 refused within 10 s: close 1008).
    server_args = ["--rate", "1"]

    async def measure(self, ws, seconds):
        """Floods ws with pings (it reads nothing); returns (bytes sent, peak RSS growth in KiB)."""
        ws.pause_reading()
        base = self.server.rss_kib()
        sent = await ping_flood(ws, seconds)
        return sent, self.server.peak_rss_kib() - base

    async def test_flooder_closed_1008_gets_no_pongs(self):
        ws = await self.raw()
        await ws.send(build_frame(OP_TEXT, '{"type":"ping"}') * 1100)
        await ws.expect_close(1008, reply=False)
        self.assertGreaterEqual((await bound_hits(self.port))["rate"], 1000)
        # Closing: pings are no longer answered, however many come.
        sent, growth = await self.measure(ws, 1.5)
        self.assertLess(growth, MAX_GROWTH_KIB, "%d MB of pings while closing: RSS grew by %d KiB"
                        % (sent // 1000000, growth))
        ws.resume_reading()
        after = await frames_until_eof(ws)
        self.assertEqual([f for f in after if f.opcode in (OP_PONG, OP_CLOSE)], [],
                         "frames after the close frame (%d MB of pings sent)" % (sent // 1000000))

    async def test_ping_flood_without_reading_is_a_slow_consumer(self):
        before = (await bound_hits(self.port))["max_outbound"]
        ws = await self.raw()
        # Pongs count against --max-outbound: a client that pings and never reads is closed 1008.
        sent, growth = await self.measure(ws, 3.0)
        self.assertLess(growth, MAX_GROWTH_KIB, "%d MB of pings, never read: RSS grew by %d KiB"
                        % (sent // 1000000, growth))
        self.assertGreater((await bound_hits(self.port))["max_outbound"], before)
        # What it still gets ends with a 1008 close frame, or with TCP closed without one: a client that
        # reads nothing for the whole closing deadline cannot be sent its close frame.
        ws.resume_reading()
        frames = await frames_until_eof(ws)
        closes = [f for f in frames if f.opcode == OP_CLOSE]
        if closes:
            self.assertEqual(closes[0].close_code, 1008, closes[0])
            self.assertEqual(frames[frames.index(closes[0]) + 1:], [], "frames after the close frame")

    async def test_message_over_max_message_is_counted(self):
        before = (await bound_hits(self.port))["max_message"]
        ws = await self.raw()
        await ws.send(build_frame(OP_TEXT, b"x" * (64 * 1024 + 1)))
        await ws.expect_close(1009)
        self.assertEqual((await bound_hits(self.port))["max_message"], before + 1)


def nested(depth, inner='"x"'):
    """A ping whose extra field nests `depth` containers in all (the message object included)."""
    return '{"type":"ping","ref":"d%d","x":%s%s%s}' % (depth, "[" * (depth - 1), inner, "]" * (depth - 1))


class DeepJson(RoomcastTestCase):
    # --max-message raised well above 128 KiB: rapidjson's recursive parser overflowed the stack on 131072 '['.
    server_args = ["--max-message", str(4 * 1024 * 1024), "--rate", "1000"]

    async def test_nesting_limit_is_64(self):
        c = await self.client()
        await c.send(nested(64))
        self.assertEqual((await c.expect("pong"))["ref"], "d64")
        await c.send(nested(65))
        err = await c.expect_error("bad_json")
        self.assertIn("64", err["message"])
        await c.ping("still-open")

    async def test_very_deep_json_is_bad_json_not_a_crash(self):
        c = await self.client()
        for text in ("[" * 131072, "[" * 1000000, "{\"a\":" * 500000, nested(1000000)):
            await c.send(text)
            await c.expect_error("bad_json")
        await c.ping("still-open")
        self.assertTrue(self.server.alive())


if __name__ == "__main__":
    import unittest
    unittest.main()
