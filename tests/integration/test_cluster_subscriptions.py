# Broker subscriptions (PROTOCOL.md section 5, Efficiency): one per room with local members, as Redis sees them.
# Rule: PUBSUB NUMSUB room:<id> counts instances with local members, 0 soon after the last leaves, closes or dies.
from cluster_harness import ClusterTestCase, user, unique

LINGER = 1.0          # the server may keep a subscription this long after the last local member
DROP_WITHIN = 5.0     # generous bound for the drop (linger + detection of a dead TCP peer)


class Subscriptions(ClusterTestCase):

    async def test_numsub_follows_local_members(self):
        i1, i2, i3 = await self.launch_n(3)
        room = unique("subs")
        channel = "room:%s" % room
        self.assertEqual(await self.redis.numsub(channel), 0)
        # "joined means subscribed": the count is right as soon as each `joined` is seen.
        a1, _ = await self.member(i1, "a1", room)
        self.assertEqual(await self.redis.numsub(channel), 1)
        a2, _ = await self.member(i1, "a2", room)
        self.assertEqual(await self.redis.numsub(channel), 1, "a second local member must not subscribe again")
        b1, _ = await self.member(i2, "b1", room)
        self.assertEqual(await self.redis.numsub(channel), 2)
        c1, _ = await self.member(i3, "c1", room)
        self.assertEqual(await self.redis.numsub(channel), 3)
        self.assertEqual([await i.metric("roomcast_rooms") for i in (i1, i2, i3)], [1, 1, 1])

        # i1 keeps its subscription while one local member remains.
        for uid in ("b1", "c1"):
            await a2.take("presence", event="join", user=user(uid))
        await a1.leave(room)
        await a2.take("presence", event="leave", user=user("a1"))
        await a2.expect_none(seconds=LINGER + 0.5)   # past the linger: nothing may have changed
        self.assertEqual(await self.redis.numsub(channel), 3)
        # The last member of i1 leaves: i1 drops its subscription.
        await a2.leave(room)
        await self.wait_numsub(room, 2, timeout=DROP_WITHIN)
        # The last member of i2 disconnects (close frame): i2 drops it.
        await b1.close()
        await self.wait_numsub(room, 1, timeout=DROP_WITHIN)
        # The last member of i3 resets its TCP connection: i3 drops it.
        c1.abort()
        await self.wait_numsub(room, 0, timeout=DROP_WITHIN)
        for inst in (i1, i2, i3):
            self.assertEqual(await inst.metric("roomcast_rooms"), 0, inst)

        # Back in from i2: subscribed again, and the room works across instances again.
        b2, _ = await self.member(i2, "b2", room)
        self.assertEqual(await self.redis.numsub(channel), 1)
        a3, _ = await self.member(i1, "a3", room)
        self.assertEqual(await self.redis.numsub(channel), 2)
        await a3.chat(room, "again")
        for p in (a3, b2):
            ev = await p.take("chat")
            self.assertEqual(ev["message"], "again", ev)

    async def test_numsub_after_client_process_killed(self):
        i1, i2 = await self.launch_n(2)
        room = unique("kill")
        watcher, _ = await self.member(i1, "watcher", room)
        child = await self.child(i2, room, "victim")
        await watcher.take("presence", event="join", user={"id": "victim", "name": "victim"})
        self.assertEqual(await self.redis.numsub("room:%s" % room), 2)
        child.kill()
        await child.proc.wait()
        # The victim's instance notices the dead socket, its member leaves (within 2 s) and it unsubscribes.
        pres = await watcher.take("presence", timeout=2.5)
        self.assertEqual((pres["event"], pres["user"]["id"]), ("leave", "victim"), pres)
        await self.wait_numsub(room, 1, timeout=DROP_WITHIN)
        self.assertEqual(await i2.metric("roomcast_rooms"), 0)
        # The last member anywhere goes the same way: a child on i1 killed after the watcher left.
        other = await self.child(i1, room, "victim2")
        await watcher.take("presence", event="join")
        await watcher.leave(room)
        self.assertEqual(await self.redis.numsub("room:%s" % room), 1)
        other.kill()
        await other.proc.wait()
        await self.wait_numsub(room, 0, timeout=DROP_WITHIN)

    async def test_subscriptions_metric_counts_rooms(self):
        i1, i2 = await self.launch_n(2)
        base = [await i.metric("roomcast_subscriptions") for i in (i1, i2)]
        rooms = [unique("m%d" % k) for k in range(3)]
        p = await self.peer(i1, "multi")
        await p.hello(user("multi"))
        for r in rooms:
            await p.join(r)
        q, _ = await self.member(i2, "single", rooms[0])
        self.assertEqual(await i1.metric("roomcast_subscriptions"), base[0] + 3)
        self.assertEqual(await i2.metric("roomcast_subscriptions"), base[1] + 1)
        for r in rooms:
            self.assertEqual(await self.redis.numsub("room:%s" % r), 2 if r == rooms[0] else 1, r)
        await p.close()
        for r in rooms[1:]:
            await self.wait_numsub(r, 0, timeout=DROP_WITHIN)
        await self.wait_numsub(rooms[0], 1, timeout=DROP_WITHIN)
        self.assertEqual(await i1.metric("roomcast_subscriptions"), base[0])


if __name__ == "__main__":
    import unittest
    unittest.main()
