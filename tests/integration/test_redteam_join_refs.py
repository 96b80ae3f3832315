# Red-team regression: repeated joins sent together are not each answered; some joins get no reply at all.
# Rule (PROTOCOL.md 3): `join` is answered with `joined` ("Joining a room already joined repeats joined"), and a
# reply echoes the `ref` of the message that caused it.
import asyncio
import json

from roomcast_harness import OP_TEXT, TIMEOUT, RoomcastTestCase, build_frame, unique


def frame(obj):
    return build_frame(OP_TEXT, json.dumps(obj).encode())


class RepeatedJoinsInOneWrite(RoomcastTestCase):

    async def joined_refs(self, ws, n):
        refs = []
        while len(refs) < n:
            try:
                m = await ws.read_json(timeout=TIMEOUT)
            except asyncio.TimeoutError:
                self.fail("%d joins sent, `joined` came only for refs %r (no other reply within %.0f s)"
                          % (n, refs, TIMEOUT))
            if m.get("type") == "joined":
                refs.append(m.get("ref"))
        return refs

    async def test_three_joins_of_a_joined_room(self):
        """A client joins room R and gets `joined`. Then, in one TCP write, it sends join R with refs j1, j2, j3. Each
        join must be answered with a `joined` echoing its ref: j1, j2 and j3."""
        room = unique("refs")
        ws = await self.raw()
        await ws.send_text({"type": "join", "roomId": room, "ref": "j0"})
        self.assertEqual(await self.joined_refs(ws, 1), ["j0"])
        await ws.send(b"".join(frame({"type": "join", "roomId": room, "ref": r}) for r in ("j1", "j2", "j3")))
        self.assertEqual(sorted(await self.joined_refs(ws, 3)), ["j1", "j2", "j3"])

    async def test_two_joins_of_a_new_room(self):
        """In one TCP write, a client sends join R (ref a1) and join R (ref a2) for a room nobody is in: two `joined`,
        echoing a1 and a2."""
        room = unique("refs")
        ws = await self.raw()
        await ws.send(b"".join(frame({"type": "join", "roomId": room, "ref": r}) for r in ("a1", "a2")))
        self.assertEqual(sorted(await self.joined_refs(ws, 2)), ["a1", "a2"])
