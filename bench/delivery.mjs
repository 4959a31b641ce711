// Publish -> receive for a room of 1k, and server CPU per delivery, through
// each way in (issue 18): the HTTP API and @socket.io/redis-emitter into
// realtimed --auth-mode jwt, Frappe's Redis `events` into realtimed's Frappe
// mode, and the emitter into Node socket.io 4.8 + @socket.io/redis-adapter;
// plus the API's requests/s. The server on CPU 0; this process (1k
// socket.io-client clients, the publisher) on CPU 1 (run it with taskset).
//   taskset -c 1 node bench/delivery.mjs [clients=1000] [messages=200] [rate=40]
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'tests/package.json'));
const { io } = require('socket.io-client');
const { Emitter } = require('@socket.io/redis-emitter');
const { createClient } = require('redis');
const [CLIENTS = 1000, MESSAGES = 200, RATE = 40] = process.argv.slice(2).map(Number);
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'realtimed-delivery-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL'); } catch {} });

function freePort() {
  return new Promise((r) => { const s = http.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
}
function start(cmd, args, opts = {}) {
  const c = spawn('taskset', ['-c', opts.cpu ?? '0', cmd, ...args], { cwd: opts.cwd, env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(c);
  return c;
}
async function listening(port) {
  const net = await import('node:net');
  for (let i = 0; i < 100; i++) {
    try {
      await new Promise((res, rej) => { const c = net.connect(port, '127.0.0.1', () => { c.destroy(); res(); }); c.on('error', rej); });
      return;
    } catch { await sleep(100); }
  }
  throw new Error(`nothing on ${port}`);
}
const cpuOf = (pid) => { // utime + stime of pid and its children threads, seconds
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const secret = crypto.randomBytes(32).toString('hex');
fs.writeFileSync(path.join(TMP, 'hs.key'), `${secret}\n`);
fs.writeFileSync(path.join(TMP, 'api.keys'), 'bench-key\n');
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const token = (sub) => { const i = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, rooms: ['r'] })}`; return `${i}.${crypto.createHmac('sha256', secret).update(i).digest('base64url')}`; };

// ---- helpers: Redis, the Frappe web-server stand-in
const redisPort = await freePort();
start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { cpu: '1' });
const authPort = await freePort();
start(path.join(ROOT, 'build/bench/authstub'), ['--port', String(authPort)], { cpu: '1' });
await sleep(300);
const REDIS = `redis://127.0.0.1:${redisPort}`;
const rc = createClient({ url: REDIS });
await rc.connect();
const emitter = new Emitter(rc);
const bench = path.join(TMP, 'bench');
fs.mkdirSync(path.join(bench, 'sites/bench.local'), { recursive: true });
fs.writeFileSync(path.join(bench, 'sites/bench.local/site_config.json'), '{}');
fs.writeFileSync(path.join(bench, 'sites/common_site_config.json'), JSON.stringify({ redis_queue: REDIS, webserver_port: authPort }));

async function clientsFor(url, frappe) {
  const got = [];
  const sockets = [];
  for (let i = 0; i < CLIENTS; i += 100) {
    await Promise.all([...Array(Math.min(100, CLIENTS - i)).keys()].map(async (k) => {
      const n = i + k;
      const s = frappe
        ? io(`${url}/bench.local`, { transports: ['websocket'], forceNew: true, reconnection: false,
          extraHeaders: { Cookie: `sid=bs${n}`, Origin: url, 'X-Frappe-Site-Name': 'bench.local' } })
        : io(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token: token(`u${n}`) } });
      s.on('m', (m) => got.push(performance.now() - m.t));
      await new Promise((res, rej) => { s.once('connect', res); s.once('connect_error', rej); });
      if (frappe) { s.emit('task_subscribe', 'r'); }
      sockets.push(s);
    }));
  }
  await sleep(500);
  return { got, close: () => sockets.forEach((s) => s.close()) };
}

const results = [];
async function scenario(label, pid, url, frappe, publish) {
  const c = await clientsFor(url, frappe);
  // warm-up
  for (let i = 0; i < 5; i++) await publish(i);
  await sleep(500);
  c.got.length = 0;
  const cpu0 = cpuOf(pid);
  const t0 = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    await publish(i);
    const next = t0 + ((i + 1) * 1000) / RATE;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await sleep(1000);
  const cpu = cpuOf(pid) - cpu0;
  const lat = c.got.slice().sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  const r = { label, deliveries: lat.length, expected: MESSAGES * CLIENTS, p50_ms: q(0.5), p99_ms: q(0.99),
    max_ms: lat[lat.length - 1], server_cpu_s: cpu, cpu_us_per_delivery: (cpu * 1e6) / Math.max(1, lat.length) };
  results.push(r);
  console.log(`${label.padEnd(36)} ${r.deliveries}/${r.expected} deliveries  p50 ${r.p50_ms.toFixed(2)} ms  ` +
    `p99 ${r.p99_ms.toFixed(2)} ms  server CPU ${(r.cpu_us_per_delivery).toFixed(2)} µs/delivery`);
  c.close();
  await sleep(300);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
const post = (port, body) => new Promise((res, rej) => {
  const data = JSON.stringify(body);
  const r = http.request({ host: '127.0.0.1', port, path: '/api/publish', method: 'POST', agent,
    headers: { 'X-API-Key': 'bench-key', 'Content-Length': Buffer.byteLength(data) } }, (x) => { x.resume(); x.on('end', res); });
  r.on('error', rej);
  r.end(data);
});

// ---- realtimed --auth-mode jwt: the API, then the emitter
{
  const port = await freePort();
  const p = start(path.join(ROOT, 'build/realtimed'), ['--auth-mode', 'jwt', '--jwt-key', path.join(TMP, 'hs.key'),
    '--api-key-file', path.join(TMP, 'api.keys'), '--redis-queue', REDIS, '--port', String(port), '--log-level', 'warning',
    '--max-pending', '0'], { cwd: TMP });
  await listening(port);
  await sleep(300);
  const url = `http://127.0.0.1:${port}`;
  await scenario('realtimed jwt, HTTP API publish', p.pid, url, false,
    (i) => post(port, { room: 'r', event: 'm', data: { t: performance.now(), i } }));
  await scenario('realtimed jwt, redis-emitter', p.pid, url, false,
    async (i) => { emitter.to('r').emit('m', { t: performance.now(), i }); });
  // API requests/s: publishes to an empty room, 32 in flight
  const cpu0 = cpuOf(p.pid);
  const t0 = performance.now();
  let n = 0;
  await Promise.all([...Array(32).keys()].map(async () => {
    while (performance.now() - t0 < 3000) { await post(port, { room: 'nobody', event: 'm', data: 1 }); n++; }
  }));
  const secs = (performance.now() - t0) / 1000;
  const r = { label: 'realtimed API requests', requests_per_s: n / secs, server_cpu_us_per_request: ((cpuOf(p.pid) - cpu0) * 1e6) / n };
  results.push(r);
  console.log(`${r.label.padEnd(36)} ${r.requests_per_s.toFixed(0)} requests/s (32 in flight), server CPU ${r.server_cpu_us_per_request.toFixed(1)} µs/request`);
  p.kill('SIGTERM');
  await sleep(500);
}
// ---- realtimed Frappe mode: Redis `events`
{
  const port = await freePort();
  const p = start(path.join(ROOT, 'build/realtimed'), ['--webserver-host', '127.0.0.1', '--port', String(port),
    '--log-level', 'warning'], { cwd: bench });
  await listening(port);
  await sleep(300);
  await scenario('realtimed frappe, Redis events', p.pid, `http://127.0.0.1:${port}`, true,
    async (i) => { await rc.publish('events', JSON.stringify({ event: 'm', message: { t: performance.now(), i }, room: 'task_progress:r', namespace: 'bench.local' })); });
  p.kill('SIGTERM');
  await sleep(500);
}
// ---- Node socket.io + redis-adapter: the emitter
{
  const port = await freePort();
  const p = start('node', [path.join(ROOT, 'bench/baseline/server_emitter.js')], { env: { PORT: String(port), REDIS_URL: REDIS,
    JWT_KEY: path.join(TMP, 'hs.key') }, cwd: TMP });
  await listening(port);
  await sleep(500);
  await scenario('node socket.io+redis-adapter, emitter', p.pid, `http://127.0.0.1:${port}`, false,
    async (i) => { emitter.to('r').emit('m', { t: performance.now(), i }); });
  p.kill('SIGTERM');
}
const out = path.join(ROOT, `bench/results/delivery-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}.json`);
fs.writeFileSync(out, JSON.stringify({ clients: CLIENTS, messages: MESSAGES, rate: RATE, results }, null, 1));
console.log(`wrote ${out}`);
await rc.quit();
process.exit(0);
