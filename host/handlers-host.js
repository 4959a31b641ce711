'use strict';
// realtimed's host for apps' realtime/handlers.js (protocol: docs/handlers.md).
//
// realtimed starts this script with Node.js, `--preserve-symlinks` and the
// bench root as working directory, and talks to it on file descriptor 3:
// frames of a 4-byte little-endian length and a JSON object. For each socket
// of a site where an app with handlers is installed it sends `connect`; the
// host then calls each app's export with a socket object that behaves like
// the socket.io Socket Frappe's Node server gave it, and tells realtimed the
// event names the handlers listen to. Everything the handlers do with the
// socket (emit, to(room).emit, join, leave, acks, disconnect) goes back to
// realtimed, which does the actual Socket.IO work.
//
// A handler that throws, rejects or throws from a timer is logged with its
// app and event; the host and every connection carry on.

const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { EventEmitter } = require('node:events');
const { AsyncLocalStorage } = require('node:async_hooks');

const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);
const ctx = new AsyncLocalStorage(); // { app, event } of the code running now

// ------------------------------------------------------------------ logging
function log(level, msg) {
  process.stderr.write(`${new Date().toISOString()} ${level} handlers.js: ${msg}\n`);
}
function where() {
  const c = ctx.getStore();
  return c ? `app ${c.app}${c.event ? `, event '${c.event}'` : ''}` : 'an app';
}
function errText(err) {
  return err && err.stack ? err.stack : String(err);
}
process.on('uncaughtException', (err) => log('error', `uncaught exception in ${where()} (ignored): ${errText(err)}`));
process.on('unhandledRejection', (err) => log('error', `unhandled rejection in ${where()} (ignored): ${errText(err)}`));
// realtimed decides; EOF ends us (SIGUSR1 would otherwise open Node's inspector)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2']) process.on(sig, () => {});

// --check BENCH APP...: load each app's handlers.js, exit 1 if one fails
// (realtimed --check-config)
if (process.argv[2] === '--check') {
  let failed = 0;
  for (const app of process.argv.slice(4)) {
    const file = path.resolve(process.argv[3], 'apps', app, 'realtime', 'handlers.js');
    try {
      const fn = require(file);
      if (typeof fn !== 'function') throw new Error('it does not export a function');
      log('info', `${file}: loads`);
    } catch (err) {
      failed++;
      log('error', `failed to load event handlers from ${file}: ${errText(err)}`);
    }
  }
  process.exit(failed ? 1 : 0);
}

// ------------------------------------------------------------------ wire
// One connection per realtimed process: fd 3 from the one that started us,
// and with --workers the other workers of the machine connect to
// REALTIMED_HOST_LISTEN (a socket in a private folder). A socket's messages
// go to the connection it came from; the rest to the first one.
class Wire {
  constructor(sock, primary) {
    this.sock = sock;
    this.primary = primary;
    this.pending = [];
    this.flushQueued = false;
    this.inbuf = Buffer.alloc(0);
    wires.add(this);
    sock.on('data', (chunk) => this.data(chunk));
    const end = () => this.gone();
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
  }
  send(msg) {
    const body = Buffer.from(JSON.stringify(msg));
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(body.length, 0);
    this.pending.push(head, body);
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => this.flush()); // one write per turn of our loop
    }
  }
  flush() {
    this.flushQueued = false;
    if (!this.pending.length || !wires.has(this)) return;
    const out = Buffer.concat(this.pending);
    this.pending = [];
    this.sock.write(out);
  }
  data(chunk) {
    this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, chunk]) : chunk;
    let off = 0;
    while (this.inbuf.length - off >= 4) {
      const n = this.inbuf.readUInt32LE(off);
      if (this.inbuf.length - off - 4 < n) break;
      const text = this.inbuf.toString('utf8', off + 4, off + 4 + n);
      off += 4 + n;
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (e) {
        log('error', `bad message from realtimed: ${e.message}`);
        continue;
      }
      try {
        handle(msg, this);
      } catch (e) {
        log('error', `handling '${msg.t}' failed: ${errText(e)}`);
      }
    }
    this.inbuf = off ? this.inbuf.subarray(off) : this.inbuf;
  }
  gone() {
    if (!wires.delete(this)) return;
    if (this.primary) process.exit(0); // the realtimed that started us is gone
    // another worker went away: its sockets with it
    for (const [id, s] of sockets) {
      if (s.wire !== this) continue;
      sockets.delete(id);
      s._gone('transport close');
    }
    this.sock.destroy();
  }
}
const wires = new Set();
const primaryWire = new Wire(new net.Socket({ fd: Number(process.env.REALTIMED_HOST_FD || 3), readable: true, writable: true }), true);
const anyWire = () => primaryWire;
const send = (msg) => anyWire().send(msg);
const sendTo = (id, msg) => { const s = sockets.get(id); if (s) s.wire.send(msg); };
if (process.env.REALTIMED_HOST_LISTEN) {
  const where = process.env.REALTIMED_HOST_LISTEN;
  try { fs.unlinkSync(where); } catch { /* not there */ }
  net.createServer((c) => new Wire(c, false)).listen(where).on('error', (e) => log('error', `cannot listen on ${where}: ${e.message}`));
}

