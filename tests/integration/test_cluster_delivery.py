# Scale-out delivery (PROTOCOL.md sections 3-5): chats and presence cross instances, on distinct ports or one port.
# Rule: a member on any instance gets what a member on any other instance does, in one room order.
import asyncio

from cluster_harness import TIMEOUT, ClusterTestCase, chat_key, health, id_parts, metrics, unique, user


class CrossInstanceDelivery(ClusterTestCase):

    async def test_two_instances_chat_and_presence(self):
        i1, i2 = await self.launch_n(2)
        room = unique("x2")
        a, joined_a = await self.member(i1, "alice", room)
        self.assertEqual(joined_a["members"], [user("alice")], joined_a)
        b, joined_b = await self.member(i2, "bob", room)
        self.assertCountEqual(joined_b["members"], [user("alice"), user("bob")], joined_b)
        pres = await a.take("presence")
        self.assertEqual((pres["event"], pres["roomId"], pres["user"]), ("join", room, user("bob")), pres)
        await b.expect_none("presence")   # the joiner gets no presence about itself

        ack = await a.chat_acked(room, "from i1", ref="r1")
        for p in (a, b):
            ev = await p.take("chat")
            self.assertEqual((ev["roomId"], ev["id"], ev["user"], ev["message"]),
                             (room, ack["id"], user("alice"), "from i1"), ev)
            self.assertIsInstance(ev["ts"], int)
        ack = await b.chat_acked(room, "from i2", ref="r2")
        for p in (a, b):
            ev = await p.take("chat")
            self.assertEqual((ev["id"], ev["user"], ev["message"]), (ack["id"], user("bob"), "from i2"), ev)

        await b.leave(room)
        pres = await a.take("presence")
        self.assertEqual((pres["event"], pres["user"]), ("leave", user("bob")), pres)
        # Back in, then gone by closing the connection: the leave crosses instances within 2 s.
        await b.join(room)
        pres = await a.take("presence")
        self.assertEqual((pres["event"], pres["user"]), ("join", user("bob")), pres)
        await b.close()
        pres = await a.take("presence", timeout=2.5)
        self.assertEqual((pres["event"], pres["user"]), ("leave", user("bob")), pres)
        await a.expect_none()

    async def test_three_instances(self):
        insts = await self.launch_n(3)
        room = unique("x3")
        names = ["ann", "ben", "cat"]
        peers = []
        for k, (inst, uid) in enumerate(zip(insts, names)):
            p, joined = await self.member(inst, uid, room)
            self.assertCountEqual(joined["members"], [user(n) for n in names[:k + 1]], joined)
            for earlier in peers:
                pres = await earlier.take("presence")
                self.assertEqual((pres["event"], pres["user"]), ("join", user(uid)), (earlier, pres))
            peers.append(p)

        acks = {}
        for p, uid in zip(peers, names):
            acks[uid] = await p.chat_acked(room, "hi from %s" % uid, ref=uid)
        for p in peers:
            evs = await p.take_n(3, "chat")
            self.assertEqual([(e["user"]["id"], e["message"], e["id"]) for e in evs],
                             [(uid, "hi from %s" % uid, acks[uid]["id"]) for uid in names], p)
        # The member on the middle instance leaves; the two others, on other instances, hear of it.
        await peers[1].leave(room)
        for p in (peers[0], peers[2]):
            pres = await p.take("presence")
            self.assertEqual((pres["event"], pres["user"]), ("leave", user("ben")), pres)
        await peers[2].chat(room, "after ben left")
        for p in (peers[0], peers[2]):
            ev = await p.take("chat")
            self.assertEqual(ev["message"], "after ben left", ev)
        await peers[1].expect_none("chat")

    async def test_seed_two_instance_demo(self):
        i1, i2 = await self.launch_n(2)
        a = await self.peer(i1, "A")
        b = await self.peer(i2, "B")
        c = await self.peer(i2, "C")
        for p in (a, b):
            await p.send({"type": "SUBSCRIBE", "room": "room1"})
            await p.take("joined", roomId="room1")
        await c.send({"type": "sendMessage", "roomId": "room1", "message": "hey"})
        for p in (a, b):
            ev = await p.take("chat")
            self.assertEqual((ev["roomId"], ev["message"]), ("room1", "hey"), ev)
        await c.expect_none()   # not a member, no ref: nothing comes back


