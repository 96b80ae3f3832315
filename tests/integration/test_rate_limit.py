# Flood control (PROTOCOL.md section 6): a per-connection token bucket of --rate messages per second.
# Rule: a message without a token gets `rate_limited` (never silence); over 1000 refusals within 10 s close with 1008.
import asyncio
import json

from roomcast_harness import OP_TEXT, RoomcastTestCase, build_frame, unique

RATE = 5


class RateLimit(RoomcastTestCase):
    server_args = ["--rate", str(RATE)]

    async def burst(self, c, n, prefix):
        """Send n pings at once; return {ref: reply type} after every reply arrived."""
        for i in range(n):
            await c.send({"type": "ping", "ref": "%s%d" % (prefix, i)})
        replies = {}
        for _ in range(n):
            m = await c.recv()
            self.assertIn(m.get("type"), ("pong", "error"), m)
            if m["type"] == "error":
                self.assertEqual(m.get("code"), "rate_limited", m)
                self.assertIsInstance(m.get("message"), str)
            self.assertIn("ref", m, "reply without the ref of its message: %r" % m)
            self.assertNotIn(m["ref"], replies, "two replies for one message: %r" % m)
            replies[m["ref"]] = m["type"]
        self.assertEqual(set(replies), {"%s%d" % (prefix, i) for i in range(n)})
        return replies

    async def test_burst_beyond_bucket_gets_rate_limited(self):
        c = await self.client()
        # 150 messages at once: beyond the bucket whether the burst is 2 x --rate or a fixed 100
        replies = await self.burst(c, 150, "b")
        kinds = [replies["b%d" % i] for i in range(150)]
        limited = kinds.count("error")
        self.assertGreater(limited, 0, "150 messages at once with --rate %d: none refused" % RATE)
        self.assertEqual(kinds[0], "pong", "the first message of a fresh connection was refused")
        self.assertLessEqual(kinds.count("pong"), 110,
                             "bucket of --rate %d let %d of 150 through" % (RATE, kinds.count("pong")))
        # refused messages had no effect
        await c.expect_silence()
        # the bucket refills at --rate per second
        await asyncio.sleep(1.5)
        await c.ping("refilled")

    async def test_refused_chat_is_not_delivered(self):
        room = unique("rl")
        listener = await self.client(label="listener")
        await listener.join(room)
        c = await self.client(label="flooder")
        for i in range(150):
            await c.send({"type": "chat", "roomId": room, "message": "m%d" % i, "ref": i})
        acked, refused = [], []
        for _ in range(150):
            m = await c.recv()
            (acked if m["type"] == "ack" else refused).append(m)
            if m["type"] == "error":
                self.assertEqual(m["code"], "rate_limited", m)
        self.assertTrue(refused, "150 chats at once with --rate %d: none refused" % RATE)
        delivered = [await listener.expect("chat") for _ in range(len(acked))]
        self.assertEqual([d["message"] for d in delivered], ["m%d" % a["ref"] for a in acked])
        await listener.expect_silence()

    async def test_bucket_is_per_connection(self):
        flooder = await self.client(label="flooder")
        other = await self.client(label="other")
        await self.burst(flooder, 150, "f")
        await other.ping("unaffected")

    async def test_some_refusals_do_not_close(self):
        c = await self.client()
        await self.burst(c, 300, "s")
        await asyncio.sleep(1.0)
        await c.ping("still-open")

    async def test_sustained_flood_closed_1008(self):
        raw = await self.raw()
        frames = b"".join(build_frame(OP_TEXT, json.dumps({"type": "ping", "ref": i}).encode()) for i in range(1300))
        raw.send_nowait(frames)
        close, skipped = await raw.expect_close(1008, timeout=15)
        texts = [json.loads(f.payload) for f in skipped if f.opcode == OP_TEXT]
        limited = [t for t in texts if t.get("type") == "error" and t.get("code") == "rate_limited"]
        self.assertGreaterEqual(len(limited), 1000, "closed after %d refusals" % len(limited))
        self.assertLessEqual(len(texts), 1300)
        await self.assert_server_works()


if __name__ == "__main__":
    import unittest
    unittest.main()
