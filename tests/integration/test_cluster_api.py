# The server API with two instances on one Redis (PROTOCOL.md section 9): every instance sees what the API does.
# Rule: an API chat is one chat in the room's one order everywhere; a disconnect reaches every instance through the
# control channel and closes exactly the named user's connections, with 4003.

import asyncio
import json

from cluster_harness import TIMEOUT, ClusterTestCase, id_parts, unique, user, wait_until
from roomcast_harness import http_request, req

KEY = "cluster-api-key"


async def api(port, method, path, body=None, key=KEY):
    headers = [("Connection", "close")]
    if key is not None:
        headers.append(("X-API-Key", key))
    data = b"" if body is None else json.dumps(body).encode()
    if method == "POST" and not data:
        headers.append(("Content-Length", "0"))
    return await http_request(port, req(method, path, port, headers, data))


class ClusterApi(ClusterTestCase):

    async def launch_api(self):
        return await self.launch_n(2, args=["--api-key", KEY])

    async def test_publish_both_instances_order_and_history(self):
        i1, i2 = await self.launch_api()
        room = unique("cpub")
        a, _ = await self.member(i1, "ann", room)
        b, _ = await self.member(i2, "ben", room)
        await self.wait_numsub(room, 2)
        r = await api(i1.port, "POST", "/api/publish", {"roomId": room, "message": "hello all"})
        self.assertEqual(r.status, 200, r)
        cid = r.json()["id"]
        for p in (a, b):
            ev = await p.take("chat", message="hello all")
            self.assertEqual((ev["id"], ev["user"]), (cid, {"id": "server", "name": "server"}))

        # Concurrent API chats (through both instances) and member chats: one order everywhere, ids increasing,
        # each ack id (HTTP answer or WebSocket ack) the id delivered.
        n = 20

        async def api_chats(inst, tag):
            ids = {}
            for k in range(n):
                resp = await api(inst.port, "POST", "/api/publish", {"roomId": room, "message": "%s%d" % (tag, k),
                                                                     "user": user("bot" + tag)})
                self.assertEqual(resp.status, 200, resp)
                ids["%s%d" % (tag, k)] = resp.json()["id"]
            return ids

        async def member_chats(p, tag):
            ids = {}
            for k in range(n):
                await p.chat(room, "%s%d" % (tag, k), ref="%s%d" % (tag, k))
            for k in range(n):
                ack = await p.answer("%s%d" % (tag, k))
                self.assertEqual(ack["type"], "ack", ack)
                ids["%s%d" % (tag, k)] = ack["id"]
            return ids

        results = await asyncio.gather(api_chats(i1, "x"), api_chats(i2, "y"), member_chats(a, "a"), member_chats(b, "b"))
        acked = {}
        for d in results:
            acked.update(d)
        total = 4 * n
        orders = []
        for p in (a, b):
            evs = await p.take_n(total, "chat", timeout=TIMEOUT * 2)
            ids = [e["id"] for e in evs]
            self.assertEqual([id_parts(i) for i in ids], sorted(id_parts(i) for i in ids), "ids increase")
            self.assertEqual(len(set(ids)), total)
            for e in evs:
                self.assertEqual(acked[e["message"]], e["id"], e)
            for tag in "xyab":
                mine = [e["message"] for e in evs if e["message"].startswith(tag)]
                self.assertEqual(mine, ["%s%d" % (tag, k) for k in range(n)], "one sender's order")
            orders.append(ids)
            await p.expect_none("chat", seconds=0.3)
        self.assertEqual(orders[0], orders[1], "every member sees one order")

        # History through the API on the other instance: members of both instances, the chats oldest first.
        r = await api(i2.port, "GET", "/api/rooms/" + room)
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["count"], 2, body)
        self.assertEqual(sorted(m["id"] for m in body["members"]), ["ann", "ben"])
        hist = [m["id"] for m in body["history"]]
        self.assertEqual(hist, ([cid] + orders[0])[-len(hist):])
        self.assertEqual(len(hist), min(50, total + 1))  # --history default 50
        self.assertTrue(body.get("truncated", False) is False or len(hist) < total + 1)

    async def test_disconnect_everywhere(self):
        i1, i2 = await self.launch_api()
        room = unique("cdis")
        a1, _ = await self.member(i1, "ann", room)
        a2, _ = await self.member(i2, "ann", room)
        a3 = await self.peer(i2, "ann-2")
        await a3.hello(user("ann"))
        b1, _ = await self.member(i1, "ben", room)
        b2, _ = await self.member(i2, "bob", room)
        await self.wait_numsub(room, 2)
        r = await api(i2.port, "POST", "/api/disconnect", {"userId": "ann"})
        self.assertEqual((r.status, r.json()), (200, {"ok": True}))

        async def closed(p):
            async def probe():
                return p.closed is not None
            await wait_until(probe, TIMEOUT, "%s closed" % p.label)
            self.assertEqual(p.closed, (4003, "disconnected by the server"), p)
        await asyncio.gather(closed(a1), closed(a2), closed(a3))
        for p in (b1, b2):
            await p.ping()
            self.assertIsNone(p.closed)
        r = await api(i1.port, "POST", "/api/disconnect", {"userId": "nobody-here"})
        self.assertEqual((r.status, r.json()), (200, {"ok": True}))
        for p in (b1, b2):
            await p.ping("still")
        # The control channel is not counted as a room's subscription.
        self.assertEqual(await self.redis.acommand("PUBSUB", "NUMSUB", "roomcast:control"), ["roomcast:control", 2])

    async def test_redis_down_publish_503(self):
        i1, i2 = await self.launch_api()
        room = unique("cdown")
        a, _ = await self.member(i1, "ann", room)
        r = await api(i1.port, "POST", "/api/publish", {"roomId": room, "message": "before"})
        self.assertEqual(r.status, 200, r)
        self.redis.kill()
        await self.wait_health(i1, 503, "down")
        r = await api(i1.port, "POST", "/api/publish", {"roomId": room, "message": "during"})
        self.assertEqual((r.status, r.json()["error"]), (503, "unavailable"))
        r = await api(i1.port, "POST", "/api/disconnect", {"userId": "ann"})
        self.assertEqual((r.status, r.json()["error"]), (503, "unavailable"))
        # Validation still comes first.
        r = await api(i1.port, "POST", "/api/publish", {"roomId": "bad room", "message": "m"})
        self.assertEqual((r.status, r.json()["error"]), (400, "bad_room"))
        await a.ping()
