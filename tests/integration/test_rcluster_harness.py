# Self-test of redis_cluster_harness: the cluster it builds and the measurements the rcluster tests rely on.
# Rule: no roomcast here; if these fail, the test_rcluster_* verdicts about the server mean nothing.
import socket
import time
import unittest

from redis_cluster_harness import NSLOTS, Monitor, RedisCluster, keyslot, resp_pipeline, room_slot
from roomcast_harness import _resp_read


class Subscriber:
    """A raw SSUBSCRIBE connection (what an instance holds per room)."""

    def __init__(self, node, channel):
        self.sock = socket.create_connection(("127.0.0.1", node.port), timeout=5.0)
        ch = channel.encode()
        self.sock.sendall(b"*2\r\n$10\r\nSSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(ch), ch))
        self.file = self.sock.makefile("rb")
        reply = _resp_read(self.file)
        assert reply[0] == "ssubscribe", reply

    def read(self):
        return _resp_read(self.file)

    def close(self):
        self.sock.close()


class Harness(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = RedisCluster(3, 1)
        cls.addClassCleanup(cls.cluster.cleanup)
        cls.cluster.start()

    def setUp(self):
        if any(not nd.alive() for nd in self.cluster.nodes):
            self.cluster.heal()

    def test_1_shape_and_slots(self):
        c = self.cluster
        masters = c.masters()
        self.assertEqual(len(masters), 3)
        self.assertEqual(sum(len(c.slots_of(m)) for m in masters), NSLOTS)
        for m in masters:
            self.assertEqual(len(c.replicas_of(m)), 1, m)
        # keyslot() agrees with Redis, hash tags included.
        for key in ("a", "room:{abc}", "room:{abc}:log", "x{}y", "{}{z}", "room:{r-k3vq7m2xwa}:members", "{{a}}",
                    "roomcast:{roomcast}:instances"):
            self.assertEqual(keyslot(key), masters[0].command("CLUSTER", "KEYSLOT", key), key)
        # rooms_on() finds rooms on each master.
        for m in masters:
            for r in c.rooms_on(m, 3):
                self.assertIs(c.room_owner(r), m)
                self.assertEqual(room_slot(r), keyslot("room:{%s}:log" % r))

    def test_2_commandstats_count_script_commands(self):
        c = self.cluster
        m = c.masters()[1]
        room = c.rooms_on(m, 1)[0]
        before = c.commandstats()
        script = "local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1]); redis.call('SPUBLISH', KEYS[2], id); " \
                 "return id"
        for k in range(3):
            c.command("room:{%s}:log" % room, "EVAL", script, 2, "room:{%s}:log" % room, "room:{%s}" % room, k)
        after = c.commandstats()
        d = c.stats_delta(before, after, "spublish")
        self.assertEqual(d[m.addr], 3, d)
        self.assertEqual(sum(d.values()), 3, d)
        self.assertEqual(len(c.stream_ids(room)), 3)
        self.assertEqual(sum(c.stats_delta(before, after, "publish").values()), 0)

    def test_3_shardnumsub_and_monitor(self):
        c = self.cluster
        m = c.masters()[2]
        room = c.rooms_on(m, 1)[0]
        ch = "room:{%s}" % room
        mon = Monitor(m)
        try:
            self.assertEqual(m.shardnumsub(ch), 0)
            subs = [Subscriber(m, ch), Subscriber(m, ch)]
            self.assertEqual(m.shardnumsub(ch), 2)
            other = [n for n in c.masters() if n is not m][0]
            self.assertEqual(other.shardnumsub(ch), 0)
            c.command(ch, "EVAL", "return redis.call('SPUBLISH', KEYS[1], 'x\"y\\n')", 1, ch)
            for s in subs:
                self.assertEqual(s.read(), ["smessage", ch, 'x"y\n'])
                s.close()
            deadline = time.monotonic() + 5
            while not mon.entries("spublish", "room:{") and time.monotonic() < deadline:
                time.sleep(0.05)
            got = mon.entries("spublish", "room:{")
            self.assertEqual(len(got), 1, got)
            self.assertEqual(got[0][1], "lua")
            self.assertEqual(got[0][2], ["spublish", ch, 'x"y\n'])
        finally:
            mon.close()

    def test_4_migrate_slot_with_keys(self):
        c = self.cluster
        src, dst = c.masters()[0], c.masters()[1]
        room = c.rooms_on(src, 1)[0]
        slot = room_slot(room)
        for k in range(25):
            c.command("fill:{%s}:%d" % (room, k), "SET", "fill:{%s}:%d" % (room, k), k)
        c.command("room:{%s}:log" % room, "XADD", "room:{%s}:log" % room, "*", "e", "1")
        ch = "room:{%s}" % room
        sub = Subscriber(src, ch)
        batches = []
        moved = c.migrate_slot(slot, dst, batch=4, pause=0.02, on_batch=batches.append)
        self.assertEqual(moved, 26)
        self.assertGreater(len(batches), 5)
        self.assertIs(c.room_owner(room), dst)
        self.assertEqual(src.command("CLUSTER", "COUNTKEYSINSLOT", slot), 0)
        self.assertEqual(dst.command("CLUSTER", "COUNTKEYSINSLOT", slot), 26)
        self.assertEqual(len(c.stream_ids(room)), 1)
        # The old owner tells its shard-channel subscribers the slot is gone (what roomcast must react to).
        sub.sock.settimeout(5.0)
        self.assertEqual(sub.read()[:2], ["sunsubscribe", ch])
        sub.close()
        # Writes through the cluster go to the new owner; the old one answers MOVED.
        reply = resp_pipeline(src.port, [["GET", "fill:{%s}:3" % room]])[0]
        self.assertIn("MOVED %d 127.0.0.1:%d" % (slot, dst.port), str(reply))
        self.assertEqual(c.command("fill:{%s}:3" % room, "GET", "fill:{%s}:3" % room), "3")

    def test_5_kill_master_promotes_replica_then_heal(self):
        c = self.cluster
        m = c.masters()[2]
        slots = c.slots_of(m)
        rep = c.replicas_of(m)[0]
        room = c.rooms_on(m, 1)[0]
        key = "room:{%s}:log" % room
        c.command(key, "XADD", key, "*", "e", "1")
        c.command(key, "WAIT", 1, 2000)
        new, took = c.kill_master(m)
        self.assertIs(new, rep)
        self.assertEqual(c.slots_of(new), slots)
        self.assertEqual(len(c.masters()), 3)
        self.assertEqual(len(c.stream_ids(room)), 1, "the replica had the entry (WAIT 1)")
        print("\n[promotion took %.1fs]" % took)
        c.heal()
        self.assertEqual(len(c.masters()), 3)
        self.assertEqual([n.node_id for n in c.replicas_of(new)], [m.node_id], "the old master is back as replica")


if __name__ == "__main__":
    unittest.main()
