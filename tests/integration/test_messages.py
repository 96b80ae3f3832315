# JSON messages (PROTOCOL.md sections 2-4): every client type and alias, every standalone error code, ref, identity.
# Rule: each test uses fresh connections and fresh room ids, and checks replies field by field.
import json
import re
import socket
import time

from roomcast_harness import GENERATED_ROOM_RE, RoomcastTestCase, unique, user

ANON_ID = re.compile(r"^anon-[A-Za-z0-9_.:-]{1,59}$")
GUEST_NAME = re.compile(r"^guest-.{4}$")


class MessageTestCase(RoomcastTestCase):

    def assert_user(self, u):
        self.assertIsInstance(u, dict, u)
        self.assertRegex(u.get("id", ""), r"^[A-Za-z0-9_.:-]{1,64}$", u)
        self.assertIsInstance(u.get("name"), str, u)
        self.assertTrue(1 <= len(u["name"].encode()) <= 64 * 4, u)

    def assert_chat(self, msg, room, message, u=None):
        self.assertEqual(msg.get("type"), "chat", msg)
        self.assertEqual(msg.get("roomId"), room, msg)
        self.assertEqual(msg.get("message"), message, msg)
        self.assertIsInstance(msg.get("id"), str, msg)
        self.assertRegex(msg["id"], r"^\d+(-\d+)*$", msg)
        self.assertIsInstance(msg.get("ts"), int, msg)
        self.assertLess(abs(msg["ts"] - time.time() * 1000), 60000, "ts is not ms since the epoch: %r" % msg)
        self.assert_user(msg.get("user"))
        if u is not None:
            self.assertEqual(msg["user"], u, msg)

    def assert_joined(self, msg, room, u=None):
        self.assertEqual(msg.get("type"), "joined", msg)
        self.assertEqual(msg.get("roomId"), room, msg)
        self.assert_user(msg.get("user"))
        if u is not None:
            self.assertEqual(msg["user"], u, msg)
        self.assertIsInstance(msg.get("members"), list, msg)
        for m in msg["members"]:
            self.assert_user(m)
        self.assertIsInstance(msg.get("history"), list, msg)

    async def member(self, room, u, label=None):
        c = await self.client(label=label or u["id"])
        await c.hello(u)
        await c.join(room)
        return c


