# Red-team regression: `joined` with `since` omits `truncated` when the room's whole history vanished (Redis stream
# expired by --history-ttl or evicted; standalone room dropped by --history-memory), so a client that resumes misses
# chats without being told.
# Rule (PROTOCOL.md 4): with `since`, `"truncated": true` when messages after `since` are no longer retained.
import asyncio

from cluster_harness import ClusterTestCase, Peer, unique, user, wait_until
from roomcast_harness import RoomcastServer


class SinceAfterHistoryVanished(ClusterTestCase):

    async def test_redis_stream_expired(self):
        """Redis mode, --history-ttl 1. A sender posts c1 and c2 to room R; the stream room:R:log expires (waited for
        with EXISTS); the sender posts c3 (a new stream). A client joins R with since = c1's id: c2 came after c1 and
        is no longer retained, so `joined` must say "truncated": true (its history holds c3 only)."""
        a = await self.launch("a", args=["--history-ttl", "1"])
        room = unique("ttl")
        p = await self.peer(a, "p")
        await p.hello(user("p"))
        c1 = await p.chat_acked(room, "c1", "1")
        await p.chat_acked(room, "c2", "2")

        async def gone():
            return await self.redis.acommand("EXISTS", "room:%s:log" % room) == 0
        await wait_until(gone, 15, "room:%s:log expired" % room)
        await p.chat_acked(room, "c3", "3")
        q = await self.peer(a, "q")
        joined = await q.join(room, since=c1["id"])
        self.assertEqual([e["message"] for e in joined["history"]], ["c3"], joined)
        self.assertIs(joined.get("truncated"), True, "c2 (after since) is gone, yet joined is %r" % joined)

    async def test_standalone_room_dropped_by_history_memory(self):
        """Standalone, --history-memory 0. A sender posts c1 and c2 to room A, then b1 to room B (the least recently
        written room, A, is dropped). A client joins A with since = c1's id: c2 came after c1 and is no longer
        retained, so `joined` must say "truncated": true. (Before b1 it does: the record of A's deletions is lost
        with the room.)"""
        server = RoomcastServer(["--history-memory", "0"], name="since-truncated")
        self.addCleanup(server.cleanup)
        await asyncio.to_thread(server.start)
        p = await Peer.connect(server.port, "p")
        q = await Peer.connect(server.port, "q")
        self.peers += [p, q]
        await p.hello(user("p"))
        ra, rb = unique("A"), unique("B")
        c1 = await p.chat_acked(ra, "c1", "1")
        await p.chat_acked(ra, "c2", "2")
        before = await q.join(ra, since=c1["id"])
        self.assertIs(before.get("truncated"), True, before)
        await q.leave(ra)
        await p.chat_acked(rb, "b1", "3")
        after = await q.join(ra, since=c1["id"])
        self.assertIs(after.get("truncated"), True, "c2 (after since) is gone, yet joined is %r" % after)
        await p.close()
        await q.close()
        await asyncio.to_thread(server.stop)
