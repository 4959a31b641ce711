// Apps' realtime/handlers.js run by realtimed's Node host (issue 9), through
// socket.io-client over WebSocket and polling. The fixture apps in
// tests/fixtures/apps are symlinked into a test bench's apps/ as bench does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  SITE1, T, startStack, connect, once, collect, roundTrip, quiet, sleep, waitFor, publish,
} from '../lib/frappe_helpers.mjs';
import { ROOT, SAN_ENV } from '../lib/procs.mjs';

const FIX = path.join(ROOT, 'tests/fixtures/apps');
const ALL = ['frappe', 'fullapi', 'withdep', 'loadfail', 'setupfail', 'throwers', 'nohandlers'];
const USERS = {
  'alice@x': { user_type: 'System User', sids: ['sid-alice'], tokens: ['token k1:s1'], apps: ALL, doctypes: ['ToDo'] },
  'bob@x': { user_type: 'System User', sids: ['sid-bob'], apps: ALL, doctypes: ['ToDo'] },
  'web@x': { user_type: 'Website User', sids: ['sid-web'], apps: ALL },
  'carol@x': { user_type: 'System User', sids: ['sid-carol'], apps: ['frappe'] },
};

let stack;
const alice = (o = {}) => connect(stack, { cookie: 'sid=sid-alice', ...o });
const bob = (o = {}) => connect(stack, { cookie: 'sid=sid-bob', ...o });
const ack = (s, ev, ...args) => s.timeout(T).emitWithAck(ev, ...args);

before(async () => {
  const apps = Object.fromEntries(ALL.map((a) => [a, path.join(FIX, a)]));
  stack = await startStack({ apps, sites: [SITE1], env: SAN_ENV });
  await stack.fake.config({ users: USERS });
  await stack.rt.waitForLine(/node host ready/, 10000);
});

after(async () => {
  const r = await stack?.stop();
  assert.deepEqual(r, { code: 0, signal: null }, stack?.rt.output());
  assert.doesNotMatch(stack.rt.output(), /AddressSanitizer|LeakSanitizer|runtime error/);
});

/** The host's pid: the realtimed child that runs handlers-host.js. */
function hostPid() {
  const out = execFileSync('pgrep', ['-P', String(stack.rt.proc.pid)], { encoding: 'utf8' }).trim().split('\n');
  return out.map(Number).find((pid) => {
    try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('handlers-host.js'); } catch { return false; }
  });
}

test('startup: each app with handlers is logged, frappe\'s own are never loaded, one Node host', async () => {
  const out = stack.rt.output();
  for (const app of ['fullapi', 'withdep', 'loadfail', 'setupfail', 'throwers']) {
    assert.match(out, new RegExp(`app ${app}: .*/apps/${app}/realtime/handlers\\.js`));
  }
  assert.doesNotMatch(out, /app nohandlers:/);
  assert.doesNotMatch(out, /the handler host loaded frappe/);
  assert.ok(hostPid() > 0);
});

test('ping: frappe\'s native pong and the app\'s own, both (as on Node)', async () => {
  for (const transports of [['websocket'], ['polling']]) {
    const s = await alice({ transports });
    const got = collect(s, 'pong');
    s.emit('ping');
    await waitFor(() => got.length === 2);
    assert.deepEqual(got, [[], ['fullapi']]);
    s.close();
  }
  // a site user without handler apps is not mirrored: one pong
  const c = await connect(stack, { cookie: 'sid=sid-carol' });
  const got = collect(c, 'pong');
  c.emit('ping');
  await waitFor(() => got.length === 1);
  await quiet(got);
  assert.deepEqual(got, [[]]);
  c.close();
});

