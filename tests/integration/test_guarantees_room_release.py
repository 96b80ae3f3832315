# Regression tests of findings 8 and 9 (PROTOCOL.md section 5, Efficiency: one subscription per room with local
# members, dropped when the last one goes). Rule: a room nobody is in is released soon, whatever other rooms do and
# whether Redis is up or not; /metrics and Redis agree.
import asyncio

from cluster_harness import ClusterTestCase, unique, user, wait_until
from guarantees_harness import LONG, redis_channels

RELEASE_WITHIN = 10.0   # generous: linger (1 s) plus a loaded machine; the bug is "never"


class RoomRelease(ClusterTestCase):
    instance_args = ["--log-level", "info", "--rate", "1000"]   # 200 joins and leaves in a row

    async def gauges(self, inst):
        m = await inst.metrics()
        return int(m["roomcast_rooms"]), int(m["roomcast_subscriptions"])

    async def test_rooms_released_while_one_room_churns(self):
        """Finding 8. One client sends a join of room X and its leave at once, every 0.5 s, for the whole test. Meanwhile two other
        clients join 200 rooms (100 each) and then leave them all. Asserts: within 10 s roomcast_rooms and
        roomcast_subscriptions are at most 1 (the churner's room), Redis lists no room:* channel but room:X
        (PUBSUB CHANNELS) and PUBSUB NUMSUB of the left rooms is 0."""
        i1 = await self.launch("i1")
        x = unique("churn")
        churner = await self.peer(i1, "churner")
        await churner.hello(user("churner"))
        stop = asyncio.Event()

        async def churn():
            # join and leave sent together (the `joined` may or may not come first): X is back to lingering
            # at once each time, with a new linger deadline.
            while not stop.is_set():
                await churner.send({"type": "join", "roomId": x})
                await churner.send({"type": "leave", "roomId": x})
                await churner.take("left", roomId=x)
                churner.inbox.clear()
                await asyncio.sleep(0.5)

        churning = asyncio.get_running_loop().create_task(churn())
        try:
            await asyncio.sleep(1.2)   # X is lingering and revived a few times before the others leave
            rooms = [unique("r%03d" % k) for k in range(200)]
            holders = []
            for h in range(2):
                p = await self.peer(i1, "holder%d" % h)
                await p.hello(user("holder%d" % h))
                for r in rooms[h * 100:(h + 1) * 100]:
                    await p.join(r)
                holders.append(p)
            rooms_now, subs_now = await self.gauges(i1)
            self.assertGreaterEqual(min(rooms_now, subs_now), 200, "the 200 rooms are held: rooms %d, subscriptions %d"
                                    % (rooms_now, subs_now))
            for h, p in enumerate(holders):
                for r in rooms[h * 100:(h + 1) * 100]:
                    await p.leave(r)

            async def released():
                rooms_now, subs_now = await self.gauges(i1)
                chans = await redis_channels(self.redis)
                return rooms_now <= 1 and subs_now <= 1 and set(chans) <= {"room:%s" % x}
            try:
                await wait_until(released, RELEASE_WITHIN, "rooms released", interval=0.25)
            except AssertionError:
                rooms_now, subs_now = await self.gauges(i1)
                chans = await redis_channels(self.redis)
                self.fail("%.0f s after 200 rooms were left, with one client churning room X: roomcast_rooms %d,"
                          " roomcast_subscriptions %d, %d room channels in PUBSUB CHANNELS (expected at most X)"
                          % (RELEASE_WITHIN, rooms_now, subs_now, len(chans)))
            for r in rooms[::20]:
                self.assertEqual(await self.redis.numsub("room:%s" % r), 0, r)
        finally:
            stop.set()
            await churning

    async def test_rooms_released_while_redis_is_down(self):
        """Finding 9. Redis is stopped under a running instance. Two clients join 50 fresh rooms each (no
        `joined` can come); one then leaves every room, the other closes its connection. Asserts: roomcast_rooms
        and roomcast_subscriptions go back to 0 while Redis is still down (within 10 s); after Redis is back,
        within 10 s the instance subscribes to none of them (PUBSUB CHANNELS room:* empty, the gauges at 0), and
        it serves a new room normally."""
        i1 = await self.launch("i1")
        self.redis.stop()
        await self.wait_health(i1, 503, "down", timeout=LONG)
        leaver = await self.peer(i1, "leaver")
        closer = await self.peer(i1, "closer")
        rooms = {leaver: [unique("dl%02d" % k) for k in range(50)], closer: [unique("dc%02d" % k) for k in range(50)]}
        for p, rs in rooms.items():
            await p.hello(user(p.label))
            for r in rs:
                await p.send({"type": "join", "roomId": r})
            await p.ping()   # every join handled
        for r in rooms[leaver]:
            await leaver.send({"type": "leave", "roomId": r})
        await leaver.ping()
        await closer.close()

        async def empty():
            return await self.gauges(i1) == (0, 0)
        try:
            await wait_until(empty, RELEASE_WITHIN, "no rooms while Redis is down", interval=0.25)
        except AssertionError:
            self.fail("Redis down, every member gone: (roomcast_rooms, roomcast_subscriptions) = %r after %.0f s,"
                      " expected (0, 0)" % (await self.gauges(i1), RELEASE_WITHIN))

        await self.restart_redis()
        await self.wait_health(i1, 200, "up", timeout=LONG)

        async def none_subscribed():
            return await redis_channels(self.redis) == [] and await self.gauges(i1) == (0, 0)
        try:
            await wait_until(none_subscribed, RELEASE_WITHIN, "no subscriptions after Redis is back", interval=0.25)
        except AssertionError:
            self.fail("Redis back: %d room channels subscribed (PUBSUB CHANNELS room:*), gauges %r, expected none"
                      % (len(await redis_channels(self.redis)), await self.gauges(i1)))
        room = unique("after")
        a, _ = await self.member(i1, "after", room)
        await a.chat_acked(room, "works", ref="works")
        await a.take("chat", message="works")


if __name__ == "__main__":
    import unittest
    unittest.main()
