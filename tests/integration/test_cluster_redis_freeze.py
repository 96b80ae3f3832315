# Redis frozen (SIGSTOP) under running instances: the liveness probe, not a closed socket, must notice it.
# Rule: "down" within the probe deadline, every chat answered, a refused chat never delivered, recovery by itself.
import asyncio
import time

from cluster_harness import SCALE, TIMEOUT, ClusterTestCase, unique, user

FREEZE = 10.0
DOWN_WITHIN = 6.0 * SCALE     # probe every 1 s, deadline 3 s: generous bound for "down" after the freeze


class RedisFreeze(ClusterTestCase):

    async def test_freeze_then_thaw(self):
        i1, i2 = await self.launch_n(2)
        room = unique("freeze")
        a, _ = await self.member(i1, "alice", room)
        b, _ = await self.member(i2, "bob", room)
        await a.take("presence", event="join", user=user("bob"))
        await a.chat_acked(room, "before", ref="before")
        for p in (a, b):
            await p.take("chat", message="before")

        self.redis.freeze()
        t0 = time.monotonic()
        # Sent into a frozen Redis: no reply can come, so the instance must give up on it by itself.
        await a.chat(room, "frozen-a0", ref="frozen-a0")
        await b.chat(room, "frozen-b0", ref="frozen-b0")
        for inst in (i1, i2):
            await self.wait_health(inst, 503, "down", timeout=max(0.5, t0 + DOWN_WITHIN - time.monotonic()))
        t_down = time.monotonic() - t0
        # Chats in flight when Redis froze: their fate is unknown while it is frozen, so no answer yet
        # (an `unavailable` now could be a lie: the frozen Redis may still run them).
        for p, ref in ((a, "frozen-a0"), (b, "frozen-b0")):
            self.assertEqual(p.pending(pred=lambda m, r=ref: m.get("ref") == r), [], "answered while its fate was unknown")
        # Known down: chats are refused at once; the connections themselves are fine.
        for p, tag in ((a, "a"), (b, "b")):
            for k in range(1, 4):
                ref = "frozen-%s%d" % (tag, k)
                await p.chat(room, ref, ref=ref)
                ans = await p.answer(ref, timeout=2.0)
                self.assertEqual((ans["type"], ans.get("code")), ("error", "unavailable"), ans)
            await p.ping()
        self.assertEqual(await i1.metric("roomcast_broker_up"), 0)

        # The freeze lasts FREEZE seconds whatever the instances do: that is the scenario.
        await asyncio.sleep(max(0.0, t0 + FREEZE - time.monotonic()))
        self.redis.thaw()
        t_thaw = time.monotonic()
        for inst in (i1, i2):
            await self.wait_health(inst, 200, "up", timeout=TIMEOUT)
        # Once Redis is back, the instance asks it what became of them: they reached Redis after their
        # 1 s deadline, so they did not run, and now `unavailable` is the truth.
        for p, ref in ((a, "frozen-a0"), (b, "frozen-b0")):
            ans = await p.answer(ref, timeout=TIMEOUT)
            self.assertEqual((ans["type"], ans.get("code")), ("error", "unavailable"), ans)
        for src, dst, tag in ((a, b, "a"), (b, a, "b")):
            ack = await src.chat_acked(room, "after-%s" % tag, ref="after-%s" % tag)
            for p in (src, dst):
                ev = await p.take("chat", message="after-%s" % tag)
                self.assertEqual(ev["id"], ack["id"])
        recovered = time.monotonic() - t_thaw
        for inst in (i1, i2):
            self.assertGreaterEqual(await inst.metric("roomcast_redis_reconnects_total"), 1, inst)

        # A chat answered `unavailable` was "not sent" (section 4): it may not surface later, e.g. because the
        # frozen Redis still executes what sat in its socket buffer once it runs again.
        # Neither live, nor through a back-fill, nor in the history a newcomer gets.
        c, joined = await self.member(i2, "carol", room)
        self.assertEqual([e["message"] for e in joined["history"]], ["before", "after-a", "after-b"],
                         "history after the freeze (down after %.1fs, recovered %.1fs after thaw)"
                         % (t_down, recovered))
        for p in (a, b):
            await p.expect_none("chat", seconds=0.5)
            ghosts = [e for e in p.seen if e.get("type") == "chat" and e["message"].startswith("frozen-")]
            self.assertEqual(ghosts, [], "%s received chats that were answered unavailable (down after %.1fs, "
                             "recovered %.1fs after thaw)" % (p.label, t_down, recovered))


if __name__ == "__main__":
    import unittest
    unittest.main()
