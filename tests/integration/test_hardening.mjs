// Hardening (issue 8): what outside attacks and reviews found, each through
// a real client or a small raw-socket script against a Frappe-mode stack
// (redis-server, the fake Frappe web server, realtimed on a temp bench).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  SITE1, T, startStack, connect, once, collectAll, roundTrip, publish, quiet, sleep, waitFor,
} from '../lib/frappe_helpers.mjs';
import { rawRequest, rssKiB } from '../lib/core_helpers.mjs';
import { SAN_ENV } from '../lib/procs.mjs';

let stack;

before(async () => {
  stack = await startStack({ env: SAN_ENV });
});

after(async () => {
  const r = await stack?.stop();
  assert.deepEqual(r, { code: 0, signal: null }, stack?.rt.output());
  assert.doesNotMatch(stack.rt.output(), /AddressSanitizer|LeakSanitizer|runtime error/);
});

/** Samples the RSS of pid every 10 ms; stop() returns the highest (KiB). */
function samplePeak(pid) {
  let max = rssKiB(pid);
  const iv = setInterval(() => { max = Math.max(max, rssKiB(pid)); }, 10);
  return { stop: () => { clearInterval(iv); return Math.max(max, rssKiB(pid)); } };
}

/** The server is alive and answers a fresh authenticated client. */
async function healthy() {
  assert.ok(stack.rt.isRunning(), `server died:\n${stack.rt.output()}`);
  const s = await connect(stack, { cookie: 'sid=sid-alice' });
  await roundTrip(s);
  s.close();
}

