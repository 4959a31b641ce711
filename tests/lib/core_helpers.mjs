// Shared helpers for the core integration tests (test_core_*.mjs): promise
// wrappers around socket.io-client, a binary-aware normaliser for deep
// comparisons, raw HTTP over net, and a small raw WebSocket client that
// writes exact frames (masked or not) and parses the server's frames.
import crypto from 'node:crypto';
import net from 'node:net';
import fs from 'node:fs';
import { io } from 'socket.io-client';

export const T = 10000; // generous default timeout for awaited events (ms)

/** Resolves with the args of the next `ev` on emitter; rejects after ms.
 * The promise has cancel(), which drops the listener and the timer. */
export function once(emitter, ev, ms = T) {
  let cancel;
  const p = new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(ev, h);
      reject(new Error(`timed out after ${ms} ms waiting for '${ev}'`));
    }, ms);
    const h = (...args) => { clearTimeout(t); resolve(args); };
    cancel = () => { clearTimeout(t); emitter.off(ev, h); };
    emitter.once(ev, h);
  });
  p.cancel = cancel;
  return p;
}

/** Resolves like p, or rejects with msg after ms (the timer never keeps
 * the process alive). */
export function within(p, ms = T, msg = `timed out after ${ms} ms`) {
  let t;
  const timeout = new Promise((_, reject) => { t = setTimeout(() => reject(new Error(msg)), ms); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Collects every `ev` on socket into an array (for exactly-once checks). */
export function collect(socket, ev) {
  const got = [];
  socket.on(ev, (...args) => got.push(args));
  return got;
}

/**
 * Opens a socket.io-client socket (no reconnection) and waits for both the
 * `connect` event and the server's `auth` echo (emitted right after the
 * CONNECT reply). Resolves { socket, auth }. Rejects with the connect_error.
 */
export async function connect(url, { nsp = '/', manager, ...opts } = {}) {
  const socket = manager
    ? manager.socket(nsp, { auth: opts.auth })
    : io(url + (nsp === '/' ? '' : nsp), { forceNew: true, reconnection: false, timeout: T, ...opts });
  const authP = once(socket, 'auth');
  authP.catch(() => {});
  if (manager) {
    socket.auth = opts.auth ?? {}; // the manager caches one socket per namespace
    socket.connect();
  }
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`connect to ${nsp} timed out`)), T);
    socket.once('connect', () => { clearTimeout(t); resolve(); });
    socket.once('connect_error', (e) => { clearTimeout(t); authP.cancel(); socket.close(); reject(e); });
  });
  const [auth] = await authP;
  return { socket, auth };
}

/** Emits with an ack and resolves with every ack argument (array). */
export function ack(socket, ev, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(T).emit(ev, ...args, (err, ...res) => (err ? reject(err) : resolve(res)));
  });
}

/** Resolves the reason of the socket's next disconnect (attach it before
 * causing the disconnect). */
export async function disconnected(socket, ms = T) {
  const [reason] = await once(socket, 'disconnect', ms);
  return reason;
}

/** Deep copy in which every Buffer / Uint8Array / ArrayBuffer becomes
 * {bin: "<hex>"}, so binary from either transport compares exactly. */
export function norm(v) {
  if (v instanceof ArrayBuffer) return { bin: Buffer.from(v).toString('hex') };
  if (ArrayBuffer.isView(v)) return { bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}

/** Resident set size of a process in KiB (Linux). */
export function rssKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Number(m[1]) : 0;
}

// ------------------------------------------------------------ raw TCP / HTTP

/** Connects a raw TCP socket to 127.0.0.1:port; resolves once connected. */
export function tcp(port, { allowHalfOpen = false } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves when the peer has closed s (end or close); true if it did
 * within ms, false otherwise. */
export function peerClosed(s, ms = T) {
  return new Promise((resolve) => {
    if (s.destroyed || s.readableEnded) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    const done = () => { clearTimeout(t); resolve(true); };
    s.once('end', done);
    s.once('close', done);
    s.once('error', () => {});
  });
}

/** Parses one HTTP/1.1 response at the start of buf; null if incomplete.
 * Returns { status, headers (lower-cased, repeated joined by ", "), body,
 * rawHead, length (bytes consumed) }. */
export function parseResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const rawHead = buf.subarray(0, end).toString('latin1');
  const [statusLine, ...lines] = rawHead.split('\r\n');
  const status = Number(statusLine.split(' ')[1]);
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
  }
  let len = 0;
  if (headers['content-length'] !== undefined) len = Number(headers['content-length']);
  if (buf.length < end + 4 + len) return null;
  return {
    status, statusLine, headers, rawHead,
    body: buf.subarray(end + 4, end + 4 + len),
    length: end + 4 + len,
  };
}