test('the socket object: Frappe\'s fields, handshake, nsp, rooms mirrored from native joins', async () => {
  const s = await alice({ transports: ['polling'], headers: { 'X-Extra': '1' } });
  const me = await ack(s, 'whoami');
  assert.equal(me.id, s.id);
  assert.equal(me.user, 'alice@x');
  assert.equal(me.user_type, 'System User');
  assert.equal(me.site_name, SITE1);
  assert.deepEqual(me.installed_apps, ALL);
  assert.equal(me.sid, 'sid-alice');
  assert.equal(me.authorization_header, null);
  assert.equal(me.nsp, `/${SITE1}`);
  assert.equal(me.connected, true);
  assert.equal(me.query.EIO, '4');
  assert.equal(me.query.transport, 'polling');
  assert.equal(me.host, `127.0.0.1:${stack.port}`);
  assert.equal(me.origin, `http://127.0.0.1:${stack.port}`);
  assert.equal(me.address, '::ffff:127.0.0.1'); // as Node's dual-stack server shows an IPv4 peer
  // socket.rooms: its id and the rooms realtimed joined natively
  assert.deepEqual((await ack(s, 'my_rooms')).sort(), [s.id, 'all', 'user:alice@x', 'website'].sort());
  // a native join after a permission check shows in nsp.adapter.rooms
  s.emit('doc_subscribe', 'ToDo', 'M-1');
  await waitFor(async () => (await ack(s, 'members', 'doc:ToDo/M-1')).includes(s.id));
  s.emit('doc_unsubscribe', 'ToDo', 'M-1');
  await waitFor(async () => !(await ack(s, 'members', 'doc:ToDo/M-1')).includes(s.id));
  // Authorization instead of a cookie
  const t = await connect(stack, { cookie: null, authorization: 'token k1:s1', transports: ['websocket'] });
  const tm = await ack(t, 'whoami');
  assert.equal(tm.authorization_header, 'token k1:s1');
  assert.equal(tm.sid, null);
  t.close();
  s.close();
});

test('typing lists via nsp.adapter.rooms + nsp.sockets; to(room) excludes the sender, nsp.to includes it', async () => {
  const a = await alice();
  const b = await bob({ transports: ['polling'] });
  const at = collect(a, 'typers');
  const bt = collect(b, 'typers');
  a.emit('typing', 'R1');
  await waitFor(() => at.length === 1);
  b.emit('typing', 'R1');
  await waitFor(() => at.length === 2 && bt.length === 1);
  assert.deepEqual(at[1], [{ room: 'R1', users: ['alice@x', 'bob@x'] }]);
  assert.deepEqual(bt[0], at[1]);
  b.emit('typing_stopped', 'R1');
  await waitFor(() => at.length === 3);
  assert.deepEqual(at[2], [{ room: 'R1', users: ['alice@x'] }]);

  await ack(a, 'join_room', 'r1');
  await ack(b, 'join_room', 'r1');
  const ar = collect(a, 'relayed');
  const br = collect(b, 'relayed');
  a.emit('relay', 'r1', { n: 1 });
  await waitFor(() => br.length === 1);
  assert.deepEqual(br[0], [{ n: 1 }, 'alice@x']);
  assert.deepEqual(await quiet(ar), []);
  const as = collect(a, 'shouted');
  const bs = collect(b, 'shouted');
  a.emit('shout', 'r1', 'hi');
  await waitFor(() => as.length === 1 && bs.length === 1);
  // broadcast.emit: the whole site except the sender; to(socket id): that socket
  const bo = collect(b, 'from_other');
  const ao = collect(a, 'from_other');
  a.emit('everyone_else', 5);
  await waitFor(() => bo.length === 1);
  assert.deepEqual(await quiet(ao), []);
  const bd = collect(b, 'direct');
  a.emit('to_socket', b.id, 'psst');
  await waitFor(() => bd.length === 1);
  assert.deepEqual(bd[0], ['psst']);
  a.close();
  b.close();
});

test('has_permission: allowed joins, a refusal never settles (nothing happens)', async () => {
  const a = await alice();
  const w = await connect(stack, { cookie: 'sid=sid-web' });
  const av = once(a, 'viewing');
  a.emit('view', 'V-1');
  assert.deepEqual(await av, ['V-1']);
  const wv = collect(w, 'viewing');
  w.emit('view', 'V-1');
  await waitFor(async () => (await stack.fake.requests('has_permission')).some((r) => r.headers.cookie === 'sid=sid-web'));
  assert.deepEqual(await quiet(wv), []);
  assert.ok(w.connected);
  a.close();
  w.close();
});

