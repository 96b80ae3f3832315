# Redis Cluster mode, steady state (PROTOCOL.md section 7, "Redis Cluster"): rooms on every master, across instances.
# Rule: one SPUBLISH per chat on the room's slot owner and none elsewhere, no PUBLISH anywhere, one SSUBSCRIBE per
# instance with local members; one room order for every member; history and `since` as with one Redis.
import asyncio
import re

from cluster_harness import TIMEOUT, get_json, metrics, user
from redis_cluster_harness import (Monitor, RedisClusterTestCase, check_room_log, chats_of, keyslot,
                                   parse_metric_labels)

NO_PROBE = ["--redis-probe-interval", "3600"]   # no liveness SPUBLISH during the counted window
DROP_WITHIN = 5.0                               # the ~1 s linger, then the SUNSUBSCRIBE reaching the owner


def labelled(m, name, **labels):
    """Value of the sample `name` whose labels include `labels` (None if absent)."""
    for sample, value in m.items():
        n, ls = parse_metric_labels(sample)
        if n == name and all(ls.get(k) == v for k, v in labels.items()):
            return value
    return None


class Delivery(RedisClusterTestCase):
    instance_args = ["--log-level", "debug", "--rate", "1000"]

    async def commandstats(self):
        return await asyncio.to_thread(self.cluster.commandstats)

    async def test_rooms_on_every_master(self):
        c = self.cluster
        masters = c.masters()
        self.assertEqual(len(masters), 3)
        # i1 knows one seed only (the rest is discovered), i2 all six nodes.
        i1 = await self.launch("i1", args=NO_PROBE, seeds=c.seeds(masters[:1]))
        i2 = await self.launch("i2", args=NO_PROBE)
        for inst in (i1, i2):
            body = await self.wait_cluster_health(inst, 200, masters=3)
            self.assertIsInstance(body.get("connections"), int, body)
        rooms = {m.addr: c.rooms_on(m, 2, "spread") for m in masters}
        control_owner = c.node_for_key("roomcast:{roomcast}:control")
        all_rooms = [r for rs in rooms.values() for r in rs]
        owner = {r: m for m in masters for r in rooms[m.addr]}

        a = await self.peer(i1, "alice")
        await a.hello(user("alice"))
        b = await self.peer(i2, "bob")
        await b.hello(user("bob"))
        for r in all_rooms:
            await a.join(r)
            await b.join(r)   # (members across instances: test_members_across_instances)
            await a.take("presence", event="join", roomId=r, user=user("bob"))
        # One SSUBSCRIBE per instance with local members, on the owner only ("joined means subscribed").
        for r in all_rooms:
            ch = "room:{%s}" % r
            for m in masters:
                n = await asyncio.to_thread(m.shardnumsub, ch)
                self.assertEqual(n, 2 if m is owner[r] else 0, "SHARDNUMSUB %s on %s (owner %s)"
                                 % (ch, m.addr, owner[r].addr))
        m_before = {inst: await metrics(inst.port) for inst in (i1, i2)}

        # The counted window: chats only (presence is done, probes are an hour apart).
        before = await self.commandstats()
        sent = {r: [] for r in all_rooms}
        acks = {}
        for k in range(5):
            for r in all_rooms:
                for p in (a, b):
                    ref = "%s-%s-%d" % (p.label, r, k)
                    await p.chat(r, ref, ref=ref)
                    sent[r].append((p, ref))
        for r in all_rooms:
            for p, ref in sent[r]:
                ans = await p.answer(ref)
                self.assertEqual(ans["type"], "ack", ans)
                acks[ref] = ans["id"]
        for p in (a, b):
            await p.take_n(len(all_rooms) * 10, "chat", timeout=TIMEOUT)
        after = await self.commandstats()

        spub = c.stats_delta(before, after, "spublish")
        for m in masters:
            self.assertEqual(spub[m.addr], 10 * len(rooms[m.addr]),
                             "SPUBLISH calls on %s during %d chats to its rooms: %r" % (m.addr, 10 * len(rooms[m.addr]),
                                                                                        spub))
        others = {addr: d for addr, d in spub.items() if addr not in rooms}
        self.assertEqual(sum(others.values()), 0, "SPUBLISH on replicas: %r" % others)
        publish = {addr: s.get("publish", 0) for addr, s in after.items()}
        self.assertEqual(sum(publish.values()), 0, "plain PUBLISH in cluster mode: %r" % publish)
        evals = c.stats_delta(before, after, "eval")
        evalsha = c.stats_delta(before, after, "evalsha")
        print("\n[EVAL/EVALSHA per master during %d chats: %s]"
              % (len(acks), {m.addr: (evals[m.addr], evalsha[m.addr]) for m in masters}))

        # One order per room, the acked ids, everyone everything.
        for r in all_rooms:
            ids = check_room_log([a, b], r, must_ids=[acks[ref] for _, ref in sent[r]])
            self.assertEqual(ids["alice"], ids["bob"], r)
            got = [e["message"] for e in chats_of(a, r)]
            for p in (a, b):   # one sender's chats in the order it sent them
                mine = [ref for ref in got if ref.startswith(p.label + "-")]
                self.assertEqual(mine, [ref for q, ref in sent[r] if q is p], (p, r))

        # Metrics of cluster mode.
        for inst in (i1, i2):
            mm = await metrics(inst.port)
            self.assertEqual(mm.get("roomcast_redis_masters"), 3, inst)
            for m in masters:
                self.assertEqual(labelled(mm, "roomcast_redis_node_up", node=m.addr), 1, (inst, m.addr))
                # The rooms' SSUBSCRIBEs, and the control channel's on the owner of its slot.
                subs = labelled(mm, "roomcast_redis_node_subscriptions", node=m.addr)
                expected = {2, 3} if m is control_owner else {2}
                self.assertIn(subs, expected, (inst.name, m.addr, "roomcast_redis_node_subscriptions"))
                pub0 = labelled(m_before[inst], "roomcast_redis_node_publishes_total", node=m.addr) or 0
                pub1 = labelled(mm, "roomcast_redis_node_publishes_total", node=m.addr)
                self.assertIsNotNone(pub1, (inst, m.addr))
                self.assertGreaterEqual(pub1 - pub0, 5 * len(rooms[m.addr]), (inst, m.addr))
            for kind in ("moved", "ask"):
                self.assertIsNotNone(labelled(mm, "roomcast_redis_redirects_total", kind=kind), (inst, kind))
            self.assertIn("roomcast_redis_slot_map_refreshes_total", mm)

        # The last local member goes: that instance's SSUBSCRIBE goes too (after the linger), the other stays.
        for r in all_rooms:
            await a.leave(r)
        for r in all_rooms:
            await self.wait_shardnumsub(r, 1, timeout=DROP_WITHIN)
        await b.close()
        for r in all_rooms:
            await self.wait_shardnumsub(r, 0, timeout=DROP_WITHIN)
        for inst in (i1, i2):
            self.assertEqual(await inst.metric("roomcast_rooms"), 0, inst)

    async def test_history_and_since(self):
        c = self.cluster
        i1, i2 = await self.launch_n(2)
        room = c.rooms_on(c.masters()[1], 1, "hist")[0]
        a, _ = await self.member(i1, "alice", room)
        ids = []
        for k in range(6):
            ids.append((await a.chat_acked(room, "h%d" % k, ref="h%d" % k))["id"])
        stream = await asyncio.to_thread(c.stream_ids, room)
        self.assertEqual(stream, ids, "the stream room:{%s}:log on the owner holds the acked ids" % room)

        b, joined = await self.member(i2, "bob", room)
        self.assertEqual([(e["id"], e["message"], e["user"]) for e in joined["history"]],
                         [(i, "h%d" % k, user("alice")) for k, i in enumerate(ids)], joined)

        d = await self.peer(i2, "dora")
        await d.hello(user("dora"))
        joined = await d.join(room, since=ids[2])
        self.assertEqual([e["id"] for e in joined["history"]], ids[3:], joined)
        self.assertFalse(joined.get("truncated", False), joined)

        ack = await b.chat_acked(room, "live", ref="live")
        for p in (a, b, d):
            ev = await p.take("chat", message="live")
            self.assertEqual(ev["id"], ack["id"], (p, ev))

    async def test_members_across_instances(self):
        """joined.members and GET /rooms/<id> list the members of every instance, the one started later too."""
        c = self.cluster
        i1 = await self.launch("i1")
        i2 = await self.launch("i2")    # registers after i1 is up
        room = c.rooms_on(c.masters()[0], 1, "mem")[0]
        a, _ = await self.member(i1, "alice", room)
        b, joined = await self.member(i2, "bob", room)
        self.assertCountEqual(joined["members"], [user("alice"), user("bob")], "joined on the later instance")
        d, joined = await self.member(i1, "dora", room)
        self.assertCountEqual(joined["members"], [user("alice"), user("bob"), user("dora")],
                              "joined on the earlier instance lists the member of the later one")
        for inst in (i1, i2):
            st, body = await get_json(inst.port, "/rooms/%s" % room)
            self.assertEqual((st, body.get("count")), (200, 3), (inst.name, body))

    async def test_key_layout(self):
        """The names of section 7: a room's keys in its slot, the instances' bookkeeping in the slot of
        {roomcast}, chat records per instance with a TTL of at most a day, and nothing else."""
        c = self.cluster
        i1, i2 = await self.launch_n(2)
        room = c.rooms_on(c.masters()[2], 1, "keys")[0]
        a, _ = await self.member(i1, "alice", room)
        b, _ = await self.member(i2, "bob", room)
        await a.take("presence", event="join", user=user("bob"))
        await a.chat_acked(room, "one", ref="one")
        await b.chat_acked(room, "two", ref="two")
        owner = c.room_owner(room)

        def cmd(key, *args):
            return c.command(key, *args)
        here = set(await asyncio.to_thread(self.scan, owner, "*{%s}*" % room))
        log, members = "room:{%s}:log" % room, "room:{%s}:members" % room
        self.assertLessEqual({log, members}, here, here)
        self.assertLessEqual({"alice", "bob"}, set(await asyncio.to_thread(cmd, members, "HKEYS", members)))
        # In Redis an instance is named by its --instance-id and its start time (<id>~<ms>): a process
        # restarted under the same id never shares member lines or records with its predecessor.
        instances = "roomcast:{roomcast}:instances"
        names = set(await asyncio.to_thread(cmd, instances, "ZRANGE", instances, 0, -1))
        redis_name = {}
        for iid in ("i1", "i2"):
            found = [n for n in names if re.fullmatch(r"%s~\d{13}" % iid, n)]
            self.assertEqual(len(found), 1, "one Redis name <id>~<start ms> for %s in %s" % (iid, names))
            redis_name[iid] = found[0]
        for iid in ("i1", "i2"):
            records = "room:{%s}:chats:%s" % (room, redis_name[iid])
            self.assertIn(records, here, "chat records of %s" % iid)
            ttl = await asyncio.to_thread(cmd, records, "TTL", records)
            self.assertTrue(0 < ttl <= 86400, "TTL of %s: %r" % (records, ttl))
        for iid in ("i1", "i2"):
            live = "roomcast:{roomcast}:instance:%s" % redis_name[iid]
            self.assertEqual(await asyncio.to_thread(cmd, live, "EXISTS", live), 1, live)
            rooms = live + ":rooms"
            self.assertIn(room, await asyncio.to_thread(cmd, rooms, "SMEMBERS", rooms), rooms)
        allowed = re.compile(r"^(room:\{[A-Za-z0-9_.:-]+\}:(log|members|chats:.+)"
                             r"|roomcast:\{roomcast\}:(instances|instance:.+|reaping|reaping:.+))$")
        for m in c.masters():
            strays = [k for k in await asyncio.to_thread(self.scan, m, "*") if not allowed.match(k)]
            self.assertEqual(strays, [], "keys outside section 7's names on %s" % m.addr)

    async def test_prefix(self):
        """--redis-prefix goes in front of every name; the hash tag still decides the slot."""
        c = self.cluster
        i1 = await self.launch("p1", args=["--redis-prefix", "pfx:"])
        room = c.rooms_on(c.masters()[0], 1, "pfx")[0]
        owner = c.room_owner(room)
        a, _ = await self.member(i1, "alice", room)
        self.assertEqual(await asyncio.to_thread(owner.shardnumsub, "pfx:room:{%s}" % room), 1)
        self.assertEqual(await asyncio.to_thread(owner.shardnumsub, "room:{%s}" % room), 0)
        ack = await a.chat_acked(room, "prefixed", ref="p")
        self.assertEqual(await asyncio.to_thread(c.stream_ids, room, "pfx:"), [ack["id"]])
        self.assertEqual(await asyncio.to_thread(c.stream_ids, room), [])
        instances = "pfx:roomcast:{roomcast}:instances"
        names = await asyncio.to_thread(c.command, instances, "ZRANGE", instances, 0, -1)
        self.assertEqual(len([n for n in names if re.fullmatch(r"p1~\d{13}", n)]), 1, names)

    async def test_probe_per_master(self):
        """Each master gets the instance's liveness probe: an SPUBLISH on roomcast:probe:{<tag>}:<id> whose slot
        that master owns, about every --redis-probe-interval (default 1 s); never a plain PUBLISH."""
        c = self.cluster
        masters = c.masters()
        mons = {m.addr: Monitor(m) for m in masters}
        try:
            await self.launch("probe1")
            await asyncio.sleep(3.5)
        finally:
            for mon in mons.values():
                mon.close()
        for m in masters:
            probes = mons[m.addr].entries("spublish", "roomcast:probe:")
            self.assertGreaterEqual(len(probes), 2, "probes on %s in 3.5 s" % m.addr)
            for _, _, args in probes:
                self.assertTrue(args[1].startswith("roomcast:probe:{") and args[1].endswith("}:probe1"), args)
                self.assertIn(keyslot(args[1]), c.slots_of(m), "probe channel %s not in a slot of %s"
                              % (args[1], m.addr))
            self.assertEqual(mons[m.addr].entries("publish"), [], m.addr)

    @staticmethod
    def scan(node, pattern):
        keys, cursor = [], "0"
        while True:
            cursor, batch = node.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys += batch
            if cursor == "0":
                return keys


if __name__ == "__main__":
    import unittest
    unittest.main()
