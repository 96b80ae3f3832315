# Configuration: the config file, the precedence of its layers, --check-config, the renamed environment variables
# and JSON logs, against the real binary.
# Rule: every setting is read from one table; each error names where the bad value came from (file:line, variable, flag).
import json
import os
import re
import socket
import subprocess
import tempfile
import unittest

from roomcast_harness import TIMEOUT, RoomcastServer, free_port, healthz, server_binary


def clean_env(**extra):
    """The environment without any variable the server reads (the test runner sets ROOMCAST_STATIC), plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ROOMCAST_") and k not in ("PORT", "HOST", "REDIS_URL")}
    env.update(extra)
    return env


def run(args, env=None, **extra_env):
    return subprocess.run([server_binary()] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env if env is not None else clean_env(**extra_env), timeout=TIMEOUT)


def effective(out):
    """{name: [(value, where)]} from --check-config's lines `name = value  # where`."""
    settings = {}
    for line in out.splitlines():
        m = re.match(r"^(?:# )?([a-z-]+) = (.*?)\s+# (.*)$", line)
        if m:
            settings.setdefault(m.group(1), []).append((m.group(2), m.group(3)))
    return settings


def help_defaults():
    """{name: default text} from --help (`--name ARG  ENV  help (default: X)`)."""
    out = run(["--help"]).stdout
    defaults = {}
    for line in out.splitlines():
        m = re.match(r"^  --([a-z-]+) .*\(default: (.*)\)$", line)
        if m:
            defaults[m.group(1)] = m.group(2)
    return defaults


class ConfigTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="roomcast-config-")
        self.addCleanup(self.tmp.cleanup)

    def write(self, text, name="roomcast.conf"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, args=(), env=None, **extra_env):
        r = run(["--check-config"] + list(args), env=env, **extra_env)
        self.assertEqual(r.returncode, 0, "check-config failed:\n%s%s" % (r.stdout, r.stderr))
        return effective(r.stdout)

    def check_fails(self, args=(), env=None, **extra_env):
        r = run(["--check-config"] + list(args), env=env, **extra_env)
        self.assertEqual(r.returncode, 2, "check-config passed:\n%s%s" % (r.stdout, r.stderr))
        self.assertEqual(r.stdout, "", "errors go to stderr only")
        return r.stderr


