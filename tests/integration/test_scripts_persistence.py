# scripts/cluster.sh keeps the Redis it starts (one redis-server, or a local Redis Cluster) in a data folder with
# an append-only file, so stopping and starting everything keeps every room's history; each instance gets an
# admin port of its own. Rule: the history read after the restart is the one written before it, id for id.
"""History that survives a restart of the whole local cluster (scripts/cluster.sh start/stop/start), in both
Redis modes, and the per-instance admin ports cluster.sh gives and prints. Needs curl (cluster.sh's readiness
check) and redis-cli for the Redis Cluster case; each run uses its own scratch state and data folders."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.request

import websockets

from cluster_harness import quiet_port, unique
from roomcast_harness import REPO, TIMEOUT, server_binary

SCRIPT = os.path.join(REPO, "scripts", "cluster.sh")


async def join(port, room):
    ws = await websockets.connect("ws://127.0.0.1:%d/ws" % port, open_timeout=TIMEOUT)
    await ws.send(json.dumps({"type": "join", "roomId": room, "user": {"id": "ann", "name": "Ann"}}))
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if m["type"] == "joined":
            return ws, m


async def chat(ws, room, text):
    await ws.send(json.dumps({"type": "chat", "roomId": room, "message": text, "ref": text}))
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if m["type"] == "ack":
            return m["id"]
        if m["type"] == "error":
            raise AssertionError("chat refused: %r" % m)


class ScriptsPersistence(unittest.IsolatedAsyncioTestCase):

    def setUp(self):
        if shutil.which("curl") is None:
            self.skipTest("cluster.sh needs curl")
        self.state = tempfile.mkdtemp(prefix="roomcast-persist-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.env = dict(os.environ, ROOMCAST_BIN=os.path.abspath(server_binary()))
        self.addCleanup(self.script, "stop")

    def script(self, *args):
        p = subprocess.run([SCRIPT, *args, "--state", self.state], env=self.env, capture_output=True, text=True,
                           timeout=120)
        if args[0] == "start":
            self.assertEqual(p.returncode, 0, "cluster.sh %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    async def round_trip(self, broker_args):
        port = quiet_port()
        start = ["start", "--instances", "2", "--host", "127.0.0.1", "--port", str(port)] + broker_args
        out = self.script(*start)
        # Each instance has its own admin port, printed, answering for that instance alone.
        admins = re.findall(r"instance (\d+) \(pid (\d+)\): admin http://127\.0\.0\.1:(\d+)/metrics", out)
        self.assertEqual(len(admins), 2, out)
        seen = set()
        for _, pid, admin in admins:
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(
                "http://127.0.0.1:%s/healthz" % admin, timeout=TIMEOUT).read().decode())
            seen.add(json.loads(body)["instance"])
        self.assertEqual(len(seen), 2, "two admin ports, two instances: %s" % seen)

        room = unique("persist")
        ws, joined = await join(port, room)
        self.assertEqual(joined["history"], [])
        ids = [await chat(ws, room, "m%d" % i) for i in range(3)]
        await ws.close()
        await asyncio.sleep(1.5)  # appendfsync everysec: the file is written within a second
        self.script("stop")
        self.last_start = self.script(*start)
        ws, joined = await join(port, room)
        self.assertEqual([h["id"] for h in joined["history"]], ids, "history after stop and start")
        self.assertEqual([h["message"] for h in joined["history"]], ["m0", "m1", "m2"])
        await ws.close()
        return out

    async def test_one_redis_keeps_history(self):
        out = await self.round_trip([])
        self.assertIn("append-only", out)
        self.assertIn("append-only", self.last_start)
        self.assertTrue(os.path.isdir(os.path.join(self.state, "data", "redis")), os.listdir(self.state))

    async def test_redis_cluster_keeps_history(self):
        if shutil.which("redis-cli") is None:
            self.skipTest("the local Redis Cluster needs redis-cli")
        await self.round_trip(["--redis-cluster", "3"])
        self.assertIn("started again from", self.last_start, "the second start reused the cluster and its data")
        self.assertTrue(os.path.isdir(os.path.join(self.state, "data", "redis-cluster", "node-5")))


if __name__ == "__main__":
    unittest.main()
