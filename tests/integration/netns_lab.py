# A lab of "hosts" (Linux network namespaces) on one switch (a bridge in a namespace of its own), for black-box tests.
# Rule: nothing in the root namespace but /run/netns entries named <prefix>-<run>-*; all of it goes away in cleanup().
"""Hosts on a private segment, and processes on them.

  * available(): None when this machine can build a lab (root, `ip netns`), else the reason it cannot.
  * sweep_leftovers(prefix): removes the namespaces (and kills the processes in them) of earlier runs with this
    prefix whose test process is gone; a run still going (its pid alive) is left alone.
  * NetnsLab(prefix): add_host(name) -> Host with its own address (10.213.47.<n>/24 by default: the segment exists
    only inside the lab's namespaces, so it cannot clash with the machine's own networks); cut(name) / restore(name)
    take the host's switch port down and up (the host keeps its address; its packets are dropped, like a pulled
    cable); cleanup() stops every process in every lab namespace and deletes the namespaces (and with them the
    bridge and the veth pairs).
  * Host: argv(cmd) (the command run inside the host), popen(cmd), run(cmd), http_get(port, path), connect(port)
    (a TCP socket of the test process, made inside the host: RESP to a Redis there without spawning redis-cli).
  * HostRedis: a redis-server on a host (several per host on distinct ports, e.g. for a Redis Cluster; extra args;
    bound to all addresses or to one); command(*args) over Host.connect.
  * HostClusterNode / HostRedisCluster: redis_cluster_harness's ClusterNode / RedisCluster on lab hosts: nodes
    spread round robin over one or more hosts, each bound to and announcing its host's address (so CLUSTER SLOTS
    names addresses other hosts reach), created with `redis-cli --cluster create` run on the first host; masters(),
    rooms_on(), kill_master() (kill -9, wait for the promotion), heal(), check() ... as for the local cluster.
  * HostRoomcast: a roomcast instance on a host (RoomcastServer: SIGTERM, exit 0 and a clean log on stop()), with
    --redis URL or other broker arguments (--redis-cluster SEEDS).
  * Agent: a helper process on a host (netns_agent.py) that holds WebSocket clients and makes HTTP requests there;
    Agent.peer() returns a RemotePeer, which has the same API as cluster_harness.Peer (take, answer, chat_acked ...).

Typical use (see test_netns_hosts.py):
    lab = NetnsLab("rcnetns"); self.addCleanup(lab.cleanup)
    redis = lab.add_host("redis"); app = lab.add_host("app1"); client = lab.add_host("client")
    r = HostRedis(redis).start(); inst = HostRoomcast(app, r.url, "app1").start()
    agent = await Agent.start(client); peer = await agent.peer(inst.ws_url(), "alice")
"""

import asyncio
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import socket
import tempfile
import threading
import time
import types
import unittest

from cluster_harness import Peer, chat_key, id_parts, user
from redis_cluster_harness import (NODE_TIMEOUT_MS, ClusterNodeViews, RedisCluster, cluster_node_args,
                                   resp_pipeline)
