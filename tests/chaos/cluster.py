# The chaos test's Redis Cluster: six redis-server processes (three masters, one replica each) in the scratch folder.
# Rule: every question about a key is asked of the node that owns the key's slot now (CLUSTER SLOTS of a live node).
"""A real Redis Cluster for chaos.py --redis-cluster.

  * ClusterNode: one redis-server, cluster-enabled, appendonly + appendfsync always (a restarted node keeps its data
    and its nodes.conf), on a port below the ephemeral range with its cluster bus port likewise.
  * RedisCluster: creates the cluster with `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`, reads
    its topology (CLUSTER NODES), waits for it to be whole again (every slot owned by a master that answers, every
    master with a synced replica), and answers "who owns this key now".

Helpers are blocking (the chaos run calls them through asyncio.to_thread).
"""

import contextlib
import os
import subprocess
import sys
import time

# The hash slot functions are the integration tests' (redis_cluster_harness); chaos.py puts that folder on the path
# too, this keeps the module importable on its own.
_INTEGRATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "integration")
if os.path.abspath(_INTEGRATION) not in map(os.path.abspath, sys.path):
    sys.path.insert(0, os.path.abspath(_INTEGRATION))

from redis_cluster_harness import NSLOTS as HASH_SLOTS, keyslot as key_slot, room_slot  # noqa: E402,F401


def initial_master_index(slot, masters=3):
    """Which of the masters `redis-cli --cluster create` gives this slot to (equal contiguous ranges)."""
    per = HASH_SLOTS / masters
    for i in range(masters):
        if slot < round(per * (i + 1)):
            return i
    return masters - 1


def spread_rooms(n, masters=3):
    """n room ids, room i in the slot range of master i % masters at creation (room<i>, else room<i>.<k>)."""
    rooms = []
    for i in range(n):
        want = i % masters
        k = 0
        while True:
            name = "room%d" % i if k == 0 else "room%d.%d" % (i, k)
            if initial_master_index(room_slot(name), masters) == want:
                break
            k += 1
        rooms.append(name)
    return rooms


class NodeInfo:
    """One line of CLUSTER NODES."""

    __slots__ = ("id", "port", "flags", "master_id", "link", "slots", "epoch")

    def __init__(self, line):
        f = line.split()
        self.id = f[0]
        addr = f[1].split("@")[0]
        self.port = int(addr.rsplit(":", 1)[1]) if addr.rsplit(":", 1)[1].isdigit() else None
        self.flags = set(f[2].split(","))
        self.master_id = None if f[3] == "-" else f[3]
        self.epoch = int(f[6])
        self.link = f[7]
        self.slots = []
        for part in f[8:]:
            if part.startswith("["):
                continue      # a slot being imported or migrated
            a, _, b = part.partition("-")
            self.slots.append((int(a), int(b or a)))

    @property
    def is_master(self):
        return "master" in self.flags

    @property
    def failed(self):
        return "fail" in self.flags or "fail?" in self.flags or "noaddr" in self.flags

    def owns(self, slot):
        return any(a <= slot <= b for a, b in self.slots)


def parse_nodes(text):
    return [NodeInfo(line) for line in text.splitlines() if line.strip()]


