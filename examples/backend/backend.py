#!/usr/bin/env python3
"""A tiny application backend for roomcast, Python 3 standard library only.

It does the two things a backend does next to roomcast:
  - mints a token (HS256 JWT, PROTOCOL.md section 8) for a user, with the secret roomcast was started with
    (--jwt-secret), and hands the browser a web-client URL carrying it;
  - posts into a room through the server API (POST /api/publish, section 9) with the API key (--api-key).

Configuration (environment):
  ROOMCAST_JWT_SECRET  the secret given to roomcast --jwt-secret      (required for tokens)
  ROOMCAST_API_KEY     the key given to roomcast --api-key            (required for publish)
  ROOMCAST_URL         where roomcast answers (default http://localhost:8080)

Commands:
  backend.py serve [--port 8000]                      HTTP: GET /token?user=ID&name=NAME  -> JSON
                                                            GET /chat?user=ID&name=NAME   -> redirect to the web client
  backend.py token USER_ID [--name NAME] [--ttl 3600] [--rooms 'support-*,lobby']   prints a token
  backend.py publish ROOM MESSAGE [--user-id ID --user-name NAME]                  prints {"id": ...}

This example trusts whoever asks for a token. A real backend mints a token only for the user its own login
says is signed in, and never sends the API key to a browser.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # user and room ids (PROTOCOL.md section 2)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(secret, sub, name=None, ttl=3600, rooms=None, now=None):
    """Returns an HS256 JWT for user `sub`, valid `ttl` seconds (claims: sub, name, iat, exp, rooms)."""
    if not ID_RE.match(sub):
        raise ValueError("user id: 1-64 characters of A-Z a-z 0-9 _ - . :")
    iat = int(time.time() if now is None else now)
    claims = {"sub": sub, "iat": iat, "exp": iat + int(ttl)}
    if name:
        claims["name"] = name
    if rooms:
        claims["rooms"] = list(rooms)
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     _b64url(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()))
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


def publish(base_url, api_key, room_id, message, user=None, timeout=10):
    """Posts `message` into `room_id` as `user` ({"id","name"}; default: roomcast's "server").
    Returns the answer as a dict ({"id": <chat id>}); raises RuntimeError with the status and body otherwise."""
    body = {"roomId": room_id, "message": message}
    if user:
        body["user"] = user
    request = urllib.request.Request(
        base_url.rstrip("/") + "/api/publish", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + api_key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"publish failed: HTTP {e.code} {e.read().decode(errors='replace')}") from None


def client_url(base_url, token, room=None):
    """The web client's address for a user holding `token` (optionally opening `room`)."""
    query = {"room": room} if room else {}
    query["token"] = token
    return base_url.rstrip("/") + "/?" + urllib.parse.urlencode(query)


class Handler(BaseHTTPRequestHandler):
    secret = ""
    roomcast_url = ""
    ttl = 3600

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path not in ("/token", "/chat"):
            return self._json(404, {"error": "not_found"})
        uid = q.get("user", "")
        if not ID_RE.match(uid):
            return self._json(400, {"error": "user: 1-64 characters of A-Z a-z 0-9 _ - . :"})
        token = mint_token(self.secret, uid, name=q.get("name") or None, ttl=self.ttl)
        url_for_user = client_url(self.roomcast_url, token, q.get("room") or None)
        if url.path == "/chat":
            self.send_response(302)
            self.send_header("Location", url_for_user)
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            return None
        return self._json(200, {"token": token, "expiresIn": self.ttl, "url": url_for_user})

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # no tokens in the log: print the path only, without the query
        sys.stderr.write("backend: %s %s\n" % (self.command, urllib.parse.urlsplit(self.path).path))


def _need(name):
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"backend: set {name} (the value roomcast was started with)")
    return value


def main(argv=None):
    roomcast_url = os.environ.get("ROOMCAST_URL", "http://localhost:8080")
    p = argparse.ArgumentParser(description="A tiny roomcast backend: tokens and publishing.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="HTTP endpoint minting tokens")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--ttl", type=int, default=3600)
    t = sub.add_parser("token", help="print a token")
    t.add_argument("user_id")
    t.add_argument("--name")
    t.add_argument("--ttl", type=int, default=3600)
    t.add_argument("--rooms", help="comma-separated room ids or prefixes ending in *")
    pub = sub.add_parser("publish", help="post a message into a room")
    pub.add_argument("room")
    pub.add_argument("message")
    pub.add_argument("--user-id")
    pub.add_argument("--user-name")
    a = p.parse_args(argv)

    if a.cmd == "token":
        rooms = [r for r in (a.rooms or "").split(",") if r]
        print(mint_token(_need("ROOMCAST_JWT_SECRET"), a.user_id, a.name, a.ttl, rooms or None))
    elif a.cmd == "publish":
        user = None
        if a.user_id:
            user = {"id": a.user_id, "name": a.user_name or a.user_id}
        try:
            print(json.dumps(publish(roomcast_url, _need("ROOMCAST_API_KEY"), a.room, a.message, user)))
        except (RuntimeError, OSError) as e:
            sys.exit(f"backend: {e}")
    else:
        Handler.secret = _need("ROOMCAST_JWT_SECRET")
        Handler.roomcast_url = roomcast_url
        Handler.ttl = a.ttl
        server = ThreadingHTTPServer((a.host, a.port), Handler)
        print(f"backend: on http://{a.host}:{server.server_address[1]}/ "
              f"(GET /token?user=ID&name=NAME, GET /chat?user=ID&name=NAME); roomcast at {roomcast_url}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