class CheckConfig(ConfigTestCase):
    def test_defaults_are_the_tables(self):
        """With nothing set, every value comes from the defaults, and they are the ones --help shows."""
        settings = self.check()
        defaults = help_defaults()
        self.assertGreater(len(settings), 15)
        for name, values in settings.items():
            self.assertEqual(len(values), 1, name)
            value, where = values[0]
            self.assertTrue(where.startswith("default"), (name, where))
            if name != "instance-id":
                self.assertEqual(defaults.get(name), value, "--help and the effective default of %s differ" % name)
        self.assertEqual(settings["port"], [("8080", "default")])
        self.assertEqual(settings["admin-port"], [("0", "default")])
        self.assertEqual(settings["log-format"], [("text", "default")])

    def test_precedence_file_environment_command_line(self):
        path = self.write("# comment\n\n  port = 9001\nhistory = 7\nrate = 9\nlog-format = json\n"
                          "redis-prefix = fromfile\n")
        settings = self.check(["--config", path, "--rate", "11"], ROOMCAST_HISTORY="8")
        self.assertEqual(settings["port"], [("9001", "%s:3" % path)])
        self.assertEqual(settings["history"], [("8", "ROOMCAST_HISTORY")])
        self.assertEqual(settings["rate"], [("11", "--rate")])
        self.assertEqual(settings["log-format"], [("json", "%s:6" % path)])
        self.assertEqual(settings["redis-prefix"], [("fromfile", "%s:7" % path)])
        self.assertEqual(settings["config"], [(path, "--config")])
        # PORT is the one variable without the prefix; it beats the file too.
        settings = self.check(["--config", path], PORT="9002")
        self.assertEqual(settings["port"], [("9002", "PORT")])

    def test_config_from_the_environment_and_the_flag_wins(self):
        a = self.write("port = 9101\n", "a.conf")
        b = self.write("port = 9102\n", "b.conf")
        self.assertEqual(self.check(ROOMCAST_CONFIG=a)["port"], [("9101", "%s:1" % a)])
        self.assertEqual(self.check(["--config", b], ROOMCAST_CONFIG=a)["port"], [("9102", "%s:1" % b)])
        self.assertEqual(self.check(["--config=" + b])["port"], [("9102", "%s:1" % b)])

    def test_repeatable_settings_and_masking(self):
        path = self.write("jwt-secret = k1=0123456789abcdef-one\njwt-secret = k2=0123456789abcdef-two\n"
                          "api-key = very-secret-api-key\nredis = redis://:p4ssw0rd@127.0.0.1:6390/2\n")
        r = run(["--check-config", "--config", path], env=clean_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        for secret in ("0123456789abcdef", "very-secret-api-key", "p4ssw0rd"):
            self.assertNotIn(secret, r.stdout + r.stderr)
        settings = effective(r.stdout)
        self.assertEqual(settings["jwt-secret"], [("k1=****", "%s:1" % path), ("k2=****", "%s:2" % path)])
        self.assertEqual(settings["api-key"], [("****", "%s:3" % path)])
        self.assertEqual(settings["redis"], [("redis://:****@127.0.0.1:6390/2", "%s:4" % path)])
        # A higher layer replaces the lower one's items.
        settings = self.check(["--config", path], ROOMCAST_JWT_SECRET="k3=0123456789abcdef-three")
        self.assertEqual(settings["jwt-secret"], [("k3=****", "ROOMCAST_JWT_SECRET")])
        settings = self.check(["--config", path, "--jwt-secret", "0123456789abcdef-four",
                               "--jwt-secret", "k5=0123456789abcdef-five"], ROOMCAST_JWT_SECRET="k3=0123456789abcdef-3")
        self.assertEqual(settings["jwt-secret"], [("****", "--jwt-secret"), ("k5=****", "--jwt-secret")])

    def test_every_error_of_the_file_is_named_by_line(self):
        path = self.write("port = 9001\nbogus = 1\nhistory = lots\njust words\nport = 9002\nconfig = /x\n"
                          "--rate = 5\nlog-level = loud\njwt-secret =\nhost = not-an-address\n")
        err = self.check_fails(["--config", path])
        for line, what in ((2, "unknown setting 'bogus'"), (3, "bad value 'lots' for history"), (4, "expected"),
                           (5, "port is set twice (first on line 1)"), (6, "config cannot be set in a config file"),
                           (7, "names are written without --"), (8, "bad value 'loud' for log-level"),
                           (9, "bad value (hidden) for jwt-secret"), (10, "bad value 'not-an-address' for host")):
            self.assertRegex(err, re.escape("%s:%d: " % (path, line)) + ".*" + re.escape(what))
        self.assertIn("9 error(s)", err)

    def test_errors_of_the_environment_and_the_command_line(self):
        err = self.check_fails(["--port", "70000", "--nope", "1", "--max-rooms"], ROOMCAST_RATE="fast")
        self.assertIn("ROOMCAST_RATE: bad value 'fast' for rate", err)
        self.assertIn("--port: bad value '70000' for port: expected an integer from 1 to 65535", err)
        self.assertIn("unknown option '--nope'", err)
        self.assertIn("--max-rooms needs a value", err)
        self.assertIn("cannot read config file /nonexistent/roomcast.conf", self.check_fails(["--config", "/nonexistent/roomcast.conf"]))
        self.assertIn("exclude each other", self.check_fails(["--redis", "redis://a", "--redis-cluster", "b:1"]))
        self.assertIn("--admin-port must differ from --port", self.check_fails(["--port", "9000", "--admin-port", "9000"]))

    def test_check_config_checks_the_keys(self):
        err = self.check_fails(["--jwt-secret", "short"])
        self.assertIn("authentication", err)
        err = self.check_fails(["--jwt-public-key", os.path.join(self.tmp.name, "missing.pem")])
        self.assertIn("authentication", err)

    def test_a_bad_setting_stops_the_start_with_exit_2(self):
        path = self.write("max-rooms = 0\n")
        r = run(["--config", path, "--port", str(free_port())])
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s:1: bad value '0' for max-rooms" % path, r.stderr)


class RenamedEnvironment(ConfigTestCase):
    def test_prefixed_names_are_read(self):
        settings = self.check(ROOMCAST_HOST="127.0.0.1", ROOMCAST_REDIS_URL="redis://127.0.0.1:6399",
                              ROOMCAST_ADMIN_PORT="9100", ROOMCAST_ADMIN_HOST="::1", ROOMCAST_LOG_FORMAT="json")
        self.assertEqual(settings["host"], [("127.0.0.1", "ROOMCAST_HOST")])
        self.assertEqual(settings["redis"], [("redis://127.0.0.1:6399", "ROOMCAST_REDIS_URL")])
        self.assertEqual(settings["admin-port"], [("9100", "ROOMCAST_ADMIN_PORT")])
        self.assertEqual(settings["admin-host"], [("::1", "ROOMCAST_ADMIN_HOST")])
        self.assertEqual(settings["log-format"], [("json", "ROOMCAST_LOG_FORMAT")])

    def test_old_names_are_not_read(self):
        r = run(["--check-config"], HOST="10.9.8.7", REDIS_URL="redis://127.0.0.1:6399")
        self.assertEqual(r.returncode, 0, r.stderr)
        settings = effective(r.stdout)
        self.assertEqual(settings["host"], [("0.0.0.0", "default")])
        self.assertNotIn("redis", settings)
        self.assertIn("REDIS_URL is set but no longer read: the server reads ROOMCAST_REDIS_URL", r.stdout)


class ConfigFileAndJsonLogs(ConfigTestCase):
    def test_server_runs_from_a_config_file_with_json_logs(self):
        path = self.write("instance-id = from-the-file\nlog-format = json\nhistory = 5\n")
        server = RoomcastServer(["--config", path], name="config-file", env={"ROOMCAST_LOG_LEVEL": "debug"})
        self.addCleanup(server.cleanup)
        server.start()
        import asyncio
        health = asyncio.run(healthz(server.port))
        self.assertEqual(health["instance"], "from-the-file")
        server.stop()
        lines = [l for l in server.log().splitlines() if l and not l.startswith("### ")]
        self.assertGreater(len(lines), 2)
        for line in lines:
            obj = json.loads(line)
            self.assertEqual(sorted(obj), ["instance", "level", "msg", "ts"], line)
            self.assertEqual(obj["instance"], "from-the-file")
            self.assertIn(obj["level"], ("error", "warn", "info", "debug"))
            self.assertRegex(obj["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        msgs = [json.loads(l)["msg"] for l in lines]
        self.assertTrue(any(m.startswith("settings read from %s" % path) for m in msgs), msgs)
        self.assertTrue(any(m.startswith("roomcast ") and "listening on" in m for m in msgs), msgs)
        self.assertIn("stopped", msgs)

    def test_json_lines_stay_valid_with_any_bytes(self):
        # The instance id is on every line: quotes, backslashes, a tab, non-ASCII and a byte that is not UTF-8.
        # The port is taken, so the server logs its start and its failure, and exits 1.
        odd = b'q"b\\s\t\xc3\xa9\xff'
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            r = subprocess.run([server_binary().encode(), b"--host", b"127.0.0.1", b"--port", str(port).encode(),
                                b"--log-format", b"json", b"--instance-id", odd], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=clean_env(), timeout=TIMEOUT)
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = r.stderr.splitlines()
        self.assertGreaterEqual(len(lines), 2)
        for line in lines:
            obj = json.loads(line.decode("utf-8"))  # strict: the line itself is valid UTF-8
            self.assertEqual(obj["instance"], 'q"b\\s\t\u00e9\ufffd')
        self.assertTrue(any(json.loads(l)["level"] == "error" and "cannot listen" in json.loads(l)["msg"] for l in lines))

    def test_text_logs_by_default(self):
        server = RoomcastServer([], name="text-logs", env={"ROOMCAST_INSTANCE_ID": "texty"})
        self.addCleanup(server.cleanup)
        server.start()
        server.stop()
        lines = [l for l in server.log().splitlines() if l and not l.startswith("### ")]
        for line in lines:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG) \[texty\] ")


if __name__ == "__main__":
    unittest.main()
