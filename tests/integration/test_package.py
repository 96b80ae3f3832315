# The .deb, end to end: CPack packages the build tree's binary, dpkg-deb shows what it holds and what it needs,
# dpkg -x unpacks it into a scratch root, and the unpacked binary serves its own web client and a chat.
# Rule: nothing touches the host's dpkg database or /usr; everything lives in a temp folder.
"""Package test (deploy/CMakeLists.txt, docs/deploy.md).

Environment: ROOMCAST_BUILD_DIR (the build tree to package; CPack reuses its binary, no rebuild),
ROOMCAST_BIN (for the version it must carry).
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from roomcast_harness import (RoomcastServer, WsClient, http_request, quiet_slow_callback_warnings, req, user)

# The Debian packages the binary's libraries come from (dpkg-shlibdeps must find each).
RUNTIME_PACKAGES = ("libc6", "libuv1", "libwslay1", "libhiredis0.14", "libssl3", "libjwt0", "libstdc++6")
PACKAGED_FILES = (
    "./usr/bin/roomcast",
    "./usr/share/roomcast/client-web/index.html",
    "./usr/share/roomcast/client-web/app.js",
    "./usr/share/roomcast/client-web/connection.js",
    "./usr/share/roomcast/client-web/style.css",
    "./usr/lib/systemd/system/roomcast@.service",
    "./usr/lib/systemd/system/roomcast.target",
    "./usr/sbin/roomcast-enable",
    "./usr/sbin/roomcast-rolling-restart",
    "./usr/share/doc/roomcast/roomcast.env",
    "./usr/share/doc/roomcast/deploy.md",
    "./usr/share/doc/roomcast/examples/roomcast.conf",
    "./usr/share/man/man1/roomcast.1",
)


def run(cmd, timeout=120, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, **kw)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s" % (" ".join(cmd), p.returncode, out[-4000:]))
    return out


class InstalledServer(RoomcastServer):
    """The unpacked binary, started the way a service starts it: no --static, no ROOMCAST_STATIC, any cwd."""

    def __init__(self, binary, **kw):
        super().__init__(**kw)
        self.binary = binary

    def command(self):
        return [self.binary, "--host", self.host, "--port", str(self.port)] + self.args


class PackageTest(unittest.IsolatedAsyncioTestCase):
    deb = None

    @classmethod
    def setUpClass(cls):
        for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s is not installed (scripts/deps.sh test installs dpkg-dev)" % tool)
        build = os.environ.get("ROOMCAST_BUILD_DIR")
        if not build or not os.path.exists(os.path.join(build, "CPackConfig.cmake")):
            raise AssertionError("ROOMCAST_BUILD_DIR must name a configured build tree: %r" % build)
        cls.tmp = tempfile.mkdtemp(prefix="roomcast-pkg-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        out = run(["cpack", "-G", "DEB", "--config", os.path.join(build, "CPackConfig.cmake"),
                   "-B", os.path.join(cls.tmp, "out")], timeout=300)
        debs = glob.glob(os.path.join(cls.tmp, "out", "*.deb"))
        assert len(debs) == 1, "cpack made %r\n%s" % (debs, out)
        cls.deb = debs[0]
        cls.version = run([os.environ["ROOMCAST_BIN"], "--version"]).split()[-1]
        cls.arch = run(["dpkg", "--print-architecture"]).strip()
        cls.root = os.path.join(cls.tmp, "root")
        run(["dpkg-deb", "-x", cls.deb, cls.root])

    def test_file_name(self):
        self.assertEqual(os.path.basename(self.deb), "roomcast_%s_%s.deb" % (self.version, self.arch))

    def test_contents(self):
        listing = run(["dpkg-deb", "-c", self.deb])
        names = {line.split()[-1].rstrip("/") for line in listing.splitlines() if line.strip()}
        names = {n.split(" -> ")[0] for n in names}
        for f in PACKAGED_FILES:
            self.assertIn(f, names, "the .deb lacks %s:\n%s" % (f, listing))
        for n in names:
            self.assertFalse(n.startswith("./usr/local") or n.startswith("./home") or "_CPack_Packages" in n,
                             "stray path in the .deb: %s" % n)
        # Executables are executable, units are plain files.
        modes = {line.split()[-1]: line.split()[0] for line in listing.splitlines() if line.strip()}
        self.assertTrue(modes["./usr/bin/roomcast"].startswith("-rwxr-xr-x"), modes["./usr/bin/roomcast"])
        self.assertTrue(modes["./usr/sbin/roomcast-enable"].startswith("-rwxr-xr-x"))
        self.assertTrue(modes["./usr/lib/systemd/system/roomcast@.service"].startswith("-rw-r--r--"))

    def test_control(self):
        info = run(["dpkg-deb", "-I", self.deb])
        fields = dict(re.findall(r"^ ([A-Z][A-Za-z-]+): (.*)$", info, re.M))
        self.assertEqual(fields.get("Package"), "roomcast", info)
        self.assertEqual(fields.get("Version"), self.version, info)
        self.assertEqual(fields.get("Architecture"), self.arch, info)
        depends = [d.strip().split()[0] for d in fields.get("Depends", "").split(",") if d.strip()]
        for p in RUNTIME_PACKAGES:
            self.assertIn(p, depends, "Depends lacks %s: %s" % (p, fields.get("Depends")))
        for p in depends:
            self.assertFalse(p.endswith("-dev"), "a -dev package in Depends: %s" % fields.get("Depends"))
        # Maintainer scripts: present, and none of them creates a user or writes configuration.
        control = os.path.join(self.tmp, "control")
        run(["dpkg-deb", "-e", self.deb, control])
        for script in ("postinst", "prerm", "postrm"):
            self.assertRegex(info, r"\b%s\b" % script)
            with open(os.path.join(control, script)) as f:
                text = f.read()
            self.assertTrue(text.startswith("#!/bin/sh"), "%s: %r" % (script, text[:80]))
            self.assertTrue(os.access(os.path.join(control, script), os.X_OK), script)
            code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
            for danger in ("useradd", "adduser", "groupadd", "rm -rf", "chown", "/etc/roomcast"):
                self.assertNotIn(danger, code, "%s runs %s" % (script, danger))

    def test_units_name_the_packaged_binary(self):
        with open(os.path.join(self.root, "usr/lib/systemd/system/roomcast@.service")) as f:
            unit = f.read()
        self.assertRegex(unit, r"(?m)^ExecStart=/usr/bin/roomcast --instance-id %H:%i$")
        self.assertRegex(unit, r"(?m)^EnvironmentFile=/etc/roomcast/roomcast.env$")

    def test_version(self):
        out = run([os.path.join(self.root, "usr/bin/roomcast"), "--version"], cwd=self.tmp)
        self.assertEqual(out.strip(), "roomcast %s" % self.version)

    async def test_installed_binary_serves_its_client_and_a_chat(self):
        quiet_slow_callback_warnings()
        saved = os.environ.pop("ROOMCAST_STATIC", None)  # a service has none: the binary must find its own
        self.addCleanup(lambda: saved is not None and os.environ.__setitem__("ROOMCAST_STATIC", saved))
        server = InstalledServer(os.path.join(self.root, "usr/bin/roomcast"), name="installed")
        self.addCleanup(server.cleanup)
        server.start()
        client_web = os.path.join(self.root, "usr/share/roomcast/client-web")
        self.assertIn("from %s" % client_web, server.log(), "the installed binary did not serve its own client-web")

        resp = await http_request(server.port, req("GET", "/", server.port, [("Connection", "close")]))
        self.assertEqual(resp.status, 200, resp)
        with open(os.path.join(client_web, "index.html"), "rb") as f:
            self.assertEqual(resp.body, f.read())
        self.assertTrue(resp.header("Content-Type", "").startswith("text/html"), resp)

        a = await WsClient.connect(server.port, label="a")
        b = await WsClient.connect(server.port, label="b")
        try:
            await a.hello(user("ada"))
            await b.hello(user("bob"))
            await a.send({"type": "create"})
            room = (await a.wait_for("created"))["roomId"]
            await a.wait_for("joined")
            await b.join(room)
            await a.send({"type": "chat", "roomId": room, "message": "from the package", "ref": 1})
            got = {}
            while len(got) < 2:  # the ack and the chat, in either order
                msg = await a.recv()
                if msg.get("type") in ("ack", "chat"):
                    got[msg["type"]] = msg
            self.assertEqual((got["chat"]["message"], got["chat"]["id"]), ("from the package", got["ack"]["id"]))
            chat = await b.wait_for("chat")
            self.assertEqual((chat["message"], chat["id"]), ("from the package", got["ack"]["id"]))
        finally:
            await a.close()
            await b.close()
        server.stop()


if __name__ == "__main__":
    unittest.main()