// ------------------------------------------------------------------ binary
const isBinary = (v) => Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
// args -> { a (placeholders for binary), b (base64) }, as socket.io-parser does
function deconstruct(args) {
  const b = [];
  const walk = (v) => {
    if (isBinary(v)) {
      b.push(toBuffer(v).toString('base64'));
      return { _placeholder: true, num: b.length - 1 };
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object' && !(v instanceof Date)) {
      if (typeof v.toJSON === 'function') return walk(v.toJSON());
      const o = {};
      for (const [k, x] of Object.entries(v)) o[k] = walk(x);
      return o;
    }
    return v;
  };
  const a = args.map(walk);
  return b.length ? { a, b } : { a };
}
function reconstruct(a, b) {
  if (!b || !b.length) return a;
  const bufs = b.map((x) => Buffer.from(x, 'base64'));
  const walk = (v) => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      if (v._placeholder === true && typeof v.num === 'number') return bufs[v.num];
      for (const k of Object.keys(v)) v[k] = walk(v[k]);
    }
    return v;
  };
  return walk(a);
}

// ------------------------------------------------------------------ state
let bench = process.env.REALTIMED_BENCH || process.cwd();
let hostApps = new Set();
const appHandlers = new Map(); // app -> export function | null (absent or failed)
const sockets = new Map(); // id -> HostSocket
const namespaces = new Map(); // name -> Namespace
let reqSeq = 0;
const waiting = new Map(); // request id -> { resolve, kind }

function loadApp(app) {
  if (appHandlers.has(app)) return appHandlers.get(app);
  const file = path.resolve(bench, 'apps', app, 'realtime', 'handlers.js');
  let fn = null;
  if (fs.existsSync(file)) {
    try {
      fn = ctx.run({ app }, () => require(file));
      if (typeof fn !== 'function') {
        log('warning', `${file} does not export a function: app ${app} has no handlers`);
        fn = null;
      }
    } catch (err) {
      log('error', `failed to load event handlers from ${file}: ${errText(err)}`);
      fn = null;
    }
  }
  appHandlers.set(app, fn);
  return fn;
}

class Adapter {
  constructor(nsp) {
    this.nsp = nsp;
    this.rooms = new Map(); // room -> Set of socket ids
    this.sids = new Map(); // socket id -> Set of rooms
  }
  add(id, room) {
    let r = this.rooms.get(room);
    if (!r) this.rooms.set(room, (r = new Set()));
    r.add(id);
    let s = this.sids.get(id);
    if (!s) this.sids.set(id, (s = new Set()));
    s.add(room);
  }
  del(id, room) {
    const r = this.rooms.get(room);
    if (r) {
      r.delete(id);
      if (!r.size) this.rooms.delete(room);
    }
    const s = this.sids.get(id);
    if (s) s.delete(room);
  }
  delAll(id) {
    for (const room of this.sids.get(id) || []) {
      const r = this.rooms.get(room);
      if (r) {
        r.delete(id);
        if (!r.size) this.rooms.delete(room);
      }
    }
    this.sids.delete(id);
  }
}

