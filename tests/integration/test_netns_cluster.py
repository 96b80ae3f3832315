# Five hosts (network namespaces on one bridge): a Redis Cluster on two of them, two roomcast instances, the clients.
# Rule: chats cross hosts in rooms of every master; after app1's cable is pulled and a master is killed -9, every
# chat acked meanwhile (through app2) and every chat acked after the promotion reaches every member once, in order.
"""Hosts: "redis1" and "redis2" (a Redis Cluster of 3 masters and 3 replicas, three redis-server processes on each,
ports 7000-7002, bound to and announcing the host's address, cluster-node-timeout 1000 ms, full coverage not
required, created with `redis-cli --cluster create --cluster-replicas 1` run on redis1), "app1" and "app2" (one
roomcast each with --redis-cluster: app1 knows one seed per Redis host, app2 all six nodes), "client" (the WebSocket
clients, in a netns_agent.py process). alice and carol are on app1, bob on app2, all in three rooms, one on each
master's slots.

1. Chats cross hosts both ways in each room, acked with ids, seen by everyone under that id.
2. app1's switch port goes down for at least CUT_MIN seconds and until DOWN_HOLD seconds after app1's /healthz, asked
   from inside app1, says 503 "redis":"cluster". Meanwhile bob (app2) keeps chatting in every room and app2 keeps
   acking (its /healthz stays 200). alice sends a chat into the cut; carol's connection is reset from the client's
   side (the reset is lost in the cut). Cable back: app1's /healthz returns to 200 "redis":"cluster" "masters":3;
   alice (reconnecting with `since` if her connection did not survive) and carol (reconnecting with `since` = the last
   id she saw in each room) end with exactly bob's sequence of chats in every room: every acked chat once, in order.
3. Publishers on both instances chat in every room (20 chats/s in all); the master of one room (not the one of the
   instances' {roomcast} bookkeeping slot) is killed with SIGKILL on its Redis host. After its replica's promotion
   chats are acked again in that room on the same connections (no member reconnects, no second `joined`); every chat
   is answered once (ack or `unavailable`); every chat acked after the promotion, and every chat of the other rooms,
   reaches every member once, in room order; a refused chat reaches nobody; both instances subscribe the room on the
   promoted replica and say 200 "masters":3 again.

Needs root and `ip netns` (skipped otherwise); everything is torn down even on failure (the lab's namespaces and
every process in them). No assertion on speed: the deadlines are generous and only say "it never happened".
"""

import asyncio
import contextlib
import os
import sys
import time
import types
import unittest

from cluster_harness import SCALE, TIMEOUT, user
from netns_lab import HostRedisCluster, LabMember, NetnsTestCase
from redis_cluster_harness import CLUSTER_TIMEOUT, ChatTraffic, check_room_log, keyslot, parse_metric_labels

PREFIX = "rcnscl"           # namespaces: rcnscl-<pid>x<hex>-<host> (not rcnetns: the two tests never sweep each other)
PORT = 8080                 # every host has its own port space
CUT_MIN = float(os.environ.get("ROOMCAST_NETNS_CUT", "4"))   # app1's cable stays out at least this long ...
DOWN_WITHIN = 12.0 * SCALE  # ... and until /healthz says 503 (probes every 1 s, a master silent 3 s is dropped)
DOWN_HOLD = 1.0             # and this long after that
UP_WITHIN = 20.0 * SCALE    # /healthz 200 again after the cable is back
RECOVERY = 20.0 * SCALE     # chats acked again in the victim's room after the promotion
CHAT_EVERY = 0.25           # bob's pace during the cut
# Which master is killed in step 3: by default one that does not hold the instances' {roomcast} slot (heartbeats,
# liveness); ROOMCAST_NETNS_VICTIM=control kills that one instead (by hand).
VICTIM = os.environ.get("ROOMCAST_NETNS_VICTIM", "room")
INSTANCE_ARGS = ["--log-level", "debug", "--history", "500", "--rate", "1000"]


