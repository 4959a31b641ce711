// What a socket.io 4.8 user expects of the server (issue 12): the client
// bundle at /socket.io/socket.io.js (loaded by headless Chromium, which then
// talks to realtimed over polling with gzip, and WebSocket), IPv6, chunked
// POST bodies, an over-limit POST (413 with CORS, the session closed),
// --cors-origin, OPTIONS without an Origin, --path.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { io } from 'socket.io-client';
import { chromium } from 'playwright-core';
import {
  ROOT, freePort, startRedis, startRealtimed, tempDir, waitFor,
} from '../lib/procs.mjs';
import { rawExchange } from '../lib/core_helpers.mjs';

const started = [];
after(async () => { for (const s of started) if (s.isRunning()) await s.stop(); });

async function conformance(args = []) {
  const port = await freePort();
  const rt = await startRealtimed(['--conformance', '--port', String(port), '--ping-interval', '20000',
    '--ping-timeout', '20000', ...args]);
  started.push(rt);
  return { rt, port, url: `http://127.0.0.1:${port}` };
}

const CLIENT_VERSION = JSON.parse(fs.readFileSync(path.join(ROOT,
  'tests/node_modules/socket.io-client/package.json'), 'utf8')).version;

test('the client bundle: every file, ETag and 304, gzip, 404 for others, off in Frappe mode', async () => {
  const { url } = await conformance();
  for (const f of ['socket.io.js', 'socket.io.min.js', 'socket.io.esm.min.js', 'socket.io.msgpack.min.js',
    'socket.io.js.map', 'socket.io.min.js.map', 'socket.io.esm.min.js.map']) {
    const res = await fetch(`${url}/socket.io/${f}`);
    assert.equal(res.status, 200, f);
    assert.equal(res.headers.get('etag'), `"${CLIENT_VERSION}"`);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=0');
    assert.match(res.headers.get('content-type'), f.endsWith('.map') ? /^application\/json/ : /^application\/javascript/);
    const want = fs.readFileSync(path.join(ROOT, 'tests/node_modules/socket.io-client/dist', f));
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(want), `${f}: the package's bytes`);
  }
  // a query string (cache busting) is fine; a revalidation is a 304
  assert.equal((await fetch(`${url}/socket.io/socket.io.min.js?v=1`)).status, 200);
  for (const inm of [`"${CLIENT_VERSION}"`, `W/"${CLIENT_VERSION}"`]) {
    const r304 = await fetch(`${url}/socket.io/socket.io.min.js`, { headers: { 'If-None-Match': inm } });
    assert.equal(r304.status, 304);
  }
  assert.equal((await fetch(`${url}/socket.io/socket.io.min.js`, { headers: { 'If-None-Match': '"0.0.1"' } })).status, 200);
  // gzip on the wire (raw: fetch would decode it)
  const raw = await rawExchange(Number(new URL(url).port), 'GET /socket.io/socket.io.min.js HTTP/1.1\r\nHost: x\r\n' +
    'Accept-Encoding: gzip, deflate\r\nConnection: close\r\n\r\n');
  assert.equal(raw.responses[0].headers['content-encoding'], 'gzip');
  const plain = fs.readFileSync(path.join(ROOT, 'tests/node_modules/socket.io-client/dist/socket.io.min.js'));
  assert.ok(zlib.gunzipSync(raw.responses[0].body).equals(plain));
  assert.ok(raw.responses[0].body.length < plain.length / 2);
  // not a bundle name: Engine.IO's answer, as in socket.io
  assert.equal((await fetch(`${url}/socket.io/socket.io.esm.js`)).status, 400);

  // Frappe mode: off by default (the desk bundles its own client), on when asked
  const redis = await startRedis();
  try {
    const bench = tempDir();
    fs.mkdirSync(path.join(bench, 'sites'));
    for (const [args, status] of [[[], 400], [['--serve-client', 'on'], 200]]) {
      const port = await freePort();
      const rt = await startRealtimed(['--port', String(port), '--redis-queue', redis.url, ...args], { cwd: bench });
      started.push(rt);
      assert.equal((await fetch(`http://127.0.0.1:${port}/socket.io/socket.io.js`)).status, status, args.join(' '));
      await rt.stop();
    }
  } finally {
    await redis.stop();
  }
});

