// The Node `ws` + Redis peer: the tutorial chat server. A Map of room -> Set of sockets on each
// instance, one Redis SUBSCRIBE per room with local members, a chat is one PUBLISH of the event; it
// speaks roomcast's JSON (join -> joined, chat with ref -> ack), so roomcast-bench drives it unchanged.
// Rule: idiomatic, not tuned: JSON.parse/JSON.stringify, ws.send per member, no per-message deflate.
//
//   PORT=P [REDIS_URL=redis://127.0.0.1:R] node bench/peers/ws.js
const { WebSocketServer } = require("ws");

async function main() {
  const port = Number(process.env.PORT || 3001);
  const rooms = new Map(); // room -> Set of sockets on this instance
  let pub = null, sub = null;
  const deliver = (room, payload) => {
    const members = rooms.get(room);
    if (members) for (const ws of members) ws.send(payload);
  };
  if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    pub = createClient({ url: process.env.REDIS_URL });
    sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
  }
  const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.rooms = new Set();
    ws.alive = true;
    ws.on("pong", () => (ws.alive = true));
    ws.on("message", async (data) => {
      let m;
      try {
        m = JSON.parse(data);
      } catch {
        return ws.send(JSON.stringify({ type: "error", code: "bad_json" }));
      }
      if (m.type === "join") {
        let members = rooms.get(m.roomId);
        if (!members) {
          members = new Set();
          rooms.set(m.roomId, members);
          if (sub) await sub.subscribe("room:" + m.roomId, (payload) => deliver(m.roomId, payload));
        }
        members.add(ws);
        ws.rooms.add(m.roomId);
        ws.send(JSON.stringify({ type: "joined", roomId: m.roomId, count: members.size }));
      } else if (m.type === "chat") {
        const event = JSON.stringify({ type: "chat", roomId: m.roomId, message: m.message });
        if (pub) await pub.publish("room:" + m.roomId, event);
        else deliver(m.roomId, event);
        if (m.ref !== undefined) ws.send(JSON.stringify({ type: "ack", ref: m.ref }));
      }
    });
    ws.on("close", () => {
      for (const room of ws.rooms) {
        const members = rooms.get(room);
        members.delete(ws);
        if (members.size === 0) {
          rooms.delete(room);
          if (sub) sub.unsubscribe("room:" + room);
        }
      }
    });
  });
  // The heartbeat of ws's README: ping every PING_MS, drop a socket that did not answer the last one.
  const pingMs = Number(process.env.PING_MS || 25000);
  const beat = setInterval(() => {
    for (const ws of wss.clients) {
      if (ws.alive === false) {
        ws.terminate();
        continue;
      }
      ws.alive = false;
      ws.ping();
    }
  }, pingMs);
  wss.on("close", () => clearInterval(beat));
  wss.on("listening", () => console.log(`ws peer on 127.0.0.1:${port}${pub ? " with " + process.env.REDIS_URL : ""}`));
  const stop = () => process.exit(0);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
