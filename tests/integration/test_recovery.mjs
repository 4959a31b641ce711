// (A client written by hand with auth {pid} is recovered by the server,
// same id and pid, but socket.io-client computes `recovered` from its own
// stored pid: those cases compare ids.)
// Connection state recovery (issue 12): socket.io-client 4.8 drops its TCP
// connection (a proxy in between cuts it) and comes back within
// --recovery-window: same id, same rooms, every missed event in order,
// socket.recovered === true. On one node (conformance mode, in process),
// across two nodes sharing Redis (Frappe mode: the session is handed over
// through Redis) and across --workers; and every way it must refuse: after
// the window, another user, a forged or evicted offset, garbage.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { io } from 'socket.io-client';
import { startRealtimed, freePort, waitFor, sleep } from '../lib/procs.mjs';
import {
  startStack, clientFor, connected, collect, publish, SITE1, T,
} from '../lib/frappe_helpers.mjs';

const stops = [];
after(async () => { for (const f of stops.reverse()) await f(); });

// A TCP proxy whose connections can be cut (both sides destroyed, as a
// network failure or a proxy restart does) and whose target can change.
async function cutProxy(target) {
  const live = new Set();
  const p = { target, blocked: false, port: await freePort() };
  const server = net.createServer((c) => {
    if (p.blocked) { c.destroy(); return; }
    const u = net.connect(p.target, '127.0.0.1');
    live.add(c); live.add(u);
    c.pipe(u); u.pipe(c);
    const end = () => { c.destroy(); u.destroy(); live.delete(c); live.delete(u); };
    for (const s of [c, u]) { s.on('error', end); s.on('close', end); }
  });
  await new Promise((r) => server.listen(p.port, '127.0.0.1', r));
  p.cut = () => { for (const s of live) s.destroy(); };
  p.close = () => { p.cut(); server.close(); };
  stops.push(async () => p.close());
  return p;
}

const reconnecting = { reconnectionDelay: 50, reconnectionDelayMax: 100, randomizationFactor: 0 };
const onceEv = (s, ev, ms = T) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error(`no ${ev} within ${ms} ms`)), ms);
  s.once(ev, (...a) => { clearTimeout(t); resolve(a); });
});

async function conformance(args = [], avoid = 0) {
  let port = await freePort();
  while (port === avoid) port = await freePort(); // not yet bound: freePort may hand it out twice
  const rt = await startRealtimed(['--conformance', '--port', String(port), '--recovery-window', '5000', ...args]);
  stops.push(() => rt.stop());
  return { rt, port };
}

// Cuts a's connection while the proxy refuses new ones; `during` runs while
// a is away; then a comes back. Resolves once a is connected again.
async function away(a, proxy, during) {
  proxy.blocked = true;
  const gone = onceEv(a, 'disconnect');
  proxy.cut();
  await gone;
  await sleep(50); // the server has seen the close
  await during();
  const back = onceEv(a, 'connect');
  proxy.blocked = false;
  await back;
}

