#!/usr/bin/python3
# Figures for the bounds of docs/architecture.md section 13: what a hostile client or a Redis outage can
# make one instance hold. Prints one line per scenario; runs against any build (ROOMCAST_BIN or --bin).
#
#   /usr/bin/python3 bench/bounds.py                       every scenario against build/server/roomcast
#   /usr/bin/python3 bench/bounds.py --bin OTHER/roomcast --only http_pipeline,joined_size
#
# Scenarios (each starts its own processes on 127.0.0.1 and stops them):
#   http_pipeline   20,000 pipelined GET /app.js on one connection that never reads: RSS growth
#   closing_pings   a flooder closed 1008 keeps sending pings for 2 s without reading: RSS growth
#   churn           200 rooms emptied while one client re-joins a lingering room every 0.85 s: rooms held after
#   redis_down      500 clients join fresh rooms while Redis is down, then close: rooms held after
#   history_memory  standalone, 8,000 chats of 16 KiB to fresh rooms: RSS growth (default --history-memory)
#   joined_size     50 chats of 9,800 control characters into a room: size of a new joiner's `joined`
#   join_cpu        CPU per join of one room at 3,000 members (the server's user+system time)
import argparse
import asyncio
import json
import os
import resource
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import websockets  # noqa: E402  (Debian's python3-websockets)
from roomcast_harness import RedisServer, RoomcastServer  # noqa: E402

MIB = 1024 * 1024


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def metric(port, name):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = (await r.read()).decode(errors="replace")
    w.close()
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def mask_frame(opcode, payload):
    key = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def raw_upgrade(port, rcvbuf=4096):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    return s


def help_text():
    import subprocess
    return subprocess.run([os.environ["ROOMCAST_BIN"], "--help"], capture_output=True, text=True).stdout


def server(args=(), redis=None):
    a = ["--rate", "10000", "--max-rooms", "1000"] + list(args)
    if redis:
        a += ["--redis", redis.url]
    return RoomcastServer(a).start()


async def http_pipeline():
    srv = server()
    try:
        base = rss_kib(srv.proc.pid)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        s.setblocking(False)
        data = b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n" * 20000
        sent, deadline = 0, time.monotonic() + 3
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += s.send(data[sent:sent + 65536])
            except BlockingIOError:
                await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)
        grown = (rss_kib(srv.proc.pid) - base) / 1024
        s.close()
        return "RSS +%.1f MiB (%d of %d request bytes accepted by the kernel)" % (grown, sent, len(data))
    finally:
        srv.stop(check=False)


async def closing_pings():
    srv = server(["--rate", "10"])
    try:
        s = raw_upgrade(srv.port)
        for _ in range(1200):  # over the rate limit: refused, then closed 1008 for flooding
            s.sendall(mask_frame(0x1, b'{"type":"ping"}'))
        base = rss_kib(srv.proc.pid)
        s.setblocking(False)
        frame = mask_frame(0x9, b"x" * 125) * 400
        sent, stop = 0, time.monotonic() + 2.0
        while time.monotonic() < stop:
            try:
                sent += s.send(frame)
            except BlockingIOError:
                await asyncio.sleep(0.001)
            except OSError:
                break
        await asyncio.sleep(0.5)
        grown = (rss_kib(srv.proc.pid) - base) / 1024
        s.close()
        return "RSS +%.1f MiB after %.0f MB of pings" % (grown, sent / 1e6)
    finally:
        srv.stop(check=False)


async def churn():
    redis = RedisServer().start()
    srv = server(redis=redis)
    try:
        churner = await websockets.connect("ws://127.0.0.1:%d/ws" % srv.port)

        async def churn_for(seconds):
            stop = time.monotonic() + seconds
            while time.monotonic() < stop:
                # Back just before its linger ends, gone again at once: the room lingers nearly always.
                await churner.send(json.dumps({"type": "join", "roomId": "churner"}))
                await asyncio.sleep(0.05)
                await churner.send(json.dumps({"type": "leave", "roomId": "churner"}))
                await asyncio.sleep(0.8)

        c = await websockets.connect("ws://127.0.0.1:%d/ws" % srv.port, max_size=None)
        rooms = ["churn-%d" % i for i in range(200)]
        churning = asyncio.ensure_future(churn_for(8.0))
        await asyncio.sleep(0.6)  # the churner's room lingers first
        for r in rooms:
            await c.send(json.dumps({"type": "join", "roomId": r}))
        got = 0
        while got < len(rooms):
            if json.loads(await c.recv()).get("type") == "joined":
                got += 1
        for r in rooms:
            await c.send(json.dumps({"type": "leave", "roomId": r}))
        await churning
        rooms_held = await metric(srv.port, "roomcast_rooms")
        subs = await metric(srv.port, "roomcast_subscriptions")
        await c.close()
        await churner.close()
        return "rooms held %d, subscriptions %d (200 emptied ~6 s earlier while 1 room churned)" % (rooms_held, subs)
    finally:
        srv.stop(check=False)
        redis.cleanup()


async def redis_down():
    redis = RedisServer().start()
    srv = server(redis=redis)
    try:
        redis.stop()
        await asyncio.sleep(4.0)  # the probe notices
        for batch in range(10):
            conns = []
            for i in range(50):
                conns.append(await websockets.connect("ws://127.0.0.1:%d/ws?room=down-%d-%d" % (srv.port, batch, i)))
            for c in conns:
                await c.close()
        await asyncio.sleep(3.0)
        return "rooms held %d after 500 clients joined and closed while Redis was down" % (
            await metric(srv.port, "roomcast_rooms"))
    finally:
        srv.stop(check=False)
        redis.cleanup()


