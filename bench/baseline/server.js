// Node baseline for realtimed benchmarks: a compact re-implementation of the
// behaviour of Frappe's Node realtime server (realtime/index.js, the
// authenticate middleware and the frappe handlers), on socket.io 4.8 and
// node-redis 4. Written for this project; see README.md for the differences.
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");
const dns = require("dns");
const cookie = require("cookie");
const { createClient } = require("redis");
const { Server } = require("socket.io");

dns.setDefaultResultOrder("ipv4first");

// ---- configuration: <bench>/config.json, then sites/common_site_config.json;
// only truthy values are copied, then environment overrides.
function get_conf() {
  const bench = process.env.FRAPPE_BENCH_ROOT || process.cwd();
  const conf = { socketio_port: 9000 };
  for (const rel of ["config.json", "sites/common_site_config.json"]) {
    const file = path.resolve(bench, rel);
    if (!fs.existsSync(file)) continue;
    const data = JSON.parse(fs.readFileSync(file, "utf8"));
    for (const key of Object.keys(data)) if (data[key]) conf[key] = data[key];
  }
  const env = process.env;
  if (env.FRAPPE_SITE) conf.default_site = env.FRAPPE_SITE;
  if (env.FRAPPE_REDIS_CACHE) conf.redis_cache = env.FRAPPE_REDIS_CACHE;
  if (env.FRAPPE_REDIS_QUEUE) conf.redis_queue = env.FRAPPE_REDIS_QUEUE;
  if (env.FRAPPE_SOCKETIO_PORT) conf.socketio_port = env.FRAPPE_SOCKETIO_PORT;
  return conf;
}
const conf = get_conf();

// ---- server
const httpServer = http.createServer();
const io = new Server(httpServer, {
  cors: { origin: true, credentials: true },
  cleanupEmptyChildNamespaces: true,
});
const realtime = io.of(/^\/.*$/); // one child namespace per site

// ---- authentication middleware
// "scheme://host:port/x" -> "host"; "host:port" -> "host"
function hostname(url) {
  if (!url) return undefined;
  if (url.includes("://")) url = url.split("/")[2];
  const colon = url.indexOf(":");
  return colon === -1 ? url : url.slice(0, colon);
}

function site_name(socket) {
  if (socket.site_name) return socket.site_name;
  const h = socket.request.headers;
  if (h["x-frappe-site-name"]) socket.site_name = hostname(h["x-frappe-site-name"]);
  else if (conf.default_site && ["localhost", "127.0.0.1"].includes(hostname(h.host)))
    socket.site_name = conf.default_site;
  else if (h.origin) socket.site_name = hostname(h.origin);
  else socket.site_name = hostname(h.host);
  return socket.site_name;
}

// Optional (develop): X-Frappe-Socket-Secret read from redis_queue before each call.
const secret_client = process.env.BASELINE_SOCKET_SECRET
  ? createClient({ url: conf.redis_queue }).on("error", (e) => console.error("redis:", e.message))
  : null;
if (secret_client) secret_client.connect();

async function frappe_request(socket, method, args) {
  const query = new URLSearchParams(args || {}).toString();
  const url = `http://127.0.0.1:${conf.webserver_port}/api/method/${method}` + (query ? `?${query}` : "");
  const headers = { "X-Frappe-Site-Name": socket.site_name };
  if (socket.authorization_header) headers["Authorization"] = socket.authorization_header;
  else if (socket.sid) headers["Cookie"] = `sid=${socket.sid}`;
  if (secret_client) headers["X-Frappe-Socket-Secret"] = (await secret_client.get("socketio_auth_secret")) || "";
  return fetch(url, { headers });
}

async function get_user_info(socket) {
  let { message } = await (await frappe_request(socket, "frappe.realtime.get_user_info")).json();
  if (!message.installed_apps) {
    // first connect may race the secret's creation: Frappe retries once
    ({ message } = await (await frappe_request(socket, "frappe.realtime.get_user_info")).json());
  }
  return message;
}

