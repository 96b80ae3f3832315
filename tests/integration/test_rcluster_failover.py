# Redis Cluster mode, a master killed with SIGKILL while members chat (PROTOCOL.md section 7 with section 5).
# Rule: after the replica's promotion chats flow again on the same connections; every chat acked after it reaches
# every member once, in order; a refused chat reaches nobody; rooms of other masters never notice; /healthz 503
# during the outage, 200 after.
import asyncio
import time

from cluster_harness import TIMEOUT, SCALE, user
from redis_cluster_harness import (ChatTraffic, RedisClusterTestCase, check_room_log, chats_of, parse_metric_labels,
                                   wait_delivered)

RECOVERY = 20.0 * SCALE    # generous: from the harness seeing the promotion to chats acked again on its rooms


class HealthWatch:
    """/healthz of each instance every 0.1 s, kept as (monotonic time, instance name, status, body)."""

    def __init__(self, instances):
        self.instances = instances
        self.log = []
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self):
        while not self._stop.is_set():
            for inst in self.instances:
                try:
                    st, body = await inst.health()
                except (OSError, EOFError, ValueError, asyncio.TimeoutError) as e:
                    st, body = None, repr(e)
                self.log.append((time.monotonic(), inst.name, st, body))
            try:
                await asyncio.wait_for(self._stop.wait(), 0.1)
            except asyncio.TimeoutError:
                pass

    async def stop(self):
        self._stop.set()
        await self._task