class ClientTypes(MessageTestCase):

    def default_instance(self):
        """The --instance-id a server started without one has: host:pid (gethostname, the server's own pid)."""
        return "%s:%d" % (socket.gethostname(), self.server.proc.pid)

    async def test_hello(self):
        c = await self.client()
        alice = user("alice", "Alice")
        await c.send({"type": "hello", "user": alice})
        # `instance` is a roomcast addition (docs/protocol.md, part 2): the process that answered.
        self.assertEqual(await c.expect("hello"), {"type": "hello", "user": alice, "instance": self.default_instance()})

    async def test_hello_with_ref(self):
        c = await self.client()
        await c.send({"type": "hello", "user": user("u1"), "ref": "h1"})
        self.assertEqual(await c.expect("hello"),
                         {"type": "hello", "user": user("u1"), "instance": self.default_instance(), "ref": "h1"})

    async def test_hello_instance_is_the_healthz_instance(self):
        c = await self.client()
        await c.send({"type": "hello", "user": user("u3")})
        hello = await c.expect("hello")
        health = (await self.get("/healthz")).json()
        self.assertEqual(hello.get("instance"), health["instance"], (hello, health))

    async def test_hello_utf8_name(self):
        c = await self.client()
        u = {"id": "u.2:x_y-z", "name": "Zo\u00eb \u7530\u4e2d \U0001F600"}
        await c.send({"type": "hello", "user": u})
        self.assertEqual((await c.expect("hello"))["user"], u)

    async def test_create(self):
        c = await self.client()
        await c.send({"type": "create", "ref": "c1"})
        created = await c.expect("created", ref="c1")
        room = created["roomId"]
        self.assertRegex(room, GENERATED_ROOM_RE)
        joined = await c.expect("joined", roomId=room)
        self.assert_joined(joined, room)
        self.assertEqual(joined["history"], [])
        self.assertIn(joined["user"], joined["members"])
        info = (await self.get("/rooms/" + room)).json()
        self.assertEqual(info["count"], 1, info)

    async def test_create_twice_gives_different_rooms(self):
        c = await self.client()
        await c.send({"type": "create"})
        r1 = (await c.expect("created"))["roomId"]
        await c.expect("joined", roomId=r1)
        await c.send({"type": "create"})
        r2 = (await c.expect("created"))["roomId"]
        await c.expect("joined", roomId=r2)
        self.assertNotEqual(r1, r2)

    async def test_create_with_user(self):
        c = await self.client()
        u = user("creator")
        await c.send({"type": "create", "user": u})
        room = (await c.expect("created"))["roomId"]
        self.assert_joined(await c.expect("joined", roomId=room), room, u)

    async def test_join(self):
        room = unique("join")
        c = await self.client()
        u = user("joiner")
        await c.send({"type": "join", "roomId": room, "user": u, "ref": 42})
        joined = await c.expect("joined", ref=42)
        self.assert_joined(joined, room, u)
        self.assertEqual(joined["members"], [u])
        self.assertEqual(joined["history"], [])

    async def test_leave(self):
        room = unique("leave")
        c = await self.client()
        await c.join(room)
        await c.send({"type": "leave", "roomId": room, "ref": "l1"})
        self.assertEqual(await c.expect("left"), {"type": "left", "roomId": room, "ref": "l1"})
        info = (await self.get("/rooms/" + room)).json()
        self.assertEqual(info["count"], 0, info)
        # no longer a member: its chats reach it no more, and a second leave is not_member
        await c.send({"type": "leave", "roomId": room})
        await c.expect_error("not_member")

    async def test_chat_member_with_ref(self):
        room = unique("chat")
        u = user("talker")
        c = await self.member(room, u)
        await c.send({"type": "chat", "roomId": room, "message": "hi there", "ref": "m1"})
        got = await c.recv_n(2)
        by_type = {m["type"]: m for m in got}
        self.assertEqual(set(by_type), {"chat", "ack"}, got)
        self.assert_chat(by_type["chat"], room, "hi there", u)
        self.assertEqual(by_type["ack"]["ref"], "m1", got)
        self.assertEqual(by_type["ack"]["id"], by_type["chat"]["id"], got)
        await c.expect_silence()

    async def test_chat_member_without_ref(self):
        room = unique("chat")
        c = await self.member(room, user("quiet"))
        await c.send({"type": "chat", "roomId": room, "message": "no ack please"})
        self.assert_chat(await c.expect("chat"), room, "no ack please", user("quiet"))
        await c.expect_silence()

    async def test_chat_from_non_member(self):
        room = unique("pub")
        m = await self.member(room, user("listener"))
        p = await self.client(label="publisher")
        await p.hello(user("pubber"))
        await p.send({"type": "chat", "roomId": room, "message": "from outside", "ref": 9})
        ack = await p.expect("ack", ref=9)
        ev = await m.expect("chat")
        self.assert_chat(ev, room, "from outside", user("pubber"))
        self.assertEqual(ack["id"], ev["id"])
        await p.send({"type": "chat", "roomId": room, "message": "no ref"})
        self.assert_chat(await m.expect("chat"), room, "no ref", user("pubber"))
        await p.expect_silence()
        await m.expect_silence()

    async def test_chat_to_empty_room_with_ref_acked(self):
        p = await self.client()
        await p.send({"type": "chat", "roomId": unique("nobody"), "message": "anyone?", "ref": "e"})
        ack = await p.expect("ack", ref="e")
        self.assertIsInstance(ack.get("id"), str, ack)

    async def test_ping(self):
        c = await self.client()
        await c.send({"type": "ping"})
        pong = await c.expect("pong")
        self.assertNotIn("ref", pong)
        await c.send({"type": "ping", "ref": "p"})
        await c.expect("pong", ref="p")
        await c.send({"type": "ping", "ref": 12.5})
        await c.expect("pong", ref=12.5)


