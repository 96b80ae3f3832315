# Regression tests of findings 12, 14 and 16 (PROTOCOL.md sections 4-5 and 7: members, count, presence).
# Rule: `members` lists each user of the room once (at most 1000 of them, `count` says how many), whatever
# instance they are on, as long as one of their connections is in the room and its instance is alive.
import asyncio
import contextlib
import socket
import struct
import time
import unittest

from cluster_harness import ClusterTestCase, get_json, unique, user, wait_until
from guarantees_harness import LONG, set_nofile
from roomcast_harness import RoomcastServer, WsClient, handshake_request, new_ws_key, quiet_slow_callback_warnings

MEMBERS = 1200       # enough to pass the 1000 cap; 3000 works too but costs more of the 60 s on 2 cores
LISTED_MAX = 1000


def open_members(port, room, n, prefix):
    """n WebSocket connections (blocking sockets, run it in a thread) joined to room through ?room=&name= (each
    its own anonymous user id). Nobody reads them: their receive buffers are made large enough to hold what
    comes (their `joined` and the presence of later joiners, ~150 KB at 1,200 members), so the test process
    spends no time on them. Returns the sockets."""
    socks = []
    try:
        for k in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 19)
            s.settimeout(LONG)
            s.connect(("127.0.0.1", port))
            s.sendall(handshake_request("/ws?room=%s&name=%s%05d" % (room, prefix, k), port, key=new_ws_key()))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                assert chunk, "member %d: connection closed during the handshake" % k
                head += chunk
            assert head.split(b"\r\n", 1)[0].split(b" ")[1] == b"101", head[:200]
    except BaseException:
        close_members(socks)
        raise
    return socks


def close_members(socks):
    for s in socks:
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()


def listing_problems(what, body, count):
    """What is wrong with body (a `joined` or a GET /rooms answer) for a room of `count` members: it must say
    count, list at most 1000 distinct users, and say `membersTruncated: true` when it lists fewer than count."""
    members = body.get("members")
    if not isinstance(members, list):
        return ["%s: no members list: %r" % (what, str(body)[:300])]
    out = []
    if body.get("count") != count:
        out.append("%s: count %r, expected %d (it lists %d members)" % (what, body.get("count"), count, len(members)))
    if len(members) > LISTED_MAX:
        out.append("%s lists %d members (at most %d)" % (what, len(members), LISTED_MAX))
    ids = [m.get("id") for m in members]
    if len(ids) != len(set(ids)):
        out.append("%s lists a user twice" % what)
    if len(members) < count and body.get("membersTruncated") is not True:
        out.append("%s lists %d of %d members without membersTruncated: true" % (what, len(members), count))
    return out


class ManyMembers(unittest.IsolatedAsyncioTestCase):

    async def asyncSetUp(self):
        quiet_slow_callback_warnings()
        set_nofile(4 * MEMBERS + 1000)   # this process's sockets and the server's (it inherits the limit)
        self.server = RoomcastServer(["--ping-interval", "300"], name="many-members")
        self.addCleanup(self.server.cleanup)
        await asyncio.to_thread(self.server.start)

    async def asyncTearDown(self):
        alive = self.server.alive()
        await asyncio.to_thread(self.server.stop, alive)
        self.assertTrue(alive, "the server died")

    async def test_members_capped_count_exact(self):
        """Finding 12, standalone. 1,200 connections (distinct users) join room R. Asserts: GET /rooms/R says
        count 1200 with at most 1000 distinct members and membersTruncated: true; a further joiner's `joined`
        says count 1201, at most 1000 distinct members, membersTruncated: true."""
        port = self.server.port
        room = unique("many")
        socks = await asyncio.to_thread(open_members, port, room, MEMBERS, "m")
        try:
            async def all_in():
                status, body = await get_json(port, "/rooms/%s" % room, timeout=LONG)
                n = body.get("count", len(body.get("members", [])))
                return body if status == 200 and n >= MEMBERS else None
            body = await wait_until(all_in, 2 * LONG, "%d members in the room" % MEMBERS, interval=0.5)
            problems = listing_problems("GET /rooms/R", body, MEMBERS)

            c = await WsClient.connect(port, label="observer")
            try:
                await c.hello(user("observer"))
                await c.send({"type": "join", "roomId": room})
                joined = await c.wait_for("joined", timeout=LONG)
                problems += listing_problems("joined", joined, MEMBERS + 1)
            finally:
                await c.close()
            self.assertFalse(problems, "\n".join(problems))
        finally:
            await asyncio.to_thread(close_members, socks)


