# The chaos test's oracle: reads every client's log (and the Redis streams read at the end) and checks PROTOCOL.md s5.
# Rule: it flags only what a correct server can never produce; wall time is used only where causality is known.
"""What a log is, and the checks run over it.

A run is recorded as plain data (no sockets here, so the checks can be tested on hand-made logs):

  Session   one client's stay in one room on one connection: from the `joined` it received to the `leave` it
            sent or the connection's end. `history` holds the ids of joined.history, `live` the (id, time) of the
            chat events received after it (including those that still came after the leave was sent).
  Chat      one chat the test sent: ref, body, send time and its answer (ack with id, error with code, or none).
  Event     one chat event as some client received it (history, live, or outside any session): room, id, body.

Times are time.monotonic() of the one test process, so "A happened before B" is exact when both were observed by
the test. The one race the test cannot order is between two connections: the sender's ack and a member's leave (or
close) travel on different sockets, and a correct instance may read the leave before the chat from its subscription.
`margin` (seconds, --race-margin) is that allowance: a chat must reach a session that stayed open `margin` longer
than the chat was known to exist. Every obligation that the margin excused is counted in the report.
"""

import bisect
import datetime
import json

# ---------------------------------------------------------------------------------------------------------------------
# Log records


class Session:
    __slots__ = ("sid", "client", "conn", "instance", "room", "since", "join_sent_t", "joined_t", "truncated",
                 "history", "live", "end_t", "end_reason", "left_t")

    def __init__(self, sid, client, conn, instance, room, since, join_sent_t):
        self.sid = sid                  # "c07/3/lobby#2": client / connection number / room # n-th session there
        self.client = client            # client id (also its user id)
        self.conn = conn                # connection number of that client
        self.instance = instance        # instance incarnation the connection was on ("i2.1")
        self.room = room
        self.since = since              # the `since` the join carried, or None
        self.join_sent_t = join_sent_t  # when the join was sent
        self.joined_t = None            # when `joined` arrived (a Session exists only once it did)
        self.truncated = False          # joined said "truncated": true
        self.history = []               # ids of joined.history, in the order received
        self.live = []                  # (id, time) of chat events received after joined
        self.end_t = None               # end of the obligation window: leave sent, close decided/observed, run end
        self.end_reason = None          # "leave", "disconnect", "instance_killed", "server_closed", "end"
        self.left_t = None              # when `left` arrived (events up to then still belong to the session)

    def ids(self):
        return self.history + [i for i, _ in self.live]


class Chat:
    __slots__ = ("ref", "client", "conn", "room", "body", "sent_t", "member", "answer", "answer_t", "ack_id",
                 "error_code", "conn_open_at_end")

    def __init__(self, ref, client, conn, room, body, sent_t, member):
        self.ref = ref
        self.client = client
        self.conn = conn
        self.room = room
        self.body = body                # unique message text ("c07#12 s1")
        self.sent_t = sent_t
        self.member = member            # the sender had an open session in the room when it sent
        self.answer = None              # None, "ack" or "error"
        self.answer_t = None
        self.ack_id = None
        self.error_code = None
        self.conn_open_at_end = False   # its connection was still open when the run ended (then an answer is owed)

    @property
    def outcome(self):
        if self.answer == "ack":
            return "acked"
        if self.answer == "error":
            return "refused"
        return "unanswered" if self.conn_open_at_end else "unknown"


class Event:
    __slots__ = ("client", "room", "id", "body", "user", "t", "where", "sid")

    def __init__(self, client, room, id_, body, user, t, where, sid):
        self.client = client
        self.room = room
        self.id = id_
        self.body = body
        self.user = user                # user id in the event
        self.t = t
        self.where = where              # "history", "live" or "stray" (no session of that room was open)
        self.sid = sid                  # session id, or None for "stray"