async def history_memory():
    srv = server()
    try:
        base = rss_kib(srv.proc.pid)
        msg = "m" * 16000
        conns = [await websockets.connect("ws://127.0.0.1:%d/ws" % srv.port) for _ in range(4)]
        n = 0
        for k in range(2000):
            for j, c in enumerate(conns):
                await c.send(json.dumps({"type": "chat", "roomId": "h-%d-%d" % (k, j), "message": msg}))
                n += 1
            if k % 50 == 49:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        grown = (rss_kib(srv.proc.pid) - base) / 1024
        for c in conns:
            await c.close()
        return "RSS +%.1f MiB after %d chats (%.0f MiB) to fresh rooms" % (grown, n, n * len(msg) / MIB)
    finally:
        srv.stop(check=False)


async def joined_size():
    srv = server()
    try:
        p = await websockets.connect("ws://127.0.0.1:%d/ws" % srv.port)
        for i in range(50):
            await p.send(json.dumps({"type": "chat", "roomId": "poison", "message": "\x01" * 9800, "ref": i}))
        for _ in range(50):
            await p.recv()
        j = await websockets.connect("ws://127.0.0.1:%d/ws" % srv.port, max_size=None)
        await j.send(json.dumps({"type": "join", "roomId": "poison"}))
        frame = await j.recv()
        ev = json.loads(frame)
        await p.send(json.dumps({"type": "chat", "roomId": "poison", "message": "after"}))
        live = json.loads(await asyncio.wait_for(j.recv(), 5))
        return "joined %.0f KiB, %d history entries, truncated=%s; joiner still open: %s" % (
            len(frame.encode()) / 1024, len(ev["history"]), ev.get("truncated", False), live.get("message") == "after")
    except Exception as e:  # noqa: BLE001 (a closed joiner is a figure, not a crash)
        return "joiner failed: %r" % (e,)
    finally:
        srv.stop(check=False)


async def raw_member(port, uid):
    """A WebSocket member on a raw socket: joins room `big` and then drains what it gets without
    parsing it (a Python WebSocket library would spend more CPU than the server under test)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await r.readuntil(b"\r\n\r\n")
    w.write(mask_frame(0x1, json.dumps({"type": "join", "roomId": "big",
                                        "user": {"id": uid, "name": uid}}).encode()))
    seen = b""
    while b'"type":"joined"' not in seen:
        seen = seen[-64:] + await r.read(65536)

    async def drain():
        try:
            while await r.read(1 << 20):
                pass
        except (OSError, asyncio.CancelledError):
            pass
    return w, asyncio.ensure_future(drain())


async def join_cpu(members=3000, measured=200):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    srv = server(["--max-connections", "100000"] if "max-connections" in help_text() else [])
    conns = []
    try:
        t0 = cpu_seconds(srv.proc.pid)
        for i in range(members):
            if i == members - measured:
                t0 = cpu_seconds(srv.proc.pid)
            conns.append(await raw_member(srv.port, "u%d" % i))
        cpu = cpu_seconds(srv.proc.pid) - t0
        # The listing alone: 200 pipelined GET /rooms/big on one connection (no fan-out in it).
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        t1 = cpu_seconds(srv.proc.pid)
        w.write(b"GET /rooms/big HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
        answers, data = 0, b""
        while answers < 200:  # bodies end without a newline: count status lines in the stream
            data = data[-16:] + await asyncio.wait_for(r.read(1 << 20), 60)
            answers += data.count(b"HTTP/1.1 200 OK")
            data = data[data.rfind(b"HTTP/1.1 200 OK") + 1:] if b"HTTP/1.1 200 OK" in data else data
        listing = cpu_seconds(srv.proc.pid) - t1
        w.close()
        return ("%.2f ms of server CPU per join (the last %d of %d members; each join's presence goes to every "
                "member); %.2f ms per GET /rooms/big (200 pipelined)" % (cpu * 1000 / measured, measured, members,
                                                                         listing * 1000 / 200))
    finally:
        for w, task in conns:
            task.cancel()
            w.transport.abort()
        srv.stop(check=False)


SCENARIOS = {
    "http_pipeline": http_pipeline, "closing_pings": closing_pings, "churn": churn, "redis_down": redis_down,
    "history_memory": history_memory, "joined_size": joined_size, "join_cpu": join_cpu,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", help="roomcast binary (default: $ROOMCAST_BIN or build/server/roomcast)")
    ap.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    a = ap.parse_args()
    os.environ["ROOMCAST_BIN"] = a.bin or os.environ.get("ROOMCAST_BIN") or os.path.join(HERE, "..", "build", "server", "roomcast")
    os.environ.setdefault("ROOMCAST_STATIC", os.path.join(HERE, "..", "client-web"))
    names = a.only.split(",") if a.only else list(SCENARIOS)
    print("bounds: %s" % os.environ["ROOMCAST_BIN"])
    for name in names:
        t = time.monotonic()
        try:
            out = asyncio.run(SCENARIOS[name]())
        except Exception as e:  # noqa: BLE001
            out = "error: %r" % (e,)
        print("%-15s %s  (%.0f s)" % (name, out, time.monotonic() - t), flush=True)


if __name__ == "__main__":
    main()