class ManyMembersRedis(ClusterTestCase):
    instance_args = ["--log-level", "info", "--ping-interval", "300"]

    async def test_members_capped_count_exact_across_instances(self):
        """Finding 12, Redis mode. 600 connections join room R on i1 and 600 on i2. Asserts on both instances:
        GET /rooms/R says count 1200, lists at most 1000 distinct members with membersTruncated: true; a further
        joiner's `joined` (on each instance) says count 1201 (then 1202), likewise capped."""
        set_nofile(4 * MEMBERS + 1000)
        i1, i2 = await self.launch_n(2)
        room = unique("many")
        half = MEMBERS // 2
        socks = []
        try:
            for inst, prefix in ((i1, "a"), (i2, "b")):
                socks += await asyncio.to_thread(open_members, inst.port, room, half, prefix)

            async def all_in(port):
                status, body = await get_json(port, "/rooms/%s" % room, timeout=LONG)
                n = body.get("count", len(body.get("members", [])))
                return body if status == 200 and n >= 2 * half else None
            problems = []
            for inst in (i1, i2):
                body = await wait_until(lambda: all_in(inst.port), 2 * LONG, "%d members" % (2 * half), interval=0.5)
                problems += listing_problems("GET /rooms/R on %s" % inst.name, body, 2 * half)
            for k, inst in enumerate((i1, i2)):
                p = await self.peer(inst, "observer%d" % k)
                await p.hello(user("observer%d" % k))
                joined = await p.join(room, timeout=LONG)
                problems += listing_problems("joined on %s" % inst.name, joined, 2 * half + k + 1)
            self.assertFalse(problems, "\n".join(problems))
        finally:
            await asyncio.to_thread(close_members, socks)


class SameUserTwoInstances(ClusterTestCase):

    async def listing(self, inst, room):
        status, body = await get_json(inst.port, "/rooms/%s" % room)
        self.assertEqual(status, 200, body)
        return body

    async def dup_problems(self, insts, room, when, n_others):
        """On every instance: GET /rooms/R and a new joiner's `joined` must list dup once and count it (with the
        n_others other members). Returns what is wrong (all of it, so one failure shows the whole picture)."""
        out = []
        for inst in insts:
            body = await self.listing(inst, room)
            ids = [m["id"] for m in body["members"]]
            if ids.count("dup") != 1:
                out.append("%s: GET /rooms on %s lists dup %d times: %r" % (when, inst.name, ids.count("dup"), body))
            if body.get("count") != n_others + 1:
                out.append("%s: GET /rooms on %s: count %r, expected %d" % (when, inst.name, body.get("count"),
                                                                             n_others + 1))
            p, joined = await self.member(inst, "probe-%s-%d" % (inst.instance_id, len(self.peers)), room)
            ids = [m["id"] for m in joined["members"]]
            if ids.count("dup") != 1:
                out.append("%s: `joined.members` on %s lists dup %d times: %r" % (when, inst.name, ids.count("dup"),
                                                                                  joined["members"]))
            if joined.get("count") != n_others + 2:
                out.append("%s: `joined.count` on %s is %r, expected %d" % (when, inst.name, joined.get("count"),
                                                                            n_others + 2))
            await p.leave(room)
        return out

    async def test_same_user_on_two_instances(self):
        """Finding 14. Two connections claim the same user {"id":"dup","name":"x"}, one on i1 and one on i2, and
        join room R (a third member, on i1, stays throughout). Both orders are checked (in two rooms): the
        connection that joined first leaves, or the one that joined last leaves. Asserts: after one of them
        leaves, GET /rooms/R on either instance and a new joiner's `joined.members` on either instance list dup
        exactly once and count it; after both leave, dup is listed nowhere."""
        i1, i2 = await self.launch_n(2)
        dup = {"id": "dup", "name": "x"}
        problems = []
        for leaving_first in ("first", "last"):
            room = unique("dup-" + leaving_first)
            stay, _ = await self.member(i1, "stay-" + leaving_first, room)
            conns = []
            for inst in (i1, i2):
                p = await self.peer(inst, "dup@%s" % inst.instance_id)
                await p.hello(dup)
                await p.join(room)
                conns.append(p)
            problems += await self.dup_problems((i1, i2), room, "both dup connections in", 1)
            gone, kept = (conns[0], conns[1]) if leaving_first == "first" else (conns[1], conns[0])
            await gone.leave(room)
            problems += await self.dup_problems((i1, i2), room, "the dup connection that joined %s left"
                                                % leaving_first, 1)
            await kept.leave(room)
            for inst in (i1, i2):
                body = await self.listing(inst, room)
                if "dup" in [m["id"] for m in body["members"]] or body.get("count") != 1:
                    problems.append("both dup connections left: GET /rooms on %s: %r" % (inst.name, body))
        self.assertFalse(problems, "\n".join(problems))


