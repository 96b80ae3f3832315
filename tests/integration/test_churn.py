# Churn (PROTOCOL.md sections 3-6 under load): clients come and go in every way while rooms are busy.
# Rule: no crash or sanitizer report, steady members see every message in order, and every count returns to its base.
import asyncio
import json
import random
import time

from roomcast_harness import (OP_BINARY, OP_CLOSE, OP_TEXT, HttpConn, RawWs, RoomcastTestCase, WsClient, build_frame,
                              close_payload, healthz, req, unique, user)

DURATION = 5.0


class Churn(RoomcastTestCase):
    server_args = ["--rate", "10000", "--max-outbound", "262144", "--ping-interval", "1"]

    async def test_clients_come_and_go_while_rooms_are_busy(self):
        rng = random.Random(1234)
        rooms = [unique("churn") for _ in range(3)]
        base = (await healthz(self.port))["connections"]
        steady = []
        for i, r in enumerate(rooms):
            c = await self.client(label="steady%d" % i)
            await c.hello(user("steady%d" % i))
            await c.join(r)
            steady.append(c)
        pub = await self.client(label="pub")
        sent = {r: 0 for r in rooms}
        stop = time.monotonic() + DURATION
        errors = []

        async def publisher():
            while time.monotonic() < stop:
                r = rng.choice(rooms)
                await pub.send({"type": "chat", "roomId": r, "message": "%s#%06d" % (r, sent[r])})
                sent[r] += 1
                await asyncio.sleep(0.002)

        async def one_visitor(n):
            r = rng.choice(rooms)
            kind = rng.choice(["clean", "abort", "violation", "midframe", "slow", "leave", "http_cut", "bigjson"])
            try:
                if kind == "http_cut":
                    conn = await HttpConn.open(self.port)
                    await conn.send(req("GET", "/rooms/" + r, self.port)[:rng.randint(1, 30)])
                    conn.writer.transport.abort()
                    return
                raw = await RawWs.connect(self.port, "/ws?room=%s&name=v%d" % (r, n),
                                          rcvbuf=4096 if kind == "slow" else None)
                if kind == "slow":
                    raw.pause_reading()
                    await asyncio.sleep(rng.uniform(0.1, 1.5))
                    raw.writer.transport.abort()
                    return
                await raw.expect_json("joined")
                for _ in range(rng.randint(0, 5)):
                    await raw.send_text({"type": "chat", "roomId": r, "message": "visitor %d" % n})
                await asyncio.sleep(rng.uniform(0, 0.2))
                if kind == "clean":
                    await raw.send_frame(OP_CLOSE, close_payload(1000))
                    await raw.expect_eof()
                elif kind == "abort":
                    raw.writer.transport.abort()
                elif kind == "violation":
                    await raw.send(build_frame(OP_BINARY, b"\x00\x01"))
                    await raw.expect_eof()
                elif kind == "midframe":
                    await raw.send(build_frame(OP_TEXT, b'{"type":"chat","roomId":"x","message":"cut"}')[:9])
                    raw.writer.transport.abort()
                elif kind == "leave":
                    await raw.send_text({"type": "leave", "roomId": r})
                    await raw.send_text({"type": "join", "roomId": rng.choice(rooms)})
                    await raw.send_text({"type": "create"})
                    await asyncio.sleep(0.05)
                    raw.writer.transport.abort()
                elif kind == "bigjson":
                    await raw.send_text('{"type":"ping","x":' + "[" * 20000 + "]" * 20000 + "}")
                    await raw.send_text({"type": "chat", "roomId": r, "message": "z" * 16000})
                    await asyncio.sleep(0.05)
                    raw.writer.transport.abort()
            except (ConnectionError, EOFError, asyncio.IncompleteReadError):
                pass  # the server may close first; that is not what is checked here
            except AssertionError as e:
                errors.append("visitor %d (%s): %s" % (n, kind, e))

        async def visitors():
            n = 0
            while time.monotonic() < stop:
                batch = [one_visitor(n + i) for i in range(8)]
                n += 8
                await asyncio.gather(*batch)
            return n

        pub_task = asyncio.ensure_future(publisher())
        n_visitors = await visitors()
        await pub_task
        self.assertEqual(errors, [])
        self.assertTrue(self.server.alive(), self.server.log_tail())

        # steady members got every publisher message of their room, in order
        for r, c in zip(rooms, steady):
            got = []
            while len(got) < sent[r]:
                m = await c.recv(timeout=20)
                if m["type"] == "chat" and m["user"]["id"] != c.label and m["message"].startswith(r + "#"):
                    got.append(m["message"])
            self.assertEqual(got, ["%s#%06d" % (r, i) for i in range(sent[r])])

        # every visitor is gone: the counts return to the steady state
        deadline = time.monotonic() + 15
        while True:
            counts = [(await self.get("/rooms/" + r)).json()["count"] for r in rooms]
            conns = (await healthz(self.port))["connections"]
            if (counts == [1, 1, 1] and conns == base + 4) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        self.assertEqual(counts, [1, 1, 1], "room member counts after %d visitors" % n_visitors)
        self.assertEqual(conns, base + 4, "healthz connections after %d visitors" % n_visitors)
        # presence told the same story: every visitor that was announced also left
        for r, c in zip(rooms, steady):
            while True:
                try:
                    await c.recv(timeout=1.0)
                except AssertionError:
                    break
            net = {}
            for m in c.history:
                if m.get("type") == "presence" and m["roomId"] == r and m["user"]["id"] != c.label:
                    net[m["user"]["id"]] = net.get(m["user"]["id"], 0) + (1 if m["event"] == "join" else -1)
            self.assertEqual({k: v for k, v in net.items() if v != 0}, {}, "presence joins without leaves in " + r)
            await c.send({"type": "ping", "ref": "survived"})
            await c.wait_for("pong", pred=lambda m: m.get("ref") == "survived")


if __name__ == "__main__":
    import unittest
    unittest.main()