class NetnsCluster(NetnsTestCase):
    port = PORT
    log_lines = 100

    def setUp(self):
        self.cluster = None
        self.lab_setUp(PREFIX, ("redis1", "redis2", "app1", "app2", "client"))
        t0 = time.monotonic()
        self.cluster = HostRedisCluster([self.lab["redis1"], self.lab["redis2"]])
        self.addCleanup(self.cluster.cleanup)
        self.cluster.start()
        self.t_cluster = time.monotonic() - t0
        seeds = {"app1": self.cluster.seeds([self.cluster.on_host("redis1")[0], self.cluster.on_host("redis2")[0]]),
                 "app2": self.cluster.seeds()}
        for name in ("app1", "app2"):
            self.start_app(name, None, INSTANCE_ARGS, broker_args=["--redis-cluster", seeds[name]])

    def broker_logs(self):
        return self.cluster.logs(15) if self.cluster is not None else ""

    @staticmethod
    async def _stop_traffic(traffic):
        with contextlib.suppress(Exception):
            await traffic.stop()

    # -- /healthz (self.health) and /metrics through an agent
    async def wait_health(self, agent, host_ip, status, timeout, masters=None):
        """/healthz of host_ip:PORT answers `status` with "redis":"cluster" (and "masters": masters if given)."""
        deadline = time.monotonic() + timeout
        while True:
            st, body = await self.health(agent, host_ip)
            if st == status and isinstance(body, dict) and body.get("redis") == "cluster" and (
                    masters is None or body.get("masters") == masters):
                self.assertEqual(body.get("status"), "ok" if status == 200 else "degraded", body)
                return body
            if time.monotonic() >= deadline:
                raise AssertionError("/healthz of %s: not %d redis=cluster masters=%s within %.1fs (last: %r %r)"
                                     % (host_ip, status, masters, timeout, st, body))
            await asyncio.sleep(0.1)

    async def node_labels(self, host_ip, metric="roomcast_redis_node_up"):
        """{node label: value} of `metric` in the /metrics of the instance at host_ip:PORT (asked from the client)."""
        status, text = await self.client.http_get(host_ip, PORT, "/metrics", timeout=5.0)
        self.assertEqual(status, 200, text[:300])
        out = {}
        for line in text.splitlines():
            if line.startswith(metric + "{"):
                sample, _, value = line.rpartition(" ")
                out[parse_metric_labels(sample)[1].get("node")] = float(value)
        return out

    # -- the scenario
    async def test_cluster_across_hosts_cut_and_failover(self):
        c = self.cluster
        app1, app2 = self.apps["app1"], self.apps["app2"]
        app1_ip, app2_ip = self.lab["app1"].ip, self.lab["app2"].ip
        masters = await asyncio.to_thread(c.masters)
        self.assertEqual(len(masters), 3, masters)
        redis_ips = {self.lab["redis1"].ip, self.lab["redis2"].ip}
        self.assertEqual({m.ip for m in masters} - redis_ips, set(), "masters not on the Redis hosts: %r" % masters)
        for name, ip in (("app1", app1_ip), ("app2", app2_ip)):
            agent = self.inside_app1 if name == "app1" else self.client
            await self.wait_health(agent, ip, 200, TIMEOUT, masters=3)
        # The instances reach the masters at the addresses the nodes announce (CLUSTER SLOTS), on the Redis hosts,
        # and keep no connection to a replica. (The seed that answered app2's first slot map stays until the next
        # map, ~5 s later, even when it is a replica: waited for, and shown in the summary.)
        t0, first_up = time.monotonic(), None
        while True:
            up = await self.node_labels(app2_ip)
            live = {n for n, v in up.items() if v == 1}
            first_up = first_up or sorted(live)
            if live == {m.addr for m in masters} or time.monotonic() - t0 > TIMEOUT:
                break
            await asyncio.sleep(0.2)
        self.assertEqual(live, {m.addr for m in masters}, "app2's roomcast_redis_node_up: %r" % up)
        t_only_masters = time.monotonic() - t0

        # One room per master (by slot owner); the instances' bookkeeping slot {roomcast} is on one of them.
        rooms = []
        for m in masters:
            rooms += await asyncio.to_thread(c.rooms_on, m, 1, "ns%d" % m.index)
        owner = {r: m for r, m in zip(rooms, masters)}
        control_owner = await asyncio.to_thread(c.owner, keyslot("roomcast:{roomcast}"))

        alice = LabMember(self.client, app1, "alice", rooms)
        carol = LabMember(self.client, app1, "carol", rooms)
        bob = LabMember(self.client, app2, "bob", rooms)
        for m in (alice, carol, bob):
            joined = await m.connect()
        self.assertEqual(sorted(u["id"] for u in joined["members"]), ["alice", "bob", "carol"], joined)
        for m in (alice, carol):
            for r in rooms:
                await m.peer.take("presence", event="join", roomId=r, user=user("bob"))   # from app2 to app1
        members = (alice, carol, bob)
        acked = {r: [] for r in rooms}   # room -> [(id, message)] of every chat acked to anyone

        # 1. Across hosts, both ways, in every room: acked with an id, every member gets it under that id.
        for r in rooms:
            for sender, text in ((alice, "hello from app1 in %s" % r), (bob, "hello from app2 in %s" % r)):
                ack = await sender.peer.chat_acked(r, text, ref=text)
                acked[r].append((ack["id"], text))
                for m in members:
                    ev = await m.peer.take("chat", message=text)
                    self.assertEqual((ev["id"], ev["user"], ev["roomId"]), (ack["id"], user(sender.uid), r), ev)
                    m.chats[r].append(ev)

        # 2. Pull app1's cable. bob chats on in every room; app1 must find out that its masters are gone.
        def bob_chats(prefix):   # chat k goes to the rooms in turn
            async def chat(k):
                r = rooms[k % len(rooms)]
                text = "%s-%02d" % (prefix, k)
                ack = await bob.peer.chat_acked(r, text, ref=text)
                acked[r].append((ack["id"], text))
            return chat
        down_body, t_down, t_cut = await self.cut_until_down("app1", self.inside_app1, bob_chats("cut"), CUT_MIN,
                                                             DOWN_WITHIN, DOWN_HOLD, CHAT_EVERY)
        self.assertEqual((down_body.get("status"), down_body.get("redis")), ("degraded", "cluster"), down_body)
        st, body = await self.health(self.client, app2_ip)
        self.assertEqual((st, body.get("redis"), body.get("masters")), (200, "cluster", 3),
                         "app2 during the cut: %r" % (body,))
        # Into the cut: alice's chat waits in her TCP send queue; carol's reset never reaches app1.
        alice_first = alice.peer
        await alice_first.chat(rooms[0], "alice-into-cut", ref="alice-into-cut")
        await carol.peer.abort()
        t_cut_total = time.monotonic() - t_cut

        # Cable back. bob goes on chatting while app1 recovers.
        body, t_up = await self.restore_until_up(
            "app1", self.inside_app1, bob_chats("back"),
            lambda body: body.get("redis") == "cluster" and body.get("masters") == 3, " redis=cluster masters=3",
            UP_WITHIN, CHAT_EVERY)
        self.assertEqual(body.get("status"), "ok", body)

        await alice.wait_ids({r: [i for i, _ in acked[r]] for r in rooms}, TIMEOUT + UP_WITHIN)
        alice_survived = alice.connections == 1
        # alice's chat into the cut: one answer if her first connection lived to give it.
        into_cut = await self.answer_into_cut(alice_first, alice_survived, "alice-into-cut")
        if into_cut is not None and into_cut["type"] == "ack":
            acked[rooms[0]].append((into_cut["id"], "alice-into-cut"))
        for r in rooms:
            for sender, text in ((alice, "after-alice-%s" % r), (bob, "after-bob-%s" % r)):
                ack = await sender.peer.chat_acked(r, text, ref=text)
                acked[r].append((ack["id"], text))

        # carol comes back (on app1) with since = the last id she saw in each room (wait_ids reconnects her).
        all_ids = {r: [i for i, _ in acked[r]] for r in rooms}
        for m in members:
            await m.wait_ids(all_ids, TIMEOUT)
        self.assertEqual(bob.connections, 1, bob.notes)
        self.assertGreaterEqual(carol.connections, 2, carol.notes)
        await asyncio.sleep(0.5 * SCALE)   # time for a duplicate to show up
        for m in members:
            m.drain()

        # Every room: one order, no gap, no duplicate: everyone has exactly bob's sequence (bob's link was never cut).
        for r in rooms:
            self.check_same_chats(bob, (alice, carol), lambda m: m.chats[r], acked[r], all_ids[r], into_cut,
                                  where=" of %s" % r)
        n_cut_phase = sum(len(bob.chats[r]) for r in rooms)

        # 3. Kill -9 the master of one room while publishers on both instances chat in every room.
        victim = control_owner if VICTIM == "control" else next(m for m in masters if m is not control_owner)
        vroom = next(r for r in rooms if owner[r] is victim)
        other_rooms = [r for r in rooms if r != vroom]
        pubs = [await self.client.peer(app1.ws_url(), "pub1"), await self.client.peer(app2.ws_url(), "pub2")]
        connections_before = {m.uid: (m.connections, m.joined) for m in members}
        for m in members:
            m.drain()
        start_len = {m.uid: {r: len(m.chats[r]) for r in rooms} for m in members}
        traffic = ChatTraffic(pubs, rooms, rate=20.0, tag="fo").start()
        self.addAsyncCleanup(self._stop_traffic, traffic)   # a failure below must not leave it sending
        await asyncio.sleep(1.0)
        t_kill = time.monotonic()
        new, took = await asyncio.to_thread(c.kill_master, victim, CLUSTER_TIMEOUT)
        t_promoted = time.monotonic()

        async def flowing():
            got = traffic.answers()
            return any(m["type"] == "ack" and t > t_promoted
                       for s in traffic.sent if s["room"] == vroom for m, t in got.get(s["ref"], []))
        deadline = time.monotonic() + RECOVERY
        while not await flowing():
            if time.monotonic() > deadline:
                self.fail("no chat of %s acked within %.0fs of %s's promotion" % (vroom, RECOVERY, new.addr))
            await asyncio.sleep(0.1)
        t_flowing = time.monotonic()
        await asyncio.sleep(1.0)
        await traffic.stop()
        answers = await traffic.wait_answered(TIMEOUT * 2)   # each chat answered once: ack or `unavailable`
        refused = [s["ref"] for s in traffic.sent if answers[s["ref"]][0]["type"] == "error"]
        must = {r: [answers[s["ref"]][0]["id"] for s in traffic.sent if s["room"] == r
                    and answers[s["ref"]][0]["type"] == "ack" and (r != vroom or answers[s["ref"]][1] > t_promoted)]
                for r in rooms}
        self.assertTrue(must[vroom], "no chat of %s acked after the promotion" % vroom)
        refused_elsewhere = [ref for ref in refused if ref in {s["ref"] for s in traffic.sent if s["room"] != vroom}]
        self.assertEqual(refused_elsewhere, [], "chats to rooms of masters never down refused")
        for m in members:
            await m.wait_ids(must, TIMEOUT)
        await asyncio.sleep(0.5 * SCALE)   # time for a duplicate to show up
        for m in members:
            m.drain()
        # Same connections throughout: none closed, no second `joined`.
        for m in members:
            self.assertIsNone(m.peer.closed, "%s: %s" % (m.uid, m.notes))
            self.assertEqual((m.connections, m.joined), connections_before[m.uid], "%s reconnected: %s"
                             % (m.uid, m.notes))
        for p in pubs:
            self.assertIsNone(p.closed, p)
        # Room order, once each, nothing refused delivered, every `must` chat everywhere (chats of this phase only;
        # the whole run of each room is in one id order too).
        for r in rooms:
            phase = [types.SimpleNamespace(label=m.uid, seen=m.chats[r][start_len[m.uid][r]:]) for m in members]
            check_room_log(phase, r, must_ids=must[r], refused_messages=refused)
            check_room_log([m.as_peer() for m in members], r)
        # Both instances: the victim's room subscribed on the promoted replica; 200 with 3 masters.
        channel = "room:{%s}" % vroom
        deadline = time.monotonic() + TIMEOUT
        while (await asyncio.to_thread(new.shardnumsub, channel)) != 2:
            if time.monotonic() > deadline:
                self.fail("PUBSUB SHARDNUMSUB %s on %s: %d, not 2" % (channel, new.addr, new.shardnumsub(channel)))
            await asyncio.sleep(0.2)
        await self.wait_health(self.inside_app1, "127.0.0.1", 200, TIMEOUT, masters=3)
        await self.wait_health(self.client, app2_ip, 200, TIMEOUT, masters=3)

        acked_n = sum(1 for m, _ in answers.values() if m["type"] == "ack")
        lost = [i for i in (answers[s["ref"]][0]["id"] for s in traffic.sent if s["room"] == vroom
                            and answers[s["ref"]][0]["type"] == "ack" and answers[s["ref"]][1] < t_kill)
                if not all(i in set(m.ids(vroom)) for m in members)]
        sys.stderr.write(
            "\nnetns cluster: created in %.1fs (masters %s; {roomcast} on %s); rooms %s; app2's node_up: %s\n"
            "  cut %.1fs: app1 503 after %.1fs, 200 %.1fs after the cable's return; %d chats; alice's connection %s; "
            "her chat into the cut: %s; carol: %s\n"
            "  killed %s (room %s): %s promoted, all nodes agreed after %.1fs, chats acked again %.1fs after the "
            "kill; %d chats: %d acked, %d refused; acked before the kill and not given to every member: %d\n"
            % (self.t_cluster, " ".join(m.addr for m in masters), control_owner.addr,
               " ".join("%s@%s" % (r, owner[r].addr) for r in rooms),
               "masters only" if t_only_masters < 0.1 else "%s at first, masters only after %.1fs" % (
                   " ".join(first_up), t_only_masters),
               t_cut_total, t_down, t_up, n_cut_phase,
               "survived" if alice_survived else "dropped (%s)" % "; ".join(alice.notes),
               "no answer" if into_cut is None else into_cut.get("code", into_cut["type"]), "; ".join(carol.notes),
               victim.addr, vroom, new.addr, took, t_flowing - t_kill, len(answers), acked_n, len(refused),
               len(lost)))


if __name__ == "__main__":
    unittest.main()
