# TLS in front: the shipped deploy/nginx/roomcast.conf (and deploy/haproxy/roomcast.cfg) in front of two instances.
# Rule: the deploy files are read and only ports, paths and upstreams are substituted, so what ships is what is tested.
"""wss:// through Debian's nginx to two roomcast instances sharing one throw-away Redis.

nginx runs in the foreground (daemon off) with its own prefix, config, pid file, logs and temp folders in a temp
dir, on free ports; the system's nginx service and /etc/nginx are never touched. The config is the deploy file
inside a minimal nginx.conf (main and events context), with the listen ports, certificate paths and upstream
servers substituted. A self-signed certificate for localhost is made with `openssl req -x509`.

Clients connect from other loopback addresses (127.0.0.2, 127.0.0.3) so that the address nginx forwards differs
from nginx's own (127.0.0.1, the trusted proxy): the instances must log the client's address, not nginx's, and
must ignore an X-Forwarded-For the client made up.

HAProxy (if installed): `haproxy -c` on the shipped config with its certificate path substituted, then the same
config (ports and servers substituted) carries a wss:// chat.
"""

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import websockets
import websockets.exceptions

from cluster_harness import TIMEOUT, ClusterTestCase, Peer, id_parts, metrics, quiet_port, unique, user, wait_until
from roomcast_harness import REPO, stop_process

NGINX_CONF = os.path.join(REPO, "deploy", "nginx", "roomcast.conf")
HAPROXY_CFG = os.path.join(REPO, "deploy", "haproxy", "roomcast.cfg")
PROXY_ADDR = "127.0.0.1"                 # nginx's address towards the instances: the trusted proxy
CLIENT_A, CLIENT_B = "127.0.0.2", "127.0.0.3"   # where the test's browsers connect from
SPOOFED = "198.51.100.7"                  # what a client claims in its own X-Forwarded-For


def find_tool(name):
    """The binary on PATH, or in /usr/sbin (not on every user's PATH), or None."""
    path = shutil.which(name)
    if path:
        return path
    candidate = os.path.join("/usr/sbin", name)
    return candidate if os.access(candidate, os.X_OK) else None