test('headless Chromium: <script src="/socket.io/socket.io.js"> from realtimed, polling with gzip, then WebSocket', async () => {
  const redis = await startRedis();
  const www = tempDir('realtimed-page-');
  fs.writeFileSync(path.join(www, 'index.html'), `<!doctype html><html><head><meta charset="utf-8">
<script src="/socket.io/socket.io.js"></script></head><body><pre id="log"></pre><script>
  const log = (s) => { document.getElementById('log').textContent += s + '\\n'; };
  window.results = { loaded: typeof io === 'function' && typeof io.Manager === 'function', events: [] };
  const polling = io('/demo', { transports: ['polling'] });
  polling.on('connect', () => { window.results.polling = polling.io.engine.transport.name; });
  polling.on('big', (m) => window.results.events.push(['polling', m.text.length]));
  const ws = io('/demo', { forceNew: true });
  window.wsTransport = () => ws.connected && ws.io.engine && ws.io.engine.transport.name;
  ws.on('big', (m) => window.results.events.push(['ws', m.text.length]));
</script></body></html>`);
  const port = await freePort();
  const cwd = tempDir();
  const rt = await startRealtimed(['--auth-mode', 'guest', '--default-site', 'demo', '--static-dir', www,
    '--serve-client', 'on', '--redis-queue', redis.url, '--port', String(port)], { cwd });
  started.push(rt);
  const context = await chromium.launchPersistentContext(tempDir('realtimed-chromium-'), {
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
  });
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const encodings = [];
    page.on('response', async (r) => {
      if (/transport=polling/.test(r.url()) && r.request().method() === 'GET') {
        encodings.push((await r.allHeaders())['content-encoding'] ?? 'identity');
      }
    });
    assert.equal((await page.goto(`http://127.0.0.1:${port}/`)).status(), 200);
    // read live (an 'upgrade' listener added at connect can miss an upgrade that was quicker)
    await page.waitForFunction(() => window.results && window.results.polling && window.wsTransport() === 'websocket',
      null, { timeout: 20000 });
    assert.equal(await page.evaluate(() => window.results.loaded), true);
    assert.equal(await page.evaluate(() => window.wsTransport()), 'websocket');
    // a 5 kB event to the site's 'website' room (guests are in it) reaches both
    const text = 'x'.repeat(5000);
    await waitFor(async () => {
      await redis.publish('events', { event: 'big', message: { text }, room: 'website', namespace: 'demo' });
      const ev = await page.evaluate(() => window.results.events);
      return ev.some((e) => e[0] === 'polling') && ev.some((e) => e[0] === 'ws');
    }, 10000, 200);
    const ev = await page.evaluate(() => window.results.events);
    assert.ok(ev.every((e) => e[1] === 5000));
    // the polling GET that carried it was compressed (Chromium asks for gzip)
    assert.ok(encodings.includes('gzip'), `polling responses: ${encodings}`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await rt.stop();
    await redis.stop();
  }
});

test('IPv6: socket.io-client over [::1] (polling and WebSocket); --listen-host ::1', async () => {
  const { port } = await conformance();
  for (const transports of [['polling'], ['websocket']]) {
    const s = io(`http://[::1]:${port}`, { forceNew: true, reconnection: false, transports });
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject); });
    const back = new Promise((resolve) => s.once('message-back', resolve));
    s.emit('message', 'hi');
    assert.equal(await back, 'hi');
    s.close();
  }
  // and over IPv4 on the same (dual-stack) socket
  const s4 = io(`http://127.0.0.1:${port}`, { forceNew: true, reconnection: false, transports: ['websocket'] });
  await new Promise((resolve, reject) => { s4.once('connect', resolve); s4.once('connect_error', reject); });
  s4.close();
  // a v6-only listener
  const p6 = await freePort();
  const rt6 = await startRealtimed(['--conformance', '--port', String(p6), '--listen-host', '::1'],
    { timeout: 1500 }).catch((e) => e);
  if (rt6 instanceof Error) {
    // startRealtimed probes 127.0.0.1: a v6-only server never answers there, which is the point
    assert.match(rt6.message, /not ready/);
  } else {
    started.push(rt6);
    assert.fail('a ::1 listener answered on 127.0.0.1');
  }
});