class DeadInstancePresence(ClusterTestCase):
    instance_args = ["--log-level", "info", "--instance-ttl", "3"]

    async def test_dead_instance_members_leave_once(self):
        """Finding 16. Three instances with --instance-ttl 3; room R has two members on each of i1 and i2 and two
        (v1, v2) on i3. i3 is killed (SIGKILL). Asserts: within 10 s v1 and v2 are gone from GET /rooms/R on i1
        and i2; every surviving member receives exactly one presence `leave` for v1 and one for v2 within 10 s,
        and no further presence about them over the next 6 s (two more TTLs)."""
        i1, i2, i3 = await self.launch_n(3)
        room = unique("dead")
        survivors = []
        for inst, uid in ((i1, "a1"), (i1, "a2"), (i2, "b1"), (i2, "b2")):
            p, _ = await self.member(inst, uid, room)
            survivors.append(p)
        for uid in ("v1", "v2"):
            await self.member(i3, uid, room)
        for p in survivors:
            for uid in ("v1", "v2"):
                await p.take("presence", timeout=LONG, event="join", user=user(uid))
        i3.sigkill()
        t0 = time.monotonic()

        async def gone():
            for inst in (i1, i2):
                status, body = await get_json(inst.port, "/rooms/%s" % room)
                if {"v1", "v2"} & {m["id"] for m in body["members"]}:
                    return None
            return True
        problems = []
        try:
            await wait_until(gone, 10.0, "v1 and v2 gone from /rooms on i1 and i2", interval=0.25)
        except AssertionError as e:
            problems.append(str(e))
        for p in survivors:
            for uid in ("v1", "v2"):
                try:
                    await p.take("presence", timeout=max(0.5, t0 + 10.0 - time.monotonic()), event="leave",
                                 user=user(uid))
                except AssertionError:
                    problems.append("%s: no presence leave for %s within 10 s of the kill" % (p.label, uid))
        await asyncio.sleep(6.0)
        for p in survivors:
            extra = [m for m in p.inbox if m.get("type") == "presence" and m["user"]["id"] in ("v1", "v2")]
            if extra:
                problems.append("%s: more presence about the dead instance's members: %r" % (p.label, extra))
        self.assertFalse(problems, "\n".join(problems))

    async def test_dead_instance_with_many_rooms_reaped_everywhere(self):
        """A heartbeat hands out at most 256 of a dead instance's rooms to clean (kReapBatch), at random, so that
        a million members do not make every instance clean every room at once. Three instances, --instance-ttl 3;
        i3 holds one member in each of 700 rooms (nearly three batches) and is killed (SIGKILL). Asserts: within
        30 s every one of the 700 rooms lists nobody on i1 (each room was cleaned, batch after batch)."""
        i1, i2, i3 = await self.launch_n(3)
        prefix = unique("many")
        rooms = ["%s-%d" % (prefix, k) for k in range(700)]

        def open_all():
            return [s for r in rooms for s in open_members(i3.port, r, 1, "v")]
        socks = await asyncio.to_thread(open_all)
        self.addCleanup(close_members, socks)

        async def listed(count):
            left = []
            for r in rooms:
                status, body = await get_json(i1.port, "/rooms/%s" % r)
                if status != 200 or body.get("count") != count:
                    left.append(r)
            return left

        async def all_in():
            return not await listed(1)
        await wait_until(all_in, LONG, "each of the 700 rooms lists its member on i1", interval=0.5)
        i3.sigkill()
        left = []

        async def all_clean():
            nonlocal left
            left = await listed(0)
            return not left
        try:
            await wait_until(all_clean, 30.0, "every room clean on i1", interval=1.0)
        except AssertionError:
            self.fail("%d of 700 rooms still list the dead instance's member 30 s after the kill, e.g. %s" % (len(left), left[:3]))


if __name__ == "__main__":
    unittest.main()
