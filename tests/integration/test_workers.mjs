// --workers: one port, several worker processes. Polling requests and
// upgrades reach the worker that owns their session whichever worker the
// kernel gave the connection to (handed over with the bytes read); a worker
// killed with SIGKILL is restarted while the others carry on; Frappe events
// reach members on every worker exactly once, in order; SIGTERM stops all.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { io } from 'socket.io-client';
import { ROOT, freePort, startRealtimed, waitFor, sleep, tempDir } from '../lib/procs.mjs';
import { once, ack } from '../lib/core_helpers.mjs';
import { startStack, connected, collect, SITE1 } from '../lib/frappe_helpers.mjs';

const BIN = process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed');
const running = new Set();
after(async () => {
  for (const r of running) if (r.isRunning()) await r.stop();
});

async function conformance(workers, extra = [], opts = {}) {
  const port = opts.socketPath ? undefined : await freePort();
  const args = ['--conformance', '--workers', String(workers), '--log-level', 'info', '--ping-interval', '2000',
    '--ping-timeout', '10000', ...extra];
  if (port !== undefined) args.push('--port', String(port));
  const rt = await startRealtimed(args, { port, socketPath: opts.socketPath });
  running.add(rt);
  await rt.waitForLine(/workers serving/);
  return rt;
}

const children = (pid) => {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').map(Number).filter(Boolean);
  } catch { return []; } // pgrep exits 1 when there are none
};

// One HTTP request on a fresh connection (no agent: every request may land
// on any worker).
function request(target, method, p, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', ...target, method, path: p, agent: false,
      headers: body !== undefined ? { 'content-type': 'text/plain;charset=UTF-8' } : {} }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('timed out')));
    req.end(body);
  });
}

const eio = (extra = '') => `/engine.io/?EIO=4&transport=polling${extra}`;

test('polling sessions of both workers on fresh connections: every request reaches its owner', async () => {
  const rt = await conformance(2, ['--log-level', 'debug']);
  const target = { port: rt.port };
  const owners = new Set();
  for (let i = 0; i < 40; i++) {
    const hs = await request(target, 'GET', eio());
    assert.equal(hs.status, 200);
    const { sid } = JSON.parse(hs.body.slice(1));
    owners.add(sid[0]);
    // the echo server sends back every message; each request on its own connection
    assert.equal((await request(target, 'POST', eio(`&sid=${sid}`), `4hello ${i}`)).body, 'ok');
    const got = await request(target, 'GET', eio(`&sid=${sid}`));
    assert.equal(got.status, 200, got.body);
    assert.equal(got.body, `4hello ${i}`);
  }
  assert.deepEqual([...owners].sort(), ['A', 'B'], 'the kernel spreads sessions over both workers');
  assert.ok(rt.lines.some((l) => /w0\/workers: handing a request of session B/.test(l)));
  assert.ok(rt.lines.some((l) => /w1\/workers: handing a request of session A/.test(l)));
  // A body larger than what travels inline (a memfd carries it).
  const hs = await request(target, 'GET', eio());
  const { sid } = JSON.parse(hs.body.slice(1));
  const big = 'x'.repeat(200 * 1024);
  for (let i = 0; i < 6; i++) { // some of them land on the other worker
    assert.equal((await request(target, 'POST', eio(`&sid=${sid}`), `4${big}${i}`)).body, 'ok');
    const got = await request(target, 'GET', eio(`&sid=${sid}`));
    assert.equal(got.body, `4${big}${i}`);
  }
  // An unknown sid (any tag) is still "Session ID unknown".
  for (const bad of ['Bxxxxxxxxxxxxxxxxxxx', 'zzzzzzzzzzzzzzzzzzzz', 'A']) {
    const r = await request(target, 'GET', eio(`&sid=${bad}`));
    assert.equal(r.status, 400);
    assert.equal(r.body, '{"code":1,"message":"Session ID unknown"}');
  }
});

