# Room order (PROTOCOL.md section 5) and the seed demo of the earlier tutorial clients.
# Rule: every member sees one room's chats in one identical order, each sender's messages in the order it sent them.
import asyncio

from roomcast_harness import RoomcastTestCase, id_parts, unique, user


class Order(RoomcastTestCase):
    # Senders here exceed the default burst of 100 messages: the rate limit is not what is under test.
    server_args = ["--rate", "1000"]

    async def collect_chats(self, c, n, timeout=30):
        return [await c.wait_for("chat", timeout=timeout) for _ in range(n)]

    def assert_sender_order(self, events, sender_id, prefix, n):
        mine = [e["message"] for e in events if e["user"]["id"] == sender_id]
        self.assertEqual(mine, ["%s-%03d" % (prefix, i) for i in range(n)],
                         "%s's messages out of order or missing" % sender_id)

    async def test_seed_demo(self):
        s1 = await self.client(label="sub1")
        s2 = await self.client(label="sub2")
        pub = await self.client(label="pub")
        await s1.send({"type": "SUBSCRIBE", "room": "room1"})
        await s1.expect("joined", roomId="room1")
        await s2.send({"type": "SUBSCRIBE", "room": "room1"})
        await s2.expect("joined", roomId="room1")
        await pub.send({"type": "sendMessage", "roomId": "room1", "message": "hey"})
        for s in (s1, s2):
            ev = await s.wait_for("chat")
            self.assertEqual((ev["roomId"], ev["message"]), ("room1", "hey"), ev)
        await pub.expect_silence()

    async def test_two_members_100_each_concurrently(self):
        room = unique("order")
        a = await self.client(label="a")
        b = await self.client(label="b")
        await a.hello(user("a"))
        await b.hello(user("b"))
        await a.join(room)
        await b.join(room)

        async def send_all(c, prefix):
            for i in range(100):
                await c.send({"type": "chat", "roomId": room, "message": "%s-%03d" % (prefix, i)})

        await asyncio.gather(send_all(a, "a"), send_all(b, "b"))
        ea = await self.collect_chats(a, 200)
        eb = await self.collect_chats(b, 200)
        self.assertEqual([e["id"] for e in ea], [e["id"] for e in eb], "members saw different orders")
        self.assertEqual(ea, eb)
        self.assertCountEqual([e["message"] for e in ea],
                              ["a-%03d" % i for i in range(100)] + ["b-%03d" % i for i in range(100)])
        self.assert_sender_order(ea, "a", "a", 100)
        self.assert_sender_order(ea, "b", "b", 100)
        ids = [id_parts(e["id"]) for e in ea]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), 200)
        await a.expect_silence()
        await b.expect_silence()

    async def test_members_and_non_member_sender(self):
        room = unique("order")
        a = await self.client(label="a")
        b = await self.client(label="b")
        c = await self.client(label="outsider")
        for cl, u in ((a, user("ma")), (b, user("mb")), (c, user("oc"))):
            await cl.hello(u)
        await a.join(room)
        await b.join(room)

        async def send_all(cl, prefix, n):
            for i in range(n):
                await cl.send({"type": "chat", "roomId": room, "message": "%s-%03d" % (prefix, i), "ref": i})

        await asyncio.gather(send_all(a, "ma", 60), send_all(b, "mb", 60), send_all(c, "oc", 60))
        ea = await self.collect_chats(a, 180)
        eb = await self.collect_chats(b, 180)
        self.assertEqual(ea, eb, "members saw different sequences")
        for sender in ("ma", "mb", "oc"):
            self.assert_sender_order(ea, sender, sender, 60)
        # the outsider gets its 60 acks (in order) and no chat
        acks = [await c.expect("ack") for _ in range(60)]
        self.assertEqual([x["ref"] for x in acks], list(range(60)))
        by_msg = {e["message"]: e["id"] for e in ea}
        self.assertEqual([x["id"] for x in acks], [by_msg["oc-%03d" % i] for i in range(60)])
        await c.expect_silence()
        # members got one ack per own message, in their order
        for cl in (a, b):
            acks = [m for m in cl.skipped if m["type"] == "ack"]
            while len(acks) < 60:
                m = await cl.recv()
                self.assertEqual(m["type"], "ack", m)
                acks.append(m)
            self.assertEqual([x["ref"] for x in acks], list(range(60)))
            await cl.expect_silence()

    async def test_many_rooms_isolated(self):
        rooms = [unique("iso") for _ in range(5)]
        clients = []
        for r in rooms:
            c = await self.client(label=r)
            await c.join(r)
            clients.append(c)
        pub = await self.client(label="pub")
        for i in range(50):
            r = rooms[i % 5]
            await pub.send({"type": "chat", "roomId": r, "message": "%s/%d" % (r, i)})
        for r, c in zip(rooms, clients):
            evs = [await c.expect("chat") for _ in range(10)]
            self.assertEqual([e["message"] for e in evs], ["%s/%d" % (r, i) for i in range(50) if i % 5 == rooms.index(r)])
            self.assertTrue(all(e["roomId"] == r for e in evs))
            await c.expect_silence(0.2)


if __name__ == "__main__":
    import unittest
    unittest.main()
