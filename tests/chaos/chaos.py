#!/usr/bin/python3
# Seeded chaos test: roomcast instances on one Redis, clients acting at random while faults hit Redis and instances.
# Rule: the seed and the command to replay it are printed first and last; every process started is stopped, always.
"""Chaos test of PROTOCOL.md section 5 (see README.md in this folder).

  ROOMCAST_BIN=build/server/roomcast /usr/bin/python3 tests/chaos/chaos.py --seed 1 --duration 60

One redis-server (own port and folder, appendonly + appendfsync always, maxmemory with noeviction), N roomcast
instances on their own ports, C clients (clients.py) over R rooms. Faults, each at least once, in an order the seed
picks: Redis restarted, Redis frozen (SIGSTOP), CLIENT KILL TYPE pubsub, one instance's subscription connection
killed, CLIENT PAUSE WRITE under a burst of first joins and chats, one instance SIGKILLed and restarted. Then Redis
stays healthy, the clients finish, and oracle.py checks every log. Exit 0: no violation; 1: violations; 2: the
harness itself failed.

--redis-cluster: a Redis Cluster of six redis-server processes (cluster.py; 3 masters, 1 replica each) instead, the
instances on --redis-cluster, and faults that fit a cluster: a master SIGKILLed (its replica promoted, the node
restarted later as a replica), CLUSTER FAILOVER, a room's slot migrated under traffic, plus the pubsub kills, CLIENT
PAUSE and instance kills on every master.
"""

import argparse
import asyncio
import contextlib
import datetime
import os
import re
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from roomcast_harness import (SANITIZER_MARKERS, RedisServer, http_request_sync,  # noqa: E402
                              server_binary, static_dir)
from cluster_harness import quiet_port  # noqa: E402
from clients import Client, now  # noqa: E402
from cluster import RedisCluster, room_slot, spread_rooms  # noqa: E402
from oracle import Oracle, RunLog, dump, parse_stream_entry  # noqa: E402

BROKER_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+\w+\s+\[([^\]]+)\] broker \S+: (down|up)\b")
SETTLE = 6.0          # healthy seconds (no fault) before the clients stop
WARMUP = 4.0          # seconds of traffic before an incarnation's baseline RSS is taken
RSS_MARGIN_KIB = 64 * 1024
FAULTS = ("redis_restart", "redis_freeze", "kill_pubsub", "kill_one_sub", "pause_write", "instance_kill")
CUTS_ALL = ("redis_restart", "redis_freeze", "kill_pubsub")   # faults that cut every instance off Redis
FAULT_MAX_LEN = {"redis_restart": 6.0, "redis_freeze": 5.5, "kill_pubsub": 1.0, "kill_one_sub": 1.5,
                 "pause_write": 3.0, "instance_kill": 5.0, "failover": 16.0, "failover_manual": 8.0, "migrate": 5.0,
                 "master_restart": 12.0}
# --redis-cluster: faults that make sense against a Redis Cluster (redis_restart / redis_freeze of "the" Redis do not).
CLUSTER_FAULTS = ("failover", "migrate", "failover_manual", "master_restart", "kill_pubsub", "kill_one_sub",
                  "pause_write", "instance_kill")
NODE_TIMEOUT_MS = 1500  # cluster-node-timeout
LOSS_WINDOW = 2.0       # an acked write may be lost by a failover if the old master acked it this shortly before death
RECOVERY_SLACK = 1.0    # after every instance's /healthz is 200 again: the re-subscription and back-fill still run


class HarnessError(Exception):
    pass


def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------------------------------
# Processes


class Redis(RedisServer):
    """redis-server with an append-only file fsynced on every write, so acked chats survive a restart."""

    def __init__(self, scratch, name="redis", extra=()):
        super().__init__()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.name = name
        self.tmp = os.path.join(scratch, name)
        os.makedirs(self.tmp)
        self.log_path = os.path.join(scratch, "%s.log" % name)
        self.extra = list(extra)
        self.frozen = False
        self.expected_up = False         # False while a fault has it down on purpose

    def start(self, port=None, timeout=15.0):
        self.port = port or self.port or quiet_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.tmp,
                 "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                 "--maxmemory", "512mb", "--maxmemory-policy", "noeviction"] + self.extra,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("redis-server exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                if self.command("PING", timeout=1.0) == "PONG":
                    self.expected_up = True
                    return self
            except (OSError, EOFError, RuntimeError):
                pass  # (also "LOADING" while it reads the append-only file)
            time.sleep(0.05)
        raise HarnessError("redis-server not ready on port %d:\n%s" % (self.port, self.log_tail()))

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def cleanup(self):
        if self.proc is not None and self.frozen:
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGCONT)
        self.frozen = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ClusterNode(Redis):
    """One node of the chaos Redis Cluster: its own folder (append-only file and nodes.conf, so a restart rejoins with
    its data) and a cluster bus port of its own below the ephemeral range."""

    def __init__(self, scratch, index, port, bus_port, node_timeout_ms):
        super().__init__(scratch, name="redis-%d" % (index + 1), extra=[
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus_port),
            "--cluster-node-timeout", str(node_timeout_ms), "--cluster-require-full-coverage", "no"])
        self.port = port
        self.bus_port = bus_port