test('large bodies waiting for a stopped worker are capped (32 MiB), then delivered when it runs', async () => {
  const rt = await conformance(2);
  const sids = []; // sessions of worker 0, one POST each (Engine.IO allows one at a time)
  while (sids.length < 120) {
    const { sid } = JSON.parse((await request({ port: rt.port }, 'GET', eio())).body.slice(1));
    if (sid[0] === 'A') sids.push(sid);
  }
  const pid = Number(rt.lines.find((l) => /worker 0 started/.test(l)).match(/pid (\d+)/)[1]);
  const big = `4${'y'.repeat(900 * 1024)}`; // under maxPayload (1,000,000): a memfd each
  const results = [];
  process.kill(pid, 'SIGSTOP');
  try {
    for (const sid of sids) {
      request({ port: rt.port }, 'POST', eio(`&sid=${sid}`), big)
        .then((r) => results.push(r.body), (e) => results.push(`error ${e.code || e.message}`));
    }
    await waitFor(() => rt.lines.some((l) => /worker 0 has 32 MiB of large requests waiting/.test(l)), 15000);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await waitFor(() => results.length === sids.length, 30000);
  const ok = results.filter((r) => r === 'ok').length;
  const refused = results.length - ok;
  // about 35 wait in the channel (32 MiB), the ones the kernel gave worker 0
  // itself wait in its backlog; the rest are refused
  assert.ok(ok >= 35, `${ok} delivered`);
  assert.ok(refused >= 1, 'some were refused beyond the cap');
});

test('requests pipelined behind one another are not bounced between workers', async () => {
  const rt = await conformance(2);
  // a connection whose handshake tells which worker accepted it
  {
    const sock = net.connect(rt.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let buf = '';
    sock.on('data', (d) => { buf += d.toString('latin1'); });
    sock.write(`GET ${eio()} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => /\r\n\r\n0\{/.test(buf) && buf.includes('}'), 5000);
    const here = buf.match(/"sid":"(.)/)[1];
    // two sessions of the other worker
    const other = [];
    while (other.length < 2) {
      const { sid } = JSON.parse((await request({ port: rt.port }, 'GET', eio())).body.slice(1));
      if (sid[0] !== here) other.push(sid);
    }
    buf = '';
    const post = (sid, body) => `POST ${eio(`&sid=${sid}`)} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    sock.write(post(other[0], '4one') + post(other[1], '4two')); // one write: pipelined
    await waitFor(() => (buf.match(/HTTP\/1\.1 /g) || []).length >= 2, 5000);
    const statuses = [...buf.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
    // the first has bytes behind it: answered here, unknown; the last is handed over
    assert.deepEqual(statuses, ['400', '200']);
    assert.match(buf, /Session ID unknown/);
    sock.destroy();
    assert.ok(rt.lines.some((l) => /not handing over a request with \d+ bytes pipelined behind it/.test(l)));
  }
});

test('one keep-alive connection carrying requests of sessions owned by different workers', async () => {
  const rt = await conformance(2);
  const sids = [];
  while (sids.length < 6) {
    const { sid } = JSON.parse((await request({ port: rt.port }, 'GET', eio())).body.slice(1));
    sids.push(sid);
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const viaAgent = (method, p, body) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: rt.port, method, path: p, agent }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve(data));
    });
    req.on('error', reject);
    req.end(body);
  });
  for (let round = 0; round < 3; round++) {
    for (const sid of sids) {
      assert.equal(await viaAgent('POST', eio(`&sid=${sid}`), `4r${round}${sid}`), 'ok');
      assert.equal(await viaAgent('GET', eio(`&sid=${sid}`)), `4r${round}${sid}`);
    }
  }
  agent.destroy();
});

