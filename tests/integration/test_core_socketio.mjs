// The core with the official JS client (socket.io-client 4.8, unchanged)
// against `realtimed --conformance`: transports and upgrade, namespaces and
// middleware, acks both ways, binary, UTF-8, rooms and broadcasts, every kind
// of disconnect, many clients, and payload limits. The last test stops the
// server with SIGTERM and requires exit code 0 (leaks fail it under ASan).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io, Manager } from 'socket.io-client';
import { freePort, startRealtimed, waitFor } from '../lib/procs.mjs';
import { T, once, collect, connect, ack, disconnected, norm, rssKiB } from '../lib/core_helpers.mjs';

let rt;
let url;
const open = new Set(); // every client socket, closed in after()

before(async () => {
  const port = await freePort();
  // Fast pings exercise the heartbeat on every test; the timeouts are generous
  // so that the suite also passes under ASan and valgrind.
  rt = await startRealtimed(['--conformance', '--port', String(port), '--ping-interval', '400',
    '--ping-timeout', '10000', '--connect-timeout', '10000', '--log-level', 'warning']);
  url = rt.url;
});

after(async () => {
  for (const s of open) s.close();
  if (rt?.isRunning()) await rt.stop();
});

async function client(opts = {}) {
  const r = await connect(url, opts);
  open.add(r.socket);
  return r;
}

for (const transports of [['polling'], ['websocket']]) {
  const name = transports[0];
  test(`${name} only: connect, auth echo, events and acks, heartbeats`, async () => {
    const { socket, auth } = await client({ transports });
    assert.deepEqual(auth, {});
    assert.equal(socket.io.engine.transport.name, name);
    assert.match(socket.id, /^[A-Za-z0-9_-]{10,}$/);
    assert.notEqual(socket.id, socket.io.engine.id); // a new id per namespace socket
    const back = once(socket, 'message-back');
    socket.emit('message', 1, '2', { 3: [true] }, null, -1.5, 'x');
    assert.deepEqual(await back, [1, '2', { 3: [true] }, null, -1.5, 'x']);
    assert.deepEqual(await ack(socket, 'message-with-ack', 1, '2', { 3: [false] }), [1, '2', { 3: [false] }]);
    assert.deepEqual(await ack(socket, 'message-with-ack'), []);
    // Three server pings answered; the session is still the same one.
    const sid = socket.io.engine.id;
    for (let i = 0; i < 3; i++) await once(socket.io.engine, 'ping');
    assert.equal(socket.io.engine.id, sid);
    assert.deepEqual(await ack(socket, 'message-with-ack', 'still here'), ['still here']);
    socket.close();
  });
}

test('polling then upgrade to websocket', async () => {
  const { socket } = await client({ transports: ['polling', 'websocket'], upgrade: true });
  const engine = socket.io.engine;
  if (engine.transport.name !== 'websocket') {
    assert.equal(engine.transport.name, 'polling');
    const [transport] = await once(engine, 'upgrade');
    assert.equal(transport.name, 'websocket');
  }
  assert.equal(socket.io.engine.transport.name, 'websocket');
  assert.deepEqual(norm(await ack(socket, 'message-with-ack', 'after upgrade', Buffer.from([7]))),
    norm(['after upgrade', Buffer.from([7])]));
  socket.close();
});

test('events sent during the upgrade are all delivered, in order', async () => {
  const socket = io(url, { forceNew: true, reconnection: false });
  open.add(socket);
  const got = collect(socket, 'message-back');
  await once(socket, 'connect');
  const engine = socket.io.engine;
  // Keep emitting while the probe runs, until the upgrade is done.
  let n = 0;
  const upgraded = engine.transport.name === 'websocket' ? Promise.resolve() : once(engine, 'upgrade');
  let done = false;
  upgraded.then(() => { done = true; });
  while (!done && n < 2000) {
    socket.emit('message', n++);
    await new Promise((r) => setImmediate(r));
  }
  for (let i = 0; i < 5; i++) socket.emit('message', n++);
  await ack(socket, 'message-with-ack'); // fence: every echo is in before the ack
  assert.equal(engine.transport.name, 'websocket');
  assert.deepEqual(got.map((a) => a[0]), Array.from({ length: n }, (_, i) => i));
  socket.close();
});

