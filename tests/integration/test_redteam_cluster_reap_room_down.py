# Red team (Redis Cluster): an instance dies while the master of one of its rooms is unreachable (frozen with its
# replica, so nobody is promoted), then comes back. PROTOCOL.md section 5 (presence is cluster-wide), section 3
# (other members get presence leave), --instance-ttl (the others send a dead instance's members' presence leave).
# Rule: the dead instance's member lines in that room are removed and the room told once its master answers again;
# a later process under the same --instance-id does not bring them back.
import asyncio
import time

from cluster_harness import SCALE, get_json, user
from redis_cluster_harness import RedisClusterTestCase

WITHIN = 30.0 * SCALE


class ReapWhileRoomMasterDown(RedisClusterTestCase):
    instance_args = ["--log-level", "debug", "--instance-ttl", "3"]

    async def test_dead_instance_reaped_while_room_master_frozen(self):
        c = self.cluster
        victim = self.master_without_control()
        replicas = c.replicas_of(victim)
        room = c.rooms_on(victim, 1, "reap")[0]
        i1, i2, g, b = await self.two_members(room, "ghost", "bob")

        for nd in [victim] + replicas:   # no promotion possible: the room's slot is simply unreachable
            nd.freeze()
        self.addCleanup(lambda: [nd.thaw() for nd in [victim] + replicas if nd.frozen])
        await asyncio.sleep(4.5)         # i2's probe of the victim times out (3 s): the room's slot is unreachable
        i1.sigkill()
        g.abort()
        t0 = time.monotonic()
        await asyncio.sleep(5.0)         # i1's liveness key expires (3 s) and i2 reaps it meanwhile
        for nd in [victim] + replicas:
            nd.thaw()
        await asyncio.to_thread(c.wait_ok, False)
        print("\n[%s and its replica frozen ~10 s while i1 died; cluster ok again at +%.1fs]"
              % (victim.addr, time.monotonic() - t0))

        # A new process under i1's id must not revive the dead one's member (its line is i1's, and i1 is live
        # again): within 30 s of i1's death, the room's members are bob alone.
        await self.restart(i1)
        deadline = t0 + WITHIN
        while True:
            st, body = await get_json(i2.port, "/rooms/%s" % room)
            ids = sorted(u["id"] for u in body.get("members", []))
            if ids == ["bob"]:
                break
            if time.monotonic() > deadline:
                raw = await asyncio.to_thread(c.command, "room:{%s}:members" % room, "HGETALL",
                                              "room:{%s}:members" % room)
                self.fail("%s: members %r %.0fs after i1 died (Redis hash: %r)"
                          % (room, ids, time.monotonic() - t0, raw))
            await asyncio.sleep(0.5)


if __name__ == "__main__":
    import unittest
    unittest.main()