for (const transport of ['websocket', 'polling']) {
  test(`one node, ${transport}: missed events in order, same id and rooms, recovered`, async () => {
    const { port } = await conformance();
    const proxy = await cutProxy(port);
    const a = io(`http://127.0.0.1:${proxy.port}`, { transports: [transport], ...reconnecting });
    const b = io(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
    stops.push(async () => { a.close(); b.close(); });
    const news = collect(a, 'news');
    await Promise.all([onceEv(a, 'connect'), onceEv(b, 'connect')]);
    assert.equal(a.recovered, false);
    await a.emitWithAck('join', 'r');
    for (const i of [1, 2]) await b.emitWithAck('broadcast', 'r', 'news', i);
    await waitFor(() => news.length === 2);
    // the offset rides as the last argument, as socket.io's does
    assert.match(news[0][1], /^[\w-]{8}\.\d+$/);
    const id = a.id;
    await away(a, proxy, async () => {
      for (const i of [3, 4, 5]) await b.emitWithAck('broadcast', 'r', 'news', i);
      await b.emitWithAck('broadcast', 'elsewhere', 'news', 'not for a');
      await b.emitWithAck('broadcast', [], 'news', 'to everyone');
    });
    assert.equal(a.recovered, true);
    assert.equal(a.id, id);
    await b.emitWithAck('broadcast', 'r', 'news', 6); // still in r
    await waitFor(() => news.length === 7);
    assert.deepEqual(news.map((x) => x[0]), [1, 2, 3, 4, 5, 'to everyone', 6]);
    const offs = news.map((x) => Number(x[1].split('.')[1]));
    assert.deepEqual([...offs].sort((x, y) => x - y), offs, 'offsets increase');
    // a second drop, with nothing missed: recovered again, nothing replayed
    await away(a, proxy, async () => {});
    assert.equal(a.recovered, true);
    assert.equal(a.id, id);
    await sleep(100);
    assert.equal(news.length, 7);
  });
}

test('one node: after the window, a new session (recovered false)', async () => {
  const { port } = await conformance(['--recovery-window', '300']);
  const proxy = await cutProxy(port);
  const a = io(`http://127.0.0.1:${proxy.port}`, { transports: ['websocket'], ...reconnecting });
  stops.push(async () => a.close());
  await onceEv(a, 'connect');
  const id = a.id;
  await away(a, proxy, () => sleep(1300)); // the tick that expires it runs each second
  assert.equal(a.recovered, false);
  assert.notEqual(a.id, id);
});

test('one node: a client that got nothing yet recovers too (no offset); bad pids and offsets do not', async () => {
  const { port, rt } = await conformance();
  const proxy = await cutProxy(port);
  // socket.io-client sends no offset before its first kept event; here the
  // auth objects are written by hand
  const raw = (auth) => new Promise((resolve, reject) => {
    const s = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false, auth });
    s.echo = new Promise((r) => s.once('auth', (...x) => r(x)));
    s.once('connect', () => { resolve(s); });
    s.once('connect_error', reject);
    stops.push(async () => s.close());
  });
  const a = await raw({});
  const first = await a.echo;
  assert.equal(first.length, 2, 'the auth echo carries its offset');
  const pid = a._pid;
  assert.match(pid, /^[\w-]{20}$/);
  const id = a.id;
  a.io.engine.close(); // "forced close": recoverable
  await sleep(100);
  // garbage: not strings, too long, an offset of another log, a valid pid with a forged offset
  for (const auth of [{ pid: 1, offset: 'x' }, { pid: 'x'.repeat(5000) }, { pid: 'nope', offset: 'nope' },
    { pid: [pid] }, { pid, offset: 'AAAAAAAA.1' }]) {
    const s = await raw(auth);
    assert.notEqual(s.id, id, JSON.stringify(auth).slice(0, 80));
    s.close();
  }
  // the forged offset used the pid up (a pid is good once): a new session now
  const again = await raw({ pid, offset: first[1] });
  assert.notEqual(again.id, id);
  // and a real one, with no offset at all (nothing received): recovered
  const c = await raw({});
  const cpid = c._pid;
  const cid = c.id;
  c.io.engine.close();
  await sleep(100);
  const d = await raw({ pid: cpid });
  assert.equal(d.id, cid, 'recovered: the same id');
  assert.equal(d._pid, cpid, 'and the same pid');
  assert.equal(rt.isRunning(), true);
  proxy.close();
});

