# Regression tests of finding 11 (PROTOCOL.md section 4: a `joined` frame never exceeds 512 KiB).
# Rule: whatever others posted, a joiner gets a `joined` of at most 512 KiB with the newest history, and stays.
import asyncio
import json
import unittest

import websockets

from cluster_harness import ClusterTestCase, Peer, unique, user
from guarantees_harness import LONG
from roomcast_harness import RoomcastServer, quiet_slow_callback_warnings

JOINED_MAX = 512 * 1024
POISON = "\u0001" * 9800   # 9,800 bytes of UTF-8, ~58,800 bytes once JSON-escaped (\u0001)
CHATS = 50


async def poisoned_room_case(tc, poster_port, port):
    """The scenario: the poster on the instance at poster_port, the joiner at port; tc is the TestCase."""
    room = unique("poison")
    poster = await Peer.connect(poster_port, "poster")
    try:
        await poster.hello(user("poster"))
        ids = [(await poster.chat_acked(room, POISON, ref="p%d" % k))["id"] for k in range(CHATS)]

        ws = await websockets.connect("ws://127.0.0.1:%d/ws" % port, compression=None, ping_interval=None,
                                      max_size=None, max_queue=None)
        try:
            await ws.send(json.dumps({"type": "hello", "user": user("joiner")}))
            await ws.send(json.dumps({"type": "join", "roomId": room}))
            joined, raw = None, None
            while joined is None:
                try:
                    raw = await asyncio.wait_for(ws.recv(), LONG)
                except websockets.exceptions.ConnectionClosed as e:
                    tc.fail("the joiner was closed (code %s, %r) instead of getting `joined`" % (e.code, e.reason))
                msg = json.loads(raw)
                if msg.get("type") == "joined":
                    joined = msg
            size = len(raw.encode("utf-8"))
            history = [e["id"] for e in joined["history"]]
            tc.assertLessEqual(size, JOINED_MAX, "`joined` frame of %d bytes (%d history entries of ~58,800 bytes)"
                               % (size, len(history)))
            tc.assertIs(joined.get("truncated"), True, "history left out without `truncated: true`")
            tc.assertTrue(history, "no history at all")
            tc.assertEqual(history, ids[-len(history):], "history must be the newest chats (cut from the oldest)")
            tc.assertTrue(all(e["message"] == POISON for e in joined["history"]))

            # Not closed, and live: a chat posted now reaches the joiner.
            ack = await poster.chat_acked(room, "after the poison", ref="after")
            while True:
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), LONG))
                except websockets.exceptions.ConnectionClosed as e:
                    tc.fail("the joiner was closed (code %s, %r) after `joined`" % (e.code, e.reason))
                if msg.get("type") == "chat":
                    tc.assertEqual((msg["id"], msg["message"]), (ack["id"], "after the poison"), msg)
                    break
        finally:
            await ws.close()
    finally:
        await poster.close()


class PoisonedRoomStandalone(unittest.IsolatedAsyncioTestCase):

    async def asyncSetUp(self):
        quiet_slow_callback_warnings()
        self.server = RoomcastServer([], name="poison")
        self.addCleanup(self.server.cleanup)
        await asyncio.to_thread(self.server.start)

    async def asyncTearDown(self):
        alive = self.server.alive()
        await asyncio.to_thread(self.server.stop, alive)
        self.assertTrue(alive, "the server died")

    async def test_joined_bounded_in_a_poisoned_room(self):
        """Finding 11, standalone. A client that never joins posts 50 chats of 9,800 U+0001 characters (each
        ~58,800 bytes as JSON) into room R. A new joiner of R: its `joined` frame is at most 512 KiB, says
        `truncated: true`, holds the newest chats (a suffix of the 50, newest included); the joiner is not
        closed and receives the next chat live."""
        await poisoned_room_case(self, self.server.port, self.server.port)


class PoisonedRoomRedis(ClusterTestCase):

    async def test_joined_bounded_in_a_poisoned_room(self):
        """Finding 11, Redis mode: the same as standalone, the poster on i1 and the joiner on i2."""
        i1, i2 = await self.launch_n(2)
        await poisoned_room_case(self, i1.port, i2.port)


if __name__ == "__main__":
    unittest.main()