/**
 * Writes raw bytes on a fresh connection, then reads until the peer closes
 * (or `ms` passes). Resolves { responses: [...parsed], closed, data }.
 */
export async function rawExchange(port, bytes, { ms = T, chunks } = {}) {
  const s = await tcp(port);
  let data = Buffer.alloc(0);
  s.on('data', (d) => { data = Buffer.concat([data, d]); });
  const closed = peerClosed(s, ms);
  for (const c of chunks || [bytes]) s.write(c);
  const wasClosed = await closed;
  s.destroy();
  const responses = [];
  let rest = data;
  for (let r; (r = parseResponse(rest)); rest = rest.subarray(r.length)) responses.push(r);
  return { responses, closed: wasClosed, data };
}

/** Sends one request on a fresh connection and resolves the first complete
 * response (the connection is left open unless closeAfter). */
export async function rawRequest(port, bytes, { ms = T } = {}) {
  const s = await tcp(port);
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const t = setTimeout(() => { s.destroy(); reject(new Error('no complete response')); }, ms);
    s.on('data', (d) => {
      data = Buffer.concat([data, d]);
      const r = parseResponse(data);
      if (r) { clearTimeout(t); resolve({ ...r, socket: s }); }
    });
    s.on('error', () => {});
    s.write(bytes);
  });
}

/**
 * Keeps writing chunk every few ms for `ms` on a socket opened with
 * allowHalfOpen (so writes continue after the peer's FIN). Resolves the
 * error code if the peer reset the connection meanwhile (its socket was
 * closed with our data arriving), or null. This is how a client still
 * uploading the rest of a refused request/message sees a server that closes
 * instead of draining (no lingering close).
 */
export function writesUntilReset(s, chunk, ms = 300) {
  return new Promise((resolve) => {
    let err = null;
    const onErr = (e) => { err = e.code || e.message; };
    s.on('error', onErr);
    const iv = setInterval(() => {
      if (err || s.destroyed) return;
      s.write(chunk, (e) => { if (e && !err) err = e.code || e.message; });
    }, 5);
    setTimeout(() => { clearInterval(iv); s.off('error', onErr); resolve(err); }, ms);
  });
}

// ------------------------------------------------------------ raw WebSocket

export const OP = { CONT: 0, TEXT: 1, BIN: 2, CLOSE: 8, PING: 9, PONG: 10 };

/** Encodes one client frame. mask: true (random key), false, or a 4-byte Buffer. */
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, lengthOverride } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = lengthOverride ?? data.length;
  const key = mask === true ? crypto.randomBytes(4) : mask || null;
  let head;
  if (len < 126) {
    head = Buffer.alloc(2);
    head[1] = len;
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!key) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const body = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

/**
 * Raw WebSocket client: performs the upgrade with a real key, checks
 * Sec-WebSocket-Accept, then parses server frames. API:
 *   ws.next(ms)          -> next frame {opcode, fin, payload(Buffer), text}
 *   ws.nextMessage(ms)   -> next data frame, answering nothing automatically
 *   ws.send(op, data, o) -> writes frame(op, data, o)
 *   ws.text(str)         -> masked text frame
 *   ws.closed            -> promise, resolves when TCP is closed
 *   ws.closeFrame        -> the close frame received (code, reason), if any
 */
