# The admin port (--admin-port): each instance's own /metrics, /healthz and /debug/rooms, while the instances share
# one public port; nothing else is served there (no WebSocket, no room API, no static files).
# Rule: what an admin port reports is its instance's alone, and its own connections are not counted in it.
import asyncio
import re
import socket
import subprocess
import time
import unittest

from roomcast_harness import (STARTUP_TIMEOUT, TIMEOUT, RedisServer, RoomcastServer, WsClient, free_port,
                              handshake_request, http_request, http_request_sync, quiet_slow_callback_warnings, req,
                              server_binary, unique, user)


async def get(port, path, method="GET", headers=()):
    return await http_request(port, req(method, path, port, list(headers) + [("Connection", "close")]))


def wait_admin_ready(s):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            resp = http_request_sync(s.admin_port, req("GET", "/healthz", s.admin_port, [("Connection", "close")]),
                                     timeout=2.0)
            if resp.status == 200 and resp.json()["instance"] == s.instance:
                return
        except (OSError, EOFError, ValueError):
            pass
        if time.monotonic() > deadline or not s.alive():
            raise AssertionError("%s: admin port %d not ready\n%s" % (s.instance, s.admin_port, s.log_tail()))
        time.sleep(0.05)


def parse_metrics(text):
    """{(name, labels text): value} of a Prometheus exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-z_:]+)(\{[^}]*\})? (\S+)$", line)
        assert m, "bad metrics line %r" % line
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


class AdminPorts(unittest.IsolatedAsyncioTestCase):
    """Two instances on one public port (Redis mode), each with its own admin port."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.addClassCleanup(cls.redis.cleanup)
        cls.redis.start()
        cls.port = free_port()
        cls.instances = []
        for name in ("alpha", "beta"):
            admin = free_port()
            s = RoomcastServer(["--redis", cls.redis.url, "--instance-id", name, "--admin-port", str(admin)],
                               port=cls.port, name=name)
            s.admin_port = admin
            s.instance = name
            cls.addClassCleanup(s.cleanup)
            s.start()
            cls.instances.append(s)
            # On a shared port /healthz may have been answered by the other instance: ready is its admin port's.
            wait_admin_ready(s)

    @classmethod
    def tearDownClass(cls):
        for s in cls.instances:
            s.stop()

    async def asyncSetUp(self):
        quiet_slow_callback_warnings()
        self.clients = []

    async def asyncTearDown(self):
        for c in self.clients:
            await c.close()

    async def metrics(self, s):
        resp = await get(s.admin_port, "/metrics")
        self.assertEqual(resp.status, 200, resp)
        return parse_metrics(resp.body.decode())

    async def rooms(self, s, query=""):
        resp = await get(s.admin_port, "/debug/rooms" + query)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()

    async def wait_idle(self):
        """Until no instance holds a connection or a room (an earlier test's closing connections may still be
        finishing their close, and its rooms linger for a second)."""
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            ms = [await self.metrics(s) for s in self.instances]
            if all(m[("roomcast_connections", "")] == 0 and m[("roomcast_rooms", "")] == 0 for m in ms):
                return
            self.assertLess(asyncio.get_running_loop().time(), deadline, "instances not idle")
            await asyncio.sleep(0.1)

    async def test_each_admin_port_reports_its_own_instance(self):
        await self.wait_idle()
        # WebSockets on the shared port, each in a room of its own, until both instances hold some.
        rooms = []
        for i in range(200):
            c = await WsClient.connect(self.port, label="c%d" % i)
            self.clients.append(c)
            await c.hello(user("u%d" % i))
            room = unique("adm")
            await c.join(room)
            rooms.append(room)
            if i >= 7:
                counts = [(await self.metrics(s))[("roomcast_websockets", "")] for s in self.instances]
                if all(n > 0 for n in counts):
                    break
        seen = set()
        total = 0
        for s in self.instances:
            m = await self.metrics(s)
            self.assertEqual(m.get(("roomcast_info", '{instance="%s",mode="redis"}' % s.instance)), 1.0, s.instance)
            self.assertEqual([k for k in m if k[0] == "roomcast_info"], [("roomcast_info", '{instance="%s",mode="redis"}' % s.instance)])
            ws = int(m[("roomcast_websockets", "")])
            self.assertGreater(ws, 0, "%s got no WebSocket of %d" % (s.instance, len(rooms)))
            # The admin port's own connection (this scrape) is not one of the instance's connections.
            self.assertEqual(int(m[("roomcast_connections", "")]), ws, s.instance)
            self.assertEqual(int(m[("roomcast_rooms", "")]), ws, s.instance)
            total += ws

            summary = await self.rooms(s, "?limit=1000")
            self.assertEqual(summary["instance"], s.instance)
            self.assertEqual(summary["rooms"], ws)
            self.assertEqual(summary["members"], ws)
            listed = {r["id"] for r in summary["top"]}
            self.assertEqual(len(listed), ws)
            self.assertFalse(listed & seen, "a room listed by two instances")
            seen |= listed
            for r in summary["top"]:
                self.assertEqual((r["members"], r["users"], r["state"]), (1, 1, "live"), r)
                self.assertEqual(r["heldBytes"], 0)

            health = await get(s.admin_port, "/healthz")
            self.assertEqual(health.status, 200)
            self.assertEqual(health.json()["instance"], s.instance)
            self.assertEqual(health.json()["websockets"], ws)
        self.assertEqual(total, len(rooms))
        self.assertEqual(seen, set(rooms))

    async def test_debug_rooms_is_bounded_and_biggest_first(self):
        await self.wait_idle()
        s = self.instances[0]
        # Three members in one room, one in another, all on instance alpha (found by its own count).
        big, small = unique("big"), unique("small")
        members = {big: 0, small: 0}
        want = {big: 3, small: 1}
        for i in range(400):
            if members == want:
                break
            room = big if members[big] < want[big] else small
            before = (await self.metrics(s))[("roomcast_websockets", "")]
            c = await WsClient.connect(self.port, label="m%d" % i)
            self.clients.append(c)
            await c.hello(user("m%d" % i))
            after = (await self.metrics(s))[("roomcast_websockets", "")]
            if after > before:
                await c.join(room)
                members[room] += 1
        self.assertEqual(members, want)
        summary = await self.rooms(s, "?limit=1")
        self.assertEqual(summary["limit"], 1)
        self.assertEqual(len(summary["top"]), 1)
        self.assertEqual(summary["top"][0]["id"], big)
        self.assertEqual(summary["top"][0]["members"], 3)
        self.assertEqual(summary["rooms"], 2)
        self.assertEqual(summary["members"], 4)
        default = await self.rooms(s)
        self.assertEqual(default["limit"], 20)
        self.assertEqual(default["top"][0]["id"], big)
        self.assertIn(small, [r["id"] for r in default["top"]])
        for bad in ("0", "1001", "x", ""):
            resp = await get(s.admin_port, "/debug/rooms?limit=" + bad)
            self.assertEqual(resp.status, 400, (bad, resp))

    async def test_the_admin_port_serves_nothing_else(self):
        s = self.instances[1]
        for method, path in (("GET", "/"), ("GET", "/index.html"), ("POST", "/create-room"), ("GET", "/rooms/abc"),
                             ("GET", "/api/rooms/abc"), ("GET", "/ws"), ("DELETE", "/metrics")):
            resp = await get(s.admin_port, path, method)
            self.assertEqual(resp.status, 404, (method, path, resp))
        resp = await http_request(s.admin_port, handshake_request("/ws", s.admin_port))
        self.assertEqual(resp.status, 404, resp)
        resp = await get(s.admin_port, "/metrics", "HEAD")
        self.assertEqual((resp.status, resp.body), (200, b""))
        # The public port keeps /metrics and /healthz, and has no /debug/rooms.
        self.assertEqual((await get(self.port, "/metrics")).status, 200)
        self.assertEqual((await get(self.port, "/healthz")).status, 200)
        self.assertEqual((await get(self.port, "/debug/rooms")).status, 404)


class AdminPortErrors(unittest.TestCase):
    def test_a_busy_admin_port_stops_the_start(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            busy = taken.getsockname()[1]
            r = subprocess.run([server_binary(), "--host", "127.0.0.1", "--port", str(free_port()), "--admin-port",
                                str(busy)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("cannot listen on the admin port 127.0.0.1:%d: address already in use" % busy, r.stdout)
        self.assertNotIn("handles still open", r.stdout)
        self.assertTrue(r.stdout.rstrip().endswith("stopped"), r.stdout)

    def test_admin_ports_are_not_shared(self):
        """A second instance cannot take the first one's admin port (no SO_REUSEPORT there)."""
        admin = free_port()
        first = RoomcastServer(["--admin-port", str(admin)], name="first")
        self.addCleanup(first.cleanup)
        first.start()
        r = subprocess.run([server_binary(), "--host", "127.0.0.1", "--port", str(first.port), "--admin-port",
                            str(admin)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("cannot listen on the admin port", r.stdout)
        first.stop()


if __name__ == "__main__":
    unittest.main()
