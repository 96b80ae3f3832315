#!/usr/bin/env python3
"""Writes the small seed corpora under tests/fuzz/corpus/<target>/ (run from anywhere)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(b0, payload, masked=True):
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        h = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if masked:
        h += KEY
        payload = bytes(c ^ KEY[i % 4] for i, c in enumerate(payload))
    return h + payload


UPGRADE = (b"GET /ws?room=lobby&name=ann HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\nOrigin: http://localhost:8080\r\n\r\n")

SEEDS = {
    "http_parser": {
        "get": b"\0\0\0GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "pipelined": b"\x05\x01\0GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\n"
                     b"Content-Length: 5\r\n\r\nhelloGET /c HTTP/1.0\r\n\r\n",
        "upgrade": b"\0\0\x01" + UPGRADE + frame(0x81, b"hi"),
        "chunked": b"\0\0\0POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "post-big": b"\x00\x00\x01POST /p HTTP/1.1\r\nContent-Length: 17\r\n\r\n" + b"b" * 17,
        "folded": b"\x03\x07\0\r\n\r\nGET /x HTTP/1.1\r\nA: b\r\n c\r\nX-Y:\tz \r\n\r\n",
    },
    "ws_handshake": {
        "ok": b"\0\0\0" + UPGRADE,
        "star": b"\x10\x00\x02" + UPGRADE.replace(b"localhost:8080\r\n\r\n", b"evil.example\r\n\r\n"),
        "listed": b"\0\0\x04" + UPGRADE.replace(b"Origin: http://localhost:8080", b"Origin: https://example.com"),
        "http10": b"\0\0\0" + UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"),
    },
    "ws_decode": {
        "text": b"\0\0\x01" + frame(0x81, b"hello"),
        "fragments": b"\x07\x03\x01" + frame(0x01, b"he") + frame(0x89, b"p") + frame(0x00, b"ll")
                     + frame(0x80, "o \u00e9".encode()) + frame(0x88, b"\x03\xe8bye"),
        "probe": b"\x02\x00\x02" + frame(0x81, b"x" * 200) + frame(0x8A, b"") + frame(0x88, b""),
        "tiny": b"\0\0\x04" + frame(0x81, b"0123456789abcdefg"),
        "bad": b"\0\0\0" + frame(0x82, b"bin") + frame(0x81, b"\xc0\xaf", masked=False),
    },
    "ws_roundtrip": {
        "text": b"\0\0\0\0" + KEY + "h\u00e9llo".encode(),
        "close": b"\x02\0\x01\x02" + KEY + b"\x0f\xa0going",
        "ping": b"\x03\0\x05\0" + KEY + b"ping?",
        "long16": b"\0\x02\0\0" + KEY + b"abc",
        "long64": b"\0\x01\x40\0" + KEY + b"abcdefgh",
    },
    "message": {
        "hello": b'{"type":"hello","user":{"id":"u-1","name":"Ann"},"ref":1}',
        "join": b'{"type":"join","roomId":"lobby","since":"1700000000000-3","ref":"r1"}',
        "chat": b'{"type":"chat","roomId":"lobby","message":"hi \\u00e9 \\"x\\"","ref":"a"}',
        "seed": b'{"type":"join_room","room":"r.1","name":"B\xc3\xb6b"}',
        "alias": b'{"type":"chat_message","message":"yo","ref":-12.5e3}',
    },
    "http_path": {
        "index": b"\0/",
        "file": b"\1/css/app%20main.css?name=ann&room=lobby",
        "dots": b"\0/a/../b",
        "query": b"\1/?name=a+b%41&room=%zz",
    },
}

for target, files in SEEDS.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
print("seeds written under", os.path.join(HERE, "corpus"))