test('HTTP/1.0 handshake without a Host header: answered, nothing undefined', async () => {
  const r = await rawRequest(stack.port, 'GET /socket.io/?EIO=4&transport=polling HTTP/1.0\r\n\r\n');
  r.socket.destroy();
  assert.equal(r.status, 200);
  assert.match(r.body.toString(), /^0\{"sid":"[\w-]{20}"/);
  // and the same with empty Origin/Host-like headers
  const r2 = await rawRequest(stack.port,
    'GET /socket.io/?EIO=4&transport=polling HTTP/1.0\r\nOrigin:\r\nX-Frappe-Site-Name:\r\n\r\n');
  r2.socket.destroy();
  assert.equal(r2.status, 200);
  await healthy();
});

test('room names: over 1024 bytes refused; 128 KiB of names per socket; logged once a second', async () => {
  const s = await connect(stack, { cookie: 'sid=sid-alice' });
  const long = 'x'.repeat(1100);
  for (let i = 0; i < 50; i++) s.emit('task_subscribe', `${long}${i}`);
  // 1000-byte ids: "task_progress:" + 1000 = 1014 bytes each; 128 KiB holds 129 of them
  const id = (i) => String(i).padStart(1000, '0');
  for (let i = 0; i < 200; i++) s.emit('task_subscribe', id(i));
  await roundTrip(s);
  const got = collectAll(s);
  await publish(stack.redis, { event: 'long', message: 1, room: `task_progress:${long}0`, namespace: SITE1 });
  await publish(stack.redis, { event: 'first', message: 2, room: `task_progress:${id(0)}`, namespace: SITE1 });
  await publish(stack.redis, { event: 'last', message: 3, room: `task_progress:${id(199)}`, namespace: SITE1 });
  await waitFor(() => got.some(([e]) => e === 'first'));
  await quiet(got);
  assert.deepEqual(got.map(([e]) => e), ['first'], 'only joins within the bounds happened');
  await stack.rt.waitForLine(/join refused/);
  const refusals = stack.rt.output().split('\n').filter((l) => /join refused/.test(l));
  assert.ok(refusals.length >= 1 && refusals.length <= 12, `rate-limited: ${refusals.length} lines`);
  assert.match(refusals[0], /room name too long|names/);
  // leaving frees the budget: a new join fits again
  for (let i = 0; i < 10; i++) s.emit('task_unsubscribe', id(i));
  s.emit('task_subscribe', 'short-one');
  await roundTrip(s);
  const p = once(s, 'fits');
  await publish(stack.redis, { event: 'fits', message: 4, room: 'task_progress:short-one', namespace: SITE1 });
  assert.deepEqual(await p, [4]);
  s.close();
});

test('a socket sending 300 task_subscribe of ~1 MB holds no memory for them', async () => {
  const s = await connect(stack, { cookie: 'sid=sid-alice', transports: ['websocket'] });
  const before = rssKiB(stack.rt.proc.pid);
  const big = 'y'.repeat(999000);
  for (let i = 0; i < 300; i++) {
    s.emit('task_subscribe', `${i}${big}`);
    if (i % 20 === 19) await roundTrip(s);
  }
  await roundTrip(s);
  const grown = rssKiB(stack.rt.proc.pid) - before; /* joined rooms stay: RSS now is the measure */
  assert.ok(grown < 32 * 1024, `RSS grew by ${grown} KiB`);
  s.close();
  await healthy();
});

test('input pipelined behind a parked long-poll: not read (backpressure), bounded, answered after', async () => {
  const { tcp, peerClosed, parseResponse } = await import('../lib/core_helpers.mjs');
  const { rawPolling } = await import('../lib/frappe_helpers.mjs');
  const target = { port: stack.port };
  // 1. a small pipelined request is answered once the parked GET is
  const p = await rawPolling(target);
  const s = await tcp(stack.port);
  let data = Buffer.alloc(0);
  s.on('data', (d) => { data = Buffer.concat([data, d]); });
  s.write(`GET /socket.io/?EIO=4&transport=polling&sid=${p.sid} HTTP/1.1\r\nHost: x\r\n\r\n`
    + 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(200);
  assert.equal(data.length, 0, 'the GET is parked and the pipelined request waits');
  assert.equal(await p.send('40'), 'ok'); // CONNECT to "/": the parked GET gets the answer
  await waitFor(() => {
    const r1 = parseResponse(data);
    return r1 && parseResponse(data.subarray(r1.length));
  });
  const r1 = parseResponse(data);
  const r2 = parseResponse(data.subarray(r1.length));
  assert.equal(r1.status, 200);
  assert.match(r1.body.toString(), /^40\{"sid":/);
  assert.equal(r2.status, 200);
  assert.equal(r2.body.toString(), 'ok');
  s.destroy();

  // 2. 100 connections each pushing 4 MB behind a parked GET
  const before = rssKiB(stack.rt.proc.pid);
  const junk = Buffer.alloc(64 * 1024, 'A');
  const conns = [];
  for (let i = 0; i < 100; i++) {
    const q = await rawPolling(target);
    const c = await tcp(stack.port);
    c.on('error', () => {});
    c.write(`GET /socket.io/?EIO=4&transport=polling&sid=${q.sid} HTTP/1.1\r\nHost: x\r\n\r\n`);
    conns.push(c);
  }
  await sleep(100);
  const peak = samplePeak(stack.rt.proc.pid);
  for (const c of conns) for (let k = 0; k < 64; k++) c.write(junk);
  await sleep(1500);
  const grown = peak.stop() - before;
  console.log(`# pipelined flood: peak RSS +${grown} KiB`);
  assert.ok(grown < 20 * 1024, `RSS grew by ${grown} KiB`);
  // each of them is either closed (it sent more than the bound in one go) or paused
  for (const c of conns) c.destroy();
  await healthy();
});

/** A plain HTTP server that records every request (an attacker's, or a site's own). */
async function recorder() {
  const http = await import('node:http');
  const seen = [];
  const srv = http.createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ message: { user: 'alice@x', user_type: 'System User', installed_apps: ['frappe'] } }));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { seen, port: srv.address().port, close: () => new Promise((r) => srv.close(r)) };
}