async function pollingSession(url) {
  const text = await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(text.slice(1)).sid;
  assert.equal(await (await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '40' })).text(), 'ok');
  assert.match(await (await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`)).text(), /^40/);
  return sid;
}

test('chunked polling POSTs are read (same limit as Content-Length); 413 carries CORS and ends the session', async () => {
  const { port, url } = await conformance();
  const sid = await pollingSession(url);
  const q = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  const msg = '42["message","chunked!"]';
  const body = `5\r\n${msg.slice(0, 5)}\r\n${(msg.length - 5).toString(16)};x=y\r\n${msg.slice(5)}\r\n0\r\nX-T: 1\r\n\r\n`;
  const r = await rawExchange(port, `POST ${q} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n` +
    `Content-Type: text/plain;charset=UTF-8\r\n\r\n${body}`);
  assert.equal(r.responses[0].status, 200);
  assert.equal(r.responses[0].body.toString(), 'ok');
  assert.match(await (await fetch(`${url}${q}`)).text(), /42\["message-back","chunked!"\]/);
  // a chunked body over max_payload (1,000,000): 413 with CORS, the session closed
  const big = 'y'.repeat(600000);
  const over = await rawExchange(port, `POST ${q} HTTP/1.1\r\nHost: x\r\nOrigin: http://app.example\r\n` +
    `Transfer-Encoding: chunked\r\n\r\n${(600000).toString(16)}\r\n${big}\r\n${(600000).toString(16)}\r\n${big}\r\n0\r\n\r\n`);
  assert.equal(over.responses[0].status, 413);
  assert.equal(over.responses[0].headers['access-control-allow-origin'], 'http://app.example');
  assert.equal(over.responses[0].headers['access-control-allow-credentials'], 'true');
  assert.match(await (await fetch(`${url}${q}`)).text(), /Session ID unknown/);
  // Content-Length over the limit: the same, decided on the head alone
  const sid2 = await pollingSession(url);
  const over2 = await rawExchange(port, `POST /socket.io/?EIO=4&transport=polling&sid=${sid2} HTTP/1.1\r\n` +
    'Host: x\r\nOrigin: http://app.example\r\nContent-Length: 1000001\r\n\r\n');
  assert.equal(over2.responses[0].status, 413);
  assert.equal(over2.responses[0].headers['access-control-allow-origin'], 'http://app.example');
  assert.match(await (await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid2}`)).text(), /Session ID unknown/);
});

test('--cors-origin: listed origins reflected, others get no CORS headers; OPTIONS without Origin is 204', async () => {
  const { port, url } = await conformance(['--cors-origin', 'https://a.example,https://B.example']);
  const get = (origin) => fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: origin } });
  assert.equal((await get('https://a.example')).headers.get('access-control-allow-origin'), 'https://a.example');
  assert.equal((await get('https://b.example')).headers.get('access-control-allow-origin'), 'https://b.example');
  const evil = await get('https://evil.example');
  assert.equal(evil.status, 200); // the server still answers; the browser will not let the page read it
  assert.equal(evil.headers.get('access-control-allow-origin'), null);
  const pre = await fetch(`${url}/socket.io/?EIO=4&transport=polling`, { method: 'OPTIONS',
    headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), null);
  const bare = await rawExchange(port, 'OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(bare.responses[0].status, 204);
  assert.equal(bare.responses[0].headers['access-control-allow-methods'], 'GET,HEAD,PUT,PATCH,POST,DELETE');
  assert.equal(bare.responses[0].headers['access-control-allow-origin'], undefined);
  // default: any Origin is reflected (as Frappe's Node server)
  const d = await conformance();
  const any = await fetch(`${d.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'https://x.example' } });
  assert.equal(any.headers.get('access-control-allow-origin'), 'https://x.example');
});

test('--path: the server and the bundle move; the default path is then unknown', async () => {
  const { url } = await conformance(['--path', '/rt']);
  const s = io(url, { path: '/rt', forceNew: true, reconnection: false });
  await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject); });
  s.close();
  assert.equal((await fetch(`${url}/rt/socket.io.js`)).status, 200);
  assert.equal((await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).status, 404);
  const bad = await startRealtimed(['--conformance', '--port', String(await freePort()), '--path', 'no-slash'])
    .catch((e) => e);
  assert.ok(bad instanceof Error && /invalid value 'no-slash' for path/.test(bad.message), String(bad));
});

