# Redis Cluster harness: six local redis-server processes (3 masters, 1 replica each) and roomcast instances on them.
# Rule: everything it starts is stopped and every folder removed even after a failure; every wait has a deadline.
"""Helpers for the Redis Cluster suite (tests/integration/test_rcluster_*.py), on top of cluster_harness.

  * keyslot(): CRC16 hash slot of a key (hash tags honoured), checked against CLUSTER KEYSLOT by the self-test.
  * ClusterNode: one cluster-enabled redis-server in its own folder, on a port and a cluster-bus port from below
    the ephemeral range; kill -9 and restart on the same ports with the same nodes.conf.
  * RedisCluster: create with `redis-cli --cluster create --cluster-replicas 1`, wait until every node agrees
    (cluster_state:ok, one owner per slot, replicas linked); masters(), owner of a slot or key, a routed command
    (MOVED/ASK followed), kill -9 a master and wait for its replica's promotion, heal (restart what was killed),
    migrate one slot by hand (SETSLOT IMPORTING/MIGRATING, MIGRATE in batches, SETSLOT NODE), INFO commandstats,
    PUBSUB SHARDNUMSUB.
  * Monitor: MONITOR on one node, read in a thread, parsed into (time, source, [args]).
  * RedisClusterTestCase: one cluster per test class (setUpClass), instances per test with --redis-cluster.

Why these settings: cluster-node-timeout 1000 ms makes a failover take ~2-3 s; cluster-require-full-coverage no
keeps the other masters serving their slots while one master is down, so the outage of one slot range is what a
test sees (with "yes" every node answers CLUSTERDOWN until the promotion); cluster-replica-validity-factor 0 lets
a replica be promoted however long ago it last heard from its master; repl-diskless-sync-delay 0 makes replicas
sync at once after creation and after a restart (the default waits 5 s).
"""

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
import threading
import time

from cluster_harness import (SCALE, TIMEOUT, ClusterTestCase, Redis, id_parts, quiet_port, unique,
                             wait_until)
from roomcast_harness import _resp_read, quiet_slow_callback_warnings

__all__ = ["keyslot", "room_slot", "cluster_node_args", "ClusterNodeViews", "ClusterNode", "RedisCluster", "Monitor", "RedisClusterTestCase",
           "ClusterFailure", "parse_metric_labels", "CLUSTER_TIMEOUT", "chats_of", "answers_of", "resp_pipeline",
           "check_room_log", "ChatTraffic", "wait_delivered"]

NSLOTS = 16384
NODE_TIMEOUT_MS = 1000
CLUSTER_TIMEOUT = 30.0 * SCALE   # creating the cluster, a promotion, healing: generous, never asserted on speed


class ClusterFailure(AssertionError):
    pass


# ---------------------------------------------------------------------------------------------------------------------
# Hash slots


def _crc16(data):
    """CRC16-CCITT (XMODEM), as Redis Cluster hashes keys."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def keyslot(key):
    """The hash slot of `key`: only the part between the first '{' and the next '}' counts, if not empty."""
    k = key.encode() if isinstance(key, str) else key
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return _crc16(k) % NSLOTS


def room_slot(room):
    """Slot of every name of room `room` (they carry it as hash tag: room:{R}, room:{R}:log, ...)."""
    return keyslot("room:{%s}" % room)


# ---------------------------------------------------------------------------------------------------------------------
# RESP on one connection (ASKING must precede its command on the same connection)


def resp_pipeline(port, commands, timeout=5.0, connect=None):
    """Send `commands` (lists of args) on one connection; return the replies in order. An error reply is returned
    as a RuntimeError instance, not raised. The connection goes to 127.0.0.1:port, or is connect(timeout) (a
    connected socket: e.g. one made inside a network namespace)."""
    sock = connect(timeout) if connect is not None else socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with sock as s:
        out = b""
        for args in commands:
            out += b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        replies = []
        for _ in commands:
            try:
                replies.append(_resp_read(f))
            except RuntimeError as e:
                replies.append(e)
        return replies


def _parse_info(text):
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k.strip()] = v.strip()
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Nodes


def cluster_node_args(bus_port, node_timeout_ms=NODE_TIMEOUT_MS):
    """redis-server arguments of a cluster node (see the module's doc for why these)."""
    return ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus_port),
            "--cluster-node-timeout", str(node_timeout_ms), "--cluster-require-full-coverage", "no",
            "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0"]