test('the auth payload is echoed exactly', async () => {
  const auth = { token: '123', n: 1, f: 0.5, t: true, z: null, nested: { a: [1, 2, { b: 'c' }] }, s: 'é€😀' };
  for (const transports of [['polling'], ['websocket']]) {
    const r = await client({ transports, auth });
    assert.deepEqual(r.auth, auth);
    r.socket.close();
  }
});

test('multiplexing: "/" and "/custom" on one connection', async () => {
  const manager = new Manager(url, { autoConnect: false, reconnection: false, transports: ['websocket'] });
  const main = await connect(url, { manager, nsp: '/' });
  const custom = await connect(url, { manager, nsp: '/custom', auth: { token: 'abc' } });
  open.add(main.socket).add(custom.socket);
  assert.deepEqual(main.auth, {});
  assert.deepEqual(custom.auth, { token: 'abc' });
  assert.equal(main.socket.io, custom.socket.io);
  assert.notEqual(main.socket.id, custom.socket.id);
  // Each reply comes back on the namespace that asked.
  const onMain = collect(main.socket, 'message-back');
  const onCustom = collect(custom.socket, 'message-back');
  custom.socket.emit('message', 'to custom');
  main.socket.emit('message', 'to main');
  assert.deepEqual(await ack(custom.socket, 'message-with-ack', 'c'), ['c']);
  assert.deepEqual(await ack(main.socket, 'message-with-ack', 'm'), ['m']);
  assert.deepEqual(onMain, [['to main']]);
  assert.deepEqual(onCustom, [['to custom']]);
  // Leaving /custom keeps "/" working on the same Engine.IO session.
  const sid = manager.engine.id;
  custom.socket.disconnect();
  assert.deepEqual(await ack(main.socket, 'message-with-ack', 'main alive'), ['main alive']);
  assert.equal(manager.engine.id, sid);
  // ... and /custom can be joined again.
  const again = await connect(url, { manager, nsp: '/custom' });
  assert.deepEqual(again.auth, {});
  assert.deepEqual(await ack(again.socket, 'message-with-ack', 2), [2]);
  assert.equal(manager.engine.id, sid);
  main.socket.close();
  again.socket.close();
});

test('/private: the async middleware accepts the right token', async () => {
  for (const transports of [['polling'], ['websocket']]) {
    const r = await client({ transports, nsp: '/private', auth: { token: 'secret' } });
    assert.deepEqual(r.auth, { token: 'secret' });
    assert.deepEqual(await ack(r.socket, 'message-with-ack', 'ok'), ['ok']);
    r.socket.close();
  }
});

test('/private: rejection carries message and data; the connection survives', async () => {
  for (const auth of [{ token: 'wrong' }, undefined, { token: 1 }]) {
    await assert.rejects(client({ transports: ['websocket'], nsp: '/private', auth }), (e) => {
      assert.equal(e.message, 'Unauthorized');
      assert.deepEqual(e.data, { reason: 'bad token' });
      return true;
    });
  }
  // Over one multiplexed connection: the refusal does not close the session.
  const manager = new Manager(url, { autoConnect: false, reconnection: false, transports: ['polling'] });
  const main = await connect(url, { manager });
  open.add(main.socket);
  const priv = manager.socket('/private', { auth: { token: 'nope' } });
  const errP = once(priv, 'connect_error');
  priv.connect();
  const [err] = await errP;
  assert.equal(err.message, 'Unauthorized');
  assert.deepEqual(err.data, { reason: 'bad token' });
  assert.deepEqual(await ack(main.socket, 'message-with-ack', 'alive'), ['alive']);
  // The client may retry on the same connection with the right token.
  priv.auth = { token: 'secret' };
  priv.connect();
  await once(priv, 'connect');
  assert.deepEqual(await ack(priv, 'message-with-ack', 'in'), ['in']);
  priv.close();
  main.socket.close();
});

