// Server CPU and bytes per delivery with and without compression:
// WebSocket members with and without permessage-deflate, and polling
// members with and without gzip, receiving the same broadcasts.
//
//   node bench/compression.mjs [--clients 500] [--events 200] [--size 2000] [--gap-ms 50]
//
// realtimed runs in guest mode on CPU 0 (the clients, Redis and this script
// elsewhere); every client is in the site's 'website' room; each event is
// a Frappe-like JSON document of about --size bytes (repetitive, as real
// doc updates are). Prints one JSON line per case.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'tests/package.json'));
const { io } = require('socket.io-client');
const { startRedis, freePort, tempDir, waitFor, sleep } = await import(path.join(ROOT, 'tests/lib/procs.mjs'));

const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const CLIENTS = arg('clients', 500), EVENTS = arg('events', 200), SIZE = arg('size', 2000), GAP = arg('gap-ms', 50);
const BIN = process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed');
const TICK = 100; // clock ticks per second (getconf CLK_TCK)

function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK;
}
async function metric(url, name) {
  const t = await (await fetch(`${url}/metrics`)).text();
  const m = t.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}
function doc(i) {
  const fields = {};
  for (let k = 0; Object.keys(fields).length * 40 < SIZE; k++) fields[`custom_field_${k}`] = `value ${k} of doc ${i}`;
  return { doctype: 'Sales Invoice', name: `SINV-${i}`, modified: '2026-12-06 23:00:00.000000', ...fields };
}

/* Publishes EVENTS documents to 'website', waits for every delivery
 * (delivered() counts them) and prints the server's CPU and bytes per one. */
async function measure(name, rt, redis, url, delivered) {
  const cpu0 = cpuMs(rt.pid), bytes0 = await metric(url, 'realtimed_bytes_sent_total');
  for (let i = 0; i < EVENTS; i++) {
    await redis.publish('events', { event: 'doc_update', message: doc(i), room: 'website', namespace: 'b' });
    await sleep(GAP); /* one event per poll: the paced case (the burst case: --gap-ms 0) */
  }
  const n = CLIENTS * EVENTS;
  await waitFor(() => delivered() >= n, 60000, 50).catch((e) => { console.error(`${name}: ${delivered()} of ${n}`); throw e; });
  const cpu = cpuMs(rt.pid) - cpu0, bytes = (await metric(url, 'realtimed_bytes_sent_total')) - bytes0;
  console.log(JSON.stringify({
    case: name, deliveries: n, event_bytes: JSON.stringify(doc(0)).length,
    server_cpu_us_per_delivery: +((cpu * 1000) / n).toFixed(2), bytes_per_delivery: Math.round(bytes / n),
    deflated: await metric(url, 'realtimed_ws_deflated_total'), gzipped: await metric(url, 'realtimed_http_compressed_total'),
  }));
}

async function run(name, args, clientOpts) {
  const redis = await startRedis();
  const port = await freePort();
  const rt = spawn('taskset', ['-c', '0', BIN, '--auth-mode', 'guest', '--default-site', 'b', '--port', String(port),
    '--redis-queue', redis.url, '--log-level', 'warning', '--max-pending', '0', ...args],
  { cwd: tempDir(), stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/ready`).catch(() => null))?.status === 200, 10000, 50);
  const clients = [];
  let got = 0;
  if (clientOpts.raw) return runRaw(name, rt, redis, url, clientOpts);
  for (let i = 0; i < CLIENTS; i++) {
    const s = io(`${url}/b`, { forceNew: true, reconnection: false, ...clientOpts });
    s.on('doc_update', () => { got++; });
    clients.push(new Promise((resolve, reject) => { s.once('connect', () => resolve(s)); s.once('connect_error', reject); }));
    if (i % 50 === 49) await Promise.all(clients.slice(-50));
  }
  const socks = await Promise.all(clients);
  await sleep(500);
  await measure(name, rt, redis, url, () => got);
  for (const s of socks) s.close();
  rt.kill('SIGTERM');
  await new Promise((r) => rt.once('exit', r));
  await redis.stop();
}

// Polling members as a browser is one: fetch() asks for gzip and decodes it
// (Node's socket.io-client polls through an XHR shim that cannot).
async function runRaw(name, rt, redis, url, { gzip }) {
  let got = 0, stop = false;
  const headers = { 'Accept-Encoding': gzip ? 'gzip' : 'identity' };
  const poll = async () => {
    const sid = JSON.parse((await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers })).text()).slice(1)).sid;
    const q = `${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    await fetch(q, { method: 'POST', body: '40/b,' });
    (async () => {
      while (!stop) {
        const t = await (await fetch(q, { headers })).text();
        for (const p of t.split('\x1e')) {
          if (p === '2') await fetch(q, { method: 'POST', body: '3' });
          else if (p.includes('"doc_update"')) got++;
        }
      }
    })().catch(() => {});
  };
  for (let i = 0; i < CLIENTS; i += 50) await Promise.all(Array.from({ length: Math.min(50, CLIENTS - i) }, poll));
  await sleep(1000);
  await measure(name, rt, redis, url, () => got);
  stop = true;
  rt.kill('SIGTERM');
  await new Promise((r) => rt.once('exit', r));
  await redis.stop();
}

await run('websocket', [], { transports: ['websocket'], perMessageDeflate: false });
await run('websocket+permessage-deflate', ['--per-message-deflate'], { transports: ['websocket'], perMessageDeflate: { threshold: 1024 } });
await run('polling', [], { raw: true, gzip: false });
await run('polling+gzip', [], { raw: true, gzip: true });
process.exit(0);
