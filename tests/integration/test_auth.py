# Authentication (PROTOCOL.md section 8): tokens on the upgrade and the room API, identity and rooms from the
# token, refresh, expiry (close 4001), key rotation and SIGHUP, RS256/ES256 with keys made by the openssl CLI.
# Rule: every token is built here (hmac + base64, or `openssl dgst`) or by `roomcast token`; none by the server's code.
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from roomcast_harness import (TIMEOUT, RoomcastServer, RoomcastTestCase, free_port, handshake_request, http_request,
                              req, server_binary, unique)

SECRET1 = "first-secret-0123456789"
SECRET2 = "second-secret-9876543210"
AUD = "chat"
ISS = "test-issuer"


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(sub="alice", ttl=600, **extra):
    c = {"sub": sub, "exp": int(time.time()) + ttl, "aud": AUD, "iss": ISS}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def hs256(payload, key=SECRET1, kid="s1", alg="HS256", header=None):
    """A token signed with HMAC-SHA256 under key (str or bytes), whatever the header claims."""
    h = header if header is not None else dict({"alg": alg, "typ": "JWT"}, **({"kid": kid} if kid else {}))
    signing = b64url(json.dumps(h)) + "." + b64url(json.dumps(payload))
    key = key.encode() if isinstance(key, str) else key
    return signing + "." + b64url(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=True).stdout


def make_keypair(folder, name, kind):
    """(private PEM path, public PEM path) made by the openssl CLI; kind 'rsa' or 'ec' (P-256)."""
    priv, pub = os.path.join(folder, name + ".key"), os.path.join(folder, name + ".pem")
    if kind == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", priv)
    else:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", priv)
    openssl("pkey", "-in", priv, "-pubout", "-out", pub)
    return priv, pub


