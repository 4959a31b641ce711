// Presence across processes sharing one Redis: the workers of one realtimed
// (--workers 2) and separate realtimed nodes. doc_viewers lists every
// node's viewers in connection order with Frappe's de-duplication; a node
// killed with SIGKILL loses its viewers within 15 s; a Redis restart is
// reconciled.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ROOT, SAN_ENV } from '../lib/procs.mjs';
import {
  startStack, connected, collect, quiet, SITE1, T, startRealtimed, freePort, waitFor, sleep,
} from '../lib/frappe_helpers.mjs';
import { clientFor } from '../lib/frappe_helpers.mjs';

const stops = [];
after(async () => {
  for (const f of stops.reverse()) await f();
});

const children = (pid) => {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').map(Number).filter(Boolean);
  } catch { return []; }
};

const viewers = (doctype, docname, users) => [{ doctype, docname, users }];

// A connected client of a given user whose session lives on worker `tag`.
async function clientOn(stack, tag, cookie, opts = {}) {
  for (let i = 0; i < 80; i++) {
    const s = await connected(stack.client({ cookie, transports: ['websocket'], ...opts }));
    if (s.io.engine.id[0] === tag) return s;
    s.close();
  }
  throw new Error(`no session on worker ${tag}`);
}

// doc_open, then a round trip: its permission call and join are done
async function open(s, dt, dn) {
  s.emit('doc_open', dt, dn);
  await sleep(50);
}

async function twoWorkers() {
  const stack = await startStack({ args: ['--workers', '2', '--log-level', 'info'] });
  stops.push(() => stack.stop());
  await stack.rt.waitForLine(/workers serving/);
  await waitFor(async () => (await stack.redis.command('PUBSUB', 'NUMSUB', 'realtimed:presence'))[1] === 2, 10000);
  return stack;
}

test('--workers 2: viewers on both workers, in connection order, de-duplicated', async () => {
  const stack = await twoWorkers();
  const a = await clientOn(stack, 'A', 'sid=sid-alice');
  const b = await clientOn(stack, 'B', 'sid=sid-bob');
  const av = collect(a, 'doc_viewers');
  const bv = collect(b, 'doc_viewers');
  await open(b, 'ToDo', 'W-1'); // bob opens first, alice connected first
  assert.deepEqual(await quiet(bv, 500), [], 'self only: nothing');
  await open(a, 'ToDo', 'W-1');
  await waitFor(() => av.length === 1 && bv.length === 1, T);
  assert.deepEqual(av, [viewers('ToDo', 'W-1', ['alice@x', 'bob@x'])]);
  assert.deepEqual(bv, av);
  // alice's second tab on bob's worker: alice once
  const a2 = await clientOn(stack, 'B', 'sid=sid-alice');
  const a2v = collect(a2, 'doc_viewers');
  await open(a2, 'ToDo', 'W-1');
  await waitFor(() => av.length === 2 && bv.length === 2 && a2v.length === 1, T);
  assert.deepEqual(av[1], viewers('ToDo', 'W-1', ['alice@x', 'bob@x']));
  // bob closes: alice's tabs (one per worker) see only alice
  b.emit('doc_close', 'ToDo', 'W-1');
  await waitFor(() => av.length === 3 && a2v.length === 2, T);
  assert.deepEqual(av[2], viewers('ToDo', 'W-1', ['alice@x']));
  assert.deepEqual(a2v[1], av[2]);
  // bob again, then his socket goes: a disconnect updates the other worker
  await open(b, 'ToDo', 'W-1');
  await waitFor(() => av.length === 4, T);
  assert.deepEqual(av[3], viewers('ToDo', 'W-1', ['alice@x', 'bob@x']));
  b.close();
  await waitFor(() => av.length === 5, T);
  assert.deepEqual(av[4], viewers('ToDo', 'W-1', ['alice@x']));
  a.close();
  await waitFor(() => a2v.length >= 4, T); // alice's first tab went: the list is still [alice]
  assert.deepEqual(a2v.at(-1), viewers('ToDo', 'W-1', ['alice@x']));
  a2.close();
});