test('200 polling-only socket.io clients and 50 that upgrade: no session errors', async () => {
  const rt = await conformance(2);
  const errors = [];
  const sockets = [];
  const start = (transports, upgrade) => {
    const s = io(rt.url, { forceNew: true, reconnection: false, transports, upgrade, timeout: 20000 });
    s.on('connect_error', (e) => errors.push(`connect_error ${e.message}`));
    s.on('disconnect', (r) => errors.push(`disconnect ${r}`));
    sockets.push(s);
    return s;
  };
  const poll = Array.from({ length: 200 }, () => start(['polling'], false));
  const up = Array.from({ length: 50 }, () => start(['polling', 'websocket'], true));
  await Promise.all([...poll, ...up].map((s) => (s.connected ? null : once(s, 'connect', 20000))));
  await waitFor(() => up.every((s) => s.io.engine.transport.name === 'websocket'), 15000);
  // events and acks both ways, through several polling cycles
  for (let i = 0; i < 3; i++) {
    const res = await Promise.all([...poll, ...up].map((s, k) => ack(s, 'message-with-ack', k, i)));
    res.forEach((r, k) => assert.deepEqual(r, [k, i]));
  }
  const tags = new Set([...poll, ...up].map((s) => s.io.engine.id[0]));
  assert.deepEqual([...tags].sort(), ['A', 'B']);
  assert.deepEqual(errors, []);
  for (const s of sockets) s.close();
});

test('a worker killed with SIGKILL is restarted; the other keeps its clients', async () => {
  const rt = await conformance(2);
  const ws = [];
  while (new Set(ws.map((s) => s.io.engine.id[0])).size < 2 || ws.length < 10) {
    const s = io(rt.url, { forceNew: true, reconnection: false, transports: ['websocket'] });
    await once(s, 'connect');
    ws.push(s);
  }
  const workers = children(rt.proc.pid);
  assert.equal(workers.length, 2);
  // find which pid owns tag A: its clients go away when it dies
  const victim = workers[0];
  process.kill(victim, 'SIGKILL');
  await rt.waitForLine(/worker \d \(pid \d+\) was killed by signal 9 .*restarting it/);
  await waitFor(() => ws.some((s) => !s.connected), 5000);
  // every client of the dead worker notices its closed socket, not only the first (slow under ASan)
  let gone = -1;
  await waitFor(async () => {
    const now = ws.filter((s) => !s.connected).length;
    const settled = now === gone;
    gone = now;
    await new Promise((r) => setTimeout(r, 200));
    return settled;
  }, 5000, 0);
  const alive = ws.filter((s) => s.connected);
  assert.ok(alive.length > 0 && alive.length < ws.length);
  for (const s of alive) assert.deepEqual(await ack(s, 'message-with-ack', 'still'), ['still']);
  await waitFor(() => children(rt.proc.pid).length === 2 && !children(rt.proc.pid).includes(victim), 5000);
  // new clients are served by both again
  const fresh = [];
  while (new Set(fresh.map((s) => s.io.engine.id[0])).size < 2) {
    const s = io(rt.url, { forceNew: true, reconnection: false, transports: ['websocket'] });
    await once(s, 'connect');
    assert.deepEqual(await ack(s, 'message-with-ack', 1), [1]);
    fresh.push(s);
    assert.ok(fresh.length < 60, 'both workers serve new connections');
  }
  for (const s of [...ws, ...fresh]) s.close();
  const r = await rt.stop();
  assert.equal(r.code, 0);
  assert.deepEqual(children(rt.proc.pid), []);
});

test('a Unix socket shared by the workers; SIGTERM stops every worker and removes it', async () => {
  const dir = tempDir();
  const socketPath = path.join(dir, 'rt.sock');
  const rt = await conformance(2, ['--uds', socketPath], { socketPath });
  for (let i = 0; i < 10; i++) {
    const hs = await request({ socketPath }, 'GET', eio());
    const { sid } = JSON.parse(hs.body.slice(1));
    assert.equal((await request({ socketPath }, 'POST', eio(`&sid=${sid}`), '4u')).body, 'ok');
    assert.equal((await request({ socketPath }, 'GET', eio(`&sid=${sid}`))).body, '4u');
  }
  const pids = children(rt.proc.pid);
  const r = await rt.stop();
  assert.equal(r.code, 0);
  for (const p of pids) assert.throws(() => process.kill(p, 0));
  await assert.rejects(new Promise((resolve, reject) => {
    const c = net.connect(socketPath, resolve);
    c.on('error', reject);
  }));
});