// socket.to(room) / nsp.to(room): the union of rooms, except some
class BroadcastOperator {
  constructor(nsp, rooms = new Set(), exceptRooms = new Set(), exceptIds = new Set()) {
    this.nsp = nsp;
    this.rooms = rooms;
    this.exceptRooms = exceptRooms;
    this.exceptIds = exceptIds;
  }
  to(room) {
    const rooms = new Set(this.rooms);
    for (const r of Array.isArray(room) ? room : [room]) rooms.add(String(r));
    return new BroadcastOperator(this.nsp, rooms, this.exceptRooms, this.exceptIds);
  }
  in(room) { return this.to(room); }
  except(room) {
    const ex = new Set(this.exceptRooms);
    for (const r of Array.isArray(room) ? room : [room]) ex.add(String(r));
    return new BroadcastOperator(this.nsp, this.rooms, ex, this.exceptIds);
  }
  get volatile() { return this; }
  get local() { return this; }
  compress() { return this; }
  timeout() { return this; }
  emit(event, ...args) {
    if (RESERVED.has(event)) throw new Error(`"${event}" is a reserved event name`);
    if (typeof args[args.length - 1] === 'function') {
      throw new Error('Callbacks are not supported when broadcasting');
    }
    const { a, b } = deconstruct(args);
    const ad = this.nsp.adapter;
    // rooms named by a socket id mean that socket (socket.io puts every
    // socket in its own room, and so does this mirror); realtimed's room
    // index does not have them
    const idRooms = [...this.rooms].filter((r) => this.nsp.sockets.has(r));
    if (!this.exceptRooms.size && this.exceptIds.size <= 1 && !idRooms.length) {
      const msg = { t: 'bcast', nsp: this.nsp.name, rooms: [...this.rooms], e: String(event), a };
      if (b) msg.b = b;
      if (this.exceptIds.size) msg.except = [...this.exceptIds][0];
      // through the sender's realtimed (it leaves the sender out), else any
      const from = msg.except && sockets.get(msg.except);
      (from ? from.wire : anyWire()).send(msg);
      return true;
    }
    // The general case from the mirror: every target by name.
    const targets = new Set();
    if (!this.rooms.size) for (const id of this.nsp.sockets.keys()) targets.add(id);
    for (const r of this.rooms) {
      if (this.nsp.sockets.has(r)) targets.add(r);
      for (const id of ad.rooms.get(r) || []) targets.add(id);
    }
    for (const r of this.exceptRooms) {
      if (this.nsp.sockets.has(r)) targets.delete(r);
      for (const id of ad.rooms.get(r) || []) targets.delete(id);
    }
    for (const id of this.exceptIds) targets.delete(id);
    for (const id of targets) {
      const msg = { t: 'emit', s: id, e: String(event), a };
      if (b) msg.b = b;
      sendTo(id, msg);
    }
    return true;
  }
  allSockets() {
    return Promise.resolve(new Set([...this._targets()]));
  }
  fetchSockets() {
    return Promise.resolve([...this._targets()].map((id) => this.nsp.sockets.get(id)).filter(Boolean));
  }
  _targets() {
    const ad = this.nsp.adapter;
    const out = new Set();
    if (!this.rooms.size) for (const id of this.nsp.sockets.keys()) out.add(id);
    for (const r of this.rooms) for (const id of ad.rooms.get(r) || (this.nsp.sockets.has(r) ? [r] : [])) out.add(id);
    for (const r of this.exceptRooms) for (const id of ad.rooms.get(r) || []) out.delete(id);
    for (const id of this.exceptIds) out.delete(id);
    return out;
  }
}

