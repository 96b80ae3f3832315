# Regression tests of findings 2 and 3 (PROTOCOL.md sections 4-5: room order, "no gap and no duplicate").
# Rule: whatever a joiner gets in `joined.history` it never gets again live, and nothing between is missing,
# whether the join races an outage of its instance's Redis link or just a busy room.
import asyncio
import collections
import json
import socket
import time

import websockets

from cluster_harness import ClusterTestCase, id_parts, unique, user, wait_until
from guarantees_harness import LONG, LinkProxy, assert_once_in_order, chats_of

ROOMS = 6
BUSY = b"local x = 0 for i = 1, 500000 do x = x + i end return x"


class JoinDuringOutage(ClusterTestCase):

    async def test_join_while_instance_cut_from_redis(self):
        """Finding 2. i1 reaches Redis through a link that is cut (both of i1's Redis connections reset, new ones
        refused) and restored twice; i2 is unaffected. In each of 6 rooms a watcher on i1 stays joined throughout.
        During each cut a fresh client joins every room on i1 (its `joined` must wait for Redis) while chats
        are posted to every room from i2; after the restore more chats are posted. Asserts, for every joiner and
        watcher: history + live chats = every acked chat of its room (since before it joined) exactly once, in
        increasing id order, i.e. nothing that came in `joined.history` comes again live."""
        proxy = LinkProxy(self.redis.port)
        await proxy.start()
        self.addAsyncCleanup(proxy.close)
        i1 = await self.launch("i1", redis_url=proxy.url)
        i2 = await self.launch("i2")
        rooms = [unique("cut%d" % k) for k in range(ROOMS)]
        pub = await self.peer(i2, "pub")
        await pub.hello(user("pub"))
        acked = {r: [] for r in rooms}

        async def post(tag):
            for r in rooms:
                for k in range(3):
                    ref = "%s-%s-%d" % (tag, r, k)
                    acked[r].append((await pub.chat_acked(r, ref, ref=ref))["id"])

        watchers = {}
        for r in rooms:
            watchers[r], _ = await self.member(i1, "w-" + r, r)
        await post("pre")
        checks = [(watchers[r], r, None) for r in rooms]   # (client, room, its joined if it joined in a cut)

        for cycle in range(2):
            joiners = {}
            for r in rooms:
                j = await self.peer(i1, "j%d-%s" % (cycle, r))
                await j.hello(user("j%d-%s" % (cycle, r)))
                joiners[r] = j
            proxy.cut()
            await self.wait_health(i1, 503, "down", timeout=LONG)
            for r in rooms:
                await joiners[r].send({"type": "join", "roomId": r})
            await post("cut%d" % cycle)
            proxy.restore()
            await self.wait_health(i1, 200, "up", timeout=LONG)
            for r in rooms:
                joined = await joiners[r].take("joined", timeout=LONG, roomId=r)
                checks.append((joiners[r], r, joined))
            await post("after%d" % cycle)

        last = {r: acked[r][-1] for r in rooms}
        for peer, r, _ in checks:
            await peer.take("chat", timeout=LONG, roomId=r, id=last[r])
        await asyncio.sleep(0.5)   # room for late duplicates
        for peer, r, joined in checks:
            # Every chat of the room is within --history (50): a joiner must have them all, once.
            history = [e["id"] for e in joined["history"]] if joined else []
            got = history + [e["id"] for e in chats_of(peer, r)]
            assert_once_in_order(self, "%s in %s (history %d + live)" % (peer.label, r, len(history)), got, acked[r])