class HelloInstance(MessageTestCase):
    """--instance-id names the process in the `hello` reply (a roomcast addition), exactly as given."""

    INSTANCE = "eu-west-1a:roomcast \"7\""
    server_args = ["--instance-id", INSTANCE]

    async def test_hello_carries_the_instance_id(self):
        c = await self.client()
        bob = user("bob", "Bob")
        await c.send({"type": "hello", "user": bob, "ref": 5})
        self.assertEqual(await c.expect("hello"), {"type": "hello", "user": bob, "instance": self.INSTANCE, "ref": 5})

    async def test_later_hello_reports_identity_and_instance(self):
        # Identity from a join first; a later hello reports the identity in force and still the instance.
        room, dave = unique("inst"), user("dave")
        c = await self.client()
        await c.send({"type": "join", "roomId": room, "user": dave})
        self.assert_joined(await c.expect("joined"), room, dave)
        await c.send({"type": "hello", "user": user("eve")})
        self.assertEqual(await c.expect("hello"), {"type": "hello", "user": dave, "instance": self.INSTANCE})


class Aliases(MessageTestCase):

    async def test_subscribe_unsubscribe(self):
        room = unique("sub")
        c = await self.client()
        await c.send({"type": "SUBSCRIBE", "room": room})
        self.assert_joined(await c.expect("joined", roomId=room), room)
        await c.send({"type": "UNSUBSCRIBE", "room": room})
        await c.expect("left", roomId=room)
        self.assertEqual((await self.get("/rooms/" + room)).json()["count"], 0)

    async def test_send_message(self):
        room = unique("send")
        m = await self.member(room, user("m"))
        p = await self.client()
        await p.send({"type": "sendMessage", "roomId": room, "message": "via alias"})
        self.assert_chat(await m.expect("chat"), room, "via alias")
        await p.send({"type": "sendMessage", "roomId": room, "message": "with ref", "ref": "s"})
        await p.expect("ack", ref="s")
        self.assert_chat(await m.expect("chat"), room, "with ref")

    async def test_join_room_with_name(self):
        room = unique("jr")
        c = await self.client()
        await c.send({"type": "join_room", "room": room, "name": "Trinity"})
        joined = await c.expect("joined", roomId=room)
        self.assert_joined(joined, room)
        self.assertEqual(joined["user"]["name"], "Trinity")
        await c.send({"type": "chat", "roomId": room, "message": "x"})
        self.assertEqual((await c.expect("chat"))["user"], joined["user"])

    async def test_join_room_with_user(self):
        room = unique("jr")
        c = await self.client()
        u = user("morpheus")
        await c.send({"type": "join_room", "room": room, "user": u})
        self.assert_joined(await c.expect("joined", roomId=room), room, u)

    async def test_join_room_plain(self):
        room = unique("jr")
        c = await self.client()
        await c.send({"type": "join_room", "room": room})
        self.assert_joined(await c.expect("joined", roomId=room), room)

    async def test_chat_message_with_room(self):
        room = unique("cm")
        m = await self.member(room, user("m"))
        p = await self.client()
        await p.send({"type": "chat_message", "room": room, "message": "explicit room"})
        self.assert_chat(await m.expect("chat"), room, "explicit room")

    async def test_chat_message_to_only_room(self):
        room = unique("cm")
        m = await self.member(room, user("m"))
        c = await self.member(room, user("c"))
        await m.expect("presence")
        await c.send({"type": "chat_message", "message": "implicit room", "ref": "im"})
        got = await c.recv_n(2)
        self.assertEqual({g["type"] for g in got}, {"chat", "ack"}, got)
        self.assert_chat(await m.expect("chat"), room, "implicit room", user("c"))

    async def test_chat_message_without_any_room(self):
        c = await self.client()
        await c.send({"type": "chat_message", "message": "where?", "ref": "w"})
        await c.expect_error("bad_request", ref="w")
        await c.ping()

    async def test_chat_message_with_two_rooms(self):
        c = await self.client()
        await c.join(unique("one"))
        await c.join(unique("two"))
        await c.send({"type": "chat_message", "message": "which?", "ref": "w2"})
        await c.expect_error("bad_request", ref="w2")
        await c.ping()

    async def test_chat_message_after_leaving_one_of_two(self):
        r1, r2 = unique("one"), unique("two")
        c = await self.client()
        await c.join(r1)
        await c.join(r2)
        await c.send({"type": "leave", "roomId": r1})
        await c.expect("left", roomId=r1)
        await c.send({"type": "chat_message", "message": "now r2"})
        self.assert_chat(await c.expect("chat"), r2, "now r2")

    async def test_exit(self):
        room = unique("exit")
        c = await self.client()
        await c.join(room)
        await c.send({"type": "exit", "roomId": room})
        await c.expect("left", roomId=room)
        await c.send({"type": "exit", "roomId": room, "ref": "x"})
        await c.expect_error("not_member", ref="x")

    async def test_room_field_for_room_id(self):
        room = unique("field")
        c = await self.client()
        await c.send({"type": "join", "room": room})
        self.assert_joined(await c.expect("joined", roomId=room), room)
        await c.send({"type": "chat", "room": room, "message": "room field", "ref": 1})
        got = await c.recv_n(2)
        self.assertEqual({g["type"] for g in got}, {"chat", "ack"}, got)
        self.assert_chat([g for g in got if g["type"] == "chat"][0], room, "room field")
        await c.send({"type": "leave", "room": room})
        await c.expect("left", roomId=room)
        await c.send({"type": "SUBSCRIBE", "roomId": room})
        await c.expect("joined", roomId=room)
        await c.send({"type": "sendMessage", "room": room, "message": "alias + room"})
        self.assert_chat(await c.expect("chat"), room, "alias + room")


