// Node baseline for the emitter benchmark: socket.io 4.8 with
// @socket.io/redis-adapter (what receives @socket.io/redis-emitter's
// messages) and the JWT middleware of server_jwt.js. Written for this project.
"use strict";
const fs = require("fs");
const http = require("http");
const jwt = require("jsonwebtoken");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 9000);
const secret = fs.readFileSync(process.env.JWT_KEY, "utf8").replace(/\n$/, "");
(async () => {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(pub, sub) });
  io.use((socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    jwt.verify(token || "", secret, { algorithms: ["HS256"] }, (err, claims) => {
      if (err) return next(new Error("invalid token"));
      socket.data.user = claims.sub;
      next();
    });
  });
  io.on("connection", (socket) => {
    socket.join(`user:${socket.data.user}`);
    socket.join("r");
  });
  httpServer.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
})();
process.on("SIGTERM", () => process.exit(0));
