# WebSocket framing rules (PROTOCOL.md section 6, RFC 6455 section 5): close codes for bad frames, fragments, ping.
# Rule: frames are built by hand on a raw socket; after every violation a fresh client is still served.
import asyncio
import json
import time

from roomcast_harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RoomcastTestCase, build_frame,
                              close_payload)

MAX_MESSAGE = 1024


class Frames(RoomcastTestCase):
    server_args = ["--max-message", str(MAX_MESSAGE)]

    async def asyncTearDown(self):
        await super().asyncTearDown()
        await self.assert_server_works()

    async def violation(self, data, code, timeout=None):
        """Send bytes on a fresh upgraded connection; expect the server's close frame with `code`, then TCP close."""
        raw = await self.raw()
        await raw.send(data)
        f, skipped = await raw.expect_close(code, **({"timeout": timeout} if timeout else {}))
        self.assertEqual([s for s in skipped if s.opcode in (OP_TEXT, OP_BINARY)], [],
                         "data frames before the close")
        return f

    # -- close codes
    async def test_invalid_utf8_text_1007(self):
        for payload in (b"\xff\xfe", b'{"type":"ping","x":"\xc3"}', b"\xc0\xaf", b"\xed\xa0\x80",
                        b"\xf4\x90\x80\x80", b"abc\x80"):
            with self.subTest(payload=payload):
                await self.violation(build_frame(OP_TEXT, payload), 1007)

    async def test_invalid_utf8_across_fragments_1007(self):
        await self.violation(build_frame(OP_TEXT, b'{"type":"ping","x":"\xc3', fin=False)
                             + build_frame(OP_CONT, b'\xc3"}'), 1007)

    async def test_truncated_utf8_at_end_1007(self):
        await self.violation(build_frame(OP_TEXT, b'abc', fin=False) + build_frame(OP_CONT, b'\xe2\x82'), 1007)

    async def test_binary_frame_1003(self):
        await self.violation(build_frame(OP_BINARY, b'{"type":"ping"}'), 1003)

    async def test_unmasked_frame_1002(self):
        await self.violation(build_frame(OP_TEXT, b'{"type":"ping"}', mask=False), 1002)

    async def test_unmasked_ping_1002(self):
        await self.violation(build_frame(OP_PING, b"x", mask=False), 1002)

    async def test_rsv_bits_1002(self):
        for rsv in (4, 2, 1):  # RSV1, RSV2, RSV3
            with self.subTest(rsv=rsv):
                await self.violation(build_frame(OP_TEXT, b'{"type":"ping"}', rsv=rsv), 1002)

    async def test_reserved_opcodes_1002(self):
        for op in (3, 7, 0xB, 0xF):
            with self.subTest(opcode=op):
                await self.violation(build_frame(op, b"x"), 1002)

    async def test_fragmented_ping_1002(self):
        await self.violation(build_frame(OP_PING, b"frag", fin=False), 1002)

    async def test_control_frame_over_125_bytes_1002(self):
        await self.violation(build_frame(OP_PING, b"p" * 126), 1002)

    async def test_continuation_without_start_1002(self):
        await self.violation(build_frame(OP_CONT, b'{"type":"ping"}'), 1002)

    async def test_new_text_inside_fragmented_message_1002(self):
        await self.violation(build_frame(OP_TEXT, b'{"type":', fin=False) + build_frame(OP_TEXT, b'{"type":"ping"}'),
                             1002)

    async def test_message_over_max_single_frame_1009(self):
        body = json.dumps({"type": "chat", "roomId": "big", "message": "x" * 2000}).encode()
        await self.violation(build_frame(OP_TEXT, body), 1009)

    async def test_message_over_max_in_fragments_1009(self):
        body = json.dumps({"type": "chat", "roomId": "big", "message": "x" * 2000}).encode()
        chunks = [body[i:i + 100] for i in range(0, len(body), 100)]
        data = b"".join(build_frame(OP_TEXT if i == 0 else OP_CONT, c, fin=(i == len(chunks) - 1))
                        for i, c in enumerate(chunks))
        await self.violation(data, 1009)

    async def test_message_at_max_is_accepted(self):
        raw = await self.raw()
        prefix = '{"type":"ping","ref":"'
        body = (prefix + "r" * 10 + '","pad":"' + "p" * (MAX_MESSAGE - len(prefix) - 10 - 11) + '"}').encode()
        self.assertEqual(len(body), MAX_MESSAGE)
        await raw.send_frame(OP_TEXT, body)
        self.assertEqual(await raw.expect_json("pong"), {"type": "pong", "ref": "r" * 10})

    async def test_huge_length_header_1009_promptly(self):
        rss0 = self.server.rss_kib()
        raw = await self.raw()
        t0 = time.monotonic()
        # 2^40 bytes announced, a mask key and a few payload bytes: no server may wait for (or allocate) that.
        await raw.send(build_frame(OP_TEXT, b'{"type":', length=1 << 40))
        await raw.expect_close(1009, timeout=5)
        self.assertLess(time.monotonic() - t0, 5)
        rss1 = self.server.rss_kib()
        self.assertLess(rss1 - rss0, 64 * 1024, "server RSS grew from %d KiB to %d KiB" % (rss0, rss1))

    async def test_huge_16bit_length_over_max_1009(self):
        raw = await self.raw()
        await raw.send(build_frame(OP_TEXT, b'{"type":', length=60000))
        await raw.expect_close(1009, timeout=5)

    # -- well-formed traffic
    async def test_fragmented_text_reassembled_with_interleaved_ping(self):
        raw = await self.raw()
        msg = '{"type":"ping","ref":"fr\u00e9g"}'.encode()  # the split falls inside the two-byte é
        cut1, cut2 = 10, msg.index(b"\xc3") + 1
        await raw.send(build_frame(OP_TEXT, msg[:cut1], fin=False))
        await raw.send(build_frame(OP_CONT, msg[cut1:cut2], fin=False))
        await raw.send(build_frame(OP_PING, b"between"))
        pong = await raw.read_frame()
        self.assertEqual((pong.opcode, pong.payload), (OP_PONG, b"between"), pong)
        await raw.send(build_frame(OP_CONT, msg[cut2:], fin=True))
        self.assertEqual(await raw.read_json(), {"type": "pong", "ref": "fr\u00e9g"})

    async def test_fragmented_with_empty_fragments(self):
        raw = await self.raw()
        await raw.send(build_frame(OP_TEXT, b"", fin=False) + build_frame(OP_CONT, b'{"type":"ping",', fin=False)
                       + build_frame(OP_CONT, b"", fin=False) + build_frame(OP_CONT, b'"ref":3}', fin=True))
        self.assertEqual(await raw.read_json(), {"type": "pong", "ref": 3})

    async def test_client_ping_gets_pong_with_same_payload(self):
        raw = await self.raw()
        for payload in (b"", b"hello", bytes(range(125)), "\u00e9t\u00e9".encode()):
            with self.subTest(payload=payload[:10]):
                await raw.send_frame(OP_PING, payload)
                f = await raw.read_frame()
                self.assertEqual(f.opcode, OP_PONG, f)
                self.assertEqual(f.payload, payload)
                self.assertTrue(f.fin)

    async def test_unsolicited_pong_ignored(self):
        raw = await self.raw()
        await raw.send_frame(OP_PONG, b"nobody asked")
        await raw.send_text({"type": "ping", "ref": "after-pong"})
        self.assertEqual(await raw.expect_json("pong"), {"type": "pong", "ref": "after-pong"})

    async def test_many_frames_in_one_write(self):
        raw = await self.raw()
        await raw.send(b"".join(build_frame(OP_TEXT, json.dumps({"type": "ping", "ref": i}).encode())
                                for i in range(50)))
        refs = [(await raw.expect_json("pong"))["ref"] for _ in range(50)]
        self.assertEqual(refs, list(range(50)))

    async def test_frame_split_across_writes(self):
        raw = await self.raw()
        data = build_frame(OP_TEXT, b'{"type":"ping","ref":"split"}')
        for i in range(len(data)):
            await raw.send(data[i:i + 1])
            await asyncio.sleep(0.001)
        self.assertEqual(await raw.expect_json("pong"), {"type": "pong", "ref": "split"})

    async def test_client_close_1000(self):
        raw = await self.raw()
        await raw.send_frame(OP_CLOSE, close_payload(1000, b"bye"))
        f = await raw.read_frame()
        self.assertEqual(f.opcode, OP_CLOSE, f)
        self.assertEqual(f.close_code, 1000, f)
        await raw.expect_eof()

    async def test_client_close_without_code(self):
        raw = await self.raw()
        await raw.send_frame(OP_CLOSE, b"")
        f = await raw.read_frame()
        self.assertEqual(f.opcode, OP_CLOSE, f)
        self.assertIn(f.close_code, (1000, 1005), f)  # empty payload (1005 means "no code") or 1000
        await raw.expect_eof()

    async def test_close_with_one_byte_payload_1002(self):
        await self.violation(build_frame(OP_CLOSE, b"\x03"), 1002)

    async def test_close_with_invalid_code_1002(self):
        for code in (0, 999, 1005, 1006, 1015, 5000):
            with self.subTest(code=code):
                await self.violation(build_frame(OP_CLOSE, close_payload(code)), 1002)

    async def test_data_after_close_ignored(self):
        raw = await self.raw()
        await raw.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_TEXT, b'{"type":"ping"}'))
        f = await raw.read_frame()
        self.assertEqual(f.opcode, OP_CLOSE, "expected only a close frame, got %r" % (f,))
        self.assertEqual(f.close_code, 1000)
        await raw.expect_eof()

    async def test_abrupt_tcp_close_mid_frame(self):
        raw = await self.raw()
        await raw.send(build_frame(OP_TEXT, b'{"type":"ping","ref":"cut"}')[:8])
        raw.close()
        await asyncio.sleep(0.1)
        # asyncTearDown checks the server still serves


if __name__ == "__main__":
    import unittest
    unittest.main()
