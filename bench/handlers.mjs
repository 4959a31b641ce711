// App-handler benchmarks (issues 9 and 16), on this machine:
//
//   node bench/handlers.mjs [--bin build/realtimed] [--rate 1000] [--seconds 10] [--sockets 10000]
//
// 1. Round trip at --rate events/s for --seconds, from 50 WebSocket clients:
//    client emit -> handlers.js listener -> ack (Node host), and
//    client emit -> handlers.py handler -> emit back (Python host, async and
//    plain): p50/p99/max, and CPU per event of realtimed and of each host.
// 2. RSS of realtimed and of each host with --sockets sockets connected on
//    a site whose apps have handlers (and without any handler app, for the
//    difference).
// Clients are raw WebSocket connections (the Engine.IO/Socket.IO framing is
// a few lines), so the client side costs little. The auth backend is
// bench/authstub; Redis is a real redis-server. Prints one JSON object.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT, startRedis, startRealtimed, makeBench, freePort, sleep, waitFor } from '../tests/lib/procs.mjs';

const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(`--${k}`); return i >= 0 ? args[i + 1] : d; };
const BIN = path.resolve(opt('bin', path.join(ROOT, 'build/realtimed')));
const RATE = Number(opt('rate', 1000));
const SECONDS = Number(opt('seconds', 10));
const SOCKETS = Number(opt('sockets', 10000));
const ONLY = opt('only', 'native,js,py-async,py-plain,memory').split(',');
const SITE = 'bench.local';
const PIN = opt('pin', '1') === '1' && (await import('node:os')).cpus().length >= 2;
process.env.REALTIMED_BIN = BIN;
const keepAlive = setInterval(() => {}, 1000); // children are unref'd by the helpers

const stat = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // ms of CPU
};
const rss = (pid) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m)[1]);
const children = (pid) => {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').map(Number).filter(Boolean);
  } catch { return []; } // pgrep exits 1 when there are none
};
const hostOf = (pid, script) => children(pid).find((c) => {
  try { return fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').includes(script); } catch { return false; }
});

// ---------------------------------------------------------------- raw client
function wsClient(port, sid, onText) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const key = crypto.randomBytes(16).toString('base64');
    s.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const c = {
      sock: s,
      send(text) {
        const p = Buffer.from(text);
        const mask = crypto.randomBytes(4);
        let head;
        if (p.length < 126) head = Buffer.from([0x81, 0x80 | p.length]);
        else { head = Buffer.alloc(4); head[0] = 0x81; head[1] = 0x80 | 126; head.writeUInt16BE(p.length, 2); }
        for (let i = 0; i < p.length; i++) p[i] ^= mask[i & 3];
        s.write(Buffer.concat([head, mask, p]));
      },
    };
    s.on('error', reject);
    s.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (!upgraded) {
        const e = buf.indexOf('\r\n\r\n');
        if (e < 0) return;
        upgraded = true;
        buf = buf.subarray(e + 4);
      }
      while (buf.length >= 2) {
        let n = buf[1] & 127, off = 2;
        if (n === 126) { if (buf.length < 4) return; n = buf.readUInt16BE(2); off = 4; }
        else if (n === 127) { if (buf.length < 10) return; n = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + n) return;
        const text = buf.toString('utf8', off, off + n);
        buf = buf.subarray(off + n);
        if (text === '2') { c.send('3'); continue; }
        if (text[0] === '0') { c.send(`40/${SITE},`); continue; }
        if (text.startsWith(`40/${SITE},{`)) { resolve(c); continue; }
        if (text.startsWith(`44/${SITE},`)) { reject(new Error(text)); continue; }
        if (onText) onText(text);
      }
    });
    s.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`
      + `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`
      + `Cookie: sid=${sid}\r\nOrigin: http://127.0.0.1:${port}\r\nX-Frappe-Site-Name: ${SITE}\r\n\r\n`);
  });
}

