// Self-check for the baseline: starts redis-server and a stub Frappe web
// server on free ports, runs server.js in a temporary bench directory and
// checks auth, rooms, handlers and the Redis bridge with socket.io-client.
// Usage: npm install && node selfcheck.js   (needs redis-server on PATH)
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const http = require("http");
const net = require("net");
const os = require("os");
const path = require("path");
const { createClient } = require("redis");
const { io: connect } = require("socket.io-client");

const SITE = "site1.local";
const children = [];
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures++;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const free_port = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
function wait_output(child, text, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for "${text}"`)), ms);
    child.stdout.on("data", (d) => d.toString().includes(text) && (clearTimeout(t), resolve()));
  });
}

// stub web server: sid=<user> cookies, "token <user>" authorization
const users = { alice: "System User", bob: "System User", guest: "Website User" };
function stub_frappe(req, res) {
  const url = new URL(req.url, "http://x");
  const auth = req.headers.authorization || "";
  const m = /sid=([^;]+)/.exec(req.headers.cookie || "");
  const user = auth.startsWith("token ") ? auth.slice(6) : m && m[1];
  const send = (code, body) => res.writeHead(code, { "Content-Type": "application/json" }).end(JSON.stringify(body));
  if (!users[user]) return send(401, { exc_type: "AuthenticationError" });
  if (url.pathname === "/api/method/frappe.realtime.get_user_info")
    return send(200, { message: { user, user_type: users[user], installed_apps: ["frappe"] } });
  if (url.pathname === "/api/method/frappe.realtime.has_permission") {
    const allowed = url.searchParams.get("doctype") !== "Secret";
    return allowed ? send(200, { message: true }) : send(403, { exc_type: "PermissionError" });
  }
  send(404, {});
}

async function main() {
  const [redis_port, web_port, sio_port] = [await free_port(), await free_port(), await free_port()];
  const redis = spawn("redis-server", ["--port", redis_port, "--save", "", "--appendonly", "no"], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(redis);
  await wait_output(redis, "Ready to accept connections");
  const web = http.createServer(stub_frappe).listen(web_port, "127.0.0.1");

  const bench = fs.mkdtempSync(path.join(os.tmpdir(), "baseline-bench-"));
  fs.mkdirSync(path.join(bench, "sites"));
  fs.writeFileSync(path.join(bench, "config.json"), JSON.stringify({ socketio_port: sio_port, webserver_port: 1 }));
  fs.writeFileSync(
    path.join(bench, "sites/common_site_config.json"),
    JSON.stringify({ redis_queue: `redis://127.0.0.1:${redis_port}`, webserver_port: web_port, socketio_port: 0 })
  );
  const server = spawn(process.execPath, [path.join(__dirname, "server.js")], {
    cwd: bench,
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(server);
  await wait_output(server, `Realtime service listening on: ${sio_port}`);
  check(true, "config merge (truthy values only) and listening log");

  const opts = (user, extra = {}) => ({
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    extraHeaders: { Origin: `http://${SITE}`, Host: `${SITE}:${sio_port}`, Cookie: `sid=${user}`, ...extra },
  });
  const open = (user, extra, ns = SITE) =>
    new Promise((resolve) => {
      const s = connect(`http://127.0.0.1:${sio_port}/${ns}`, opts(user, extra));
      s.on("connect", () => resolve({ s, err: null }));
      s.on("connect_error", (err) => resolve({ s, err: err.message }));
    });
  const next_event = (s, ev, ms = 2000) =>
    new Promise((resolve) => {
      const t = setTimeout(() => resolve(undefined), ms);
      s.once(ev, (...args) => (clearTimeout(t), resolve(args)));
    });

  const pub = createClient({ url: `redis://127.0.0.1:${redis_port}` });
  await pub.connect();
  const publish = (m) => pub.publish("events", JSON.stringify(m));

  // auth failures
  let r = await open("mallory");
  check(r.err && r.err.startsWith("Unauthorized: "), `unknown sid rejected (${r.err})`);
  r.s.close();
  r = await open("alice", { Origin: "http://evil.example" });
  check(r.err === "Invalid namespace", `Origin mismatch with Origin-derived site -> ${r.err}`);
  r.s.close();
  r = await open("alice", { "X-Frappe-Site-Name": SITE, Origin: "http://evil.example" });
  check(r.err === "Invalid origin", `site header + foreign Origin -> ${r.err}`);
  r.s.close();
  r = await open("alice", { Cookie: "foo=bar" });
  check(r.err === "No authentication method used. Use cookie or authorization header.", `cookie without sid -> ${r.err}`);
  r.s.close();

  // happy path: cookie and token
  const a = await open("alice");
  check(!a.err, "alice connects with cookie sid");
  const b = await open("bob", { Cookie: "sid=Guest", Authorization: "token bob" });
  check(!b.err, "bob connects with Authorization (preferred over cookie sid=Guest)");
  const g = await open("guest");
  check(!g.err, "website user connects");

  a.s.emit("ping");
  check((await next_event(a.s, "pong")) !== undefined, "ping -> pong");

  let p = next_event(a.s, "msgprint");
  await publish({ event: "msgprint", message: { text: "hi" }, room: "user:alice", namespace: SITE });
  check(JSON.stringify(await p) === '[{"text":"hi"}]', "redis -> user:alice room, single message arg");

  const pg = next_event(g.s, "list_update", 500);
  p = next_event(b.s, "list_update");
  await publish({ event: "list_update", message: [1, 2], room: "all", namespace: SITE });
  check(JSON.stringify(await p) === "[[1,2]]", "redis -> all room reaches System User");
  check((await pg) === undefined, "all room skips Website User");

  const o = await open("alice", { Origin: "http://site2.local", Host: `site2.local:${sio_port}` }, "site2.local");
  check(!o.err, "second site namespace (site from Origin)");
  const po = next_event(o.s, "msgprint", 500);
  p = next_event(a.s, "msgprint");
  await publish({ event: "msgprint", message: "x", room: "user:alice", namespace: SITE });
  check((await p) !== undefined && (await po) === undefined, "same room name on another site stays isolated");

  p = Promise.all([next_event(a.s, "build_event"), next_event(g.s, "build_event"), next_event(o.s, "build_event")]);
  await publish({ event: "build_event", message: "done" });
  check(JSON.stringify(await p) === '[["done"],["done"],["done"]]', "no room -> every site namespace");
  o.s.close();

  a.s.emit("task_subscribe", "t1");
  await sleep(100);
  p = next_event(a.s, "progress");
  await publish({ event: "progress", message: { percent: 50 }, room: "task_progress:t1", namespace: SITE });
  check((await p) !== undefined, "task_subscribe -> task_progress room");

  a.s.emit("doc_subscribe", "ToDo", "T-1");
  a.s.emit("doc_subscribe", "Secret", "S-1");
  await sleep(200);
  p = next_event(a.s, "doc_update");
  const ps = next_event(a.s, "doc_secret", 500);
  await publish({ event: "doc_update", message: {}, room: "doc:ToDo/T-1", namespace: SITE });
  await publish({ event: "doc_secret", message: {}, room: "doc:Secret/S-1", namespace: SITE });
  check((await p) !== undefined, "doc_subscribe allowed -> doc room");
  check((await ps) === undefined, "doc_subscribe denied (403) -> no join");

  a.s.emit("doc_open", "ToDo", "T-1");
  await sleep(200);
  p = Promise.all([next_event(a.s, "doc_viewers"), next_event(b.s, "doc_viewers")]);
  b.s.emit("doc_open", "ToDo", "T-1");
  const [va, vb] = await p;
  check(JSON.stringify(va) === JSON.stringify(vb) && JSON.stringify(va[0].users) === '["alice","bob"]', `doc_viewers ${JSON.stringify(va)}`);
  p = next_event(a.s, "doc_viewers");
  b.s.close();
  check(JSON.stringify((await p)[0].users) === '["alice"]', "disconnect updates doc_viewers");

  a.s.close();
  g.s.close();
  await pub.quit();
  web.close();
  fs.rmSync(bench, { recursive: true, force: true });
}

main()
  .catch((e) => {
    console.error(e);
    failures++;
  })
  .finally(() => {
    for (const c of children) c.kill();
    console.log(failures ? `${failures} check(s) failed` : "all checks passed");
    process.exit(failures ? 1 : 0);
  });