class ClusterNodeViews:
    """What RedisCluster asks of a node, on top of: index, port, ip, node_id, proc, command(*args), log(),
    pipeline(commands, timeout) (resp_pipeline on a connection to the node), start(), kill(), restart(), cleanup().
    Mixed into ClusterNode (local) and netns_lab.HostClusterNode (on a lab host)."""

    def __repr__(self):
        return "<node %d %s %s%s>" % (self.index, self.addr, (self.node_id or "?")[:8],
                                      "" if self.alive() else " dead")

    @property
    def addr(self):
        return "%s:%d" % (self.ip, self.port)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def info(self, section=None):
        return _parse_info(self.command(*(["INFO", section] if section else ["INFO"])))

    def cluster_info(self):
        return _parse_info(self.command("CLUSTER", "INFO"))

    def view(self):
        """CLUSTER NODES as {node id: {"addr", "flags" (set), "role", "master" (id or None), "slots" (frozenset)}}."""
        out = {}
        for line in self.command("CLUSTER", "NODES").splitlines():
            parts = line.split()
            if len(parts) < 8:
                continue
            flags = set(parts[2].split(","))
            slots = set()
            for spec in parts[8:]:
                if spec.startswith("["):
                    continue   # [slot->-id] / [slot-<-id]: migrating or importing, not owned
                lo, _, hi = spec.partition("-")
                slots.update(range(int(lo), int(hi or lo) + 1))
            out[parts[0]] = {"addr": parts[1].split("@")[0].split(",")[0], "flags": flags,
                             "role": "master" if "master" in flags else "replica",
                             "master": None if parts[3] == "-" else parts[3], "slots": frozenset(slots)}
        return out

    def commandstats(self):
        """INFO commandstats as {command: calls} (subcommands as 'cluster|nodes')."""
        out = {}
        for k, v in self.info("commandstats").items():
            if k.startswith("cmdstat_"):
                fields = dict(x.split("=", 1) for x in v.split(","))
                out[k[len("cmdstat_"):]] = int(fields.get("calls", 0))
        return out

    def shardnumsub(self, channel):
        reply = self.command("PUBSUB", "SHARDNUMSUB", channel)
        assert reply[0] == channel, reply
        return int(reply[1])

    def log_tail(self, lines=30):
        return "\n".join(self.log().splitlines()[-lines:])


class ClusterNode(ClusterNodeViews, Redis):
    """One cluster-enabled redis-server: its own folder (nodes.conf survives a kill, so a restart rejoins)."""

    ip = "127.0.0.1"

    def __init__(self, index, port, bus_port, node_timeout_ms=NODE_TIMEOUT_MS):
        super().__init__(extra_args=cluster_node_args(bus_port, node_timeout_ms))
        self.index = index
        self.port = port
        self.bus_port = bus_port
        self.node_id = None

    def start(self, port=None, timeout=None):
        super().start(port=self.port, timeout=timeout or CLUSTER_TIMEOUT)
        self.node_id = self.command("CLUSTER", "MYID")
        return self

    def restart(self):
        return self.start()

    def pipeline(self, commands, timeout=5.0):
        return resp_pipeline(self.port, commands, timeout)


# ---------------------------------------------------------------------------------------------------------------------
# The cluster