test("the auth backchannel never follows an Origin that is not a site's own name", async () => {
  const { startRealtimed, makeBench, freePort } = await import('../lib/procs.mjs');
  const { clientFor, connected, callbacks } = await import('../lib/frappe_helpers.mjs');
  const evil = await recorder();
  const port = await freePort();
  // no webserver_host: the default bench config
  const bench = makeBench({
    common_site_config: { redis_queue: stack.redis.url, webserver_port: stack.fake.port, socketio_port: port },
    sites: [SITE1, 'localhost'],
  });
  await stack.redis.command('SET', 'socketio_auth_secret', 'the-secret');
  const rt = await startRealtimed([], { cwd: bench, port });
  const local = { port, url: `http://127.0.0.1:${port}` };
  try {
    await stack.fake.reset();
    const { USERS } = await import('../lib/frappe_helpers.mjs');
    await stack.fake.config({ users: USERS, secret: 'the-secret' });
    const attempts = [
      `http://127.0.0.1:${evil.port}`, // any host that is no site folder
      `http://127.0.0.1:${evil.port}/path?q=1`, // a path and a query
      `http://${SITE1}@127.0.0.1:${evil.port}`, // userinfo: the Host check passes, curl would go elsewhere
    ];
    for (const origin of attempts) {
      const host = origin.replace(/^https?:\/\//, '').replace(/[/?].*$/, '');
      const s = clientFor(local, { origin, headers: { Host: host }, transports: ['websocket'] });
      await connected(s); // authenticated through 127.0.0.1:webserver_port (the fake)
      s.close();
    }
    assert.equal(evil.seen.length, 0, 'nothing, and above all no secret or cookie, went to the Origin');
    const reqs = await callbacks(stack.fake, 'get_user_info', attempts.length);
    for (const r of reqs) {
      assert.equal(r.headers.host, `127.0.0.1:${stack.fake.port}`);
      assert.equal(r.headers['x-frappe-site-name'], SITE1);
      assert.equal(r.headers['x-frappe-socket-secret'], 'the-secret');
    }
    // An Origin that is a site of this bench by its own name is used as Node does.
    const s = clientFor(local, { origin: `http://localhost:${evil.port}`, xsite: 'localhost', nsp: 'localhost',
      headers: { Host: `localhost:${evil.port}` }, transports: ['websocket'] });
    await connected(s);
    s.close();
    assert.equal(evil.seen.length, 1);
    assert.match(evil.seen[0].url, /^\/api\/method\/frappe\.realtime\.get_user_info/);
  } finally {
    await stack.redis.command('DEL', 'socketio_auth_secret');
    await stack.fake.reset();
    const { USERS } = await import('../lib/frappe_helpers.mjs');
    await stack.fake.config({ users: USERS });
    const r = await rt.stop();
    await evil.close();
    assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  }
});

test('session flood: pending handshakes evict the oldest, max_sessions answers 503, long Authorization refused', async () => {
  const { startRealtimed, makeBench, freePort } = await import('../lib/procs.mjs');
  const { rawPolling, httpRequest, clientFor, connected, connectError, callbacks } = await import('../lib/frappe_helpers.mjs');
  const port = await freePort();
  const bench = makeBench({
    common_site_config: { redis_queue: stack.redis.url, webserver_port: stack.fake.port, socketio_port: port },
    sites: [SITE1],
  });
  const rt = await startRealtimed(['--webserver-host', '127.0.0.1', '--max-pending', '50', '--max-sessions', '120'],
    { cwd: bench, port });
  const local = { port, url: `http://127.0.0.1:${port}` };
  const target = { port };
  try {
    // 100 handshakes that never CONNECT: the first 50 are closed as the next 50 arrive
    const flood = [];
    for (let i = 0; i < 100; i++) flood.push(await rawPolling(target));
    const poll = (sid) => httpRequest({ ...target, path: `/socket.io/?EIO=4&transport=polling&sid=${sid}` });
    const oldest = await poll(flood[0].sid);
    assert.equal(oldest.status, 400);
    assert.equal(oldest.body, '{"code":1,"message":"Session ID unknown"}');
    await rt.waitForLine(/waiting to join a namespace \(max_pending\): closing the oldest/);
    // a real client after the flood still gets in
    const s = clientFor(local, { transports: ['websocket'] });
    await connected(s);
    // joining "/" (no authentication there) does not admit a session: it is still pending
    const anon = await rawPolling(target);
    assert.equal(await anon.send('40'), 'ok');
    for (let i = 0; i < 60; i++) await rawPolling(target);
    assert.equal((await poll(anon.sid)).body, '{"code":1,"message":"Session ID unknown"}');
    // authenticated sessions are not pending; the total is capped by max_sessions
    const admitted = [];
    const auth = { Cookie: 'sid=sid-alice', Origin: `http://127.0.0.1:${port}`, 'X-Frappe-Site-Name': SITE1 };
    // sessions now: 49 of the flood still pending (each new handshake evicts one) and s
    for (let i = 0; i < 120 - 49 - 1; i++) {
      const p = await rawPolling(target, auth);
      assert.equal(await p.send(`40/${SITE1},`), 'ok');
      assert.match((await p.recv())[0], /^40\/site1\.local,\{"sid"/);
      admitted.push(p);
    }
    const full = await httpRequest({ ...target, path: '/socket.io/?EIO=4&transport=polling' });
    assert.equal(full.status, 503);
    assert.equal(full.headers['retry-after'], '1');
    assert.equal(full.body, '{"code":3,"message":"Server is full"}');
    await rt.waitForLine(/refused a handshake: 120 sessions \(max_sessions\)/);
    s.close();
    // an Authorization longer than 4 KiB is refused before any callback
    await stack.fake.reset();
    const { USERS } = await import('../lib/frappe_helpers.mjs');
    await stack.fake.config({ users: USERS });
    for (const p of admitted) await p.send('1'); // free the slots
    await sleep(100);
    const big = clientFor(local, { cookie: null, authorization: `token ${'k'.repeat(15000)}`, transports: ['websocket'] });
    assert.equal(await connectError(big), 'Unauthorized: Error: Authorization header too long');
    assert.equal((await stack.fake.requests('get_user_info')).length, 0);
  } finally {
    const r = await rt.stop();
    assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  }
});

test('Redis down at connect: auth waits for the secret; a stalled Redis fails it at the auth timeout, logged', async () => {
  const { startRealtimed, makeBench, freePort, startRedis } = await import('../lib/procs.mjs');
  const { clientFor, connected, connectError } = await import('../lib/frappe_helpers.mjs');
  const redis = await startRedis();
  const port = await freePort();
  const bench = makeBench({
    common_site_config: { redis_queue: redis.url, webserver_port: stack.fake.port, socketio_port: port },
    sites: [SITE1],
  });
  const rt = await startRealtimed(['--webserver-host', '127.0.0.1', '--auth-timeout', '1500'], { cwd: bench, port });
  const local = { port, url: `http://127.0.0.1:${port}` };
  try {
    await rt.waitForLine(/connected to Redis/);
    // 1. Redis restarting: the connect waits for it and succeeds (no Unauthorized)
    await redis.stop();
    await rt.waitForLine(/lost the Redis connection/);
    const s = clientFor(local, { transports: ['websocket'] });
    const ok = connected(s);
    await sleep(400);
    await redis.restart();
    await ok;
    s.close();
    await rt.waitForLine(/reconnected to Redis/);
    // 2. Redis stalled (SIGSTOP): refused at the auth timeout, with a log line
    redis.proc.kill('SIGSTOP');
    try {
      const t0 = Date.now();
      const e = await connectError(clientFor(local, { transports: ['websocket'] }));
      assert.equal(e, 'Unauthorized: Error: the socket secret could not be read from Redis');
      const took = Date.now() - t0;
      assert.ok(took >= 1400 && took < 6000, `refused after ${took} ms`);
      await rt.waitForLine(/did not answer GET socketio_auth_secret in time \(stalled\?\)/);
    } finally {
      redis.proc.kill('SIGCONT');
    }
    const s2 = clientFor(local, { transports: ['websocket'] });
    await connected(s2);
    s2.close();
  } finally {
    const r = await rt.stop();
    await redis.stop();
    assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  }
});

test('Redis logging: unreachable at startup is logged at once; a wrong password backs off, never "reconnected"', async () => {
  const { startRealtimed, makeBench, freePort, startRedis } = await import('../lib/procs.mjs');
  const redisPort = await freePort();
  const port = await freePort();
  const bench = makeBench({
    common_site_config: { redis_queue: `redis://:wrong@127.0.0.1:${redisPort}`, socketio_port: port },
    sites: [SITE1],
  });
  const rt = await startRealtimed([], { cwd: bench, port });
  try {
    await rt.waitForLine(/cannot reach Redis at 127\.0\.0\.1:\d+ \(.*\): retrying/, 2000);
    const redis = await startRedis({ port: redisPort });
    await redis.command('CONFIG', 'SET', 'requirepass', 'right');
    try {
      await sleep(3000);
      const lines = rt.lines.filter((l) => / broker: /.test(l));
      assert.ok(lines.length <= 4, `backed off: ${lines.length} lines\n${lines.join('\n')}`);
      assert.doesNotMatch(rt.output(), /reconnected|connected to Redis/);
      // the reason names the refusal (AUTH), not a generic connect error
      await rt.waitForLine(/still unavailable after \d+ s \(Redis refused the .* link's setup: WRONGPASS/, 12000);
    } finally {
      redis.proc.kill('SIGKILL'); // stop() would PING without the password
    }
  } finally {
    const r = await rt.stop();
    assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  }
});

/** doc_open and wait until s is in the open_doc room (after its permission callback). */
async function openDoc(s, dt, dn) {
  const { publishUntil, collect } = await import('../lib/frappe_helpers.mjs');
  s.emit('doc_open', dt, dn);
  const ev = `opened${Math.random()}`;
  const got = collect(s, ev);
  await publishUntil(stack.redis, { event: ev, message: null, room: `open_doc:${dt}/${dn}`, namespace: SITE1 }, got);
  s.off(ev);
}

test('presence: a dropped TCP connection updates the other viewers at once', async () => {
  const { collect } = await import('../lib/frappe_helpers.mjs');
  const a = await connect(stack, { cookie: 'sid=sid-alice' });
  const b = await connect(stack, { cookie: 'sid=sid-bob', transports: ['websocket'] });
  const av = collect(a, 'doc_viewers');
  await openDoc(a, 'ToDo', 'D-1');
  await openDoc(b, 'ToDo', 'D-1');
  await waitFor(() => av.length === 1);
  // bob's machine goes away: its TCP connection ends without a Socket.IO goodbye
  const t0 = Date.now();
  b.io.engine.transport.ws._socket.destroy();
  await waitFor(() => av.length === 2, 5000);
  const took = Date.now() - t0;
  assert.deepEqual(av[1], [{ doctype: 'ToDo', docname: 'D-1', users: ['alice@x'] }]);
  // noticed in the same loop turn, not at the next timer (1.5-15 s before)
  assert.ok(took < 1000, `doc_viewers after ${took} ms`);
  a.close();
  b.close();
});

test('presence: doc_close from a socket that never opened the document broadcasts nothing', async () => {
  const { collect } = await import('../lib/frappe_helpers.mjs');
  const a = await connect(stack, { cookie: 'sid=sid-alice' });
  const b = await connect(stack, { cookie: 'sid=sid-bob' });
  const av = collect(a, 'doc_viewers');
  await openDoc(a, 'ToDo', 'D-2');
  for (let i = 0; i < 20; i++) b.emit('doc_close', 'ToDo', 'D-2');
  await roundTrip(b);
  await quiet(av);
  assert.deepEqual(av, []);
  a.close();
  b.close();
});

test('presence: a polling viewer that never polls holds only the latest doc_viewers', async () => {
  const { rawPolling } = await import('../lib/frappe_helpers.mjs');
  const headers = { Cookie: 'sid=sid-web', Origin: `http://127.0.0.1:${stack.port}`, 'X-Frappe-Site-Name': SITE1 };
  const p = await rawPolling({ port: stack.port }, headers);
  assert.equal(await p.send(`40/${SITE1},`), 'ok');
  assert.match((await p.recv())[0], /^40\/site1\.local,\{"sid"/);
  assert.equal(await p.send(`42/${SITE1},["doc_open","ToDo","D-3"]`), 'ok');
  await waitFor(async () => (await stack.fake.requests('has_permission')).some((r) => r.raw_query.includes('D-3')));
  await sleep(100);
  // 30 viewers come and go while the polling viewer does not poll
  for (let i = 0; i < 30; i++) {
    const s = await connect(stack, { cookie: i % 2 ? 'sid=sid-alice' : 'sid=sid-bob' });
    await openDoc(s, 'ToDo', 'D-3');
    s.close();
  }
  await sleep(300);
  const pkts = (await p.recv()).filter((x) => x.includes('doc_viewers'));
  assert.equal(pkts.length, 1, pkts.join('\n'));
  assert.equal(pkts[0], `42/${SITE1},["doc_viewers",{"doctype":"ToDo","docname":"D-3","users":["web@x"]}]`);
});

test('permission checks: at most 32 in flight per socket, names bounded; the log cannot be forged', async () => {
  const { collect } = await import('../lib/frappe_helpers.mjs');
  await stack.fake.config({ delay_ms: { has_permission: 300 } });
  try {
    const s = await connect(stack, { cookie: 'sid=sid-web' });
    const before = (await stack.fake.requests('has_permission')).length;
    for (let i = 0; i < 500; i++) s.emit('doctype_subscribe', `DT${i}`);
    s.emit('doctype_subscribe', 'x'.repeat(300)); // over the doctype bound
    await roundTrip(s);
    await sleep(1000);
    const made = (await stack.fake.requests('has_permission')).length - before;
    assert.ok(made <= 32, `${made} permission calls`);
    await stack.rt.waitForLine(/permission check refused \(too many permission checks in flight\)/);
    // doc_open of one document again and again: held once
    await stack.fake.config({ delay_ms: {} });
    const a = await connect(stack, { cookie: 'sid=sid-alice' });
    const v = collect(a, 'doc_viewers');
    await openDoc(a, 'ToDo', 'same');
    for (let i = 0; i < 20; i++) a.emit('doc_open', 'ToDo', 'same');
    await roundTrip(a);
    await sleep(300);
    a.close();
    s.close();
    assert.ok(v.length === 0); // alone: the self-only rule holds however often it opens
  } finally {
    await stack.fake.config({ delay_ms: {} });
  }
  // a client-chosen name with a newline stays inside its log line
  await stack.fake.config({ fail: { has_permission: 'close' } });
  try {
    const s = await connect(stack, { cookie: 'sid=sid-alice' });
    s.emit('doctype_subscribe', 'Evil\n2099-01-01T00:00:00.000Z notice app: FORGED');
    await stack.rt.waitForLine(/Can't check permissions for Evil\?2099/);
    assert.doesNotMatch(stack.rt.output(), /^2099-01-01T00:00:00.000Z notice app: FORGED/m);
    s.close();
  } finally {
    await stack.fake.config({ fail: {} });
  }
});

test('clients that leave while their auth call waits: the calls are dropped, the loop stays responsive', async () => {
  const { rawPolling } = await import('../lib/frappe_helpers.mjs');
  await stack.fake.config({ delay_ms: { get_user_info: 1000 }, unknown_sid_as_guest: true });
  try {
    const victim = await connect(stack, { cookie: 'sid=sid-bob' }).catch(() => null);
    const target = { port: stack.port };
    const before = (await stack.fake.requests('get_user_info')).length;
    for (let i = 0; i < 300; i++) {
      const p = await rawPolling(target, { Cookie: `sid=x${i}`, Origin: `http://127.0.0.1:${stack.port}`,
        'X-Frappe-Site-Name': SITE1 });
      await p.send(`40/${SITE1},`);
      await p.send('1'); // and leave at once
    }
    await sleep(2500);
    const made = (await stack.fake.requests('get_user_info')).length - before;
    // calls already sent finish on the web server; none waits in realtimed for nobody
    assert.ok(made <= 300, `${made} calls`);
    if (victim) {
      const t0 = Date.now();
      await roundTrip(victim);
      assert.ok(Date.now() - t0 < 1000);
      victim.close();
    }
  } finally {
    await stack.fake.config({ delay_ms: {}, unknown_sid_as_guest: false });
  }
  await healthy();
});