class Instance:
    """One roomcast instance; each start is a new incarnation ("i2.1", "i2.2") with that --instance-id, as a
    restarted process gets a new id by default (host:pid)."""

    def __init__(self, name, port, args, scratch):
        self.name = name
        self.port = port
        self.args = list(args)
        self.incarnation = 0
        self.label = None                # current incarnation's id
        self.proc = None
        self.up = False                  # accepting clients (false while killed on purpose)
        self.started_t = None
        self.log_path = os.path.join(scratch, "%s.log" % name)

    @property
    def url(self):
        return "ws://127.0.0.1:%d/ws" % self.port

    def command(self):
        return [server_binary(), "--host", "127.0.0.1", "--port", str(self.port), "--static", static_dir(),
                "--instance-id", self.label] + self.args

    def start(self, timeout=15.0):
        """Spawn and wait until /healthz answers (200, or 503 while Redis is down). Blocking."""
        self.incarnation += 1
        self.label = "%s.%d" % (self.name, self.incarnation)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        with open(self.log_path, "ab") as log:
            log.write(("### %s\n" % " ".join(self.command())).encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("%s exited with %s at start:\n%s" % (self.label, self.proc.returncode,
                                                                        self.log_tail()))
            try:
                resp = http_request_sync(self.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                    b"Connection: close\r\n\r\n", timeout=2.0)
                if resp.status in (200, 503):
                    self.up = True
                    self.started_t = now()
                    return self
                last = resp.status
            except (OSError, EOFError, ValueError) as e:
                last = e
            time.sleep(0.05)
        raise HarnessError("%s not ready within %.0fs (last %r):\n%s" % (self.label, timeout, last, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def sub_connection_ids(redis, pid):
    """Redis client ids of the subscription connection(s) of process `pid`: CLIENT LIST entries with sub>0 whose
    address is one of the process's TCP sockets to that Redis (sharded subscriptions, ssub>0, count too) (matched through /proc/<pid>/fd and /proc/<pid>/net/tcp)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            link = os.readlink(os.path.join(fd_dir, fd))
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = set()
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if len(fields) > 9 and fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == redis.port:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    ids = []
    for line in redis.command("CLIENT", "LIST").splitlines():
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        if (int(kv.get("sub", "0")) > 0 or int(kv.get("ssub", "0")) > 0) \
                and int(kv.get("addr", ":0").rsplit(":", 1)[1]) in ports:
            ids.append(kv["id"])
    return ids


def distinct_quiet_ports(n):
    ports = []
    while len(ports) < n:
        p = quiet_port()
        if p not in ports:
            ports.append(p)
    return ports


# ---------------------------------------------------------------------------------------------------------------------
# The run


class World:
    """What the clients and the fault injector share."""

    def __init__(self, opts, log):
        self.seed = opts.seed
        self.log = log
        # Redis Cluster: room ids chosen so that the rooms spread over the three masters' slot ranges.
        self.rooms = spread_rooms(opts.rooms) if opts.redis_cluster else ["room%d" % i for i in range(opts.rooms)]
        self.mean_interval = opts.interval
        self.instances = []
        self.clients = []
        self.killed_at = {}              # incarnation label -> when it was SIGKILLed (by the test)
        self.stop_t = None               # when the clients stop acting (the injector may push it back)
        self.fresh_n = 0

    def all_rooms(self):
        return self.rooms + ["fresh%d" % (i + 1) for i in range(self.fresh_n)]

    def pick_instance(self, rng):
        up = [i for i in self.instances if i.up]
        return rng.choice(up) if up else None


class Chaos:
    def __init__(self, opts):
        self.opts = opts
        self.rng = random.Random("faults-%d" % opts.seed)     # the schedule: order, gaps, kinds, parameters, targets
        self.nrng = random.Random("nudges-%d" % opts.seed)    # which clients act inside a fault (depends on timing)
        self.log = RunLog()
        self.log.history_len = opts.history
        self.log.history_ttl = float(opts.history_ttl)
        self.log.margin = opts.race_margin
        self.world = World(opts, self.log)
        self.scratch = tempfile.mkdtemp(prefix="roomcast-chaos-%d-" % opts.seed)
        self.cluster = None
        self.redis = None
        if opts.redis_cluster:
            ports = distinct_quiet_ports(12)
            self.cluster = RedisCluster(lambda i: ClusterNode(self.scratch, i, ports[2 * i], ports[2 * i + 1],
                                                              NODE_TIMEOUT_MS), node_timeout_ms=NODE_TIMEOUT_MS)
        else:
            self.redis = Redis(self.scratch)
        self.baseline_rss = {}           # label -> KiB after warm-up
        self.problems = []               # (kind, text) for the end checks (6, 7)
        self.notes = []                  # printed, not failures
        self.start_keys = set()
        self.last_target = None          # the instance kill_one_sub chose
        self.max_lag = 0.0               # worst lateness of the test's own event loop

    # -- setup ---------------------------------------------------------------------------------------------------
    def instance_args(self):
        o = self.opts
        broker = [("--redis-cluster", self.cluster.seeds()), ("--redis-probe-interval", "0.5")] if self.cluster \
            else [("--redis", self.redis.url)]
        wanted = broker + [("--history", str(o.history)), ("--ping-interval", "2"),
                           ("--rate", "1000"), ("--history-ttl", str(o.history_ttl)),
                           ("--instance-ttl", str(o.instance_ttl)), ("--log-level", "info")]
        args = []
        for flag, value in wanted:
            args += [flag, value]
        return args

    def setup(self):
        if self.cluster:
            for node in self.cluster.nodes:
                node.start(port=node.port)
            try:
                out = self.cluster.create()
                with open(os.path.join(self.scratch, "cluster-create.log"), "w") as f:
                    f.write(out)
                self.cluster.wait_healthy(30.0)
            except RuntimeError as e:
                raise HarnessError(str(e)) from None
            say("redis cluster: %s" % self.describe_cluster())
        else:
            for attempt in range(3):
                try:
                    self.redis.start(port=quiet_port())
                    break
                except HarnessError:
                    self.redis.cleanup()
                    if attempt == 2:
                        raise
        args = self.instance_args()
        for i in range(self.opts.instances):
            for attempt in range(3):
                inst = Instance("i%d" % (i + 1), quiet_port(), args, self.scratch)
                try:
                    inst.start()
                    break
                except HarnessError:
                    inst.cleanup()
                    if attempt == 2 or "in use" not in inst.log_text().lower():
                        raise
            self.world.instances.append(inst)
        deadline = time.monotonic() + 10
        while True:
            try:
                if all(http_request_sync(i.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                         timeout=2.0).status == 200 for i in self.world.instances):
                    break
            except (OSError, EOFError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise HarnessError("instances not all healthy (200, redis up) within 10 s of their start")
            time.sleep(0.1)
        self.start_keys = set(self.all_keys())

    def cleanup(self):
        for inst in self.world.instances:
            inst.cleanup()
        if self.cluster:
            self.cluster.cleanup()
        else:
            self.redis.cleanup()

    # -- Redis, one server or a cluster ---------------------------------------------------------------------------
    def all_keys(self):
        """Every key (blocking). Cluster: each master's keys of the slots it owns now; keys a master holds for a
        slot it does not own are a problem (a migration left them behind)."""
        if not self.cluster:
            return self.redis.command("KEYS", "*") or []
        found, stray = self.cluster.keys_by_owner()
        for text in stray:
            self.problems.append(("redis_key_stray", text))
        return sorted(found)

    def key_command(self, key, *args):
        """A command about one key, sent to the node that owns the key's slot now (blocking)."""
        if not self.cluster:
            return self.redis.command(*args)
        node = self.cluster.owner_of_key(key)
        if node is None:
            raise HarnessError("no live master owns the slot of %s" % key)
        return node.command(*args)

    def redis_nodes(self):
        return self.cluster.nodes if self.cluster else [self.redis]

    def masters(self):
        """Blocking: the nodes that serve clients now."""
        return self.cluster.masters_now() if self.cluster else [self.redis]

    def describe_cluster(self):
        topo = self.cluster.topology()
        out = []
        for m in sorted((i for i in topo if i.is_master), key=lambda i: i.slots[:1]):
            reps = [str(i.port) for i in topo if i.master_id == m.id]
            rooms = [r for r in self.world.all_rooms() if m.owns(room_slot(r))]
            out.append("%d (%s; replica %s; %s)" % (m.port, ",".join("%d-%d" % ab for ab in m.slots),
                                                    ",".join(reps) or "-", ",".join(rooms) or "no room"))
        return "; ".join(out)

    # -- main ----------------------------------------------------------------------------------------------------
    async def run(self):
        asyncio.get_running_loop().slow_callback_duration = 10.0
        log = self.log
        log.t0 = now()
        log.wall0 = time.time()
        self.world.stop_t = log.t0 + self.opts.duration
        crng = random.Random("clients-%d" % self.opts.seed)
        for i in range(self.opts.clients):
            self.world.clients.append(Client("c%02d" % i, random.Random(crng.random()), self.world))
        insts = self.world.instances
        actors = [asyncio.get_running_loop().create_task(
            c.run(insts[i % len(insts)])) for i, c in enumerate(self.world.clients)]
        helpers = [asyncio.get_running_loop().create_task(self.watchdog()),
                   asyncio.get_running_loop().create_task(self.loop_lag())]
        try:
            await self.inject()
            for a in actors:
                await a
        finally:
            for h in helpers:
                h.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await h
        self.notes.append("test's event loop lag: max %.0f ms (receipt times are late by up to that much, which"
                          " only ever makes the oracle owe less)" % (self.max_lag * 1000))
        await self.finish_clients()
        await self.end_checks()

    async def loop_lag(self):
        while True:
            t = now()
            await asyncio.sleep(0.05)
            self.max_lag = max(self.max_lag, now() - t - 0.05)

    async def watchdog(self):
        """Processes that die unasked are reported (and restarted so the run goes on); baseline RSS per incarnation."""
        while True:
            t = now()
            for inst in self.world.instances:
                if inst.up and not inst.alive():
                    inst.up = False
                    self.problems.append(("process_died", "%s exited with %s at t=%.3f; last log lines:\n%s"
                                          % (inst.label, inst.proc.returncode, t - self.log.t0, inst.log_tail(15))))
                    say("t=%.1f %s DIED (exit %s); restarting" % (t - self.log.t0, inst.label, inst.proc.returncode))
                    await asyncio.to_thread(inst.start)
                if inst.up and inst.label not in self.baseline_rss \
                        and t >= max(inst.started_t, self.log.t0) + WARMUP:
                    self.baseline_rss[inst.label] = inst.rss_kib()
            for node in self.redis_nodes():
                if node.expected_up and not node.frozen and node.proc.poll() is not None:
                    self.problems.append(("process_died", "%s (port %d) exited with %s at t=%.3f:\n%s"
                                          % (node.name, node.port, node.proc.returncode, t - self.log.t0,
                                             node.log_tail())))
                    await asyncio.to_thread(node.start, node.port)
            await asyncio.sleep(0.25)

    # -- faults --------------------------------------------------------------------------------------------------
    async def inject(self):
        """Every kind once in a seeded order, then more at random while they fit; SETTLE healthy seconds at the end."""
        rng = self.rng
        kinds = self.opts.faults
        order = list(kinds)
        rng.shuffle(order)
        say("fault order: %s" % ", ".join(order))
        skipped = {}
        await asyncio.sleep(WARMUP)
        while kinds:
            gap = rng.uniform(1.5, 4.0)
            await asyncio.sleep(gap)
            if order:
                kind = order.pop(0)
            else:
                kind = rng.choice(kinds)
                if now() + FAULT_MAX_LEN[kind] > self.world.stop_t - SETTLE:
                    break
            start = now()
            cut = [i.label for i in self.world.instances if i.up] if kind in CUTS_ALL else []
            detail = await getattr(self, "fault_" + kind)()
            end = now()
            if detail is None:        # could not be injected now: later (a bounded number of times)
                skipped[kind] = skipped.get(kind, 0) + 1
                if skipped[kind] < 5:
                    order.append(kind)
                else:
                    self.problems.append(("harness", "fault %s could not be injected (5 tries)" % kind))
                continue
            if kind == "kill_one_sub":
                cut = [self.last_target] if self.last_target else []
            for label in cut:
                self.log.outages.append((label, start, end, kind))
            self.log.faults.append((kind, start, end, detail))
            say("t=%6.2f-%6.2f fault %-14s %s" % (start - self.log.t0, end - self.log.t0, kind, detail))
            if now() + SETTLE > self.world.stop_t:
                self.world.stop_t = now() + SETTLE   # a short --duration: all kinds still run, then settle
        if self.world.stop_t < now() + SETTLE:
            self.world.stop_t = now() + SETTLE

    def connected(self, inst=None):
        return [c for c in self.world.clients
                if c.conn is not None and (inst is None or c.conn.instance == inst.label)]

    def nudge(self, job, k, inst=None):
        """Ask k clients (on `inst` when given, as far as there are) to do `job` now, inside the fault."""
        pool = self.connected(inst) or self.connected()
        for c in self.nrng.sample(pool, min(k, len(pool))):
            c.nudges.put_nowait(job)

    def nudge_joins(self, k, inst=None):
        self.nudge(("join", None), k, inst)
        self.nudge(("reconnect",), max(1, k // 2), inst)   # rejoins with since

    async def fault_redis_restart(self):
        how = self.rng.choice(["SHUTDOWN", "SIGTERM"])
        down = self.rng.uniform(0.5, 3.0)
        self.redis.expected_up = False
        if how == "SHUTDOWN":
            with contextlib.suppress(OSError, EOFError, RuntimeError):
                await asyncio.to_thread(self.redis.command, "SHUTDOWN")
        else:
            self.redis.proc.terminate()
        try:
            await asyncio.to_thread(self.redis.proc.wait, 10)
        except subprocess.TimeoutExpired:
            raise HarnessError("redis-server did not exit after %s" % how) from None
        self.nudge_joins(4)
        self.nudge(("burst", 2), 3)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.redis.start, self.redis.port)
        return "%s, down %.1fs" % (how, down)

    async def fault_redis_freeze(self):
        secs = self.rng.uniform(1.0, 5.0)
        self.redis.proc.send_signal(signal.SIGSTOP)
        self.redis.frozen = True
        try:
            await asyncio.sleep(min(0.3, secs / 3))
            self.nudge_joins(4)
            self.nudge(("burst", 2), 3)
            await asyncio.sleep(secs - min(0.3, secs / 3))
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
            self.redis.frozen = False
        return "SIGSTOP %.1fs" % secs

    async def fault_kill_pubsub(self):
        n = 0
        for node in await asyncio.to_thread(self.masters):
            n += await asyncio.to_thread(node.command, "CLIENT", "KILL", "TYPE", "pubsub")
        self.nudge_joins(4)
        self.nudge(("burst", 2), 3)
        await asyncio.sleep(0.5)
        return "%s connections killed" % n

    async def fault_kill_one_sub(self):
        inst = self.rng.choice(self.world.instances)   # (every instance is up between faults)
        self.last_target = inst.label
        for _ in range(20):   # it may be reconnecting after an earlier fault
            ids = []          # [(node, client id)]: cluster: its sharded subscription connections to every master
            for node in await asyncio.to_thread(self.masters):
                ids += [(node, i) for i in await asyncio.to_thread(sub_connection_ids, node, inst.proc.pid)]
            if ids:
                break
            await asyncio.sleep(0.2)
        else:
            self.notes.append("t=%.1f: no subscription connection of %s in CLIENT LIST; kill_one_sub later"
                              % (now() - self.log.t0, inst.label))
            return None
        for node, cid in ids:
            with contextlib.suppress(RuntimeError):   # (gone already: it was being replaced)
                await asyncio.to_thread(node.command, "CLIENT", "KILL", "ID", cid)
        self.nudge_joins(4, inst)
        self.nudge(("burst", 2), 3, inst)
        await asyncio.sleep(0.5)
        return "%s (client id %s)" % (inst.label, ",".join(
            ("%s@%d" % (cid, node.port)) if self.cluster else cid for node, cid in ids))

    async def fault_pause_write(self):
        for node in await asyncio.to_thread(self.masters):
            await asyncio.to_thread(node.command, "CLIENT", "PAUSE", "2000", "WRITE")
        fresh = []
        for _ in range(2):
            self.world.fresh_n += 1
            fresh.append("fresh%d" % self.world.fresh_n)
        for room in fresh:
            self.nudge(("fresh", room), 3)
        self.nudge(("burst", 3), 5)
        self.nudge(("join", None), 2)
        await asyncio.sleep(2.2)
        return "CLIENT PAUSE 2000 WRITE; first joins of %s" % ", ".join(fresh)

    async def fault_instance_kill(self):
        inst = self.rng.choice(self.world.instances)
        down = self.rng.uniform(0.5, 2.0)
        label = inst.label
        inst.up = False
        self.world.killed_at[label] = now()
        inst.proc.kill()
        await asyncio.to_thread(inst.proc.wait)
        self.nudge_joins(3)
        await asyncio.sleep(down)
        await asyncio.to_thread(inst.start)
        return "%s SIGKILLed, %s up after %.1fs" % (label, inst.label, down)

    # -- Redis Cluster faults ------------------------------------------------------------------------------------
    def rooms_of(self, info):
        """Rooms (the chaos rooms and the fresh ones so far) whose slot the master `info` (NodeInfo) owns."""
        return {r for r in self.world.all_rooms() if info.owns(room_slot(r))}

    async def pick_master(self, need_synced_replica):
        """(master NodeInfo, its synced replicas [NodeInfo], topology): the master of a seeded random room, else of
        the next room whose master qualifies; None if none does (e.g. a replica still syncing)."""
        topo = await asyncio.to_thread(self.cluster.topology)
        rooms = list(self.world.rooms)
        start = self.rng.randrange(len(rooms))
        for room in rooms[start:] + rooms[:start]:
            slot = room_slot(room)
            m = next((i for i in topo if i.is_master and not i.failed and i.owns(slot)), None)
            if m is None:
                continue
            reps = [i for i in topo if i.master_id == m.id and not i.failed]
            synced = [r for r in reps if await asyncio.to_thread(self.cluster.replica_synced,
                                                                 self.cluster.by_port(r.port))]
            if synced or not need_synced_replica:
                return m, synced, topo
        return None

    async def wait_until(self, probe, timeout, what):
        deadline = now() + timeout
        while now() < deadline:
            try:
                if await asyncio.to_thread(probe):
                    return now()
            except (OSError, EOFError, RuntimeError):
                pass
            await asyncio.sleep(0.1)
        raise HarnessError("%s: not within %.0fs" % (what, timeout))

    def owner_port(self, slot):
        node = self.cluster.owner_of_slot(slot)
        return node.port if node is not None else None

    async def instances_healthy(self, timeout, why):
        """When every live instance's /healthz says 200 again (the slot maps point at owners that answer). An
        instance still 503 after `timeout` is a problem: section 7 allows 503 only while a slot has no owner."""
        deadline = now() + timeout
        while True:
            bad = []
            for inst in self.world.instances:
                if not inst.up:
                    continue
                try:
                    r = await asyncio.to_thread(http_request_sync, inst.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                                b"Connection: close\r\n\r\n", timeout=2.0)
                    if r.status != 200:
                        bad.append("%s %d %s" % (inst.label, r.status, r.body[:200]))
                except (OSError, EOFError, ValueError) as e:
                    bad.append("%s %r" % (inst.label, e))
            if not bad:
                return now()
            if now() > deadline:
                self.problems.append(("healthz_stuck", "t=%.1f: %.0fs after %s, /healthz still not 200 (the cluster"
                                      " serves every slot): %s" % (now() - self.log.t0, timeout, why,
                                                                   "; ".join(bad))))
                return now()
            await asyncio.sleep(0.1)

    def room_outage(self, rooms, start, end, why):
        """Every instance is cut off from these rooms' broker subscriptions from start to end."""
        for inst in self.world.instances:
            if inst.label is not None:
                self.log.outages.append((inst.label, start, end, why, sorted(rooms)))

    async def cluster_whole_again(self, after):
        """The Redis Cluster whole within 30 s (cluster.wait_healthy), else HarnessError("after <after>: why")."""
        try:
            await asyncio.to_thread(self.cluster.wait_healthy, 30.0)
        except RuntimeError as e:
            raise HarnessError("after %s: %s" % (after, e)) from None

    async def kill_room_master(self, fault):
        """kill -9 a master that has a synced replica (for `fault`), its loss window logged, the clients nudged.
        Returns (master, node, its rooms, time of the kill), or None (noted) when no master has a synced replica."""
        picked = await self.pick_master(need_synced_replica=True)
        if picked is None:
            self.notes.append("t=%.1f: no master with a synced replica; %s later" % (now() - self.log.t0, fault))
            return None
        m, _, _ = picked
        node = self.cluster.by_port(m.port)
        rooms = self.rooms_of(m)
        node.expected_up = False
        t_kill = now()
        node.proc.kill()
        await asyncio.to_thread(node.proc.wait)
        # Writes the old master acked shortly before its death may not have reached the replica (asynchronous
        # replication): Redis itself loses them, and the oracle allows exactly that (oracle.py, loss windows).
        self.log.loss_windows.append((sorted(rooms), t_kill - LOSS_WINDOW, t_kill, "%s: %d killed" % (fault, m.port)))
        self.nudge_joins(4)
        self.nudge(("burst", 2), 4)
        return m, node, rooms, t_kill

    async def fault_failover(self):
        """kill -9 the master of a room (one whose replica is synced); its replica is promoted after
        cluster-node-timeout; later the dead node is started again and rejoins as a replica of the new master."""
        killed = await self.kill_room_master("failover")
        if killed is None:
            return None
        m, node, rooms, t_kill = killed
        first_slot = m.slots[0][0]
        t_promoted = await self.wait_until(lambda: self.owner_port(first_slot) not in (None, m.port), 20.0,
                                           "failover of %d: replica promoted" % m.port)
        self.nudge(("burst", 2), 3)
        t_ok = await self.instances_healthy(15.0, "the failover of %d" % m.port)
        self.room_outage(rooms, t_kill, t_ok + RECOVERY_SLACK, "failover")
        down = self.rng.uniform(0.5, 2.0)
        await asyncio.sleep(down)
        await asyncio.to_thread(node.start, node.port)
        await self.cluster_whole_again("the failover of %d" % m.port)
        return "%d (master of %s) SIGKILLed; replica %d promoted after %.1fs, instances healthy after %.1fs; " \
               "restarted %.1fs later, a synced replica again" % (
                   m.port, ",".join(sorted(rooms)) or "no room", self.owner_port(first_slot), t_promoted - t_kill,
                   t_ok - t_kill, down)

    async def fault_master_restart(self):
        """kill -9 the master of a room and start it again 0.2-1 s later, within cluster-node-timeout: usually it
        comes back as the master with its append-only file (nothing lost), the instances reconnect to it; if its
        replica was promoted meanwhile, it rejoins as a replica (then as a failover)."""
        killed = await self.kill_room_master("master_restart")
        if killed is None:
            return None
        m, node, rooms, t_kill = killed
        first_slot = m.slots[0][0]
        down = self.rng.uniform(0.2, 1.0)
        await asyncio.sleep(down)
        await asyncio.to_thread(node.start, node.port)
        t_up = now()

        def served():     # the slots' owner (the node again, or its promoted replica) answers with cluster_state:ok
            owner = self.cluster.owner_of_slot(first_slot)
            return owner is not None and "cluster_state:ok" in owner.command("CLUSTER", "INFO", timeout=2.0)
        await self.wait_until(served, 30.0, "master_restart of %d: its slots served again" % m.port)
        t_ok = await self.instances_healthy(15.0, "the restart of master %d" % m.port)
        self.room_outage(rooms, t_kill, t_ok + RECOVERY_SLACK, "master_restart")
        await self.cluster_whole_again("the restart of master %d" % m.port)
        owner = self.owner_port(first_slot)
        return "%d (master of %s) SIGKILLed, started again after %.1fs; %s; instances healthy after %.1fs" % (
            m.port, ",".join(sorted(rooms)) or "no room", t_up - t_kill,
            "still the master" if owner == m.port else "its replica %s had been promoted" % owner, t_ok - t_kill)

    async def fault_failover_manual(self):
        """CLUSTER FAILOVER on a synced replica: the master stops writes, the replica catches up and takes over."""
        picked = await self.pick_master(need_synced_replica=True)
        if picked is None:
            self.notes.append("t=%.1f: no master with a synced replica; failover_manual later" % (now() - self.log.t0))
            return None
        m, synced, _ = picked
        rep = self.cluster.by_port(self.rng.choice(sorted(r.port for r in synced)))
        rooms = self.rooms_of(m)
        first_slot = m.slots[0][0]
        t0 = now()
        await asyncio.to_thread(rep.command, "CLUSTER", "FAILOVER")
        self.nudge_joins(4)
        self.nudge(("burst", 2), 4)
        t_promoted = await self.wait_until(lambda: self.owner_port(first_slot) == rep.port, 15.0,
                                           "CLUSTER FAILOVER on %d" % rep.port)
        t_ok = await self.instances_healthy(15.0, "CLUSTER FAILOVER on %d" % rep.port)
        self.room_outage(rooms, t0, t_ok + RECOVERY_SLACK, "failover_manual")
        await self.cluster_whole_again("CLUSTER FAILOVER on %d" % rep.port)
        return "CLUSTER FAILOVER on %d (replica of %d, master of %s): master after %.1fs, instances healthy after" \
               " %.1fs" % (rep.port, m.port, ",".join(sorted(rooms)) or "no room", t_promoted - t0, t_ok - t0)

    async def fault_migrate(self):
        """Move the slot of a room to another master while traffic runs, as redis-cli --cluster reshard does:
        SETSLOT IMPORTING on the destination, MIGRATING on the source, MIGRATE the slot's keys (in batches, all
        keys of a batch in one call), SETSLOT NODE on the destination, the source, then the other masters."""
        room = self.rng.choice(self.world.rooms)
        slot = room_slot(room)
        topo = await asyncio.to_thread(self.cluster.topology)
        masters = [i for i in topo if i.is_master and not i.failed and i.slots]
        src = next((i for i in masters if i.owns(slot)), None)
        if src is None:
            return None
        others = [i for i in masters if i.id != src.id]
        # The destination: the master of another room (seeded), else any other master.
        cands = [r for r in self.world.rooms if any(o.owns(room_slot(r)) for o in others)]
        if cands:
            r2 = self.rng.choice(cands)
            dst = next(o for o in others if o.owns(room_slot(r2)))
        else:
            dst = others[self.rng.randrange(len(others))]
        src_n, dst_n = self.cluster.by_port(src.port), self.cluster.by_port(dst.port)
        rooms = {r for r in self.world.all_rooms() if room_slot(r) == slot}
        t0 = now()
        await asyncio.to_thread(dst_n.command, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.id)
        await asyncio.to_thread(src_n.command, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id)
        self.nudge_joins(4)
        self.nudge(("burst", 2), 4)
        await asyncio.sleep(self.rng.uniform(0.1, 0.8))     # traffic on a migrating slot, keys still at the source
        moved = 0
        while True:
            keys = await asyncio.to_thread(src_n.command, "CLUSTER", "GETKEYSINSLOT", slot, 1000) or []
            if not keys:
                break
            r = await asyncio.to_thread(src_n.command, "MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
            if r not in ("OK", "NOKEY"):
                raise HarnessError("MIGRATE of slot %d: %r" % (slot, r))
            moved += len(keys)
        self.nudge(("burst", 2), 3)
        await asyncio.sleep(self.rng.uniform(0.0, 0.5))     # keys at the destination, slot still migrating (ASK)
        await asyncio.to_thread(dst_n.command, "CLUSTER", "SETSLOT", slot, "NODE", dst.id)
        await asyncio.to_thread(src_n.command, "CLUSTER", "SETSLOT", slot, "NODE", dst.id)
        for o in others:
            if o.id != dst.id:
                await asyncio.to_thread(self.cluster.by_port(o.port).command, "CLUSTER", "SETSLOT", slot, "NODE",
                                        dst.id)
        t_set = now()
        t_ok = await self.instances_healthy(15.0, "the migration of slot %d" % slot)
        self.room_outage(rooms, t0, t_ok + RECOVERY_SLACK, "migrate")
        return "slot %d (%s) from %d to %d: %d keys, SETSLOT NODE after %.1fs" % (
            slot, ",".join(sorted(rooms)), src.port, dst.port, moved, t_set - t0)

    # -- the end -------------------------------------------------------------------------------------------------
    async def finish_clients(self):
        """Let answers arrive, then every client closes; sessions still open end there."""
        clients = self.world.clients

        def waiting():
            return [c for c in clients if c.conn is not None and (c.conn.unanswered or c.conn.pending or any(
                st == "leaving" for st in c.conn.state.values()))]
        deadline = now() + 10.0
        while waiting() and now() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)   # deliveries of the last acked chats
        for c in clients:
            conn = c.conn
            if conn is None:
                continue
            for ch in conn.unanswered.values():
                ch.conn_open_at_end = True
            for room, s in conn.pending.items():
                self.log.anomalies.append(("join_unanswered", room, "%s: join sent t=%.3f never answered"
                                           % (s.sid, s.join_sent_t - self.log.t0)))
            for room, st in conn.state.items():
                if st == "leaving":
                    self.log.anomalies.append(("leave_unanswered", room, "%s/%d: leave of %s never answered"
                                               % (c.cid, conn.no, room)))
        readers = [c.conn.reader for c in clients if c.conn is not None]
        await asyncio.gather(*(c.disconnect("close", "end") for c in clients))
        try:
            await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 10.0)
        except asyncio.TimeoutError:
            self.notes.append("some connections were not closed within 10 s of the close handshake")

    async def end_checks(self):
        kc = self.key_command
        # Streams, read before their TTL runs out (cluster: each from the master that owns its slot now).
        self.log.stream_read_t = now()
        streams = {}
        log_key = re.compile(r"^room:\{(.+)\}:log$" if self.cluster else r"^room:(.+):log$")
        for key in await asyncio.to_thread(self.all_keys):
            m = log_key.match(key)
            if not m:
                continue
            room = m.group(1)
            entries = []
            for entry in await asyncio.to_thread(kc, key, "XRANGE", key, "-", "+") or []:
                id_, fields = entry[0], entry[1]
                body, _ = parse_stream_entry(dict(zip(fields[::2], fields[1::2])), id_)
                entries.append((id_, body))
            streams[room] = entries
        self.log.streams = streams

        # 7. RSS against the baseline of the same incarnation.
        for inst in self.world.instances:
            base, cur = self.baseline_rss.get(inst.label), inst.rss_kib() if inst.alive() else None
            if base and cur and cur > base + RSS_MARGIN_KIB:
                self.problems.append(("rss_growth", "%s RSS %d KiB at the end, %d KiB after warm-up (+%d MiB)"
                                      % (inst.label, cur, base, (cur - base) // 1024)))
            self.notes.append("%s RSS after warm-up %s KiB, at the end %s KiB" % (inst.label, base, cur))

        # 7. Redis keys back to where they were: live instances' keys only, once history TTL and instance TTL passed.
        last_chat = max([c.sent_t for c in self.log.chats] or [now()])
        deadline = max(last_chat + self.opts.history_ttl, now() + self.opts.instance_ttl) + 5.0
        # A live instance owns its liveness key, its list of rooms with members (empty sets vanish), and its
        # chat records (docs/protocol.md, Redis details); the instance set may name live instances only.
        live = {i.label for i in self.world.instances if i.alive()}
        meta = "roomcast:{roomcast}:" if self.cluster else "roomcast:"
        registry_key = meta + "instances"
        # Chat records: one list per instance (one Redis), one per room and instance in the room's slot (cluster).
        records = re.compile(r"^room:\{.+\}:chats:.+$" if self.cluster else r"^roomcast:chats:.+$")
        # In a cluster an instance's Redis name is its --instance-id, "~" and its start time (a restart under
        # the same id is another instance there); one Redis uses the id itself.
        def label_of(name):
            return name.split("~", 1)[0] if self.cluster else name
        while True:
            keys = set(await asyncio.to_thread(self.all_keys))
            registry = set(await asyncio.to_thread(kc, registry_key, "ZRANGE", registry_key, "0", "-1") or [])
            allowed = set()
            for name in (registry if self.cluster else live):
                if label_of(name) in live:
                    allowed |= {meta + "instance:%s" % name, meta + "instance:%s:rooms" % name, "roomcast:chats:%s" % name}
            left = sorted(k for k in keys if k not in allowed
                          and not (k == registry_key and {label_of(n) for n in registry} <= live))
            # Chat records of instances that died stay (bounded, 8192 entries) until their TTL of a day: a
            # cut-off instance needs them to answer its chats in doubt truthfully when it comes back, and
            # nobody can tell a dead instance from a cut-off one. They must carry that TTL, nothing longer.
            kept = []
            for k in left:
                if records.match(k):
                    ttl = await asyncio.to_thread(kc, k, "PTTL", k)
                    if isinstance(ttl, int) and 0 < ttl <= 86400000:
                        continue
                kept.append(k)
            left = kept
            if not left or now() > deadline:
                break
            await asyncio.sleep(0.5)
        self.notes.append("Redis keys: %d after setup, %d at the end" % (len(self.start_keys), len(keys)))
        if left:
            detail = []
            for k in left[:12]:
                typ = await asyncio.to_thread(kc, k, "TYPE", k)
                ttl = await asyncio.to_thread(kc, k, "PTTL", k)
                extra = ""
                if typ == "hash":
                    h = await asyncio.to_thread(kc, k, "HGETALL", k) or []
                    extra = " fields %s" % ", ".join("%s@%s" % (h[i], h[i + 1].split("\n", 1)[0])
                                                     for i in range(0, len(h), 2))
                detail.append("%s (%s, pttl %s%s)" % (k, typ, ttl, extra))
            self.problems.append(("redis_keys_left", "%d keys besides the live instances' own, %.0fs after the last"
                                  " chat (--history-ttl %s, --instance-ttl %s): %s%s"
                                  % (len(left), now() - last_chat, self.opts.history_ttl, self.opts.instance_ttl,
                                     "; ".join(detail), " ..." if len(left) > 12 else "")))

        # 6. SIGTERM: exit 0 within 5 s; no sanitizer report in any log (all incarnations).
        for inst in self.world.instances:
            if not inst.alive():
                continue
            t = time.monotonic()
            inst.proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(inst.proc.wait, 6.5)
            except subprocess.TimeoutExpired:
                code = None
                inst.cleanup()
            took = time.monotonic() - t
            inst.up = False
            if code != 0 or took > 5.0:
                self.problems.append(("bad_exit", "%s after SIGTERM: exit %s after %.2fs; last log lines:\n%s"
                                      % (inst.label, code, took, inst.log_tail(15))))
        for inst in self.world.instances:
            text = inst.log_text()
            for m in SANITIZER_MARKERS:
                if m in text:
                    i = text.index(m)
                    self.problems.append(("sanitizer", "%s log: %s" % (inst.name, text[max(0, i - 200):i + 800])))
        self.log.resources = self.problems
        self.broker_down_periods()

    def broker_down_periods(self):
        """Periods each incarnation said (in its log) that its broker was down, as outages for the oracle: a session
        that ends while its instance is cut off from Redis cannot be owed what was published meanwhile. Only widens
        what the faults themselves cut; a log without such lines leaves the faults' own windows."""
        n = 0
        for inst in self.world.instances:
            down = {}
            for line in inst.log_text().splitlines():
                m = BROKER_LINE.match(line)
                if not m:
                    continue
                try:
                    wall = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                        tzinfo=datetime.timezone.utc).timestamp()
                except ValueError:
                    continue
                t = self.log.t0 + (wall - self.log.wall0)
                label, state = m.group(2), m.group(3)
                if state == "down" and label not in down:
                    down[label] = t
                elif state == "up" and label in down:
                    self.log.outages.append((label, down.pop(label), t, "broker down (log)"))
                    n += 1
            for label, t in down.items():
                self.log.outages.append((label, t, float("inf"), "broker down (log)"))
                n += 1
        self.notes.append("%d broker down periods read from the instance logs" % n)


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def replay_command(o):
    default = CLUSTER_FAULTS if o.redis_cluster else FAULTS
    extra = "" if list(o.faults) == list(default) else " --faults %s" % (",".join(o.faults) or "none")
    if o.redis_cluster:
        extra = " --redis-cluster" + extra
    return ("ROOMCAST_BIN=%s /usr/bin/python3 tests/chaos/chaos.py --seed %d --duration %d --clients %d --rooms %d"
            " --instances %d%s" % (server_binary(), o.seed, o.duration, o.clients, o.rooms, o.instances, extra))


def main(argv=None):
    p = argparse.ArgumentParser(description="Seeded chaos test of PROTOCOL.md section 5 (see tests/chaos/README.md)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--duration", type=int, default=60, help="seconds of client traffic (default 60)")
    p.add_argument("--clients", type=int, default=30)
    p.add_argument("--rooms", type=int, default=5)
    p.add_argument("--instances", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.4, help="mean seconds between one client's actions")
    p.add_argument("--history", type=int, default=1000, help="--history of the instances")
    p.add_argument("--history-ttl", type=int, default=20, help="--history-ttl of the instances (seconds)")
    p.add_argument("--instance-ttl", type=int, default=3, help="--instance-ttl of the instances (seconds)")
    p.add_argument("--race-margin", type=float, default=0.25,
                   help="seconds a session must outlive a chat's ack to owe it (oracle.py explains)")
    p.add_argument("--faults", default=None,
                   help="comma-separated fault kinds to inject (default: all: %s; with --redis-cluster: %s; 'none':"
                        " no fault)" % (",".join(FAULTS), ",".join(CLUSTER_FAULTS)))
    p.add_argument("--redis-cluster", action="store_true",
                   help="a Redis Cluster of 6 nodes (3 masters, 1 replica each) instead of one redis-server; faults"
                        " then include failover, migrate and failover_manual")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (logs) even on success")
    o = p.parse_args(argv)
    known = CLUSTER_FAULTS if o.redis_cluster else FAULTS
    if o.faults is None:
        o.faults = ",".join(known)
    o.faults = [] if o.faults == "none" else [f for f in o.faults.split(",") if f]
    for f in o.faults:
        if f not in known:
            p.error("unknown fault %r (known%s: %s)" % (f, " with --redis-cluster" if o.redis_cluster else "",
                                                         ", ".join(known)))
    if o.seed is None:
        o.seed = random.SystemRandom().randrange(1, 1000000)
    if o.instances < 2:
        p.error("--instances must be at least 2 (one is killed and restarted)")
    say("chaos: seed %d\nreplay: %s" % (o.seed, replay_command(o)))
    chaos = Chaos(o)
    say("scratch: %s" % chaos.scratch)
    t_start = time.monotonic()
    try:
        chaos.setup()
        asyncio.run(chaos.run())
    except Exception:  # noqa: BLE001
        chaos.cleanup()
        say("\nHARNESS ERROR (seed %d):\n%s" % (o.seed, traceback.format_exc()))
        say("logs kept in %s\nreplay: %s" % (chaos.scratch, replay_command(o)))
        return 2
    finally:
        chaos.cleanup()
    oracle = Oracle(chaos.log)
    violations = oracle.run()
    say("\nchaos: seed %d, %.0fs in all" % (o.seed, time.monotonic() - t_start))
    for n in chaos.notes:
        say("  note: %s" % n)
    oracle.report(sys.stdout)
    if violations:
        dump(chaos.log, os.path.join(chaos.scratch, "runlog.json"))
        say("\nFAILED: seed %d; logs and runlog.json kept in %s\nreplay: %s" % (o.seed, chaos.scratch, replay_command(o)))
        return 1
    say("\nOK: seed %d" % o.seed)
    if not o.keep:
        shutil.rmtree(chaos.scratch, ignore_errors=True)
    else:
        dump(chaos.log, os.path.join(chaos.scratch, "runlog.json"))
        say("logs and runlog.json in %s" % chaos.scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