test('/private: a client that leaves while the middleware runs', async () => {
  const manager = new Manager(url, { autoConnect: false, reconnection: false, transports: ['websocket'] });
  const main = await connect(url, { manager });
  open.add(main.socket);
  const priv = manager.socket('/private', { auth: { token: 'secret' } });
  priv.connect();
  priv.disconnect(); // DISCONNECT before the 20 ms decision
  const gone = io(url + '/private', { forceNew: true, reconnection: false, transports: ['websocket'], auth: { token: 'secret' } });
  gone.on('connect', () => {});
  await once(gone.io, 'open');
  gone.io.engine.close(); // transport gone while pending
  assert.deepEqual(await ack(main.socket, 'message-with-ack', 'fine'), ['fine']);
  main.socket.close();
});

test('dynamic namespaces /dyn-*; unknown namespaces are refused', async () => {
  const a = await client({ transports: ['websocket'], nsp: '/dyn-abc', auth: { x: 1 } });
  assert.deepEqual(a.auth, { x: 1 });
  const b = await client({ transports: ['polling'], nsp: '/dyn-abc' });
  // Both in the same dynamic namespace: a broadcast from a reaches b.
  await ack(a.socket, 'join', 'r');
  await ack(b.socket, 'join', 'r');
  const got = once(b.socket, 'hello');
  await ack(a.socket, 'broadcast', 'r', 'hello', 'dyn');
  assert.deepEqual(await got, ['dyn']);
  a.socket.close();
  b.socket.close();
  for (const nsp of ['/random', '/dyn-', '/dyn']) {
    await assert.rejects(client({ transports: ['websocket'], nsp }), (e) => {
      assert.equal(e.message, 'Invalid namespace');
      assert.equal(e.data, undefined);
      return true;
    });
  }
  // An emptied dynamic namespace can be created again.
  const c = await client({ transports: ['websocket'], nsp: '/dyn-abc' });
  assert.deepEqual(await ack(c.socket, 'message-with-ack', 'again'), ['again']);
  c.socket.close();
});

test('acks server -> client, with text and binary answers', async () => {
  for (const transports of [['polling'], ['websocket']]) {
    const { socket } = await client({ transports });
    socket.on('ack-request', (...args) => {
      const cb = args.pop();
      cb({ got: args }, 'é', Buffer.from([0, 255]), [Buffer.from('ab')]);
    });
    const result = once(socket, 'ack-result');
    socket.emit('request-ack', 'q', 42, { k: [1] });
    assert.deepEqual(norm(await result), norm([{ got: ['q', 42, { k: [1] }] }, 'é', Buffer.from([0, 255]), [Buffer.from('ab')]]));
    // Several in flight at once: each answer is matched to its request.
    socket.off('ack-request');
    socket.on('ack-request', (n, cb) => setTimeout(() => cb(n * 10), (5 - n) * 5));
    const results = collect(socket, 'ack-result');
    for (let n = 0; n < 5; n++) socket.emit('request-ack', n);
    await once(socket, 'ack-result');
    for (let i = 0; results.length < 5 && i < 100; i++) await once(socket, 'ack-result');
    assert.deepEqual(results.map((r) => r[0]).sort((x, y) => x - y), [0, 10, 20, 30, 40]);
    socket.close();
  }
});

test('thousands of server acks outstanding, answered in reverse order: each matched (map lookup)', async () => {
  const { socket } = await client({ transports: ['websocket'] });
  const held = [];
  socket.on('ack-request', (n, cb) => held.push([n, cb]));
  const results = collect(socket, 'ack-result');
  const N = 3000;
  for (let n = 0; n < N; n++) socket.emit('request-ack', n);
  await waitFor(() => held.length === N, T);
  for (let i = held.length - 1; i >= 0; i--) held[i][1](held[i][0] * 2);
  await waitFor(() => results.length === N, T);
  assert.deepEqual(results.map((r) => r[0]), Array.from({ length: N }, (_, i) => (N - 1 - i) * 2));
  socket.close();
});