test('acks both ways, binary both ways, socket.use middleware', async () => {
  for (const transports of [['websocket'], ['polling']]) {
    const a = await alice({ transports });
    assert.deepEqual(await ack(a, 'echo_ack', 1, 'two', { three: [3] }), { got: [1, 'two', { three: [3] }], user: 'alice@x' });
    a.on('question', (q, cb) => cb(`answer to ${q}`));
    const ans = once(a, 'answered');
    a.emit('ask_client', 'q1');
    assert.deepEqual(await ans, ['answer to q1']);
    const back = once(a, 'bin_back');
    const r = await ack(a, 'bin', Buffer.from([9, 8, 7]));
    assert.deepEqual(Buffer.from(r), Buffer.from('ack-bytes'));
    const [buf, obj] = await back;
    assert.deepEqual(Buffer.from(buf), Buffer.from([9, 8, 7]));
    assert.deepEqual(Buffer.from(obj.inner), Buffer.from([1, 2, 3]));
    const mw = once(a, 'mw_error');
    const nb = collect(a, 'not_blocked');
    a.emit('blocked');
    assert.deepEqual(await mw, ['blocked by middleware']);
    assert.deepEqual(await quiet(nb), []);
    a.close();
  }
});

test('frappe_request: GET with a query string, POST with a form body, the socket\'s credentials', async () => {
  await stack.redis.command('SET', 'socketio_auth_secret', 'sek');
  try {
    const a = await alice();
    const got = once(a, 'fr_got');
    a.emit('fr_get', 'a b/c');
    const [g] = await got;
    assert.equal(g.method, 'GET');
    assert.equal(g.name, 'fixture.echo');
    assert.equal(g.user, 'alice@x');
    assert.deepEqual(g.query, { x: 'a b/c', n: 'null' }); // URLSearchParams: String(null)
    assert.equal(g.site, SITE1);
    assert.equal(g.secret, 'sek'); // read fresh from Redis
    const posted = once(a, 'fr_posted');
    a.emit('fr_post', 'é&x');
    const [p] = await posted;
    assert.equal(p.method, 'POST');
    assert.deepEqual(p.form, { x: 'é&x' });
    assert.match(p.content_type, /application\/x-www-form-urlencoded/);
    a.close();
  } finally {
    await stack.redis.command('DEL', 'socketio_auth_secret');
  }
});

test('an npm package from the app\'s own node_modules; ../../frappe/node_utils resolves inside the bench', async () => {
  const a = await alice();
  assert.equal(await ack(a, 'pad', 'x'), '*******x');
  const conf = await ack(a, 'conf');
  assert.equal(conf.bench, fs.realpathSync(stack.bench) === stack.bench ? stack.bench : conf.bench);
  assert.equal(conf.socketio_port, stack.port); // read from this bench's common_site_config.json
  assert.equal(conf.bench, stack.bench); // the bench path, not the fixture's real path
  a.close();
});

test('apps that throw at load, at setup or in listeners: logged, every other app and connection carries on', async () => {
  const out = () => stack.rt.output();
  assert.match(out(), /failed to load event handlers from .*loadfail\/realtime\/handlers\.js: Error: loadfail cannot load/);
  await stack.rt.waitForLine(/failed to setup event handlers from setupfail: Error: setupfail breaks during setup/);
  const a = await alice();
  assert.equal(await ack(a, 'partial'), 'registered before the throw');
  for (const ev of ['boom_sync', 'boom_async', 'boom_timer', 'boom_promise']) a.emit(ev);
  await stack.rt.waitForLine(/handler of event 'boom_sync' threw \(app throwers\): Error: sync boom/);
  await stack.rt.waitForLine(/handler of event 'boom_async' rejected \(app throwers\): Error: async boom/);
  await stack.rt.waitForLine(/uncaught exception in app throwers, event 'boom_timer' \(ignored\): Error: timer boom/);
  await stack.rt.waitForLine(/unhandled rejection in app throwers, event 'boom_promise' \(ignored\): Error: unhandled boom/);
  assert.equal(await ack(a, 'still'), 'alive');
  assert.equal(await ack(a, 'pad', 'y'), '*******y');
  assert.ok(a.connected);
  a.close();
});

