# Regression test of finding 4 (PROTOCOL.md sections 4-5: `unavailable` means "not sent"; no silent loss).
# Rule: every chat is answered; one answered `unavailable` never reaches anyone nor the room's stream, even when
# Redis only stalls (CLIENT PAUSE) and runs what it had received later.
import asyncio
import time

from cluster_harness import ClusterTestCase, unique, user
from guarantees_harness import LONG, chats_of

PAUSE_MS = 5000
SEND_FOR = 9.0      # seconds of chats: before, during and after the pause
EVERY = 0.05        # one chat per 50 ms (within the default rate limit)


class PausedRedis(ClusterTestCase):
    instance_args = ClusterTestCase.instance_args + ["--history", "1000"]   # the stream keeps every chat

    async def stream_texts(self, room):
        """Every field value of every entry of the room's stream, joined (what Redis retained of each chat)."""
        entries = await self.redis.acommand("XRANGE", "room:%s:log" % room, "-", "+")
        return ["\n".join(entry[1]) for entry in entries]

    async def check_fates(self, sender, other, room, refs):
        """Every ref answered; `unavailable` ones nowhere (members, stream); acked ones everywhere, once."""
        answers = {}
        silent = []
        deadline = time.monotonic() + LONG
        for ref in refs:
            try:
                answers[ref] = await sender.answer(ref, timeout=max(0.1, deadline - time.monotonic()))
            except AssertionError:
                silent.append(ref)
        self.assertEqual(silent, [], "chats never answered (of %d sent; answers: %r)"
                         % (len(refs), {r: a.get("code", a["type"]) for r, a in answers.items()}))
        kinds = {r: (a["type"] if a["type"] == "ack" else a.get("code")) for r, a in answers.items()}
        self.assertTrue(set(kinds.values()) <= {"ack", "unavailable"}, kinds)
        refused = [r for r in refs if kinds[r] == "unavailable"]
        acked = [r for r in refs if kinds[r] == "ack"]

        # Redis is back: a last chat goes through; then leave time for late arrivals of held chats.
        for attempt in range(100):
            await sender.chat(room, "after", ref="after-%d" % attempt)
            a = await sender.answer("after-%d" % attempt, timeout=LONG)
            if a["type"] == "ack":
                break
            await asyncio.sleep(0.2)
        for p in (sender, other):
            await p.take("chat", timeout=LONG, message="after")
        await asyncio.sleep(2.0)

        stream = await self.stream_texts(room)
        in_stream = [r for r in refs if any(r in text for text in stream)]
        for p in (sender, other):
            got = [e["message"] for e in chats_of(p, room) if e["message"].startswith("pz-")]
            ghosts = [r for r in got if r in refused]
            self.assertEqual(ghosts, [], "%s received chats answered `unavailable` (refused %r, acked %r)"
                             % (p.label, refused, acked))
            self.assertEqual(got, acked, "%s: the acked chats, each once, in order" % p.label)
        self.assertEqual([r for r in in_stream if r in refused], [], "chats answered `unavailable` are in the stream"
                         " room:%s:log (refused %r)" % (room, refused))
        self.assertEqual(in_stream, acked, "the stream holds exactly the acked chats")

    async def two_members(self):
        i1, i2 = await self.launch_n(2)
        room = unique("fate")
        sender, _ = await self.member(i1, "sender", room)
        other, _ = await self.member(i2, "other", room)
        await sender.take("presence", event="join", user=user("other"))
        await sender.chat_acked(room, "warm", ref="warm")
        for p in (sender, other):
            await p.take("chat", message="warm")
        return i1, i2, room, sender, other

    async def test_chats_during_client_pause_write(self):
        """Finding 4. Two instances; a member on each, the one on i1 also sends a chat with a ref every 50 ms
        for 9 s. One second in, Redis is told CLIENT PAUSE 5000 WRITE (it keeps the connections, holds every
        write and script, then runs them). Asserts: every chat is answered (an ack with an id, or an error)
        once Redis is back, none left silent; a chat answered `unavailable` is delivered to no one (neither
        member, waiting well after the end) and is not in the stream room:R:log; an acked chat is in the
        stream and reaches both members exactly once. (On the code of the finding this one passes: Redis 7
        drops the held commands of a paused connection that closes, and runs the others after their 1 s
        deadline, which refuses them; the freeze test below is the one that catches the bug.)"""
        i1, i2, room, sender, other = await self.two_members()
        refs = []
        t0 = time.monotonic()
        paused = False
        k = 0
        while time.monotonic() - t0 < SEND_FOR:
            if not paused and time.monotonic() - t0 >= 1.0:
                self.assertEqual(await self.redis.acommand("CLIENT", "PAUSE", str(PAUSE_MS), "WRITE"), "OK")
                paused = True
            ref = "pz-%03d" % k
            await sender.chat(room, ref, ref=ref)
            refs.append(ref)
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * EVERY - time.monotonic()))

        await self.check_fates(sender, other, room, refs)

    async def test_chats_when_redis_thaws_just_after_down(self):
        """Finding 4, sharper (the pause above leaves no ghost on the code of the finding: Redis drops what a
        paused connection that closed had sent). Redis is frozen (SIGSTOP) while a member on i1 sends a chat
        with a ref every 100 ms (few enough that all of them fit in the socket buffers); the moment i1 reports
        Redis down (/healthz 503, after the probe deadline), Redis is thawed. i1 has answered `unavailable` to
        the chats it had sent on its old connection, and the thawed Redis still reads them from that
        connection's socket: those sent within the last second before the thaw (the chat deadline of the code
        of the finding) run. Asserts as above: all answered; the `unavailable` ones in no member's hands and
        not in the stream; the acked ones everywhere, once."""
        i1, i2, room, sender, other = await self.two_members()
        refs = []
        stop = asyncio.Event()

        async def send():
            k = 0
            t0 = time.monotonic()
            while not stop.is_set():
                ref = "pz-%03d" % k
                await sender.chat(room, ref, ref=ref)
                refs.append(ref)
                k += 1
                await asyncio.sleep(max(0.0, t0 + k * 0.1 - time.monotonic()))

        sending = asyncio.get_running_loop().create_task(send())
        await asyncio.sleep(0.5)
        self.redis.freeze()
        try:
            await self.wait_health(i1, 503, "down", timeout=LONG)
        finally:
            self.redis.thaw()
        await asyncio.sleep(2.0)
        stop.set()
        await sending
        await self.check_fates(sender, other, room, refs)


if __name__ == "__main__":
    import unittest
    unittest.main()