class RunLog:
    """Everything the oracle reads."""

    def __init__(self):
        self.sessions = []              # [Session]
        self.chats = []                 # [Chat]
        self.events = []                # [Event]
        self.anomalies = []             # [(kind, room or "", text)]: things seen at run time (bad frames, closes...)
        self.faults = []                # [(kind, start_t, end_t, detail)]
        self.streams = None             # {room: [(id, body)]} read from Redis after the run, or None
        self.stream_read_t = None
        self.t0 = 0.0                   # run start (for printing relative times)
        self.history_len = 1000         # --history
        self.history_ttl = 20.0         # --history-ttl (seconds)
        self.margin = 0.25              # see module doc
        self.resources = []             # [(kind, text)] from the end checks (RSS, key count, exits)
        self.outages = []               # [(instance label, start_t, end_t, why[, rooms])]: instance cut off from
        #                                 Redis (Redis Cluster: with `rooms`, from those rooms' slot only)
        self.loss_windows = []          # [(rooms, lo_t, kill_t, why)]: a master killed at kill_t (Redis Cluster
        #                                 failover); what it acked from lo_t on may be missing from its replica
        self.wall0 = 0.0                # time.time() at t0 (to find a moment in the instance logs)
        self.connections = []           # [(client, no, instance, opened_t, closing_t, closed_t, close code, why)]
        self.presence = []              # [(client, conn no, room, event, user id, t)]


def dump(log, path):
    """The run log as JSON (times relative to t0), for a look after a failed run."""
    def r(t):
        return None if t is None else round(t - log.t0, 4)
    data = {
        "wall0": log.wall0,
        "faults": [[k, r(a), r(b), d] for k, a, b, d in log.faults],
        "outages": [[o[0], r(o[1]), None if o[2] == float("inf") else r(o[2])] + list(o[3:]) for o in log.outages],
        "loss_windows": [[rooms, r(a), r(b), why] for rooms, a, b, why in log.loss_windows],
        "sessions": [{"sid": s.sid, "instance": s.instance, "since": s.since, "join_sent": r(s.join_sent_t),
                      "joined": r(s.joined_t), "truncated": s.truncated, "history": s.history,
                      "live": [[i, r(t)] for i, t in s.live], "end": r(s.end_t), "end_reason": s.end_reason,
                      "left": r(s.left_t)} for s in log.sessions],
        "chats": [{"ref": c.ref, "room": c.room, "body": c.body, "sent": r(c.sent_t), "member": c.member,
                   "outcome": c.outcome, "answer": r(c.answer_t), "id": c.ack_id, "error": c.error_code}
                  for c in log.chats],
        "strays": [{"client": e.client, "room": e.room, "id": e.id, "body": e.body, "t": r(e.t)}
                   for e in log.events if e.where == "stray"],
        "anomalies": log.anomalies,
        "connections": [[cl, no, inst, r(a), r(b), r(c), code, why] for cl, no, inst, a, b, c, code, why
                        in log.connections],
        "presence": [[cl, no, room, ev, u, r(t)] for cl, no, room, ev, u, t in log.presence],
        "streams": log.streams,
    }
    with open(path, "w") as f:
        json.dump(data, f)


class Violation:
    __slots__ = ("kind", "room", "text")

    def __init__(self, kind, room, text):
        self.kind, self.room, self.text = kind, room, text

    def __repr__(self):
        return "%s [%s] %s" % (self.kind, self.room, self.text)


# ---------------------------------------------------------------------------------------------------------------------
# Ids


def id_key(msg_id):
    """A chat id as a tuple of ints (section 4 order), or None if it is not dash-separated numbers."""
    if not isinstance(msg_id, str) or not msg_id:
        return None
    parts = msg_id.split("-")
    if not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def parse_stream_entry(fields, id_):
    """(body, user id) of one stream entry, or (None, None). Section 7 names the stream, not its entries: today an
    entry holds the event around its id (fields p and s: the event is p + id + s); else any field holding the event."""
    candidates = []
    if "p" in fields and "s" in fields:
        candidates.append(fields["p"] + id_ + fields["s"])
    candidates += [v for k, v in sorted(fields.items()) if k not in ("p", "s")]
    for text in candidates:
        try:
            ev = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(ev, dict) and isinstance(ev.get("message"), str):
            return ev["message"], (ev.get("user") or {}).get("id")
    return None, None


# ---------------------------------------------------------------------------------------------------------------------
# The checks


