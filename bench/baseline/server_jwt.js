// Node baseline for the standalone mode's connect benchmark: socket.io 4.8
// with the usual JWT middleware (jsonwebtoken.verify on auth.token), the
// socket joining user:<sub> as realtimed's does. Written for this project.
"use strict";
const fs = require("fs");
const http = require("http");
const jwt = require("jsonwebtoken");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 9000);
const key = fs.readFileSync(process.env.JWT_KEY);
const pem = key.includes("-----BEGIN");
const secret = pem ? key : key.toString("utf8").replace(/\n$/, "");
const algorithms = pem ? ["RS256"] : ["HS256"];

const httpServer = http.createServer();
const io = new Server(httpServer, { cors: { origin: true, credentials: true } });
io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (!token) return next(new Error("no token"));
  jwt.verify(token, secret, { algorithms, clockTolerance: 30 }, (err, claims) => {
    if (err || !claims || typeof claims.sub !== "string") return next(new Error("invalid token"));
    socket.data.user = claims.sub;
    next();
  });
});
io.on("connection", (socket) => socket.join(`user:${socket.data.user}`));
httpServer.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
process.on("SIGTERM", () => process.exit(0));
