# Instances that die or restart (PROTOCOL.md section 5, Recovery): the others carry on, the history stays in Redis.
# Rule: losing an instance disturbs nobody elsewhere; re-joining with `since` anywhere gives exactly what was missed.

from cluster_harness import TIMEOUT, ClusterTestCase, chat_key, unique, user


class InstanceLoss(ClusterTestCase):

    async def test_sigkill_one_instance(self):
        i1, i2, i3 = await self.launch_n(3)
        room = unique("loss")
        a, _ = await self.member(i1, "ann", room)
        b, _ = await self.member(i2, "ben", room)
        c, _ = await self.member(i3, "cat", room)
        await self.wait_numsub(room, 3, timeout=1.0)
        i3.sigkill()
        await self.wait_numsub(room, 2)   # Redis saw i3's subscription connection go
        # The two others keep chatting, both ways, with acks, nothing lost or doubled.
        for k in range(10):
            src, dst = (a, b) if k % 2 == 0 else (b, a)
            ack = await src.chat_acked(room, "m%d" % k, ref="m%d" % k)
            for p in (src, dst):
                ev = await p.take("chat", message="m%d" % k)
                self.assertEqual(ev["id"], ack["id"])
        for p in (a, b):
            await p.expect_none("chat", seconds=0.3)
            self.assertEqual([m for m in p.seen if m.get("type") == "error"], [], p)
        # A newcomer on a surviving instance is served and joins the same room.
        d, joined = await self.member(i2, "dan", room)
        self.assertIn(user("ann"), joined["members"])
        self.assertIn(user("ben"), joined["members"])
        for p in (a, b):
            await p.take("presence", event="join", user=user("dan"))
        # The killed instance's client lost its connection.
        with self.assertRaisesRegex(AssertionError, "connection closed"):
            await c.take("chat", timeout=TIMEOUT)


class HistoryAcrossInstances(ClusterTestCase):

    async def test_history_and_since_across_restarts(self):
        i1, i2 = await self.launch_n(2)
        room = unique("hist")
        a, _ = await self.member(i1, "ann", room)
        first = []
        for k in range(3):
            await a.chat_acked(room, "h%d" % k, ref="h%d" % k)
            first.append(await a.take("chat", message="h%d" % k))

        # Sent on instance 1, in the history of a joiner on instance 2.
        b, joined = await self.member(i2, "ben", room)
        self.assertEqual(joined["history"], first)
        self.assertFalse(joined.get("truncated", False), joined)
        last_seen = joined["history"][-1]["id"]

        # Instance 2 restarts; meanwhile four more chats. Ben re-joins there with since = the last id he saw.
        await self.stop_instance(i2)
        missed = []
        for k in range(4):
            await a.chat_acked(room, "m%d" % k, ref="m%d" % k)
            missed.append(await a.take("chat", message="m%d" % k))
        await self.restart(i2)
        b2 = await self.peer(i2, "ben-again")
        await b2.hello(user("ben"))
        joined = await b2.join(room, since=last_seen)
        self.assertEqual(joined["history"], missed, "since=%s on the restarted instance" % last_seen)
        self.assertFalse(joined.get("truncated", False), joined)
        # Live delivery continues without doubles.
        await a.chat_acked(room, "live", ref="live")
        live = await b2.take("chat", message="live")
        await b2.expect_none("chat", seconds=0.3)

        # Every instance restarts (Redis stays): history is still there, from either instance.
        for p in (a, b, b2):
            await p.close()
        for inst in (i1, i2):
            await self.stop_instance(inst)
            await self.restart(inst)
        everything = first + missed + [live]
        c = await self.peer(i1, "cat")
        await c.hello(user("cat"))
        joined = await c.join(room, since=first[0]["id"])
        self.assertEqual([chat_key(e) for e in joined["history"]], [chat_key(e) for e in everything[1:]])
        self.assertEqual(joined["history"], everything[1:])
        d = await self.peer(i2, "dan")
        await d.hello(user("dan"))
        joined = await d.join(room)
        self.assertEqual(joined["history"], everything)
        joined = await d.join(room + "-other", since=first[0]["id"])
        self.assertEqual(joined["history"], [], "another room's history leaked")


if __name__ == "__main__":
    import unittest
    unittest.main()