test('a worker that cannot start stops the master with its exit code', async () => {
  const port = await freePort();
  // not a bench (no sites/): every worker fails in its setup
  const p = spawnSync(BIN, ['--workers', '2', '--port', String(port)], { cwd: tempDir(), encoding: 'utf8', timeout: 20000 });
  assert.equal(p.status, 78, p.stderr); // EX_CONFIG, as without workers
  assert.match(p.stderr, /is not a Frappe bench/);
  assert.match(p.stderr, /before it served: stopping/);
});

test('invalid --workers values are refused', async () => {
  for (const v of ['0', '65', 'x', '-1', '2x']) {
    const port = await freePort();
    const p = spawnSync(BIN,
      ['--conformance', '--workers', v, '--port', String(port)], { encoding: 'utf8' });
    assert.equal(p.status, 78, `--workers ${v}`); // EX_CONFIG
    assert.match(p.stderr, /invalid value '.*' for workers: expected auto or 1\.\.64/);
  }
  for (const v of ['', 'a-b', '123456789', 'n 1']) {
    const p = spawnSync(BIN, ['--conformance', '--node-id', v, '--port', '1'], { encoding: 'utf8' });
    assert.equal(p.status, 78, `--node-id '${v}'`);
    assert.match(p.stderr, /for node_id: expected 1 to 8 letters or digits/);
  }
});

test('--node-id with --workers: sids start with the node id, then the worker tag', async () => {
  const rt = await conformance(2, ['--node-id', 'm7']);
  const tags = new Set();
  for (let i = 0; i < 30; i++) {
    const { sid } = JSON.parse((await request({ port: rt.port }, 'GET', eio())).body.slice(1));
    assert.match(sid, /^m7[AB][A-Za-z0-9_-]{20}$/);
    tags.add(sid[2]);
    assert.equal((await request({ port: rt.port }, 'POST', eio(`&sid=${sid}`), '4x')).body, 'ok');
    assert.equal((await request({ port: rt.port }, 'GET', eio(`&sid=${sid}`))).body, '4x');
  }
  assert.deepEqual([...tags].sort(), ['A', 'B']);
  // another machine's session is not handed to a worker: unknown here
  const r = await request({ port: rt.port }, 'GET', eio('&sid=m8Bxxxxxxxxxxxxxxxxxxxx'));
  assert.equal(r.body, '{"code":1,"message":"Session ID unknown"}');
});

test('Frappe mode: Redis events reach members on every worker once and in order', async () => {
  const stack = await startStack({ args: ['--workers', '2', '--log-level', 'info'] });
  running.add(stack.rt);
  try {
    await stack.rt.waitForLine(/workers serving/);
    await waitFor(async () => (await stack.redis.command('PUBSUB', 'NUMSUB', 'events'))[1] === 2, 10000);
    const clients = [];
    for (let i = 0; i < 24; i++) {
      clients.push(await connected(stack.client({ cookie: i % 2 ? 'sid=sid-alice' : 'sid=sid-bob',
        transports: i % 3 ? ['websocket'] : ['polling'] })));
    }
    assert.deepEqual([...new Set(clients.map((s) => s.io.engine.id[0]))].sort(), ['A', 'B']);
    const got = clients.map((s) => collect(s, 'seq'));
    for (let i = 0; i < 50; i++) await stack.redis.publish('events', { event: 'seq', message: i, room: 'all', namespace: SITE1 });
    await waitFor(() => got.every((g) => g.length >= 50), 10000);
    await sleep(200);
    for (const g of got) assert.deepEqual(g.map((a) => a[0]), [...Array(50).keys()]);
  } finally {
    const r = await stack.stop();
    assert.equal(r.code, 0);
  }
});
