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
from oracle import Oracle, RunLog, dump, parse_stream_entry  # noqa: E402

BROKER_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+\w+\s+\[([^\]]+)\] broker \S+: (down|up)\b")
SETTLE = 6.0          # healthy seconds (no fault) before the clients stop
WARMUP = 4.0          # seconds of traffic before an incarnation's baseline RSS is taken
RSS_MARGIN_KIB = 64 * 1024
FAULTS = ("redis_restart", "redis_freeze", "kill_pubsub", "kill_one_sub", "pause_write", "instance_kill")
CUTS_ALL = ("redis_restart", "redis_freeze", "kill_pubsub")   # faults that cut every instance off Redis
FAULT_MAX_LEN = {"redis_restart": 6.0, "redis_freeze": 5.5, "kill_pubsub": 1.0, "kill_one_sub": 1.5,
                 "pause_write": 3.0, "instance_kill": 5.0}


class HarnessError(Exception):
    pass


def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------------------------------
# Processes


class Redis(RedisServer):
    """redis-server with an append-only file fsynced on every write, so acked chats survive a restart."""

    def __init__(self, scratch):
        super().__init__()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = os.path.join(scratch, "redis")
        os.makedirs(self.tmp)
        self.log_path = os.path.join(scratch, "redis.log")
        self.frozen = False
        self.expected_up = False         # False while a fault has it down on purpose

    def start(self, port=None, timeout=15.0):
        self.port = port or self.port or quiet_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.tmp,
                 "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                 "--maxmemory", "512mb", "--maxmemory-policy", "noeviction"],
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
    address is one of the process's TCP sockets to Redis (matched through /proc/<pid>/fd and /proc/<pid>/net/tcp)."""
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
        if int(kv.get("sub", "0")) > 0 and int(kv.get("addr", ":0").rsplit(":", 1)[1]) in ports:
            ids.append(kv["id"])
    return ids


# ---------------------------------------------------------------------------------------------------------------------
# The run


class World:
    """What the clients and the fault injector share."""

    def __init__(self, opts, log):
        self.seed = opts.seed
        self.log = log
        self.rooms = ["room%d" % i for i in range(opts.rooms)]
        self.mean_interval = opts.interval
        self.instances = []
        self.clients = []
        self.killed_at = {}              # incarnation label -> when it was SIGKILLed (by the test)
        self.stop_t = None               # when the clients stop acting (the injector may push it back)
        self.fresh_n = 0

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
        wanted = [("--redis", self.redis.url), ("--history", str(o.history)), ("--ping-interval", "2"),
                  ("--rate", "1000"), ("--history-ttl", str(o.history_ttl)), ("--instance-ttl", str(o.instance_ttl)),
                  ("--log-level", "info")]
        args = []
        for flag, value in wanted:
            args += [flag, value]
        return args

    def setup(self):
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
        self.start_keys = set(self.redis.command("KEYS", "*") or [])

    def cleanup(self):
        for inst in self.world.instances:
            inst.cleanup()
        self.redis.cleanup()

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
            if self.redis.expected_up and not self.redis.frozen and self.redis.proc.poll() is not None:
                self.problems.append(("process_died", "redis-server exited with %s at t=%.3f:\n%s"
                                      % (self.redis.proc.returncode, t - self.log.t0, self.redis.log_tail())))
                await asyncio.to_thread(self.redis.start)
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
        n = await asyncio.to_thread(self.redis.command, "CLIENT", "KILL", "TYPE", "pubsub")
        self.nudge_joins(4)
        self.nudge(("burst", 2), 3)
        await asyncio.sleep(0.5)
        return "%s connections killed" % n

    async def fault_kill_one_sub(self):
        inst = self.rng.choice(self.world.instances)   # (every instance is up between faults)
        self.last_target = inst.label
        for _ in range(20):   # it may be reconnecting after an earlier fault
            ids = await asyncio.to_thread(sub_connection_ids, self.redis, inst.proc.pid)
            if ids:
                break
            await asyncio.sleep(0.2)
        else:
            self.notes.append("t=%.1f: no subscription connection of %s in CLIENT LIST; kill_one_sub later"
                              % (now() - self.log.t0, inst.label))
            return None
        for cid in ids:
            await asyncio.to_thread(self.redis.command, "CLIENT", "KILL", "ID", cid)
        self.nudge_joins(4, inst)
        self.nudge(("burst", 2), 3, inst)
        await asyncio.sleep(0.5)
        return "%s (client id %s)" % (inst.label, ",".join(ids))

    async def fault_pause_write(self):
        await asyncio.to_thread(self.redis.command, "CLIENT", "PAUSE", "2000", "WRITE")
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
        redis = self.redis
        # Streams, read before their TTL runs out.
        self.log.stream_read_t = now()
        streams = {}
        for key in await asyncio.to_thread(redis.command, "KEYS", "room:*:log") or []:
            room = key[len("room:"):-len(":log")]
            entries = []
            for entry in await asyncio.to_thread(redis.command, "XRANGE", key, "-", "+") or []:
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
        allowed = set()
        for label in live:
            allowed |= {"roomcast:instance:%s" % label, "roomcast:instance:%s:rooms" % label, "roomcast:chats:%s" % label}
        while True:
            keys = set(await asyncio.to_thread(redis.command, "KEYS", "*") or [])
            registry = set(await asyncio.to_thread(redis.command, "ZRANGE", "roomcast:instances", "0", "-1") or [])
            left = sorted(k for k in keys if k not in allowed and not (k == "roomcast:instances" and registry <= live))
            # Chat records of instances that died stay (bounded, 8192 entries) until their TTL of a day: a
            # cut-off instance needs them to answer its chats in doubt truthfully when it comes back, and
            # nobody can tell a dead instance from a cut-off one. They must carry that TTL, nothing longer.
            kept = []
            for k in left:
                if k.startswith("roomcast:chats:"):
                    ttl = await asyncio.to_thread(redis.command, "PTTL", k)
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
                typ = await asyncio.to_thread(redis.command, "TYPE", k)
                ttl = await asyncio.to_thread(redis.command, "PTTL", k)
                extra = ""
                if typ == "hash":
                    h = await asyncio.to_thread(redis.command, "HGETALL", k) or []
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
    extra = "" if list(o.faults) == list(FAULTS) else " --faults %s" % (",".join(o.faults) or "none")
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
    p.add_argument("--faults", default=",".join(FAULTS),
                   help="comma-separated fault kinds to inject (default: all: %s; 'none': no fault)" % ",".join(FAULTS))
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (logs) even on success")
    o = p.parse_args(argv)
    o.faults = [] if o.faults == "none" else [f for f in o.faults.split(",") if f]
    for f in o.faults:
        if f not in FAULTS:
            p.error("unknown fault %r (known: %s)" % (f, ", ".join(FAULTS)))
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