class Errors(MessageTestCase):

    async def test_bad_json(self):
        c = await self.client()
        for text in ("not json", "[1,2]", '"a string"', "42", "null", "true", '{"type":"ping"', "", "{'type':'ping'}"):
            with self.subTest(text=text):
                await c.send(text)
                await c.expect_error("bad_json")
        await c.ping()

    async def test_bad_request(self):
        c = await self.client()
        cases = [
            {},
            {"type": 5},
            {"type": None},
            {"type": ["ping"]},
            {"type": "chat", "roomId": "r1"},
            {"type": "chat", "roomId": "r1", "message": 5},
            {"type": "chat", "roomId": "r1", "message": None},
            {"type": "chat", "roomId": "r1", "message": ""},
            {"type": "chat", "message": "no room"},
            {"type": "join"},
            {"type": "leave"},
            {"type": "hello"},
            {"type": "hello", "user": "alice"},
            {"type": "hello", "user": {"id": "alice"}},
            {"type": "hello", "user": {"name": "Alice"}},
            {"type": "hello", "user": {"id": "bad id!", "name": "Bad"}},
            {"type": "hello", "user": {"id": "a" * 65, "name": "Long"}},
            {"type": "hello", "user": {"id": "", "name": "Empty"}},
            {"type": "hello", "user": {"id": "ok", "name": ""}},
            {"type": "hello", "user": {"id": "ok", "name": "n" * 65}},
            {"type": "hello", "user": {"id": "ok", "name": "line\nbreak"}},
            {"type": "hello", "user": {"id": "ok", "name": "nul\u0000"}},
            {"type": "hello", "user": {"id": 7, "name": "Num"}},
        ]
        for i, msg in enumerate(cases):
            with self.subTest(msg=msg):
                await c.send(dict(msg, ref="br%d" % i))
                await c.expect_error("bad_request", ref="br%d" % i)
        await c.ping()
        # none of the rejected hellos set an identity: a valid one still does
        await c.hello(user("valid"))

    async def test_unknown_type(self):
        c = await self.client()
        for t in ("dance", "Join", "", "chat ", "created", "joined"):
            with self.subTest(type=t):
                await c.send({"type": t, "ref": t or "empty"})
                await c.expect_error("unknown_type", ref=t or "empty")
        await c.ping()

    async def test_bad_room(self):
        c = await self.client()
        for room in ("bad!id", "a" * 65, "", "sp ace", "sl/ash", "\u00e9t\u00e9", "tab\t"):
            for msg in ({"type": "join", "roomId": room}, {"type": "chat", "roomId": room, "message": "m"},
                        {"type": "SUBSCRIBE", "room": room}, {"type": "sendMessage", "roomId": room, "message": "m"}):
                with self.subTest(msg=msg):
                    await c.send(dict(msg, ref=1))
                    await c.expect_error("bad_room", ref=1)
        await c.ping()
        # the 64-character maximum and the whole alphabet are fine
        await c.join("a" * 64)
        await c.join("AZaz09_-.:")

    async def test_not_member(self):
        c = await self.client()
        room = unique("nm")
        for msg in ({"type": "leave", "roomId": room}, {"type": "UNSUBSCRIBE", "room": room},
                    {"type": "exit", "roomId": room}):
            with self.subTest(msg=msg):
                await c.send(dict(msg, ref="nm"))
                await c.expect_error("not_member", ref="nm")
        # someone else's membership does not count
        other = await self.client()
        await other.join(room)
        await c.send({"type": "leave", "roomId": room})
        await c.expect_error("not_member")
        await c.ping()
        await other.expect_silence()

    async def test_too_large(self):
        room = unique("big")
        c = await self.client()
        await c.join(room)
        for message in ("x" * 16385, "\u00e9" * 8192 + "a", "\u20ac" * 5462):
            with self.subTest(bytes=len(message.encode())):
                await c.send({"type": "chat", "roomId": room, "message": message, "ref": "big"})
                await c.expect_error("too_large", ref="big")
        for message in ("x" * 16384, "\u00e9" * 8192, "\u20ac" * 5461 + "a"):
            with self.subTest(ok_bytes=len(message.encode())):
                await c.send({"type": "chat", "roomId": room, "message": message})
                self.assert_chat(await c.expect("chat"), room, message)
        await c.ping()

    async def test_ref_echo_on_errors(self):
        c = await self.client()
        for ref in ("s", 7, 0, -3, 1.5, "\u00e9" * 10, "r" * 64):
            with self.subTest(ref=ref):
                await c.send({"type": "nope", "ref": ref})
                err = await c.expect_error("unknown_type")
                self.assertEqual(err.get("ref"), ref, err)
                self.assertEqual(type(err.get("ref")), type(ref), err)
        await c.send({"type": "nope"})
        self.assertNotIn("ref", await c.expect_error("unknown_type"))

    async def test_ref_echo_on_replies(self):
        room = unique("ref")
        c = await self.client()
        await c.send({"type": "hello", "user": user("reffy"), "ref": "a"})
        await c.expect("hello", ref="a")
        await c.send({"type": "join", "roomId": room, "ref": 2})
        await c.expect("joined", ref=2)
        await c.send({"type": "chat", "roomId": room, "message": "m", "ref": "chat-ref"})
        got = await c.recv_n(2)
        self.assertEqual([g for g in got if g["type"] == "ack"][0]["ref"], "chat-ref", got)
        await c.send({"type": "leave", "roomId": room, "ref": 3})
        await c.expect("left", ref=3)
        await c.send({"type": "create", "ref": "cr"})
        await c.expect("created", ref="cr")

    async def test_errors_do_not_close(self):
        c = await self.client()
        for bad in ("}{", {"type": "x"}, {"type": "leave", "roomId": "zz-none"}, {"type": "join", "roomId": "!"},
                    {}) * 4:
            await c.send(bad)
            await c.expect("error")
        await c.ping("still-open")