export async function wsConnect(port, path, { head = {}, pause = false, allowHalfOpen = false } = {}) {
  const s = await tcp(port, { allowHalfOpen });
  const key = crypto.randomBytes(16).toString('base64');
  const extra = Object.entries(head).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
  let buf = Buffer.alloc(0);
  const frames = [];
  const waiters = [];
  let res;
  let isClosed = false;
  const closed = new Promise((resolve) => {
    s.on('close', () => {
      isClosed = true;
      resolve();
      for (const w of waiters.splice(0)) w.reject(new Error('connection closed'));
    });
  });
  s.on('error', () => {});
  const ws = {
    socket: s, frames, closed, closeFrame: null, bytesReceived: 0,
    get isClosed() { return isClosed; },
    send(op, data, o) { s.write(frame(op, data, o)); },
    text(str) { s.write(frame(OP.TEXT, Buffer.from(str))); },
    binary(b) { s.write(frame(OP.BIN, b)); },
    next(ms = T) {
      if (frames.length) return Promise.resolve(frames.shift());
      if (isClosed) return Promise.reject(new Error('connection closed'));
      return new Promise((resolve, reject) => {
        const w = { resolve, reject };
        w.t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no frame within ${ms} ms`));
        }, ms);
        waiters.push(w);
      });
    },
    /** Next text frame, skipping Engine.IO pings (answering them with a pong). */
    async nextText(ms = T) {
      for (;;) {
        const f = await ws.next(ms);
        if (f.opcode === OP.TEXT && f.text === '2') { ws.text('3'); continue; }
        return f;
      }
    },
    destroy() { s.destroy(); },
  };
  function push(f) {
    const w = waiters.shift();
    if (w) { clearTimeout(w.t); w.resolve(f); } else frames.push(f);
  }
  function parse() {
    for (;;) {
      if (buf.length < 2) return;
      const b0 = buf[0], b1 = buf[1];
      let len = b1 & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = (b1 & 0x80) !== 0;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      buf = buf.subarray(off + len);
      const f = { opcode: b0 & 0x0f, fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, masked, payload };
      if (f.opcode === OP.TEXT) f.text = payload.toString('utf8');
      if (f.opcode === OP.CLOSE) {
        f.code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        f.reason = payload.subarray(2).toString('utf8');
        ws.closeFrame = f;
      }
      push(f);
    }
  }
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no 101 answer')), T);
    const onData = (d) => {
      ws.bytesReceived += d.length;
      if (res) { buf = Buffer.concat([buf, d]); parse(); return; }
      buf = Buffer.concat([buf, d]);
      const r = parseResponse(Buffer.concat([buf.subarray(0, buf.indexOf('\r\n\r\n') + 4)]));
      if (!r) return;
      res = r;
      buf = buf.subarray(r.length);
      clearTimeout(t);
      resolve();
      parse();
    };
    s.on('data', onData);
    s.once('close', () => { clearTimeout(t); if (!res) reject(new Error('closed before 101')); });
  });
  ws.response = res;
  if (res.status === 101) {
    const want = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    if (res.headers['sec-websocket-accept'] !== want) throw new Error('bad Sec-WebSocket-Accept');
  }
  if (pause) s.pause();
  return ws;
}

/** Raw Engine.IO-over-WebSocket session on /socket.io/: resolves after the
 * open packet with { ws, sid, handshake }. */
export async function eioWs(port, path = '/socket.io/', opts = {}) {
  const ws = await wsConnect(port, `${path}?EIO=4&transport=websocket`, opts);
  if (ws.response.status !== 101) throw new Error(`upgrade refused: ${ws.response.status}`);
  const open = await ws.next();
  if (open.opcode !== OP.TEXT || open.text[0] !== '0') throw new Error(`bad open packet ${open.text}`);
  const handshake = JSON.parse(open.text.slice(1));
  return { ws, sid: handshake.sid, handshake };
}

/** eioWs + Socket.IO CONNECT to "/": resolves { ws, sid } after 40{sid} and 42["auth",...]. */
export async function sioWs(port) {
  const { ws } = await eioWs(port);
  ws.text('40');
  const c = await ws.nextText();
  if (!c.text.startsWith('40{"sid":"')) throw new Error(`bad CONNECT reply ${c.text}`);
  const a = await ws.nextText();
  if (a.text !== '42["auth",{}]') throw new Error(`bad auth echo ${a.text}`);
  return { ws };
}
