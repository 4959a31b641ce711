// Shared helpers for the Frappe-mode integration tests (test_frappe_*.mjs):
// a redis + fake Frappe + realtimed stack on a temp bench, socket.io-client
// wrappers that send the headers nginx/browsers send, event collectors, a raw
// Redis subscriber, and Python-style JSON (frappe.as_json).
import http from 'node:http';
import net from 'node:net';
import { io } from 'socket.io-client';
import {
  startRedis, startFakeFrappe, startRealtimed, makeBench, freePort, waitFor, sleep,
} from './procs.mjs';

export const SITE1 = 'site1.local';
export const SITE2 = 'site2.local';
export const T = 8000; // timeout for awaited events (ms)
export const QUIET = 300; // bounded wait for "nothing arrives" assertions (ms)

/** Users known to the fake web server. */
export const USERS = {
  'alice@x': {
    user_type: 'System User', sids: ['sid-alice'], tokens: ['token k1:s1', 'Bearer b1'],
    doctypes: ['ToDo'],
  },
  'bob@x': { user_type: 'System User', sids: ['sid-bob'], tokens: ['token k2:s2'], doctypes: ['ToDo'] },
  'web@x': { user_type: 'Website User', sids: ['sid-web'], doctypes: ['ToDo'] },
  'noapps@x': { user_type: 'System User', sids: ['sid-noapps'], apps: ['erpnext'], allow_all: true },
};

/**
 * Redis, fake Frappe and realtimed on a fresh bench. Options:
 *   fake: extra fake_frappe config (merged over {users: USERS})
 *   common: extra common_site_config keys; config: config.json
 *   args: realtimed flags (after --webserver-host 127.0.0.1 unless webserverHost is false)
 *   env, sites
 */
export async function startStack({
  fake: fakeConfig = {}, common = {}, config = {}, args = [], env = {}, sites = [SITE1, SITE2],
  webserverHost = true, redis, fake, apps, beforeStart,
} = {}) {
  const ownRedis = !redis;
  const ownFake = !fake;
  [redis, fake] = await Promise.all([redis ?? startRedis(), fake ?? startFakeFrappe()]);
  if (ownFake) await fake.config({ users: USERS, ...fakeConfig });
  const port = await freePort();
  const bench = makeBench({
    common_site_config: { redis_queue: redis.url, webserver_port: fake.port, socketio_port: port, ...common },
    config,
    sites,
    apps,
  });
  if (beforeStart) await beforeStart(bench);
  const rt = await startRealtimed([...(webserverHost ? ['--webserver-host', '127.0.0.1'] : []), ...args],
    { cwd: bench, port, env });
  const sockets = new Set();
  const stack = {
    redis, fake, rt, port, bench, url: `http://127.0.0.1:${port}`, sockets,
    /** A socket.io-client socket for this server (see clientFor). */
    client: (opts) => {
      const s = clientFor(stack, opts);
      sockets.add(s);
      return s;
    },
    /** Closes the clients, SIGTERMs realtimed (returns its {code, signal}), stops owned helpers. */
    async stop() {
      for (const s of sockets) s.close();
      const r = await rt.stop();
      await Promise.all([ownRedis && redis.stop(), ownFake && fake.stop()]);
      return r;
    },
  };
  return stack;
}

/**
 * A socket.io-client socket with the headers bench nginx / a browser send.
 *   cookie ('sid=sid-alice' by default; null: none), authorization,
 *   origin (default http://127.0.0.1:<port>; null: none), xsite (X-Frappe-Site-Name,
 *   default = site; null: none), headers (extra), nsp (default = site), transports.
 */
export function clientFor(stack, {
  site = SITE1, nsp, cookie = 'sid=sid-alice', authorization, origin, xsite, headers = {}, transports,
  url, auth,
} = {}) {
  const h = {};
  if (cookie != null) h.Cookie = cookie;
  if (authorization != null) h.Authorization = authorization;
  if (origin !== null) h.Origin = origin ?? `http://127.0.0.1:${stack.port}`;
  if (xsite !== null) h['X-Frappe-Site-Name'] = xsite ?? site;
  Object.assign(h, headers);
  return io(`${url ?? stack.url}/${nsp ?? site}`, {
    forceNew: true, reconnection: false, timeout: T, extraHeaders: h,
    ...(transports ? { transports } : {}), ...(auth ? { auth } : {}),
  });
}

/** Resolves once s is connected; rejects with the connect_error. */
export function connected(s, ms = T) {
  if (s.connected) return Promise.resolve(s);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { cleanup(); reject(new Error(`no connect within ${ms} ms`)); }, ms);
    const ok = () => { cleanup(); resolve(s); };
    const ko = (e) => { cleanup(); reject(e); };
    const cleanup = () => { clearTimeout(t); s.off('connect', ok); s.off('connect_error', ko); };
    s.on('connect', ok);
    s.on('connect_error', ko);
  });
}

/** Resolves with the connect_error message; rejects if s connects. */
export function connectError(s, ms = T) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { cleanup(); reject(new Error(`no connect_error within ${ms} ms`)); }, ms);
    const ok = () => { cleanup(); s.close(); reject(new Error('connected, but a connect_error was expected')); };
    const ko = (e) => { cleanup(); s.close(); resolve(e.message); };
    const cleanup = () => { clearTimeout(t); s.off('connect', ok); s.off('connect_error', ko); };
    s.on('connect', ok);
    s.on('connect_error', ko);
  });
}

/** Connects a client (stack.client opts) and resolves it once connected. */
export async function connect(stack, opts) {
  return connected(stack.client(opts));
}

