# Four hosts (network namespaces on one bridge): Redis, two roomcast instances, the clients; app1's cable is pulled.
# Rule: chats cross hosts in one room order; after the cut app1's members get every acked chat once, in order.
"""Hosts: "redis" (redis-server), "app1" and "app2" (one roomcast each, on 0.0.0.0:8080 of their own host), "client"
(the WebSocket clients, in a netns_agent.py process). Members alice and carol are on app1, bob on app2, all in one
room.

1. Chats cross hosts both ways, acked with ids, seen by everyone in one order.
2. app1's switch port goes down for at least CUT_MIN seconds and until DOWN_HOLD seconds after app1's /healthz, asked
   from inside app1, says 503 "redis":"down". Meanwhile bob (app2) keeps chatting and app2 keeps acking. alice sends a chat into the cut
   (her frame waits in TCP); carol's connection is reset from the client's side (the reset is lost in the cut).
3. The cable is back: app1's /healthz returns to 200 "up". alice (reconnecting with `since` if her connection did not
   survive) and carol (reconnecting with `since` = the last id she saw) must end with exactly bob's sequence of
   chats: every acked chat once, in order, no gap (ROOMCAST_NETNS_CUT=seconds: a longer cut, by hand). alice's chat into the cut: acked -> everyone has it once;
   refused `unavailable` -> nobody has it.
"""

import asyncio
import os
import sys
import time
import unittest

from cluster_harness import SCALE, TIMEOUT, id_parts, unique, user
from netns_lab import HostRedis, LabMember, NetnsTestCase

PREFIX = "rcnetns"          # namespaces: rcnetns-<pid>x<hex>-<host>
PORT = 8080                 # every host has its own port space
CUT_MIN = float(os.environ.get("ROOMCAST_NETNS_CUT", "4"))   # app1's cable stays out at least this long ...
DOWN_WITHIN = 12.0 * SCALE  # ... and until /healthz says 503 (probe every 1 s, deadline 3 s), which must come by then
DOWN_HOLD = 1.0            # and this long after that, so app1 spends a while knowing it cannot reach Redis
UP_WITHIN = 20.0 * SCALE    # /healthz 200 again after the cable is back
CHAT_EVERY = 0.25           # bob's pace during the cut
INSTANCE_ARGS = ["--log-level", "debug", "--history", "500"]
# Per test: extra arguments of app1. Pinging every 0.5 s, app1 closes (1001) its clients, whose pongs are lost in the cut.
APP1_ARGS = {"test_cut_app1_drops_its_clients": ["--ping-interval", "0.5"]}