class Failover(RedisClusterTestCase):
    instance_args = ["--log-level", "debug", "--rate", "1000"]

    async def test_master_killed_while_members_chat(self):
        c = self.cluster
        masters = c.masters()
        victim, safe = masters[0], masters[1]
        rooms = c.rooms_on(victim, 2, "fo")
        control = c.rooms_on(safe, 1, "ctl")[0]
        i1, i2 = await self.launch_n(2)

        a = await self.peer(i1, "alice")
        await a.hello(user("alice"))
        b = await self.peer(i2, "bob")
        await b.hello(user("bob"))
        for r in rooms + [control]:
            await a.join(r)
            await b.join(r)
            await a.take("presence", event="join", roomId=r, user=user("bob"))
        pubs = [await self.peer(i1, "pub1"), await self.peer(i2, "pub2")]
        for r in rooms + [control]:
            ack = await pubs[0].chat_acked(r, "warm-%s" % r, ref="warm-%s" % r)
            for p in (a, b):
                self.assertEqual((await p.take("chat", message="warm-%s" % r))["id"], ack["id"])
        joined_before = {p.label: sum(1 for m in p.seen if m.get("type") == "joined") for p in (a, b)}

        watch = HealthWatch([i1, i2])
        traffic = ChatTraffic(pubs, rooms + [control], rate=20.0, tag="fo").start()
        await asyncio.sleep(1.0)
        t_kill = time.monotonic()
        new, took = await asyncio.to_thread(c.kill_master, victim)
        t_promoted = time.monotonic()
        print("\n[killed %s; %s promoted, all nodes agreed after %.1fs]" % (victim.addr, new.addr, took))

        # Chats flow again on the victim's rooms: some ack read after the promotion, for each room.
        async def flowing():
            got = traffic.answers()
            fresh = {s["room"] for s in traffic.sent if s["room"] in rooms and any(
                m["type"] == "ack" and t > t_promoted for m, t in got.get(s["ref"], []))}
            return fresh == set(rooms)
        await self.wait_until_or_fail(flowing, RECOVERY, "chats acked again in %s after the promotion" % rooms)
        t_flowing = time.monotonic()
        await asyncio.sleep(1.0)
        await traffic.stop()
        answers = await traffic.wait_answered(TIMEOUT * 2)
        await self.wait_cluster_health(i1, 200, masters=3)
        await self.wait_cluster_health(i2, 200, masters=3)
        await watch.stop()

        by_room = {r: [s for s in traffic.sent if s["room"] == r] for r in rooms + [control]}
        acked_after = {r: [answers[s["ref"]][0]["id"] for s in by_room[r]
                           if answers[s["ref"]][0]["type"] == "ack" and answers[s["ref"]][1] > t_promoted]
                       for r in by_room}
        refused = [s["ref"] for s in traffic.sent if answers[s["ref"]][0]["type"] == "error"]
        # The room of another master never noticed: every chat to it acked and delivered.
        ctl_refused = [ref for ref in refused if ref in {s["ref"] for s in by_room[control]}]
        self.assertEqual(ctl_refused, [], "chats to %s (slot on %s, never down) refused" % (control, safe.addr))
        for r in rooms + [control]:
            must = acked_after[r] if r != control else [answers[s["ref"]][0]["id"] for s in by_room[r]]
            await wait_delivered([a, b], r, must, TIMEOUT)
            check_room_log([a, b], r, must_ids=must, refused_messages=refused)

        # Both instances subscribe the victim's rooms on the promoted replica now.
        for r in rooms:
            await self.wait_shardnumsub(r, 2, node=new)
        # Same connections throughout: no close, no second joined.
        for p in (a, b) + tuple(pubs):
            self.assertIsNone(p.closed, p)
        for p in (a, b):
            self.assertEqual(sum(1 for m in p.seen if m.get("type") == "joined"), joined_before[p.label], p)

        # /healthz: 503 degraded on both instances at some point during the outage, 200 at the end (above).
        for inst in (i1, i2):
            mine = [(t, st, body) for t, name, st, body in watch.log if name == inst.name and t >= t_kill]
            bad = [(t, body) for t, st, body in mine if st == 503]
            self.assertTrue(bad, "%s: /healthz never 503 during the outage: %r" % (inst.name, mine[:3]))
            self.assertEqual(bad[0][1].get("status"), "degraded", bad[0][1])
            self.assertEqual(bad[0][1].get("redis"), "cluster", bad[0][1])
            ok_again = [t for t, st, _ in mine if st == 200 and t > bad[-1][0]]
            print("[%s /healthz: 503 from +%.1fs to +%.1fs after the kill, 200 again at +%s; first 503: %s]"
                  % (inst.name, bad[0][0] - t_kill, bad[-1][0] - t_kill,
                     "%.1fs" % (ok_again[0] - t_kill) if ok_again else "?", bad[0][1]))

        # Information: what Redis lost (acked before the kill, not on the new owner), and what it cost.
        lost, undelivered = 0, 0
        for r in rooms:
            held = set(await asyncio.to_thread(c.stream_ids, r))
            before = [answers[s["ref"]][0]["id"] for s in by_room[r]
                      if answers[s["ref"]][0]["type"] == "ack" and answers[s["ref"]][1] < t_kill]
            lost += sum(1 for i in before if i not in held)
            got = [{e["id"] for e in chats_of(p, r)} for p in (a, b)]
            undelivered += sum(1 for i in before if not all(i in g for g in got))
        acked = sum(1 for m, _ in answers.values() if m["type"] == "ack")
        print("[%d chats: %d acked, %d refused (unavailable); acked before the kill and not on the new owner: %d; "
              "of those, not given to every member: %d; chats flowing again %.1fs after the kill]"
              % (len(answers), acked, len(refused), lost, undelivered, t_flowing - t_kill))
        for inst in (i1, i2):
            m = await inst.metrics()
            shown = {k: v for k, v in m.items() if parse_metric_labels(k)[0] in (
                "roomcast_redis_masters", "roomcast_redis_redirects_total", "roomcast_redis_slot_map_refreshes_total",
                "roomcast_redis_reconnects_total")}
            print("[%s: %s]" % (inst.name, ", ".join("%s=%g" % kv for kv in sorted(shown.items()))))

    async def wait_until_or_fail(self, probe, timeout, what):
        deadline = time.monotonic() + timeout
        while not await probe():
            if time.monotonic() > deadline:
                self.fail("%s: not within %.0fs" % (what, timeout))
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    import unittest
    unittest.main()