class SharedPort(ClusterTestCase):

    async def test_two_instances_on_one_reuseport_port(self):
        i1, i2 = await self.launch_n(2, shared_port=True)
        port = i1.port
        self.assertEqual(i2.port, port)
        ids = {"i1", "i2"}

        async def websockets_by_instance():
            """Ask /metrics on the shared port until both instances have answered; {instance: websockets}."""
            seen = {}
            for _ in range(200):
                m = await metrics(port)
                seen[m["__instance__"]] = int(m["roomcast_websockets"])
                if set(seen) == ids:
                    return seen
            self.fail("/metrics on the shared port never answered from both instances: %r" % seen)

        # Open clients one at a time and see whose websocket count went up: that instance holds it.
        owner = {}
        clients = []
        before = await websockets_by_instance()
        self.assertEqual(before, {"i1": 0, "i2": 0})
        for k in range(40):
            p = await self.peer(port, "c%d" % k)
            await p.ping()    # handshake done and served
            now = await websockets_by_instance()
            grown = [i for i in ids if now[i] == before[i] + 1]
            self.assertEqual(len(grown), 1, "one new client, counts %r -> %r" % (before, now))
            self.assertEqual(sum(now.values()), sum(before.values()) + 1, (before, now))
            owner[p] = grown[0]
            clients.append(p)
            before = now
            if len(clients) >= 4 and set(owner.values()) == ids:
                break
        self.assertEqual(set(owner.values()), ids, "the kernel never gave a connection to one of the instances")

        # /healthz answers come from both processes too, each naming itself.
        seen = set()
        for _ in range(200):
            st, body = await health(port)
            self.assertEqual((st, body["status"], body["redis"]), (200, "ok", "up"), body)
            seen.add(body["instance"])
            if seen == ids:
                break
        self.assertEqual(seen, ids)

        room = unique("shared")
        for k, p in enumerate(clients):
            await p.hello(user("u%d" % k))
            await p.join(room)
        await self.wait_numsub(room, 2, timeout=1.0)
        for sender_inst in sorted(ids):
            sender = next(p for p in clients if owner[p] == sender_inst)
            ack = await sender.chat_acked(room, "from %s" % sender_inst, ref=sender_inst)
            for p in clients:
                ev = await p.take("chat", pred=lambda e: e["message"] == "from %s" % sender_inst)
                self.assertEqual(ev["id"], ack["id"], (p, owner[p], ev))
        for p in clients:
            await p.expect_none("chat", seconds=0.1)


