#!/usr/bin/python3
# The standard benchmark set (scripts/bench.sh): roomcast beside its floors and its peers, measured in one
# run, printed as tables and written to docs/benchmarks.md (between its bench.sh markers), docs/bench/*.json
# and gnuplot plots. Rule: every process it starts, it stops (finally + signals); every step has a time
# limit; CPU is utime+stime from /proc/PID/stat of every server process and Redis; the 1-minute load is
# recorded with every run, because figures taken on a busy machine are indicative only.
#
#   bench/bench.py [--smoke] [--build-dir DIR] [--no-doc] [--only floor,roomcast,nchan,socketio,ws]
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")
PEERS = os.path.join(HERE, "peers")
BEGIN, END = "<!-- bench.sh:begin -->", "<!-- bench.sh:end -->"

procs = []  # (Popen, name) of everything started
work = tempfile.mkdtemp(prefix="roomcast-bench-")


def log(*a):
    print(*a, flush=True)


def load1():
    return float(open("/proc/loadavg").read().split()[0])


def cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def meminfo_kb(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    t = time.time() + timeout
    while time.time() < t:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on port %d" % port)


def start(name, argv, env=None, cwd=None):
    out = open(os.path.join(work, name + ".log"), "ab")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                         start_new_session=True)
    procs.append((p, name))
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            p.wait(timeout=6)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
    procs[:] = [(q, n) for q, n in procs if q is not p]


def stop_all():
    for p, _ in list(procs):
        stop(p)


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except OSError:
                pass
    return out


class System:
    """One system under test: its processes, the URLs the bench uses and the PIDs whose CPU counts."""

    def __init__(self, name, desc):
        self.name, self.desc = name, desc
        self.procs, self.pids, self.urls, self.dialect, self.redis_pid = [], [], [], "roomcast", None

    def down(self):
        for p in reversed(self.procs):
            stop(p)
        self.procs = []


def redis(tag):
    port = free_port()
    d = os.path.join(work, tag + "-redis")
    os.makedirs(d, exist_ok=True)
    p = start(tag + "-redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", d, "--maxclients", "20000"])
    wait_port(port)
    return p, port


def up(name, b, instances=2, ping=None):
    """Starts a system: floor, roomcast (1 instance standalone, 2 with Redis), nchan, socketio, ws."""
    s = System("%s-%d" % (name, instances), "")
    rport = None
    if instances > 1 and name != "floor":
        rp, rport = redis(s.name)
        s.procs.append(rp)
        s.redis_pid = rp.pid
    for i in range(instances):
        port = free_port()
        if name == "floor":
            argv = [b["floor"], "--port", str(port)] + (["--ping-interval", str(ping)] if ping else [])
            p = start("%s-%d" % (s.name, i), argv)
            s.urls.append("ws://127.0.0.1:%d/ws" % port)
            pids = [p.pid]
        elif name == "roomcast":
            argv = [b["roomcast"], "--host", "127.0.0.1", "--port", str(port), "--rate", "100000", "--log-level", "warn",
                    "--max-connections", "30000"] + (["--redis", "redis://127.0.0.1:%d" % rport] if rport else []) + \
                   (["--ping-interval", str(ping)] if ping else []) + b.get("roomcast_args", [])
            p = start("%s-%d" % (s.name, i), argv)
            s.urls.append("ws://127.0.0.1:%d/ws" % port)
            pids = [p.pid]
        elif name == "nchan":
            d = os.path.join(work, "%s-%d" % (s.name, i))
            os.makedirs(d, exist_ok=True)
            conf = open(os.path.join(PEERS, "nchan.conf.in")).read()
            conf = conf.replace("@PORT@", str(port)).replace("@PREFIX@", d)
            conf = conf.replace("@REDIS_UPSTREAM@", "  upstream redis_server { nchan_redis_server redis://127.0.0.1:%d; }" % rport if rport else "")
            conf = conf.replace("@REDIS_PASS@", "      nchan_redis_pass redis_server;" if rport else "")
            conf = conf.replace("@PING@", str(ping or 0))
            with open(os.path.join(d, "nginx.conf"), "w") as f:
                f.write(conf)
            p = start("%s-%d" % (s.name, i), ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")])
            s.urls.append("ws://127.0.0.1:%d/room/{room}" % port)
            s.dialect = "nchan"
            pids = [p.pid]
        else:  # socketio, ws
            env = dict(os.environ, PORT=str(port), NODE_ENV="production")
            if rport:
                env["REDIS_URL"] = "redis://127.0.0.1:%d" % rport
            if ping:
                env["PING_MS"] = str(int(ping * 1000))
            p = start("%s-%d" % (s.name, i), ["node", os.path.join(PEERS, name + ".js")], env=env, cwd=PEERS)
            if name == "socketio":
                s.urls.append("ws://127.0.0.1:%d/socket.io/?EIO=4&transport=websocket" % port)
                s.dialect = "socketio"
            else:
                s.urls.append("ws://127.0.0.1:%d/ws" % port)
            pids = [p.pid]
        s.procs.append(p)
        wait_port(port, 15)
        if name == "nchan":
            time.sleep(0.2)
            pids += children(p.pid)  # the worker does the work; the master is counted too
        s.pids += pids
    if s.redis_pid:
        s.pids.append(s.redis_pid)
    time.sleep(0.3)
    return s


def result_line(out):
    for line in out.splitlines():
        if line.startswith("RESULT "):
            kv = {}
            for tok in line.split()[1:]:
                k, _, v = tok.partition("=")
                try:
                    kv[k] = float(v) if re.fullmatch(r"-?[0-9.]+(e[-+]?[0-9]+)?", v) else v
                except ValueError:
                    kv[k] = v
                m = re.fullmatch(r"cpusec_.*_([0-9]+)", k)
                if m:  # CPU seconds of --pid PID over the run, also as cpus_PID (the key of docs/bench/results.json)
                    kv["cpus_" + m.group(1)] = kv[k]
            return kv
    return None


def bench(b, s, mode, args, label, timeout=150):
    argv = [b["bench"], mode] + [x for u in s.urls for x in ("--url", u)] + [x for p in s.pids for x in ("--pid", str(p))]
    if s.dialect != "roomcast":
        argv += ["--dialect", s.dialect]
    argv += [str(a) for a in args] + ["--label", label, "--timeout", str(timeout - 20)]
    l0 = load1()
    t0 = time.time()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        out, rc = r.stdout, r.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), -9
    kv = result_line(out) or {"status": "no_result", "label": label}
    kv.update(system=s.name, load_before=l0, load_after=load1(), seconds=round(time.time() - t0, 1), rc=rc,
              command=" ".join(os.path.basename(argv[0]) if i == 0 else a for i, a in enumerate(argv)))
    report = [l for l in out.splitlines() if not l.startswith("RESULT")]
    with open(os.path.join(work, "bench.out"), "a") as f:
        f.write("\n".join(report) + "\n")
    brief = "%-28s %-9s load %.1f" % (label, kv.get("status"), l0)
    if mode == "fanout":
        brief += "  %9.0f deliveries/s  p50 %.2f p99 %.2f ms  %.3f us CPU/delivery  lost %d" % (
            kv.get("deliveries_per_s", 0), kv.get("p50_ms", 0), kv.get("p99_ms", 0), kv.get("cpu_us_per_delivery", 0), kv.get("lost", 0))
    else:
        brief += "  %d open in %.2f s" % (kv.get("opened", 0), kv.get("open_s", 0))
    log(brief)
    return kv