test('a worker killed with SIGKILL: its viewers leave the other worker\'s lists within 15 s', async () => {
  const stack = await twoWorkers();
  const a = await clientOn(stack, 'A', 'sid=sid-alice');
  const b = await clientOn(stack, 'B', 'sid=sid-bob');
  const av = collect(a, 'doc_viewers');
  await open(a, 'ToDo', 'K-1');
  await open(b, 'ToDo', 'K-1');
  await waitFor(() => av.length === 1, T);
  assert.deepEqual(av[0], viewers('ToDo', 'K-1', ['alice@x', 'bob@x']));
  // bob's session is on worker 1 ('B'): the master logs each worker's pid
  const line = stack.rt.lines.find((l) => /worker 1 started \(pid \d+\)/.test(l));
  const pid = Number(line.match(/pid (\d+)/)[1]);
  const t0 = Date.now();
  process.kill(pid, 'SIGKILL');
  await stack.rt.waitForLine(/worker 1 \(pid \d+\) was killed by signal 9/);
  await waitFor(() => av.length >= 2, 15000);
  const ms = Date.now() - t0;
  assert.deepEqual(av.at(-1), viewers('ToDo', 'K-1', ['alice@x']));
  assert.ok(ms <= 15000, `viewers gone after ${ms} ms`);
  assert.ok(stack.rt.lines.some((l) => /removed the viewers of 1 node/.test(l)));
  a.close();
});

test('three nodes on one Redis: presence across them; a node killed; Redis restarted', async () => {
  const stack = await startStack({ args: ['--log-level', 'info'] });
  stops.push(() => stack.stop());
  const nodes = [stack.rt];
  const ports = [stack.port];
  for (let i = 0; i < 2; i++) {
    const port = await freePort();
    const rt = await startRealtimed(['--webserver-host', '127.0.0.1', '--port', String(port), '--log-level', 'info'],
      { cwd: stack.bench, port });
    stops.push(() => (rt.isRunning() ? rt.stop() : null));
    nodes.push(rt);
    ports.push(port);
  }
  await waitFor(async () => (await stack.redis.command('PUBSUB', 'NUMSUB', 'realtimed:presence'))[1] === 3, 10000);
  const on = (i, cookie) => connected(clientFor(stack, { cookie, url: `http://127.0.0.1:${ports[i]}` }));
  const a = await on(0, 'sid=sid-alice');
  const b = await on(1, 'sid=sid-bob');
  const w = await on(2, 'sid=sid-web');
  const av = collect(a, 'doc_viewers');
  await open(a, 'ToDo', 'N-1');
  await open(b, 'ToDo', 'N-1');
  await waitFor(() => av.length === 1, T);
  await open(w, 'ToDo', 'N-1');
  await waitFor(() => av.length === 2, T);
  assert.deepEqual(av[1], viewers('ToDo', 'N-1', ['alice@x', 'bob@x', 'web@x']));
  // node 2 dies without saying goodbye
  const t0 = Date.now();
  nodes[2].proc.kill('SIGKILL');
  await waitFor(() => av.length === 3, 15000);
  assert.ok(Date.now() - t0 <= 15000);
  assert.deepEqual(av[2], viewers('ToDo', 'N-1', ['alice@x', 'bob@x']));
  // Redis restarts empty: the nodes announce their viewers again
  await stack.redis.restart();
  await waitFor(async () => (await stack.redis.command('PUBSUB', 'NUMSUB', 'realtimed:presence'))[1] === 2, 15000);
  await waitFor(async () => (await stack.redis.command('ZCARD', 'realtimed:viewers:/site1.local\0ToDo\0N-1')) === 2, 10000);
  const c = await on(1, 'sid=sid-web');
  const cv = collect(c, 'doc_viewers');
  await open(c, 'ToDo', 'N-1');
  await waitFor(() => cv.length >= 1, T);
  assert.deepEqual(cv.at(-1), viewers('ToDo', 'N-1', ['alice@x', 'bob@x', 'web@x']));
  for (const s of [a, b, c]) s.close();
});

test('Redis away: presence is computed locally and clients stay connected', async () => {
  const stack = await startStack({ args: ['--log-level', 'info'] });
  stops.push(() => stack.stop());
  const a = await connected(stack.client({ cookie: 'sid=sid-alice' }));
  const b = await connected(stack.client({ cookie: 'sid=sid-bob' }));
  await waitFor(async () => (await stack.redis.command('PUBSUB', 'NUMSUB', 'realtimed:presence'))[1] === 1, 10000);
  const av = collect(a, 'doc_viewers');
  await open(a, 'ToDo', 'R-1');
  await open(b, 'ToDo', 'R-1');
  await waitFor(() => av.length === 1, T);
  assert.deepEqual(av[0], viewers('ToDo', 'R-1', ['alice@x', 'bob@x']));
  await stack.redis.stop();
  await stack.rt.waitForLine(/lost the Redis connection/);
  b.emit('doc_close', 'ToDo', 'R-1'); // needs no permission call: works without Redis
  await waitFor(() => av.length === 2, T);
  assert.deepEqual(av[1], viewers('ToDo', 'R-1', ['alice@x']));
  assert.ok(a.connected && b.connected);
  a.close();
  b.close();
});

