# Instances started before Redis (PROTOCOL.md sections 1 and 5): they serve, say "redis":"down", and join in later.
# Rule: without Redis, requests are served, chats refused, joins wait; once Redis starts, all works by itself.
import time

from cluster_harness import SCALE, TIMEOUT, ClusterTestCase, unique, user
from roomcast_harness import req, http_request


class RedisLate(ClusterTestCase):
    start_redis = False

    async def test_instances_before_redis(self):
        i1 = await self.launch("i1", require_up=False)
        i2 = await self.launch("i2", require_up=False)
        for inst in (i1, i2):
            st, body = await inst.health()
            self.assertEqual((st, body["status"], body["redis"], body["instance"]), (503, "degraded", "down",
                                                                                     inst.instance_id), body)
            self.assertEqual(await inst.metric("roomcast_broker_up"), 0)
            page = await http_request(inst.port, req("GET", "/", inst.port, [("Connection", "close")]))
            self.assertEqual(page.status, 200, page)
            self.assertIn("text/html", page.header("Content-Type", ""))

        room = unique("late")
        a = await self.peer(i1, "alice")
        b = await self.peer(i2, "bob")
        await a.hello(user("alice"))
        await b.hello(user("bob"))
        await a.ping()
        await a.chat(room, "too early", ref="early")
        err = await a.answer("early", timeout=2.0)
        self.assertEqual((err["type"], err.get("code")), ("error", "unavailable"), err)
        # A join waits for the broker instead of failing.
        await a.send({"type": "join", "roomId": room, "ref": "ja"})
        await b.send({"type": "join", "roomId": room, "ref": "jb"})
        await a.expect_none(seconds=1.0)
        await b.expect_none(seconds=0.1)

        await self.restart_redis()
        t_start = time.monotonic()
        for inst in (i1, i2):
            await self.wait_health(inst, 200, "up", timeout=TIMEOUT)
        ja = await a.take("joined", timeout=TIMEOUT, roomId=room)
        jb = await b.take("joined", timeout=TIMEOUT, roomId=room)
        self.assertEqual((ja.get("ref"), jb.get("ref")), ("ja", "jb"))
        self.assertLess(time.monotonic() - t_start, 5.0 * SCALE, "joins answered too late after Redis came up")
        await self.wait_numsub(room, 2, timeout=1.0)
        for src, dst, tag in ((a, b, "a"), (b, a, "b")):
            ack = await src.chat_acked(room, "hello from %s" % tag, ref=tag)
            ev = await dst.take("chat", message="hello from %s" % tag)
            self.assertEqual(ev["id"], ack["id"])
        # Joined at about the same time: each learns of the other from `members` or from a presence event.
        for p, joined, other in ((a, ja, "bob"), (b, jb, "alice")):
            heard = [e["user"] for e in p.pending("presence", event="join")]
            self.assertIn(user(other), joined["members"] + heard, (p, joined, heard))
        for p in (a, b):
            self.assertNotIn("too early", [e["message"] for e in p.seen if e.get("type") == "chat"])
        self.assertEqual(await i1.metric("roomcast_broker_up"), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
