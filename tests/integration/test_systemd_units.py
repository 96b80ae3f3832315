# The systemd units of deploy/systemd: systemd-analyze verify (syntax, instances, the target) and its offline
# security exposure, the hardening the docs promise, and roomcast-enable against a stand-in systemctl.
# Rule: nothing is loaded into the host's systemd; a host without a usable systemd-analyze skips, saying why.
"""Unit-file test (deploy/systemd, deploy/roomcast-enable, docs/deploy.md).

Environment: ROOMCAST_BIN (the units' ExecStart is pointed at it, since verify checks the binary exists).
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from roomcast_harness import REPO

UNITS = os.path.join(REPO, "deploy", "systemd")
HARDENING = {
    "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "CapabilityBoundingSet": "", "SystemCallFilter": "@system-service", "LimitNOFILE": "1048576",
    "MemoryDenyWriteExecute": "yes", "Restart": "on-failure", "EnvironmentFile": "/etc/roomcast/roomcast.env",
    "PartOf": "roomcast.target", "WantedBy": "roomcast.target",
}


def directives(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z]+)=(.*)$", line.rstrip("\n"))
            if m:
                out.setdefault(m.group(1), []).append(m.group(2))
    return out


class UnitFilesTest(unittest.TestCase):
    def test_hardening_and_wiring(self):
        d = directives(os.path.join(UNITS, "roomcast@.service"))
        for key, value in HARDENING.items():
            self.assertIn(value, d.get(key, []), "roomcast@.service: %s=%s expected, has %r" % (key, value, d.get(key)))
        self.assertEqual(d["ExecStart"], ["/usr/bin/roomcast --instance-id %H:%i"])
        t = directives(os.path.join(UNITS, "roomcast.target"))
        self.assertEqual(t.get("WantedBy"), ["multi-user.target"])

    def test_env_example_is_what_the_server_reads(self):
        """Every variable the example sets or shows is one that `roomcast --help` lists ."""
        help_text = subprocess.run([os.environ["ROOMCAST_BIN"], "--help"], stdout=subprocess.PIPE, check=True,
                                   timeout=10).stdout.decode()
        with open(os.path.join(UNITS, "roomcast.env")) as f:
            names = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", f.read(), re.M)
        self.assertIn("ROOMCAST_REDIS_URL", names)
        for n in names:
            self.assertRegex(help_text, r"\b%s\b" % n, "roomcast.env names %s, which roomcast does not read" % n)


class VerifyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("systemd-analyze"):
            raise unittest.SkipTest("systemd-analyze is not installed (package systemd; scripts/deps.sh test)")
        cls.tmp = tempfile.mkdtemp(prefix="roomcast-units-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        # Usable here? A trivial unit must verify cleanly (some containers lack what verify loads).
        probe = os.path.join(cls.tmp, "probe.service")
        with open(probe, "w") as f:
            f.write("[Service]\nExecStart=/bin/true\n")
        p = subprocess.run(["systemd-analyze", "verify", probe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if p.returncode != 0:
            raise unittest.SkipTest("systemd-analyze verify fails on a trivial unit in this environment: %s"
                                    % p.stdout.decode(errors="replace").strip()[-300:])
        os.unlink(probe)
        # The units as shipped, but ExecStart on the build's binary: verify checks that it exists.
        for name in ("roomcast@.service", "roomcast.target"):
            with open(os.path.join(UNITS, name)) as f:
                text = f.read().replace("ExecStart=/usr/bin/roomcast ", "ExecStart=%s " % os.environ["ROOMCAST_BIN"])
            with open(os.path.join(cls.tmp, name), "w") as f:
                f.write(text)

    def verify(self, *names):
        p = subprocess.run(["systemd-analyze", "verify"] + [os.path.join(self.tmp, n) for n in names],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        # Unknown keys and bad values are only warnings to verify: none may appear for our files.
        ours = [l for l in out.splitlines() if "roomcast" in l]
        self.assertEqual(ours, [], out)

    def test_verify_instances_and_target(self):
        self.verify("roomcast@1.service", "roomcast@2.service", "roomcast.target")

    def test_verify_catches_a_broken_unit(self):
        """The check has teeth: an unknown key in a copy is reported."""
        with open(os.path.join(self.tmp, "roomcast@.service")) as f:
            text = f.read()
        with open(os.path.join(self.tmp, "broken@.service"), "w") as f:
            f.write(text.replace("Restart=on-failure", "Restart=on-failure\nRestartt=always"))
        p = subprocess.run(["systemd-analyze", "verify", os.path.join(self.tmp, "broken@1.service")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertIn("Restartt", p.stdout.decode(errors="replace"))

    def test_security_exposure(self):
        """systemd's own hardening score, offline: at most 2.0 of 10 ("OK")."""
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager",
                            os.path.join(self.tmp, "roomcast@1.service")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode(errors="replace")
        if p.returncode != 0 and "Overall exposure level" not in out:
            self.skipTest("systemd-analyze security --offline does not work here: %s" % out.strip()[-300:])
        self.assertEqual(p.returncode, 0, out[-2000:])
        level = float(re.search(r"Overall exposure level for roomcast@1.service: ([0-9.]+)", out).group(1))
        self.assertLessEqual(level, 2.0, out[-2000:])


