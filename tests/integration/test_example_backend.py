# examples/backend against a real roomcast (standalone, --jwt-secret and --api-key): its tokens open WebSockets
# and the room routes with the token's identity, its HTTP endpoint hands out working tokens and web-client
# URLs, and its publish (function and CLI) reaches the members of a room.
# Rule: the example is used exactly as its README says (environment variables, its CLI, its HTTP endpoint).

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from roomcast_harness import RoomcastTestCase, WsClient, unique

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "examples", "backend"))
EXAMPLE = os.path.join(EXAMPLE_DIR, "backend.py")
sys.path.insert(0, EXAMPLE_DIR)
import backend  # noqa: E402  (the example itself)

SECRET = "example-backend-secret-0123456789"
API_KEY = "example-backend-api-key"


def http(url, headers=None, method="GET"):
    """(status, headers, body) without following redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}, method=method), timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class ExampleBackend(RoomcastTestCase):
    server_args = ["--jwt-secret", SECRET, "--api-key", API_KEY]

    def env(self):
        return dict(os.environ, ROOMCAST_JWT_SECRET=SECRET, ROOMCAST_API_KEY=API_KEY,
                    ROOMCAST_URL="http://127.0.0.1:%d" % self.port, PYTHONDONTWRITEBYTECODE="1")

    def cli(self, *args):
        return subprocess.run([sys.executable, EXAMPLE] + list(args), env=self.env(), capture_output=True,
                              text=True, timeout=30)

    async def connect(self, token, label):
        c = await WsClient.connect(self.port, "/ws?token=" + urllib.parse.quote(token), label=label)
        self._clients.append(c)
        return c

    async def test_minted_token_is_the_identity(self):
        token = backend.mint_token(SECRET, "alice", name="Alice", ttl=600)
        c = await self.connect(token, "alice")
        await c.send({"type": "hello", "user": {"id": "someone-else", "name": "Nope"}})
        await c.expect("hello", user={"id": "alice", "name": "Alice"})
        room = unique("ex")
        await c.send({"type": "join", "roomId": room})
        await c.expect("joined", roomId=room)
        # The room route takes it as a Bearer token; a wrong secret or an expired token is refused.
        url = "http://127.0.0.1:%d/rooms/%s" % (self.port, room)
        status, _, _ = http(url, {"Authorization": "Bearer " + token})
        self.assertEqual(status, 200)
        for bad in (backend.mint_token("another-secret-0123456789", "alice"),
                    backend.mint_token(SECRET, "alice", ttl=600, now=time.time() - 7200)):
            status, _, body = http(url, {"Authorization": "Bearer " + bad})
            self.assertEqual((status, json.loads(body)["error"]), (401, "unauthorized"))

    async def test_rooms_claim_and_cli_token(self):
        r = self.cli("token", "dave", "--name", "Dave", "--rooms", "support-*")
        self.assertEqual(r.returncode, 0, r.stderr)
        c = await self.connect(r.stdout.strip(), "dave")
        await c.send({"type": "join", "roomId": "support-1"})
        joined = await c.expect("joined", roomId="support-1")
        self.assertEqual(joined["user"], {"id": "dave", "name": "Dave"})
        await c.send({"type": "join", "roomId": "elsewhere"})
        await c.expect_error("unauthorized")

    async def test_http_endpoint_hands_out_tokens_and_urls(self):
        proc = subprocess.Popen([sys.executable, EXAMPLE, "serve", "--port", "0"], env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline()
            self.assertIn("backend: on http://127.0.0.1:", line)
            base = line.split()[2].rstrip("/")
            status, _, body = http(base + "/token?user=carol&name=Carol")
            self.assertEqual(status, 200, body)
            answer = json.loads(body)
            self.assertEqual(answer["url"], "http://127.0.0.1:%d/?token=%s" % (self.port, answer["token"]))
            c = await self.connect(answer["token"], "carol")
            await c.send({"type": "hello", "user": {"id": "x", "name": "x"}})
            await c.expect("hello", user={"id": "carol", "name": "Carol"})

            status, headers, _ = http(base + "/chat?user=erin&room=lobby")
            self.assertEqual(status, 302)
            loc = urllib.parse.urlsplit(headers["Location"])
            self.assertEqual("%s://%s%s" % (loc.scheme, loc.netloc, loc.path), "http://127.0.0.1:%d/" % self.port)
            q = urllib.parse.parse_qs(loc.query)
            self.assertEqual(q["room"], ["lobby"])
            # The web client page itself answers there.
            status, _, page = http(headers["Location"])
            self.assertEqual(status, 200)
            self.assertIn(b"app.js", page)
            c2 = await self.connect(q["token"][0], "erin")
            await c2.send({"type": "hello", "user": {"id": "x", "name": "x"}})
            await c2.expect("hello", user={"id": "erin", "name": "erin"})

            status, _, _ = http(base + "/token?user=has%20space")
            self.assertEqual(status, 400)
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()

    async def test_publish_function_and_cli(self):
        room = unique("pub")
        c = await self.connect(backend.mint_token(SECRET, "ann", name="Ann"), "ann")
        await c.send({"type": "join", "roomId": room})
        await c.expect("joined", roomId=room)

        answer = backend.publish("http://127.0.0.1:%d" % self.port, API_KEY, room, "from the function")
        ev = await c.wait_for("chat")
        self.assertEqual((ev["id"], ev["message"], ev["user"]),
                         (answer["id"], "from the function", {"id": "server", "name": "server"}))

        r = self.cli("publish", room, "from the CLI", "--user-id", "ci-bot", "--user-name", "CI")
        self.assertEqual(r.returncode, 0, r.stderr)
        ev = await c.wait_for("chat")
        self.assertEqual((ev["id"], ev["message"], ev["user"]),
                         (json.loads(r.stdout)["id"], "from the CLI", {"id": "ci-bot", "name": "CI"}))

        with self.assertRaisesRegex(RuntimeError, "HTTP 401"):
            backend.publish("http://127.0.0.1:%d" % self.port, "wrong-key", room, "never")
        r = self.cli("publish", "bad room", "x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("HTTP 400", r.stderr)
