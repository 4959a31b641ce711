// Apps' realtime/handlers.py (@realtime.on) run by realtimed's Python host
// (issue 16), through socket.io-client over WebSocket and polling. The test
// bench gets a real virtual environment (python3 -m venv
// --system-site-packages) with the apps on its path, and a stand-in frappe
// package in both shapes: with frappe.realtime's registry and the older
// plain frappe/realtime.py.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  SITE1, startStack, connect, once, collect, roundTrip, quiet, waitFor, publish, connectError,
} from '../lib/frappe_helpers.mjs';
import { ROOT, SAN_ENV } from '../lib/procs.mjs';

const FIX = path.join(ROOT, 'tests/fixtures');
const PYAPPS = ['pyfull', 'pyasync', 'pyraise', 'pyimportfail', 'pynotinstalled', 'pyboth'];
const INSTALLED = ['frappe', 'pyfull', 'pyasync', 'pyraise', 'pyimportfail', 'pyboth'];
const USERS = {
  'alice@x': { user_type: 'System User', sids: ['sid-alice'], apps: INSTALLED, doctypes: ['ToDo'] },
  'bob@x': { user_type: 'System User', sids: ['sid-bob'], apps: INSTALLED, doctypes: ['ToDo'] },
  Guest: { user_type: 'Website User', apps: INSTALLED },
};

/** A bench venv with the apps (through the bench's apps/ paths) importable. */
export function makeVenv(bench) {
  const env = path.join(bench, 'env');
  execFileSync('/usr/bin/python3', ['-m', 'venv', '--system-site-packages', '--without-pip', env]);
  const site = execFileSync(path.join(env, 'bin/python'), ['-c', 'import site; print(site.getsitepackages()[0])'],
    { encoding: 'utf8' }).trim();
  const dirs = fs.readdirSync(path.join(bench, 'apps')).map((a) => path.join(bench, 'apps', a));
  fs.writeFileSync(path.join(site, 'bench_apps.pth'), `${dirs.join('\n')}\n`);
}

export async function pyStack(frappeShape) {
  const apps = { frappe: path.join(FIX, 'pyfrappe', frappeShape) };
  for (const a of PYAPPS) apps[a] = path.join(FIX, 'apps', a);
  // the venv must exist before realtimed starts: a pre-made bench folder
  const stack = await startStack({ apps, sites: [SITE1], env: SAN_ENV, beforeStart: makeVenv });
  await stack.fake.config({ users: USERS });
  await stack.rt.waitForLine(/python host ready/, 15000);
  return stack;
}

let stack;
const alice = (o = {}) => connect(stack, { cookie: 'sid=sid-alice', ...o });
const bob = (o = {}) => connect(stack, { cookie: 'sid=sid-bob', ...o });

before(async () => { stack = await pyStack('registry'); });

after(async () => {
  const r = await stack?.stop();
  assert.deepEqual(r, { code: 0, signal: null }, stack?.rt.output());
  assert.doesNotMatch(stack.rt.output(), /AddressSanitizer|LeakSanitizer|runtime error/);
});

function hostPid() {
  const out = execFileSync('pgrep', ['-P', String(stack.rt.proc.pid)], { encoding: 'utf8' }).trim().split('\n');
  return out.map(Number).find((pid) => {
    try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('handlers_host.py'); } catch { return false; }
  });
}

