#!/usr/bin/python3
# The cost of token verification: upgrades per second and server CPU per upgrade, without a token,
# with an HS256 token and with an ES256 token (keys made with the openssl CLI). Prints one line each.
#
#   /usr/bin/python3 bench/upgrades.py [--connections 3000] [--rounds 3]
#
# Each round: a fresh standalone roomcast (auth off, or --jwt-secret, or --jwt-public-key), then
# roomcast-bench idle opens CONNECTIONS WebSockets with ?token=, 256 at a time; the server's
# user+system CPU over the opening, divided by the connections, is its cost per upgrade (the client's
# cost is not in it). Loopback only; everything it starts, it stops.
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from roomcast_harness import free_port  # noqa: E402
from test_auth import claims, hs256, make_keypair, signed_pem  # noqa: E402

ROOT = os.path.join(HERE, "..")
BIN = os.environ.get("ROOMCAST_BIN") or os.path.join(ROOT, "build", "server", "roomcast")
BENCH = os.path.join(ROOT, "build", "bench", "roomcast-bench")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(kind, args, token, connections):
    port = free_port()
    srv = subprocess.Popen([BIN, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warn",
                            "--max-connections", str(connections * 2)] + args,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        url = "ws://127.0.0.1:%d/ws" % port + ("?token=" + token if token else "")
        cpu0 = cpu_seconds(srv.pid)
        out = subprocess.run([BENCH, "idle", "--url", url, "--connections", str(connections), "--hold", "0"],
                             capture_output=True, text=True, timeout=120).stdout
        m = re.search(r"opened\s+(\d+) open, (\d+) failed, in ([0-9.]+) s", out)
        cpu = cpu_seconds(srv.pid) - cpu0
        opened, failed, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
        return opened, failed, secs, cpu
    finally:
        srv.terminate()
        srv.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="roomcast-upgrades-")
    secret = "bench-secret-0123456789abcdef"
    ec_priv, ec_pub = make_keypair(tmp, "ec", "ec")
    cases = [
        ("no token", [], None),
        ("HS256", ["--jwt-secret", secret], hs256(claims(ttl=3600), key=secret, kid=None)),
        ("ES256", ["--jwt-public-key", ec_pub], signed_pem(claims(ttl=3600), ec_priv, "ES256")),
    ]
    print("upgrades: %s, %d connections a round, best of %d rounds" % (BIN, a.connections, a.rounds))
    for name, args, token in cases:
        best = None
        for _ in range(a.rounds):
            r = run(name, args, token, a.connections)
            if best is None or r[3] < best[3]:
                best = r
        opened, failed, secs, cpu = best
        print("%-9s %6.0f upgrades/s (client and server on one machine), server CPU %.1f us per upgrade "
              "(%d opened, %d failed)" % (name, opened / secs if secs else 0, cpu * 1e6 / max(opened, 1), opened, failed))


if __name__ == "__main__":
    main()
