# Chaos clients: seeded actors, each on one WebSocket at a time, writing the log the oracle reads.
# Rule: every entry is stamped when the test observes it: a send before the frame leaves, a receipt on arrival.
"""A Client joins, leaves, chats, disconnects and reconnects at random (its own random.Random), and logs:

  * sessions (oracle.Session): per room and connection, from `joined` to the leave it sent or the close;
  * chats (oracle.Chat): ref, unique body, send time, the answer (ack id / error code) and its time;
  * events (oracle.Event): every chat event received, with the session it belongs to;
  * anomalies: frames the protocol does not allow here (a second answer to one ref, `joined` nobody asked for,
    an error to a join or leave, a close the server initiated).

State is per connection: after the test closes a connection, frames still in flight on it belong to that
connection's sessions (their tail), never to the next connection's.
"""

import asyncio
import contextlib
import json
import socket
import struct
import time

import websockets
import websockets.exceptions

from oracle import Chat, Event, Session, id_key

now = time.monotonic

CONNECT_ERRORS = (OSError, asyncio.TimeoutError, EOFError, websockets.exceptions.InvalidHandshake,
                  websockets.exceptions.ConnectionClosed)


class Conn:
    """One WebSocket connection of a client and the rooms it holds."""

    def __init__(self, no, instance, ws):
        self.no = no                    # connection number within the client (1, 2, ...)
        self.instance = instance        # incarnation label of the instance it was opened on ("i2.1")
        self.ws = ws
        self.state = {}                 # room -> "joining" | "in" | "leaving"
        self.pending = {}               # room -> Session waiting for its `joined`
        self.open = {}                  # room -> Session ("in" or "leaving": frames still belong to it)
        self.join_refs = {}             # join/leave ref -> room
        self.unanswered = {}            # chat ref -> Chat sent on this connection, not answered yet
        self.closing_t = None           # when the test decided to close it
        self.end_reason = None          # why the test closed it ("disconnect", "end")
        self.closed = False             # the reader saw the close
        self.close_code = None
        self.reader = None              # the task reading it
        self.opened_t = now()