# ---------------------------------------------------------------- scenarios

def sc_fanout(b, cfg, systems, R):
    """Fan-out in one room of 100 members, 2 publishers: an open-loop load sweep and a saturated run."""
    for name, inst in systems:
        s = up(name, b, inst)
        try:
            # A warm-up run, not recorded: Node's JIT, nginx's and roomcast's first allocations.
            bench(b, s, "fanout", ["--members", 100, "--publishers", 2, "--messages", cfg["warmup"], "--size", 100, "--window", 16],
                  "%s warm-up" % s.name)
            rates = cfg["rates"] if name in ("floor", "roomcast") else cfg["peer_rates"]
            for rate in rates:
                msgs = max(10, int(rate * cfg["light_s"] / 2))
                kv = bench(b, s, "fanout", ["--members", 100, "--publishers", 2, "--messages", msgs, "--size", 100,
                                            "--rate", rate, "--window", 256], "%s light %d/s" % (s.name, rate))
                kv.update(scenario="fanout-light", offered=rate * 100)
                R.append(kv)
            msgs = cfg["sat_msgs"].get(name, 5000)
            kv = bench(b, s, "fanout", ["--members", 100, "--publishers", 2, "--messages", msgs, "--size", 100, "--window", 32],
                       "%s saturated" % s.name)
            kv.update(scenario="fanout-saturated", offered=0)
            R.append(kv)
        finally:
            s.down()


def sc_talk(b, cfg, systems, R):
    """Rooms of 8 where every member talks (open loop)."""
    for name, inst in systems:
        if name == "nchan":
            continue
        s = up(name, b, inst)
        try:
            m, rate = cfg["talk_members"], cfg["talk_rate"]
            msgs = max(1, int(rate * cfg["light_s"] / m))
            kv = bench(b, s, "fanout", ["--members", m, "--rooms", m // 8, "--talk", 1, "--messages", msgs, "--size", 100,
                                        "--rate", rate, "--window", 4], "%s rooms of 8" % s.name)
            kv.update(scenario="talk8", offered=rate * 8)
            R.append(kv)
        finally:
            s.down()