test('binary both ways, nested, several attachments', async () => {
  const args = [
    Buffer.from([1, 2, 3]),
    { nested: { buf: new Uint8Array([4, 5, 6]), list: [Buffer.from('x'), 'y', Buffer.alloc(0)] } },
    'text',
    [Buffer.from([0xff, 0x00, 0x1e, 0x0a]), 7],
    Buffer.alloc(100000, 0xab),
  ];
  for (const transports of [['polling'], ['websocket']]) {
    const { socket } = await client({ transports });
    const back = once(socket, 'message-back');
    socket.emit('message', ...args);
    const got = await back;
    assert.ok(Buffer.isBuffer(got[0]) || got[0] instanceof ArrayBuffer || ArrayBuffer.isView(got[0]));
    assert.deepEqual(norm(got), norm(args));
    assert.deepEqual(norm(await ack(socket, 'message-with-ack', ...args)), norm(args));
    // An attachment alone, and binary in an ack with no text at all.
    assert.deepEqual(norm(await ack(socket, 'message-with-ack', Buffer.from('only'))), norm([Buffer.from('only')]));
    // Interleaved with text events: order is kept.
    const order = collect(socket, 'message-back');
    socket.emit('message', 'a');
    socket.emit('message', Buffer.from('b'));
    socket.emit('message', 'c', Buffer.from('d'));
    await ack(socket, 'message-with-ack');
    assert.deepEqual(norm(order), norm([['a'], [Buffer.from('b')], ['c', Buffer.from('d')]]));
    socket.close();
  }
});

test('UTF-8 both transports', async () => {
  const s = 'é€😀 — ünïcödé \u0000 \u2028 "quoted" \\ \u001e';
  for (const transports of [['polling'], ['websocket']]) {
    const { socket } = await client({ transports, auth: { name: s } });
    const back = once(socket, 'message-back');
    socket.emit('message', s, { [s]: s }, [s.repeat(1000)]);
    assert.deepEqual(await back, [s, { [s]: s }, [s.repeat(1000)]]);
    assert.deepEqual(await ack(socket, 'message-with-ack', s), [s]);
    // UTF-8 room names and event names.
    const other = await client({ transports });
    await ack(other.socket, 'join', 'salle-é€😀');
    const got = once(other.socket, 'évènement-😀');
    await ack(socket, 'broadcast', 'salle-é€😀', 'évènement-😀', s);
    assert.deepEqual(await got, [s]);
    socket.close();
    other.socket.close();
  }
});

test('rooms: join, leave, one room, a union of rooms, except the sender, empty rooms', async () => {
  const names = ['a', 'b', 'c', 'd'];
  const c = {};
  for (const [i, n] of names.entries()) {
    c[n] = (await client({ transports: [i % 2 ? 'polling' : 'websocket'] })).socket;
  }
  const got = Object.fromEntries(names.map((n) => [n, collect(c[n], 'ev')]));
  const fences = Object.fromEntries(names.map((n) => [n, collect(c[n], 'fence')]));
  for (const n of names) await ack(c[n], 'join', 'all');
  await ack(c.a, 'join', 'r1');
  await ack(c.b, 'join', 'r1');
  await ack(c.b, 'join', 'r2');
  await ack(c.c, 'join', 'r2');
  await ack(c.a, 'join', 'r1'); // joining twice is harmless
  // Every broadcast is followed by a fence to all: once each client has the
  // fence, any earlier broadcast to it has arrived too.
  let fenceNo = 0;
  async function step(from, rooms, ...args) {
    for (const n of names) got[n].length = 0;
    await ack(c[from], 'broadcast', rooms, 'ev', ...args);
    const f = ++fenceNo;
    const waits = names.filter((n) => n !== 'd' && c[n].connected).map((n) => (fences[n].length >= f ? null : once(c[n], 'fence')));
    await ack(c.d, 'broadcast', 'all', 'fence', f);
    await Promise.all(waits);
    return Object.fromEntries(names.map((n) => [n, got[n].map((a) => a[0])]));
  }
  assert.deepEqual(await step('d', 'r1', 1), { a: [1], b: [1], c: [], d: [] });
  assert.deepEqual(await step('d', ['r1', 'r2'], 2), { a: [2], b: [2], c: [2], d: [] });
  assert.deepEqual(await step('d', ['r2', 'r1', 'r2'], 3), { a: [3], b: [3], c: [3], d: [] });
  assert.deepEqual(await step('a', 'r1', 4), { a: [], b: [4], c: [], d: [] });
  assert.deepEqual(await step('b', ['r1', 'r2'], 5), { a: [5], b: [], c: [5], d: [] });
  assert.deepEqual(await step('d', 'nobody-here', 6), { a: [], b: [], c: [], d: [] });
  assert.deepEqual(await step('d', [], 7), { a: [7], b: [7], c: [7], d: [] }); // no rooms: whole namespace
  await ack(c.b, 'leave', 'r1');
  await ack(c.b, 'leave', 'never-joined');
  assert.deepEqual(await step('d', 'r1', 8), { a: [8], b: [], c: [], d: [] });
  assert.deepEqual(await step('d', ['r1', 'r2'], 9), { a: [9], b: [9], c: [9], d: [] });
  // Arguments are spliced exactly.
  assert.deepEqual((await step('d', 'r2', { x: [1, 'é'] }, null))?.c, [{ x: [1, 'é'] }]);
  // A socket that disconnected has left its rooms.
  c.c.close();
  assert.deepEqual(await step('d', 'r2', 10), { a: [], b: [10], c: [], d: [] });
  for (const n of names) c[n].close();
});

