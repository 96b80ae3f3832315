# Red team (Redis Cluster): a slot migration aborted half way (CLUSTER SETSLOT ... STABLE) after the room's keys
# were moved. PROTOCOL.md section 7: "Everything in section 5 holds" while slots move; section 5 "No silent loss".
# Rule: a chat acked while the room's keys sat on the importing node reaches every member that stays joined
# (live, or by a back-fill), also when the operator then aborts the migration instead of finishing it.
import asyncio

from cluster_harness import TIMEOUT, user
from redis_cluster_harness import RedisClusterTestCase, chats_of


class MigrationAborted(RedisClusterTestCase):
    instance_args = ["--log-level", "debug", "--rate", "1000", "--history", "500"]

    async def test_chats_acked_on_importing_node_then_migration_aborted(self):
        src, dst, room, slot = self.room_to_move("abort")
        i1, i2, a, b = await self.two_members(room, "alice", "bob")
        await a.take("presence", event="join", user=user("bob"))
        pub = await self.peer(i1, "pub")
        warm = await pub.chat_acked(room, "warm", ref="warm")
        for p in (a, b):
            self.assertEqual((await p.take("chat", message="warm"))["id"], warm["id"])

        def half_migrate():
            self.assertEqual(dst.command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.node_id), "OK")
            self.assertEqual(src.command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.node_id), "OK")
            keys = src.command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            self.assertTrue(any(k.endswith(":log") for k in keys), keys)
            self.assertIn(src.command("MIGRATE", dst.ip, dst.port, "", 0, 5000, "REPLACE", "KEYS", *keys), ("OK",))
            return keys
        keys = await asyncio.to_thread(half_migrate)
        print("\n[slot %d: %d keys of %s moved %s -> %s; slot left MIGRATING/IMPORTING]"
              % (slot, len(keys), room, src.addr, dst.addr))

        # Chats now: the source does not hold the keys, so they are ASK-redirected to the importing node.
        acked = []
        for k in range(5):
            ans = await pub.chat_acked(room, "mid-%d" % k, ref="mid-%d" % k)
            acked.append(ans["id"])
        print("[acked while the keys sat on %s: %s]" % (dst.addr, acked))

        # The operator aborts the migration (as `redis-cli --cluster fix` users do by hand).
        def abort():
            for nd in (src, dst):
                self.assertEqual(nd.command("CLUSTER", "SETSLOT", slot, "STABLE"), "OK")
        await asyncio.to_thread(abort)
        await asyncio.sleep(6.0)   # a periodic slot map refresh (5 s) included

        after = await pub.chat_acked(room, "after", ref="after")
        for p in (a, b):
            await p.take("chat", message="after", timeout=TIMEOUT)
        for p in (a, b):
            got = [e["id"] for e in chats_of(p, room)]
            missing = [i for i in acked if i not in got]
            self.assertEqual(missing, [], "%s never got %d of the %d chats acked during the migration (got %s; "
                                          "'after' is %s)" % (p.label, len(missing), len(acked), got, after["id"]))


if __name__ == "__main__":
    import unittest
    unittest.main()