class NetnsHosts(NetnsTestCase):
    port = PORT

    def setUp(self):
        self.lab_setUp(PREFIX, ("redis", "app1", "app2", "client"))
        self.redis = HostRedis(self.lab["redis"]).start()
        self.addCleanup(self.redis.cleanup)
        for name in ("app1", "app2"):
            args = INSTANCE_ARGS + (APP1_ARGS.get(self._testMethodName, []) if name == "app1" else [])
            self.start_app(name, self.redis.url, args)

    def broker_logs(self):
        return "----- redis log -----\n%s" % "\n".join(self.redis.log().splitlines()[-20:])

    async def wait_health(self, agent, host_ip, status, redis, timeout):
        deadline = time.monotonic() + timeout
        while True:
            got = await self.health(agent, host_ip)
            if got[0] == status and isinstance(got[1], dict) and got[1].get("redis") == redis:
                return got[1]
            if time.monotonic() >= deadline:
                raise AssertionError("/healthz of %s: not %d redis=%s within %.1fs (last: %r)"
                                     % (host_ip, status, redis, timeout, got))
            await asyncio.sleep(0.1)

    async def test_chat_across_hosts_and_link_cut(self):
        """alice's connection to app1 may survive the cut or not; either way she misses nothing."""
        await self.scenario()

    async def test_cut_app1_drops_its_clients(self):
        """app1 closes alice's connection during the cut (her pongs are lost): she reconnects with `since`."""
        alice = await self.scenario()
        self.assertGreaterEqual(alice.connections, 2, "alice's connection survived a cut 10 ping intervals long: %s"
                                % alice.notes)

    async def scenario(self):
        app1, app2 = self.apps["app1"], self.apps["app2"]
        room = unique("netns")
        alice = LabMember(self.client, app1, "alice", [room])
        carol = LabMember(self.client, app1, "carol", [room])
        bob = LabMember(self.client, app2, "bob", [room])
        for m in (alice, carol, bob):
            joined = await m.connect()
        self.assertEqual(sorted(u["id"] for u in joined["members"]), ["alice", "bob", "carol"], joined)
        for m in (alice, carol):
            await m.peer.take("presence", event="join", user=user("bob"))   # from app2 to app1
        members = (alice, carol, bob)

        # 1. Across hosts, both ways: acked with an id, every member gets it under that id.
        acked = []   # (id, message) of every chat acked to anyone, in ack order per sender
        for sender, text in ((alice, "hello from app1"), (bob, "hello from app2")):
            ack = await sender.peer.chat_acked(room, text, ref=text)
            acked.append((ack["id"], text))
            for m in members:
                ev = await m.peer.take("chat", message=text)
                self.assertEqual((ev["id"], ev["user"], ev["roomId"]), (ack["id"], user(sender.uid), room), ev)
                m.chats[room].append(ev)
        self.assertLess(id_parts(acked[0][0]), id_parts(acked[1][0]), acked)

        # 2. Pull app1's cable. bob chats on; app1 must find out that Redis is gone.
        ok, body = await self.health(self.inside_app1, "127.0.0.1")
        self.assertEqual((ok, body.get("redis")), (200, "up"), body)

        def bob_chats(prefix):
            async def chat(k):
                text = "%s-%02d" % (prefix, k)
                ack = await bob.peer.chat_acked(room, text, ref=text)
                acked.append((ack["id"], text))
            return chat
        down_body, t_down, t_cut = await self.cut_until_down("app1", self.inside_app1, bob_chats("cut"), CUT_MIN,
                                                             DOWN_WITHIN, DOWN_HOLD, CHAT_EVERY)
        self.assertEqual((down_body.get("status"), down_body.get("redis")), ("degraded", "down"), down_body)
        st, body = await self.health(self.client, self.lab["app2"].ip)
        self.assertEqual((st, body.get("redis")), (200, "up"), "app2 during the cut: %r" % (body,))
        # Into the cut: alice's chat waits in her TCP send queue; carol's reset never reaches app1.
        alice_first = alice.peer
        await alice_first.chat(room, "alice-into-cut", ref="alice-into-cut")
        await carol.peer.abort()
        t_cut_total = time.monotonic() - t_cut

        # 3. Cable back. bob goes on chatting while app1 recovers.
        _, t_up = await self.restore_until_up("app1", self.inside_app1, bob_chats("back"),
                                              lambda body: body.get("redis") == "up", "", UP_WITHIN, CHAT_EVERY)

        bob_ids = [i for i, _ in acked]
        await alice.wait_ids({room: bob_ids}, TIMEOUT + UP_WITHIN)
        alice_survived = alice.connections == 1
        # alice's chat into the cut: one answer if her first connection lived to give it.
        into_cut = await self.answer_into_cut(alice_first, alice_survived, "alice-into-cut")
        if into_cut is not None and into_cut["type"] == "ack":
            acked.append((into_cut["id"], "alice-into-cut"))
        for sender, text in ((alice, "after-alice"), (bob, "after-bob")):
            ack = await sender.peer.chat_acked(room, text, ref=text)
            acked.append((ack["id"], text))

        # carol comes back (on app1) with since = the last id she saw before the cut (wait_ids reconnects her).
        all_ids = [i for i, _ in acked]
        for m in members:
            await m.wait_ids({room: all_ids}, TIMEOUT)
        self.assertEqual(bob.connections, 1, bob.notes)
        self.assertGreaterEqual(carol.connections, 2, carol.notes)
        await asyncio.sleep(0.5 * SCALE)   # time for a duplicate to show up
        for m in members:
            m.drain()

        # One room order, no gap, no duplicate: everyone has exactly bob's sequence (bob's link was never cut).
        reference = self.check_same_chats(bob, (alice, carol), lambda m: m.chats[room], acked, all_ids, into_cut)

        # Efficiency (section 5): once the dust settles, one subscription to the room per instance, none left over
        # from app1's connections of before the cut.
        deadline = time.monotonic() + TIMEOUT
        while True:
            numsub = await asyncio.to_thread(self.redis.cli, "PUBSUB", "NUMSUB", "room:" + room)
            if numsub.split()[-1:] == ["2"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        self.assertEqual(numsub.split()[-1:], ["2"], "PUBSUB NUMSUB room:%s after recovery: %r" % (room, numsub))

        sys.stderr.write("\nnetns: cut %.1fs, app1 503 after %.1fs, 200 %.1fs after the cable's return; %d chats; "
                         "alice's connection %s; her chat into the cut: %s; carol: %s\n"
                         % (t_cut_total, t_down, t_up, len(reference),
                            "survived" if alice_survived else "dropped (%s)" % "; ".join(alice.notes),
                            "no answer" if into_cut is None else into_cut.get("code", into_cut["type"]),
                            "; ".join(carol.notes)))
        return alice


if __name__ == "__main__":
    unittest.main()
