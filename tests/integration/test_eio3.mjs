// Engine.IO v3 / Socket.IO protocol v4 clients (socket.io-client 2.x) behind
// --allow-eio3, and socket.io-client 3.x (EIO4) with and without the flag.
//  - without the flag: EIO=3 -> 400 code 5; a 2.x client cannot connect;
//  - raw polling in v3 framing: the handshake payload `<len>:0{...}` (no
//    maxPayload), the automatic `40` for "/", lengths in UTF-16 code units
//    both ways (é€😀, several packets in one POST), the reversed heartbeat
//    (client pings, the server answers and never pings; no ping -> closed
//    after pingInterval + pingTimeout), binary as `b4<base64>` with b64=1
//    and as the XHR2 octet-stream payload without it, custom namespaces
//    (`0/nsp?query,` -> `40/nsp,` without sid), CONNECT_ERROR as
//    `err.data || err.message`, POST `1` closes, a v3 sid refused with EIO=4
//    and a v4 sid with EIO=3;
//  - raw WebSocket in v3: open packet, `40`, ping/pong, binary frames with
//    the leading 0x04, and the polling -> WebSocket upgrade;
//  - socket.io-client 2.x over polling, WebSocket and polling+upgrade:
//    connect, events, acks, binary, a second namespace and its socket id
//    "/custom#<engine id>", refused namespaces (the socket's 'error'),
//    surviving several ping intervals;
//  - socket.io-client 3.x against both servers;
//  - Frappe guest mode: one broadcast of 3 kB reaching a 4.x client and 2.x
//    clients (polling and WebSocket) in the same room exactly once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { io as ioV4 } from 'socket.io-client';
import { freePort, startRealtimed, startRedis, tempDir, sleep, waitFor } from '../lib/procs.mjs';
import { once, norm, wsConnect, OP } from '../lib/core_helpers.mjs';

const require = createRequire(import.meta.url);
const ioV2 = require('socket.io-client-v2');
const ioV3 = require('socket.io-client-v3');

const W = 5000; // how long any single expected answer may take (ms)

// ------------------------------------------------------------------ servers

const started = [];
const clients = [];
after(async () => {
  for (const c of clients) { try { c.close(); c.io?.close?.(); } catch { /* closed */ } }
  for (const s of started) if (s.isRunning()) await s.stop();
});

const servers = {};
/** A --conformance server, started once per set of flags. */
function conformance(name, args) {
  servers[name] ??= (async () => {
    const port = await freePort();
    const rt = await startRealtimed(['--conformance', '--port', String(port), '--log-level', 'warning', ...args]);
    started.push(rt);
    return { rt, port, url: `http://127.0.0.1:${port}` };
  })();
  return servers[name];
}
const LONG = ['--ping-interval', '20000', '--ping-timeout', '20000'];
const plain = () => conformance('plain', LONG); // no --allow-eio3
const eio3 = () => conformance('eio3', ['--allow-eio3', ...LONG]);
const eio3Fast = () => conformance('eio3-fast', ['--allow-eio3', '--ping-interval', '300', '--ping-timeout', '200']);

// ------------------------------------------------------------------ v3 framing

/** Engine.IO v3 text payload: `<len>:<packet>`, len in UTF-16 code units. */
const enc3 = (...pkts) => pkts.map((p) => `${p.length}:${p}`).join('');

/** Decodes a v3 text payload strictly (a wrong length prefix throws or
 * yields packets that the assertions then reject). */
function dec3(s) {
  const out = [];
  let i = 0;
  while (i < s.length) {
    const c = s.indexOf(':', i);
    const digits = c < 0 ? '' : s.slice(i, c);
    if (!/^\d+$/.test(digits)) throw new Error(`not a v3 payload at ${i}: ${JSON.stringify(s)}`);
    const n = Number(digits);
    const p = s.slice(c + 1, c + 1 + n);
    if (p.length !== n) throw new Error(`v3 payload: length ${n} runs past the end: ${JSON.stringify(s)}`);
    out.push(p);
    i = c + 1 + n;
  }
  return out;
}

/** XHR2 binary payload, per packet: 0 (string) or 1 (binary), the length one
 * byte per decimal digit, 0xFF, the data (UTF-8 for strings; a binary
 * packet's data starts with its type byte). */