test('rooms are per namespace', async () => {
  const manager = new Manager(url, { autoConnect: false, reconnection: false, transports: ['websocket'] });
  const main = (await connect(url, { manager })).socket;
  const custom = (await connect(url, { manager, nsp: '/custom' })).socket;
  const sender = (await client({ transports: ['websocket'] })).socket;
  open.add(main).add(custom);
  await ack(custom, 'join', 'room');
  const onCustom = collect(custom, 'ev');
  await ack(sender, 'broadcast', 'room', 'ev', 1);
  await ack(main, 'join', 'room');
  const got = once(main, 'ev');
  await ack(sender, 'broadcast', 'room', 'ev', 2);
  assert.deepEqual(await got, [2]);
  assert.deepEqual(await ack(custom, 'message-with-ack'), []);
  assert.deepEqual(onCustom, []);
  for (const s of [main, custom, sender]) s.close();
});

test('server namespace disconnect: "io server disconnect"', async () => {
  for (const transports of [['polling'], ['websocket']]) {
    const { socket } = await client({ transports });
    const d = disconnected(socket);
    socket.emit('disconnect-me');
    assert.equal(await d, 'io server disconnect');
    assert.equal(socket.connected, false);
  }
  // Multiplexed: disconnecting /custom leaves "/" working.
  const manager = new Manager(url, { autoConnect: false, reconnection: false, transports: ['polling'] });
  const main = (await connect(url, { manager })).socket;
  const custom = (await connect(url, { manager, nsp: '/custom' })).socket;
  open.add(main).add(custom);
  const d = disconnected(custom);
  custom.emit('disconnect-me');
  assert.equal(await d, 'io server disconnect');
  assert.deepEqual(await ack(main, 'message-with-ack', 'ok'), ['ok']);
  // The disconnected socket can't receive room broadcasts anymore but may reconnect.
  custom.connect();
  await once(custom, 'connect');
  assert.deepEqual(await ack(custom, 'message-with-ack', 'back'), ['back']);
  main.close();
  custom.close();
});

test('client disconnect: the socket leaves its rooms, others are unaffected', async () => {
  for (const transports of [['polling'], ['websocket']]) {
    const a = (await client({ transports })).socket;
    const b = (await client({ transports })).socket;
    await ack(a, 'join', 'cd');
    await ack(b, 'join', 'cd');
    const d = disconnected(a);
    a.disconnect();
    assert.equal(await d, 'io client disconnect');
    const sender = (await client({ transports })).socket;
    const got = once(b, 'ev');
    await ack(sender, 'broadcast', 'cd', 'ev', 'x');
    assert.deepEqual(await got, ['x']);
    b.close();
    sender.close();
  }
});

test('close-session: the server closes the whole Engine.IO session', async () => {
  for (const transports of [['polling'], ['websocket']]) {
    const manager = new Manager(url, { autoConnect: false, reconnection: false, transports });
    const main = (await connect(url, { manager })).socket;
    const custom = (await connect(url, { manager, nsp: '/custom' })).socket;
    open.add(main).add(custom);
    const d1 = disconnected(main);
    const d2 = disconnected(custom);
    const closed = once(manager, 'close');
    main.emit('close-session');
    const [reason] = await closed;
    assert.equal(reason, 'transport close');
    assert.equal(await d1, 'transport close');
    assert.equal(await d2, 'transport close');
  }
});

