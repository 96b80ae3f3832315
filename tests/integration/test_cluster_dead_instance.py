# A dead instance's members (PROTOCOL.md section 5, Presence): they vanish from `members` within 30 s.
# Rule: after an instance is SIGKILLed, /rooms and `joined.members` on the survivors stop listing its members in time.
import time

from cluster_harness import ClusterTestCase, get_json, unique, user, wait_until

VANISH = 30.0   # the contract's bound


class DeadInstanceMembers(ClusterTestCase):

    async def test_dead_instance_members_vanish(self):
        i1, i2 = await self.launch_n(2)
        room = unique("vanish")
        a, _ = await self.member(i1, "ann", room)
        b, _ = await self.member(i2, "ben", room)
        i2.sigkill()
        t0 = time.monotonic()

        async def ben_gone():
            status, body = await get_json(i1.port, "/rooms/%s" % room)
            self.assertEqual(status, 200, body)
            return body if user("ben") not in body["members"] else None
        body = await wait_until(ben_gone, VANISH + 5.0, "ben gone from /rooms on i1", interval=0.25)
        self.assertEqual((body["count"], body["members"]), (1, [user("ann")]), body)
        self.assertLess(time.monotonic() - t0, VANISH + 1.0)
        c, joined = await self.member(i1, "cat", room)
        self.assertCountEqual(joined["members"], [user("ann"), user("cat")], joined)


if __name__ == "__main__":
    import unittest
    unittest.main()