class RedisCluster:
    """A Redis Cluster of `masters` masters with `replicas` replicas each, on localhost. Subclasses put the nodes
    elsewhere by overriding _new_node() and _create() (netns_lab.HostRedisCluster: on lab hosts)."""

    def __init__(self, masters=3, replicas=1, node_timeout_ms=NODE_TIMEOUT_MS):
        self.n_masters = masters
        self.n_replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes = []

    # -- life
    def start(self, timeout=CLUSTER_TIMEOUT):
        try:
            return self._start(timeout)
        except BaseException:
            self.cleanup()
            raise

    def _start(self, timeout):
        n = self.n_masters * (1 + self.n_replicas)
        used = set()
        for i in range(n):
            node = self._new_node(i, used)
            self.nodes.append(node)
            node.start()
        args = ["--cluster", "create"] + [nd.addr for nd in self.nodes] + [
            "--cluster-replicas", str(self.n_replicas), "--cluster-yes"]
        returncode, output = self._create(args, timeout)
        if returncode != 0:
            raise ClusterFailure("redis-cli --cluster create failed (%d):\n%s" % (returncode, output))
        self.wait_ok(require_replicas=True, timeout=timeout)
        return self

    def _new_node(self, i, used):
        """Node number i (not started), on ports not in `used` (which it extends)."""
        for attempt in range(20):
            port, bus = quiet_port(), quiet_port()
            if port != bus and not {port, bus} & used:
                break
        used |= {port, bus}
        return ClusterNode(i, port, bus, self.node_timeout_ms)

    def _create(self, args, timeout):
        """Run `redis-cli ARGS` (--cluster create ...); returns (exit code, output)."""
        proc = subprocess.run(["redis-cli"] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
        return proc.returncode, proc.stdout.decode("utf-8", "replace")

    def cleanup(self):
        for nd in self.nodes:
            nd.cleanup()

    def logs(self, lines=30):
        return "\n".join("----- redis %s log -----\n%s" % (nd.addr, nd.log_tail(lines)) for nd in self.nodes)

    # -- views
    def live(self):
        return [nd for nd in self.nodes if nd.alive()]

    def by_id(self, node_id):
        for nd in self.nodes:
            if nd.node_id == node_id:
                return nd
        raise KeyError(node_id)

    def by_addr(self, addr):
        """The node at 'ip:port' (as CLUSTER SLOTS, MOVED and ASK name it)."""
        for nd in self.nodes:
            if nd.addr == addr:
                return nd
        raise KeyError(addr)

    def seeds(self, nodes=None):
        """'ip:p1,ip:p2,...' for --redis-cluster (all nodes by default)."""
        return ",".join(nd.addr for nd in (nodes if nodes is not None else self.nodes))

    def _any_view(self):
        last = None
        for nd in self.live():
            try:
                return nd.view()
            except (OSError, EOFError, RuntimeError) as e:
                last = e
        raise ClusterFailure("no live node answers CLUSTER NODES (last: %r)" % (last,))

    def masters(self):
        """Live masters that own slots, in port order (one node's view, after wait_ok all agree)."""
        view = self._any_view()
        out = [self.by_id(i) for i, v in view.items() if v["role"] == "master" and v["slots"]
               and "fail" not in v["flags"]]
        return sorted((m for m in out if m.alive()), key=lambda m: m.port)

    def replicas_of(self, master):
        view = self._any_view()
        return [self.by_id(i) for i, v in view.items() if v["master"] == master.node_id]

    def slots_of(self, master):
        return self._any_view()[master.node_id]["slots"]

    def owner(self, slot):
        """The node that owns `slot` in a live node's view."""
        for i, v in self._any_view().items():
            if slot in v["slots"] and "fail" not in v["flags"]:
                return self.by_id(i)
        raise ClusterFailure("slot %d has no owner" % slot)

    def node_for_key(self, key):
        return self.owner(keyslot(key))

    def room_owner(self, room):
        return self.owner(room_slot(room))

    def rooms_on(self, master, n, tag="r"):
        """n fresh room ids whose slot `master` owns."""
        slots = self.slots_of(master)
        out = []
        while len(out) < n:
            r = unique(tag)
            if room_slot(r) in slots:
                out.append(r)
        return out

    # -- commands
    def command(self, key, *args, timeout=5.0):
        """A command about `key`, sent to its owner; MOVED and ASK followed (a few times)."""
        node = self.node_for_key(key)
        asking = False
        for _ in range(5):
            cmds = ([["ASKING"]] if asking else []) + [list(args)]
            reply = node.pipeline(cmds, timeout)[-1]
            if isinstance(reply, RuntimeError):
                msg = str(reply).replace("redis error: ", "")
                if msg.startswith("MOVED ") or msg.startswith("ASK "):
                    node = self.by_addr(msg.split()[2])
                    asking = msg.startswith("ASK ")
                    continue
                if msg.startswith("TRYAGAIN"):
                    time.sleep(0.05)
                    continue
                raise reply
            return reply
        raise ClusterFailure("%r: still redirected after 5 tries" % (args,))

    def stream_ids(self, room, prefix=""):
        """Ids in the room's stream, as its current owner holds them."""
        key = "%sroom:{%s}:log" % (prefix, room)
        return [e[0] for e in (self.command(key, "XRANGE", key, "-", "+") or [])]

    def commandstats(self, nodes=None):
        """{node addr: {command: calls}} of the live nodes (or `nodes`)."""
        return {nd.addr: nd.commandstats() for nd in (nodes or self.live())}

    @staticmethod
    def stats_delta(before, after, command):
        """{node addr: calls of `command` in after minus before}."""
        return {addr: after[addr].get(command, 0) - before.get(addr, {}).get(command, 0) for addr in after}

    # -- waiting for agreement
    def check(self, require_replicas=True):
        """None if the live nodes agree and the cluster is whole, else a string saying what is not yet so."""
        live = self.live()
        live_ids = {nd.node_id for nd in live}
        views = {}
        for nd in live:
            try:
                st = nd.cluster_info().get("cluster_state")
                if st != "ok":
                    return "%s: cluster_state %s" % (nd.addr, st)
                views[nd.addr] = nd.view()
            except (OSError, EOFError, RuntimeError) as e:
                return "%s: %r" % (nd.addr, e)
        norm = None
        for addr, view in views.items():
            for i in live_ids:
                if i not in view:
                    return "%s does not know node %s yet" % (addr, i[:8])
                if view[i]["flags"] & {"fail", "fail?", "handshake", "noaddr"}:
                    return "%s sees live node %s as %s" % (addr, i[:8], ",".join(sorted(view[i]["flags"])))
            owners = {}
            for i, v in view.items():
                for s in v["slots"]:
                    owners[s] = i
            if len(owners) != NSLOTS:
                return "%s: %d slots unassigned" % (addr, NSLOTS - len(owners))
            dead = {i for i in set(owners.values()) if i not in live_ids}
            if dead:
                return "%s: slots still owned by dead node(s) %s" % (addr, ",".join(d[:8] for d in dead))
            mine = {i: (view[i]["role"], view[i]["master"]) for i in live_ids}
            if norm is None:
                norm = (owners, mine)
            elif (owners, mine) != norm:
                return "%s disagrees with the first node about slots or roles" % addr
        if require_replicas:
            owners, roles = norm
            for m in set(owners.values()):
                reps = [self.by_id(i) for i, (role, master) in roles.items() if master == m]
                if not reps:
                    return "master %s has no live replica" % m[:8]
                for r in reps:
                    info = r.info("replication")
                    if info.get("role") != "slave" or info.get("master_link_status") != "up":
                        return "replica %s: role %s link %s" % (r.addr, info.get("role"),
                                                                 info.get("master_link_status"))
        return None

    def wait_ok(self, require_replicas=True, timeout=CLUSTER_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            why = self.check(require_replicas)
            if why is None:
                return
            if time.monotonic() > deadline:
                raise ClusterFailure("cluster not consistent within %.0fs: %s\n%s" % (timeout, why, self.logs(15)))
            time.sleep(0.1)

    # -- faults
    def kill_master(self, master, timeout=CLUSTER_TIMEOUT):
        """kill -9 `master`; wait until one of its replicas owns its slots in every live node's view. Returns
        (the new master, seconds from the kill to that agreement)."""
        slots = self.slots_of(master)
        replicas = {r.node_id for r in self.replicas_of(master)}
        assert slots and replicas, "%r: no slots or no replica to promote" % (master,)
        t0 = time.monotonic()
        master.kill()
        deadline = t0 + timeout
        while True:
            why = self._promoted(slots, replicas)
            if not isinstance(why, str):
                self.wait_ok(require_replicas=False, timeout=max(1.0, deadline - time.monotonic()))
                return why, time.monotonic() - t0
            if time.monotonic() > deadline:
                raise ClusterFailure("no promotion within %.0fs of killing %s: %s\n%s"
                                     % (timeout, master.addr, why, self.logs(15)))
            time.sleep(0.05)

    def _promoted(self, slots, replicas):
        new = None
        for nd in self.live():
            try:
                view = nd.view()
            except (OSError, EOFError, RuntimeError) as e:
                return "%s: %r" % (nd.addr, e)
            owner = [i for i in replicas if i in view and view[i]["role"] == "master" and slots <= view[i]["slots"]]
            if not owner:
                return "%s: no replica owns the slots yet" % nd.addr
            if new is not None and owner[0] != new:
                return "views disagree on the new master"
            new = owner[0]
        return self.by_id(new)

    def heal(self, timeout=CLUSTER_TIMEOUT):
        """Restart every killed node (a former master comes back as a replica) and wait for a whole cluster."""
        for nd in self.nodes:
            if not nd.alive():
                nd.restart()
        self.wait_ok(require_replicas=True, timeout=timeout)

    def migrate_slot(self, slot, dst, batch=10, pause=0.0, timeout=CLUSTER_TIMEOUT, on_batch=None):
        """Move `slot` from its owner to master `dst` as redis-cli --cluster reshard does: IMPORTING on dst,
        MIGRATING on the source, MIGRATE the keys `batch` at a time (sleeping `pause` between batches, so traffic
        meets the slot half moved), then SETSLOT NODE on dst, the source and every other master; wait until every
        live node agrees. on_batch(keys) is called after each batch. Returns the number of keys moved."""
        src = self.owner(slot)
        assert src is not dst, "slot %d is already on %s" % (slot, dst.addr)
        self._ok(dst.command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.node_id))
        self._ok(src.command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.node_id))
        moved = 0
        deadline = time.monotonic() + timeout
        while True:
            moved += self._migrate_keys(src, dst, slot, batch, pause, on_batch)
            self._ok(dst.command("CLUSTER", "SETSLOT", slot, "NODE", dst.node_id))
            try:
                self._ok(src.command("CLUSTER", "SETSLOT", slot, "NODE", dst.node_id))
                break
            except RuntimeError as e:   # a key arrived on the source meanwhile: move it too
                if "still hold keys" not in str(e) or time.monotonic() > deadline:
                    raise
        for m in self.masters():
            if m is not src and m is not dst:
                with contextlib.suppress(RuntimeError):
                    m.command("CLUSTER", "SETSLOT", slot, "NODE", dst.node_id)
        while True:
            why = None
            for nd in self.live():
                v = nd.view()
                if slot not in v[dst.node_id]["slots"]:
                    why = "%s does not see slot %d on %s yet" % (nd.addr, slot, dst.addr)
                    break
            if why is None:
                break
            if time.monotonic() > deadline:
                raise ClusterFailure(why)
            time.sleep(0.05)
        self.wait_ok(require_replicas=False, timeout=max(1.0, deadline - time.monotonic()))
        return moved

    def _migrate_keys(self, src, dst, slot, batch, pause, on_batch):
        moved = 0
        while True:
            keys = src.command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                return moved
            reply = src.command("MIGRATE", dst.ip, dst.port, "", 0, 5000, "REPLACE", "KEYS", *keys)
            if reply not in ("OK", "NOKEY"):
                raise ClusterFailure("MIGRATE: %r" % (reply,))
            moved += len(keys)
            if on_batch:
                on_batch(keys)
            if pause:
                time.sleep(pause)

    @staticmethod
    def _ok(reply):
        if reply != "OK":
            raise ClusterFailure("expected OK, got %r" % (reply,))


