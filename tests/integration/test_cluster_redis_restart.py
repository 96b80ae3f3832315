# Redis restarts under running instances (PROTOCOL.md section 5: no silent loss, no gaps after a broker blip).
# Rule: one answer per chat; acked means every member gets it once, in order; refused means nobody does.
import asyncio
import signal
import time

from cluster_harness import SCALE, TIMEOUT, ClusterTestCase, id_parts, unique, user

RECOVERY = 5.0 * SCALE    # chat flows across instances again within this long after Redis is back


class RedisRestart(ClusterTestCase):
    instance_args = ["--log-level", "debug", "--rate", "1000"]

    async def two_members(self, room):
        i1, i2 = await self.launch_n(2)
        a, _ = await self.member(i1, "alice", room)
        b, _ = await self.member(i2, "bob", room)
        await a.take("presence", event="join", user=user("bob"))
        ack = await a.chat_acked(room, "before", ref="before")
        for p in (a, b):
            self.assertEqual((await p.take("chat"))["id"], ack["id"])
        return i1, i2, a, b

    def assert_one_answer_each(self, peer, refs):
        """Exactly one ack or error per ref, and nothing else echoing a ref."""
        answers = {}
        for m in peer.seen:
            if m.get("type") in ("ack", "error") and "ref" in m:
                answers.setdefault(m["ref"], []).append(m)
        for ref in refs:
            got = answers.get(ref, [])
            self.assertEqual(len(got), 1, "%s: chat %r answered %d times: %r" % (peer.label, ref, len(got), got))
            if got[0]["type"] == "error":
                self.assertEqual(got[0]["code"], "unavailable", got[0])
        return {ref: answers[ref][0] for ref in refs}

    async def test_restart_answers_every_chat_and_recovers(self):
        room = unique("restart")
        i1, i2, a, b = await self.two_members(room)
        sent = {a: [], b: []}   # refs each peer sent while Redis was away or coming back

        self.redis.kill()
        # Right after the kill, before the instances can have noticed: these are in flight or refused.
        for k in range(5):
            ref = "kill-%d" % k
            await a.chat(room, ref, ref=ref)
            sent[a].append(ref)
        for ref in sent[a]:
            await a.answer(ref, timeout=TIMEOUT)
        for inst in (i1, i2):
            await self.wait_health(inst, 503, "down")
            self.assertEqual(await inst.metric("roomcast_broker_up"), 0)
        # While both know Redis is down: every chat is refused at once, other requests still served.
        for p, tag in ((a, "a"), (b, "b")):
            for k in range(5):
                ref = "down-%s-%d" % (tag, k)
                await p.chat(room, ref, ref=ref)
                sent[p].append(ref)
                err = await p.answer(ref, timeout=2.0)
                self.assertEqual((err["type"], err.get("code")), ("error", "unavailable"), err)
            await p.ping()

        await self.restart_redis()
        t_back = time.monotonic()
        # Both directions work again, on the same connections, within RECOVERY seconds.
        for src, dst, tag in ((a, b, "a"), (b, a, "b")):
            k = 0
            while True:
                ref = "back-%s-%d" % (tag, k)
                await src.chat(room, ref, ref=ref)
                sent[src].append(ref)
                ans = await src.answer(ref, timeout=max(0.5, t_back + RECOVERY - time.monotonic()))
                if ans["type"] == "ack":
                    ev = await dst.take("chat", timeout=max(0.5, t_back + RECOVERY - time.monotonic()), message=ref)
                    self.assertEqual(ev["id"], ans["id"], ev)
                    break
                self.assertEqual(ans.get("code"), "unavailable", ans)
                self.assertLess(time.monotonic() - t_back, RECOVERY,
                                "%s: chats still refused %.1fs after Redis came back" % (src.label, RECOVERY))
                k += 1
                await asyncio.sleep(0.1)
        self.assertLess(time.monotonic() - t_back, RECOVERY + 0.5)
        for inst in (i1, i2):
            await self.wait_health(inst, 200, "up", timeout=RECOVERY)
            self.assertGreaterEqual(await inst.metric("roomcast_redis_reconnects_total"), 1, inst)
            self.assertEqual(await inst.metric("roomcast_broker_up"), 1)
        self.assertEqual(await self.redis.numsub("room:%s" % room), 2, "both instances subscribed again")

        # Settle, then audit: one answer per chat; acked ones reached both members once, refused ones nobody.
        final = await a.chat_acked(room, "final", ref="final")
        for p in (a, b):
            await p.take("chat", message="final")
        answers = {}
        for p in (a, b):
            answers.update(self.assert_one_answer_each(p, sent[p]))
        acked = [ref for ref, ans in answers.items() if ans["type"] == "ack"]
        refused = [ref for ref, ans in answers.items() if ans["type"] == "error"]
        for p in (a, b):
            got = [e["message"] for e in p.seen if e.get("type") == "chat"]
            for ref in acked:
                self.assertEqual(got.count(ref), 1, "%s got acked chat %r %d times" % (p.label, ref, got.count(ref)))
            for ref in refused:
                self.assertNotIn(ref, got, "%s got chat %r that was answered unavailable" % (p.label, ref))
            ids = [id_parts(e["id"]) for e in p.seen if e.get("type") == "chat"]
            self.assertEqual(ids, sorted(ids), "%s: chats out of id order" % p.label)
        self.assertTrue(final["id"])

        # Presence state was written again into the new (empty) Redis: a newcomer sees both members.
        c, joined = await self.member(i2, "carol", room)
        self.assertCountEqual(joined["members"], [user("alice"), user("bob"), user("carol")], joined)

    async def sender(self, pub, room, prefix, until_acked, deadline):
        """Send numbered chats every 10 ms until `until_acked` were acked (or the deadline); returns the refs
        sent, in order, once every one of them is answered."""
        refs = []
        k = 0
        while len(pub.pending("ack")) < until_acked:
            self.assertLess(time.monotonic(), deadline, "fewer than %d chats acked in time (%d sent)"
                            % (until_acked, len(refs)))
            ref = "%s-%03d" % (prefix, k)
            await pub.chat(room, ref, ref=ref)
            refs.append(ref)
            k += 1
            await asyncio.sleep(0.01)
        for ref in refs:
            await pub.answer(ref, timeout=TIMEOUT)
        return refs

    def assert_exactly(self, peer, acked_refs, acked_ids):
        got = [e for e in peer.seen if e.get("type") == "chat" and e["message"] in set(acked_refs)]
        self.assertEqual([e["message"] for e in got], acked_refs,
                         "%s: not every acked chat exactly once in order" % peer.label)
        self.assertEqual([e["id"] for e in got], acked_ids, peer.label)

    async def test_no_gap_after_redis_restart(self):
        """Chats published from instance 2 right after Redis is back, while instance 1 may still be
        reconnecting: its member gets every one, once, in order (back-fill, then live)."""
        room = unique("nogap")
        i1, i2, a, b = await self.two_members(room)
        pub = await self.peer(i2, "pub")
        await pub.hello(user("pub"))

        self.redis.kill()
        for inst in (i1, i2):
            await self.wait_health(inst, 503, "down")
        await self.restart_redis()
        refs = await self.sender(pub, room, "n", 40, time.monotonic() + 15 * SCALE)
        answers = self.assert_one_answer_each(pub, refs)
        acked = [r for r in refs if answers[r]["type"] == "ack"]
        acked_ids = [answers[r]["id"] for r in acked]
        for p in (a, b):
            await p.take_n(len(acked), "chat", timeout=TIMEOUT, pred=lambda e: e["message"].startswith("n-"))
            await p.expect_none("chat", seconds=0.5)
            self.assert_exactly(p, acked, acked_ids)
            refused = set(refs) - set(acked)
            self.assertFalse(refused & {e["message"] for e in p.seen if e.get("type") == "chat"},
                             "%s got refused chats" % p.label)

    async def test_no_gap_when_instance_reconnects_late(self):
        """Instance 1 is held (SIGSTOP) across the Redis restart, so everything instance 2 publishes meanwhile can
        only reach instance 1's member through the back-fill; more chats follow as it comes back."""
        room = unique("late")
        i1, i2, a, b = await self.two_members(room)
        pub = await self.peer(i2, "pub")
        await pub.hello(user("pub"))
        last_before = [e for e in a.seen if e.get("type") == "chat"][-1]

        i1.signal(signal.SIGSTOP)
        try:
            self.redis.kill()
            await self.wait_health(i2, 503, "down")
            await self.restart_redis()
            await self.wait_health(i2, 200, "up", timeout=RECOVERY)
            first = []
            for k in range(20):
                ack = await pub.chat_acked(room, "g-%03d" % k, ref="g-%03d" % k)
                first.append(ack["id"])
        finally:
            i1.signal(signal.SIGCONT)
        refs = await self.sender(pub, room, "h", 20, time.monotonic() + 15 * SCALE)
        answers = self.assert_one_answer_each(pub, refs)
        acked = ["g-%03d" % k for k in range(20)] + [r for r in refs if answers[r]["type"] == "ack"]
        acked_ids = first + [answers[r]["id"] for r in refs if answers[r]["type"] == "ack"]
        for p in (a, b):
            await p.take_n(len(acked), "chat", timeout=TIMEOUT, pred=lambda e: e["message"][:2] in ("g-", "h-"))
            await p.expect_none("chat", seconds=0.5)
            self.assert_exactly(p, acked, acked_ids)
        # Nothing from before the blip came again.
        self.assertEqual([e for e in a.seen if e.get("type") == "chat" and e["id"] == last_before["id"]], [last_before])
        await self.wait_health(i1, 200, "up", timeout=RECOVERY)
        self.assertGreaterEqual(await i1.metric("roomcast_redis_reconnects_total"), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
