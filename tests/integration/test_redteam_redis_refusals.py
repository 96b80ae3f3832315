# Red-team regression: Redis refusing writes (maxmemory with noeviction) makes a live instance's members vanish
# from the cluster for good: a member entered while Redis refused is never written, and an instance whose heartbeat
# was refused longer than --instance-ttl is reaped by the others (presence `leave` for members still there).
# Rule (PROTOCOL.md 5): presence is cluster-wide; only the members of an instance that dies vanish.
import asyncio

from cluster_harness import TIMEOUT, ClusterTestCase, get_json, unique, user, wait_until


class RedisRefusesWrites(ClusterTestCase):

    async def oom(self, on):
        if on:
            await self.redis.acommand("CONFIG", "SET", "maxmemory-policy", "noeviction")
            await self.redis.acommand("CONFIG", "SET", "maxmemory", "1")
        else:
            await self.redis.acommand("CONFIG", "SET", "maxmemory", "0")

    async def listed(self, inst, room, uid):
        async def probe():
            status, body = await get_json(inst.port, "/rooms/" + room)
            return status == 200 and uid in [u["id"] for u in body["members"]]
        try:
            await wait_until(probe, TIMEOUT, "%s listed by %s" % (uid, inst.name))
        except AssertionError:
            _, body = await get_json(inst.port, "/rooms/" + room)
            self.fail("%s is still connected and in %s, but %s lists %r" % (uid, room, inst.name, body))

    async def test_member_joined_while_redis_refuses_writes(self):
        """Two instances. u1 joins room R on a. Redis gets maxmemory 1 (noeviction): writes are refused (OOM), reads
        and PUBLISH still work. u3 joins R on a and gets `joined`. maxmemory goes back to 0. u3 is a member of R
        (it is still connected), so GET /rooms/R on b must list it within 10 s; a new member on b must see it in
        `joined.members`."""
        a = await self.launch("a")
        b = await self.launch("b")
        room = unique("oom")
        await self.member(a, "u1", room)
        await self.oom(True)
        self.addAsyncCleanup(self.oom, False)
        _, joined = await self.member(a, "u3", room)
        self.assertEqual(joined["count"], 2, joined)
        await self.oom(False)
        await self.listed(b, room, "u3")
        _, j4 = await self.member(b, "u4", room)
        self.assertIn("u3", [u["id"] for u in j4["members"]], j4)

    async def test_live_instance_not_reaped_after_refused_heartbeats(self):
        """Two instances with --instance-ttl 1; u1 on a, u2 on b in room R. Redis refuses writes (maxmemory 1,
        noeviction) until both instances' liveness keys have expired, and one second more; then writes are allowed
        again. Both instances stayed connected the whole time and so did u1 and u2: a must list u2 (within 10 s),
        b must list u1, and neither member may have been told the other left."""
        a = await self.launch("a", args=["--instance-ttl", "1"])
        b = await self.launch("b", args=["--instance-ttl", "1"])
        room = unique("reap")
        u1, _ = await self.member(a, "u1", room)
        u2, _ = await self.member(b, "u2", room)
        await u1.take("presence", event="join")
        await self.oom(True)
        self.addAsyncCleanup(self.oom, False)

        async def expired():
            return (await self.redis.acommand("EXISTS", "roomcast:instance:a")) == 0 and \
                (await self.redis.acommand("EXISTS", "roomcast:instance:b")) == 0
        await wait_until(expired, 15, "both liveness keys expired while Redis refuses writes")
        await asyncio.sleep(1.0)   # three heartbeats (and reaper runs) of each instance
        await self.oom(False)
        await self.listed(a, room, "u2")
        await self.listed(b, room, "u1")
        await u1.ping()
        await u2.ping()
        self.assertEqual(u1.pending("presence", event="leave"), [], "u1 was told u2 left; u2 never left")
        self.assertEqual(u2.pending("presence", event="leave"), [], "u2 was told u1 left; u1 never left")
