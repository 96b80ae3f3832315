# Regression tests of finding 10 (bounded history): standalone history memory, Redis stream TTL, Redis maxmemory.
# Rule: what one publisher can make the server or Redis keep is bounded by a setting, and the recent history stays.
import asyncio
import os
import shutil
import subprocess
import tempfile
import unittest

from cluster_harness import ClusterTestCase, Peer, metrics, quiet_port, unique, user
from roomcast_harness import REPO, RedisServer, RoomcastServer, quiet_slow_callback_warnings, server_binary

MIB = 1024 * 1024
LIMIT = 4 * MIB           # --history-memory
MESSAGE = 16000           # bytes of one chat (the largest is 16384)
ROOMS = 4000              # fresh rooms, one chat each: ~61 MiB of chats
PUBLISHERS = 4
GROWTH_MAX = 40 * MIB


class StandaloneHistoryMemory(unittest.IsolatedAsyncioTestCase):

    async def asyncSetUp(self):
        quiet_slow_callback_warnings()
        self.server = RoomcastServer(["--history-memory", str(LIMIT), "--rate", "100000"], name="history-memory")
        self.addCleanup(self.server.cleanup)
        await asyncio.to_thread(self.server.start)
        self.peers = []

    async def asyncTearDown(self):
        for p in self.peers:
            await p.close()
        alive = self.server.alive()
        await asyncio.to_thread(self.server.stop, alive)
        self.assertTrue(alive, "the server died")

    async def test_history_memory_bounds_rss(self):
        """Finding 10, standalone. With --history-memory 4194304, 4 publish-only clients (never members) post one
        16,000-byte chat into each of 4,000 fresh rooms (~61 MiB of chats). Asserts: the server's RSS grows by
        less than 40 MiB, roomcast_bound_hits_total{bound="history_memory"} > 0, and the last 10 rooms posted to
        still have their chat in `joined.history`."""
        port = self.server.port
        for k in range(PUBLISHERS):
            p = await Peer.connect(port, "pub%d" % k)
            self.peers.append(p)
            await p.hello(user("pub%d" % k))
        base = self.server.rss_kib()
        tag = unique("hm")
        rooms = ["%s-%04d" % (tag, n) for n in range(ROOMS)]
        pad = "y" * (MESSAGE - 20)

        async def publish(k):
            p = self.peers[k]
            mine = rooms[k::PUBLISHERS]
            for start in range(0, len(mine), 50):
                for r in mine[start:start + 50]:
                    await p.chat(r, "%s %s" % (r, pad))
                await p.ping("w%d" % start)   # a window: the server has taken the 50 before the next ones
        await asyncio.gather(*(publish(k) for k in range(PUBLISHERS)))
        # Then 10 more fresh rooms, one after the other: the most recently written, whose history must stay.
        recent = ["%s-last%d" % (tag, n) for n in range(10)]
        for r in recent:
            await self.peers[0].chat(r, "%s %s" % (r, pad))
        await self.peers[0].ping("last")
        growth = (self.server.rss_kib() - base) * 1024
        hits = (await self.metric("roomcast_bound_hits_total{bound=\"history_memory\"}"))

        reader = await Peer.connect(port, "reader")
        self.peers.append(reader)
        missing = []
        for r in recent:
            joined = await reader.join(r)
            if [e["message"][:len(r)] for e in joined["history"]] != [r]:
                missing.append((r, [e["message"][:30] for e in joined["history"]]))
        self.assertLess(growth, GROWTH_MAX, "RSS grew by %.1f MiB after %.1f MiB of chats into %d rooms with"
                        " --history-memory %d" % (growth / MIB, ROOMS * MESSAGE / MIB, ROOMS, LIMIT))
        self.assertGreater(hits, 0, "roomcast_bound_hits_total{bound=\"history_memory\"} after %.1f MiB of history"
                           % (ROOMS * MESSAGE / MIB))
        self.assertEqual(missing, [], "recent rooms lost their history")

    async def metric(self, name):
        m = await metrics(self.server.port)
        self.assertIn(name, m, "metric %s missing" % name)
        return m[name]


class RedisHistoryBounds(ClusterTestCase):

    async def test_stream_ttl_follows_history_ttl(self):
        """Finding 10, Redis: with --history-ttl 1234, a chat leaves the room's stream room:R:log with a TTL of
        about 1234 s (PTTL between 1,200,000 and 1,234,000 ms), not the default week."""
        i1 = await self.launch("i1", args=["--history-ttl", "1234"])
        room = unique("ttl")
        p = await self.peer(i1, "p")
        await p.hello(user("p"))
        await p.chat_acked(room, "hello", ref="h")
        pttl = int(await self.redis.acommand("PTTL", "room:%s:log" % room))
        self.assertTrue(1200000 <= pttl <= 1234000, "PTTL of room:%s:log is %d ms with --history-ttl 1234"
                        % (room, pttl))


class ScriptsRedisMaxmemory(unittest.TestCase):

    def test_cluster_script_starts_redis_with_maxmemory(self):
        """Finding 10, Redis memory: the Redis that scripts/cluster.sh (and so scripts/run.sh) starts has a
        maxmemory. Runs `scripts/cluster.sh start --instances 1` on free ports (127.0.0.1, a scratch state
        folder, this build's binary), reads CONFIG GET maxmemory from that Redis, and stops the cluster."""
        if shutil.which("curl") is None:
            self.skipTest("cluster.sh needs curl")
        state = tempfile.mkdtemp(prefix="roomcast-cluster-sh-")
        self.addCleanup(shutil.rmtree, state, True)
        script = os.path.join(REPO, "scripts", "cluster.sh")
        env = dict(os.environ, ROOMCAST_BIN=os.path.abspath(server_binary()))
        redis_port, port = quiet_port(), quiet_port()
        start = subprocess.run([script, "start", "--instances", "1", "--host", "127.0.0.1", "--port", str(port),
                                "--redis-port", str(redis_port), "--state", state], env=env, capture_output=True,
                               text=True, timeout=60)

        def stop():
            subprocess.run([script, "stop", "--state", state], env=env, capture_output=True, timeout=60)
        self.addCleanup(stop)
        self.assertEqual(start.returncode, 0, "cluster.sh start: %s%s" % (start.stdout, start.stderr))
        redis = RedisServer()
        redis.port = redis_port
        self.addCleanup(shutil.rmtree, redis.tmp, True)
        reply = redis.command("CONFIG", "GET", "maxmemory")
        self.assertEqual(reply[0], "maxmemory", reply)
        self.assertGreater(int(reply[1]), 0, "the Redis scripts/cluster.sh starts has no maxmemory (%r)" % reply)


if __name__ == "__main__":
    unittest.main()
