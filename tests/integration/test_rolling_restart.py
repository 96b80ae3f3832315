# scripts/rolling-restart.sh on scripts/cluster.sh's plain processes: two instances and a real redis-server,
# members of one room chatting through the restart. Promise checked: every acked chat reaches every member exactly
# once and in one order; members whose instance restarts get close 1001, reconnect and join with `since`.
# Rule: the restart runs as a subprocess while the clients' loop keeps running; every process is stopped after.
"""Rolling-restart test (scripts/rolling-restart.sh, docs/deploy.md).

Environment: ROOMCAST_BIN (used by cluster.sh), ROOMCAST_TIMEOUT_SCALE.
"""

import asyncio
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import websockets.exceptions

from roomcast_harness import (REPO, SANITIZER_MARKERS, SCALE, TIMEOUT, RedisServer, WsClient, free_port, id_parts,
                              quiet_slow_callback_warnings, unique, user)

CLUSTER = os.path.join(REPO, "scripts", "cluster.sh")
ROLLING = os.path.join(REPO, "scripts", "rolling-restart.sh")
SEND_EVERY = 0.05  # seconds between two chats of one member


def pids(state):
    out = {}
    for f in sorted(glob.glob(os.path.join(state, "roomcast-*.pid"))):
        with open(f) as fh:
            out[os.path.basename(f)] = int(fh.read())
    return out