class Client:
    def __init__(self, cid, rng, world):
        self.cid = cid                  # client id, also its user id and name
        self.rng = rng                  # this client's own random.Random (seeded from the run's seed)
        self.world = world              # the run: instances, rooms, log, clock, nudges
        self.log = world.log
        self.conn = None                # the current connection, or None
        self.conn_no = 0
        self.want = set()               # rooms to join again after a reconnect
        self.last_seen = {}             # room -> greatest id this client saw there (any session)
        self.session_n = {}             # room -> sessions so far (for session ids)
        self.seq = 0                    # chat / join / leave counter (refs and bodies)
        self.chats = {}                 # ref -> Chat
        self.presence = 0               # presence events received
        self.nudges = asyncio.Queue()   # jobs the fault injector asks for ("join now", "burst")

    def __repr__(self):
        return "<Client %s>" % self.cid

    def anomaly(self, kind, room, text):
        self.log.anomalies.append((kind, room, "%s: %s" % (self.cid, text)))

    def rel(self, t):
        return "t=%.3f" % (t - self.log.t0)

    # ---------------------------------------------------------------------------------------------------------------
    # The actor

    async def run(self, first_instance):
        """Act until the run's stop time (world.stop_t, which the fault injector may push back)."""
        await self.connect(first_instance)
        for room in self.rng.sample(self.world.rooms, self.rng.randint(1, min(3, len(self.world.rooms)))):
            if self.conn is not None:
                await self.join(room)
        while now() < self.world.stop_t:
            delay = self.rng.expovariate(1.0 / self.world.mean_interval)
            job = None
            try:
                job = await asyncio.wait_for(self.nudges.get(), max(0.0, min(delay, self.world.stop_t - now())))
            except asyncio.TimeoutError:
                pass
            if now() >= self.world.stop_t:
                break
            if self.conn is None:
                if not await self.connect(None):
                    continue
            await self.act(job or self.pick())

    def pick(self):
        conn = self.conn
        rooms_in = sorted(r for r, st in conn.state.items() if st == "in")
        not_in = [r for r in self.world.rooms if r not in conn.state]
        if not rooms_in:
            return ("join", self.rng.choice(not_in)) if not_in else ("chat", self.rng.choice(self.world.rooms))
        choices = [("chat", 60), ("join", 12 if not_in else 0), ("leave", 8), ("reconnect", 4), ("outsider", 2)]
        kind = self.rng.choices([k for k, _ in choices], [w for _, w in choices])[0]
        if kind == "chat":
            return ("chat", self.rng.choice(rooms_in))
        if kind == "join":
            return ("join", self.rng.choice(not_in))
        if kind == "leave":
            return ("leave", self.rng.choice(rooms_in))
        if kind == "outsider":   # publish-only: a chat to a room this client is not in (section 3)
            return ("chat", self.rng.choice(not_in or rooms_in))
        return ("reconnect",)

    async def act(self, job):
        kind = job[0]
        conn = self.conn
        if kind == "chat":
            await self.chat(job[1])
        elif kind == "join":
            room = job[1] if len(job) > 1 and job[1] else None
            if room is None:
                free = [r for r in self.world.rooms if r not in conn.state]
                if not free:
                    return
                room = self.rng.choice(free)
            if room not in conn.state:
                await self.join(room)
        elif kind == "leave":
            if conn.state.get(job[1]) == "in":
                await self.leave(job[1])
        elif kind == "fresh":          # a first join of a room nobody is in, then chats into it at once
            if job[1] not in conn.state:
                await self.join(job[1], since_ok=False)
            for _ in range(2):
                await self.chat(job[1])
        elif kind == "burst":
            rooms = sorted(r for r, st in conn.state.items() if st == "in") or self.world.rooms
            for _ in range(job[1]):
                await self.chat(self.rng.choice(rooms))
        elif kind == "reconnect":
            await self.disconnect("abort" if self.rng.random() < 0.5 else "close", "disconnect")
            await asyncio.sleep(self.rng.uniform(0.0, 0.8))
            await self.connect(None)

    # ---------------------------------------------------------------------------------------------------------------
    # Connections

    async def connect(self, inst):
        """Open a connection (to `inst`, else a random live instance), say hello, join again the rooms it had."""
        for attempt in range(6):
            target = inst if (inst is not None and attempt == 0) else self.world.pick_instance(self.rng)
            if target is None or not target.up:
                await asyncio.sleep(0.2 + self.rng.random() * 0.3)
                continue
            label = target.label
            try:
                ws = await websockets.connect(target.url, compression=None, ping_interval=None, max_size=None,
                                              max_queue=None, close_timeout=2, open_timeout=3)
            except CONNECT_ERRORS:
                await asyncio.sleep(0.1 + self.rng.random() * 0.4)
                continue
            if target.label != label and target.up:
                label = target.label     # it restarted while we connected: we reached the new one
            self.conn_no += 1
            conn = Conn(self.conn_no, label, ws)
            self.conn = conn
            conn.reader = asyncio.get_running_loop().create_task(self.read(conn))
            await self.send(conn, {"type": "hello", "user": {"id": self.cid, "name": self.cid}})
            for room in sorted(self.want):
                if self.conn is conn and room not in conn.state:
                    await self.join(room, since=self.last_seen.get(room))
            return True
        return False

    async def disconnect(self, how, reason):
        """Close the current connection ("close": close handshake, "abort": TCP reset). Its sessions end now."""
        conn = self.conn
        if conn is None:
            return
        t = now()
        conn.closing_t = t
        conn.end_reason = reason
        for s in conn.open.values():
            if s.end_t is None:
                s.end_t, s.end_reason = t, reason
        self.want = {r for r, st in conn.state.items() if st in ("in", "joining")}
        self.conn = None
        if how == "abort":
            with contextlib.suppress(Exception):
                sock = conn.ws.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.ws.transport.abort()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(), 3)

    async def send(self, conn, obj):
        """Send one message; False if the connection was already closed (then nothing left)."""
        if conn.closed or not conn.ws.open:
            return False
        try:
            await conn.ws.send(json.dumps(obj))
        except websockets.exceptions.ConnectionClosed:
            pass      # written to the transport already: it may or may not have reached the server
        return True

    # ---------------------------------------------------------------------------------------------------------------
    # Requests

    def next_seq(self):
        self.seq += 1
        return self.seq

    async def join(self, room, since=None, since_ok=True):
        conn = self.conn
        if conn is None or room in conn.state:
            return
        if since is None and since_ok and room in self.last_seen and self.rng.random() < 0.5:
            since = self.last_seen[room]      # as a client that comes back to a room it knew
        n = self.session_n[room] = self.session_n.get(room, 0) + 1
        sid = "%s/%d/%s#%d" % (self.cid, conn.no, room, n)
        ref = "j:%s-%d" % (self.cid, self.next_seq())
        s = Session(sid, self.cid, conn.no, conn.instance, room, since, now())
        conn.pending[room] = s
        conn.state[room] = "joining"
        conn.join_refs[ref] = room
        msg = {"type": "join", "roomId": room, "ref": ref}
        if since is not None:
            msg["since"] = since
        if not await self.send(conn, msg):
            conn.pending.pop(room, None)
            conn.state.pop(room, None)

    async def leave(self, room):
        conn = self.conn
        s = conn.open.get(room)
        if s is None:
            return
        if s.end_t is None:
            s.end_t, s.end_reason = now(), "leave"
        conn.state[room] = "leaving"
        ref = "l:%s-%d" % (self.cid, self.next_seq())
        conn.join_refs[ref] = room
        await self.send(conn, {"type": "leave", "roomId": room, "ref": ref})

    async def chat(self, room):
        conn = self.conn
        if conn is None:
            return
        seq = self.next_seq()
        ref = "%s-%d" % (self.cid, seq)
        body = "%s#%d s%s" % (self.cid, seq, self.world.seed)
        c = Chat(ref, self.cid, conn.no, room, body, now(), conn.state.get(room) == "in")
        self.chats[ref] = c
        conn.unanswered[ref] = c
        self.log.chats.append(c)
        if not await self.send(conn, {"type": "chat", "roomId": room, "message": body, "ref": ref}):
            del self.chats[ref]
            conn.unanswered.pop(ref, None)
            self.log.chats.remove(c)

    # ---------------------------------------------------------------------------------------------------------------
    # Receiving

    async def read(self, conn):
        try:
            async for raw in conn.ws:
                t = now()
                if not isinstance(raw, str):
                    self.anomaly("bad_frame", "", "conn %d: binary message %r" % (conn.no, raw[:200]))
                    continue
                try:
                    msg = json.loads(raw)
                except (TypeError, ValueError):
                    self.anomaly("bad_frame", "", "conn %d: not JSON: %r" % (conn.no, raw[:200]))
                    continue
                if not isinstance(msg, dict):
                    self.anomaly("bad_frame", "", "conn %d: not an object: %r" % (conn.no, raw[:200]))
                    continue
                self.on_message(conn, msg, t)
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 -- a test bug must not hang the run; it is reported
            self.anomaly("client_bug", "", "conn %d reader: %r" % (conn.no, e))
        finally:
            self.on_closed(conn, now())

    def on_message(self, conn, m, t):
        typ = m.get("type")
        room = m.get("roomId")
        if typ == "chat":
            ev_id, body, user = m.get("id"), m.get("message"), (m.get("user") or {}).get("id")
            s = conn.open.get(room)
            if s is not None:
                s.live.append((ev_id, t))
            self.log.events.append(Event(self.cid, room, ev_id, body, user, t, "live" if s else "stray",
                                         s.sid if s else None))
            self.saw(room, ev_id)
        elif typ == "ack" or (typ == "error" and m.get("ref") in self.chats):
            c = self.chats.get(m.get("ref"))
            if c is None:
                self.anomaly("unexpected_answer", "", "conn %d: %r for no chat of ours" % (conn.no, m))
                return
            if c.conn != conn.no:
                self.anomaly("answer_on_wrong_connection", c.room, "%s sent on connection %d answered on %d: %r"
                             % (c.ref, c.conn, conn.no, m))
                return
            if c.answer is not None:
                self.anomaly("double_answer", c.room, "%s answered twice: %s %s then %r at %s"
                             % (c.ref, c.answer, c.ack_id or c.error_code, m, self.rel(t)))
                return
            c.answer, c.answer_t = typ, t
            if typ == "ack":
                c.ack_id = m.get("id")
            else:
                c.error_code = m.get("code")
            conn.unanswered.pop(c.ref, None)
        elif typ == "joined":
            s = conn.pending.pop(room, None)
            if s is None:
                self.anomaly("unexpected_joined", room, "conn %d: joined %s at %s without a pending join"
                             % (conn.no, room, self.rel(t)))
                return
            s.joined_t = t
            s.truncated = m.get("truncated") is True
            for h in m.get("history") or []:
                h_id = h.get("id")
                if h.get("roomId") != room or h.get("type") != "chat":
                    self.anomaly("bad_history", room, "%s: history entry %r" % (s.sid, h))
                s.history.append(h_id)
                self.log.events.append(Event(self.cid, room, h_id, h.get("message"), (h.get("user") or {}).get("id"),
                                             t, "history", s.sid))
                self.saw(room, h_id)
            if conn.closing_t is not None:     # joined while the test was already closing: nothing is owed
                s.end_t, s.end_reason = conn.closing_t, conn.end_reason
            conn.open[room] = s
            conn.state[room] = "in"
            self.log.sessions.append(s)
        elif typ == "left":
            if conn.state.get(room) != "leaving":
                self.anomaly("unexpected_left", room, "conn %d: left %s at %s without a leave"
                             % (conn.no, room, self.rel(t)))
                return
            s = conn.open.pop(room)
            s.left_t = t
            del conn.state[room]
        elif typ == "error":
            ref = m.get("ref")
            r = conn.join_refs.get(ref)
            if r is not None and ref.startswith("j:"):
                self.anomaly("join_error", r, "conn %d: join answered %r" % (conn.no, m))
                conn.pending.pop(r, None)
                if conn.state.get(r) == "joining":
                    del conn.state[r]
            elif r is not None:
                self.anomaly("leave_error", r, "conn %d: leave answered %r at %s" % (conn.no, m, self.rel(t)))
                s = conn.open.pop(r, None)
                if s is not None:
                    s.left_t = t
                conn.state.pop(r, None)
            else:
                self.anomaly("unexpected_error", room or "", "conn %d: %r at %s" % (conn.no, m, self.rel(t)))
        elif typ == "presence":
            self.presence += 1
            self.log.presence.append((self.cid, conn.no, room, m.get("event"), (m.get("user") or {}).get("id"), t))
        elif typ in ("hello", "pong"):
            pass
        else:
            self.anomaly("unexpected_frame", room or "", "conn %d: %r" % (conn.no, m))

    def saw(self, room, id_):
        k = id_key(id_)
        if k is None:
            return
        cur = self.last_seen.get(room)
        if cur is None or k > id_key(cur):
            self.last_seen[room] = id_

    def on_closed(self, conn, t):
        conn.closed = True
        conn.close_code = conn.ws.close_code
        self.log.connections.append((self.cid, conn.no, conn.instance, conn.opened_t, conn.closing_t, t,
                                     conn.close_code, conn.end_reason))
        if conn.closing_t is not None:
            end, reason = conn.closing_t, conn.end_reason
        else:
            killed = self.world.killed_at.get(conn.instance)
            if killed is not None and killed <= t:
                end, reason = killed, "instance_killed"
            else:
                end, reason = t, "server_closed"
                rooms = sorted(conn.state)
                self.anomaly("server_closed", "", "conn %d on %s closed by the server at %s, code %s (%r), rooms %s"
                             % (conn.no, conn.instance, self.rel(t), conn.ws.close_code, conn.ws.close_reason, rooms))
        for s in conn.open.values():
            if s.end_t is None:
                s.end_t, s.end_reason = end, reason
        conn.pending.clear()
        if conn is self.conn:
            self.want = {r for r, st in conn.state.items() if st in ("in", "joining")}
            self.conn = None