class Namespace extends EventEmitter {
  constructor(name) {
    super();
    this.name = name;
    this.sockets = new Map();
    this.adapter = new Adapter(this);
  }
  to(room) { return new BroadcastOperator(this).to(room); }
  in(room) { return this.to(room); }
  except(room) { return new BroadcastOperator(this).except(room); }
  emit(event, ...args) { return new BroadcastOperator(this).emit(event, ...args); }
  allSockets() { return new BroadcastOperator(this).allSockets(); }
  fetchSockets() { return new BroadcastOperator(this).fetchSockets(); }
  get volatile() { return this; }
  get local() { return this; }
  compress() { return this; }
  timeout() { return this; }
}

function nspOf(name) {
  let n = namespaces.get(name);
  if (!n) namespaces.set(name, (n = new Namespace(name)));
  return n;
}

const emitLocal = EventEmitter.prototype.emit;

class HostSocket extends EventEmitter {
  constructor(id, info, rooms) {
    super();
    this.id = id;
    this.nsp = nspOf(info.nsp);
    this.connected = true;
    this.data = {};
    this._acks = new Map();
    this._ackSeq = 0;
    this._fns = []; // socket.use middlewares
    this._listened = new Set();
    // what Frappe's authentication put on the socket
    this.user = info.user;
    this.user_type = info.user_type ?? undefined;
    this.installed_apps = info.installed_apps || [];
    this.sid = info.sid ?? undefined;
    this.authorization_header = info.authorization_header ?? undefined;
    this.site_name = info.site;
    this._url = info.url;
    const hs = info.handshake || { headers: {}, query: {}, url: '', address: '', issued: Date.now() };
    this.handshake = {
      headers: hs.headers || {},
      query: hs.query || {},
      url: hs.url || '',
      address: hs.address || '',
      time: new Date(hs.issued || Date.now()).toString(),
      issued: hs.issued || Date.now(),
      secure: !!hs.secure,
      xdomain: !!hs.xdomain,
      auth: {},
    };
    this.request = { headers: this.handshake.headers, url: this.handshake.url, method: 'GET' };
    this.conn = { id: this.id, transport: { name: 'websocket' }, writeBuffer: [], readyState: 'open' };
    this.client = { conn: this.conn };
    this.nsp.sockets.set(id, this);
    this.nsp.adapter.add(id, id);
    for (const r of rooms) this.nsp.adapter.add(id, r);
  }
  get rooms() {
    return this.nsp.adapter.sids.get(this.id) || new Set();
  }
  get disconnected() { return !this.connected; }
  get broadcast() { return new BroadcastOperator(this.nsp, new Set(), new Set(), new Set([this.id])); }
  get volatile() { return this; }
  get local() { return this; }
  compress() { return this; }
  timeout() { return this; }

  // -- listening: realtimed forwards only the events someone listens to.
  // Each listener remembers the app that added it (for error reports).
  _listen(event, fn) {
    const c = ctx.getStore();
    if (c && typeof fn === 'function') listenerApp.set(fn, c.app);
    if (typeof event !== 'string' || RESERVED.has(event) || event === 'error' || this._listened.has(event)) return;
    this._listened.add(event);
    if (this.connected) this.wire.send({ t: 'listen', s: this.id, add: [event] });
  }
  on(event, fn) { this._listen(event, fn); return super.on(event, fn); }
  addListener(event, fn) { return this.on(event, fn); }
  once(event, fn) { this._listen(event, fn); return super.once(event, fn); }
  prependListener(event, fn) { this._listen(event, fn); return super.prependListener(event, fn); }
  prependOnceListener(event, fn) { this._listen(event, fn); return super.prependOnceListener(event, fn); }
  use(fn) {
    const c = ctx.getStore();
    if (c) listenerApp.set(fn, c.app);
    this._fns.push(fn);
    return this;
  }

