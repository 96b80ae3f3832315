# Red-team regression: a chat in doubt whose record the reaper deleted is answered `unavailable` though it ran.
# Rule (PROTOCOL.md 4-5): `unavailable` means "the message was not sent"; a chat answered so must reach nobody.
import asyncio

from cluster_harness import ClusterTestCase, unique, wait_until
from redteam_proxy import GateProxy


class DoubtRecordsReaped(ClusterTestCase):

    async def test_chat_in_doubt_of_a_reaped_instance(self):
        """Instance b reaches Redis through a proxy; both instances run with --instance-ttl 1. u1 (on a) and u2 (on
        b) are in a room. The proxy swallows the replies of b's command connection; u2 sends chat "ran" (ref x):
        Redis runs it, u1 receives it (and so does u2), but b never reads the answer. The proxy then cuts b's
        connections and refuses new ones, so b's chat is in doubt; b's liveness key expires and instance a's reaper
        removes b, deleting b's chat record list roomcast:chats:b. Then b may reconnect. The chat ran and was
        delivered, so u2 must get an `ack` for ref x (with the id u1 saw), never `unavailable`."""
        proxy = await GateProxy(self.redis.port).start()
        self.addAsyncCleanup(proxy.close)
        a = await self.launch("a", args=["--instance-ttl", "1"])
        b = await self.launch("b", args=["--instance-ttl", "1"], redis_url=proxy.url)
        room = unique("doubt")
        u1, _ = await self.member(a, "u1", room)
        u2, _ = await self.member(b, "u2", room)
        await u1.take("presence", event="join")

        proxy.swallow_pub_replies = True
        await u2.chat(room, "ran", "x")
        delivered = await u1.take("chat", message="ran")     # it ran: Redis published it
        proxy.refuse = True
        proxy.cut()                                           # b's answer is lost: the chat is in doubt

        async def reaped():
            return await self.redis.acommand("ZSCORE", "roomcast:instances", "b") is None
        await wait_until(reaped, 15, "instance b reaped by a (its liveness key expired)")
        proxy.swallow_pub_replies = False
        proxy.refuse = False                                  # b comes back and resolves its chat in doubt

        answer = await u2.answer("x", timeout=15)
        self.assertEqual(answer.get("type"), "ack",
                         "chat %s was delivered to u1 (and u2) but its sender was told %r" % (delivered["id"], answer))
        self.assertEqual(answer.get("id"), delivered["id"], answer)