# ---------------------------------------------------------------------------------------------------------------------
# MONITOR


_MONITOR_RE = re.compile(r'^\+(\d+\.\d+) \[(\d+) ([^\]]+)\] (.*)$')


def _unrepr(s):
    """Redis's sdscatrepr quoted arguments back into strings."""
    out, i, cur, inq = [], 0, [], False
    esc = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "\\": "\\", '"': '"'}
    while i < len(s):
        c = s[i]
        if not inq:
            if c == '"':
                inq, cur = True, []
            i += 1
            continue
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "x" and i + 3 < len(s):
                cur.append(chr(int(s[i + 2:i + 4], 16)))
                i += 4
                continue
            cur.append(esc.get(n, n))
            i += 2
            continue
        if c == '"':
            out.append("".join(cur))
            inq = False
            i += 1
            continue
        cur.append(c)
        i += 1
    return out


class Monitor:
    """MONITOR on one node, read by a thread. entries(): [(unix time, source, [command, args...])] where source is
    'lua' for commands a script ran, else the client's address."""

    def __init__(self, node):
        self.node = node
        self._entries = []
        self._lock = threading.Lock()
        self._sock = socket.create_connection(("127.0.0.1", node.port), timeout=5.0)
        self._sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self._file = self._sock.makefile("rb")
        first = self._file.readline()
        assert first.startswith(b"+OK"), first
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        with contextlib.suppress(OSError, ValueError):
            for raw in self._file:
                m = _MONITOR_RE.match(raw.decode("utf-8", "replace").rstrip("\r\n"))
                if not m:
                    continue
                entry = (float(m.group(1)), m.group(3), _unrepr(m.group(4)))
                if entry[2]:
                    entry[2][0] = entry[2][0].lower()
                with self._lock:
                    self._entries.append(entry)

    def entries(self, command=None, channel_prefix=None):
        with self._lock:
            got = list(self._entries)
        if command is not None:
            got = [e for e in got if e[2] and e[2][0] == command.lower()]
        if channel_prefix is not None:
            got = [e for e in got if len(e[2]) > 1 and e[2][1].startswith(channel_prefix)]
        return got

    def close(self):
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(5.0)