  // -- emitting to this client
  emit(event, ...args) {
    if (RESERVED.has(event)) throw new Error(`"${event}" is a reserved event name`);
    if (!this.connected) return true;
    let ack;
    if (typeof args[args.length - 1] === 'function') {
      ack = args.pop();
      const c = ctx.getStore();
      if (c) listenerApp.set(ack, c.app);
    }
    const { a, b } = deconstruct(args);
    const msg = { t: 'emit', s: this.id, e: String(event), a };
    if (b) msg.b = b;
    if (ack) {
      const k = ++this._ackSeq;
      this._acks.set(k, ack);
      msg.k = k;
    }
    this.wire.send(msg);
    return true;
  }
  send(...args) { return this.emit('message', ...args); }
  write(...args) { return this.emit('message', ...args); }
  to(room) { return new BroadcastOperator(this.nsp, new Set(), new Set(), new Set([this.id])).to(room); }
  in(room) { return this.to(room); }
  except(room) { return new BroadcastOperator(this.nsp, new Set(), new Set(), new Set([this.id])).except(room); }

  // -- rooms (realtimed's room index is the truth; this is its mirror)
  join(rooms) {
    if (!this.connected) return;
    const list = (Array.isArray(rooms) ? rooms : [rooms]).map(String);
    const fresh = list.filter((r) => !this.rooms.has(r));
    for (const r of fresh) this.nsp.adapter.add(this.id, r);
    const real = fresh.filter((r) => r !== this.id);
    if (real.length) this.wire.send({ t: 'join', s: this.id, rooms: real });
  }
  leave(room) {
    if (!this.connected) return;
    room = String(room);
    if (!this.rooms.has(room)) return;
    this.nsp.adapter.del(this.id, room);
    if (room !== this.id) this.wire.send({ t: 'leave', s: this.id, r: room });
  }
  disconnect(close = false) {
    if (!this.connected) return this;
    this.wire.send({ t: 'disconnect', s: this.id, close: !!close });
    return this;
  }

  // -- Frappe's additions
  has_permission(doctype, name) {
    // Frappe's: resolves when allowed; on a refusal it never settles
    return new Promise((resolve) => {
      if (!this.connected) return;
      const id = ++reqSeq;
      waiting.set(id, { kind: 'perm', resolve });
      this.wire.send({ t: 'perm', id, s: this.id, dt: String(doctype ?? ''), dn: name ? String(name) : null });
    });
  }
  async frappe_request(p, args = {}, opts = {}) {
    const q = new URLSearchParams(args).toString();
    const url = this._url + p + (q ? `?${q}` : '');
    const secret = await readSecret();
    const headers = new Headers(opts.headers || {});
    if (this.authorization_header) headers.set('Authorization', this.authorization_header);
    else headers.set('Cookie', `sid=${this.sid ?? ''}`);
    headers.set('X-Frappe-Site-Name', this.site_name);
    if (secret != null) headers.set('X-Frappe-Socket-Secret', secret);
    return fetch(url, { ...opts, headers });
  }

  // -- from realtimed
  _event(event, args, k) {
    if (k !== undefined && k !== null) {
      let done = false;
      args.push((...res) => {
        if (done || !this.connected) return;
        done = true;
        const { a, b } = deconstruct(res);
        const msg = { t: 'ack', s: this.id, k, a };
        if (b) msg.b = b;
        this.wire.send(msg);
      });
    }
    // socket.use middlewares first, then the listeners (socket.io's order)
    const packet = [event, ...args];
    let i = 0;
    const next = (err) => {
      if (!this.connected) return;
      if (err) {
        this._dispatch('error', [err]);
        return;
      }
      if (i < this._fns.length) {
        const fn = this._fns[i++];
        guarded(listenerApp.get(fn), event, () => fn(packet, next));
        return;
      }
      this._dispatch(packet[0], packet.slice(1));
    };
    next();
  }
  _dispatch(event, args) {
    for (const fn of this.rawListeners(event)) guarded(listenerApp.get(fn.listener || fn), event, () => fn.apply(this, args));
  }
  _gone(reason) {
    // socket.io: 'disconnecting' while still in its rooms, then 'disconnect'
    this._dispatch('disconnecting', [reason]);
    this.connected = false;
    this.nsp.adapter.delAll(this.id);
    this.nsp.sockets.delete(this.id);
    if (!this.nsp.sockets.size) namespaces.delete(this.nsp.name);
    this._acks.clear();
    this._dispatch('disconnect', [reason]);
    this.removeAllListeners();
  }
}