class Oracle:
    MAX_PER_KIND = 10  # violations printed per kind (all are counted)

    def __init__(self, log):
        self.log = log
        self.violations = []
        self.stats = {}
        self.excused = 0               # obligations excused by the margin (missing, but within it)
        self.excused_outage = 0        # obligations excused because the session ended while cut off
        self.excused_gaps = []         # for those excused by the margin: seconds from existence to session end
        self.excused_redis_loss = 0    # obligations excused because Redis itself lost the chat (a failover)

    def flag(self, kind, room, text):
        self.violations.append(Violation(kind, room, text))

    def rel(self, t):
        return "t=%.3f" % (t - self.log.t0) if t is not None else "t=?"

    def fault_at(self, t):
        """The faults active around time t (for the report)."""
        out = []
        for kind, a, b, detail in self.log.faults:
            if a - 0.5 <= t <= (b if b is not None else a) + 3.0:
                out.append("%s@%.1f-%.1f" % (kind, a - self.log.t0, (b if b is not None else a) - self.log.t0))
        return ",".join(out) or "no fault"

    def where(self, s):
        return "%s on %s (joined %s, end %s %s%s)" % (
            s.sid, s.instance, self.rel(s.joined_t), s.end_reason, self.rel(s.end_t),
            ", since %s" % s.since if s.since else "")

    def run(self):
        log = self.log
        for kind, room, text in log.anomalies:
            self.flag(kind, room, text)
        self._index()
        self.check_order()            # 1
        self.check_identity()         # 1 (an id is one chat everywhere)
        self.check_delivery()         # 2
        self.check_gaps()             # 3
        self.check_since()            # 4 (and joined.history without since)
        self.check_refused()          # 5
        self.check_streams()          # 5 (acked chats are in the room's stream)
        for kind, text in log.resources:
            self.flag(kind, "", text)  # 6, 7
        self._stats()
        return self.violations

    # -- indexes shared by the checks
    def _index(self):
        log = self.log
        self.chat_by_body = {}
        for c in log.chats:
            self.chat_by_body[c.body] = c
        # Known ids per room: acked ids, ids any client received, ids in the final stream dump. Each with the
        # earliest time the test knew it existed (ack or first receipt; None if only the dump shows it).
        self.exist_t = {}              # (room, id) -> time or None
        self.id_body = {}              # (room, id) -> body (first seen)
        self.body_of_id_src = {}       # (room, id) -> where the body came from (for the report)

        def know(room, id_, t, body, src):
            if id_key(id_) is None:
                return
            k = (room, id_)
            if k not in self.exist_t:
                self.exist_t[k] = t
            elif t is not None and (self.exist_t[k] is None or t < self.exist_t[k]):
                self.exist_t[k] = t
            if body is not None and k not in self.id_body:
                self.id_body[k] = body
                self.body_of_id_src[k] = src

        for c in log.chats:
            if c.answer == "ack":
                know(c.room, c.ack_id, c.answer_t, c.body, "ack of %s" % c.ref)
        for e in log.events:
            know(e.room, e.id, e.t, e.body, "%s %s" % (e.where, e.sid or e.client))
        for room, entries in (log.streams or {}).items():
            for id_, body in entries:
                know(room, id_, None, body, "stream")
        self.known = {}                # room -> sorted [(key, id)]
        for (room, id_) in self.exist_t:
            self.known.setdefault(room, []).append((id_key(id_), id_))
        for room in self.known:
            self.known[room].sort()
        self.ids_of_body = {}          # (room, body) -> {id}
        for (room, id_), body in self.id_body.items():
            self.ids_of_body.setdefault((room, body), set()).add(id_)
        self.sessions_by_room = {}
        self.session_ids = {}          # sid -> {id}
        for s in log.sessions:
            self.sessions_by_room.setdefault(s.room, []).append(s)
            self.session_ids[s.sid] = set(s.ids())
        self._expiry_windows()
        self._redis_losses()

    def _redis_losses(self):
        """Ids Redis itself may have lost: not in the room's final stream (and not trimmed or expired from it), first
        known (ack or receipt) within a loss window (a master killed shortly after, asynchronous replication), and
        sent before that kill. Only these are excused from delivery, gap, recovery and storage checks; an id the
        new owner holds is owed as any other."""
        self.redis_lost = {}           # (room, id) -> why
        streams = self.log.streams
        if streams is None or not self.log.loss_windows:
            return
        stored = {room: {i for i, _ in entries} for room, entries in streams.items()}
        oldest = {room: min(id_key(i) for i in ids) for room, ids in stored.items() if ids}
        for (room, id_), t in self.exist_t.items():
            entries = streams.get(room) or []
            if id_ in stored.get(room, ()) or t is None:
                continue
            if len(entries) >= self.log.history_len and id_key(id_) < oldest[room]:
                continue              # trimmed by --history, not lost
            sent = self._sent_t(room, id_)
            if self.may_have_expired(room, self._lo(room, id_), self.log.stream_read_t or float("inf")):
                continue              # the stream may have expired (--history-ttl): not a loss either way
            for rooms, lo, kill, why in self.log.loss_windows:
                if room in rooms and lo <= t and (sent if sent is not None else t) <= kill:
                    self.redis_lost[(room, id_)] = why
                    break

    def lost_by_redis(self, room, id_):
        if (room, id_) in self.redis_lost:
            self.excused_redis_loss += 1
            return True
        return False

    def _sent_t(self, room, id_):
        c = self.chat_by_body.get(self.id_body.get((room, id_)))
        return c.sent_t if c is not None else None

    def _expiry_windows(self):
        """Per room, the time spans in which its stream may have expired (--history-ttl after its last XADD).
        A chat's XADD lies between its send and the first time the test saw it; ids are in XADD order."""
        ttl = self.log.history_ttl - 0.5
        self.expiry = {}
        for room, ks in self.known.items():
            wins = []
            prev_lo = None
            for _, id_ in ks:
                lo = self._sent_t(room, id_)
                hi = self.exist_t.get((room, id_))
                lo = self.log.t0 if lo is None else lo
                if hi is None:   # only the final stream read shows it: it was added before that read
                    hi = self.log.stream_read_t if self.log.stream_read_t is not None else float("inf")
                if prev_lo is not None and hi - prev_lo >= ttl:
                    wins.append((prev_lo + ttl, hi))
                prev_lo = lo
            if prev_lo is not None:
                wins.append((prev_lo + ttl, float("inf")))
            self.expiry[room] = wins

    def may_have_expired(self, room, a, b):
        """Whether the room's stream may have expired at some time between a and b."""
        return any(ws < b and we > a for ws, we in self.expiry.get(room, []))

    def _known_between(self, room, lo, hi):
        """Known ids of room with lo < key < hi (lo/hi: key tuples or None for unbounded)."""
        ks = self.known.get(room, [])
        a = 0 if lo is None else bisect.bisect_right(ks, (lo, "\uffff"))
        b = len(ks) if hi is None else bisect.bisect_left(ks, (hi, ""))
        return [i for _, i in ks[a:b]]

    # -- 1. per session: ids strictly increase (no duplicate, one order); no chat outside a session
    def check_order(self):
        for e in self.log.events:
            if e.where == "stray":
                self.flag("outside_session", e.room, "%s got chat %s (%r) at %s with no session open in %s (before"
                          " its joined or after its left)" % (e.client, e.id, e.body, self.rel(e.t), e.room))
        for s in self.log.sessions:
            prev, prev_id, seen = None, None, {}
            for i, id_ in enumerate(s.ids()):
                k = id_key(id_)
                if k is None:
                    self.flag("bad_id", s.room, "%s: chat id %r is not dash-separated numbers" % (self.where(s), id_))
                    continue
                if id_ in seen:
                    j = seen[id_]
                    self.flag("duplicate", s.room, "%s: id %s received twice: %s %s, then %s %s"
                              % (self.where(s), id_, self._part(s, j), self._t_of(s, j), self._part(s, i),
                                 self._t_of(s, i)))
                elif prev is not None and k <= prev:
                    self.flag("out_of_order", s.room, "%s: id %s (%s %s) after %s"
                              % (self.where(s), id_, self._part(s, i), self._t_of(s, i), prev_id))
                seen.setdefault(id_, i)
                if prev is None or k > prev:
                    prev, prev_id = k, id_

    def _part(self, s, i):
        return "in history" if i < len(s.history) else "live"

    def _t_of(self, s, i):
        if i < len(s.history):
            return "of joined " + self.rel(s.joined_t)
        return self.rel(s.live[i - len(s.history)][1])

    # -- 1. an id is one chat: the same id carries the same body everywhere, a body has one id, acks agree
    def check_identity(self):
        body_ids = {}
        for e in self.log.events:
            if id_key(e.id) is None:
                continue
            k = (e.room, e.id)
            if self.id_body.get(k) is not None and e.body != self.id_body[k]:
                self.flag("id_reused", e.room, "id %s is %r in %s %s but %r per %s"
                          % (e.id, e.body, e.where, e.sid or e.client, self.id_body[k], self.body_of_id_src[k]))
            body_ids.setdefault((e.room, e.body), set()).add(e.id)
            c = self.chat_by_body.get(e.body)
            if c is not None and c.room != e.room:
                self.flag("wrong_room", e.room, "chat %s sent to %s arrived in %s (id %s, %s)"
                          % (c.ref, c.room, e.room, e.id, e.sid or e.client))
            if c is not None and c.client != e.user:
                self.flag("wrong_sender", e.room, "chat %s of %s arrived as user %r" % (c.ref, c.client, e.user))
        for room, entries in (self.log.streams or {}).items():
            for id_, body in entries:
                if body is not None:
                    body_ids.setdefault((room, body), set()).add(id_)
        for (room, body), ids in body_ids.items():
            if len(ids) > 1:
                c = self.chat_by_body.get(body)
                self.flag("published_twice", room, "one chat (%s) has ids %s" % (c.ref if c else repr(body),
                                                                              ", ".join(sorted(ids))))
        for c in self.log.chats:
            if c.answer == "ack":
                if id_key(c.ack_id) is None:
                    self.flag("bad_id", c.room, "ack of %s carries id %r" % (c.ref, c.ack_id))
                    continue
                ids = body_ids.get((c.room, c.body), set())
                if ids and c.ack_id not in ids:
                    self.flag("ack_id_mismatch", c.room, "%s acked as %s but delivered/stored as %s"
                              % (c.ref, c.ack_id, ", ".join(sorted(ids))))

    # -- 2. every chat known to exist reached every session that joined before it was sent and stayed open
    def check_delivery(self):
        checked = 0
        margin = self.log.margin
        for c in self.log.chats:
            if c.outcome == "refused":
                continue
            if c.answer == "ack":
                ids = {c.ack_id}
            else:
                ids = self.ids_of_body.get((c.room, c.body), set())
                if not ids:
                    continue            # sender gone before an answer and nobody saw it: allowed either way
            for id_ in ids:
                exist = self.exist_t.get((c.room, id_))
                if exist is None:
                    continue
                for s in self.sessions_by_room.get(c.room, []):
                    if not (s.joined_t < c.sent_t):
                        continue
                    if s.end_t is not None and not (exist < s.end_t):
                        continue
                    present = id_ in self.session_ids[s.sid]
                    if s.end_t is not None and not (exist + margin < s.end_t):
                        if not present:
                            self.excused += 1
                            self.excused_gaps.append((s.end_t - exist, "%s (%s, existed %s) not in %s"
                                                      % (c.ref, id_, self.rel(exist), self.where(s))))
                        continue
                    if not present and s.end_t is not None and self.cut_off(s, exist):
                        self.excused_outage += 1
                        continue
                    if not present and self.lost_by_redis(c.room, id_):
                        continue
                    checked += 1
                    if not present:
                        self.flag("lost", c.room, "%s (%s, sent %s, %s %s, %s) missing from %s"
                                  % (c.ref, id_, self.rel(c.sent_t), c.outcome, self.rel(exist),
                                     self.fault_at(c.sent_t), self.where(s)))
        self.stats["deliveries checked"] = checked

    def cut_off(self, s, exist):
        """Whether session s ended while its instance was cut off from Redis (a fault's window, or a period its log
        says the broker was down), and the chat may have been published in that same cut: the instance could only
        have delivered it after reconnecting (back-fill), when s was gone."""
        m = self.log.margin
        for o in self.log.outages:
            label, a, b = o[0], o[1], o[2]
            if len(o) > 4 and o[4] is not None and s.room not in o[4]:
                continue              # a cluster slot's outage: other rooms were not cut off
            if label == s.instance and a - m <= exist and s.end_t <= b + m and s.end_t >= a - m:
                return True
        return False

    # -- 3. gap-free: between a session's first and last id, every known id of the room is there
    def check_gaps(self):
        for s in self.log.sessions:
            keys = [k for k in (id_key(i) for i in s.ids()) if k is not None]
            if len(keys) < 2:
                continue
            have = set(s.ids())
            lo, hi = min(keys), max(keys)
            missing = [i for i in self._known_between(s.room, lo, hi)
                       if i not in have and not self.lost_by_redis(s.room, i)]
            if missing:
                self.flag("gap", s.room, "%s: %d known ids missing between its first and last (%s .. %s): %s"
                          % (self.where(s), len(missing), _fmt(lo), _fmt(hi), _few(missing)))

    # -- 4. a join with since=S gets every id after S (history fills the gap); a join without it the last N
    def check_since(self):
        n = self.log.history_len
        for s in self.log.sessions:
            ids = s.ids()
            keys = [k for k in (id_key(i) for i in ids) if k is not None]
            first = min(keys) if keys else None
            have = self.session_ids[s.sid]
            if s.since is not None:
                sk = id_key(s.since)
                if sk is None:
                    continue
                old = [i for i in ids if id_key(i) is not None and id_key(i) <= sk]
                if old:   # the client saw these before it came back: a replay is a duplicate to it
                    self.flag("since_replayed", s.room, "%s: joined with since %s, yet got %d ids not after it: %s"
                              % (self.where(s), s.since, len(old), _few(old)))
                if s.truncated:
                    continue
                if first is not None:
                    missing = [i for i in self._known_between(s.room, sk, first) if i not in have]
                else:
                    missing = [i for i in self._known_between(s.room, sk, None) if self._existed_before(s, i)]
                missing = [i for i in missing if not self.lost_by_redis(s.room, i)]
                if not missing:
                    continue
                # Messages after `since` that are gone must be announced with `truncated` (section 4), expired
                # or not; an expiry the test cannot rule out is reported as its own kind.
                expired = [i for i in missing if self.may_have_expired(s.room, self._lo(s.room, i), s.joined_t)]
                for kind, group in (("since_gap", [i for i in missing if i not in expired]),
                                    ("since_gap_after_expiry", expired)):
                    if group:
                        self.flag(kind, s.room, "%s: joined with since %s, not truncated, but misses %d ids after"
                                  " it: %s" % (self.where(s), s.since, len(group), _few(group)))
            else:
                if s.truncated or len(s.history) >= n:
                    continue
                cand = self._known_between(s.room, None, first) if first is not None \
                    else self._known_between(s.room, None, None)
                missing = [i for i in cand if i not in have and self._existed_before(s, i)
                           and not self.may_have_expired(s.room, self._lo(s.room, i), s.joined_t)
                           and not self.lost_by_redis(s.room, i)]
                if missing:
                    self.flag("history_gap", s.room, "%s: joined.history has %d messages (< --history %d) but"
                              " misses %d older retained ones: %s" % (self.where(s), len(s.history), n,
                                                                     len(missing), _few(missing)))

    def _lo(self, room, id_):
        t = self._sent_t(room, id_)
        return self.log.t0 if t is None else t

    def _existed_before(self, s, id_):
        """The test knew id_ existed before s got `joined`, long enough before s ended."""
        t = self.exist_t.get((s.room, id_))
        return t is not None and t < s.joined_t and (s.end_t is None or t + self.log.margin < s.end_t)

    # -- 5. a chat answered with an error was not sent: nobody got it, it is not in the stream; every chat answered
    def check_refused(self):
        seen = {}
        for e in self.log.events:
            seen.setdefault(e.body, []).append(e)
        stored = {}
        for room, entries in (self.log.streams or {}).items():
            for id_, body in entries:
                stored[body] = (room, id_)
        for c in self.log.chats:
            if c.outcome == "refused":
                if c.body in seen and all(self.lost_by_redis(c.room, e.id) for e in seen[c.body]) \
                        and c.body not in stored:
                    continue      # published, then lost by Redis with its record: the doubt was answered truly
                if c.body in seen:
                    e = seen[c.body][0]
                    self.flag("refused_delivered", c.room, "%s answered %s (%s, sent %s, %s) yet delivered as %s to %d"
                              " session(s), first %s %s" % (c.ref, c.error_code, self.rel(c.answer_t),
                                                            self.rel(c.sent_t), self.fault_at(c.sent_t), e.id,
                                                            len(seen[c.body]), e.sid or e.client, self.rel(e.t)))
                elif c.body in stored:
                    self.flag("refused_stored", c.room, "%s answered %s (%s, %s) yet stored as %s in the stream"
                              % (c.ref, c.error_code, self.rel(c.answer_t), self.fault_at(c.sent_t),
                                 stored[c.body][1]))
            elif c.outcome == "unanswered":
                self.flag("unanswered", c.room, "%s sent %s (%s) never got an ack or error on a connection open"
                          " to the end" % (c.ref, self.rel(c.sent_t), self.fault_at(c.sent_t)))

    # -- 5. acked chats survive in the stream (appendfsync always), unless trimmed or expired
    def check_streams(self):
        streams = self.log.streams
        if streams is None:
            return
        stored_ids = {room: {i for i, _ in entries} for room, entries in streams.items()}
        oldest = {room: min(id_key(i) for i in ids) for room, ids in stored_ids.items() if ids}
        for c in self.log.chats:
            if c.answer != "ack" or id_key(c.ack_id) is None:
                continue
            if self.may_have_expired(c.room, c.sent_t, self.log.stream_read_t):
                continue
            entries = streams.get(c.room)
            if not entries:
                if self.lost_by_redis(c.room, c.ack_id):
                    continue
                self.flag("acked_not_stored", c.room, "%s acked as %s (%s) but the room has no stream"
                          % (c.ref, c.ack_id, self.rel(c.answer_t)))
                continue
            if c.ack_id not in stored_ids[c.room] and (len(entries) < self.log.history_len
                                                       or id_key(c.ack_id) > oldest[c.room]):
                if self.lost_by_redis(c.room, c.ack_id):
                    continue
                self.flag("acked_not_stored", c.room, "%s acked as %s (%s, %s) is not in the stream"
                          % (c.ref, c.ack_id, self.rel(c.answer_t), self.fault_at(c.sent_t)))

    # -- counts
    def _stats(self):
        log = self.log
        st = self.stats
        st["clients"] = len({s.client for s in log.sessions} | {c.client for c in log.chats})
        st["sessions"] = len(log.sessions)
        st["sessions with since"] = sum(1 for s in log.sessions if s.since is not None)
        st["sessions truncated"] = sum(1 for s in log.sessions if s.truncated)
        st["chats sent"] = len(log.chats)
        for o in ("acked", "refused", "unknown", "unanswered"):
            st["chats " + o] = sum(1 for c in log.chats if c.outcome == o)
        codes = {}
        for c in log.chats:
            if c.outcome == "refused":
                codes[c.error_code] = codes.get(c.error_code, 0) + 1
        for code, n in sorted(codes.items()):
            st["chats refused " + str(code)] = n
        st["chat events received"] = len(log.events)
        st["ids known"] = sum(len(v) for v in self.known.values())
        st["obligations excused by the margin"] = self.excused
        if self.excused_gaps:
            gaps = [g for g, _ in self.excused_gaps]
            st["obligations excused by the margin"] = "%d (session ended %.3f-%.3f s after the chat existed)" % (
                self.excused, min(gaps), max(gaps))
        st["obligations excused by an outage"] = self.excused_outage
        if self.log.loss_windows:
            st["ids Redis lost (failover)"] = "%d (%s)" % (len(self.redis_lost), _few(sorted(
                "%s:%s" % k for k in self.redis_lost), 4) or "none")
            st["obligations excused by Redis's loss"] = self.excused_redis_loss
        kinds = {}
        for f in log.faults:
            kinds[f[0]] = kinds.get(f[0], 0) + 1
        for k, n in sorted(kinds.items()):
            st["fault " + k] = n

    def report(self, out):
        out.write("  %-36s %s\n" % ("t=0 in the instance logs", _utc(self.log.wall0)))
        for k, v in self.stats.items():
            out.write("  %-36s %s\n" % (k, v))
        out.write("  %-36s %s\n" % ("note", "ids are compared numerically (section 4), so two sessions of a room "
                                            "that are each strictly increasing agree on the room order"))
        if self.excused_gaps:
            out.write("  closest calls the margin excused (not violations; a smaller --race-margin would flag them):\n")
            for g, text in sorted(self.excused_gaps, reverse=True)[:3]:
                out.write("    %.3fs: %s\n" % (g, text))
        by_kind = {}
        for v in self.violations:
            by_kind.setdefault(v.kind, []).append(v)
        if not by_kind:
            return
        out.write("\nVIOLATIONS: %d (%s)\n" % (len(self.violations), ", ".join(
            "%s %d" % (k, len(v)) for k, v in sorted(by_kind.items(), key=lambda kv: -len(kv[1])))))
        for kind, vs in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
            out.write("\n-- %s: %d\n" % (kind, len(vs)))
            for v in vs[:self.MAX_PER_KIND]:
                out.write("  [%s] %s\n" % (v.room, v.text))
            if len(vs) > self.MAX_PER_KIND:
                out.write("  ... and %d more\n" % (len(vs) - self.MAX_PER_KIND))


def _utc(wall):
    return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fmt(k):
    return "-".join(str(p) for p in k)


def _few(ids, n=6):
    ids = list(ids)
    return ", ".join(ids[:n]) + (" ... (%d more)" % (len(ids) - n) if len(ids) > n else "")