test('startup: the bench\'s interpreter, the registry\'s own dispatch, which file each app uses', async () => {
  const out = stack.rt.output();
  assert.match(out, new RegExp(`starting the python host \\(${stack.bench}/env/bin/python\\)`));
  assert.match(out, /dispatching from the bench's frappe.realtime registry/);
  assert.match(out, /app pyboth: .*pyboth\/pyboth\/realtime\/handlers\.py \(handlers\.js not used\)/);
  assert.match(out, /loaded realtime handlers from pyfull\.realtime\.handlers/);
  // a handlers.py that fails to import is loud, with its traceback; the others load
  await stack.rt.waitForLine(/failed to import pyimportfail\.realtime\.handlers: app pyimportfail has no Python handlers/);
  assert.match(out, /ImportError: pyimportfail is broken/);
  assert.doesNotMatch(out, /node host/); // no app needs handlers.js here
});

test('connect handler, emit to self, get/set, the Socket\'s fields; both transports', async () => {
  for (const transports of [['websocket'], ['polling']]) {
    const s = await alice({ transports });
    const welcome = await once(s, 'py_welcome');
    assert.deepEqual(welcome, [{ user: 'alice@x', site: SITE1, apps: INSTALLED }]);
    const st = once(s, 'py_state');
    s.emit('py_state', 42);
    assert.deepEqual(await st, [{ value: 42, connected_as: 'alice@x', sid: s.id, namespace: `/${SITE1}`,
      user_type: 'System User' }]);
    const reg = once(s, 'py_registry');
    s.emit('py_registry');
    assert.deepEqual(await reg, [true]);
    s.close();
  }
});

test('typing with participants/user_of, emit to a room includes the sender; to the user\'s room', async () => {
  const a = await alice();
  const b = await bob({ transports: ['polling'] });
  const at = collect(a, 'py_typers');
  const bt = collect(b, 'py_typers');
  a.emit('py_typing', 'C1');
  await waitFor(() => at.length === 1);
  assert.deepEqual(at[0], [{ channel: 'C1', users: ['alice@x'] }]);
  b.emit('py_typing', 'C1');
  await waitFor(() => at.length === 2 && bt.length === 1);
  assert.deepEqual(new Set(at[1][0].users), new Set(['alice@x', 'bob@x']));
  b.emit('py_typing_stopped', 'C1');
  await waitFor(() => at.length === 3);
  assert.deepEqual(at[2], [{ channel: 'C1', users: ['alice@x'] }]);
  // rooms natively joined count: participants of user:alice@x include a's socket
  const m = once(a, 'py_members');
  a.emit('py_members', 'user:alice@x');
  assert.deepEqual(await m, [[a.id]]);
  const a2 = await alice();
  const me = [collect(a, 'py_me'), collect(a2, 'py_me')];
  a.emit('py_to_me', { x: 1 });
  await waitFor(() => me[0].length === 1 && me[1].length === 1);
  a.close();
  a2.close();
  b.close();
});

test('permission-gated join, plain and async; Guests only for allow_guest handlers', async () => {
  const a = await alice();
  const v = once(a, 'py_viewing');
  a.emit('py_view', 'T-1');
  assert.deepEqual(await v, ['T-1']);
  const av = once(a, 'py_async_viewing');
  a.emit('py_async_view', 'ToDo', 'T-2');
  assert.deepEqual(await av, [{ doctype: 'ToDo', name: 'T-2', typers: 'alice@x' }]);
  const ad = once(a, 'py_async_denied');
  a.emit('py_async_view', 'Secret', 'S-1');
  assert.deepEqual(await ad, ['S-1']);
  a.close();
  // a Guest: fire (allow_guest) answers, py_state (not allow_guest) does not
  const g = await connect(stack, { cookie: 'sid=Guest' });
  const ice = once(g, 'ice');
  g.emit('fire');
  assert.deepEqual(await ice, []);
  const st = collect(g, 'py_state');
  g.emit('py_state', 1);
  await roundTrip(g);
  assert.deepEqual(await quiet(st), []);
  g.close();
});

test('acks are answered empty after the handlers; binary arguments arrive as bytes', async () => {
  const a = await alice();
  assert.deepEqual(await a.timeout(5000).emitWithAck('py_state'), undefined);
  const back = once(a, 'py_bin_back');
  a.emit('py_bin', Buffer.from([1, 2, 3, 4]));
  const [r] = await back;
  assert.equal(r.len, 4);
  assert.deepEqual(Buffer.from(r.data), Buffer.from([4, 3, 2, 1]));
  a.close();
});

test('frappe_context opens Frappe\'s context for the site and user', async () => {
  const a = await alice();
  const c = once(a, 'py_ctx');
  a.emit('py_ctx');
  const [r] = await c;
  assert.equal(r.site, SITE1);
  assert.equal(r.user, 'alice@x');
  assert.deepEqual(r.calls.map((x) => x[0]), ['init', 'connect', 'set_user']);
  a.close();
});

test('handlers that raise are logged with app, event and traceback; the socket and others carry on', async () => {
  const a = await alice();
  a.emit('py_boom');
  a.emit('py_boom_async');
  await stack.rt.waitForLine(/handler error: event=py_boom app=pyraise/);
  await stack.rt.waitForLine(/ValueError: sync boom/);
  await stack.rt.waitForLine(/handler error: event=py_boom_async app=pyraise/);
  await stack.rt.waitForLine(/ValueError: async boom/);
  const alive = once(a, 'py_alive');
  a.emit('py_after_boom');
  await alive;
  // the app that failed to import has no handler, not even the one before the error
  const half = collect(a, 'py_half');
  a.emit('py_half');
  await roundTrip(a);
  assert.deepEqual(await quiet(half), []);
  // an app on disk but not in installed_apps never runs
  const ni = collect(a, 'py_not_installed');
  a.emit('py_not_installed');
  assert.deepEqual(await quiet(ni), []);
  // the app with both files answers once, from handlers.py
  const w = collect(a, 'which');
  a.emit('which');
  await waitFor(() => w.length === 1);
  assert.deepEqual(await quiet(w), [['py']]);
  a.close();
});

test('disconnect handler for every way a socket goes; state is dropped', async () => {
  const a = await alice();
  const b = await bob();
  const bid = b.id;
  b.close();
  await waitFor(async () => {
    const g = once(a, 'py_gone');
    a.emit('py_gone');
    return (await g)[0].some((x) => x.sid === bid);
  });
  a.close();
});

test('the host killed with SIGKILL: clients stay connected, handlers work again after the restart', async () => {
  const a = await alice();
  a.emit('py_typing', 'K1');
  await once(a, 'py_typers');
  const pid = hostPid();
  const disc = collect(a, 'disconnect');
  process.kill(pid, 'SIGKILL');
  await stack.rt.waitForLine(/the python host was killed by signal 9: clients stay connected; restarting it/);
  await roundTrip(a); // native events meanwhile
  await stack.rt.waitForLine(/python host \(pid \d+\): replayed \d+ sockets/, 15000);
  await waitFor(async () => {
    const m = once(a, 'py_members', 2000);
    a.emit('py_members', 'py_typing:K1');
    try { return (await m)[0].includes(a.id); } catch { return false; }
  }, 15000);
  assert.deepEqual(disc, []);
  const ev = once(a, 'still_here');
  await publish(stack.redis, { event: 'still_here', message: 1, room: 'user:alice@x', namespace: SITE1 });
  await ev;
  a.close();
});

test('realtimed --check-config imports every handler module and fails on a broken one', async () => {
  const r = spawnSync(process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed'), ['--check-config'],
    { cwd: stack.bench, encoding: 'utf8' });
  assert.notEqual(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /failed to import pyimportfail\.realtime\.handlers/);
  assert.match(r.stderr, /ImportError: pyimportfail is broken/);
});

test('the older plain frappe.realtime: the host attaches realtime, Socket and the helpers', async () => {
  const plain = await pyStack('plain');
  try {
    assert.match(plain.rt.output(), /frappe.realtime has no registry: realtime, Socket and the room helpers attached/);
    // without a registry, an app with both files runs handlers.js
    assert.match(plain.rt.output(), /app pyboth: .*pyboth\/realtime\/handlers\.js \(handlers\.py not used\)/);
    await plain.rt.waitForLine(/node host ready/, 10000);
    const s = await connect(plain, { cookie: 'sid=sid-alice' });
    const reg = once(s, 'py_registry');
    s.emit('py_registry');
    assert.deepEqual(await reg, [false]);
    const me = once(s, 'py_me');
    s.emit('py_to_me', 7); // get_user_room, attached to the plain module
    assert.deepEqual(await me, [7]);
    const w = once(s, 'which');
    s.emit('which');
    assert.deepEqual(await w, ['js']);
    s.close();
  } finally {
    const r = await plain.stop();
    assert.deepEqual(r, { code: 0, signal: null }, plain.rt.output());
  }
});

test('an unauthenticated handshake reaches no host', async () => {
  const e = await connectError(stack.client({ cookie: 'sid=nobody' }));
  assert.match(e, /Unauthorized/);
});