function encXhr2(pkts) {
  return Buffer.concat(pkts.map((p) => {
    const data = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
    const digits = [...String(data.length)].map(Number);
    return Buffer.concat([Buffer.from([typeof p === 'string' ? 0 : 1, ...digits, 0xff]), data]);
  }));
}
function decXhr2(buf) {
  const out = [];
  let i = 0;
  while (i < buf.length) {
    const kind = buf[i++];
    if (kind !== 0 && kind !== 1) throw new Error(`XHR2 payload: bad kind ${kind} at ${i - 1}: ${buf.toString('hex')}`);
    let n = 0;
    for (let d = 0; buf[i] !== 0xff; d++) {
      if (i >= buf.length || buf[i] > 9 || d > 10) throw new Error(`XHR2 payload: bad length at ${i}: ${buf.toString('hex')}`);
      n = n * 10 + buf[i++];
    }
    i++;
    if (i + n > buf.length) throw new Error(`XHR2 payload: length ${n} runs past the end: ${buf.toString('hex')}`);
    const data = Buffer.from(buf.subarray(i, i + n));
    out.push(kind === 0 ? data.toString('utf8') : data);
    i += n;
  }
  return out;
}

const HANDSHAKE_RE = /^0\{"sid":"([^"]+)","upgrades":\["websocket"\],"pingInterval":(\d+),"pingTimeout":(\d+)\}$/;

/**
 * A raw Engine.IO v3 polling session. open3 checks the handshake and
 * resolves { sid, handshake, packets (what came after the open packet),
 * get(), post(), until() }.
 */
async function open3(url, { b64 = false } = {}) {
  const res = await fetch(`${url}/socket.io/?EIO=3&transport=polling${b64 ? '&b64=1' : ''}`);
  const body = await res.text();
  assert.equal(res.status, 200, `handshake: ${res.status} ${body}`);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const pkts = dec3(body);
  const m = pkts[0].match(HANDSHAKE_RE);
  assert.ok(m, `v3 handshake packet: ${JSON.stringify(pkts[0])} (body ${JSON.stringify(body)})`);
  const sid = m[1];
  const q = `${url}/socket.io/?EIO=3&transport=polling&sid=${encodeURIComponent(sid)}`;
  const sess = {
    sid,
    handshake: JSON.parse(pkts[0].slice(1)),
    packets: pkts.slice(1),
    /** One GET: { status, type, raw (Buffer), pkts (strings; Buffers for XHR2 binary) }. */
    async get({ ms = W } = {}) {
      const r = await fetch(q, { signal: AbortSignal.timeout(ms) });
      const raw = Buffer.from(await r.arrayBuffer());
      const type = r.headers.get('content-type') || '';
      let parsed = null;
      if (r.status === 200) parsed = type.startsWith('application/octet-stream') ? decXhr2(raw) : dec3(raw.toString('utf8'));
      return { status: r.status, type, raw, pkts: parsed };
    },
    async post(body, type = 'text/plain;charset=UTF-8') {
      const r = await fetch(q, { method: 'POST', body, headers: { 'content-type': type }, signal: AbortSignal.timeout(W) });
      return { status: r.status, text: await r.text() };
    },
    /** GETs until pred(all packets received so far) is true; resolves them. */
    async until(pred, what = 'expected packets') {
      const deadline = Date.now() + W;
      while (!pred(sess.packets)) {
        if (Date.now() > deadline) throw new Error(`${what}: got ${JSON.stringify(sess.packets)}`);
        const r = await sess.get();
        assert.equal(r.status, 200, `GET: ${r.status} ${r.raw}`);
        sess.packets.push(...r.pkts);
      }
      return sess.packets;
    },
    /** Waits for `40` and the conformance app's auth echo, then forgets all. */
    async connected() {
      await sess.until((p) => p.includes('40') && p.includes('42["auth",{}]'), 'auto-connect of "/"');
      assert.equal(sess.packets.indexOf('40'), 0, `40 comes first: ${JSON.stringify(sess.packets)}`);
      sess.packets = [];
    },
  };
  return sess;
}