def make_certificate(folder):
    """A self-signed certificate for localhost and 127.0.0.1 (EC P-256: quick to make). Returns (cert, key)."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


def substitute_nginx(text, http_port, https_port, cert, key, upstream_ports):
    """The deploy file with ports, certificate paths and upstream servers replaced; every other line as shipped.
    IPv6 listens are dropped (the test binds 127.0.0.1 only). Fails if the file no longer has what is replaced."""
    out, counts = [], {"listen80": 0, "listen443": 0, "cert": 0, "key": 0, "server": 0}
    in_upstream = False
    for line in text.splitlines():
        s = line.strip()
        indent = line[:len(line) - len(line.lstrip())]
        if re.match(r"upstream\s+\S+\s*\{", s):
            in_upstream = True
        elif in_upstream and s == "}":
            in_upstream = False
        m = re.match(r"listen\s+(\[::\]:)?(80|443)\b(.*);$", s)
        if m:
            if m.group(1):
                continue
            port = http_port if m.group(2) == "80" else https_port
            counts["listen%s" % m.group(2)] += 1
            out.append("%slisten %s:%d%s;" % (indent, PROXY_ADDR, port, m.group(3)))
            continue
        m = re.match(r"(ssl_certificate(_key)?)\s+\S+;$", s)
        if m:
            counts["key" if m.group(2) else "cert"] += 1
            out.append("%s%s %s;" % (indent, m.group(1), key if m.group(2) else cert))
            continue
        if in_upstream and re.match(r"#?\s*server\s+\S+:\d+", s):
            if s.startswith("#"):
                continue
            counts["server"] += 1
            if counts["server"] == 1:   # the first server line, with its parameters, for every test instance
                for port in upstream_ports:
                    out.append(re.sub(r"server\s+\S+:\d+", "server 127.0.0.1:%d" % port, line, count=1))
            continue
        out.append(line)
    want = {"listen80": 1, "listen443": 1, "cert": 1, "key": 1}
    for k, v in want.items():
        assert counts[k] == v, "deploy/nginx/roomcast.conf: expected %d %s line, found %d" % (v, k, counts[k])
    assert counts["server"] >= 1, "deploy/nginx/roomcast.conf: no server line in the upstream block"
    return "\n".join(out) + "\n"


def substitute_haproxy(text, pem, http_port=None, https_port=None, server_ports=None):
    """The deploy file with the certificate path replaced and, when ports are given, the binds (IPv4 on 127.0.0.1;
    IPv6 binds dropped) and servers too, and maxconn lowered if the file-descriptor limit is below what it needs;
    every other line as shipped."""
    out, crt, binds, servers = [], 0, 0, 0
    for line in text.splitlines():
        s = line.strip()
        indent = line[:len(line) - len(line.lstrip())]
        if re.search(r"\bcrt\s+\S+", s):
            crt += 1
            line = re.sub(r"\bcrt\s+\S+", "crt %s" % pem, line)
            s = line.strip()
        if http_port is not None:
            m = re.match(r"bind\s+(:::|:)(80|443)\b(.*)$", s)
            if m:
                binds += 1
                if m.group(1) == ":::":
                    continue
                line = "%sbind %s:%d%s" % (indent, PROXY_ADDR, http_port if m.group(2) == "80" else https_port,
                                          m.group(3))
            m = re.match(r"(#\s*)?server\s+(\S+)\s+\S+:\d+(.*)$", s)
            if m:
                if m.group(1):
                    continue
                servers += 1
                if servers == 1:
                    for i, port in enumerate(server_ports):
                        out.append("%sserver test%d 127.0.0.1:%d%s" % (indent, i + 1, port, m.group(3)))
                continue
            m = re.match(r"maxconn\s+(\d+)$", s)
            if m:
                # HAProxy needs two descriptors per connection and refuses to start past the hard limit
                # (containers often have a low one): the only non-path value the test may lower.
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                if hard != resource.RLIM_INFINITY and 2 * int(m.group(1)) + 100 > hard:
                    line = "%smaxconn %d" % (indent, (hard - 100) // 2)
            if s.startswith("log /dev/log"):
                line = indent + "log stderr format raw local0"   # no syslog socket in a test
            if os.geteuid() != 0 and re.match(r"(chroot|user|group)\s", s):
                continue   # only root may chroot and switch users
        out.append(line)
    assert crt >= 1, "deploy/haproxy/roomcast.cfg: no crt path"
    if http_port is not None:
        assert binds >= 2 and servers >= 1, "deploy/haproxy/roomcast.cfg: binds %d, servers %d" % (binds, servers)
    return "\n".join(out) + "\n"


class Nginx:
    """Debian's nginx in the foreground with everything of its own in folder."""

    def __init__(self, binary, folder, site):
        self.binary = binary
        self.folder = folder
        self.proc = None
        self.error_log = os.path.join(folder, "error.log")
        with open(os.path.join(folder, "roomcast.conf"), "w") as f:
            f.write(site)
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(folder, d), exist_ok=True)
        main = [
            "daemon off;",
            "master_process on;",
            "worker_processes 1;",
            "pid %s/nginx.pid;" % folder,
            "error_log %s info;" % self.error_log,
        ]
        if os.geteuid() == 0:
            main.append("user root;")   # the temp dir is private to root; workers must reach it
        main += [
            "events { worker_connections 512; }",
            "http {",
            "    access_log %s/access.log;" % folder,
            "    client_body_temp_path %s/client_body;" % folder,
            "    proxy_temp_path %s/proxy;" % folder,
            "    fastcgi_temp_path %s/fastcgi;" % folder,
            "    uwsgi_temp_path %s/uwsgi;" % folder,
            "    scgi_temp_path %s/scgi;" % folder,
            "    include %s/roomcast.conf;" % folder,
            "}",
        ]
        self.conf = os.path.join(folder, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(main) + "\n")

    def command(self, *extra):
        return [self.binary, "-p", self.folder + "/", "-c", self.conf, "-e", self.error_log] + list(extra)

    def check(self):
        r = subprocess.run(self.command("-t"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        assert r.returncode == 0, "nginx -t refused the config:\n%s" % r.stdout.decode(errors="replace")

    def start(self, port):
        self.check()
        with open(os.path.join(self.folder, "nginx.out"), "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        wait_port(self.proc, port, "nginx", self.log)

    def log(self):
        text = ""
        for name in ("nginx.out", "error.log"):
            with contextlib.suppress(OSError), open(os.path.join(self.folder, name), errors="replace") as f:
                text += f.read()
        return text

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)   # graceful: workers finish, then exit
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop_process(self.proc)
        self.proc = None


def wait_port(proc, port, name, log):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("%s exited with %s:\n%s" % (name, proc.returncode, log()))
        with contextlib.suppress(OSError), socket.create_connection((PROXY_ADDR, port), timeout=1):
            return
        time.sleep(0.05)
    raise AssertionError("%s is not listening on %d within %.0fs:\n%s" % (name, port, TIMEOUT, log()))


async def https_get(port, path, tls, source=CLIENT_A):
    """(status, headers dict with lower-case names, body) of one GET over TLS, Connection: close."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost", local_addr=(source, 0)), TIMEOUT)
    return await _exchange(reader, writer, port, path)


async def http_get(port, path, source=CLIENT_A):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)),
                                            TIMEOUT)
    return await _exchange(reader, writer, port, path)


async def _exchange(reader, writer, port, path):
    try:
        writer.write(("GET %s HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n" % (path, port)).encode())
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class TlsProxyTestCase(ClusterTestCase):
    instance_args = ["--log-level", "debug", "--trusted-proxy", "%s/32" % PROXY_ADDR]

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="roomcast-tls-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.cert, self.key = make_certificate(self.tmp)
        self.tls = ssl.create_default_context(cafile=self.cert)   # trusts the test certificate only

    async def wss(self, port, label, source, origin=None, headers=None):
        """A Peer over wss:// to the proxy on port, connecting from the loopback address source."""
        ws = await websockets.connect(
            "wss://localhost:%d/ws" % port, ssl=self.tls, origin=origin or "https://localhost:%d" % port,
            extra_headers=headers, local_addr=(source, 0), compression=None, ping_interval=None, max_size=None,
            max_queue=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT)
        p = Peer(ws, label, port)
        self.peers.append(p)
        return p

    async def websockets_on(self, inst):
        return (await metrics(inst.port)).get("roomcast_websockets", 0)

    async def wait_websockets(self, counts):
        """Until each instance's roomcast_websockets gauge is as given ({instance: n})."""
        async def probe():
            got = {i.instance_id: await self.websockets_on(i) for i in counts}
            return got == {i.instance_id: n for i, n in counts.items()} or None
        await wait_until(probe, TIMEOUT, "websockets per instance %r" % {i.instance_id: n for i, n in counts.items()})

    async def client_log_line(self, inst, client):
        """The instance logged a WebSocket opened by client, forwarded by the proxy."""
        needle = "(%s via %s): WebSocket open" % (client, PROXY_ADDR)

        async def probe():
            return inst.log_lines(needle)
        return await wait_until(probe, TIMEOUT, "%s logs %r" % (inst.name, needle))

    async def members_across(self, https_port, tag, i1, i2):
        """alice (a, from CLIENT_A) and bob (b, from CLIENT_B, claiming SPOOFED in X-Forwarded-For) join a new room
        through the proxy at https_port; the balancer must put one on each of i1 and i2; then chat_across.
        Returns (room, a, b, id of the last chat)."""
        room = unique(tag)
        a = await self.wss(https_port, "a", CLIENT_A)
        await a.hello(user("alice"))
        await a.join(room)
        b = await self.wss(https_port, "b", CLIENT_B, headers={"X-Forwarded-For": SPOOFED})
        await b.hello(user("bob"))
        await b.join(room)
        await self.wait_websockets({i1: 1, i2: 1})
        return room, a, b, await self.chat_across(a, b, room)

    async def chat_across(self, a, b, room):
        """a and b are both in room: a chat each way, acked to its sender and delivered to the other once."""
        for sender, receiver, text in ((a, b, "from a over tls"), (b, a, "from b over tls")):
            ack = await sender.chat_acked(room, text, ref=text)
            ev = await receiver.take("chat", roomId=room, message=text)
            self.assertEqual(ev["id"], ack["id"])
            own = await sender.take("chat", roomId=room, message=text)   # members get their own chats too
            self.assertEqual(own["id"], ack["id"])
        return ack["id"]


class TestNginx(TlsProxyTestCase):

    async def test_wss_through_nginx_to_two_instances(self):
        nginx_bin = find_tool("nginx")
        if nginx_bin is None:
            self.skipTest("nginx is not installed (apt-get install nginx, or scripts/deps.sh): "
                          "deploy/nginx/roomcast.conf is not tested")
        i1 = await self.launch("i1")
        i2 = await self.launch("i2")
        http_port, https_port = quiet_port(), quiet_port()
        with open(NGINX_CONF) as f:
            site = substitute_nginx(f.read(), http_port, https_port, self.cert, self.key, [i1.port, i2.port])
        folder = os.path.join(self.tmp, "nginx")
        os.makedirs(folder)
        nginx = Nginx(nginx_bin, folder, site)
        self.addCleanup(nginx.stop)
        try:
            await asyncio.to_thread(nginx.start, https_port)
            await self.nginx_scenario(nginx, i1, i2, http_port, https_port)
        except BaseException:
            print("\n----- nginx logs -----\n%s\n----- end -----" % "\n".join(nginx.log().splitlines()[-40:]))
            raise

    async def nginx_scenario(self, nginx, i1, i2, http_port, https_port):
        # Plain HTTP is sent to HTTPS.
        status, headers, _ = await http_get(http_port, "/rooms/x")
        self.assertEqual(status, 301, headers)
        self.assertEqual(headers.get("location"), "https://localhost/rooms/x")
        # HTTPS reaches an instance.
        status, headers, body = await https_get(https_port, "/healthz", self.tls)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["status"], "ok")
        self.assertIn("strict-transport-security", headers)

        # A page of another site is refused: the browser's Origin passes nginx unchanged.
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as refused:
            await self.wss(https_port, "evil", CLIENT_A, origin="https://evil.example")
        self.assertEqual(refused.exception.status_code, 403)
        await self.wait_websockets({i1: 0, i2: 0})

        # Two members, a browser page at https://localhost:<port> each (Origin and Host of that page);
        # least_conn puts them on different instances. B claims an address of its own in X-Forwarded-For.
        room, a, b, last = await self.members_across(https_port, "tls", i1, i2)

        # The instances log the client's address, not nginx's, and not what the client made up.
        inst_a = await wait_until(lambda: self.logged_by(CLIENT_A, i1, i2), TIMEOUT, "an instance logs a's address")
        inst_b = i2 if inst_a is i1 else i1
        await self.client_log_line(inst_b, CLIENT_B)
        for inst in (i1, i2):
            self.assertEqual(inst.log_lines(SPOOFED), [], "%s believed a client's own X-Forwarded-For" % inst.name)

        # B's instance restarts; meanwhile A's chats are acked by the other instance.
        await self.stop_instance(inst_b)
        await wait_until(lambda: self._closed(b), TIMEOUT, "b's connection closed by the stopping instance")
        self.assertEqual(b.closed[0], 1001, b.closed)
        acked = []
        for n in range(10):
            acked.append((await a.chat_acked(room, "while away %d" % n, ref="away%d" % n))["id"])
        await self.restart(inst_b)

        # B comes back through nginx (least_conn: onto the restarted instance) with since = the last id it saw.
        b2 = await self.wss(https_port, "b2", CLIENT_B)
        await b2.hello(user("bob"))
        await self.wait_websockets({inst_a: 1, inst_b: 1})
        joined = await b2.join(room, since=last)
        ids = [ev["id"] for ev in joined["history"]]
        self.assertEqual(ids, acked, "history after since: %r" % joined["history"])
        self.assertFalse(joined.get("truncated"), joined)
        self.assertEqual([ev["message"] for ev in joined["history"]], ["while away %d" % n for n in range(10)])
        self.assertEqual(ids, sorted(ids, key=id_parts))
        # Live again, each chat once.
        final = await a.chat_acked(room, "welcome back", ref="back")
        ev = await b2.take("chat", roomId=room, message="welcome back")
        self.assertEqual(ev["id"], final["id"])
        await b2.expect_none("chat")
        await self.client_log_line(inst_b, CLIENT_B)

    async def logged_by(self, client, *instances):
        """The instance that logged a WebSocket opened by client through the proxy, or None."""
        for inst in instances:
            if inst.log_lines("(%s via %s): WebSocket open" % (client, PROXY_ADDR)):
                return inst
        return None

    async def _closed(self, peer):
        return peer.closed is not None


class TestHaproxy(TlsProxyTestCase):

    def haproxy(self):
        binary = find_tool("haproxy")
        if binary is None:
            self.skipTest("haproxy is not installed (apt-get install haproxy, or scripts/deps.sh): "
                          "deploy/haproxy/roomcast.cfg is not checked")
        pem = os.path.join(self.tmp, "haproxy.pem")
        with open(pem, "w") as out, open(self.cert) as c, open(self.key) as k:
            out.write(c.read() + k.read())
        with open(HAPROXY_CFG) as f:
            text = f.read()
        return binary, pem, text

    def test_shipped_config_is_valid(self):
        binary, pem, text = self.haproxy()
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(substitute_haproxy(text, pem))
        r = subprocess.run([binary, "-c", "-f", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, "haproxy -c refused deploy/haproxy/roomcast.cfg:\n%s" % out)
        self.assertNotIn("[WARNING]", out, "haproxy -c warns about deploy/haproxy/roomcast.cfg:\n%s" % out)

    async def test_wss_through_haproxy(self):
        binary, pem, text = self.haproxy()
        i1 = await self.launch("i1")
        i2 = await self.launch("i2")
        http_port, https_port = quiet_port(), quiet_port()
        cfg = os.path.join(self.tmp, "haproxy-run.cfg")
        with open(cfg, "w") as f:
            f.write(substitute_haproxy(text, pem, http_port, https_port, [i1.port, i2.port]))
        log_path = os.path.join(self.tmp, "haproxy.log")
        log = open(log_path, "ab")
        self.addCleanup(log.close)
        proc = subprocess.Popen([binary, "-db", "-f", cfg], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.addCleanup(stop_process, proc)

        def read_log():
            with open(log_path, errors="replace") as f:
                return f.read()
        try:
            await asyncio.to_thread(wait_port, proc, https_port, "haproxy", read_log)
            status, headers, _ = await http_get(http_port, "/rooms/x")
            self.assertEqual(status, 301, headers)
            self.assertTrue(headers.get("location", "").startswith("https://localhost"), headers)
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as refused:
                await self.wss(https_port, "evil", CLIENT_A, origin="https://evil.example")
            self.assertEqual(refused.exception.status_code, 403)

            room, a, b, _ = await self.members_across(https_port, "haproxy", i1, i2)   # leastconn: one each
            logs = {i.instance_id: i.log() for i in (i1, i2)}
            for client in (CLIENT_A, CLIENT_B):
                needle = "(%s via %s): WebSocket open" % (client, PROXY_ADDR)
                self.assertTrue(any(needle in t for t in logs.values()), "no instance logged %r" % needle)
            for inst in (i1, i2):
                self.assertEqual(inst.log_lines(SPOOFED), [], "%s believed a client's own X-Forwarded-For" % inst.name)
        except BaseException:
            print("\n----- haproxy log -----\n%s\n----- end -----" % "\n".join(read_log().splitlines()[-40:]))
            raise


if __name__ == "__main__":
    unittest.main()
