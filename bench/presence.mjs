// Presence across workers (issue 10): how long a viewer change on one worker
// takes to reach a viewer on the other.
//
//   node bench/presence.mjs [--bin build/realtimed] [--rounds 500] [--workers 2]
//
// Alice's socket is on worker 0, Bob's on worker 1 (sids are tagged by
// worker). Each round Bob sends doc_close then doc_open for one document;
// the time from Bob's doc_close to Alice's doc_viewers [alice] is one sample
// (doc_close needs no call to the web server, so the sample is realtimed +
// Redis: the Lua script, the publish, both workers). With --workers 1 the
// same through one process (the list still goes through Redis). Prints JSON.
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, startRedis, startFakeFrappe, startRealtimed, makeBench, freePort, waitFor } from '../tests/lib/procs.mjs';
import { USERS } from '../tests/lib/frappe_helpers.mjs';

const { io } = createRequire(path.join(ROOT, 'tests/package.json'))('socket.io-client');
const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(`--${k}`); return i >= 0 ? args[i + 1] : d; };
const ROUNDS = Number(opt('rounds', 500));
const WORKERS = Number(opt('workers', 2));
process.env.REALTIMED_BIN = path.resolve(opt('bin', path.join(ROOT, 'build/realtimed')));
const SITE = 'site1.local';

const redis = await startRedis();
const fake = await startFakeFrappe();
await fake.config({ users: USERS });
const port = await freePort();
const bench = makeBench({ common_site_config: { redis_queue: redis.url, webserver_port: fake.port, socketio_port: port },
  sites: [SITE] });
const rt = await startRealtimed(['--webserver-host', '127.0.0.1', '--workers', String(WORKERS), '--log-level', 'warning'],
  { cwd: bench, port });
await waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'realtimed:presence'))[1] === WORKERS, 10000);

const connect = (cookie) => new Promise((resolve, reject) => {
  const s = io(`http://127.0.0.1:${port}/${SITE}`, { forceNew: true, reconnection: false, transports: ['websocket'],
    extraHeaders: { Cookie: cookie, Origin: `http://127.0.0.1:${port}`, 'X-Frappe-Site-Name': SITE } });
  s.once('connect', () => resolve(s));
  s.once('connect_error', reject);
});
async function on(tag, cookie) {
  for (;;) {
    const s = await connect(cookie);
    if (WORKERS === 1 || s.io.engine.id[0] === tag) return s;
    s.close();
  }
}
const a = await on('A', 'sid=sid-alice');
const b = await on('B', 'sid=sid-bob');
let waiting = null;
a.on('doc_viewers', (v) => { if (waiting && v.users.length === waiting.n) { const w = waiting; waiting = null; w.resolve(); } });
const next = (n) => new Promise((resolve) => { waiting = { n, resolve }; });
a.emit('doc_open', 'ToDo', 'B-1');
await new Promise((r) => setTimeout(r, 200));
let p = next(2);
b.emit('doc_open', 'ToDo', 'B-1');
await p;
const samples = [];
for (let i = 0; i < ROUNDS; i++) {
  p = next(1);
  const t0 = process.hrtime.bigint();
  b.emit('doc_close', 'ToDo', 'B-1');
  await p;
  samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  p = next(2);
  b.emit('doc_open', 'ToDo', 'B-1');
  await p;
}
samples.sort((x, y) => x - y);
const q = (f) => Number(samples[Math.min(samples.length - 1, Math.floor(f * samples.length))].toFixed(3));
console.log(JSON.stringify({ workers: WORKERS, rounds: ROUNDS, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: q(1) }));
a.close();
b.close();
await rt.stop();
await fake.stop();
await redis.stop();
process.exit(0);