realtime.use((socket, next) => {
  const h = socket.request.headers;
  if (socket.nsp.name.slice(1) !== site_name(socket)) return next(new Error("Invalid namespace"));
  if (hostname(h.host) !== hostname(h.origin)) return next(new Error("Invalid origin"));
  if (!h.cookie && !h.authorization)
    return next(new Error("Missing cookie and authorization header. Either one needed for authentication."));
  const sid = cookie.parse(h.cookie || "").sid;
  if (!sid && !h.authorization)
    return next(new Error("No authentication method used. Use cookie or authorization header."));
  socket.sid = sid;
  socket.authorization_header = h.authorization;
  get_user_info(socket)
    .then((message) => {
      socket.user = message.user;
      socket.user_type = message.user_type;
      socket.installed_apps = message.installed_apps || [];
      next();
    })
    .catch((err) => next(new Error(`Unauthorized: ${err}`)));
});

// ---- per-connection handlers (Frappe's own app handlers)
function has_permission(socket, doctype, name) {
  // resolves only when allowed; a denial (403) leaves it pending, like Frappe
  return new Promise((resolve) => {
    frappe_request(socket, "frappe.realtime.has_permission", { doctype, name: name || "" })
      .then((res) => res.json())
      .then(({ message }) => message && resolve())
      .catch((err) => console.log("Can't check permissions", err));
  });
}

const open_doc_room = (doctype, docname) => `open_doc:${doctype}/${docname}`;

function notify_doc_viewers(socket, doctype, docname) {
  if (!doctype || !docname) return;
  const room = open_doc_room(doctype, docname);
  const members = socket.nsp.adapter.rooms.get(room) || new Set();
  const users = [];
  for (const [id, s] of socket.nsp.sockets) if (members.has(id)) users.push(s.user);
  if (users.length === 1 && users[0] === socket.user) return; // only me: nothing to say
  socket.nsp.to(room).emit("doc_viewers", { doctype, docname, users: [...new Set(users)] });
}

function frappe_handlers(socket) {
  socket.join(`user:${socket.user}`);
  socket.join("website");
  if (socket.user_type === "System User") socket.join("all");
  socket.open_docs = [];

  socket.on("ping", () => socket.emit("pong"));
  socket.on("doctype_subscribe", (doctype) =>
    has_permission(socket, doctype).then(() => socket.join(`doctype:${doctype}`)));
  socket.on("doctype_unsubscribe", (doctype) => socket.leave(`doctype:${doctype}`));
  socket.on("task_subscribe", (task_id) => socket.join(`task_progress:${task_id}`));
  socket.on("progress_subscribe", (task_id) => socket.join(`task_progress:${task_id}`));
  socket.on("task_unsubscribe", (task_id) => socket.leave(`task_progress:${task_id}`));
  socket.on("doc_subscribe", (doctype, docname) =>
    has_permission(socket, doctype, docname).then(() => socket.join(`doc:${doctype}/${docname}`)));
  socket.on("doc_unsubscribe", (doctype, docname) => socket.leave(`doc:${doctype}/${docname}`));
  socket.on("doc_open", (doctype, docname) =>
    has_permission(socket, doctype, docname).then(() => {
      socket.join(open_doc_room(doctype, docname));
      socket.open_docs.push([doctype, docname]);
      notify_doc_viewers(socket, doctype, docname);
    }));
  socket.on("doc_close", (doctype, docname) => {
    socket.leave(open_doc_room(doctype, docname));
    // Frappe's filter callback returns nothing, so the whole list is dropped
    socket.open_docs = [];
    notify_doc_viewers(socket, doctype, docname);
  });
  socket.on("disconnect", () => {
    for (const [doctype, docname] of socket.open_docs) notify_doc_viewers(socket, doctype, docname);
  });
}

realtime.on("connection", (socket) => {
  // Frappe loads apps/<app>/realtime/handlers.js per installed app; only
  // frappe's own handlers matter here (no app list -> no rooms, as in Frappe).
  if (socket.installed_apps.includes("frappe")) frappe_handlers(socket);
});

// ---- Redis bridge: Python publishes {event, message, room, namespace} on "events"
const subscriber = createClient({ url: conf.redis_queue });
subscriber.on("error", (e) => console.error("redis subscriber:", e.message));
subscriber
  .connect()
  .then(() =>
    subscriber.subscribe("events", (raw) => {
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch (e) {
        return console.error("bad message on events:", e.message);
      }
      if (!msg) return;
      if (msg.room) io.of(`/${msg.namespace}`).to(msg.room).emit(msg.event, msg.message);
      else realtime.emit(msg.event, msg.message); // every site namespace
    })
  )
  .catch((e) => console.error("redis subscribe failed:", e.message));

httpServer.listen(conf.socketio_port, () =>
  console.log(`Realtime service listening on: ${conf.socketio_port}`)
);