class RoomOrder(ClusterTestCase):
    N = 50
    maxDiff = None

    async def three_publishers_four_receivers(self):
        insts = await self.launch_n(3)
        room = unique("order")
        receivers = []
        for k, inst in enumerate([insts[0], insts[1], insts[2], insts[0]]):
            p, _ = await self.member(inst, "rcv%d" % k, room)
            receivers.append(p)
        pubs = []
        for k, inst in enumerate(insts):
            p = await self.peer(inst, "pub%d" % k)   # publish-only: not a member
            await p.hello(user("pub%d" % k))
            pubs.append(p)

        async def publish(k, p):
            msgs = [{"type": "chat", "roomId": room, "message": "p%d-%03d" % (k, i), "ref": "p%d-%d" % (k, i)}
                    for i in range(self.N)]
            for m in msgs:
                await p.send(m)
            acks = [await p.answer("p%d-%d" % (k, i), timeout=30) for i in range(self.N)]
            for a in acks:
                self.assertEqual(a["type"], "ack", (p, a))
            return [a["id"] for a in acks]

        ack_ids = await asyncio.gather(*(publish(k, p) for k, p in enumerate(pubs)))
        total = self.N * len(pubs)
        seqs = [await r.take_n(total, "chat", timeout=30, pred=lambda e: e["message"][:1] == "p")
                for r in receivers]
        first = [chat_key(e) for e in seqs[0]]
        for r, seq in zip(receivers, seqs):
            self.assertEqual([chat_key(e) for e in seq], first, "%s saw another order than %s" % (r, receivers[0]))
            self.assertTrue(all(e["roomId"] == room for e in seq))
        ids = [id_parts(e["id"]) for e in seqs[0]]
        self.assertEqual(ids, sorted(ids), "room order is not id order")
        self.assertEqual(len(set(ids)), total, "duplicate ids")
        for k in range(len(pubs)):
            mine = [e for e in seqs[0] if e["user"]["id"] == "pub%d" % k]
            self.assertEqual([e["message"] for e in mine], ["p%d-%03d" % (k, i) for i in range(self.N)],
                             "pub%d's messages missing or out of order" % k)
            self.assertEqual([e["id"] for e in mine], ack_ids[k], "acked ids differ from delivered ids")
        for r in receivers:
            await r.expect_none("chat", seconds=0.3)
        for p in pubs:
            await p.expect_none("chat", seconds=0.05)

    async def test_three_publishers_four_receivers(self):
        await self.three_publishers_four_receivers()

    async def test_sender_order_when_redis_reloads_scripts(self):
        """Redis forgets its scripts (SCRIPT FLUSH; a restart or a failover does the same) and instance 2 sits
        behind a 100 ms link. Its first chats are in flight when the NOSCRIPT for the first comes back, and
        instance 1 loads the script again meanwhile: the retry of the first may not land after the others."""
        proxy = await self.delay_proxy(0.1)
        i1 = await self.launch("i1")
        i2 = await self.launch("i2", redis_url=proxy.url)
        room = unique("noscript")
        m1, _ = await self.member(i1, "m1", room)
        m2, _ = await self.member(i2, "m2", room)
        p1 = await self.peer(i1, "p1")
        p2 = await self.peer(i2, "p2")
        for p in (p1, p2):
            await p.hello(user(p.label))
            await p.chat_acked(room, "warm-%s" % p.label, ref="warm")
        for m in (m1, m2):
            await m.take_n(2, "chat", pred=lambda e: e["message"].startswith("warm-"))
        self.assertEqual(await self.redis.acommand("SCRIPT", "FLUSH"), "OK")

        n = 50
        refs = ["p2-%03d" % i for i in range(n)]

        async def slow_link_publisher():
            for r in refs:   # one every 4 ms: spread over the 100 ms the link holds them
                await p2.chat(room, r, ref=r)
                await asyncio.sleep(0.004)

        async def fast_link_publisher():
            await asyncio.sleep(0.15)   # after p2-000 met the empty script cache, before most others arrive
            await p1.chat_acked(room, "p1-000", ref="p1-000")

        await asyncio.gather(slow_link_publisher(), fast_link_publisher())
        acks = [await p2.answer(r, timeout=TIMEOUT) for r in refs]
        self.assertEqual([a["type"] for a in acks], ["ack"] * n, acks)
        by_id = [r for _, r in sorted((id_parts(a["id"]), r) for a, r in zip(acks, refs))]
        self.assertEqual(by_id, refs, "p2's chats in the order of their ids (Redis ran them in this order)")
        for m in (m1, m2):
            got = await m.take_n(n + 1, "chat", timeout=TIMEOUT)
            self.assertEqual([e["message"] for e in got if e["user"]["id"] == "p2"], refs,
                             "%s: p2's chats out of order" % m.label)
            await m.expect_none("chat", seconds=0.2)


if __name__ == "__main__":
    import unittest
    unittest.main()
