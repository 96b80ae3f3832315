# Agent run inside one network namespace ("host") of netns_lab: WebSocket clients and HTTP GETs on its behalf.
# Rule: one JSON object per line both ways; one reply per request (same "id"); one connection's requests run in order.
"""Line protocol (stdin -> agent, agent -> stdout):

  {"id": 1, "op": "connect", "conn": "a", "url": "ws://10.213.47.2:8080/ws", "timeout_s": 10}
  {"id": 2, "op": "send", "conn": "a", "text": "{...}"}
  {"id": 3, "op": "close", "conn": "a"}          clean close handshake
  {"id": 4, "op": "abort", "conn": "a"}          TCP reset (SO_LINGER 0), no close frame
  {"id": 5, "op": "http", "host": "127.0.0.1", "port": 8080, "path": "/healthz", "timeout_s": 2}
replies:
  {"id": 1, "ok": true}  /  {"id": 5, "ok": true, "status": 200, "body": "..."}  /  {"id": n, "ok": false, "error": ".."}
events:
  {"ev": "msg", "conn": "a", "text": "..."}      every text message the server sent, in order
  {"ev": "closed", "conn": "a", "code": 1006, "reason": ""}   once per connection that had connected

EOF on stdin closes every connection and ends the agent.
"""

import asyncio
import json
import socket
import struct
import sys

import websockets
import websockets.exceptions

conns = {}      # conn name -> websockets client protocol
readers = set()


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def read_loop(name, ws):
    try:
        while True:
            raw = await ws.recv()
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", "replace")
            emit({"ev": "msg", "conn": name, "text": raw})
    except websockets.exceptions.ConnectionClosed:
        pass
    except Exception as e:  # noqa: BLE001 -- reported as a close
        emit({"ev": "log", "conn": name, "text": "reader failed: %r" % (e,)})
    finally:
        if conns.get(name) is ws:
            del conns[name]
        emit({"ev": "closed", "conn": name, "code": ws.close_code, "reason": ws.close_reason or ""})


async def http_get(host, port, path, timeout):
    async def _get():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (path, host, port)).encode())
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body.decode("utf-8", "replace")
    return await asyncio.wait_for(_get(), timeout)


async def handle(req):
    op, name = req.get("op"), req.get("conn")
    if op == "connect":
        if name in conns:
            raise ValueError("connection %r exists" % name)
        ws = await websockets.connect(req["url"], compression=None, ping_interval=None, max_size=None,
                                      max_queue=None, open_timeout=req.get("timeout_s", 10),
                                      close_timeout=req.get("timeout_s", 10))
        conns[name] = ws
        t = asyncio.get_running_loop().create_task(read_loop(name, ws))
        readers.add(t)
        t.add_done_callback(readers.discard)
        return {}
    if op == "send":
        await conns[name].send(req["text"])
        return {}
    if op == "close":
        ws = conns.get(name)
        if ws is not None:
            await ws.close()
        return {}
    if op == "abort":
        ws = conns.get(name)
        if ws is not None:
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ws.transport.abort()
        return {}
    if op == "http":
        status, body = await http_get(req["host"], int(req["port"]), req.get("path", "/"), req.get("timeout_s", 5))
        return {"status": status, "body": body}
    raise ValueError("unknown op %r" % op)


async def serve(req):
    try:
        reply = await handle(req)
        reply.update(id=req.get("id"), ok=True)
    except Exception as e:  # noqa: BLE001 -- every failure is a reply
        reply = {"id": req.get("id"), "ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    emit(reply)


async def serial(queue):
    """Requests about one connection, one at a time, in the order they came (sends stay in order)."""
    while True:
        await serve(await queue.get())


async def main():
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    tasks = set()
    queues = {}   # conn name -> queue of its requests
    while True:
        line = await stdin.readline()
        if not line:
            break
        req = json.loads(line)
        name = req.get("conn")
        if name is None:
            t = loop.create_task(serve(req))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            continue
        if name not in queues:
            queues[name] = asyncio.Queue()
            tasks.add(loop.create_task(serial(queues[name])))
        queues[name].put_nowait(req)
    for ws in list(conns.values()):
        ws.transport.abort()
    for t in list(tasks) + list(readers):
        t.cancel()
    await asyncio.gather(*tasks, *readers, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
