# Redis Cluster mode, a room's slot migrated to another master under 20 chats/s (PROTOCOL.md section 7, resharding).
# Rule: every acked chat reaches every member once, in order, on the same connections; afterwards the room's
# SPUBLISH and SSUBSCRIBE are on the new owner only.
import asyncio
import time

from cluster_harness import TIMEOUT, user
from redis_cluster_harness import (ChatTraffic, Monitor, RedisClusterTestCase, check_room_log, parse_metric_labels,
                                   wait_delivered)

FILLERS = 40    # other keys in the slot, so the migration takes a while (batches of 3, 0.1 s apart)


class Migration(RedisClusterTestCase):
    # --history 500: the stream keeps every chat of the test, so it can be compared with the acks.
    instance_args = ["--log-level", "debug", "--rate", "1000", "--history", "500"]

    async def test_slot_migrated_under_traffic(self):
        c = self.cluster
        src, dst, room, slot = self.room_to_move("mig")
        channel = "room:{%s}" % room
        for k in range(FILLERS):
            key = "fill:{%s}:%d" % (room, k)
            await asyncio.to_thread(c.command, key, "SET", key, k)
        i1, i2, a, b = await self.two_members(room, "alice", "bob")
        await a.take("presence", event="join", user=user("bob"))
        pubs = [await self.peer(i1, "pub1"), await self.peer(i2, "pub2")]
        ack = await pubs[0].chat_acked(room, "warm", ref="warm")
        for p in (a, b):
            self.assertEqual((await p.take("chat", message="warm"))["id"], ack["id"])
        self.assertEqual(await asyncio.to_thread(src.shardnumsub, channel), 2)

        mons = {nd.addr: Monitor(nd) for nd in (src, dst)}
        self.addCleanup(lambda: [m.close() for m in mons.values()])
        traffic = ChatTraffic(pubs, [room], rate=20.0, tag="mig").start()
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        moved = await asyncio.to_thread(c.migrate_slot, slot, dst, batch=3, pause=0.1)
        t_done = time.monotonic()
        print("\n[slot %d of %s: %d keys moved %s -> %s in %.1fs under traffic]"
              % (slot, room, moved, src.addr, dst.addr, t_done - t0))
        self.assertGreaterEqual(moved, FILLERS + 1)   # the fillers and at least the room's stream
        await asyncio.sleep(1.5)
        await traffic.stop()
        answers = await traffic.wait_answered(TIMEOUT * 2)

        acked = [m["id"] for m, _ in (answers[s["ref"]] for s in traffic.sent) if m["type"] == "ack"]
        refused = [s["ref"] for s in traffic.sent if answers[s["ref"]][0]["type"] == "error"]
        print("[%d chats during the migration window: %d acked, %d refused (unavailable)]"
              % (len(answers), len(acked), len(refused)))
        await wait_delivered([a, b], room, acked + [ack["id"]], TIMEOUT)
        ids = check_room_log([a, b], room, must_ids=acked + [ack["id"]], refused_messages=refused)
        self.assertEqual(ids["alice"], ids["bob"])
        self.assertEqual(sorted(await asyncio.to_thread(c.stream_ids, room)), sorted(set(acked + [ack["id"]])),
                         "the stream on the new owner holds exactly the acked chats")
        for p in [a, b] + pubs:
            self.assertIsNone(p.closed, p)

        # Afterwards: the subscriptions on the new owner only, every SPUBLISH of the room there.
        await self.wait_shardnumsub(room, 2, node=dst)
        await self.wait_shardnumsub(room, 0, node=src)
        n_src = len(mons[src.addr].entries("spublish", channel))
        n_dst = len(mons[dst.addr].entries("spublish", channel))
        later = []
        for k in range(10):
            later.append((await pubs[k % 2].chat_acked(room, "later-%d" % k, ref="later-%d" % k))["id"])
        await wait_delivered([a, b], room, later, TIMEOUT)
        check_room_log([a, b], room, must_ids=later)

        async def seen_on_dst():
            return len(mons[dst.addr].entries("spublish", channel)) >= n_dst + 10
        deadline = time.monotonic() + TIMEOUT
        while not await seen_on_dst() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        self.assertEqual(len(mons[dst.addr].entries("spublish", channel)) - n_dst, 10, "SPUBLISH on the new owner")
        self.assertEqual(len(mons[src.addr].entries("spublish", channel)) - n_src, 0, "SPUBLISH on the old owner")
        for nd in (src, dst):
            pubs_plain = mons[nd.addr].entries("publish")
            self.assertEqual(pubs_plain, [], "plain PUBLISH on %s" % nd.addr)

        for inst in (i1, i2):
            await self.wait_cluster_health(inst, 200, masters=3)
            m = await inst.metrics()
            shown = {k: v for k, v in m.items() if parse_metric_labels(k)[0] in (
                "roomcast_redis_redirects_total", "roomcast_redis_slot_map_refreshes_total")}
            print("[%s: %s]" % (inst.name, ", ".join("%s=%g" % kv for kv in sorted(shown.items()))))

        # Last, so that everything above is judged first: a slot being moved still has a reachable owner (the
        # source, or the target after ASKING), so no chat of it may be refused (section 4: `unavailable` means
        # the broker is down).
        self.assertEqual(refused, [], "%d of %d chats refused `unavailable` while slot %d moved between two live "
                         "masters (see the instances' 'chat not published' warnings)" % (len(refused), len(answers),
                                                                                          slot))


if __name__ == "__main__":
    import unittest
    unittest.main()