def sc_idle(b, cfg, systems, R):
    """Idle joined connections with pings on: memory and CPU per connection, servers and Redis together.
    Several bench processes (each under the 20,000-descriptor limit) spread over the instances."""
    for name, inst in systems:
        s = up(name, b, inst, ping=cfg["ping"])
        try:
            nproc = cfg["idle_procs"].get(name, 1)
            per = cfg["idle_conns"]
            before = {p: rss_kb(p) for p in s.pids}
            slab0 = meminfo_kb("Slab")
            argv0 = [b["bench"], "idle", "--connections", str(per), "--rooms", str(per // 10), "--hold", str(cfg["idle_hold"] + 30),
                     "--timeout", "150"] + [x for u in s.urls for x in ("--url", u)]
            if s.dialect != "roomcast":
                argv0 += ["--dialect", s.dialect]
            l0 = load1()
            t0 = time.time()
            runs = [subprocess.Popen(argv0 + ["--label", "%s idle %d" % (s.name, k), "--source", "127.0.%d.1" % (20 + k), "--sources", "16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True) for k in range(nproc)]
            # Held once every process says so (stderr "holding"), then CPU over cfg idle_hold seconds.
            errs = [""] * nproc
            import selectors
            sel = selectors.DefaultSelector()
            for k, r in enumerate(runs):
                sel.register(r.stderr, selectors.EVENT_READ, k)
            held = set()
            deadline = time.time() + 120
            while len(held) < nproc and time.time() < deadline:
                for key, _ in sel.select(timeout=1):
                    line = key.fileobj.readline()
                    errs[key.data] += line
                    if "holding" in line:
                        held.add(key.data)
                if any(r.poll() is not None for r in runs):
                    break
            t_open = time.time() - t0
            opened = sum(int(m.group(1)) for e in errs for m in [re.search(r"idle: (\d+) connections open", e)] if m)
            c0 = {p: cpu_s(p) for p in s.pids}
            time.sleep(cfg["idle_hold"])
            c1 = {p: cpu_s(p) for p in s.pids}
            after = {p: rss_kb(p) for p in s.pids}
            slab1 = meminfo_kb("Slab")
            for r in runs:
                try:
                    os.killpg(r.pid, signal.SIGINT)
                except OSError:
                    pass
            for r in runs:
                try:
                    r.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(r.pid, signal.SIGKILL)
                    r.communicate()
            grow = sum(after[p] - before[p] for p in s.pids)
            redis_grow = (after[s.redis_pid] - before[s.redis_pid]) if s.redis_pid else 0
            kv = dict(mode="idle", scenario="idle", system=s.name, label="%s idle" % s.name, opened=opened, open_s=round(t_open, 2),
                      status="ok" if opened == per * nproc else "incomplete", ping_s=cfg["ping"], hold_s=cfg["idle_hold"],
                      bytes_per_conn=round(grow * 1024 / max(opened, 1)), redis_bytes_per_conn=round(redis_grow * 1024 / max(opened, 1)),
                      cpu_us_per_conn_s=round(sum(c1[p] - c0[p] for p in s.pids) * 1e6 / max(opened, 1) / cfg["idle_hold"], 3),
                      slab_bytes_per_pair=round((slab1 - slab0) * 1024 / max(opened, 1)), load_before=l0, load_after=load1(),
                      processes=nproc, instances=inst,
                      command=" ".join(["roomcast-bench"] + argv0[1:]) + " (x%d processes at once)" % nproc)
            log("%-28s %-9s load %.1f  %d open in %.1f s  %d B/conn (Redis %d)  %.2f us CPU per conn per s  slab %d B/pair" % (
                kv["label"], kv["status"], l0, opened, t_open, kv["bytes_per_conn"], kv["redis_bytes_per_conn"], kv["cpu_us_per_conn_s"],
                kv["slab_bytes_per_pair"]))
            R.append(kv)
        finally:
            s.down()


def sc_upgrades(b, cfg, R):
    """Connect-and-upgrade rate: the floor, roomcast without and with a JWT (HS256)."""
    secret = "bench-secret-0123456789abcdef"
    token = subprocess.run([b["roomcast"], "token", "--secret", secret, "--sub", "bench", "--ttl", "3600"], capture_output=True,
                           text=True, timeout=10).stdout.strip()
    cases = [("floor", [], None), ("roomcast", [], None), ("roomcast", ["--jwt-secret", secret], token)]
    for name, extra, tok in cases:
        b2 = dict(b, roomcast_args=extra)
        s = up(name, b2, 1)
        if tok:
            s.urls = [u + "?token=" + tok for u in s.urls]
        try:
            kv = bench(b2, s, "idle", ["--connections", cfg["upgrades"], "--hold", 0, "--concurrency", 256, "--source", "127.0.30.1", "--sources", "16"],
                       "%s upgrades%s" % (s.name, " JWT" if tok else ""))
            opened = kv.get("opened", 0) or 1
            kv.update(scenario="upgrades", jwt=bool(tok), upgrades_per_s=round(opened / max(kv.get("open_s", 1), 1e-6)),
                      cpu_us_per_upgrade=round(kv.get("setup_cpu_s", 0) * 1e6 / opened, 2))
            R.append(kv)
        finally:
            s.down()
    # The token check alone (the server's Verifier in a loop): what a token adds to each upgrade.
    for alg in ("HS256", "RS256", "ES256"):
        n = cfg["verify_n"] if alg == "HS256" else max(cfg["verify_n"] // 10, 1)  # the public-key checks cost 10x more
        out = subprocess.run([b["verify"], "--alg", alg, "--n", str(n)], capture_output=True, text=True, timeout=300)
        m = re.search(r"([\d.]+) us per verify", out.stdout)
        if out.returncode == 0 and m:
            R.append(dict(mode="verify", scenario="verify", system="roomcast", label="verify " + alg, status="ok", alg=alg, us_per_verify=float(m.group(1)),
                          load_before=load1(), command="roomcast-verify-bench --alg %s --n %d" % (alg, n)))
            log("verify %-6s %.2f us per verify" % (alg, float(m.group(1))))
        else:
            log("verify %s failed: %s %s" % (alg, out.stdout.strip(), out.stderr.strip()))


def sc_bigroom(b, cfg, R):
    """One room of 10,000 members: join cost (server CPU per join, at 1,000 and 10,000) and fan-out."""
    for name in ("floor", "roomcast"):
        for members in cfg["big"]:
            s = up(name, b, 1)
            try:
                msgs = max(20, int(cfg["big_deliveries"] / members))
                kv = bench(b, s, "fanout", ["--members", members, "--publishers", 1, "--messages", msgs, "--size", 100, "--window", 8,
                                            "--concurrency", 512, "--source", "127.0.31.1", "--sources", "16"], "%s room of %d" % (s.name, members), timeout=240)
                kv.update(scenario="bigroom", offered=0)
                R.append(kv)
            finally:
                s.down()


def sc_redis(b, cfg, R):
    """redis-benchmark on a fresh Redis: PUBLISH and roomcast's chat EVAL (the script read from the source)."""
    src = open(os.path.join(ROOT, "server", "redis_broker.cpp")).read()
    m = re.search(r"const char\* kPublishScript =\s*((?:\s*\"(?:[^\"\\]|\\.)*\"(?:\s*//[^\n]*)?)+)\s*;", src)
    script = "".join(json.loads('"%s"' % lit) for lit in re.findall(r"\"((?:[^\"\\]|\\.)*)\"", m.group(1)))
    p, port = redis("redisbench")
    try:
        for name, cmd in (("PUBLISH", ["PUBLISH", "room:bench", "x" * 300]),
                          ("EVAL chat", ["EVAL", script, "2", "room:bench:log", "roomcast:chats:bench", '{"type":"chat","id":"', '","message":"' + "x" * 250 + '"}',
                                         "50", "86400000", "99999999999999", "1", "1000", "PUBLISH", "room:bench"])):
            c0, l0, t0 = cpu_s(p.pid), load1(), time.time()
            out = subprocess.run(["redis-benchmark", "-p", str(port), "-c", "4", "-P", "16", "-n", str(cfg["redis_n"]), "-q", "--csv"] + cmd,
                                 capture_output=True, text=True, timeout=120).stdout
            dt, cpu = time.time() - t0, cpu_s(p.pid) - c0
            rps = float(re.findall(r'"([0-9.]+)"', out.splitlines()[-1])[0]) if out.strip() else 0
            kv = dict(mode="redis", scenario="redis", system="redis-benchmark", label=name, requests=cfg["redis_n"], rps=rps,
                      redis_cpu_us_per_op=round(cpu * 1e6 / cfg["redis_n"], 3), load_before=l0, load_after=load1(), status="ok" if rps else "failed",
                      command="redis-benchmark -p PORT -c 4 -P 16 -n %d -q %s" % (cfg["redis_n"], " ".join(cmd[:1]) + " ..."))
            log("%-28s %-9s load %.1f  %.0f requests/s  %.3f us Redis CPU per op" % (name, kv["status"], l0, rps, kv["redis_cpu_us_per_op"]))
            R.append(kv)
    finally:
        stop(p)


# ---------------------------------------------------------------- report

def pick(R, **kw):
    return [r for r in R if all(r.get(k) == v for k, v in kw.items())]


def fmt(x, nd=2):
    if x is None or x == "":
        return "-"
    if isinstance(x, str):
        return x
    if float(x).is_integer() and abs(x) >= 100:
        nd = 0
    if abs(x) >= 1000:
        return "{:,.0f}".format(x).replace(",", " ")
    return ("%." + str(nd) + "f") % x


def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"


def busy(r):
    return " (*)" if max(r.get("load_before", 0), r.get("load_after", 0)) > 1.5 else ""


def tables(R, meta):
    L = []
    fl = {r["offered"]: r for r in pick(R, scenario="fanout-light", system="floor-1")}
    fs = (pick(R, scenario="fanout-saturated", system="floor-1") or [{}])[0]
    L.append("### Fan-out: one room of 100 members, 2 publish-only connections, 100-byte chats\n")
    L.append("Open loop (`--rate`, chats/s x 100 = deliveries/s offered) and saturated (closed loop, 32 unacked chats per "
             "publisher). CPU is utime+stime of every server process and Redis over the publishing, per delivery; the ratio "
             "is to the raw epoll writer (`roomcast-floor`) at the same load and batch.\n")
    L.append("| system | load | deliveries/s | p50 / p90 / p99 ms | CPU us per delivery | vs floor | lost | 1-min load |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in pick(R, scenario="fanout-light") + pick(R, scenario="fanout-saturated"):
        sat = r["scenario"] == "fanout-saturated"
        f = fs if sat else fl.get(r["offered"], {})
        L.append("| %s | %s | %s | %s / %s / %s | %s | %s | %s | %.1f%s |" % (
            r["system"], "saturated" if sat else "%s/s" % fmt(r["offered"]), fmt(r.get("deliveries_per_s")), fmt(r.get("p50_ms")),
            fmt(r.get("p90_ms")), fmt(r.get("p99_ms")), fmt(r.get("cpu_us_per_delivery"), 3),
            ratio(r.get("cpu_us_per_delivery"), f.get("cpu_us_per_delivery")), fmt(r.get("lost"), 0), r["load_before"], busy(r)))
    talk = pick(R, scenario="talk8")
    if talk:
        ft = (pick(R, scenario="talk8", system="floor-1") or [{}])[0]
        L.append("\n### Rooms of 8 where everyone talks\n")
        L.append("| system | rooms | chats/s offered | deliveries/s | p50 / p99 ms | CPU us per delivery | vs floor | lost | 1-min load |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in talk:
            L.append("| %s | %d x 8 | %s | %s | %s / %s | %s | %s | %s | %.1f%s |" % (
                r["system"], r.get("rooms", 0), fmt(r["offered"] / 8), fmt(r.get("deliveries_per_s")), fmt(r.get("p50_ms")), fmt(r.get("p99_ms")),
                fmt(r.get("cpu_us_per_delivery"), 3), ratio(r.get("cpu_us_per_delivery"), ft.get("cpu_us_per_delivery")),
                fmt(r.get("lost"), 0), r["load_before"], busy(r)))
    idle = pick(R, scenario="idle")
    if idle:
        fi = (pick(R, scenario="idle", system="floor-1") or [{}])[0]
        L.append("\n### Idle joined connections, pings on\n")
        L.append("Each connection joined a room of 10; every server pings every %s s. Memory: VmRSS growth of every server process "
                 "and Redis while held, per connection; CPU: over %s s held. Kernel: the machine's slab growth per loopback pair "
                 "(both ends), not in any RSS. roomcast-2 is loaded by two bench processes at once (19,900 connections per "
                 "instance, the descriptor limit), the others by one (19,900 in all).\n" % (idle[0]["ping_s"], idle[0]["hold_s"]))
        L.append("| system | connections | set up in | bytes per connection (of it Redis) | vs floor | CPU us per connection-second | kernel slab per pair | 1-min load |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in idle:
            L.append("| %s | %s | %.1f s | %s (%s) | %s | %s | %s | %.1f%s |" % (
                r["system"], fmt(r["opened"]), r["open_s"], fmt(r["bytes_per_conn"], 0), fmt(r["redis_bytes_per_conn"], 0),
                ratio(r["bytes_per_conn"], fi.get("bytes_per_conn")), fmt(r["cpu_us_per_conn_s"], 3), fmt(r["slab_bytes_per_pair"], 0),
                r["load_before"], busy(r)))
    up_ = pick(R, scenario="upgrades")
    if up_:
        fu = (pick(R, scenario="upgrades", system="floor-1") or [{}])[0]
        L.append("\n### Upgrades per second (connect + WebSocket handshake, 256 at a time)\n")
        L.append("| server | upgrades/s | vs floor | server CPU us per upgrade | vs floor | 1-min load |")
        L.append("|---|---|---|---|---|---|")
        for r in up_:
            L.append("| %s%s | %s | %s | %s | %s | %.1f%s |" % (
                r["system"], " + JWT (HS256)" if r.get("jwt") else "", fmt(r["upgrades_per_s"]), ratio(r["upgrades_per_s"], fu.get("upgrades_per_s")),
                fmt(r["cpu_us_per_upgrade"]), ratio(r["cpu_us_per_upgrade"], fu.get("cpu_us_per_upgrade")), r["load_before"], busy(r)))
        ver = pick(R, scenario="verify")
        if ver:
            L.append("\nThe token check alone (`roomcast-verify-bench`: the server's `Verifier` in a loop, one core): " +
                     ", ".join("%s %.2f us" % (r["alg"], r["us_per_verify"]) for r in ver) + " per token.")
    big = pick(R, scenario="bigroom")
    if big:
        L.append("\n### One big room (1 publisher, window 8)\n")
        L.append("| system | members | set-up (join) s | server CPU us per join | vs floor | presence events | deliveries/s | CPU us per delivery | vs floor | p99 ms | 1-min load |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in big:
            f = (pick(R, scenario="bigroom", system="floor-1", members=r.get("members")) or [{}])[0]
            L.append("| %s | %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %.1f%s |" % (
                r["system"], fmt(r.get("members")), r.get("setup_s", 0), fmt(r.get("join_cpu_us")), ratio(r.get("join_cpu_us"), f.get("join_cpu_us")),
                fmt(r.get("presence"), 0), fmt(r.get("deliveries_per_s")), fmt(r.get("cpu_us_per_delivery"), 3),
                ratio(r.get("cpu_us_per_delivery"), f.get("cpu_us_per_delivery")), fmt(r.get("p99_ms")), r["load_before"], busy(r)))
    rb = pick(R, scenario="redis")
    if rb:
        L.append("\n### Redis floor (`redis-benchmark`, 4 clients, pipeline 16) against roomcast's Redis\n")
        L.append("| command | requests/s | Redis CPU us per op | roomcast's Redis CPU per chat (2 instances, saturated) | ratio |")
        L.append("|---|---|---|---|---|")
        rc2 = (pick(R, scenario="fanout-saturated", system="roomcast-2") or [{}])[0]
        per_chat = None
        if rc2.get("acked") and rc2.get("redis_pid"):
            per_chat = rc2.get("cpus_%d" % rc2["redis_pid"], 0) * 1e6 / rc2["acked"]
        for r in rb:
            L.append("| %s | %s | %s | %s | %s |" % (r["label"], fmt(r["rps"]), fmt(r["redis_cpu_us_per_op"], 3),
                                                     fmt(per_chat, 3) if r["label"].startswith("EVAL") else "",
                                                     ratio(per_chat, r["redis_cpu_us_per_op"]) if r["label"].startswith("EVAL") else ""))
    L.append("\n(*) the machine's 1-minute load was above 1.5 around this run: other work shared the two cores, so the "
             "figure is indicative only; the ratios (same run, CPU-normalised) hold better than the absolute rates.")
    return "\n".join(L)


def plots(R, outdir):
    """gnuplot: throughput and CPU per delivery against load, latency percentiles, memory per connection."""
    if not shutil.which("gnuplot"):
        log("gnuplot not installed: no plots")
        return []
    os.makedirs(outdir, exist_ok=True)
    systems = []
    for r in pick(R, scenario="fanout-light") + pick(R, scenario="fanout-saturated"):
        if r["system"] not in systems:
            systems.append(r["system"])
    dat = os.path.join(work, "load.dat")
    with open(dat, "w") as f:
        for sname in systems:
            f.write("# %s\n" % sname)
            for r in sorted(pick(R, scenario="fanout-light", system=sname), key=lambda r: r["offered"]) + \
                    pick(R, scenario="fanout-saturated", system=sname):
                f.write("%g %g %g\n" % (r.get("deliveries_per_s", 0) or 1, r.get("cpu_us_per_delivery", 0), r.get("p99_ms", 0)))
            f.write("\n\n")
    lat = os.path.join(work, "lat.dat")
    with open(lat, "w") as f:
        for r in pick(R, scenario="fanout-light"):
            if r["offered"] == 40000:
                f.write('"%s" %g %g %g\n' % (r["system"], r.get("p50_ms", 0), r.get("p90_ms", 0), r.get("p99_ms", 0)))
    mem = os.path.join(work, "mem.dat")
    with open(mem, "w") as f:
        for r in pick(R, scenario="idle"):
            f.write('"%s" %g %g\n' % (r["system"], r["bytes_per_conn"], r["slab_bytes_per_pair"]))
    made = []
    for ext, term in (("png", "pngcairo size 900,520 font ',10'"), ("svg", "svg size 900,520 font 'sans,10'")):
        gp = ["set terminal %s" % term, "set grid", "set key outside right"]
        idx = " ".join("'%s' index %d using 1:2 with linespoints title '%s'," % (dat, i, n) for i, n in enumerate(systems))
        gp += ["set output '%s/cpu-per-delivery.%s'" % (outdir, ext), "set logscale x", "set xlabel 'deliveries/s achieved (last point: saturated)'",
               "set ylabel 'server+Redis CPU us per delivery'", "set title 'Fan-out, one room of 100: CPU per delivery against load'",
               "plot " + idx.rstrip(","),
               "set output '%s/latency-p99.%s'" % (outdir, ext), "set ylabel 'p99 ms'", "set logscale y",
               "set title 'Fan-out, one room of 100: p99 latency against load'",
               "plot " + " ".join("'%s' index %d using 1:3 with linespoints title '%s'," % (dat, i, n) for i, n in enumerate(systems)).rstrip(","),
               "unset logscale", "set style data histograms", "set style histogram clustered gap 1", "set style fill solid 0.8",
               "set xtics rotate by -30", "set xlabel ''",
               "set output '%s/latency-40k.%s'" % (outdir, ext), "set ylabel 'ms'", "set logscale y",
               "set title 'Latency percentiles at 40,000 deliveries/s (publish to delivery)'",
               "plot '%s' using 2:xtic(1) title 'p50', '' using 3 title 'p90', '' using 4 title 'p99'" % lat, "unset logscale y",
               "set output '%s/memory-per-connection.%s'" % (outdir, ext), "set ylabel 'bytes per idle joined connection'",
               "set title 'Idle joined connections, pings on: memory per connection'",
               "plot '%s' using 2:xtic(1) title 'servers + Redis (RSS)', '' using 3 title 'kernel slab, per loopback pair'" % mem]
        script = os.path.join(work, "plots-%s.gp" % ext)
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        r = subprocess.run(["gnuplot", script], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            log("gnuplot (%s): %s" % (ext, r.stderr[-500:]))
    for n in ("cpu-per-delivery", "latency-p99", "latency-40k", "memory-per-connection"):
        if os.path.exists(os.path.join(outdir, n + ".png")):
            made.append(n)
    return made


def write_doc(R, meta, made, doc, json_path):
    body = [BEGIN, "", "## Side by side: floors and peers (`scripts/bench.sh`)", "",
            "Written by `scripts/bench.sh` on %s, commit `%s`, in %.0f s; the machine: %s. The 1-minute load average "
            "was %.2f at the start and %.2f at the end%s. All figures: [bench/results.json](bench/results.json)." % (
                meta["date"], meta["commit"], meta["seconds"], meta["machine"], meta["load_start"], meta["load_end"],
                " (**a shared machine: figures marked (*) are indicative only**)" if max(meta["load_start"], meta["load_end"]) > 1.5 else ""),
            "", "How each system runs (every one on the same two cores as the load generator, each fresh for its scenario):", "",
            "| system | instances | Redis | configuration |", "|---|---|---|---|",
            "| `floor-1` | 1 | - | `roomcast-floor` (bench/floor/floor.c): one epoll thread, answers the upgrade, frames a chat once and writes it to each member, one `write()` per connection per loop turn (as roomcast batches); no JSON parser, history, presence, limits or Redis |",
            "| `roomcast-1` | 1 | - | `roomcast --rate 100000` (every other setting default: history 50, pings 25 s, 1 MiB outbound limit) |",
            "| `roomcast-2` | 2 | 1 | the same with `--redis`: a chat is one EVAL (XADD to the room's stream, PUBLISH, PEXPIRE, the chat record) |",
            "| `nchan-2` | 2 | 1 | nginx 1.22 + libnginx-mod-nchan 1.3.6, `worker_processes 1`, one `nchan_pubsub` location per room (`/room/<id>`), `nchan_use_redis on`, `nchan_message_buffer_length 50`; publishers POST (pipelined HTTP/1.1 keep-alive), a 2xx reply is the ack |",
            "| `socketio-2` | 2 | 1 | Socket.IO 4 (`bench/peers/socketio.js`), WebSocket transport only, no per-message deflate, `@socket.io/redis-adapter`; `socket.join(room)`, `io.to(room).emit(\"chat\", ..)`, acks by callback |",
            "| `ws-2` | 2 | 1 | Node `ws` 8 + `redis` 4 (`bench/peers/ws.js`): rooms in a Map, one SUBSCRIBE per room per instance, a chat is one PUBLISH, `JSON.stringify` and `ws.send` per member, the ws README's heartbeat |",
            "", "Load generator: `roomcast-bench` (C++, one libuv loop per process) speaks each dialect: roomcast's JSON "
            "(also the `ws` peer), Engine.IO v4 (`0{..}` open, `40` connect, `420[\"join\",room]`, `42N[\"chat\",{..}]` acked by `43N`, "
            "pings `2`/`3`), nchan (WebSocket subscribers of `/room/<id>`, HTTP POST publishers). Members and publishers "
            "alternate over the instances; acks are awaited everywhere (window), so no system is measured on fire-and-forget.",
            "", tables(R, meta), ""]
    for n in made:
        body.append("![%s](bench/%s.png)" % (n, n))
        body.append("")
    body.append("Commands: every run's exact `roomcast-bench` command line is in the JSON (`command`).")
    body += ["", END]
    text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
    block = "\n".join(body)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        marker = "\n## Machine"
        i = text.find(marker)
        text = (text[:i] + "\n" + block + "\n" + text[i:]) if i >= 0 else text + "\n" + block + "\n"
    with open(doc, "w") as f:
        f.write(text)
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "runs": R}, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="each scenario for about a second, tiny sizes: checks the plumbing only")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--no-doc", action="store_true", help="print only; do not write docs/")
    ap.add_argument("--only", default="", help="comma list of scenarios: fanout,talk,idle,upgrades,bigroom,redis")
    ap.add_argument("--systems", default="floor,roomcast,nchan,socketio,ws")
    ap.add_argument("--from-json", default="", help="measure nothing: rewrite the docs and plots from a results.json")
    a = ap.parse_args()
    if a.from_json:
        d = json.load(open(a.from_json))
        made = plots(d["runs"], os.path.join(ROOT, "docs", "bench"))
        write_doc(d["runs"], d["meta"], made, os.path.join(ROOT, "docs", "benchmarks.md"), os.path.join(ROOT, "docs", "bench", "results.json"))
        log("rewrote docs/benchmarks.md and %d plots from %s" % (len(made), a.from_json))
        return 0
    b = {"bench": os.path.join(a.build_dir, "bench", "roomcast-bench"), "floor": os.path.join(a.build_dir, "bench", "roomcast-floor"),
         "verify": os.path.join(a.build_dir, "bench", "roomcast-verify-bench"), "roomcast": os.path.join(a.build_dir, "server", "roomcast")}
    for k, v in b.items():
        if not os.access(v, os.X_OK):
            sys.exit("bench.py: %s missing (build first: scripts/bench.sh builds)" % v)
    want = set(a.systems.split(","))
    if not os.path.isdir(os.path.join(PEERS, "node_modules")):
        want -= {"socketio", "ws"}
    if not os.path.exists("/usr/lib/nginx/modules/ngx_nchan_module.so"):
        want -= {"nchan"}
    cfg = dict(rates=[100, 400, 1600, 6400], peer_rates=[400, 1600], light_s=3, sat_msgs={"floor": 15000, "roomcast": 12000, "nchan": 4000,
               "socketio": 1500, "ws": 2500}, talk_members=2000, talk_rate=2000, ping=5, idle_hold=10, idle_conns=19900,
               idle_procs={"roomcast": 2, "floor": 1}, upgrades=10000, verify_n=100000, warmup=1000, big=[100, 1000, 10000], big_deliveries=2000000, redis_n=200000)
    if a.smoke:
        cfg.update(rates=[200], peer_rates=[200], light_s=1, sat_msgs={k: 200 for k in cfg["sat_msgs"]}, talk_members=80, talk_rate=200,
                   ping=1, idle_hold=1, idle_conns=200, idle_procs={"roomcast": 2}, upgrades=200, verify_n=1000, warmup=20, big=[200], big_deliveries=20000, redis_n=2000)
    only = set(a.only.split(",")) if a.only else {"fanout", "talk", "idle", "upgrades", "bigroom", "redis"}
    fan_systems = [(n, 1 if n == "floor" else 2) for n in ("floor", "roomcast", "nchan", "socketio", "ws") if n in want]
    if "roomcast" in want:
        fan_systems.insert(1, ("roomcast", 1))
    meta = dict(date=datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), load_start=load1(), smoke=a.smoke,
                commit=subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
                machine="%d cores (%s), %d GiB, kernel %s, open-file limit %s" % (
                    os.cpu_count(), next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
                    round(meminfo_kb("MemTotal") / 1048576), os.uname().release, subprocess.run(["bash", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip()),
                config=cfg, work=work)
    log("bench: %s; load %.2f; logs in %s" % (meta["machine"], meta["load_start"], work))
    R = []
    t0 = time.time()

    def on_signal(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        if "redis" in only:
            sc_redis(b, cfg, R)
        if "fanout" in only:
            sc_fanout(b, cfg, fan_systems, R)
        if "talk" in only:
            sc_talk(b, cfg, fan_systems, R)
        if "upgrades" in only and "roomcast" in want:
            sc_upgrades(b, cfg, R)
        if "bigroom" in only and "roomcast" in want:
            sc_bigroom(b, cfg, R)
        if "idle" in only:
            sc_idle(b, cfg, [("floor", 1)] + [(n, 2) for n in ("roomcast", "nchan", "socketio", "ws") if n in want], R)
    finally:
        stop_all()
    for r in R:  # which pid was Redis, for the Redis share of a run
        if r.get("system", "").endswith("-2"):
            pids = [int(k[5:]) for k in r if k.startswith("cpus_")]
            if pids:
                r["redis_pid"] = pids[-1]
    meta.update(seconds=time.time() - t0, load_end=load1())
    log("\n" + tables(R, meta))
    bad = [r["label"] for r in R if r.get("status") not in ("ok",)]
    if bad:
        log("\nnot ok: %s (logs in %s)" % (", ".join(bad), work))
    if not a.no_doc and not a.smoke:
        made = plots(R, os.path.join(ROOT, "docs", "bench"))
        write_doc(R, meta, made, os.path.join(ROOT, "docs", "benchmarks.md"), os.path.join(ROOT, "docs", "bench", "results.json"))
        log("wrote docs/benchmarks.md, docs/bench/results.json and %d plots (%.0f s)" % (len(made), time.time() - t0))
    return 1 if bad and a.smoke else 0


if __name__ == "__main__":
    sys.exit(main())