const has = (p) => (pkts) => pkts.some((x) => typeof p === 'string' ? x === p : Buffer.isBuffer(x) && x.equals(p));
const errBody = async (res) => ({ status: res.status, body: await res.json() });

// ------------------------------------------------------------------ v2 clients

/** socket.io-client 2.x socket (new manager, no reconnection). */
function v2(url, opts = {}) {
  const s = ioV2(url, { forceNew: true, reconnection: false, timeout: W, ...opts });
  clients.push(s);
  return s;
}
/** Resolves once `socket` connected; rejects on connect_error / error. */
function connected(socket, ms = W) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no connect within ${ms} ms`)), ms);
    socket.once('connect', () => { clearTimeout(t); resolve(); });
    socket.once('connect_error', (e) => { clearTimeout(t); reject(new Error(`connect_error: ${e?.message ?? e}`)); });
    socket.once('error', (e) => { clearTimeout(t); reject(new Error(`error: ${JSON.stringify(e)}`)); });
  });
}
/** emit with an ack callback (2.x and 3.x have no .timeout()). */
function ackOf(socket, ev, ...args) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ack for ${ev}`)), W);
    socket.emit(ev, ...args, (...res) => { clearTimeout(t); resolve(res); });
  });
}
async function echo(socket, ...args) {
  const back = once(socket, 'message-back', W);
  socket.emit('message', ...args);
  return (await back);
}

// ------------------------------------------------------------------ a. no flag

test('without --allow-eio3: EIO=3 is 400 code 5, socket.io-client 2.x cannot connect', async () => {
  const { url } = await plain();
  for (const t of ['polling', 'websocket']) {
    const r = await fetch(`${url}/socket.io/?EIO=3&transport=${t}`);
    assert.deepEqual(await errBody(r), { status: 400, body: { code: 5, message: 'Unsupported protocol version' } }, t);
  }
  for (const transports of [['polling'], ['websocket'], undefined]) {
    const s = v2(url, transports ? { transports } : {});
    let didConnect = false;
    s.on('connect', () => { didConnect = true; });
    const err = await Promise.race([
      once(s, 'connect_error', W).then(() => 'connect_error'),
      sleep(W).then(() => 'nothing'),
    ]);
    assert.equal(didConnect, false, `${transports}: connected`);
    assert.equal(err, 'connect_error', `${transports}`);
    s.close();
  }
});

// ------------------------------------------------------------------ b. raw polling

test('EIO3 polling handshake: v3 payload without maxPayload, then 40 for "/" and the auth echo', async () => {
  const { url } = await eio3();
  const s = await open3(url);
  assert.deepEqual(Object.keys(s.handshake), ['sid', 'upgrades', 'pingInterval', 'pingTimeout']);
  assert.deepEqual(s.handshake.upgrades, ['websocket']);
  assert.equal(s.handshake.pingInterval, 20000);
  assert.equal(s.handshake.pingTimeout, 20000);
  assert.match(s.sid, /^[A-Za-z0-9_-]+$/);
  // "/" is connected by the server without any POST from the client
  await s.connected();
  // and the raw bytes of a later answer carry the v3 framing
  assert.deepEqual(await s.post(enc3('42["message","x"]')), { status: 200, text: 'ok' });
  const r = await s.get();
  assert.equal(r.raw.toString(), '22:42["message-back","x"]');
  assert.match(r.type, /^text\/plain/);
});

test('EIO3 polling: ping 1:2 gets 1:3; lengths in UTF-16 code units both ways; events and acks', async () => {
  const { url } = await eio3();
  const s = await open3(url);
  await s.connected();
  assert.deepEqual(await s.post('1:2'), { status: 200, text: 'ok' });
  let r = await s.get();
  assert.equal(r.raw.toString(), '1:3');

  // é (1 unit, 2 bytes), € (1 unit, 3 bytes), 😀 (2 units, 4 bytes): three
  // packets in one POST, so a byte-counted length would misalign the rest
  const text = 'é€x😀';
  const m1 = `42["message","${text}"]`;
  const m2 = `421["message-with-ack","${text}",{"n":1}]`;
  const m3 = '42["message",2]';
  assert.equal(enc3(m1), `${m1.length}:${m1}`);
  assert.equal(m1.length, 21);
  assert.deepEqual(await s.post(enc3(m1, m2, m3)), { status: 200, text: 'ok' });
  const want = [`42["message-back","${text}"]`, `431["${text}",{"n":1}]`, '42["message-back",2]'];
  await s.until((p) => p.length >= 3, 'three answers');
  assert.deepEqual(s.packets, want);
  // the exact bytes of one answer: `26:42["message-back","é€x😀"]`
  assert.deepEqual(await s.post(enc3(m1)), { status: 200, text: 'ok' });
  r = await s.get();
  assert.equal(r.raw.toString('utf8'), `${want[0].length}:${want[0]}`);
  assert.equal(want[0].length, 26);
  assert.equal(Buffer.byteLength(want[0]), 31);
});