test('many clients in one room receive one broadcast exactly once', async () => {
  const N = 200;
  const clients = [];
  for (let i = 0; i < N; i += 20) {
    const batch = await Promise.all(Array.from({ length: Math.min(20, N - i) }, (_, j) =>
      client({ transports: [(i + j) % 10 === 0 ? 'polling' : 'websocket'] })));
    clients.push(...batch.map((r) => r.socket));
  }
  await Promise.all(clients.map((s) => ack(s, 'join', 'crowd')));
  const sender = (await client({ transports: ['websocket'] })).socket;
  const counts = clients.map((s) => collect(s, 'news'));
  const all = Promise.all(clients.map((s) => once(s, 'news')));
  const payload = { text: 'hello crowd', n: [1, 2, 3], u: 'é€😀' };
  await ack(sender, 'broadcast', 'crowd', 'news', payload, 2);
  const got = await all;
  for (const g of got) assert.deepEqual(g, [payload, 2]);
  // A fence: nobody got a second copy.
  await Promise.all(clients.map((s) => ack(s, 'message-with-ack')));
  assert.ok(counts.every((c) => c.length === 1));
  // A second, larger broadcast, all at once.
  const big = 'x'.repeat(50000);
  const all2 = Promise.all(clients.map((s) => once(s, 'news')));
  await ack(sender, 'broadcast', ['crowd', 'crowd'], 'news', big);
  for (const g of await all2) assert.deepEqual(g, [big]);
  for (const s of clients) s.close();
  sender.close();
});

test('large messages near maxPayload, both transports', async () => {
  const big = 'é'.repeat(10) + 'z'.repeat(900000);
  for (const transports of [['websocket'], ['polling']]) {
    const { socket } = await client({ transports });
    assert.equal(socket.io.engine._maxPayload ?? 1000000, 1000000);
    const back = once(socket, 'message-back');
    socket.emit('message', big);
    assert.deepEqual(await back, [big]);
    assert.deepEqual(await ack(socket, 'message-with-ack', big), [big]);
    // Polling carries binary as base64 (4/3 larger) inside the 1 MB body.
    const bin = Buffer.alloc(transports[0] === 'polling' ? 700000 : 900000, 0x5a);
    bin[0] = 1;
    bin[bin.length - 1] = 2;
    const [echo] = await ack(socket, 'message-with-ack', bin);
    assert.ok(Buffer.from(echo).equals(bin));
    socket.close();
  }
});

test('over maxPayload: websocket is closed, polling gets 413 (client sees an error)', async () => {
  const huge = 'y'.repeat(1100000);
  // WebSocket: the server closes the connection (1009); the client reports it.
  {
    const { socket } = await client({ transports: ['websocket'] });
    const d = disconnected(socket);
    socket.emit('message', huge);
    assert.ok(['transport close', 'transport error'].includes(await d), 'disconnect reason');
  }
  // Polling: the POST is refused (413) and the session closed; the client
  // sees the 413 (transport error) or the close packet on its parked GET
  // (transport close), whichever comes first: it reconnects either way.
  {
    const { socket } = await client({ transports: ['polling'] });
    const d = disconnected(socket);
    socket.emit('message', huge);
    assert.ok(['transport close', 'transport error'].includes(await d), 'disconnect reason');
  }
  // The server is fine.
  const { socket } = await client({ transports: ['websocket'] });
  assert.deepEqual(await ack(socket, 'message-with-ack', 1), [1]);
  socket.close();
});

test('server memory stays bounded after all of the above', async () => {
  const kib = rssKiB(rt.proc.pid);
  assert.ok(kib > 0 && kib < 512 * 1024, `RSS ${kib} KiB`);
});

test('SIGTERM with clients connected: clients see the close, exit code 0', async () => {
  const ws = (await client({ transports: ['websocket'] })).socket;
  const poll = (await client({ transports: ['polling'] })).socket;
  await ack(ws, 'join', 'r');
  const d1 = disconnected(ws);
  const d2 = disconnected(poll);
  const r = await rt.stop(15000);
  assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  assert.equal(await d1, 'transport close');
  assert.ok(['transport close', 'transport error'].includes(await d2));
  assert.doesNotMatch(rt.output(), /ERROR|AddressSanitizer|LeakSanitizer|runtime error/);
});
