# Rooms per connection (--max-rooms): every room an instance serves costs a broker subscription, so one
# connection cannot make an instance hold thousands. Rule: the refusal is an error reply, never a close.
from roomcast_harness import RoomcastTestCase, unique

MAX_ROOMS = 3


class RoomLimit(RoomcastTestCase):
    server_args = ["--max-rooms", str(MAX_ROOMS)]

    async def test_join_beyond_the_limit_is_refused_and_leave_makes_room(self):
        c = await self.client()
        rooms = [unique("lim") for _ in range(MAX_ROOMS + 1)]
        for r in rooms[:MAX_ROOMS]:
            await c.send({"type": "join", "roomId": r})
            await c.expect("joined", roomId=r)
        await c.send({"type": "join", "roomId": rooms[-1], "ref": "over"})
        err = await c.expect_error("bad_request")
        self.assertEqual(err.get("ref"), "over")
        self.assertIn("max-rooms", err["message"])
        await c.send({"type": "create", "ref": "create-over"})
        err = await c.expect_error("bad_request")
        self.assertEqual(err.get("ref"), "create-over")
        # the refused room does not exist on the server, and the connection still works
        info = (await self.get("/rooms/" + rooms[-1])).json()
        self.assertEqual(info["count"], 0)
        await c.send({"type": "leave", "roomId": rooms[0]})
        await c.expect("left", roomId=rooms[0])
        await c.send({"type": "join", "roomId": rooms[-1]})
        await c.expect("joined", roomId=rooms[-1])
        # joining a room already joined is not a new room
        await c.send({"type": "join", "roomId": rooms[1], "ref": "again"})
        await c.expect("joined", roomId=rooms[1])


if __name__ == "__main__":
    import unittest
    unittest.main()
