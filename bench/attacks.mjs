// Attacks from issue 8, measured against one realtimed binary (before/after
// numbers come from running it on two builds):
//
//   node bench/attacks.mjs [--bin PATH] [--only rooms,pipelined,...]
//
// rooms      a Guest socket sends 300 task_subscribe with 1 MB ids: RSS held
// pipelined  300 unauthenticated connections push 4 MB behind a parked GET: peak RSS
// flood      15 s of pipelined polling handshakes (no CONNECT): count, peak RSS
// collide    20,000 task ids colliding in the old hash: ms the loop is blocked
// presence   a viewer's TCP connection dropped: ms until the others see doc_viewers
// shutdown   160,000 polling sessions, then SIGTERM: ms to exit
//
// Prints one JSON object. Uses the test helpers (redis-server, fake Frappe).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  ROOT, startRedis, startFakeFrappe, startRealtimed, makeBench, freePort, sleep, waitFor,
} from '../tests/lib/procs.mjs';
import { rssKiB } from '../tests/lib/core_helpers.mjs';

// socket.io-client is installed for the tests (scripts/install-deps.sh)
const { io } = createRequire(path.join(ROOT, 'tests/package.json'))('socket.io-client');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const BIN = path.resolve(opt('bin', process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed')));
const ONLY = opt('only', 'rooms,pipelined,flood,collide,presence,shutdown').split(',');
process.env.REALTIMED_BIN = BIN;
const out = { bin: BIN };
// Options an older build does not know are left out (it has no such limits).
const HELP = spawnSync(BIN, ['--help'], { encoding: 'utf8' }).stdout;
const known = (list) => {
  const r = [];
  for (let i = 0; i < list.length; i += 2) if (HELP.includes(list[i])) r.push(list[i], list[i + 1]);
  return r;
};

/** CPU time (user + system) of pid in ms. */
function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // clock ticks of 10 ms
}

function peakSampler(pid) {
  let max = rssKiB(pid);
  const iv = setInterval(() => { try { max = Math.max(max, rssKiB(pid)); } catch { /* gone */ } }, 10);
  return () => { clearInterval(iv); return max; };
}

async function guestServer(extra = []) {
  const redis = await startRedis();
  const port = await freePort();
  const bench = makeBench({ common_site_config: { redis_queue: redis.url, socketio_port: port } });
  const rt = await startRealtimed(['--auth-mode', 'guest', '--log-level', 'error', ...extra], { cwd: bench, port });
  return { redis, rt, port, url: `http://127.0.0.1:${port}`, stop: async () => { await rt.stop(30000); await redis.stop(); } };
}

const connectWs = (url, nsp = 'site1.local', o = {}) => new Promise((resolve, reject) => {
  const s = io(`${url}/${nsp}`, { forceNew: true, reconnection: false, transports: ['websocket'], ...o });
  s.once('connect', () => resolve(s));
  s.once('connect_error', reject);
});
const pong = (s) => new Promise((r) => { s.once('pong', r); s.emit('ping'); });

// one raw TCP socket; resolves when connected
const tcp = (port) => new Promise((resolve, reject) => {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.once('connect', () => resolve(s));
  s.once('error', reject);
});

async function handshake(port) {
  const res = await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`);
  return JSON.parse((await res.text()).slice(1)).sid;
}

// ---------------------------------------------------------------- scenarios
async function rooms() {
  const srv = await guestServer();
  const s = await connectWs(srv.url, 'site1.local', { extraHeaders: { Origin: srv.url, 'X-Frappe-Site-Name': 'site1.local' } });
  const before = rssKiB(srv.rt.proc.pid);
  const big = 'y'.repeat(999000);
  for (let i = 0; i < 300; i++) {
    s.emit('task_subscribe', `${i}${big}`);
    if (i % 20 === 19) await pong(s);
  }
  await pong(s);
  const held = rssKiB(srv.rt.proc.pid) - before;
  s.close();
  await srv.stop();
  return { rss_held_mib: +(held / 1024).toFixed(1) };
}

async function pipelined() {
  const srv = await guestServer();
  const before = rssKiB(srv.rt.proc.pid);
  const conns = [];
  for (let i = 0; i < 300; i++) {
    const sid = await handshake(srv.port);
    const c = await tcp(srv.port);
    c.on('error', () => {});
    c.write(`GET /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n\r\n`);
    conns.push(c);
  }
  await sleep(100);
  const stop = peakSampler(srv.rt.proc.pid);
  const junk = Buffer.alloc(64 * 1024, 'A');
  for (const c of conns) for (let k = 0; k < 64; k++) c.write(junk);
  await sleep(3000);
  const peak = stop() - before;
  for (const c of conns) c.destroy();
  await srv.stop();
  return { conns: 300, peak_rss_mib: +(peak / 1024).toFixed(1) };
}

async function flood() {
  const srv = await guestServer(known(['--max-sessions', '100000000', '--max-pending', '10000']));
  const stop = peakSampler(srv.rt.proc.pid);
  const req = Buffer.from('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(64));
  let done = 0;
  const end = Date.now() + 15000;
  const workers = [];
  for (let w = 0; w < 32; w++) {
    workers.push((async () => {
      const c = await tcp(srv.port);
      c.on('error', () => {});
      let pending = 0;
      let wake;
      c.on('data', (d) => {
        let n = 0;
        for (let i = d.indexOf('HTTP/1.1 200'); i >= 0; i = d.indexOf('HTTP/1.1 200', i + 9)) n++;
        pending -= n;
        done += n;
        if (pending < 128 && wake) { const f = wake; wake = null; f(); }
      });
      while (Date.now() < end) {
        if (pending >= 256) await new Promise((r) => { wake = r; setTimeout(r, 50); });
        c.write(req);
        pending += 64;
      }
      c.destroy();
    })());
  }
  await Promise.all(workers);
  await sleep(200);
  const peak = stop();
  const rss = rssKiB(srv.rt.proc.pid);
  await srv.stop();
  return { handshakes: done, per_s: Math.round(done / 15), peak_rss_mib: +(peak / 1024).toFixed(1),
    rss_after_mib: +(rss / 1024).toFixed(1) };
}

async function collide() {
  const cache = path.join(ROOT, 'bench/results/tmp/collide-20000-15.txt');
  if (!fs.existsSync(cache)) {
    fs.mkdirSync(path.dirname(cache), { recursive: true });
    const r = spawnSync(path.join(ROOT, 'build/bench/collide'), ['20000', '15'], { encoding: 'utf8', maxBuffer: 1 << 26 });
    fs.writeFileSync(cache, r.stdout);
  }
  const ids = fs.readFileSync(cache, 'utf8').trim().split('\n');
  // On a fresh server each time: 5 sockets of 4000 rooms (a socket may be
  // in at most 4096); the server's CPU time for the joins is the measure.
  const run = async (list) => {
    const srv = await guestServer();
    const socks = [];
    for (let i = 0; i < 5; i++) {
      socks.push(await connectWs(srv.url, 'site1.local', { extraHeaders: { Origin: srv.url, 'X-Frappe-Site-Name': 'site1.local' } }));
    }
    const c0 = cpuMs(srv.rt.proc.pid);
    list.forEach((id, i) => socks[i % 5].emit('task_subscribe', id));
    await Promise.all(socks.map(pong));
    const ms = cpuMs(srv.rt.proc.pid) - c0;
    for (const s of socks) s.close();
    await srv.stop();
    return ms;
  };
  const plain = await run(ids.map((_, i) => `plain-${i}`));
  const colliding = await run(ids);
  return { ids: ids.length, server_cpu_ms_plain: plain, server_cpu_ms_colliding: colliding };
}

async function presence() {
  const [redis, fake] = await Promise.all([startRedis(), startFakeFrappe()]);
  await fake.config({
    users: {
      'alice@x': { user_type: 'System User', sids: ['sid-alice'], doctypes: ['ToDo'] },
      'bob@x': { user_type: 'System User', sids: ['sid-bob'], doctypes: ['ToDo'] },
    },
  });
  const port = await freePort();
  const bench = makeBench({ common_site_config: { redis_queue: redis.url, webserver_port: fake.port, socketio_port: port } });
  const rt = await startRealtimed(['--webserver-host', '127.0.0.1', '--log-level', 'error'], { cwd: bench, port });
  const url = `http://127.0.0.1:${port}`;
  const hdr = (sid) => ({ extraHeaders: { Cookie: `sid=${sid}`, Origin: url, 'X-Frappe-Site-Name': 'site1.local' } });
  const times = [];
  for (let round = 0; round < 5; round++) {
    const a = await connectWs(url, 'site1.local', hdr('sid-alice'));
    const b = await connectWs(url, 'site1.local', hdr('sid-bob'));
    const seen = [];
    a.on('doc_viewers', (v) => seen.push(v));
    a.emit('doc_open', 'ToDo', `R-${round}`);
    await sleep(150);
    b.emit('doc_open', 'ToDo', `R-${round}`);
    await waitFor(() => seen.some((v) => v.users.length === 2), 5000);
    const t0 = Date.now();
    b.io.engine.transport.ws._socket.destroy();
    await waitFor(() => seen.some((v) => v.users.length === 1), 30000, 5);
    times.push(Date.now() - t0);
    a.close();
    await sleep(100);
  }
  await rt.stop();
  await Promise.all([redis.stop(), fake.stop()]);
  return { ms: times };
}

async function shutdown() {
  const N = Number(opt('sessions', 160000));
  const srv = await guestServer(known(['--max-sessions', '0', '--max-pending', '0', '--connect-timeout', '3600000',
    '--ping-interval', '3600000', '--ping-timeout', '3600000']));
  const req = Buffer.from('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(50));
  let done = 0;
  const workers = [];
  for (let w = 0; w < 16; w++) {
    workers.push((async () => {
      const c = await tcp(srv.port);
      let got = 0;
      const share = Math.ceil(N / 16 / 50) * 50;
      await new Promise((resolve) => {
        c.on('data', (d) => {
          for (let i = d.indexOf('HTTP/1.1 200'); i >= 0; i = d.indexOf('HTTP/1.1 200', i + 9)) got++;
          if (got % 50 === 0 && got < share) c.write(req);
          if (got >= share) resolve();
        });
        c.write(req);
      });
      done += got;
      c.destroy();
    })());
  }
  await Promise.all(workers);
  const rss = rssKiB(srv.rt.proc.pid);
  const t0 = Date.now();
  const r = await srv.rt.stop(120000);
  const ms = Date.now() - t0;
  await srv.redis.stop();
  return { sessions: done, rss_mib: +(rss / 1024).toFixed(1), exit_ms: ms, exit: r };
}

const scenarios = { rooms, pipelined, flood, collide, presence, shutdown };
// The helpers unref their children; keep the loop alive while one is awaited.
const keepAlive = setInterval(() => {}, 1000);
for (const name of ONLY) {
  process.stderr.write(`attacks: ${name}...\n`);
  try {
    out[name] = await scenarios[name]();
  } catch (e) {
    out[name] = { error: String(e.message || e).slice(0, 300) };
  }
  process.stderr.write(`attacks: ${name}: ${JSON.stringify(out[name])}\n`);
}
clearInterval(keepAlive);
console.log(JSON.stringify(out, null, 1));
process.exit(0);