# ---------------------------------------------------------------------------------------------------------------------
# Metrics with labels


def parse_metric_labels(sample):
    """'name{a="x",b="y"}' -> ('name', {'a': 'x', 'b': 'y'})."""
    name, _, rest = sample.partition("{")
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
    return name, labels


# ---------------------------------------------------------------------------------------------------------------------
# Test case base


class RedisClusterTestCase(ClusterTestCase):
    """One Redis Cluster per test class (setUpClass; torn down by a class cleanup even if setUpClass fails half way);
    roomcast instances per test, started with --redis-cluster and stopped with SIGTERM (exit 0) in tearDown. A test
    that killed a node leaves it to setUp of the next test, which heals the cluster first."""

    masters = 3
    replicas = 1
    instance_args = ["--log-level", "debug"]
    cluster = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = RedisCluster(cls.masters, cls.replicas)
        cls.addClassCleanup(cls.cluster.cleanup)
        t0 = time.monotonic()
        cls.cluster.start()
        sys.stderr.write("[%s: Redis Cluster of %d nodes up in %.1fs: %s]\n"
                         % (cls.__name__, len(cls.cluster.nodes), time.monotonic() - t0,
                            " ".join("%s=%s" % (m.addr, "master") for m in cls.cluster.masters())))

    def setUp(self):
        self.redis = None
        self.instances = []
        self.peers = []
        self.children = []
        self.proxies = []
        if any(not nd.alive() for nd in self.cluster.nodes):
            self.cluster.heal()

    async def asyncSetUp(self):
        quiet_slow_callback_warnings()

    async def launch(self, instance_id, port=None, args=(), require_up=True, seeds=None):
        """One instance with --redis-cluster `seeds` (all nodes by default), ready when /healthz answers 200."""
        return await super().launch(instance_id, port=port, args=args, require_up=require_up,
                                    broker_args=["--redis-cluster",
                                                 seeds if seeds is not None else self.cluster.seeds()])

    def master_without_control(self):
        """A master that does not hold the instances' bookkeeping keys (roomcast:{roomcast}:...)."""
        ctl = self.cluster.node_for_key("roomcast:{roomcast}:instances")
        return [m for m in self.cluster.masters() if m is not ctl][0]

    def room_to_move(self, tag):
        """A room on the first master's slots, to move to the second: (first master, second master, room, slot)."""
        src, dst = self.cluster.masters()[0], self.cluster.masters()[1]
        room = self.cluster.rooms_on(src, 1, tag)[0]
        return src, dst, room, room_slot(room)

    async def two_members(self, room, first, second):
        """Instances i1 and i2; `first` joined to `room` on i1, `second` on i2. Returns (i1, i2, peer1, peer2)."""
        i1, i2 = await self.launch_n(2)
        p1, _ = await self.member(i1, first, room)
        p2, _ = await self.member(i2, second, room)
        return i1, i2, p1, p2

    async def restart_redis(self):
        raise NotImplementedError("no single Redis here: use self.cluster")

    async def wait_numsub(self, room, n, timeout=TIMEOUT):
        return await self.wait_shardnumsub(room, n, timeout)

    async def wait_shardnumsub(self, room, n, timeout=TIMEOUT, node=None):
        """PUBSUB SHARDNUMSUB room:{R} on the room's owner (or `node`) reaches n."""
        channel = "room:{%s}" % room

        async def probe():
            nd = node or await asyncio.to_thread(self.cluster.room_owner, room)
            return (await asyncio.to_thread(nd.shardnumsub, channel)) == n
        try:
            await wait_until(probe, timeout, "PUBSUB SHARDNUMSUB %s == %d" % (channel, n))
        except AssertionError as e:
            nd = node or self.cluster.room_owner(room)
            raise AssertionError("%s (now %d on %s)" % (e, nd.shardnumsub(channel), nd.addr)) from None

    async def wait_cluster_health(self, inst, status, timeout=TIMEOUT, masters=None):
        """/healthz of `inst` answers `status` with "redis":"cluster" (and "masters": masters if given)."""
        async def probe():
            st, body = await inst.health()
            ok = st == status and body.get("redis") == "cluster"
            if ok and masters is not None:
                ok = body.get("masters") == masters
            return body if ok else None
        body = await wait_until(probe, timeout, "%s /healthz %d redis cluster" % (inst.name, status))
        self.assertEqual(body.get("status"), "ok" if status == 200 else "degraded", body)
        return body

    def dump_broker_logs(self):
        sys.stderr.write("\n%s\n----- end -----\n" % self.cluster.logs(25))

    def thaw_broker(self):
        pass