/** Resolves with the args of the next `ev` on s; rejects after ms. */
export function once(s, ev, ms = T) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { s.off(ev, h); reject(new Error(`timed out after ${ms} ms waiting for '${ev}'`)); }, ms);
    const h = (...args) => { clearTimeout(t); resolve(args); };
    s.once(ev, h);
  });
}

/** Records every `ev` on s as its args array. */
export function collect(s, ev) {
  const got = [];
  s.on(ev, (...args) => got.push(args));
  return got;
}

/** Every event of s as [name, ...args], in order. */
export function collectAll(s) {
  const got = [];
  s.onAny((...args) => got.push(args));
  return got;
}

/** ping -> pong round trip: everything s emitted before has been handled. */
export async function roundTrip(s) {
  const p = once(s, 'pong');
  s.emit('ping');
  const args = await p;
  return args;
}

/** Publishes the Frappe envelope (object, or a raw string) on `events`. */
export function publish(redis, msg) {
  return redis.publish('events', typeof msg === 'string' ? msg : JSON.stringify(msg));
}

/**
 * Publishes msg repeatedly until got (an array) grows; for joins that happen
 * asynchronously (after a permission callback). Returns got.
 */
export async function publishUntil(redis, msg, got, ms = T) {
  const before = got.length;
  await waitFor(async () => {
    await publish(redis, msg);
    await sleep(40);
    return got.length > before;
  }, ms, 0);
  return got;
}

/** Waits QUIET ms and returns got (to assert that nothing arrived). */
export async function quiet(got, ms = QUIET) {
  await sleep(ms);
  return got;
}

/**
 * The fake's recorded callbacks for endpoint, once at least n are there. The
 * fake records a request just after answering it, so a client can see the
 * effect before the record exists. With exact, waits a little longer and
 * asserts (by returning only then) that no more arrive: the count is exact.
 */
export async function callbacks(fake, endpoint, n = 1, { exact = true, ms = T } = {}) {
  await waitFor(async () => (await fake.requests(endpoint)).length >= n, ms);
  if (exact) await sleep(100);
  return fake.requests(endpoint);
}

/** Python's json.dumps(obj, indent=1, sort_keys=True) (ensure_ascii). */
export function pyJson(obj) {
  const sort = (v) => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])]));
    }
    return v;
  };
  return JSON.stringify(sort(obj), null, 1)
    .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A raw Redis subscriber on channel; message payloads (strings) collect in
 * .messages. Resolves once the SUBSCRIBE is confirmed.
 */
export function redisSubscribe(port, channel) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const messages = [];
    let buf = Buffer.alloc(0);
    let subscribed = false;
    const sub = { messages, close: () => s.destroy() };
    s.once('error', reject);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = parseArray(buf);
        if (!r) break;
        buf = buf.subarray(r.used);
        const [kind, , payload] = r.value;
        if (kind === 'subscribe' && !subscribed) { subscribed = true; resolve(sub); }
        if (kind === 'message') messages.push(payload);
      }
    });
    s.write(`*2\r\n$9\r\nSUBSCRIBE\r\n$${Buffer.byteLength(channel)}\r\n${channel}\r\n`);
  });
}

// RESP array of bulk strings / integers at the start of b, or null if incomplete.
function parseArray(b) {
  let pos = 0;
  const line = () => {
    const e = b.indexOf('\r\n', pos);
    if (e < 0) return null;
    const l = b.toString('latin1', pos, e);
    pos = e + 2;
    return l;
  };
  const head = line();
  if (head === null) return null;
  if (head[0] !== '*') throw new Error(`unexpected RESP reply ${head}`);
  const n = Number(head.slice(1));
  const value = [];
  for (let i = 0; i < n; i++) {
    const h = line();
    if (h === null) return null;
    if (h[0] === ':') { value.push(Number(h.slice(1))); continue; }
    const len = Number(h.slice(1));
    if (b.length < pos + len + 2) return null;
    value.push(b.toString('utf8', pos, pos + len));
    pos += len + 2;
  }
  return { value, used: pos };
}

/** One HTTP request (TCP port or Unix socketPath); resolves {status, headers, body}. */
export function httpRequest({ port, socketPath, method = 'GET', path, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, socketPath, method, path, headers, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.setTimeout(T, () => req.destroy(new Error('HTTP request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Raw Engine.IO polling session (exact wire checks): the handshake GET
 * carries `headers`; send() POSTs packets, recv() long-polls and splits the
 * payload on the record separator. target: {port} or {socketPath}.
 */
export async function rawPolling(target, headers = {}) {
  const path = (extra = '') => `/socket.io/?EIO=4&transport=polling${extra}`;
  const hs = await httpRequest({ ...target, path: path(), headers });
  if (hs.status !== 200 || !hs.body.startsWith('0')) throw new Error(`bad handshake: ${hs.status} ${hs.body}`);
  const handshake = JSON.parse(hs.body.slice(1));
  const { sid } = handshake;
  return {
    sid,
    handshake,
    response: hs,
    async send(text) {
      const r = await httpRequest({ ...target, method: 'POST', path: path(`&sid=${sid}`), body: text,
        headers: { 'content-type': 'text/plain;charset=UTF-8' } });
      return r.body;
    },
    async recv() {
      const r = await httpRequest({ ...target, path: path(`&sid=${sid}`) });
      return r.body.split('\x1e');
    },
  };
}

export { waitFor, sleep, freePort, startRedis, startFakeFrappe, startRealtimed, makeBench };