// ---------------------------------------------------------------- setup
async function server(apps) {
  const redis = await startRedis();
  const authPort = await freePort();
  const auth = spawn(path.join(ROOT, 'build/bench/authstub'), ['--port', String(authPort), '--apps', apps.join(',')],
    { stdio: 'ignore' });
  const port = await freePort();
  const appDirs = { frappe: path.join(ROOT, 'tests/fixtures/pyfrappe/registry') };
  for (const a of apps) appDirs[a] = path.join(ROOT, 'bench/apps', a);
  const bench = makeBench({ common_site_config: { redis_queue: redis.url, webserver_port: authPort, socketio_port: port },
    sites: [SITE], apps: appDirs });
  if (apps.includes('benchpy')) {
    const env = path.join(bench, 'env');
    execFileSync('/usr/bin/python3', ['-m', 'venv', '--system-site-packages', '--without-pip', env]);
    const sp = execFileSync(path.join(env, 'bin/python'), ['-c', 'import site; print(site.getsitepackages()[0])'],
      { encoding: 'utf8' }).trim();
    fs.writeFileSync(path.join(sp, 'bench_apps.pth'), `${Object.keys(appDirs).map((a) => path.join(bench, 'apps', a)).join('\n')}\n`);
  }
  await sleep(100);
  const rt = await startRealtimed(['--webserver-host', '127.0.0.1', '--log-level', 'warning'], { cwd: bench, port });
  if (apps.includes('benchjs')) await waitFor(() => hostOf(rt.proc.pid, 'handlers-host.js'), 10000);
  if (apps.includes('benchpy')) await waitFor(() => hostOf(rt.proc.pid, 'handlers_host.py'), 10000);
  await sleep(500);
  // as make bench does: the server (and its hosts) on one core, the clients on the other
  if (PIN) {
    for (const pid of [rt.proc.pid, ...children(rt.proc.pid)]) execFileSync('taskset', ['-pc', '0', String(pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
  }
  return {
    port, rt, redis,
    node: hostOf(rt.proc.pid, 'handlers-host.js'),
    py: hostOf(rt.proc.pid, 'handlers_host.py'),
    async stop() { await rt.stop(); auth.kill(); await redis.stop(); },
  };
}

// ---------------------------------------------------------------- 1. round trips
function pct(a, p) { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; }

async function roundTrip(srv, kind) {
  const pending = new Map();
  const pongs = [];
  const lat = [];
  let seq = 0;
  const onText = (t) => {
    // ack: 43/site,<id>[x]   emit back: 42/site,["rt_back",x]
    let id;
    if (t.startsWith(`43/${SITE},`)) id = Number(t.slice(SITE.length + 4).split("[")[0]);
    else if (t.startsWith(`42/${SITE},["rt_back",`)) id = Number(t.slice(SITE.length + 15, -1));
    else if (t === `42/${SITE},["pong"]`) id = pongs.shift(); // native: no id, answered in order
    const t0 = pending.get(id);
    if (t0 !== undefined) { lat.push(Number(process.hrtime.bigint() - t0) / 1e6); pending.delete(id); }
  };
  const clients = [];
  for (let i = 0; i < 50; i++) clients.push(await wsClient(srv.port, `rt${i}`, onText));
  await sleep(500); // setup of the sockets in the host
  const host = kind === 'js' || kind === 'native' ? srv.node : srv.py;
  const warm = async (n) => {
    for (let i = 0; i < n; i++) await emitOne(i % 50);
    await waitFor(() => pending.size === 0, 10000);
    lat.length = 0;
  };
  const emitOne = (ci) => {
    const id = ++seq;
    pending.set(id, process.hrtime.bigint());
    if (kind === 'native') { pongs.push(id); clients[0].send(`42/${SITE},["ping"]`); return; }
    if (kind === 'js') clients[ci].send(`42/${SITE},${id}["rt_echo",${id}]`);
    else clients[ci].send(`42/${SITE},["${kind === 'py-async' ? 'rt_async' : 'rt_plain'}",${id}]`);
  };
  await warm(500);
  const c0 = stat(srv.rt.proc.pid), h0 = stat(host);
  const total = RATE * SECONDS;
  const t0 = Date.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - Date.now();
    if (wait > 1) await sleep(wait);
    emitOne(i % 50);
  }
  await waitFor(() => pending.size === 0, 20000).catch(() => {});
  const c1 = stat(srv.rt.proc.pid), h1 = stat(host);
  for (const c of clients) c.sock.destroy();
  return {
    events: total, received: lat.length,
    p50_ms: +pct(lat, 0.5).toFixed(3), p99_ms: +pct(lat, 0.99).toFixed(3), max_ms: +Math.max(...lat).toFixed(3),
    realtimed_cpu_us_per_event: +((c1 - c0) * 1000 / total).toFixed(1),
    host_cpu_us_per_event: +((h1 - h0) * 1000 / total).toFixed(1),
  };
}

// ---------------------------------------------------------------- 2. memory
async function memory(srv) {
  const base = { rt: rss(srv.rt.proc.pid), node: srv.node && rss(srv.node), py: srv.py && rss(srv.py) };
  const clients = [];
  for (let i = 0; i < SOCKETS; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(SOCKETS, i + 200); j++) batch.push(wsClient(srv.port, `m${j}`));
    clients.push(...await Promise.all(batch));
  }
  await sleep(3000);
  const at = { rt: rss(srv.rt.proc.pid), node: srv.node && rss(srv.node), py: srv.py && rss(srv.py) };
  for (const c of clients) c.sock.destroy();
  const mb = (k) => (k ? +(k / 1024).toFixed(1) : null);
  return {
    sockets: SOCKETS,
    realtimed_mb: [mb(base.rt), mb(at.rt)], node_host_mb: [mb(base.node), mb(at.node)], python_host_mb: [mb(base.py), mb(at.py)],
    realtimed_b_per_socket: Math.round(((at.rt - base.rt) * 1024) / SOCKETS),
    node_host_b_per_socket: base.node ? Math.round(((at.node - base.node) * 1024) / SOCKETS) : null,
    python_host_b_per_socket: base.py ? Math.round(((at.py - base.py) * 1024) / SOCKETS) : null,
  };
}

const out = { bin: BIN, rate: RATE, seconds: SECONDS };
{
  const srv = await server(['benchjs', 'benchpy']);
  try {
    process.stderr.write(`handlers: realtimed pid ${srv.rt.proc.pid}, node host ${srv.node}, python host ${srv.py}\n`);
    for (const kind of ['native', 'js', 'py-async', 'py-plain']) {
      if (!ONLY.includes(kind)) continue;
      out[kind.replace('-', '_')] = await roundTrip(srv, kind);
      process.stderr.write(`handlers: ${kind} ${JSON.stringify(out[kind.replace('-', '_')])}\n`);
    }
    if (ONLY.includes('memory')) {
      out.memory_with_hosts = await memory(srv);
      process.stderr.write(`handlers: memory ${JSON.stringify(out.memory_with_hosts)}\n`);
    }
  } finally {
    await srv.stop();
  }
}
if (ONLY.includes('memory')) {
  const srv = await server([]);
  try {
    out.memory_without = await memory(srv);
    process.stderr.write(`handlers: memory without handler apps ${JSON.stringify(out.memory_without)}\n`);
  } finally {
    await srv.stop();
  }
}
clearInterval(keepAlive);
console.log(JSON.stringify(out, null, 1));
process.exit(0);