// ---------------------------------------------------------------- permessage-deflate

async function metric(url, name) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

test('permessage-deflate: negotiated without context takeover, client messages inflated, off by default', async () => {
  const { default: WebSocket } = await import('ws');
  const open = (url) => new Promise((resolve, reject) => {
    const w = new WebSocket(url, { perMessageDeflate: { threshold: 0 } });
    w.once('upgrade', (res) => { w.offered = res.headers['sec-websocket-extensions'] ?? ''; });
    w.once('open', () => resolve(w));
    w.once('error', reject);
  });
  const off = await conformance();
  const w0 = await open(`ws://127.0.0.1:${off.port}/socket.io/?EIO=4&transport=websocket`);
  assert.equal(w0.offered, '');
  w0.close();

  const { port, url } = await conformance(['--per-message-deflate']);
  const w = await open(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
  assert.equal(w.offered, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
  const got = [];
  w.on('message', (d) => got.push(String(d)));
  w.send('40'); // compressed by ws (threshold 0): the server inflates it
  await waitFor(() => got.some((m) => m.startsWith('40{')), 5000, 20);
  const text = 'z'.repeat(20000);
  w.send(`42["message","${text}"]`);
  await waitFor(() => got.some((m) => m.startsWith('42["message-back"')), 5000, 20);
  assert.equal(got.find((m) => m.startsWith('42["message-back"')), `42["message-back","${text}"]`);
  // the echo went out deflated: 20 kB became well under 1 kB on the wire
  assert.ok(await metric(url, 'realtimed_ws_deflated_total') >= 1);
  assert.ok(await metric(url, 'realtimed_ws_deflated_bytes_total{stage="after"}') < 1000);
  assert.equal(await metric(url, 'realtimed_ws_deflate_connections'), 1);
  w.close();

  // socket.io-client (Node: ws under engine.io-client) works with it, both ways
  const s = io(url, { forceNew: true, reconnection: false, transports: ['websocket'] });
  await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject); });
  const back = new Promise((resolve) => s.once('message-back', resolve));
  s.emit('message', text);
  assert.equal(await back, text);
  s.close();
});

test('permessage-deflate: a broadcast is deflated once for all its members; a zip bomb is refused', async () => {
  const { default: WebSocket } = await import('ws');
  const redis = await startRedis();
  const port = await freePort();
  const rt = await startRealtimed(['--auth-mode', 'guest', '--default-site', 'demo', '--per-message-deflate',
    '--redis-queue', redis.url, '--port', String(port)], { cwd: tempDir() });
  started.push(rt);
  const url = `http://127.0.0.1:${port}`;
  try {
    const members = [];
    for (let i = 0; i < 10; i++) {
      const s = io(`${url}/demo`, { forceNew: true, reconnection: false, transports: ['websocket'] });
      await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject); });
      members.push(s);
    }
    const before = await metric(url, 'realtimed_ws_deflated_total');
    const text = 'abc'.repeat(3000);
    const all = Promise.all(members.map((s) => new Promise((resolve) => s.once('big', (m) => resolve(m.text)))));
    await redis.publish('events', { event: 'big', message: { text }, room: 'website', namespace: 'demo' });
    assert.deepEqual(await all, members.map(() => text));
    assert.equal(await metric(url, 'realtimed_ws_deflated_total') - before, 1, 'one deflate for ten members');
    for (const s of members) s.close();

    // 1 MB of zeros deflates to ~1 kB: inflating past max_payload closes with 1009
    const w = await new Promise((resolve, reject) => {
      const c = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: { threshold: 0 } });
      c.once('open', () => resolve(c));
      c.once('error', reject);
    });
    const closed = new Promise((resolve) => w.once('close', (code) => resolve(code)));
    w.send('4' + '0'.repeat(2000000));
    assert.equal(await closed, 1009);
    assert.equal((await fetch(`${url}/health`)).status, 200);
  } finally {
    await rt.stop();
    await redis.stop();
  }
});