test('EIO3 polling: custom namespace with a query in the nsp, refused namespaces (err.data || err.message)', async () => {
  const { url } = await eio3();
  const s = await open3(url);
  await s.connected();
  assert.deepEqual(await s.post(enc3('40/custom?foo=bar&x=%C3%A9,')), { status: 200, text: 'ok' });
  await s.until((p) => p.includes('40/custom,'), 'CONNECT reply for /custom');
  // the reply has no sid; the query is the auth object (as in socket.io),
  // which the app echoes
  await s.until((p) => p.length >= 2, 'auth echo on /custom');
  assert.deepEqual(s.packets, ['40/custom,', '42/custom,["auth",{"foo":"bar","x":"é"}]']);
  s.packets = [];
  assert.deepEqual(await s.post(enc3('42/custom,["message","é"]', '42["message","root"]')), { status: 200, text: 'ok' });
  await s.until((p) => p.length >= 2, 'echoes on /custom and /');
  assert.deepEqual(s.packets, ['42/custom,["message-back","é"]', '42["message-back","root"]']);
  s.packets = [];
  // unknown namespace: the message string; /private: its data
  assert.deepEqual(await s.post(enc3('40/random,')), { status: 200, text: 'ok' });
  await s.until((p) => p.length >= 1, 'CONNECT_ERROR for /random');
  assert.deepEqual(s.packets, ['44/random,"Invalid namespace"']);
  s.packets = [];
  assert.deepEqual(await s.post(enc3('40/private,')), { status: 200, text: 'ok' });
  await s.until((p) => p.length >= 1, 'CONNECT_ERROR for /private');
  assert.deepEqual(s.packets, ['44/private,{"reason":"bad token"}']);
  s.packets = [];
  assert.deepEqual(await s.post(enc3('40/private?token=secret,')), { status: 200, text: 'ok' });
  await s.until((p) => p.length >= 2, 'CONNECT reply for /private');
  assert.deepEqual(s.packets, ['40/private,', '42/private,["auth",{"token":"secret"}]']);
  s.packets = [];
  // the session and "/" are still fine
  assert.deepEqual(await s.post(enc3('42["message",1]')), { status: 200, text: 'ok' });
  assert.deepEqual(await s.until((p) => p.length >= 1), ['42["message-back",1]']);
});

test('EIO3 polling binary with b64=1: b4<base64> both ways', async () => {
  const { url } = await eio3();
  const s = await open3(url, { b64: true });
  await s.connected();
  const bin = Buffer.from([0, 1, 2, 0xfe, 0xff]);
  const b64 = `b4${bin.toString('base64')}`;
  assert.deepEqual(await s.post(enc3('451-["message",{"_placeholder":true,"num":0},"é€"]', b64)),
    { status: 200, text: 'ok' });
  await s.until((p) => p.length >= 2, 'binary echo');
  assert.deepEqual(s.packets, ['451-["message-back",{"_placeholder":true,"num":0},"é€"]', b64]);
  s.packets = [];
  // a binary ack: BINARY_ACK with the same id
  assert.deepEqual(await s.post(enc3('451-17["message-with-ack",{"_placeholder":true,"num":0}]', b64)),
    { status: 200, text: 'ok' });
  await s.until((p) => p.length >= 2, 'binary ack');
  assert.deepEqual(s.packets, ['461-17[{"_placeholder":true,"num":0}]', b64]);
});