class JoinBusyRoom(ClusterTestCase):
    JOINERS = 400
    AT_ONCE = 8
    instance_args = ["--log-level", "info", "--rate", "100000", "--history", "5"]

    async def test_joiners_of_a_busy_room_see_each_chat_once(self):
        """Finding 3 (no fault). A publisher on i1 pumps chats into room R as fast as acks come back (a few in
        flight); on i2 a member stays in R (the room stays subscribed there) while 400 fresh connections, eight
        at a time, join R, read for a moment and close. Another client of the same Redis runs ~3 ms scripts
        back to back, so Redis handles what arrived meanwhile (chats, history reads) in one go, as a busy Redis
        does; events are 8 KB and --history 5, so a history reply is short next to the chats on the
        subscription connection. (On the code of the finding ~4% of the joiners see duplicates.) Asserts, for every joiner and for the member:
        `joined.history` + live chats are strictly increasing ids, without duplicates, and without a gap
        (a contiguous run of the publisher's acked ids, the first live chat following the last history
        entry)."""
        i1, i2 = await self.launch_n(2)
        room = unique("busy")
        anchor = await websockets.connect("ws://127.0.0.1:%d/ws" % i2.port, compression=None, ping_interval=None,
                                          max_size=None, max_queue=None)
        self.addAsyncCleanup(anchor.close)
        await anchor.send(json.dumps({"type": "join", "roomId": room}))
        self.assertEqual(json.loads(await asyncio.wait_for(anchor.recv(), LONG))["type"], "joined")
        anchor_ids = []

        async def anchor_reader():
            # Only ids are kept: the anchor sees every one of thousands of 8 KB chats.
            while True:
                msg = json.loads(await anchor.recv())
                if msg.get("type") == "chat":
                    anchor_ids.append(msg["id"])
        anchor_task = asyncio.get_running_loop().create_task(anchor_reader())
        pub = await self.peer(i1, "pub")
        await pub.hello(user("pub"))
        acks = []
        stop = asyncio.Event()

        async def pump():
            # A window of chats in flight; refs are the sequence numbers.
            n = 0
            window = 16
            pad = "x" * 8000
            while not stop.is_set():
                for k in range(window):
                    await pub.chat(room, "m%06d %s" % (n + k, pad), ref=n + k)
                for k in range(window):
                    a = await pub.answer(n + k, timeout=LONG)
                    self.assertEqual(a["type"], "ack", a)
                    acks.append(a["id"])
                n += window
                pub.seen.clear()   # keep memory flat: the publisher is not a member, only acks come back

        def neighbour():
            # Another tenant of the Redis: scripts of about a millisecond, back to back with pauses, so that
            # Redis handles what arrived meanwhile (chats and history reads) together, as a busy Redis does.
            with socket.create_connection(("127.0.0.1", self.redis.port)) as s:
                f = s.makefile("rb")
                cmd = b"*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(BUSY), BUSY)
                while not stop.is_set():
                    s.sendall(cmd)
                    f.readline()
                    time.sleep(0.001)

        pumping = asyncio.get_running_loop().create_task(pump())
        noisy = asyncio.get_running_loop().create_task(asyncio.to_thread(neighbour))
        await asyncio.sleep(0.5)
        problems = []
        runs = []   # (label, history ids, live ids), checked once every ack is in
        uri = "ws://127.0.0.1:%d/ws" % i2.port

        async def one_joiner(n):
            async with websockets.connect(uri, compression=None, ping_interval=None, max_size=None,
                                          max_queue=None) as ws:
                await ws.send(json.dumps({"type": "join", "roomId": room}))
                joined = None
                live = []
                deadline = time.monotonic() + 0.25
                while True:
                    left = deadline - time.monotonic() if joined else LONG
                    if left <= 0:
                        break
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), left))
                    except asyncio.TimeoutError:
                        break
                    if msg.get("type") == "joined":
                        joined = msg
                    elif msg.get("type") == "chat":
                        if joined is None:
                            problems.append("joiner %d: a chat before `joined`: %r" % (n, msg))
                        live.append(msg["id"])
                if joined is None:
                    problems.append("joiner %d: no joined" % n)
                    return
                runs.append(("joiner %d" % n, [e["id"] for e in joined["history"]], live))

        def check_run(out, label, history, live):
            ids = history + live
            parts = [id_parts(i) for i in ids]
            dups = sorted(i for i, c in collections.Counter(ids).items() if c > 1)
            if dups:
                out.append("%s: duplicates %r (history %d ids ending %r, live starting %r)"
                           % (label, dups[:5], len(history), history[-3:], live[:3]))
                return
            if any(b <= a for a, b in zip(parts, parts[1:])):
                out.append("%s: ids not increasing: %r" % (label, ids[:60]))
                return
            unknown = [i for i in ids if i not in pos]
            if unknown:
                out.append("%s: ids never acked to the publisher: %r" % (label, unknown[:5]))
            elif ids:
                run = [pos[i] for i in ids]
                if run != list(range(run[0], run[0] + len(run))):
                    gaps = [(ids[k], ids[k + 1]) for k in range(len(run) - 1) if run[k + 1] != run[k] + 1]
                    out.append("%s: gap between %r (history %d, live %d)" % (label, gaps[:3], len(history),
                                                                         len(live)))

        try:
            for start in range(0, self.JOINERS, self.AT_ONCE):
                await asyncio.gather(*(one_joiner(n) for n in range(start, min(start + self.AT_ONCE, self.JOINERS))))
        finally:
            stop.set()
            await pumping
            await noisy
        async def anchor_done():
            return acks[-1] in anchor_ids[-20:]
        await wait_until(anchor_done, LONG, "the anchor got the last chat")
        anchor_task.cancel()
        runs.append(("anchor", [], anchor_ids))
        pos = {i: k for k, i in enumerate(acks)}
        for label, history, live in runs:
            check_run(problems, label, history, live)
        self.assertFalse(problems, "%d of %d joiners (or the anchor) saw a chat twice, out of order or missed one"
                         " (%d chats pumped):\n%s" % (len(problems), len(runs) - 1, len(acks), "\n".join(problems[:10])))


if __name__ == "__main__":
    import unittest
    unittest.main()