test('a disconnect listener runs after the socket left its rooms; server-side disconnect()', async () => {
  const a = await alice();
  const b = await bob();
  await ack(b, 'join_room', 'dx');
  b.close();
  await waitFor(async () => (await ack(a, 'gone_list')).some((g) => g.user === 'bob@x'));
  const g = (await ack(a, 'gone_list')).filter((x) => x.user === 'bob@x').pop();
  // 'disconnecting' still saw its id, user:bob@x, website, all and dx
  assert.deepEqual(g, { user: 'bob@x', reason: 'client namespace disconnect', rooms: 0, before: 5, connected: false });
  const c = await bob();
  const d = once(c, 'disconnect');
  c.emit('bye');
  assert.equal((await d)[0], 'io server disconnect');
  a.close();
});

test('a host that stops reading: its queue is bounded, overflow dropped and counted, it carries on after', async () => {
  const { rssKiB } = await import('../lib/core_helpers.mjs');
  const a = await alice({ transports: ['websocket'] });
  const pid = hostPid();
  const before = rssKiB(stack.rt.proc.pid);
  process.kill(pid, 'SIGSTOP');
  try {
    const big = 'z'.repeat(200000);
    for (let i = 0; i < 150; i++) { // 30 MB for a host that reads nothing
      a.emit('shout', 'nobody', big);
      if (i % 10 === 9) await roundTrip(a); // native events are unaffected
    }
    await stack.rt.waitForLine(/the node host is not reading: a message to it was dropped/);
    const grown = rssKiB(stack.rt.proc.pid) - before;
    assert.ok(grown < 40 * 1024, `RSS grew by ${grown} KiB`);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  // it reads again: once what was queued is through, new events are handled
  // (what came while the queue was full was dropped)
  await waitFor(async () => {
    try { return (await a.timeout(1000).emitWithAck('still')) === 'alive'; } catch { return false; }
  }, 20000);
  a.close();
});

test('realtimed --check-config loads every app\'s handlers.js and fails on one that does not load', () => {
  const r = spawnSync(process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed'), ['--check-config'],
    { cwd: stack.bench, encoding: 'utf8' });
  assert.equal(r.status, 78, r.stdout + r.stderr);
  assert.match(r.stderr, /failed to load event handlers from .*loadfail\/realtime\/handlers\.js: Error: loadfail cannot load/);
  assert.match(r.stderr, /fullapi\/realtime\/handlers\.js: loads/);
});

test('the host killed with SIGKILL: clients stay connected, handlers work again, sockets and rooms replayed', async () => {
  const a = await alice();
  const b = await bob({ transports: ['polling'] });
  await ack(a, 'join_room', 'kept');
  const disc = [collect(a, 'disconnect'), collect(b, 'disconnect')];
  const pid = hostPid();
  process.kill(pid, 'SIGKILL');
  await stack.rt.waitForLine(/the node host was killed by signal 9: clients stay connected; restarting it/);
  // native events keep working meanwhile
  await roundTrip(a);
  await stack.rt.waitForLine(/node host \(pid \d+\): replayed \d+ sockets/, 10000);
  await waitFor(() => hostPid() && hostPid() !== pid);
  // handlers work again, on the same sockets, with their rooms
  await waitFor(async () => {
    try { return (await a.timeout(500).emitWithAck('members', 'kept')).includes(a.id); } catch { return false; }
  }, 10000);
  assert.equal((await ack(b, 'whoami')).user, 'bob@x');
  const got = collect(b, 'typers');
  a.emit('typing', 'after-restart');
  b.emit('typing', 'after-restart');
  await waitFor(() => got.length >= 1);
  assert.deepEqual(disc, [[], []]);
  assert.ok(a.connected && b.connected);
  // Redis events still reach them
  const ev = once(a, 'still_here');
  await publish(stack.redis, { event: 'still_here', message: 1, room: 'user:alice@x', namespace: SITE1 });
  assert.deepEqual(await ev, [1]);
  a.close();
  b.close();
  await sleep(50);
});