// Binary to a session opened without b64=1 (what a browser's 2.x client
// does: it has XHR2), sent by the client as the XHR2 octet-stream payload.
const XHR2_HEAD = '451-["message",{"_placeholder":true,"num":0},"é€😀"]';
const XHR2_BACK = '451-["message-back",{"_placeholder":true,"num":0},"é€😀"]';
const XHR2_BIN = Buffer.from([4, 0, 1, 2, 0xfe, 0xff]); // type byte 4, then the data
async function xhr2Echo(url) {
  const s = await open3(url);
  await s.connected();
  const body = encXhr2([XHR2_HEAD, XHR2_BIN, '2']);
  // the exact layout: 0, the UTF-8 byte count's digits (57), 0xFF, ...
  assert.equal(Buffer.byteLength(XHR2_HEAD), 57);
  assert.equal(body.subarray(0, 4).toString('hex'), '000507ff');
  assert.deepEqual(await s.post(body, 'application/octet-stream'), { status: 200, text: 'ok' });
  const r = await s.get();
  assert.equal(r.status, 200);
  return { s, r };
}

test('EIO3 polling binary without b64: an XHR2 octet-stream POST is decoded', async () => {
  const { url } = await eio3();
  const { s, r } = await xhr2Echo(url);
  // the answer, in either form a 2.x client decodes: the XHR2 payload (as
  // the reference) or a v3 text payload with b4<base64>
  if (/^application\/octet-stream/.test(r.type)) {
    assert.equal(r.raw.toString('hex'), encXhr2([XHR2_BACK, XHR2_BIN, '3']).toString('hex'));
  } else {
    assert.match(r.type, /^text\/plain/);
    assert.equal(r.raw.toString('utf8'), enc3(XHR2_BACK, `b4${XHR2_BIN.subarray(1).toString('base64')}`, '3'));
  }
  // without binary the answer is text
  assert.deepEqual(await s.post(enc3('42["message","é"]')), { status: 200, text: 'ok' });
  const t = await s.get();
  assert.match(t.type, /^text\/plain/);
  assert.equal(t.raw.toString(), '22:42["message-back","é"]');
});

test('EIO3 polling binary without b64: the answer is the XHR2 octet-stream payload, as the reference',
  async () => {
    const { url } = await eio3();
    const { r } = await xhr2Echo(url);
    assert.match(r.type, /^application\/octet-stream/, `raw answer: ${JSON.stringify(r.raw.toString())}`);
    assert.equal(r.raw.toString('hex'), encXhr2([XHR2_BACK, XHR2_BIN, '3']).toString('hex'));
  });

