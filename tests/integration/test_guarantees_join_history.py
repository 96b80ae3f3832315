# Regression tests of finding 1 (PROTOCOL.md section 5, "Joined means subscribed", "No gaps", "Recovery").
# Rule: `joined` carries the history the joiner should have, and every chat after it reaches the joiner, even
# when the broker connection drops while the history read for that `joined` is in flight.
import asyncio

from cluster_harness import ClusterTestCase, unique, user, wait_until
from guarantees_harness import LONG, LinkProxy, assert_once_in_order, chats_of, pubsub_clients_of

N = 5


class JoinWhileHistoryReadFails(ClusterTestCase):

    async def publish(self, pub, room, tag, n=N):
        """n acked chats from pub; returns their ids."""
        return [(await pub.chat_acked(room, "%s-%d" % (tag, k), ref="%s-%d" % (tag, k)))["id"] for k in range(n)]

    async def publish_when_up(self, pub, room, tag, n=N):
        """Like publish(), retrying a chat answered `unavailable` (the publisher's instance may still be coming
        back); returns the acked ids."""
        ids = []
        for k in range(n):
            ref = "%s-%d" % (tag, k)
            for attempt in range(100):
                await pub.chat(room, ref, ref="%s/%d" % (ref, attempt))
                ans = await pub.answer("%s/%d" % (ref, attempt), timeout=LONG)
                if ans["type"] == "ack":
                    ids.append(ans["id"])
                    break
                self.assertEqual(ans.get("code"), "unavailable", ans)
                await asyncio.sleep(0.2)
            else:
                self.fail("%s never acked" % ref)
        return ids

    async def take_until(self, peer, room, message, timeout=LONG):
        """Take the room's chats from peer's inbox up to the one with `message` (they stay in peer.seen)."""
        for _ in range(1000):
            if (await peer.take("chat", timeout=timeout, roomId=room))["message"] == message:
                return
        self.fail("%s: no %r" % (peer.label, message))

    async def test_join_while_redis_frozen_gets_its_history(self):
        """Finding 1, freeze variant. Room R is subscribed on i1 (a watcher is in it); 5 chats are posted from i2.
        Redis is frozen (SIGSTOP) and a client joins R on i1 at once, so the history read for its `joined` is
        sent into the frozen Redis; the freeze lasts past the 3 s probe deadline (i1 reports down). Asserts:
        the joiner's `joined` (whenever it comes) carries the 5 chats as history, and after the thaw it receives
        the chats posted afterwards exactly once, in order (history + live = every acked id once)."""
        i1, i2 = await self.launch_n(2)
        room = unique("frz")
        watcher, _ = await self.member(i1, "watcher", room)
        pub = await self.peer(i2, "pub")
        await pub.hello(user("pub"))
        pre = await self.publish(pub, room, "pre")
        await watcher.take_n(N, "chat")
        joiner = await self.peer(i1, "joiner")
        await joiner.hello(user("joiner"))

        self.redis.freeze()
        await joiner.send({"type": "join", "roomId": room})
        await self.wait_health(i1, 503, "down", timeout=LONG)
        self.redis.thaw()
        for inst in (i1, i2):
            await self.wait_health(inst, 200, "up", timeout=LONG)
        joined = await joiner.take("joined", timeout=LONG, roomId=room)   # (it may wait for Redis)
        post = await self.publish_when_up(pub, room, "post")
        await self.take_until(joiner, room, "post-%d" % (N - 1))
        await joiner.expect_none("chat", seconds=0.5)
        history = [e["id"] for e in joined["history"]]
        self.assertEqual(history, pre, "joined during the freeze: `joined.history` must be the %d chats posted before"
                         " the join, got %r (joined %r)" % (N, [e["message"] for e in joined["history"]], joined))
        assert_once_in_order(self, "joiner (history + live)", history + [e["id"] for e in chats_of(joiner, room)],
                             pre + post)
        assert_once_in_order(self, "watcher", [e["id"] for e in chats_of(watcher, room)], pre + post)

    async def test_first_join_subscription_killed_while_history_in_flight(self):
        """Finding 1, first-join variant. i1 reaches Redis through a link that holds its commands 1.5 s, so after
        Redis confirms i1's SUBSCRIBE for a fresh room R, the history read for the joiner's `joined` is in flight
        for 1.5 s. In that window i1's subscription connection is killed (CLIENT KILL ID). Chats are posted from
        i2 before the join, right after the kill (while i1 is reconnecting) and after i1 is back. Asserts: the
        joiner's history + live chats are every acked chat exactly once, in order (nothing lost around the drop,
        no `joined` with an empty history standing for the one it should have had)."""
        proxy = LinkProxy(self.redis.port, delay=1.5)
        await proxy.start()
        self.addAsyncCleanup(proxy.close)
        i1 = await self.launch("i1", redis_url=proxy.url)
        i2 = await self.launch("i2")
        room = unique("kill")
        pub = await self.peer(i2, "pub")
        await pub.hello(user("pub"))
        pre = await self.publish(pub, room, "pre")
        joiner = await self.peer(i1, "joiner")
        await joiner.hello(user("joiner"))

        await joiner.send({"type": "join", "roomId": room})
        # Redis saw i1's SUBSCRIBE: the confirmation is on its way back at once, the history read follows
        # through the slow link; kill i1's subscription connection while that read is held.
        await self.wait_numsub(room, 1, timeout=LONG)
        mine = await pubsub_clients_of(self.redis, proxy.upstream_ports())
        self.assertEqual(len(mine), 1, "i1's subscription connection: %r" % mine)
        self.assertEqual(await self.redis.acommand("CLIENT", "KILL", "ID", mine[0]["id"]), 1)
        gap = await self.publish(pub, room, "gap")

        async def back():
            return await i1.metric("roomcast_redis_reconnects_total") >= 1 and \
                await self.redis.numsub("room:%s" % room) == 1
        await wait_until(back, LONG, "i1 reconnected and subscribed to the room again")
        post = await self.publish(pub, room, "post")

        joined = await joiner.take("joined", timeout=LONG, roomId=room)
        # The `post` chats come live or, if they reached Redis before the (slow) history read ran, in the history.
        if "post-%d" % (N - 1) not in [e["message"] for e in joined["history"]]:
            await self.take_until(joiner, room, "post-%d" % (N - 1))
        await joiner.expect_none("chat", seconds=0.5)
        history = [e["id"] for e in joined["history"]]
        got = history + [e["id"] for e in chats_of(joiner, room)]
        assert_once_in_order(self, "joiner (history %r + live)" % [e["message"] for e in joined["history"]],
                             got, pre + gap + post)

    async def test_rejoin_with_since_while_redis_frozen_is_not_silent(self):
        """Finding 1, `since` variant. A client saw 5 chats of R, went away, and 3 more were posted. It comes
        back on i1 (where R is subscribed: a watcher is in it) and joins with `since` = the last id it saw,
        just after Redis is frozen (the history read for its `joined` goes into the frozen Redis; i1 reports
        down after the probe deadline). Asserts: `joined` either carries the 3 missed chats or says
        `truncated: true` (it may not silently skip them), and every chat posted after the thaw reaches the
        client exactly once, in order."""
        i1, i2 = await self.launch_n(2)
        room = unique("since")
        watcher, _ = await self.member(i1, "watcher", room)
        pub = await self.peer(i2, "pub")
        await pub.hello(user("pub"))
        old, _ = await self.member(i2, "comeback", room)
        pre = await self.publish(pub, room, "pre")
        await old.take_n(N, "chat")
        await old.close()
        missed = await self.publish(pub, room, "missed", n=3)
        await watcher.take_n(N + 3, "chat")
        again = await self.peer(i1, "comeback-again")
        await again.hello(user("comeback"))

        self.redis.freeze()
        await again.send({"type": "join", "roomId": room, "since": pre[-1]})
        await self.wait_health(i1, 503, "down", timeout=LONG)
        self.redis.thaw()
        for inst in (i1, i2):
            await self.wait_health(inst, 200, "up", timeout=LONG)
        joined = await again.take("joined", timeout=LONG, roomId=room)   # (it may wait for Redis)
        post = await self.publish_when_up(pub, room, "post")
        await self.take_until(again, room, "post-%d" % (N - 1))
        await again.expect_none("chat", seconds=0.5)
        history = [e["id"] for e in joined["history"]]
        if joined.get("truncated") is not True:
            self.assertEqual(history[:3], missed, "`joined` after `since` skips the missed chats without"
                             " `truncated`: %r" % (joined,))
        live = [e["id"] for e in chats_of(again, room)]
        got = [i for i in history + live if i not in missed]
        assert_once_in_order(self, "client back with since (history + live, missed chats aside)", got, post)
        self.assertEqual(len(history + live), len(set(history + live)), "duplicates: %r" % (history + live))


if __name__ == "__main__":
    import unittest
    unittest.main()
