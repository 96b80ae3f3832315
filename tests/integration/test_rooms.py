# Room membership (PROTOCOL.md sections 3-5): joined, presence, leave, disconnects, chat ids, history and `since`.
# Rule: presence goes to the other members only, exactly once per change, and chat ids grow within a room.
import asyncio
import time

from roomcast_harness import RawWs, RoomcastTestCase, id_parts, unique, user


class Rooms(RoomcastTestCase):

    async def member(self, room, u):
        c = await self.client(label=u["id"])
        await c.hello(u)
        joined = await c.join(room)
        return c, joined

    def assert_presence(self, msg, event, room, u):
        self.assertEqual(msg.get("type"), "presence", msg)
        self.assertEqual((msg.get("event"), msg.get("roomId"), msg.get("user")), (event, room, u), msg)

    async def test_joined_lists_members(self):
        room = unique("mem")
        a, b, c = user("a"), user("b"), user("c")
        ca, ja = await self.member(room, a)
        self.assertEqual(ja["members"], [a])
        cb, jb = await self.member(room, b)
        self.assertCountEqual(jb["members"], [a, b])
        cc, jc = await self.member(room, c)
        self.assertCountEqual(jc["members"], [a, b, c])
        self.assertEqual(jc["user"], c)

    async def test_presence_join_to_others_not_joiner(self):
        room = unique("pj")
        a, b, c = user("pa"), user("pb"), user("pc")
        ca, _ = await self.member(room, a)
        cb, _ = await self.member(room, b)
        self.assert_presence(await ca.recv(), "join", room, b)
        cc, _ = await self.member(room, c)
        self.assert_presence(await ca.recv(), "join", room, c)
        self.assert_presence(await cb.recv(), "join", room, c)
        await ca.expect_silence()
        await cb.expect_silence()
        await cc.expect_silence()

    async def test_presence_not_sent_to_other_rooms(self):
        r1, r2 = unique("p1"), unique("p2")
        ca, _ = await self.member(r1, user("x1"))
        cb, _ = await self.member(r2, user("x2"))
        cc, _ = await self.member(r2, user("x3"))
        self.assert_presence(await cb.recv(), "join", r2, user("x3"))
        await ca.expect_silence()

    async def test_leave_sends_left_and_presence(self):
        room = unique("pl")
        a, b = user("la"), user("lb")
        ca, _ = await self.member(room, a)
        cb, _ = await self.member(room, b)
        await ca.expect("presence")
        await cb.send({"type": "leave", "roomId": room})
        await cb.expect("left", roomId=room)
        self.assert_presence(await ca.recv(), "leave", room, b)
        await cb.expect_silence()
        # b no longer receives the room's chats; a does
        await ca.send({"type": "chat", "roomId": room, "message": "after leave"})
        await ca.expect("chat")
        await cb.expect_silence()
        info = (await self.get("/rooms/" + room)).json()
        self.assertEqual(info["members"], [a], info)

    async def test_rejoin_after_leave_sends_presence_again(self):
        room = unique("rj")
        ca, _ = await self.member(room, user("ra"))
        cb, _ = await self.member(room, user("rb"))
        self.assert_presence(await ca.recv(), "join", room, user("rb"))
        await cb.send({"type": "leave", "roomId": room})
        await cb.expect("left")
        self.assert_presence(await ca.recv(), "leave", room, user("rb"))
        await cb.join(room)
        self.assert_presence(await ca.recv(), "join", room, user("rb"))

    async def test_close_sends_presence_leave(self):
        room = unique("pc")
        a, b = user("ca"), user("cb")
        ca, _ = await self.member(room, a)
        cb, _ = await self.member(room, b)
        await ca.expect("presence")
        t0 = time.monotonic()
        await cb.close()
        self.assert_presence(await ca.recv(timeout=2.0), "leave", room, b)
        self.assertLess(time.monotonic() - t0, 2.0)
        await ca.expect_silence()

    async def test_abrupt_disconnect_sends_presence_leave(self):
        room = unique("pd")
        a = user("da")
        ca, _ = await self.member(room, a)
        raw = await RawWs.connect(self.port, "/ws?room=%s&name=Raw" % room)
        joined = await raw.expect_json("joined")
        pres = await ca.expect("presence")
        self.assert_presence(pres, "join", room, joined["user"])
        t0 = time.monotonic()
        raw.writer.transport.abort()  # RST-ish: no close frame, no FIN handshake
        self.assert_presence(await ca.recv(timeout=2.0), "leave", room, joined["user"])
        self.assertLess(time.monotonic() - t0, 2.0)

    async def test_close_leaves_every_room(self):
        r1, r2 = unique("m1"), unique("m2")
        ca, _ = await self.member(r1, user("w1"))
        cb, _ = await self.member(r2, user("w2"))
        cc = await self.client(label="multi")
        await cc.hello(user("multi"))
        await cc.join(r1)
        await cc.join(r2)
        self.assert_presence(await ca.recv(), "join", r1, user("multi"))
        self.assert_presence(await cb.recv(), "join", r2, user("multi"))
        await cc.close()
        self.assert_presence(await ca.recv(timeout=2.0), "leave", r1, user("multi"))
        self.assert_presence(await cb.recv(timeout=2.0), "leave", r2, user("multi"))
        for r, u in ((r1, user("w1")), (r2, user("w2"))):
            info = (await self.get("/rooms/" + r)).json()
            self.assertEqual((info["count"], info["members"]), (1, [u]), info)

    async def test_join_twice(self):
        room = unique("twice")
        a, b = user("ta"), user("tb")
        ca, _ = await self.member(room, a)
        cb, _ = await self.member(room, b)
        await ca.expect("presence")
        await cb.send({"type": "join", "roomId": room, "ref": "again"})
        again = await cb.expect("joined", roomId=room, ref="again")
        self.assertCountEqual(again["members"], [a, b])
        self.assertEqual(again["user"], b)
        await cb.send({"type": "SUBSCRIBE", "room": room})
        await cb.expect("joined", roomId=room)
        await ca.expect_silence(1.0)
        # still one membership: one chat arrives once, one leave ends it
        await ca.send({"type": "chat", "roomId": room, "message": "once"})
        await ca.expect("chat", message="once")
        await cb.expect("chat", message="once")
        await cb.expect_silence()
        self.assertEqual((await self.get("/rooms/" + room)).json()["count"], 2)
        await cb.send({"type": "leave", "roomId": room})
        await cb.expect("left")
        self.assert_presence(await ca.recv(), "leave", room, b)
        await cb.send({"type": "leave", "roomId": room})
        await cb.expect_error("not_member")

    async def test_empty_room_disappears(self):
        room = unique("gone")
        ca, _ = await self.member(room, user("g1"))
        await ca.send({"type": "leave", "roomId": room})
        await ca.expect("left")
        self.assertEqual((await self.get("/rooms/" + room)).json(),
                         {"roomId": room, "members": [], "count": 0, "ws": "/ws?room=" + room})

    async def test_chat_ids_strictly_increase(self):
        room = unique("ids")
        ca, _ = await self.member(room, user("i1"))
        p = await self.client()
        for i in range(30):
            await (ca if i % 2 else p).send({"type": "chat", "roomId": room, "message": "n%d" % i})
        events = [await ca.wait_for("chat") for _ in range(30)]
        got = [e["message"] for e in events]
        self.assertCountEqual(got, ["n%d" % i for i in range(30)])
        for parity in (0, 1):  # each sender's own messages in its order
            mine = [m for m in got if int(m[1:]) % 2 == parity]
            self.assertEqual(mine, sorted(mine, key=lambda m: int(m[1:])))
        ids = [id_parts(e["id"]) for e in events]
        for prev, cur in zip(ids, ids[1:]):
            self.assertGreater(cur, prev, "ids not increasing: %r" % [e["id"] for e in events])
        now = time.time() * 1000
        for e in events:
            self.assertIsInstance(e["ts"], int)
            self.assertLess(abs(e["ts"] - now), 60000, e)
        tss = [e["ts"] for e in events]
        self.assertEqual(tss, sorted(tss), "ts went backwards within one room")

    async def test_ids_unique_across_interleaved_rooms(self):
        r1, r2 = unique("x1"), unique("x2")
        c = await self.client()
        await c.join(r1)
        await c.join(r2)
        for i in range(10):
            await c.send({"type": "chat", "roomId": r1 if i % 2 else r2, "message": str(i)})
        events = await c.recv_n(10)
        for r in (r1, r2):
            ids = [id_parts(e["id"]) for e in events if e["roomId"] == r]
            self.assertEqual(len(ids), 5)
            self.assertEqual(ids, sorted(set(ids)), ids)

    async def test_history_on_join(self):
        room = unique("hist")
        ca, _ = await self.member(room, user("h1"))
        sent = []
        for i in range(5):
            await ca.send({"type": "chat", "roomId": room, "message": "h%d" % i})
            sent.append(await ca.expect("chat"))
        cb = await self.client()
        await cb.send({"type": "join", "roomId": room})
        joined = await cb.expect("joined")
        self.assertEqual(joined["history"], sent)

    async def test_history_keeps_last_50(self):
        room = unique("hist")
        ca, _ = await self.member(room, user("h2"))
        sent = []
        for i in range(60):
            await ca.send({"type": "chat", "roomId": room, "message": "m%02d" % i})
        for i in range(60):
            sent.append(await ca.expect("chat"))
        cb = await self.client()
        await cb.send({"type": "join", "roomId": room})
        joined = await cb.expect("joined")
        self.assertEqual([h["message"] for h in joined["history"]], ["m%02d" % i for i in range(10, 60)])
        self.assertEqual(joined["history"], sent[10:])
        self.assertFalse(joined.get("truncated", False), joined)

    async def test_history_since(self):
        room = unique("since")
        ca, _ = await self.member(room, user("s1"))
        sent = []
        for i in range(8):
            await ca.send({"type": "chat", "roomId": room, "message": "s%d" % i})
            sent.append(await ca.expect("chat"))
        cb = await self.client()
        await cb.send({"type": "join", "roomId": room, "since": sent[4]["id"]})
        joined = await cb.expect("joined")
        self.assertEqual(joined["history"], sent[5:])
        self.assertFalse(joined.get("truncated", False), joined)
        cc = await self.client()
        await cc.send({"type": "join", "roomId": room, "since": sent[-1]["id"]})
        self.assertEqual((await cc.expect("joined"))["history"], [])

    async def test_history_since_truncated(self):
        room = unique("trunc")
        ca, _ = await self.member(room, user("t1"))
        sent = []
        for i in range(60):
            await ca.send({"type": "chat", "roomId": room, "message": "t%02d" % i})
        for i in range(60):
            sent.append(await ca.expect("chat"))
        cb = await self.client()
        await cb.send({"type": "join", "roomId": room, "since": sent[2]["id"]})
        joined = await cb.expect("joined")
        self.assertIs(joined.get("truncated"), True, joined)
        self.assertEqual(joined["history"], sent[10:])

    async def test_joined_means_subscribed(self):
        room = unique("sub")
        p = await self.client(label="publisher")
        for i in range(20):
            c = await self.client(label="j%d" % i)
            await c.send({"type": "join", "roomId": room})
            await c.expect("joined")
            await p.send({"type": "chat", "roomId": room, "message": "right after %d" % i})
            ev = await c.wait_for("chat")  # (a presence leave of the previous client may come first)
            self.assertEqual(ev["message"], "right after %d" % i)
            await c.close()


if __name__ == "__main__":
    import unittest
    unittest.main()