test('EIO3 polling: POST 1:1 closes the session; v3 and v4 sessions refuse each other\'s EIO', async () => {
  const { url } = await eio3();
  const s = await open3(url);
  await s.connected();
  assert.deepEqual(await s.post('1:1'), { status: 200, text: 'ok' });
  const gone = await fetch(`${url}/socket.io/?EIO=3&transport=polling&sid=${s.sid}`);
  assert.deepEqual(await errBody(gone), { status: 400, body: { code: 1, message: 'Session ID unknown' } });

  const bad = { status: 400, body: { code: 3, message: 'Bad request' } };
  const v3s = await open3(url);
  await v3s.connected();
  const v3q = `${url}/socket.io/?EIO=4&transport=polling&sid=${v3s.sid}`;
  assert.deepEqual(await errBody(await fetch(v3q)), bad, 'v3 sid, EIO=4 GET');
  const v3s2 = await open3(url);
  assert.deepEqual(await errBody(await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${v3s2.sid}`,
    { method: 'POST', body: '40' })), bad, 'v3 sid, EIO=4 POST');

  const h4 = await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).text();
  assert.equal(h4[0], '0', h4);
  const hs4 = JSON.parse(h4.slice(1));
  assert.equal(hs4.maxPayload, 1000000, 'a v4 handshake still has maxPayload');
  const v4q = `${url}/socket.io/?EIO=3&transport=polling&sid=${hs4.sid}`;
  assert.deepEqual(await errBody(await fetch(v4q)), bad, 'v4 sid, EIO=3 GET');
  const h4b = JSON.parse((await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).text()).slice(1));
  assert.deepEqual(await errBody(await fetch(`${url}/socket.io/?EIO=3&transport=polling&sid=${h4b.sid}`,
    { method: 'POST', body: '2:40' })), bad, 'v4 sid, EIO=3 POST');
});

test('EIO3 heartbeat: the client pings and the server answers, never pings; silence closes after interval + timeout', async () => {
  const { url } = await eio3Fast();
  const s = await open3(url);
  assert.equal(s.handshake.pingInterval, 300);
  assert.equal(s.handshake.pingTimeout, 200);
  await s.connected();
  // 1.2 s (4 intervals) of client pings every 150 ms: each gets its pong,
  // and nothing else arrives (no server ping)
  const t0 = Date.now();
  let pings = 0;
  while (Date.now() - t0 < 1200) {
    assert.deepEqual(await s.post('1:2'), { status: 200, text: 'ok' });
    pings++;
    await s.until((p) => p.length >= pings, `pong ${pings}`);
    await sleep(150);
  }
  assert.ok(pings >= 6);
  assert.deepEqual(s.packets, Array(pings).fill('3'));
  // then silence, with a GET parked: the server closes the session by
  // pingInterval + pingTimeout (500 ms); the parked GET gets `1:1`
  const t1 = Date.now();
  const r = await s.get({ ms: 3000 });
  const waited = Date.now() - t1;
  assert.equal(r.status, 200);
  assert.equal(r.raw.toString(), '1:1', `parked GET after ${waited} ms`);
  assert.ok(waited >= 300 && waited < 1500, `closed after ${waited} ms of silence`);
  const gone = await fetch(`${url}/socket.io/?EIO=3&transport=polling&sid=${s.sid}`);
  assert.equal(gone.status, 400);
});

// ------------------------------------------------------------------ b. raw WebSocket

test('EIO3 WebSocket: open packet, 40, ping/pong, text and binary frames with the 0x04 type byte', async () => {
  const { port } = await eio3();
  const ws = await wsConnect(port, '/socket.io/?EIO=3&transport=websocket');
  try {
    assert.equal(ws.response.status, 101);
    const open = await ws.next(W);
    assert.equal(open.opcode, OP.TEXT);
    assert.match(open.text, /^0\{"sid":"[^"]+","upgrades":\[\],"pingInterval":20000,"pingTimeout":20000\}$/);
    assert.equal((await ws.next(W)).text, '40');
    assert.equal((await ws.next(W)).text, '42["auth",{}]');
    ws.text('2');
    assert.equal((await ws.next(W)).text, '3');
    ws.text('42["message","é€😀"]');
    assert.equal((await ws.next(W)).text, '42["message-back","é€😀"]');
    ws.text('451-["message",{"_placeholder":true,"num":0}]');
    ws.binary(Buffer.from([4, 1, 2, 3]));
    const h = await ws.next(W);
    assert.equal(h.text, '451-["message-back",{"_placeholder":true,"num":0}]');
    const b = await ws.next(W);
    assert.equal(b.opcode, OP.BIN);
    assert.equal(b.payload.toString('hex'), '04010203');
    ws.text('40/custom,');
    assert.equal((await ws.next(W)).text, '40/custom,');
    assert.equal((await ws.next(W)).text, '42/custom,["auth",{}]');
  } finally {
    ws.destroy();
  }
});

test('EIO3 upgrade: polling, then 2probe/3probe and 5 on a WebSocket with the sid', async () => {
  const { port, url } = await eio3();
  const s = await open3(url);
  await s.connected();
  const ws = await wsConnect(port, `/socket.io/?EIO=3&transport=websocket&sid=${s.sid}`);
  try {
    assert.equal(ws.response.status, 101);
    ws.text('2probe');
    assert.equal((await ws.next(W)).text, '3probe');
    // a GET during the upgrade is answered with a noop
    const parked = s.get();
    ws.text('5');
    const r = await parked;
    assert.equal(r.status, 200);
    assert.equal(r.raw.toString(), '1:6');
    ws.text('42["message","up"]');
    assert.equal((await ws.next(W)).text, '42["message-back","up"]');
  } finally {
    ws.destroy();
  }
});

// ------------------------------------------------------------------ c. socket.io-client 2.x

for (const [name, transports] of [['polling', ['polling']], ['websocket', ['websocket']], ['polling + upgrade', undefined]]) {
  test(`socket.io-client 2.x (${name}): connect, events, acks, binary, /custom, refused namespaces`, async () => {
    const { url } = await eio3();
    const opts = transports ? { transports } : {};
    const s = v2(url, opts);
    const authP = once(s, 'auth', W);
    await connected(s);
    assert.deepEqual(await authP, [{}]);
    const engine = s.io.engine;
    assert.equal(s.id, engine.id);
    if (!transports) {
      await waitFor(() => engine.transport.name === 'websocket', W);
    } else {
      assert.equal(engine.transport.name, transports[0]);
    }
    // events and acks, UTF-8 beyond ASCII
    assert.deepEqual(await echo(s, 'é€😀', { a: [1, null, true] }), ['é€😀', { a: [1, null, true] }]);
    assert.deepEqual(await ackOf(s, 'message-with-ack', 1, '2', { 3: [4] }), [1, '2', { 3: [4] }]);
    // binary, in an event and in an ack
    const bin = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    assert.deepEqual(norm(await echo(s, bin, { nested: Buffer.from('é€') })),
      norm([bin, { nested: Buffer.from('é€') }]));
    assert.deepEqual(norm(await ackOf(s, 'message-with-ack', 'x', bin)), norm(['x', bin]));
    // a big string (over the polling compression threshold)
    const big = 'é€'.repeat(3000);
    assert.deepEqual(await echo(s, big), [big]);

    // a second namespace, with a query, on its own manager
    const c = v2(`${url}/custom`, { ...opts, query: { foo: 'bar' } });
    const cauth = once(c, 'auth', W);
    await connected(c);
    assert.deepEqual(await cauth, [{ foo: 'bar' }]);
    assert.equal(c.id, `/custom#${c.io.engine.id}`);
    assert.deepEqual(await echo(c, 'on custom'), ['on custom']);
    // and on the same manager as "/"
    const c2 = s.io.socket('/custom');
    if (!c2.connected) await connected(c2);
    assert.equal(c2.id, `/custom#${engine.id}`);
    assert.deepEqual(await echo(c2, 'same manager'), ['same manager']);
    assert.deepEqual(await echo(s, 'root still'), ['root still']);

    // refused namespaces: the socket's 'error' event, err.data || err.message
    for (const [nsp, want] of [['/private', { reason: 'bad token' }], ['/random', 'Invalid namespace']]) {
      const p = v2(`${url}${nsp}`, opts);
      let didConnect = false;
      p.on('connect', () => { didConnect = true; });
      const [err] = await once(p, 'error', W);
      assert.deepEqual(err, want, nsp);
      assert.equal(didConnect, false, nsp);
      p.close();
    }
    // the query is the auth object /private checks
    const ok = v2(`${url}/private`, { ...opts, query: { token: 'secret' } });
    await connected(ok);
    assert.equal(ok.id, `/private#${ok.io.engine.id}`);
    assert.deepEqual(await echo(ok, 'in'), ['in']);
    ok.close();
    c.close();
    s.close();
  });
}

test('socket.io-client 2.x survives several ping intervals (pingInterval 300, pingTimeout 200)', async () => {
  const { url } = await eio3Fast();
  await Promise.all([['polling'], ['websocket'], undefined].map(async (transports) => {
    const s = v2(url, transports ? { transports } : {});
    let pongs = 0;
    const reasons = [];
    s.on('pong', () => { pongs++; });
    s.on('disconnect', (r) => reasons.push(r));
    await connected(s);
    await sleep(1300);
    assert.deepEqual(reasons, [], `${transports}: disconnected`);
    assert.ok(pongs >= 2, `${transports}: ${pongs} pongs in 1.3 s`);
    assert.equal(s.connected, true);
    assert.deepEqual(await echo(s, 'alive'), ['alive']);
    s.close();
  }));
});

// ------------------------------------------------------------------ d. socket.io-client 3.x

for (const which of ['plain', 'eio3']) {
  test(`socket.io-client 3.x (EIO4) against a server ${which === 'plain' ? 'without' : 'with'} --allow-eio3`, async () => {
    const { url } = await (which === 'plain' ? plain() : eio3());
    for (const transports of [['polling'], ['websocket'], undefined]) {
      const opts = { forceNew: true, reconnection: false, timeout: W, ...(transports ? { transports } : {}) };
      const s = ioV3(url, opts);
      clients.push(s);
      const authP = once(s, 'auth', W);
      await connected(s);
      assert.deepEqual(await authP, [{}], `${transports}`);
      if (!transports) await waitFor(() => s.io.engine.transport.name === 'websocket', W);
      assert.deepEqual(await echo(s, 'é€😀', 1), ['é€😀', 1]);
      assert.deepEqual(await ackOf(s, 'message-with-ack', { a: 1 }, 'b'), [{ a: 1 }, 'b']);
      const bin = Buffer.from([9, 8, 7]);
      assert.deepEqual(norm(await echo(s, bin)), norm([bin]));
      // another namespace on the same manager: its own server-assigned id
      const c = s.io.socket('/custom');
      c.connect();
      await connected(c);
      assert.equal(typeof c.id, 'string');
      assert.notEqual(c.id, s.id);
      assert.deepEqual(await echo(c, 'custom'), ['custom']);
      // /private: auth payload accepted, refused with message and data otherwise
      const ok = ioV3(`${url}/private`, { ...opts, auth: { token: 'secret' } });
      clients.push(ok);
      await connected(ok);
      ok.close();
      const no = ioV3(`${url}/private`, opts);
      clients.push(no);
      const [err] = await once(no, 'connect_error', W);
      assert.equal(err.message, 'Unauthorized');
      assert.deepEqual(err.data, { reason: 'bad token' });
      no.close();
      c.close();
      s.close();
    }
  });
}

// ------------------------------------------------------------------ e, f. Frappe guest mode

test('Frappe guest mode: a broadcast reaches 4.x and 2.x clients once; 2.x on "/" and a refused site', async () => {
  const redis = await startRedis();
  const port = await freePort();
  const cwd = tempDir();
  fs.mkdirSync(`${cwd}/sites`);
  const rt = await startRealtimed(['--auth-mode', 'guest', '--default-site', 'demo', '--allow-eio3',
    '--redis-queue', redis.url, '--port', String(port), '--log-level', 'warning'], { cwd });
  started.push(rt);
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'events'))[1] >= 1, W);
    const socks = {
      'v4 default': ioV4(`${url}/demo`, { forceNew: true, reconnection: false }),
      'v4 polling': ioV4(`${url}/demo`, { forceNew: true, reconnection: false, transports: ['polling'] }),
      'v2 polling': v2(`${url}/demo`, { transports: ['polling'] }),
      'v2 websocket': v2(`${url}/demo`, { transports: ['websocket'] }),
      'v2 default': v2(`${url}/demo`),
    };
    const got = {};
    for (const [k, s] of Object.entries(socks)) {
      clients.push(s);
      got[k] = [];
      s.on('big', (m) => got[k].push(m));
    }
    await Promise.all(Object.values(socks).map((s) => connected(s)));
    await waitFor(() => socks['v2 default'].io.engine.transport.name === 'websocket', W);
    const text = 'x'.repeat(3000);
    await redis.publish('events', { event: 'big', message: { text }, room: 'website', namespace: 'demo' });
    await waitFor(() => Object.values(got).every((g) => g.length >= 1), W).catch(() => {
      throw new Error(`not everyone got the broadcast: ${JSON.stringify(Object.fromEntries(
        Object.entries(got).map(([k, g]) => [k, g.length])))}`);
    });
    await sleep(300);
    for (const [k, g] of Object.entries(got)) assert.deepEqual(g, [{ text }], k);

    // a 2.x client on "/" (anonymous in Frappe mode) connects
    const root = v2(url, { transports: ['polling'] });
    await connected(root);
    assert.equal(root.id, root.io.engine.id);
    root.close();
    // another site's namespace is refused: 'error' with the message string
    for (const transports of [['polling'], ['websocket']]) {
      const other = v2(`${url}/other`, { transports });
      const [err] = await once(other, 'error', W);
      assert.equal(err, 'Invalid namespace', `${transports}`);
      other.close();
    }
    for (const s of Object.values(socks)) s.close();
  } finally {
    await rt.stop();
    await redis.stop();
  }
});