# ---------------------------------------------------------------------------------------------------------------------
# Delivery checks shared by the tests


def chats_of(peer, room):
    """The chat events `peer` received for `room`, in arrival order."""
    return [m for m in peer.seen if m.get("type") == "chat" and m.get("roomId") == room]


def answers_of(peer):
    """{ref: [ack or error messages echoing it]} of everything `peer` received."""
    out = {}
    for m in peer.seen:
        if m.get("type") in ("ack", "error") and "ref" in m:
            out.setdefault(m["ref"], []).append(m)
    return out


def check_room_log(peers, room, must_ids=(), refused_messages=()):
    """The promise of PROTOCOL.md section 5 over what `peers` received in `room`: each peer's chat ids strictly
    increase (one order, nothing twice), every id in `must_ids` reached every peer, one id means one chat (same
    user and text for everyone), and no text of a refused chat reached anyone. Returns {peer label: [ids]};
    raises AssertionError naming the first violation."""
    seen_as = {}
    out = {}
    refused = set(refused_messages)
    for p in peers:
        evs = chats_of(p, room)
        ids = [e["id"] for e in evs]
        for prev, cur in zip(evs, evs[1:]):
            if id_parts(cur["id"]) <= id_parts(prev["id"]):
                raise AssertionError("%s: %s after %s in %s (out of order or twice: %r then %r)"
                                     % (p.label, cur["id"], prev["id"], room, prev["message"], cur["message"]))
        for e in evs:
            key = (e["user"]["id"], e["message"])
            if seen_as.setdefault(e["id"], key) != key:
                raise AssertionError("id %s is %r for one member and %r for another" % (e["id"], seen_as[e["id"]], key))
            if e["message"] in refused:
                raise AssertionError("%s got %r, which was answered with an error" % (p.label, e["message"]))
        missing = [i for i in must_ids if i not in set(ids)]
        if missing:
            raise AssertionError("%s: %d acked chat(s) of %s never arrived, first %s (got %d chats)"
                                 % (p.label, len(missing), room, missing[:3], len(ids)))
        out[p.label] = ids
    return out