class EnableTest(unittest.TestCase):
    """roomcast-enable with a stand-in systemctl that logs its arguments and links like `systemctl enable`."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="roomcast-enable-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.bin = os.path.join(self.tmp, "bin")
        self.etc = os.path.join(self.tmp, "etc")
        self.wants = os.path.join(self.etc, "roomcast.target.wants")
        self.log = os.path.join(self.tmp, "systemctl.log")
        self.env_file = os.path.join(self.tmp, "roomcast.env")
        os.makedirs(self.bin)
        with open(os.path.join(self.bin, "systemctl"), "w") as f:
            f.write("""#!/bin/sh
echo "$*" >>"%(log)s"
case "$1" in
  enable) shift; for u in "$@"; do case "$u" in roomcast@*) mkdir -p "%(wants)s"; ln -sf /dev/null "%(wants)s/$u";; esac; done ;;
  disable) shift; for u in "$@"; do rm -f "%(wants)s/$u"; done ;;
esac
""" % {"log": self.log, "wants": self.wants})
        os.chmod(os.path.join(self.bin, "systemctl"), 0o755)

    def enable(self, *args):
        env = dict(os.environ, PATH="%s:%s" % (self.bin, os.environ["PATH"]), ROOMCAST_SYSTEMD_ETC=self.etc,
                   ROOMCAST_ENV_FILE=self.env_file)
        p = subprocess.run([os.path.join(REPO, "deploy", "roomcast-enable")] + list(args), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.returncode, p.stdout.decode()

    def calls(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def test_needs_the_env_file(self):
        code, out = self.enable("2")
        self.assertEqual(code, 1, out)
        self.assertIn("roomcast.env is missing", out)
        self.assertFalse(os.path.exists(self.log), "systemctl was called without an env file")

    def test_several_instances_need_redis(self):
        with open(self.env_file, "w") as f:
            f.write("PORT=8080\n#ROOMCAST_REDIS_URL=redis://127.0.0.1:6379\n")
        code, out = self.enable("2")
        self.assertEqual(code, 1, out)
        self.assertIn("standalone", out)
        code, out = self.enable("1", "--no-start")
        self.assertEqual(code, 0, out)

    def test_enable_grow_shrink_disable(self):
        with open(self.env_file, "w") as f:
            f.write("PORT=8080\nROOMCAST_REDIS_URL=redis://127.0.0.1:6379\n")
        code, out = self.enable("3")
        self.assertEqual(code, 0, out)
        self.assertIn("enable --quiet roomcast.target roomcast@1.service roomcast@2.service roomcast@3.service",
                      self.calls())
        self.assertEqual(self.calls()[-1], "start roomcast.target")
        code, out = self.enable("1", "--no-start")
        self.assertEqual(code, 0, out)
        self.assertEqual(sorted(os.listdir(self.wants)), ["roomcast@1.service"])
        self.assertIn("stop roomcast@3.service", self.calls())
        self.assertNotIn("start roomcast.target", self.calls()[-2:])
        code, out = self.enable("--disable")
        self.assertEqual(code, 0, out)
        self.assertEqual(os.listdir(self.wants), [])
        self.assertIn("disable --quiet roomcast.target", self.calls())
        code, out = self.enable("two")
        self.assertEqual(code, 2, out)

    def test_admin_ports(self):
        with open(self.env_file, "w") as f:
            f.write("PORT=8080\nROOMCAST_REDIS_URL=redis://127.0.0.1:6379\n")
        code, out = self.enable("2", "--admin-base", "9100", "--no-start")
        self.assertEqual(code, 0, out)
        for i in (1, 2):
            with open(os.path.join(self.etc, "roomcast@%d.service.d" % i, "admin-port.conf")) as f:
                self.assertIn("[Service]\nEnvironment=ROOMCAST_ADMIN_PORT=%d\n" % (9100 + i), f.read())
        self.assertIn("daemon-reload", self.calls())
        code, out = self.enable("2", "--admin-base", "65535")
        self.assertEqual(code, 2, out)
        code, out = self.enable("--disable")
        self.assertEqual(code, 0, out)
        self.assertFalse(os.path.exists(os.path.join(self.etc, "roomcast@1.service.d")))


if __name__ == "__main__":
    unittest.main()