class RedisCluster:
    """Six nodes (`masters` masters, one replica each) made with redis-cli --cluster create."""

    def __init__(self, node_factory, masters=3, node_timeout_ms=1500):
        self.masters = masters
        self.node_timeout_ms = node_timeout_ms
        self.nodes = [node_factory(i) for i in range(masters * 2)]

    def by_port(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        return None

    def live(self):
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None and not n.frozen]

    def seeds(self):
        return ",".join("127.0.0.1:%d" % n.port for n in self.nodes)

    def create(self):
        out = subprocess.run(["redis-cli", "--cluster", "create"] + ["127.0.0.1:%d" % n.port for n in self.nodes]
                             + ["--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True,
                             timeout=60)
        if out.returncode != 0 or "[OK] All 16384 slots covered" not in out.stdout:
            raise RuntimeError("redis-cli --cluster create failed (%s):\n%s%s" % (out.returncode, out.stdout,
                                                                                  out.stderr))
        return out.stdout

    # -- topology, as one live node sees it
    def topology(self, node=None):
        for n in ([node] if node else []) + self.live():
            with contextlib.suppress(OSError, EOFError, RuntimeError):
                return parse_nodes(n.command("CLUSTER", "NODES", timeout=2.0))
        raise RuntimeError("no cluster node answers CLUSTER NODES")

    def slot_owners(self):
        """{slot: port} of the masters that own a slot and are not flagged failed, from CLUSTER SLOTS of a live
        node (the view a client gets)."""
        for n in self.live():
            try:
                slots = n.command("CLUSTER", "SLOTS", timeout=2.0)
            except (OSError, EOFError, RuntimeError):
                continue
            owners = {}
            for entry in slots or []:
                a, b, master = int(entry[0]), int(entry[1]), entry[2]
                for s in range(a, b + 1):
                    owners[s] = int(master[1])
            return owners
        raise RuntimeError("no cluster node answers CLUSTER SLOTS")

    def owner_of_slot(self, slot):
        for info in self.topology():
            if info.is_master and not info.failed and info.owns(slot):
                return self.by_port(info.port)
        return None

    def owner_of_key(self, key):
        return self.owner_of_slot(key_slot(key))

    def masters_now(self):
        return [self.by_port(i.port) for i in self.topology() if i.is_master and not i.failed and i.slots]

    def replica_synced(self, replica):
        """The replica answers, its link to its master is up and no sync is in progress."""
        try:
            info = replica.command("INFO", "replication", timeout=2.0)
        except (OSError, EOFError, RuntimeError):
            return False
        kv = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return kv.get("role") == "slave" and kv.get("master_link_status") == "up" \
            and kv.get("master_sync_in_progress") == "0"

    def healthy(self):
        """Every node answers and says cluster_state:ok, all slots are owned by live masters, there are `masters`
        masters, each with at least one synced replica. Returns (ok, why-not)."""
        live = self.live()
        if len(live) != len(self.nodes):
            return False, "%d of %d nodes up" % (len(live), len(self.nodes))
        for n in live:
            try:
                info = n.command("CLUSTER", "INFO", timeout=2.0)
            except (OSError, EOFError, RuntimeError) as e:
                return False, "%d: %s" % (n.port, e)
            if "cluster_state:ok" not in info:
                return False, "%d: cluster_state not ok" % n.port
        topo = self.topology()
        masters = [i for i in topo if i.is_master and not i.failed and i.slots]
        if len(masters) != self.masters:
            return False, "%d masters with slots" % len(masters)
        if sum(b - a + 1 for m in masters for a, b in m.slots) != HASH_SLOTS:
            return False, "not every slot owned"
        if any(i.failed for i in topo):
            return False, "a node is flagged failed"
        for m in masters:
            reps = [i for i in topo if i.master_id == m.id and not i.failed]
            if not any(self.replica_synced(self.by_port(r.port)) for r in reps):
                return False, "master %d has no synced replica" % m.port
        return True, ""

    def wait_healthy(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        why = ""
        while time.monotonic() < deadline:
            try:
                ok, why = self.healthy()
            except RuntimeError as e:
                ok, why = False, str(e)
            if ok:
                return True
            time.sleep(0.1)
        raise RuntimeError("Redis Cluster not whole within %.0fs: %s" % (timeout, why))

    def keys_by_owner(self):
        """{key: owning node} for every key of every master, each key read from the node that owns its slot now.
        Also returns the keys some master holds for a slot it does not own (leftovers of a migration)."""
        owners = self.slot_owners()
        found, stray = {}, []
        for info in self.topology():
            if not info.is_master or info.failed:
                continue
            node = self.by_port(info.port)
            for k in node.command("KEYS", "*", timeout=5.0) or []:
                if owners.get(key_slot(k)) == node.port:
                    found[k] = node
                else:
                    stray.append("%s on %d (slot %d owned by %s)" % (k, node.port, key_slot(k),
                                                                     owners.get(key_slot(k))))
        return found, stray

    def cleanup(self):
        for n in self.nodes:
            n.cleanup()

