// What an event costs a node that has no member in its room (issue 10:
// every node receives every Frappe event):
//
//   node bench/nomembers.mjs [--bin build/realtimed] [--events 200000]
//
// One realtimed on a bench with a site, 100 connected clients in other
// rooms; --events publishes of a Frappe envelope to task_progress:<nobody>
// are piped into Redis (redis-cli --pipe); the server's CPU time
// (schedstat, all threads) over the burst divided by the events is the cost
// per event: Redis reply parsing, the envelope scan, the room lookup.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, startRedis, startFakeFrappe, startRealtimed, makeBench, freePort, waitFor, sleep } from '../tests/lib/procs.mjs';
import { USERS } from '../tests/lib/frappe_helpers.mjs';

const { io } = createRequire(path.join(ROOT, 'tests/package.json'))('socket.io-client');
const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(`--${k}`); return i >= 0 ? args[i + 1] : d; };
const EVENTS = Number(opt('events', 200000));
process.env.REALTIMED_BIN = path.resolve(opt('bin', path.join(ROOT, 'build/realtimed')));
const SITE = 'site1.local';

const cpuNs = (pid) => fs.readdirSync(`/proc/${pid}/task`).reduce((sum, t) => {
  try { return sum + Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]); } catch { return sum; }
}, 0);

const redis = await startRedis();
const fake = await startFakeFrappe();
await fake.config({ users: USERS });
const port = await freePort();
const bench = makeBench({ common_site_config: { redis_queue: redis.url, webserver_port: fake.port, socketio_port: port },
  sites: [SITE] });
const rt = await startRealtimed(['--webserver-host', '127.0.0.1', '--log-level', 'warning'], { cwd: bench, port });
await waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'events'))[1] === 1, 10000);
const clients = [];
for (let i = 0; i < 100; i++) {
  clients.push(await new Promise((resolve, reject) => {
    const s = io(`http://127.0.0.1:${port}/${SITE}`, { forceNew: true, reconnection: false, transports: ['websocket'],
      extraHeaders: { Cookie: 'sid=sid-alice', Origin: `http://127.0.0.1:${port}`, 'X-Frappe-Site-Name': SITE } });
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  }));
}
const msg = JSON.stringify({ event: 'progress', message: { progress: [1, 100], title: 'x' }, room: 'task_progress:nobody',
  namespace: SITE });
const resp = (...a) => `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')}`;
const one = resp('PUBLISH', 'events', msg);
const file = path.join(bench, 'pipe.resp');
fs.writeFileSync(file, one.repeat(EVENTS));
await sleep(300);
const before = cpuNs(rt.proc.pid);
const t0 = Date.now();
spawnSync('sh', ['-c', `redis-cli -p ${redis.port} --pipe < ${file}`], { stdio: 'ignore' });
// the server may still be reading: wait until its CPU stops moving
let last = cpuNs(rt.proc.pid);
for (;;) {
  await sleep(200);
  const now = cpuNs(rt.proc.pid);
  if (now - last < 2e6) break;
  last = now;
}
const used = cpuNs(rt.proc.pid) - before;
console.log(JSON.stringify({ events: EVENTS, envelope_bytes: msg.length, wall_ms: Date.now() - t0,
  server_cpu_ms: Math.round(used / 1e6), ns_per_event: Math.round(used / EVENTS) }));
for (const s of clients) s.close();
await rt.stop();
await fake.stop();
await redis.stop();
process.exit(0);