class Robustness(MessageTestCase):

    async def test_ref_limits(self):
        c = await self.client()
        for ref in ("r" * 65, {"a": 1}, [1], None, True):
            with self.subTest(ref=ref):
                await c.send({"type": "ping", "ref": ref})
                err = await c.expect_error("bad_request")
        await c.ping("r" * 64)

    async def test_deeply_nested_json_does_not_crash(self):
        c = await self.client()
        await c.send('{"type":"ping","x":' + "[" * 30000 + "]" * 30000 + "}")
        reply = await c.recv()
        self.assertTrue(reply["type"] == "pong" or reply.get("code") in ("bad_json", "bad_request"), reply)
        await c.send('{"type":"ping","x":' + '{"a":' * 10000 + "1" + "}" * 10000 + "}")
        reply = await c.recv()
        self.assertTrue(reply["type"] == "pong" or reply.get("code") in ("bad_json", "bad_request"), reply)
        await c.ping("alive")

    async def test_lone_surrogate_never_reaches_members(self):
        # "\ud800" is valid JSON text but no UTF-8: refuse it, or deliver something valid -- the member's
        # library closes its connection (1007) if the server relays invalid UTF-8.
        # A lone high surrogate ("\ud800") and a lone low one ("\udd0a", which rapidjson decodes into
        # bytes that are not UTF-8), in the message and in the ref that every reply echoes.
        room = unique("sur")
        m = await self.client(label="member")
        await m.join(room)
        c = await self.client()
        texts = ['{"type":"chat","roomId":"%s","message":"a\\ud800b","ref":1}',
                 '{"type":"chat","roomId":"%s","message":"a\\udd0ab","ref":2}',
                 '{"type":"chat","roomId":"%s","message":"ok","ref":"0\\udd0aaaa"}']
        for text in texts:
            with self.subTest(text=text):
                await c.send(text % room)
                reply = await c.recv()  # the client library fails the connection on invalid UTF-8
                if reply["type"] == "error":
                    self.assertIn(reply["code"], ("bad_json", "bad_request"), reply)
                else:
                    self.assertEqual(reply["type"], "ack", reply)
                    await m.expect("chat")
        await c.send({"type": "chat", "roomId": room, "message": "after"})
        self.assertEqual((await m.wait_for("chat"))["message"], "after")

    async def test_escapes_and_nul_preserved(self):
        room = unique("esc")
        m = await self.client(label="member")
        await m.join(room)
        c = await self.client()
        for message in ('nul\x00 quote" backslash\\ tab\t nl\n emoji \U0001F600 </script>', "\x01\x1f\x7f"):
            with self.subTest(message=message):
                await c.send({"type": "chat", "roomId": room, "message": message})
                self.assertEqual((await m.expect("chat"))["message"], message)