// which app added a listener (or asked for an ack)
const listenerApp = new WeakMap();

// Runs a handler of app for event: a throw or a rejection is logged with
// both, and nothing else happens (Frappe's Node server exits on them).
function guarded(app, event, call) {
  app = app || (ctx.getStore() || {}).app || 'unknown';
  ctx.run({ app, event }, () => {
    try {
      const r = call();
      if (r && typeof r.then === 'function') {
        r.then(undefined, (err) => log('error', `handler of event '${event}' rejected (app ${app}): ${errText(err)}`));
      }
    } catch (err) {
      log('error', `handler of event '${event}' threw (app ${app}): ${errText(err)}`);
    }
  });
}

// ------------------------------------------------------------------ secret
function readSecret() {
  return new Promise((resolve) => {
    const id = ++reqSeq;
    waiting.set(id, { kind: 'secret', resolve });
    send({ t: 'secret', id });
  });
}

// ------------------------------------------------------------------ messages
function handle(msg, wire) {
  switch (msg.t) {
    case 'hello':
      bench = msg.bench || bench;
      hostApps = new Set(msg.apps || []);
      wire.send({ t: 'ready', lang: 'node', pid: process.pid, node: process.version });
      break;
    case 'ping':
      wire.send({ t: 'pong' });
      break;
    case 'connect': {
      if (sockets.has(msg.s)) break;
      const s = new HostSocket(msg.s, msg.info, msg.rooms || []);
      s.wire = wire;
      sockets.set(msg.s, s);
      // each app of the site that has handlers, in installed_apps order
      // (frappe's own are realtimed's, native)
      for (const app of s.installed_apps) {
        if (app === 'frappe' || !hostApps.has(app)) continue;
        const fn = loadApp(app);
        if (!fn) continue;
        ctx.run({ app }, () => {
          try {
            const r = fn(s);
            if (r && typeof r.then === 'function') {
              r.then(undefined, (err) => log('error', `event handlers from ${app} rejected at setup: ${errText(err)}`));
            }
          } catch (err) {
            log('warning', `failed to setup event handlers from ${app}: ${errText(err)}`);
          }
        });
        if (!s.connected) break;
      }
      // realtimed holds the socket's events until now
      wire.send({ t: 'setup', s: s.id });
      break;
    }
    case 'event': {
      const s = sockets.get(msg.s);
      if (!s || !s.connected) break;
      s._event(msg.e, reconstruct(msg.a || [], msg.b), msg.k);
      break;
    }
    case 'room': {
      const s = sockets.get(msg.s);
      if (!s) break;
      if (msg.j) s.nsp.adapter.add(s.id, msg.r);
      else s.nsp.adapter.del(s.id, msg.r);
      break;
    }
    case 'disconnect': {
      const s = sockets.get(msg.s);
      if (!s) break;
      sockets.delete(msg.s);
      s._gone(msg.reason || 'transport close');
      break;
    }
    case 'ack': {
      const s = sockets.get(msg.s);
      const fn = s && s._acks.get(msg.k);
      if (!fn) break;
      s._acks.delete(msg.k);
      if (msg.closed) break; // socket.io never calls it then
      guarded(listenerApp.get(fn), 'ack', () => fn.apply(s, reconstruct(msg.a || [], msg.b)));
      break;
    }
    case 'perm': {
      const w = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (w && msg.ok) w.resolve();
      break;
    }
    case 'secret': {
      const w = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (w) w.resolve(msg.ok ? msg.v : null);
      break;
    }
    default:
      break;
  }
}
