# Slow consumers (PROTOCOL.md section 6): unsent data over --max-outbound closes that connection, nobody else waits.
# Rule: the slow client never reads until the server has dropped it; the normal member must still get every message.
import asyncio
import time

from roomcast_harness import OP_CLOSE, OP_TEXT, RawWs, RoomcastTestCase, healthz, unique, user

MAX_OUTBOUND = 65536
N_MESSAGES = 500
MESSAGE_SIZE = 16000  # 500 x 16000 = 8 MB: far beyond any socket buffers plus --max-outbound
WINDOW = 2            # messages the publisher may be ahead of the normal member (2 x 16 KB < 64 KiB)


class SlowReader(RoomcastTestCase):
    # --rate: the publisher sends 500 messages at once; flood control is not under test here.
    server_args = ["--max-outbound", str(MAX_OUTBOUND), "--rate", "100000"]

    async def connections(self):
        return (await healthz(self.port))["connections"]

    async def wait_connections(self, expected, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            n = await self.connections()
            if n == expected or time.monotonic() > deadline:
                return n
            await asyncio.sleep(0.05)

    async def test_slow_reader_dropped_others_unaffected(self):
        room = unique("slow")
        base = await self.connections()
        slow = await RawWs.connect(self.port, "/ws?room=%s&name=Slow" % room, rcvbuf=4096)
        self._clients.append(slow)
        await slow.expect_json("joined")
        slow.pause_reading()
        buffered_before = len(slow.reader._buffer)
        normal = await self.client(label="normal")
        await normal.hello(user("normal"))
        await normal.join(room)
        pub = await self.client(label="publisher")
        self.assertEqual(await self.wait_connections(base + 3, 5), base + 3, "healthz connections")

        got = []

        async def receive_all():
            while len(got) < N_MESSAGES:
                m = await normal.recv(timeout=30)
                if m["type"] == "chat":
                    got.append(m)
            return got

        receiver = asyncio.ensure_future(receive_all())
        t0 = time.monotonic()
        # The publisher keeps at most WINDOW messages ahead of the normal member, so the normal
        # member never has more than --max-outbound unsent however slowly this machine runs it;
        # the slow one, which reads nothing, falls behind without bound.
        for i in range(N_MESSAGES):
            while i - len(got) >= WINDOW and not receiver.done():
                await asyncio.sleep(0.002)
            await pub.send({"type": "chat", "roomId": room, "message": "%06d:" % i + "x" * (MESSAGE_SIZE - 7)})
        got = await asyncio.wait_for(receiver, 60)
        elapsed = time.monotonic() - t0
        self.assertEqual([int(m["message"][:6]) for m in got], list(range(N_MESSAGES)),
                         "the normal member lost or reordered messages")
        self.assertTrue(all(len(m["message"]) == MESSAGE_SIZE for m in got))
        self.assertLess(elapsed, 60)

        # The server must drop the slow client by itself, while the client still reads nothing.
        n = await self.wait_connections(base + 2, 20)
        self.assertEqual(n, base + 2, "the slow reader was not dropped (healthz connections %d, base %d)" % (n, base))

        # Now drain what the kernel buffered: it ends with EOF, a reset, or a 1008 close frame.
        self.assertEqual(buffered_before, 0)
        slow.resume_reading()
        chats, close_code = 0, None
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                try:
                    f = await slow.read_frame(timeout=max(0.1, deadline - time.monotonic()))
                except asyncio.IncompleteReadError:
                    break
                if f.opcode == OP_TEXT and b'"chat"' in f.payload:
                    chats += 1
                elif f.opcode == OP_CLOSE:
                    close_code = f.close_code
                    break
        except (EOFError, ConnectionResetError):
            pass
        except asyncio.TimeoutError:
            self.fail("the slow reader's socket stayed open after %d chats" % chats)
        if close_code is not None:
            self.assertEqual(close_code, 1008)
        self.assertLess(chats, N_MESSAGES, "the slow reader got every message: it was never dropped")

        # the drop is counted in /metrics (slow-consumer drops, section 1)
        metrics = (await self.get("/metrics")).body.decode()
        slow_lines = [l for l in metrics.splitlines() if not l.startswith("#") and "slow" in l.split(" ")[0]]
        self.assertTrue(slow_lines, "no slow-consumer metric in /metrics:\n" + metrics)
        self.assertGreaterEqual(sum(float(l.split()[-1]) for l in slow_lines), 1, slow_lines)

        # the room goes on
        await pub.send({"type": "chat", "roomId": room, "message": "after"})
        self.assertEqual((await normal.wait_for("chat"))["message"], "after")
        info = (await self.get("/rooms/" + room)).json()
        self.assertEqual(info["members"], [user("normal")], info)

    async def test_fast_reader_with_large_volume_not_dropped(self):
        # A client that reads keeps up, whatever the volume: --max-outbound is about unsent data only.
        room = unique("fast")
        fast = await self.client(label="fast")
        await fast.join(room)
        pub = await self.client(label="pub")
        total = 0
        for batch in range(10):
            for i in range(4):
                await pub.send({"type": "chat", "roomId": room, "message": "y" * 16000})
            for i in range(4):
                await fast.expect("chat")
                total += 1
        self.assertEqual(total, 40)
        await fast.ping("ok")


if __name__ == "__main__":
    import unittest
    unittest.main()