from roomcast_harness import (STARTUP_TIMEOUT, TIMEOUT, RoomcastServer, ServerError, _resp_read,
                              quiet_slow_callback_warnings, stop_process)

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT_SCRIPT = os.path.join(HERE, "netns_agent.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# One GET, printed as "<status>\n<body>": readiness checks from inside a host, without an agent.
HTTP_GET_SNIPPET = r"""
import socket, sys
host, port, path, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
with socket.create_connection((host, port), timeout=timeout) as s:
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (path, host, port)).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
head, _, body = data.partition(b"\r\n\r\n")
sys.stdout.write(head.split(b" ", 2)[1].decode() + "\n" + body.decode("utf-8", "replace"))
"""


# ---------------------------------------------------------------------------------------------------------------------
# The machine


def _ip(*args, check=True, timeout=10):
    """Run `ip ARGS`; returns stdout. Raises RuntimeError with ip's message when check and it fails."""
    r = subprocess.run(["ip"] + [str(a) for a in args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: exit %d: %s" % (" ".join(map(str, args)), r.returncode, r.stderr.strip()))
    return r.stdout


def available():
    """None if a lab can be built here, else why not (for skipTest)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root (creates network namespaces with `ip netns`)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    probe = "rcnetns-probe-%d" % os.getpid()
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return "`ip netns add` does not work here: %s" % e
    try:
        r = subprocess.run(["ip", "netns", "exec", probe, "true"], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return "`ip netns exec` does not work here: %s" % r.stderr.strip()
        try:
            _ip("-n", probe, "link", "add", "br0", "type", "bridge")
            _ip("-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        except RuntimeError as e:
            return "bridges or veth pairs cannot be created here: %s" % e
    finally:
        _ip("netns", "del", probe, check=False)
    return None


_CLONE_NEWNET = 0x40000000
_libc = None


def connect_in(ns, addr, timeout=5.0):
    """A TCP socket connected to `addr` (host, port) from inside network namespace `ns`. A socket belongs for life
    to the namespace it was made in, so it is made by a short-lived thread that setns(2)s into `ns` (a thread's
    own network namespace; the test process's other threads stay where they are) and ends there."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    out = {}

    def work():
        try:
            fd = os.open("/run/netns/%s" % ns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, "setns(%s): %s" % (ns, os.strerror(err)))
            finally:
                os.close(fd)
            out["sock"] = socket.create_connection(addr, timeout=timeout)
        except BaseException as e:  # noqa: BLE001 -- raised in the caller
            out["error"] = e

    t = threading.Thread(target=work, name="connect-in-%s" % ns, daemon=True)
    t.start()
    t.join(timeout + 5)
    if "sock" in out:
        return out["sock"]
    if "error" in out:
        raise out["error"]
    raise OSError("connect to %s:%d in %s: no answer within %.0fs" % (addr[0], addr[1], ns, timeout + 5))


def list_netns():
    """Names of the named network namespaces (`ip netns list`)."""
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _pids_in(ns):
    out = _ip("netns", "pids", ns, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def _kill_all_in(ns, grace=5.0):
    """SIGTERM every process in namespace `ns`, SIGKILL what is left after `grace` seconds; wait until none is."""
    pids = _pids_in(ns)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = _pids_in(ns)
        if not pids:
            return []
    return pids


RUN_ID_RE = re.compile(r"^[0-9]+x[0-9a-f]{4}$")


def _run_alive(run):
    """Whether the test process that made run id `run` (<pid>x<hex>) still exists (and is a Python process)."""
    if not RUN_ID_RE.match(run):
        return True   # not a run id of ours (another prefix that starts like ours): not ours to sweep
    try:
        pid = int(run.split("x", 1)[0])
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"python" in f.read()
    except (ValueError, OSError):
        return False


def sweep_leftovers(prefix):
    """Delete the namespaces named <prefix>-<run>-* of runs whose process is gone, killing what runs in them, and
    their temp folders (<tmp>/<prefix>-<run>-*). Returns the names removed."""
    removed = []
    for ns in list_netns():
        if not ns.startswith(prefix + "-"):
            continue
        run = ns[len(prefix) + 1:].split("-", 1)[0]
        if _run_alive(run):
            continue
        _kill_all_in(ns, grace=1.0)
        _ip("netns", "del", ns, check=False)
        removed.append(ns)
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        if name.startswith(prefix + "-") and not _run_alive(name[len(prefix) + 1:].split("-", 1)[0]):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
            removed.append(os.path.join(tmp, name))
    return removed


# ---------------------------------------------------------------------------------------------------------------------
# Lab and hosts


class Host:
    """One network namespace with one interface (eth0) on the lab's switch, and address `ip`."""

    def __init__(self, lab, name, ns, ip, port_name):
        self.lab = lab
        self.name = name
        self.ns = ns                  # namespace name (ip netns)
        self.ip = ip                  # this host's address on the segment
        self.port_name = port_name    # its veth end on the switch (in the switch namespace)

    def __repr__(self):
        return "<Host %s %s (netns %s)>" % (self.name, self.ip, self.ns)

    def argv(self, cmd):
        """The argv that runs `cmd` (a list) inside this host. `ip netns exec` execs the command: the pid is its."""
        return ["ip", "netns", "exec", self.ns] + [str(c) for c in cmd]

    def popen(self, cmd, **kw):
        """Start `cmd` inside this host (subprocess.Popen keywords); cleanup() stops it if nobody else did."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(self.argv(cmd), **kw)
        self.lab.procs.append(proc)
        return proc

    def run(self, cmd, timeout=10, check=False, **kw):
        """Run `cmd` inside this host to its end; returns the CompletedProcess (text output captured)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.argv(cmd), timeout=timeout, check=check, **kw)

    def http_get(self, port, path="/", host="127.0.0.1", timeout=2.0):
        """(status, body text) of GET http://host:port/path made from inside this host. Raises OSError."""
        r = self.run([PYTHON, "-c", HTTP_GET_SNIPPET, host, port, path, timeout], timeout=timeout + 10)
        if r.returncode != 0:
            raise OSError("GET %s:%d%s from %s failed: %s" % (host, port, path, self.name,
                                                             (r.stderr.strip().splitlines() or ["?"])[-1]))
        status, _, body = r.stdout.partition("\n")
        return int(status), body

    def connect(self, port, host=None, timeout=5.0):
        """A TCP socket of this (the test) process connected from inside this host to host:port (default: this
        host's address). Raises OSError."""
        return connect_in(self.ns, (host or self.ip, int(port)), timeout)


class NetnsLab:
    """Hosts (network namespaces) joined by a bridge that lives in a namespace of its own (the switch).

    Namespace names: <prefix>-<pid>x<hex>-<host> (and -switch), unique per run, so parallel runs never meet and
    sweep_leftovers(prefix) can tell a dead run's namespaces from a live one's."""

    def __init__(self, prefix="rcnetns", subnet="10.213.47"):
        self.prefix = prefix
        self.run_id = "%dx%s" % (os.getpid(), secrets.token_hex(2))
        self.subnet = subnet          # first three octets of the /24
        self.hosts = {}               # name -> Host, in creation order
        self.procs = []               # Popen of everything started with Host.popen
        # Logs and data of the lab's processes; named after the run, so a sweep finds those of a killed run.
        self.tmp = tempfile.mkdtemp(prefix="%s-%s-" % (prefix, self.run_id))
        self.switch = "%s-%s-switch" % (prefix, self.run_id)
        self._namespaces = []         # every namespace created (deleted in reverse order)
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _add_ns(self, ns):
        _ip("netns", "add", ns)
        self._namespaces.append(ns)

    def __getitem__(self, name):
        return self.hosts[name]

    def add_host(self, name):
        """A new host on the switch: namespace, lo up, eth0 (veth, other end on the bridge) with the next address."""
        if name in self.hosts:
            raise ValueError("host %r exists" % name)
        index = len(self.hosts) + 1
        if index > 250:
            raise ValueError("a /24 lab holds at most 250 hosts")
        ns = "%s-%s-%s" % (self.prefix, self.run_id, name)
        port = "p%d" % index
        ip = "%s.%d" % (self.subnet, index)
        self._add_ns(ns)
        # Both ends are created straight inside their namespaces: the root namespace never sees them.
        _ip("link", "add", "name", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", port, "master", "br0")
        _ip("-n", self.switch, "link", "set", port, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", "%s/24" % ip, "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        host = Host(self, name, ns, ip, port)
        self.hosts[name] = host
        return host

    def cut(self, name):
        """Pull host `name`'s cable: its switch port goes down (its packets are dropped; its eth0 loses carrier)."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].port_name, "down")

    def restore(self, name):
        _ip("-n", self.switch, "link", "set", self.hosts[name].port_name, "up")

    def link_state(self, name):
        """'UP', 'DOWN', 'LOWERLAYERDOWN'... of host `name`'s eth0, as the host sees it."""
        return _ip("-n", self.hosts[name].ns, "-br", "link", "show", "eth0").split()[1]

    def cleanup(self):
        """Stop every process started in the lab (SIGTERM, then SIGKILL), then delete every namespace (which removes
        the bridge and the veth pairs). Raises AssertionError, after doing all it can, if something stayed."""
        problems = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
        for ns in reversed(self._namespaces):
            left = _kill_all_in(ns)
            if left:
                problems.append("processes %r would not die in %s" % (left, ns))
        for ns in reversed(self._namespaces):
            try:
                _ip("netns", "del", ns)
            except RuntimeError as e:
                problems.append(str(e))
        still = [ns for ns in list_netns() if ns in self._namespaces]
        if still:
            problems.append("namespaces left: %r" % still)
        self._namespaces = []
        shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("lab cleanup: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------------------------------
# Servers on hosts


class HostRedis:
    """A redis-server on a host, listening on all of its addresses (or only on `bind`, e.g. the host's address), no
    persistence. `args` go on its command line (e.g. --cluster-enabled yes): start several on one host on distinct
    ports for a cluster."""

    def __init__(self, host, port=6379, args=(), binary="redis-server", bind="0.0.0.0"):
        self.host = host
        self.port = port
        self.args = [str(a) for a in args]
        self.binary = binary
        self.bind = bind
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="redis-%s-%d-" % (host.name, port), dir=host.lab.tmp)
        self.log_path = os.path.join(self.dir, "redis.log")

    @property
    def url(self):
        return "redis://%s:%d" % (self.host.ip, self.port)

    @property
    def local_ip(self):
        """The address tools on the Redis host reach it at."""
        return "127.0.0.1" if self.bind == "0.0.0.0" else self.bind

    def start(self, timeout=STARTUP_TIMEOUT):
        with open(self.log_path, "ab") as log:
            self.proc = self.host.popen([self.binary, "--port", self.port, "--bind", self.bind,
                                         "--protected-mode", "no", "--save", "", "--appendonly", "no",
                                         "--dir", self.dir] + self.args, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server on %s exited with %s:\n%s" % (self.host.name, self.proc.returncode,
                                                                                self.log()))
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                if self.cli("PING") == "PONG":
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server on %s not ready within %.0fs:\n%s" % (self.host.name, timeout, self.log()))

    def cli(self, *args, timeout=5):
        """redis-cli ARGS run on the Redis host; returns its output, stripped."""
        r = self.host.run(["redis-cli", "-h", self.local_ip, "-p", self.port] + list(args), timeout=timeout)
        return r.stdout.strip()

    def connect(self, timeout=5.0):
        """A socket of the test process connected to this Redis (from inside its host)."""
        return self.host.connect(self.port, self.local_ip, timeout)

    def command(self, *args, timeout=5.0):
        """One RESP command from the test process; returns a simple reply (str, int, None, list)."""
        with self.connect(timeout) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            return _resp_read(s.makefile("rb"))

    def pipeline(self, commands, timeout=5.0):
        """Several commands on one connection (redis_cluster_harness.resp_pipeline): errors returned, not raised."""
        return resp_pipeline(self.port, commands, timeout, connect=self.connect)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        stop_process(self.proc)

    cleanup = stop


class HostClusterNode(ClusterNodeViews, HostRedis):
    """One cluster-enabled redis-server on a lab host, bound to the host's address and announcing it (CLUSTER SLOTS
    and MOVED name ip:port that other hosts reach); cluster bus on port + 10000. Its folder (nodes.conf) survives
    kill(), so restart() rejoins the cluster on the same ports."""

    def __init__(self, host, index, port, node_timeout_ms=NODE_TIMEOUT_MS, args=()):
        self.bus_port = port + 10000
        super().__init__(host, port, bind=host.ip, args=cluster_node_args(self.bus_port, node_timeout_ms) + [
            "--cluster-announce-ip", host.ip] + list(args))
        self.index = index
        self.ip = host.ip
        self.node_id = None

    def start(self, timeout=None):
        HostRedis.start(self, timeout=timeout or STARTUP_TIMEOUT)
        self.node_id = self.command("CLUSTER", "MYID")
        return self

    def restart(self):
        return self.start()

    def kill(self):
        """SIGKILL (`ip netns exec` execs redis-server: the process is the server): no goodbye, data gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()


class HostRedisCluster(RedisCluster):
    """redis_cluster_harness.RedisCluster on lab hosts: masters * (1 + replicas) nodes, node i on hosts[i % H] at
    port base_port + i // H; created with `redis-cli --cluster create` run on hosts[0] (with several hosts it puts
    a master's replicas on other hosts where it can). Everything RedisCluster offers works (masters(), owner(),
    rooms_on(), kill_master(), heal(), command() ...); the lab's cleanup stops whatever is left."""

    def __init__(self, hosts, masters=3, replicas=1, base_port=7000, node_timeout_ms=NODE_TIMEOUT_MS):
        super().__init__(masters, replicas, node_timeout_ms)
        self.hosts = list(hosts)
        self.base_port = base_port

    def _new_node(self, i, used):
        return HostClusterNode(self.hosts[i % len(self.hosts)], i, self.base_port + i // len(self.hosts),
                               self.node_timeout_ms)

    def _create(self, args, timeout):
        r = self.hosts[0].run(["redis-cli"] + args, timeout=timeout, stderr=subprocess.STDOUT, capture_output=False,
                              stdout=subprocess.PIPE)
        return r.returncode, r.stdout

    def on_host(self, host):
        """Nodes on `host` (a Host or its name)."""
        name = getattr(host, "name", host)
        return [nd for nd in self.nodes if nd.host.name == name]


class HostRoomcast(RoomcastServer):
    """roomcast in Redis mode on a host, listening on 0.0.0.0:port there (every host has its own ports). Ready when
    /healthz, asked from inside the host, answers 200 (or 503 too unless require_up). broker_args, if given,
    replace ["--redis", redis_url] (e.g. ["--redis-cluster", cluster.seeds()])."""

    def __init__(self, host, redis_url, instance_id, port=8080, args=(), require_up=True, broker_args=None):
        broker = [str(a) for a in broker_args] if broker_args is not None else ["--redis", redis_url]
        super().__init__(broker + ["--instance-id", instance_id] + [str(a) for a in args], port=port,
                         host="0.0.0.0", name="%s-%s" % (host.name, instance_id))
        self.lab_host = host
        self.instance_id = instance_id
        self.require_up = require_up
        # Its log lives in the lab's folder (swept with it if the test is killed), not in a folder of its own.
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = tempfile.mkdtemp(prefix="roomcast-%s-" % instance_id, dir=host.lab.tmp)
        self.log_path = os.path.join(self.tmp, "%s.log" % self.name)

    def command(self):
        return self.lab_host.argv(super().command())

    READY_POLL = 0.1
    HEALTHZ_ERRORS = (OSError, ValueError, subprocess.SubprocessError)

    def healthz_status(self):
        status, body = self.lab_host.http_get(self.port, "/healthz")   # from inside its host
        return status, "status %d %s" % (status, body)

    def wait_ready(self, timeout=STARTUP_TIMEOUT, statuses=None):
        return super().wait_ready(timeout, statuses or ((200,) if self.require_up else (200, 503)))

    def ws_url(self, path="/ws"):
        """The URL other hosts use."""
        return "ws://%s:%d%s" % (self.lab_host.ip, self.port, path)


# ---------------------------------------------------------------------------------------------------------------------
# Clients on hosts


class AgentError(AssertionError):
    pass


class Agent:
    """A netns_agent.py process on a host, driven over its stdin/stdout (one JSON object per line)."""

    def __init__(self, host, proc, log_path):
        self.host = host
        self.proc = proc
        self.log_path = log_path
        self.peers = {}           # connection name -> RemotePeer
        self.notes = []           # "log" events of the agent
        self._pending = {}        # request id -> future
        self._next_id = 0
        self._next_conn = 0
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, host):
        log_path = os.path.join(host.lab.tmp, "agent-%s-%s.log" % (host.name, secrets.token_hex(2)))
        with open(log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(*host.argv([PYTHON, "-u", AGENT_SCRIPT]),
                                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                                        limit=1 << 24)
        return cls(host, proc, log_path)

    def __repr__(self):
        return "<Agent on %s>" % self.host.name

    async def _read(self):
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                obj = json.loads(line)
                if "ev" not in obj:
                    fut = self._pending.pop(obj.get("id"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(obj)
                    continue
                peer = self.peers.get(obj.get("conn"))
                if obj["ev"] == "msg" and peer is not None:
                    peer._on_message(obj["text"])
                elif obj["ev"] == "closed" and peer is not None:
                    peer._on_closed(obj.get("code"), obj.get("reason"))
                else:
                    self.notes.append(obj)
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(AgentError("agent on %s exited: %s" % (self.host.name, self.log())))
            self._pending.clear()
            for peer in self.peers.values():
                if peer.closed is None:
                    peer._on_closed("agent gone", "")

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    async def request(self, op, timeout=TIMEOUT, **fields):
        """Send one request, wait for its reply (a dict); AgentError if the agent answers ok: false."""
        if self._reader.done():
            raise AgentError("agent on %s is gone: %s" % (self.host.name, self.log()))
        self._next_id += 1
        rid = self._next_id
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self.proc.stdin.write((json.dumps(dict(fields, id=rid, op=op)) + "\n").encode())
        await self.proc.stdin.drain()
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._pending.pop(rid, None)
            raise AgentError("agent on %s: no reply to %s %r within %.1fs" % (self.host.name, op, fields,
                                                                              timeout)) from None
        if not reply.get("ok"):
            raise AgentError("agent on %s: %s failed: %s" % (self.host.name, op, reply.get("error")))
        return reply

    async def http_get(self, host, port, path, timeout=2.0):
        """(status, body text) of GET http://host:port/path from this agent's host. AgentError when it fails."""
        reply = await self.request("http", timeout=timeout + 5, host=host, port=port, path=path, timeout_s=timeout)
        return reply["status"], reply["body"]

    async def peer(self, url, label, timeout=TIMEOUT):
        """A WebSocket client to `url`, living on this agent's host. AgentError if it cannot connect."""
        self._next_conn += 1
        conn = "%s#%d" % (label, self._next_conn)
        peer = RemotePeer(self, conn, label, url)
        self.peers[conn] = peer
        try:
            await self.request("connect", timeout=timeout + 5, conn=conn, url=url, timeout_s=timeout)
        except BaseException:
            del self.peers[conn]
            raise
        return peer

    async def close(self):
        """End the agent (EOF on its stdin) and every connection it holds; kill it if it lingers."""
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)


class RemotePeer(Peer):
    """cluster_harness.Peer over an Agent: the WebSocket lives on the agent's host; take(), answer(), chat_acked(),
    hello(), join() ... work as for Peer. abort() resets the TCP connection from the client's side."""

    def __init__(self, agent, conn, label, url):  # noqa: super().__init__ would read a local websocket
        self.agent = agent
        self.conn = conn
        self.label = label
        self.url = url
        self.port = int(url.split(":")[2].split("/")[0])
        self.ws = None
        self.inbox = []
        self.seen = []
        self.seen_at = []         # time.monotonic() at which each message of `seen` was read (from the agent)
        self.closed = None
        self._changed = asyncio.Event()
        self._reader = None

    def __repr__(self):
        return "<RemotePeer %s %s from %s>" % (self.label, self.url, self.agent.host.name)

    def _on_message(self, text):
        msg = json.loads(text)
        assert isinstance(msg, dict), "%s: non-object %r" % (self.label, text[:300])
        self.seen.append(msg)
        self.seen_at.append(time.monotonic())
        self.inbox.append(msg)
        self._changed.set()

    def _on_closed(self, code, reason):
        self.closed = (code, reason)
        self._changed.set()

    async def send(self, obj):
        await self.agent.request("send", conn=self.conn, text=obj if isinstance(obj, str) else json.dumps(obj))

    async def wait_changed(self, timeout):
        """Until a message or the close arrives, or `timeout` seconds."""
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def close(self):
        if self.closed is None:
            with contextlib.suppress(AgentError, ConnectionError):
                await self.agent.request("close", conn=self.conn)

    async def abort(self):
        await self.agent.request("abort", conn=self.conn)


# A member of rooms, through an agent


class LabMember:
    """One user in several rooms through one instance, across reconnections. chats[room] is every chat event of
    that room it was given, live or in the history of a join with `since`, in arrival order."""

    def __init__(self, agent, inst, uid, rooms):
        self.agent = agent
        self.inst = inst
        self.uid = uid
        self.rooms = list(rooms)
        self.peer = None
        self.chats = {r: [] for r in self.rooms}
        self.connections = 0
        self.joined = 0       # joined frames received, over all connections
        self.notes = []       # what happened to its connections, for messages

    async def connect(self):
        """Connect, hello, join every room: with since = the last id seen there if any was."""
        resume = self.connections > 0
        self.peer = await self.agent.peer(self.inst.ws_url(), self.uid)
        self.connections += 1
        await self.peer.hello(user(self.uid))
        last = None
        for r in self.rooms:
            since = self.last_id(r) if resume else None
            if since is None:
                joined = await self.peer.join(r)
                if resume:   # nothing seen in r yet: its history is everything it missed (the room is young)
                    self.notes.append("rejoined %s without since: %d in history" % (r, len(joined["history"])))
            else:
                joined = await self.peer.join(r, since=since)
                assert not joined.get("truncated"), "%s: history of %s after %s truncated: %r" % (
                    self.uid, r, since, joined)
                self.notes.append("rejoined %s with since=%s: %d in history" % (r, since, len(joined["history"])))
            self.joined += 1
            self.chats[r].extend(joined["history"])
            last = joined
        return last

    def last_id(self, room):
        return self.chats[room][-1]["id"] if self.chats[room] else None

    def drain(self):
        """Move the chat events of its rooms that the current connection received into `chats`."""
        keep = []
        for m in self.peer.inbox:
            if m.get("type") == "chat" and m.get("roomId") in self.chats:
                self.chats[m["roomId"]].append(m)
            else:
                keep.append(m)
        self.peer.inbox[:] = keep

    def ids(self, room):
        return [c["id"] for c in self.chats[room]]

    async def wait_ids(self, want, timeout):
        """Until every id in want[room] is in chats[room] for every room; a closed connection is opened again
        (joining with `since` = the last id seen in each room)."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            missing = {r: set(ids) - set(self.ids(r)) for r, ids in want.items()}
            missing = {r: m for r, m in missing.items() if m}
            if not missing:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: chats missing after %.1fs: %s (%s)" % (
                    self.uid, timeout, "; ".join("%s: %d, first %s (has %d)" % (
                        r, len(m), sorted(m, key=id_parts)[:3], len(self.chats[r])) for r, m in missing.items()),
                    "; ".join(self.notes) or "one connection"))
            if self.peer.closed is not None:
                self.notes.append("connection %d closed %r" % (self.connections, self.peer.closed))
                try:
                    await self.connect()
                except (AgentError, AssertionError) as e:
                    self.notes.append("reconnect failed: %s" % e)
                    await asyncio.sleep(0.5)
                continue
            await self.peer.wait_changed(min(left, 0.5))

    def as_peer(self):
        """What redis_cluster_harness.check_room_log reads (label, seen): every chat it was given, in arrival order."""
        return types.SimpleNamespace(label=self.uid, seen=[c for r in self.rooms for c in self.chats[r]])


# Test case base: a lab of hosts, roomcast instances on some of them, agents (WebSocket and HTTP clients) on others.
class NetnsTestCase(unittest.IsolatedAsyncioTestCase):
    """setUp calls lab_setUp(prefix, hosts) (skips the test without root, `ip netns` or redis-server), then start_app
    per instance; asyncSetUp starts an agent on "client" and one inside "app1". tearDown prints the logs when the
    test failed (broker_logs: the subclass's Redis), then stops every instance with SIGTERM (exit 0, clean log)."""

    port = 8080          # every instance listens on it (every host has its own port space)
    log_lines = 80       # of each instance's log, printed when the test failed

    def lab_setUp(self, prefix, hosts):
        why = available()
        if why:
            self.skipTest(why)
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                self.skipTest("needs %s" % tool)
        sweep_leftovers(prefix)
        self.apps = {}
        self.agents = []
        self.lab = NetnsLab(prefix)
        self.addCleanup(self.lab.cleanup)
        for name in hosts:
            self.lab.add_host(name)

    def start_app(self, name, redis_url, args, broker_args=None):
        """roomcast as instance `name` on host `name`, started (ready) and stopped in tearDown."""
        inst = HostRoomcast(self.lab[name], redis_url, name, self.port, args=args, broker_args=broker_args)
        self.addCleanup(inst.cleanup)
        self.apps[name] = inst
        inst.start()
        return inst

    async def asyncSetUp(self):
        quiet_slow_callback_warnings()
        self.client = await self.agent("client")
        self.inside_app1 = await self.agent("app1")   # asks app1's /healthz while its cable is out

    async def agent(self, host):
        a = await Agent.start(self.lab[host])
        self.agents.append(a)
        self.addAsyncCleanup(a.close)
        return a

    def _failed_so_far(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return result is not None and any(t is self for t, _ in list(result.failures) + list(result.errors))

    def broker_logs(self):
        """What to print of the Redis side when the test failed."""
        return ""

    def tearDown(self):
        if self._failed_so_far():
            for inst in self.apps.values():
                sys.stderr.write("\n----- %s log (last %d lines) -----\n%s\n"
                                 % (inst.name, self.log_lines, inst.log_tail(self.log_lines)))
            sys.stderr.write("\n%s\n" % self.broker_logs())
            for a in self.agents:
                sys.stderr.write("\n----- agent on %s -----\n%s\nnotes: %r\n" % (a.host.name, a.log(), a.notes[-10:]))
        errors = []
        for inst in self.apps.values():
            try:
                inst.stop(check=True)   # SIGTERM: exit 0 within 5 s, no sanitizer report
            except ServerError as e:
                errors.append(str(e))
        if errors:
            self.fail("; ".join(errors))

    async def health(self, agent, host_ip, timeout=2.0):
        """(status, body) of /healthz of the instance at host_ip:port, asked by `agent`; (None, error) if no answer."""
        try:
            status, body = await agent.http_get(host_ip, self.port, "/healthz", timeout=timeout)
            return status, json.loads(body)
        except (AgentError, ValueError) as e:
            return None, str(e)

    async def cut_until_down(self, host, agent, chat, cut_min, down_within, down_hold, every):
        """Pull `host`'s cable; then chat(k), k = 0, 1, ..., every `every` s, asking the /healthz of the instance on
        `host` through `agent` (inside it) until it says 503, which must come within down_within; the cable stays
        out at least cut_min and down_hold after that 503. Returns (the 503's body, its time, time of the cut)."""
        self.lab.cut(host)
        t_cut = time.monotonic()
        down_body, t_down, k, st, body = None, None, 0, None, None
        while True:
            await chat(k)
            k += 1
            if down_body is None:
                st, body = await self.health(agent, "127.0.0.1")
                if st == 503:
                    down_body, t_down = body, time.monotonic() - t_cut
            elapsed = time.monotonic() - t_cut
            if down_body is not None and elapsed >= max(cut_min, t_down + down_hold):
                return down_body, t_down, t_cut
            if down_body is None and elapsed > down_within:
                self.fail("%s /healthz not 503 within %.1fs of the cut (last: %r %r)" % (host, down_within, st, body))
            await asyncio.sleep(every)

    async def restore_until_up(self, host, agent, chat, up, what, up_within, every):
        """Plug `host`'s cable back; then chat(k), k = 0, 1, ..., every `every` s until the /healthz of its instance
        (asked through `agent`, inside it) says 200 with a body that up(body) accepts (`what`, for the message),
        within up_within. Returns (that body, how long it took)."""
        self.lab.restore(host)
        t_restore = time.monotonic()
        k = 0
        while True:
            await chat(k)
            k += 1
            st, body = await self.health(agent, "127.0.0.1")
            if st == 200 and up(body):
                return body, time.monotonic() - t_restore
            if time.monotonic() - t_restore > up_within:
                self.fail("%s /healthz not 200%s within %.1fs of the cable's return (last: %r %r)"
                          % (host, what, up_within, st, body))
            await asyncio.sleep(every)

    async def answer_into_cut(self, peer, survived, ref):
        """The answer to chat `ref` sent into the cut on `peer` (the sender's first connection): there is one if
        that connection survived (None if it died first); an error must be `unavailable`."""
        into_cut = None
        try:
            into_cut = await peer.answer(ref, timeout=TIMEOUT)
        except AssertionError:
            self.assertFalse(survived, "alice's connection survived but her chat into the cut got no answer")
        if into_cut is not None and into_cut["type"] != "ack":
            self.assertEqual(into_cut.get("code"), "unavailable", into_cut)
        return into_cut

    def check_same_chats(self, reference_member, others, chats_of, acked, all_ids, into_cut, where=""):
        """One room order, no gap, no duplicate: reference_member (whose link was never cut) has every id of all_ids,
        in id order, each once, every (id, message) of acked, not the chat into the cut if it was refused; each of
        `others` has exactly its sequence. chats_of(member): its chat events of the room. Returns the reference."""
        ref_name = reference_member.uid
        reference = [chat_key(c) for c in chats_of(reference_member)]
        ids = [c[0] for c in reference]
        self.assertEqual(len(ids), len(set(ids)), "%s got a chat%s twice: %r" % (ref_name, where, ids))
        self.assertEqual(ids, sorted(ids, key=id_parts), "%s's chats%s out of id order" % (ref_name, where))
        self.assertEqual(set(all_ids) - set(ids), set(), "acked chats%s %s never got" % (where, ref_name))
        for i, text in acked:
            self.assertIn((i, text), [(c[0], c[2]) for c in reference], "acked chat %r under another id" % text)
        if into_cut is not None and into_cut["type"] == "error":
            self.assertNotIn("alice-into-cut", [c[2] for c in reference], "a chat refused `unavailable` was sent")
        for m in others:
            got = [chat_key(c) for c in chats_of(m)]
            dups = sorted({c for c in got if got.count(c) > 1})
            notes = "; ".join(m.notes) or "one connection"
            self.assertEqual(dups, [], "%s got chats%s twice (%s)" % (m.uid, where, notes))
            self.assertEqual(got, reference, "%s's chats%s differ from %s's (%s)" % (m.uid, where, ref_name, notes))
        return reference