test('one node: what exceeds --recovery-max-bytes is evicted and answered not recovered', async () => {
  const mport = await freePort();
  const { port } = await conformance(['--recovery-max-bytes', '65536', '--metrics-listen', String(mport)], mport);
  const proxy = await cutProxy(port);
  const a = io(`http://127.0.0.1:${proxy.port}`, { transports: ['websocket'], ...reconnecting });
  const b = io(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
  stops.push(async () => { a.close(); b.close(); });
  await Promise.all([onceEv(a, 'connect'), onceEv(b, 'connect')]);
  await a.emitWithAck('join', 'r');
  const id = a.id;
  const big = 'x'.repeat(4000);
  await away(a, proxy, async () => {
    for (let i = 0; i < 40; i++) await b.emitWithAck('broadcast', 'r', 'news', big); // 160 KB > 64 KiB
  });
  assert.equal(a.recovered, false, 'evicted: not recovered, never a partial replay');
  assert.notEqual(a.id, id);
  const m = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
  assert.match(m, /realtimed_recovery_total\{result="evicted"\} 1\n/);
  assert.match(m, /realtimed_recovery_kept_total 1\n/);
  const bytes = Number(m.match(/realtimed_recovery_bytes (\d+)/)[1]);
  assert.ok(bytes > 0 && bytes <= 65536, `kept ${bytes} bytes`);
});

// ---- Frappe mode: two nodes on one Redis ----
async function twoNodes(args = []) {
  const stack = await startStack({ args: ['--recovery-window', '5000', ...args] });
  stops.push(() => stack.stop());
  const port2 = await freePort();
  const rt2 = await startRealtimed(['--webserver-host', '127.0.0.1', '--port', String(port2), '--recovery-window',
    '5000', ...args], { cwd: stack.bench, port: port2 });
  stops.push(() => (rt2.isRunning() ? rt2.stop() : null));
  await waitFor(async () => (await stack.redis.command('PUBSUB', 'NUMSUB', 'realtimed:recover'))[1] === 2, 10000);
  return { stack, rt2, port2 };
}

const task = (n) => ({ event: 'progress', message: { n }, room: 'task_progress:T1', namespace: SITE1 });
const toUser = (n) => ({ event: 'note', message: { n }, room: 'user:alice@x', namespace: SITE1 });

test('two nodes: a client cut from node 1 reconnects to node 2 and recovers through Redis', async () => {
  const { stack, port2 } = await twoNodes();
  const proxy = await cutProxy(stack.port);
  const a = io(`http://127.0.0.1:${proxy.port}/${SITE1}`, {
    transports: ['websocket'], ...reconnecting,
    extraHeaders: { Cookie: 'sid=sid-alice', Origin: `http://127.0.0.1:${stack.port}`, 'X-Frappe-Site-Name': SITE1 },
  });
  stops.push(async () => a.close());
  const got = [];
  a.on('progress', (m) => got.push(`p${m.n}`));
  a.on('note', (m) => got.push(`u${m.n}`));
  await connected(a);
  a.emit('task_subscribe', 'T1');
  await waitFor(async () => { await publish(stack.redis, task(0)); await sleep(30); return got.length > 0; });
  got.length = 0;
  await publish(stack.redis, task(1));
  await waitFor(() => got.length === 1);
  const id = a.id;
  await away(a, proxy, async () => {
    for (let i = 2; i <= 4; i++) {
      await publish(stack.redis, task(i));
      await publish(stack.redis, toUser(i));
    }
    proxy.target = port2; // the balancer sends it to the other node
  });
  assert.equal(a.recovered, true, 'recovered on node 2');
  assert.equal(a.id, id);
  for (let i = 5; i <= 6; i++) await publish(stack.redis, task(i)); // live from node 2: still in the room
  await waitFor(() => got.length >= 9);
  await sleep(200);
  assert.deepEqual(got, ['p1', 'p2', 'u2', 'p3', 'u3', 'p4', 'u4', 'p5', 'p6'], 'each once, in order');
  // and back to node 1 again (the session moved to node 2)
  await away(a, proxy, async () => {
    await publish(stack.redis, task(7));
    proxy.target = stack.port;
  });
  assert.equal(a.recovered, true, 'recovered back on node 1');
  await waitFor(() => got.includes('p7'));
  assert.equal(got.filter((x) => x === 'p7').length, 1);
});

test('two nodes: another user presenting the pid, or the owner killed: a new session', async () => {
  const { stack, rt2, port2 } = await twoNodes();
  const opts = (cookie, url, auth) => ({
    transports: ['websocket'], reconnection: false, auth,
    extraHeaders: { Cookie: cookie, Origin: `http://127.0.0.1:${stack.port}`, 'X-Frappe-Site-Name': SITE1 },
  });
  const a = io(`http://127.0.0.1:${stack.port}/${SITE1}`, opts('sid=sid-alice'));
  await connected(a);
  const pid = a._pid;
  a.io.engine.close();
  await sleep(150);
  const bob = io(`http://127.0.0.1:${port2}/${SITE1}`, opts('sid=sid-bob', null, { pid }));
  await connected(bob);
  assert.notEqual(bob.id, a.id, "bob does not get alice's session");
  assert.notEqual(bob._pid, pid);
  bob.close();
  // alice on node 2 while node 2 keeps her session, then node 2 is killed
  const c = io(`http://127.0.0.1:${port2}/${SITE1}`, opts('sid=sid-alice'));
  await connected(c);
  const cpid = c._pid;
  c.io.engine.close();
  await sleep(150);
  rt2.proc.kill('SIGKILL');
  await sleep(100);
  const t0 = Date.now();
  const d = io(`http://127.0.0.1:${stack.port}/${SITE1}`, opts('sid=sid-alice', null, { pid: cpid }));
  await connected(d);
  assert.notEqual(d.id, c.id);
  assert.ok(Date.now() - t0 < 3500, 'answered within the reply timeout');
  d.close();
});

test('--workers 2: recovered on whichever worker the reconnect lands', async () => {
  const stack = await startStack({ args: ['--recovery-window', '5000', '--workers', '2'] });
  stops.push(() => stack.stop());
  await stack.rt.waitForLine(/workers serving/);
  await waitFor(async () => (await stack.redis.command('PUBSUB', 'NUMSUB', 'realtimed:recover'))[1] === 2, 10000);
  for (let round = 0; round < 4; round++) {
    const s = clientFor(stack, { transports: ['websocket'] });
    const got = [];
    s.on('note', (m) => got.push(m.n));
    await connected(s);
    const pid = s._pid;
    const id = s.id;
    const worker = s.io.engine.id[0];
    s.io.engine.close(); // the transport goes (forced close): kept
    // a new client with the pid (as the same client reconnecting), until it lands on the other worker
    await sleep(100);
    const r = clientFor(stack, { transports: ['websocket'], auth: { pid } });
    await connected(r);
    assert.equal(r.id, id, `round ${round}: from worker ${worker} to ${r.io.engine.id[0]}`);
    assert.equal(r._pid, pid);
    r.close();
    if (r.io.engine.id[0] !== worker) return;
  }
});

// Raw Socket.IO over WebSocket: the messages as they arrive.
async function rawSio(port, auth) {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
  const msgs = [];
  let wake = () => {};
  ws.on('message', (d) => { const m = d.toString(); if (m === '2') ws.send('3'); else { msgs.push(m); wake(); } });
  const next = async (pred, ms = T) => {
    const t0 = Date.now();
    for (;;) {
      const i = msgs.findIndex(pred);
      if (i >= 0) return msgs.splice(i, 1)[0];
      if (Date.now() - t0 > ms) throw new Error(`no matching message; got ${JSON.stringify(msgs)}`);
      await new Promise((r) => { wake = r; setTimeout(r, 50); });
    }
  };
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  await next((m) => m[0] === '0');
  ws.send(`40${JSON.stringify(auth)}`);
  const hello = JSON.parse((await next((m) => m.startsWith('40'))).slice(2));
  stops.push(async () => ws.terminate());
  return { ws, msgs, next, hello };
}

test('one node: a replay that was not read is replayed again; an event without a name is refused', async () => {
  const { port } = await conformance();
  const b = io(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
  stops.push(async () => b.close());
  await onceEv(b, 'connect');
  const a = await rawSio(port, {});
  a.ws.send('420["join","r"]');
  await a.next((m) => m === '430[]');
  await b.emitWithAck('broadcast', 'r', 'news', 0);
  const e0 = JSON.parse((await a.next((m) => m.includes('"news",0'))).slice(2));
  const o0 = e0[2];
  a.ws.terminate();
  await sleep(100);
  for (const i of [1, 2, 3]) await b.emitWithAck('broadcast', 'r', 'news', i);
  // back with o0, but that connection dies with the replay unread
  const a2 = await rawSio(port, { pid: a.hello.pid, offset: o0 });
  assert.equal(a2.hello.sid, a.hello.sid);
  a2.ws.terminate();
  await sleep(100);
  // back again with o0: everything again, nothing skipped
  const a3 = await rawSio(port, { pid: a.hello.pid, offset: o0 });
  assert.equal(a3.hello.sid, a.hello.sid, 'recovered again');
  const got = a3.msgs.filter((m) => m.includes('"news"')).map((m) => JSON.parse(m.slice(2))[1]);
  assert.deepEqual(got, [1, 2, 3]);
  // "2[]" would make every socket.io-client drop its connection: never sent
  let dropped = 0;
  b.on('disconnect', () => dropped++);
  a3.ws.send('42["broadcast",[]]');
  a3.ws.send('42["broadcast","r"]');
  await sleep(300);
  assert.equal(dropped, 0);
  assert.equal(b.connected, true);
});