class Identity(MessageTestCase):

    async def test_first_hello_sticks(self):
        room = unique("id")
        alice, bob = user("alice", "Alice"), user("bob", "Bob")
        c = await self.client()
        await c.hello(alice)
        await c.send({"type": "hello", "user": bob})
        self.assertEqual((await c.expect("hello"))["user"], alice)
        await c.send({"type": "join", "roomId": room, "user": bob})
        self.assert_joined(await c.expect("joined"), room, alice)
        await c.send({"type": "chat", "roomId": room, "message": "who am i", "user": bob})
        self.assert_chat(await c.expect("chat"), room, "who am i", alice)

    async def test_identity_from_first_join(self):
        room = unique("id")
        dave, eve = user("dave"), user("eve")
        c = await self.client()
        await c.send({"type": "join", "roomId": room, "user": dave})
        self.assert_joined(await c.expect("joined"), room, dave)
        await c.send({"type": "hello", "user": eve})
        self.assertEqual((await c.expect("hello"))["user"], dave)
        await c.send({"type": "join", "roomId": unique("id2"), "user": eve})
        self.assertEqual((await c.expect("joined"))["user"], dave)
        await c.send({"type": "chat", "roomId": room, "message": "m"})
        self.assert_chat(await c.expect("chat"), room, "m", dave)

    async def test_chat_never_trusts_per_message_sender(self):
        room = unique("spoof")
        listener = await self.member(room, user("listener"))
        c = await self.client()
        real = user("real", "Real")
        await c.hello(real)
        fake = user("fake", "Fake")
        await c.send({"type": "chat", "roomId": room, "message": "m1", "user": fake, "sender": "fake",
                      "from": "fake", "name": "Fake", "userId": "fake"})
        ev = await listener.expect("chat")
        self.assert_chat(ev, room, "m1", real)
        await c.send({"type": "sendMessage", "roomId": room, "message": "m2", "user": fake, "sender": fake})
        self.assert_chat(await listener.expect("chat"), room, "m2", real)
        await c.send({"type": "chat_message", "room": room, "message": "m3", "name": "Fake", "user": fake})
        self.assert_chat(await listener.expect("chat"), room, "m3", real)

    async def test_default_anonymous_user(self):
        room = unique("anon")
        c1 = await self.client()
        c2 = await self.client()
        await c1.send({"type": "join", "roomId": room})
        u1 = (await c1.expect("joined"))["user"]
        await c2.send({"type": "join", "roomId": room})
        u2 = (await c2.expect("joined"))["user"]
        for u in (u1, u2):
            self.assertEqual(set(u), {"id", "name"}, u)
            self.assertRegex(u["id"], ANON_ID)
            self.assertRegex(u["name"], GUEST_NAME)
        self.assertNotEqual(u1["id"], u2["id"])
        await c1.expect("presence")
        await c1.send({"type": "chat", "roomId": room, "message": "anon says"})
        self.assert_chat(await c1.expect("chat"), room, "anon says", u1)
        self.assert_chat(await c2.expect("chat"), room, "anon says", u1)

    async def test_anonymous_publisher(self):
        room = unique("anon")
        m = await self.member(room, user("m"))
        p = await self.client()
        await p.send({"type": "chat", "roomId": room, "message": "anon pub"})
        ev = await m.expect("chat")
        self.assertRegex(ev["user"]["id"], ANON_ID)
        self.assertRegex(ev["user"]["name"], GUEST_NAME)

    async def test_query_room_and_name(self):
        room = unique("q")
        other = await self.member(room, user("other"))
        c = await self.client("/ws?room=%s&name=Neo" % room)
        joined = await c.expect("joined", roomId=room)
        self.assert_joined(joined, room)
        self.assertEqual(joined["user"]["name"], "Neo")
        self.assertIn(user("other"), joined["members"])
        pres = await other.expect("presence")
        self.assertEqual((pres["event"], pres["roomId"], pres["user"]), ("join", room, joined["user"]))
        await c.send({"type": "chat_message", "message": "query joined"})
        ev = await other.expect("chat")
        self.assert_chat(ev, room, "query joined", joined["user"])
        self.assertEqual(await c.expect("chat"), ev)
        # ?name= is the identity: a later hello does not change it
        await c.send({"type": "hello", "user": user("smith")})
        self.assertEqual((await c.expect("hello"))["user"], joined["user"])

    async def test_query_name_percent_encoded(self):
        room = unique("q")
        c = await self.client("/ws?name=J%C3%BCrgen%20K&room=" + room)
        joined = await c.expect("joined", roomId=room)
        self.assertEqual(joined["user"]["name"], "J\u00fcrgen K")

    async def test_query_room_only(self):
        room = unique("q")
        c = await self.client("/ws?room=" + room)
        joined = await c.expect("joined", roomId=room)
        self.assertRegex(joined["user"]["id"], ANON_ID)
        self.assertRegex(joined["user"]["name"], GUEST_NAME)

    async def test_query_name_only(self):
        c = await self.client("/ws?name=Solo")
        await c.expect_silence()  # no room: nothing to say yet
        room = unique("q")
        await c.send({"type": "join", "roomId": room})
        joined = await c.expect("joined", roomId=room)
        self.assertEqual(joined["user"]["name"], "Solo")
        self.assertRegex(joined["user"]["id"], r"^[A-Za-z0-9_.:-]{1,64}$")

    async def test_query_on_root_path(self):
        room = unique("q")
        c = await self.client("/?room=%s&name=Root" % room)
        joined = await c.expect("joined", roomId=room)
        self.assertEqual(joined["user"]["name"], "Root")


if __name__ == "__main__":
    import unittest
    unittest.main()