test('--workers 2: one handler host for both workers; its broadcasts reach members on the other worker', async () => {
  const FIX = path.join(ROOT, 'tests/fixtures/apps');
  const apps = { frappe: path.join(FIX, 'frappe'), fullapi: path.join(FIX, 'fullapi') };
  const stack = await startStack({ apps, sites: [SITE1], env: SAN_ENV, args: ['--workers', '2', '--log-level', 'info'] });
  stops.push(() => stack.stop());
  const users = {
    'alice@x': { user_type: 'System User', sids: ['sid-alice'], apps: ['frappe', 'fullapi'], doctypes: ['ToDo'] },
    'bob@x': { user_type: 'System User', sids: ['sid-bob'], apps: ['frappe', 'fullapi'], doctypes: ['ToDo'] },
  };
  await stack.fake.config({ users });
  await stack.rt.waitForLine(/workers serving/);
  await waitFor(() => stack.rt.lines.filter((l) => /node host ready/.test(l)).length === 2, 15000);
  const a = await clientOn(stack, 'A', 'sid=sid-alice');
  const b = await clientOn(stack, 'B', 'sid=sid-bob');
  const ack = (s, ev, ...args) => s.timeout(T).emitWithAck(ev, ...args);
  await ack(a, 'join_room', 'team');
  await ack(b, 'join_room', 'team');
  const aShout = collect(a, 'shouted');
  const bShout = collect(b, 'shouted');
  const aRelay = collect(a, 'relayed');
  const bRelay = collect(b, 'relayed');
  const bOther = collect(b, 'from_other');
  a.emit('shout', 'team', { n: 1 }); // nsp.to(room): the sender too
  a.emit('relay', 'team', { n: 2 }); // socket.to(room): not the sender
  a.emit('everyone_else', { n: 3 }); // socket.broadcast: the namespace but the sender
  await waitFor(() => aShout.length === 1 && bShout.length === 1 && bRelay.length === 1 && bOther.length === 1, T);
  assert.deepEqual(bShout, [[{ n: 1 }]]);
  assert.deepEqual(bRelay, [[{ n: 2 }, 'alice@x']]);
  assert.deepEqual(bOther, [[{ n: 3 }]]);
  assert.deepEqual(await quiet(aRelay), []);
  // one host for the machine: its room index has both workers' sockets
  const hosts = () => execFileSync('pgrep', ['-f', 'handlers-host.js'], { encoding: 'utf8' }).trim().split('\n')
    .map(Number).filter((p) => children(stack.rt.proc.pid).some((w) => children(w).includes(p)));
  assert.equal(hosts().length, 1);
  assert.deepEqual((await ack(a, 'members', 'team')).sort(), [a.id, b.id].sort());
  assert.deepEqual((await ack(b, 'members', 'team')).sort(), [a.id, b.id].sort());
  // the host dies: worker 0 restarts it, both workers replay their sockets
  const [host] = hosts();
  process.kill(host, 'SIGKILL');
  await waitFor(async () => {
    const h = hosts();
    if (h.length !== 1 || h[0] === host) return false;
    try {
      return (await ack(b, 'members', 'team')).length === 2;
    } catch { return false; }
  }, 15000, 200);
  assert.deepEqual((await ack(a, 'members', 'team')).sort(), [a.id, b.id].sort());
  a.close();
  b.close();
});

test('benches on one Redis with different databases do not share presence', async () => {
  const one = await startStack({ args: ['--log-level', 'info'] });
  stops.push(() => one.stop());
  const two = await startStack({ redis: one.redis, common: { redis_queue: `${one.redis.url}/2` }, args: ['--log-level', 'info'] });
  stops.push(() => two.stop());
  await waitFor(async () => (await one.redis.command('PUBSUB', 'NUMSUB', 'realtimed:presence'))[1] === 1 &&
    (await one.redis.command('PUBSUB', 'NUMSUB', 'realtimed:presence:2'))[1] === 1, 10000);
  const a = await connected(one.client({ cookie: 'sid=sid-alice' }));
  const b = await connected(two.client({ cookie: 'sid=sid-bob' }));
  const av = collect(a, 'doc_viewers');
  const bv = collect(b, 'doc_viewers');
  await open(a, 'ToDo', 'DB-1');
  await open(b, 'ToDo', 'DB-1');
  assert.deepEqual(await quiet(av, 500), []);
  assert.deepEqual(await quiet(bv, 500), []);
  a.close();
  b.close();
});