class ChatTraffic:
    """Chats at a steady rate (all publishers together), round robin over `rooms` and `publishers`, each with a
    unique text that is also its ref. Publishers need not be members (PROTOCOL.md section 3). Answers are read
    from the publishers' logs (Peer.seen), with the time each arrived."""

    def __init__(self, publishers, rooms, rate=20.0, tag="t"):
        self.publishers = list(publishers)
        self.rooms = list(rooms)
        self.interval = 1.0 / rate
        self.tag = tag
        self.sent = []            # dicts: ref, room, peer, t (monotonic time of the send)
        self._task = None
        self._stop = asyncio.Event()

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self):
        k = 0
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stop.is_set():
            room = self.rooms[k % len(self.rooms)]
            peer = self.publishers[k % len(self.publishers)]
            ref = "%s-%d" % (self.tag, k)
            self.sent.append({"ref": ref, "room": room, "peer": peer, "t": time.monotonic()})
            await peer.chat(room, ref, ref=ref)
            k += 1
            next_at += self.interval
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, next_at - loop.time()))

    async def stop(self):
        self._stop.set()
        if self._task is not None:
            await self._task

    def answers(self):
        """{ref: [(ack or error, monotonic time read)]} over every publisher."""
        out = {}
        for p in self.publishers:
            for m, t in zip(p.seen, p.seen_at):
                if m.get("type") in ("ack", "error") and "ref" in m:
                    out.setdefault(m["ref"], []).append((m, t))
        return out

    async def wait_answered(self, timeout):
        """Until every sent chat has an answer; then each must have exactly one, an ack or `unavailable`.
        Returns {ref: (answer, time read)}."""
        async def probe():
            got = self.answers()
            return all(s["ref"] in got for s in self.sent)
        try:
            await wait_until(probe, timeout, "an answer to each of %d chats" % len(self.sent), interval=0.1)
        except AssertionError as e:
            got = self.answers()
            missing = [s["ref"] for s in self.sent if s["ref"] not in got]
            raise AssertionError("%s: %d unanswered, first %s" % (e, len(missing), missing[:5])) from None
        got = self.answers()
        out = {}
        for s in self.sent:
            answers = got[s["ref"]]
            if len(answers) != 1:
                raise AssertionError("chat %s answered %d times: %r" % (s["ref"], len(answers),
                                                                         [m for m, _ in answers]))
            m = answers[0][0]
            if m["type"] == "error" and m.get("code") != "unavailable":
                raise AssertionError("chat %s: %r" % (s["ref"], m))
            if m["type"] == "ack" and not isinstance(m.get("id"), str):
                raise AssertionError("chat %s: ack without id: %r" % (s["ref"], m))
            out[s["ref"]] = answers[0]
        return out


async def wait_delivered(peers, room, ids, timeout):
    """Until every id in `ids` reached every peer in `room` (then check_room_log decides the rest)."""
    want = set(ids)

    async def probe():
        return all(want <= {e["id"] for e in chats_of(p, room)} for p in peers)
    try:
        await wait_until(probe, timeout, "%d acked chats of %s at every member" % (len(want), room), interval=0.1)
    except AssertionError:
        check_room_log(peers, room, must_ids=ids)   # names who misses what
        raise
