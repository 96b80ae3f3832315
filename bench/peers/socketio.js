// The Socket.IO 4 peer, written the way its documentation shows: rooms with socket.join(), a broadcast
// with io.to(room).emit(), acknowledgements by callback, @socket.io/redis-adapter across instances.
// Rule: nothing tuned beyond what a production deployment would set (WebSocket transport only, no
// per-message deflate, no client file served).
//
//   PORT=P [REDIS_URL=redis://127.0.0.1:R] node bench/peers/socketio.js
const { createServer } = require("http");
const { Server } = require("socket.io");

async function main() {
  const port = Number(process.env.PORT || 3000);
  const httpServer = createServer((req, res) => {  // anything but /socket.io/ (the bench's /metrics probe)
    res.writeHead(404);
    res.end();
  });
  const pingInterval = Number(process.env.PING_MS || 25000);  // Engine.IO's default, unless the bench sets one
  const io = new Server(httpServer, { transports: ["websocket"], perMessageDeflate: false, serveClient: false, pingInterval });
  if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pubClient = createClient({ url: process.env.REDIS_URL });
    const subClient = pubClient.duplicate();
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io.adapter(createAdapter(pubClient, subClient));
  }
  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(room);
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("chat", (msg, ack) => {
      io.to(msg.room).emit("chat", { room: msg.room, message: msg.message });
      if (typeof ack === "function") ack({ ok: true });
    });
  });
  httpServer.listen(port, "127.0.0.1", () => console.log(`socket.io peer on 127.0.0.1:${port}${process.env.REDIS_URL ? " with " + process.env.REDIS_URL : ""}`));
  const stop = () => io.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