class Member:
    """One room member that chats, and reconnects (same port, join with `since`) whenever its instance goes away."""

    def __init__(self, port, room, uid):
        self.port, self.room, self.uid = port, room, uid
        self.ws = None
        self.received = []      # chat ids in the order given (history after a rejoin, then live)
        self.acked = []         # ids the server acked for this member's chats
        self.pending = {}       # ref -> message, sent and not acked yet
        self.closes = []        # close codes of the connections the server ended
        self.errors = []        # error events (none expected)
        self.ref = 0
        self.sending = True
        self.connected = asyncio.Event()

    def last_id(self):
        return self.received[-1] if self.received else None

    async def connect(self):
        deadline = time.monotonic() + 30 * SCALE
        while True:
            try:
                ws = await WsClient.connect(self.port, label=self.uid, timeout=2)
                await ws.hello(user(self.uid))
                extra = {"since": self.last_id()} if self.last_id() else {}
                joined = await ws.join(self.room, **extra)
                break
            except (OSError, AssertionError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                if time.monotonic() > deadline:
                    raise AssertionError("%s: could not reconnect to port %d within 30 s" % (self.uid, self.port))
                await asyncio.sleep(0.05)
        assert not joined.get("truncated"), "%s: joined with since=%s is truncated" % (self.uid, self.last_id())
        for event in joined.get("history", []):
            self.received.append(event["id"])
        # Chats without an ack from the old connection have an unknown fate: they are not counted as acked.
        self.pending.clear()
        self.ws = ws
        self.connected.set()

    async def read(self):
        while True:
            try:
                raw = await self.ws.ws.recv()
            except websockets.exceptions.ConnectionClosed:
                self.closes.append(self.ws.ws.close_code)
                self.connected.clear()
                await self.connect()
                continue
            msg = json.loads(raw)
            t = msg.get("type")
            if t == "chat" and msg.get("roomId") == self.room:
                self.received.append(msg["id"])
            elif t == "ack":
                if self.pending.pop(msg.get("ref"), None) is not None:
                    self.acked.append(msg["id"])
            elif t == "error":
                self.errors.append(msg)

    async def send_loop(self):
        while self.sending:
            await self.connected.wait()
            self.ref += 1
            self.pending[self.ref] = "%s-%d" % (self.uid, self.ref)
            try:
                await self.ws.send({"type": "chat", "roomId": self.room, "message": self.pending[self.ref],
                                    "ref": self.ref})
            except websockets.exceptions.ConnectionClosed:
                pass  # the reader reconnects
            await asyncio.sleep(SEND_EVERY)


class RollingRestartTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="roomcast-rolling-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state = os.path.join(self.tmp, "state")
        self.redis = RedisServer()
        self.addCleanup(self.redis.cleanup)
        self.redis.start()

    def cluster(self, *args, check=True):
        p = subprocess.run([CLUSTER] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError("cluster.sh %s exited %d:\n%s" % (" ".join(args), p.returncode, out))
        return out

    def start_cluster(self, *args):
        self.cluster("start", "--state", self.state, "--redis", self.redis.url, *args)
        self.addCleanup(self.stop_cluster)

    def stop_cluster(self):
        self.cluster("stop", "--state", self.state, check=False)
        for log in glob.glob(os.path.join(self.state, "*.log")):
            with open(log, errors="replace") as f:
                text = f.read()
            for m in SANITIZER_MARKERS:
                self.assertNotIn(m, text, "%s:\n%s" % (log, text[-3000:]))

    async def rolling_restart(self):
        proc = await asyncio.create_subprocess_exec(ROLLING, "cluster", "--state", self.state, "--timeout",
                                                    str(int(30 * SCALE)), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 120 * SCALE)
        out = out.decode(errors="replace")
        self.assertEqual(proc.returncode, 0, out)
        return out

    async def test_chatting_through_a_rolling_restart(self):
        quiet_slow_callback_warnings()
        p1, p2 = free_port(), free_port()
        self.start_cluster("--ports", "%d,%d" % (p1, p2), "--", "--history", "5000")
        before = pids(self.state)
        self.assertEqual(len(before), 2, before)

        room = unique("roll")
        members = [Member(p, room, "u%d%d" % (p == p2, i)) for p in (p1, p2) for i in range(3)]
        for m in members:  # every member is in the room before the first chat: all must see the same sequence
            await m.connect()
        tasks = [asyncio.ensure_future(m.read()) for m in members]
        senders = [asyncio.ensure_future(m.send_loop()) for m in members]
        try:
            await asyncio.sleep(1.0)
            out = await self.rolling_restart()
            await asyncio.sleep(1.0)
            for m in members:
                m.sending = False
            await asyncio.gather(*senders)
            # Every acked chat reaches every member (the last acks may still be on their way).
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                acked = {i for m in members for i in m.acked}
                if all(not m.pending and acked <= set(m.received) for m in members):
                    break
                await asyncio.sleep(0.1)
        finally:
            for t in tasks + senders:
                t.cancel()
            await asyncio.gather(*tasks, *senders, return_exceptions=True)
            for m in members:
                if m.ws:
                    await m.ws.close()

        after = pids(self.state)
        self.assertEqual(set(after), set(before))
        for k in before:
            self.assertNotEqual(before[k], after[k], "%s was not restarted:\n%s" % (k, out))
        self.assertIn("2 instance(s) restarted", out)

        acked = [i for m in members for i in m.acked]
        self.assertGreater(len(acked), 100, "too few chats to say anything")
        self.assertEqual(len(acked), len(set(acked)), "an id was acked twice")
        reference = members[0].received
        for m in members:
            self.assertEqual(m.errors, [], m.uid)
            # Each member's instance was restarted once under it: close 1001, then a rejoin with since.
            self.assertIn(1001, m.closes, "%s: closes %r" % (m.uid, m.closes))
            keys = [id_parts(i) for i in m.received]
            dups = len(keys) - len(set(keys))
            self.assertEqual(dups, 0, "%s received %d chats twice" % (m.uid, dups))
            self.assertEqual(keys, sorted(keys), "%s received chats out of order" % m.uid)
            missing = set(acked) - set(m.received)
            self.assertEqual(missing, set(), "%s never received %d acked chats" % (m.uid, len(missing)))
            self.assertEqual(m.received, reference, "%s and %s saw different sequences" % (m.uid, members[0].uid))
        print("\n%d chats acked, %d given to each of %d members, %d reconnects"
              % (len(acked), len(reference), len(members), sum(len(m.closes) for m in members)))

    async def test_shared_port(self):
        """Two instances on one SO_REUSEPORT port: the wait names the new process, whichever instance answers."""
        quiet_slow_callback_warnings()
        port = free_port()
        self.start_cluster("--instances", "2", "--port", str(port))
        before = pids(self.state)
        out = await self.rolling_restart()
        after = pids(self.state)
        for k in before:
            self.assertNotEqual(before[k], after[k], out)
            self.assertIn("pid %d is up" % after[k], out)
            os.kill(after[k], 0)
        self.assertIn("running", self.cluster("status", "--state", self.state))

    async def test_systemd_mode_with_a_standin_systemctl(self):
        """`rolling-restart.sh systemd`: units in order, `systemctl restart` each, wait for "instance":"host:N"."""
        quiet_slow_callback_warnings()
        port = free_port()
        units = os.path.join(self.tmp, "units")
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(units)
        os.makedirs(bindir)
        # Plays systemd for roomcast@N.service: processes with --instance-id HOST:N, as the unit starts them.
        with open(os.path.join(bindir, "systemctl"), "w") as f:
            f.write("""#!/usr/bin/env bash
set -eu
d=%(units)s
echo "$*" >>$d/calls
n=${@: -1}; n=${n#roomcast@}; n=${n%%.service}
start() { setsid %(bin)s --host 127.0.0.1 --port %(port)d --redis %(redis)s --instance-id "$(uname -n):$1" \\
            >>$d/$1.log 2>&1 </dev/null & echo $! >$d/$1.pid; }
case "$1" in
  list-units) for f in $d/*.pid; do b=$(basename $f .pid); echo "roomcast@$b.service loaded active running x"; done ;;
  start) start $n ;;
  stop) pid=$(cat $d/$n.pid); kill -TERM $pid; while kill -0 $pid 2>/dev/null; do sleep 0.05; done ;;
  restart) "$0" stop "$2"; start $n ;;
  show) cat $d/$n.pid ;;
esac
""" % {"units": units, "bin": os.environ["ROOMCAST_BIN"], "port": port, "redis": self.redis.url})
        os.chmod(os.path.join(bindir, "systemctl"), 0o755)
        env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]))
        ctl = os.path.join(bindir, "systemctl")

        def stop_all():
            for f in glob.glob(os.path.join(units, "*.pid")):
                subprocess.run([ctl, "stop", "roomcast@%s.service" % os.path.basename(f)[:-4]], timeout=30)
            for log in glob.glob(os.path.join(units, "*.log")):
                with open(log, errors="replace") as fh:
                    text = fh.read()
                for m in SANITIZER_MARKERS:
                    self.assertNotIn(m, text, "%s:\n%s" % (log, text[-3000:]))
        self.addCleanup(stop_all)
        for n in (1, 2, 10):
            subprocess.run([ctl, "start", "roomcast@%d.service" % n], check=True, timeout=30)
        def unit_pids():
            out = {}
            for n in (1, 2, 10):
                with open(os.path.join(units, "%d.pid" % n)) as fh:
                    out[n] = int(fh.read())
            return out
        before = unit_pids()

        proc = await asyncio.create_subprocess_exec(ROLLING, "systemd", "--port", str(port), env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 120 * SCALE)
        out = out.decode(errors="replace")
        self.assertEqual(proc.returncode, 0, out)
        after = unit_pids()
        with open(os.path.join(units, "calls")) as f:
            restarts = [c for c in f.read().splitlines() if c.startswith("restart")]
        # One at a time, in the units' numeric order (roomcast@10 after roomcast@2).
        self.assertEqual(restarts, ["restart roomcast@1.service", "restart roomcast@2.service",
                                    "restart roomcast@10.service"], out)
        for n in before:
            self.assertNotEqual(before[n], after[n], out)
            self.assertIn("roomcast@%d.service is back (pid %d)" % (n, after[n]), out)
        self.assertIn("3 instance(s) restarted", out)


if __name__ == "__main__":
    unittest.main()
