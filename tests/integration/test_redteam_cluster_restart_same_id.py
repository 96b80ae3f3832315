# Red team (Redis Cluster): an instance restarted under the same --instance-id while the master of one of its
# rooms is failing over. PROTOCOL.md section 5 (presence is cluster-wide; members of an instance that dies vanish)
# and section 7 (everything in section 5 holds when a master fails over).
# Rule: the member lines the previous process left in a room are removed, and the room told (presence leave),
# even when the room's master was down at the moment the restarted process took over its id.
import asyncio
import time

from cluster_harness import TIMEOUT, SCALE, get_json, user, wait_until
from redis_cluster_harness import RedisClusterTestCase

WITHIN = 30.0 * SCALE   # PROTOCOL.md section 5: members of a dead instance vanish within 30 s


class RestartSameIdDuringFailover(RedisClusterTestCase):
    instance_args = ["--log-level", "debug", "--instance-ttl", "3"]

    async def test_ghost_member_after_restart_during_failover(self):
        c = self.cluster
        victim = self.master_without_control()
        room = c.rooms_on(victim, 1, "ghost")[0]
        i1, i2, g, b = await self.two_members(room, "ghost", "bob")   # ghost: gone with i1's first process
        st, body = await get_json(i2.port, "/rooms/%s" % room)
        self.assertEqual(sorted(u["id"] for u in body["members"]), ["bob", "ghost"], body)

        # i1 dies; the room's master dies; i1 comes back under the same id before the replica is promoted.
        i1.sigkill()
        g.abort()
        promoted = asyncio.create_task(asyncio.to_thread(c.kill_master, victim))
        await asyncio.sleep(0.2)
        await self.restart(i1)   # /healthz 200: i1 has no room yet, its {roomcast} master is up
        new, took = await promoted
        print("\n[%s killed; %s promoted after %.1fs; i1 restarted under the same id meanwhile]"
              % (victim.addr, new.addr, took))

        # The ghost's line belonged to i1's previous process: it must go, and bob must hear it leave.
        async def gone():
            st, body = await get_json(i2.port, "/rooms/%s" % room)
            return st == 200 and sorted(u["id"] for u in body["members"]) == ["bob"]
        try:
            await wait_until(gone, WITHIN, "ghost gone from the members of %s" % room)
        except AssertionError:
            st, body = await get_json(i2.port, "/rooms/%s" % room)
            raw = await asyncio.to_thread(c.command, "room:{%s}:members" % room, "HGETALL", "room:{%s}:members" % room)
            self.fail("%s: members still %r %.0fs after i1's restart (Redis hash: %r)"
                      % (room, [u["id"] for u in body["members"]], WITHIN, raw))
        await b.take("presence", event="leave", user=user("ghost"), timeout=TIMEOUT)


if __name__ == "__main__":
    import unittest
    unittest.main()