def der_ecdsa_to_raw(der):
    """An ECDSA signature as DER SEQUENCE{r, s} -> the 64 bytes r||s that JWS ES256 carries."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


def signed_pem(payload, private_key, alg, kid=None):
    """An RS256 or ES256 token signed by `openssl dgst -sha256 -sign`."""
    h = {"alg": alg, "typ": "JWT"}
    if kid:
        h["kid"] = kid
    signing = b64url(json.dumps(h)) + "." + b64url(json.dumps(payload))
    sig = openssl("dgst", "-sha256", "-sign", private_key, data=signing.encode())
    if alg == "ES256":
        sig = der_ecdsa_to_raw(sig)
    return signing + "." + b64url(sig)


def roomcast_token(*args, env=None):
    out = subprocess.run([server_binary(), "token"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})), timeout=TIMEOUT)
    assert out.returncode == 0, "roomcast token %r failed: %s" % (args, out.stderr.decode())
    return out.stdout.decode().strip()


def token_claims(token):
    return json.loads(b64url_decode(token.split(".")[1]))


class AuthTestCase(RoomcastTestCase):
    """A server with two HS256 secrets (kids s1, s2), an RSA key (kid r1) and an EC key (no kid), aud and iss."""

    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="roomcast-auth-")
        cls.rsa_priv, cls.rsa_pub = make_keypair(cls.keys, "rsa", "rsa")
        cls.ec_priv, cls.ec_pub = make_keypair(cls.keys, "ec", "ec")
        cls.server_args = cls.extra_args + [
            "--jwt-secret", "s1=" + SECRET1, "--jwt-secret", "s2=" + SECRET2,
            "--jwt-public-key", "r1=" + cls.rsa_pub, "--jwt-public-key", cls.ec_pub,
            "--jwt-audience", AUD, "--jwt-issuer", ISS]
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.keys, ignore_errors=True)

    extra_args = []

    async def upgrade(self, path="/ws", headers=()):
        """A raw upgrade request: the HTTP response."""
        return await self.http(handshake_request(path, self.port, headers=list(headers)))

    async def assert_refused(self, path="/ws", headers=(), label=""):
        resp = await self.upgrade(path, headers)
        self.assertEqual(resp.status, 401, "%s: %r" % (label, resp))
        self.assertEqual(resp.json().get("error"), "unauthorized", label)
        self.assertIsNone(resp.header("Sec-WebSocket-Accept"), label)
        return resp

    async def authed(self, token, path="/ws", label="", header=False):
        if header:
            return await self.client(path, label=label, headers={"Authorization": "Bearer " + token})
        sep = "&" if "?" in path else "?"
        return await self.client(path + sep + "token=" + token, label=label)

    async def metric(self, name, label):
        resp = await self.get("/metrics")
        m = re.search(r'^%s\{reason="%s"\} (\d+)$' % (name, label), resp.body.decode(), re.M)
        self.assertIsNotNone(m, "metric %s{reason=%s} missing" % (name, label))
        return int(m.group(1))


class Upgrade(AuthTestCase):

    async def test_every_key_kind_opens(self):
        tokens = {
            "HS256 kid s1": hs256(claims()),
            "HS256 kid s2": hs256(claims(), key=SECRET2, kid="s2"),
            "HS256 without kid": hs256(claims(), key=SECRET2, kid=None),
            "RS256 kid r1": signed_pem(claims(), self.rsa_priv, "RS256", kid="r1"),
            "RS256 without kid": signed_pem(claims(), self.rsa_priv, "RS256"),
            "ES256 without kid": signed_pem(claims(), self.ec_priv, "ES256"),
        }
        for label, token in tokens.items():
            for header in (False, True):
                with self.subTest(token=label, header=header):
                    c = await self.authed(token, label=label, header=header)
                    await c.send({"type": "hello", "user": {"id": "someone", "name": "Someone"}})
                    await c.expect("hello", user={"id": "alice", "name": "alice"})
                    await c.close()

    async def test_refusal_reasons(self):
        now = int(time.time())
        with open(self.rsa_pub, "rb") as f:
            rsa_pem = f.read()
        cases = [
            ("missing", "/ws", ()),
            ("missing", "/ws?token=", ()),
            ("missing", "/ws", [("Authorization", "Basic YWxpY2U6cHc=")]),
            ("malformed", "/ws?token=not-a-token", ()),
            ("malformed", "/ws?token=" + b64url("{}") + "." + b64url("{}"), ()),
            ("too_large", "/ws?token=" + hs256(claims(pad="x" * 4200)), ()),
            ("bad_signature", "/ws?token=" + hs256(claims(), key="wrong-secret-000000000"), ()),
            ("bad_signature", "/ws?token=" + hs256(claims(), key=SECRET2, kid="s1"), ()),
            ("bad_signature", "/ws?token=" + hs256(claims(sub="mallory"))[:-6] + "AAAAAA", ()),
            ("bad_signature", "/ws?token=" + signed_pem(claims(), self.ec_priv, "ES256")[:-6] + "AAAAAA", ()),
            ("alg_mismatch", "/ws?token=" + b64url(json.dumps({"alg": "none"})) + "." + b64url(json.dumps(claims())) + ".", ()),
            # HS256 signed with the RSA key's PEM text: without kid it is tried against the secrets only.
            ("bad_signature", "/ws?token=" + hs256(claims(), key=rsa_pem, kid=None), ()),
            ("alg_mismatch", "/ws?token=" + hs256(claims(), key=rsa_pem, kid="r1"), ()),
            ("alg_mismatch", "/ws?token=" + signed_pem(claims(), self.ec_priv, "ES256", kid="r1"), ()),
            ("expired", "/ws?token=" + hs256(claims(ttl=-120)), ()),
            ("not_yet_valid", "/ws?token=" + hs256(claims(nbf=now + 600)), ()),
            ("audience", "/ws?token=" + hs256(claims(aud="other")), ()),
            ("audience", "/ws?token=" + hs256(claims(aud=None)), ()),
            ("issuer", "/ws?token=" + hs256(claims(iss="evil")), ()),
            ("no_key", "/ws?token=" + hs256(claims(), kid="s9"), ()),
            ("bad_claims", "/ws?token=" + hs256(claims(sub=None)), ()),
            ("bad_claims", "/ws?token=" + hs256(claims(sub="has space")), ()),
            ("bad_claims", "/ws?token=" + hs256(claims(rooms="lobby")), ()),
            ("expired", "/ws", [("Authorization", "Bearer " + hs256(claims(ttl=-120)))]),
        ]
        for reason, path, headers in cases:
            with self.subTest(reason=reason, path=path[:60]):
                before = await self.metric("roomcast_auth_refused_total", reason)
                await self.assert_refused(path, headers, label=reason)
                self.assertEqual(await self.metric("roomcast_auth_refused_total", reason), before + 1, reason)
        log = "\n".join(line for line in self.server.log().splitlines() if not line.startswith("### "))
        self.assertNotIn(SECRET1, log, "a secret reached the log")
        for _, path, headers in cases:
            token = path.partition("token=")[2] or (headers[0][1].split()[-1] if headers else "")
            if len(token) > 20:
                self.assertNotIn(token[-20:], log, "a token reached the log")

    async def test_token_header_wins_and_query_token_works(self):
        c = await self.client("/ws?token=" + hs256(claims(sub="bob")), headers={"Authorization": "Bearer " + hs256(claims())})
        await c.send({"type": "hello", "user": {"id": "x", "name": "x"}})
        await c.expect("hello", user={"id": "alice", "name": "alice"})


class Http(AuthTestCase):

    async def test_statics_healthz_metrics_need_no_token(self):
        for path in ("/", "/index.html", "/app.js", "/healthz", "/metrics"):
            with self.subTest(path=path):
                resp = await self.get(path)
                self.assertEqual(resp.status, 200, resp)

    async def test_room_api_needs_a_bearer_token(self):
        requests = [("POST", "/create-room"), ("GET", "/rooms/lobby"), ("GET", "/join-room/lobby"), ("HEAD", "/rooms/lobby")]
        for method, path in requests:
            for headers in ([], [("Authorization", "Bearer " + hs256(claims(ttl=-120)))],
                            [("Authorization", "Bearer nope")], [("Authorization", hs256(claims()))]):
                with self.subTest(method=method, path=path, headers=headers):
                    resp = await self.http(req(method, path, self.port, headers + [("Connection", "close")]), method=method)
                    self.assertEqual(resp.status, 401, resp)
                    self.assertIn("Bearer", resp.header("WWW-Authenticate", ""))
                    if method != "HEAD":
                        self.assertEqual(resp.json().get("error"), "unauthorized")
        # The query string does not carry tokens for the room API.
        resp = await self.get("/rooms/lobby?token=" + hs256(claims()))
        self.assertEqual(resp.status, 401, resp)

    async def test_room_api_with_a_token(self):
        auth = [("Authorization", "Bearer " + hs256(claims()))]
        resp = await self.http(req("POST", "/create-room", self.port, auth + [("Connection", "close")]), method="POST")
        self.assertEqual(resp.status, 201, resp)
        room = resp.json()["roomId"]
        for path in ("/rooms/" + room, "/join-room/" + room):
            resp = await self.get(path, auth)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["roomId"], room)

    async def test_rooms_claim_on_the_room_api(self):
        auth = [("Authorization", "Bearer " + hs256(claims(rooms=["support-*", "lobby"])))]
        resp = await self.http(req("POST", "/create-room", self.port, auth + [("Connection", "close")]), method="POST")
        self.assertEqual(resp.status, 401, resp)
        self.assertEqual((await self.get("/rooms/support-7", auth)).status, 200)
        self.assertEqual((await self.get("/rooms/lobby", auth)).status, 200)
        self.assertEqual((await self.get("/rooms/other", auth)).status, 401)


class Identity(AuthTestCase):

    async def test_identity_comes_from_the_token(self):
        room = unique("id")
        bob = await self.authed(hs256(claims(sub="bob", name="Bob")), label="bob")
        await bob.join(room)
        alice = await self.authed(hs256(claims(name="Alice")), "/ws?name=Mallory&room=" + room, label="alice")
        me = {"id": "alice", "name": "Alice"}
        joined = await alice.expect("joined", roomId=room)
        self.assertEqual(joined["user"], me)
        self.assertIn(me, joined["members"])
        await bob.expect("presence", event="join", user=me)
        await alice.send({"type": "hello", "user": {"id": "bob", "name": "Bob"}})
        await alice.expect("hello", user=me)
        await alice.send({"type": "join", "roomId": room, "user": {"id": "bob", "name": "Bob"}})
        self.assertEqual((await alice.expect("joined", roomId=room))["user"], me)
        await alice.send({"type": "chat", "roomId": room, "message": "hi", "user": {"id": "bob", "name": "Bob"}})
        got = await bob.wait_for("chat")
        self.assertEqual(got["user"], me)
        resp = await self.get("/rooms/" + room, [("Authorization", "Bearer " + hs256(claims()))])
        self.assertCountEqual(resp.json()["members"], [me, {"id": "bob", "name": "Bob"}])
        await alice.close()
        await bob.expect("presence", event="leave", user=me)

    async def test_rooms_claim(self):
        c = await self.authed(hs256(claims(rooms=["support-*", "lobby"])), "/ws?room=elsewhere")
        await c.expect_error("unauthorized")
        await c.join("support-" + unique())
        await c.join("lobby")
        await c.send({"type": "join", "roomId": "other", "ref": 1})
        await c.expect_error("unauthorized", ref=1)
        await c.send({"type": "chat", "roomId": "other", "message": "x", "ref": 2})
        await c.expect_error("unauthorized", ref=2)
        await c.send({"type": "chat", "roomId": "lobby", "message": "x", "ref": 3})
        await c.wait_for("ack", pred=lambda m: m.get("ref") == 3)
        await c.send({"type": "create", "ref": 4})
        await c.expect_error("unauthorized", ref=4)
        free = await self.authed(hs256(claims(sub="carol")))
        await free.send({"type": "create"})
        await free.expect("created")


class Refresh(AuthTestCase):

    async def test_refresh_same_sub_other_sub_invalid(self):
        c = await self.authed(hs256(claims(ttl=300)))
        new = claims(ttl=900, rooms=["lobby"])
        await c.send({"type": "refresh", "token": hs256(new), "ref": "r1"})
        await c.expect("refreshed", exp=new["exp"], ref="r1")
        # The new claims apply: the rooms claim now limits this connection.
        await c.send({"type": "join", "roomId": "elsewhere"})
        await c.expect_error("unauthorized")
        await c.join("lobby")
        await c.send({"type": "refresh", "token": hs256(claims(sub="bob", ttl=5000)), "ref": "r2"})
        await c.expect_error("unauthorized", ref="r2")
        for bad in (hs256(claims(ttl=-100)), "garbage", hs256(claims(), key="wrong-secret-000000000")):
            await c.send({"type": "refresh", "token": bad})
            await c.expect_error("unauthorized")
        # Nothing changed: still alice, still limited to lobby.
        await c.send({"type": "hello", "user": {"id": "z", "name": "z"}})
        await c.expect("hello", user={"id": "alice", "name": "alice"})
        await c.send({"type": "join", "roomId": "elsewhere"})
        await c.expect_error("unauthorized")


class Expiry(AuthTestCase):
    extra_args = ["--jwt-leeway", "0", "--ping-interval", "30"]

    async def test_expired_token_closes_4001(self):
        c = await self.authed(hs256(claims(ttl=2)))
        await c.ping()
        start = time.monotonic()
        await c.expect_close(4001, timeout=6)
        self.assertGreater(time.monotonic() - start, 0.5)

    async def test_refresh_extends(self):
        c = await self.authed(hs256(claims(ttl=2)))
        await c.send({"type": "refresh", "token": hs256(claims(ttl=60))})
        await c.expect("refreshed")
        await asyncio.sleep(3.5)
        await c.ping()
        other = await self.authed(hs256(claims(sub="bob", ttl=2)))
        await other.send({"type": "refresh", "token": hs256(claims(ttl=60))})  # alice's token: refused
        await other.expect_error("unauthorized")
        await other.expect_close(4001, timeout=6)


class TokenCommand(AuthTestCase):

    async def test_minted_token_opens(self):
        token = roomcast_token("--secret", SECRET1, "--kid", "s1", "--sub", "dave", "--name", "Dave D",
                               "--rooms", "support-*,lobby", "--ttl", "10m", "--aud", AUD, "--iss", ISS)
        c = token_claims(token)
        self.assertEqual((c["sub"], c["name"], c["rooms"], c["aud"], c["iss"]), ("dave", "Dave D", ["support-*", "lobby"], AUD, ISS))
        self.assertAlmostEqual(c["exp"] - time.time(), 600, delta=30)
        self.assertEqual(json.loads(b64url_decode(token.split(".")[0]))["kid"], "s1")
        ws = await self.authed(token)
        await ws.join("lobby")
        await ws.send({"type": "join", "roomId": "nope"})
        await ws.expect_error("unauthorized")

    async def test_secret_from_the_environment_names_its_kid(self):
        token = roomcast_token("--sub", "erin", "--aud", AUD, "--iss", ISS, env={"ROOMCAST_JWT_SECRET": "s2=" + SECRET2})
        self.assertEqual(json.loads(b64url_decode(token.split(".")[0]))["kid"], "s2")
        ws = await self.authed(token)
        await ws.send({"type": "hello", "user": {"id": "x", "name": "x"}})
        await ws.expect("hello", user={"id": "erin", "name": "erin"})
        token = roomcast_token("--kid", "s1", "--secret", "s2=" + SECRET1, "--sub", "erin")
        self.assertEqual(json.loads(b64url_decode(token.split(".")[0]))["kid"], "s1", "--kid wins")

    async def test_bad_arguments(self):
        for args in ([], ["--secret", SECRET1], ["--secret", SECRET1, "--sub", "a b"], ["--secret", "short", "--sub", "a"],
                     ["--secret", SECRET1, "--sub", "a", "--ttl", "soon"], ["--secret", SECRET1, "--sub", "a", "--bogus", "1"]):
            with self.subTest(args=args):
                out = subprocess.run([server_binary(), "token"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                self.assertEqual(out.returncode, 2, out)
                self.assertEqual(out.stdout, b"")


class Rotation(RoomcastTestCase):
    """Keys from the environment and the command line; SIGHUP reloads key files, a bad file keeps the old keys."""

    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="roomcast-auth-")
        cls.priv_a, cls.pub_a = make_keypair(cls.keys, "a", "rsa")
        cls.priv_b, cls.pub_b = make_keypair(cls.keys, "b", "ec")
        cls.live = os.path.join(cls.keys, "live.pem")
        shutil.copy(cls.pub_a, cls.live)
        cls.server_args = ["--jwt-secret", "old=" + SECRET1, "--jwt-secret", "new=" + SECRET2,
                           "--jwt-public-key", "pk=" + cls.live]
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.keys, ignore_errors=True)

    async def opens(self, token):
        resp = await self.http(handshake_request("/ws?token=" + token, self.port))
        return resp.status

    async def wait_log(self, text, count):
        deadline = time.monotonic() + TIMEOUT
        while self.server.log().count(text) < count:
            self.assertLess(time.monotonic(), deadline, "no %r in the log" % text)
            await asyncio.sleep(0.05)

    async def test_two_secrets_by_kid(self):
        p = {"sub": "alice", "exp": int(time.time()) + 600}
        self.assertEqual(await self.opens(hs256(p, SECRET1, kid="old")), 101)
        self.assertEqual(await self.opens(hs256(p, SECRET2, kid="new")), 101)
        self.assertEqual(await self.opens(hs256(p, SECRET1, kid="new")), 401)
        self.assertEqual(await self.opens(hs256(p, SECRET2, kid=None)), 101)

    async def test_sighup_reloads_key_files(self):
        p = {"sub": "alice", "exp": int(time.time()) + 600}
        token_a = signed_pem(p, self.priv_a, "RS256", kid="pk")
        token_b = signed_pem(p, self.priv_b, "ES256", kid="pk")
        self.assertEqual(await self.opens(token_a), 101)
        self.assertEqual(await self.opens(token_b), 401)
        # A connection opened with the old key stays (its token was valid when checked).
        held = await self.client("/ws?token=" + token_a)
        shutil.copy(self.pub_b, self.live)
        self.server.signal(signal.SIGHUP)
        await self.wait_log("SIGHUP: reloaded", 1)
        self.assertEqual(await self.opens(token_a), 401)
        self.assertEqual(await self.opens(token_b), 101)
        with open(self.live, "w") as f:
            f.write("-----BEGIN PUBLIC KEY-----\nbroken\n-----END PUBLIC KEY-----\n")
        self.server.signal(signal.SIGHUP)
        await self.wait_log("SIGHUP: key files not reloaded", 1)
        self.assertEqual(await self.opens(token_b), 101)
        self.assertEqual(await self.opens(token_a), 401)
        await held.ping()
        log = self.server.log()
        self.assertNotIn("broken", log, "a key file's content reached the log")
        for pub in (self.pub_a, self.pub_b):
            with open(pub) as f:
                self.assertNotIn(f.read().splitlines()[1], log, "key material reached the log")


class EnvironmentKeys(RoomcastTestCase):
    """ROOMCAST_JWT_SECRET turns authentication on; a bad key setting stops the start with a message."""

    @classmethod
    def setUpClass(cls):
        super(RoomcastTestCase, cls).setUpClass()
        cls.server = RoomcastServer([], name=cls.__name__, env={"ROOMCAST_JWT_SECRET": SECRET1})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.port = cls.server.port

    async def test_environment_secret(self):
        p = {"sub": "erin", "exp": int(time.time()) + 600}
        ok = await self.http(handshake_request("/ws?token=" + hs256(p, SECRET1, kid=None), self.port))
        self.assertEqual(ok.status, 101)
        no = await self.http(handshake_request("/ws", self.port))
        self.assertEqual(no.status, 401)

    async def test_command_line_replaces_the_environment(self):
        server = RoomcastServer(["--jwt-secret", SECRET2], name="cli-over-env", env={"ROOMCAST_JWT_SECRET": SECRET1})
        try:
            server.start()
            p = {"sub": "erin", "exp": int(time.time()) + 600}
            refused = await http_request(server.port, handshake_request("/ws?token=" + hs256(p, SECRET1, kid=None), server.port))
            self.assertEqual(refused.status, 401)
            ok = await http_request(server.port, handshake_request("/ws?token=" + hs256(p, SECRET2, kid=None), server.port))
            self.assertEqual(ok.status, 101)
            server.stop()
        finally:
            server.cleanup()

    def test_bad_key_settings_stop_the_start(self):
        for args in (["--jwt-secret", "short"], ["--jwt-public-key", "/nonexistent.pem"]):
            with self.subTest(args=args):
                out = subprocess.run([server_binary(), "--port", str(free_port())] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, timeout=TIMEOUT)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn(b"authentication", out.stdout)
                self.assertNotIn(b"short", out.stdout.replace(b"--jwt-secret", b""))


class AuthOff(RoomcastTestCase):
    """Without a key nothing of section 8 applies: tokens are ignored, refresh is bad_request."""

    async def test_tokens_ignored_refresh_refused(self):
        c = await self.client("/ws?token=garbage&name=Zed")
        await c.send({"type": "hello", "user": {"id": "zed", "name": "Zed"}})
        await c.expect("hello")
        await c.send({"type": "refresh", "token": hs256(claims())})
        await c.expect_error("bad_request")
        resp = await self.get("/rooms/lobby", [("Authorization", "Bearer garbage")])
        self.assertEqual(resp.status, 200, resp)
