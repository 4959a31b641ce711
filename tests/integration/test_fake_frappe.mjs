// Self-test of the shared test infrastructure: fake_frappe.py and procs.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  freePort, startRedis, startFakeFrappe, startRealtimed, makeBench, waitFor,
} from '../lib/procs.mjs';

const USERS = {
  'alice@x': {
    user_type: 'System User', sids: ['sid-alice'], tokens: ['token k1:s1', 'Bearer b1'],
    apps: ['frappe', 'hd'], doctypes: ['ToDo'], docs: [['Note', 'N/1 x']],
  },
  'bob@x': { user_type: 'Website User', sids: ['sid-bob'], tokens: ['token k2:s2'] },
};

let fake;
let redis;

before(async () => {
  [fake, redis] = await Promise.all([startFakeFrappe(), startRedis()]);
});
after(async () => {
  await Promise.all([fake?.stop(), redis?.stop()]);
});

const M = '/api/method/frappe.realtime.';

async function userInfo(headers = {}) {
  const res = await fetch(`${fake.url}${M}get_user_info`, { headers });
  return { status: res.status, body: await res.json() };
}

async function perm(doctype, name, headers = { cookie: 'sid=sid-alice' }) {
  const q = new URLSearchParams({ doctype, name });
  const res = await fetch(`${fake.url}${M}has_permission?${q}`, { headers });
  return { status: res.status, body: await res.json() };
}

async function fresh(config = {}) {
  await fake.reset();
  await fake.config({ users: USERS, ...config });
}

test('get_user_info by token, bearer, cookie and Guest', async () => {
  await fresh();
  const alice = { user: 'alice@x', user_type: 'System User', installed_apps: ['frappe', 'hd'] };
  assert.deepEqual(await userInfo({ authorization: 'token k1:s1' }), { status: 200, body: { message: alice } });
  assert.deepEqual((await userInfo({ authorization: 'Bearer b1' })).body.message, alice);
  assert.deepEqual((await userInfo({ cookie: 'full_name=A; sid=sid-alice; x=1' })).body.message, alice);
  assert.deepEqual((await userInfo({ cookie: 'sid=Guest' })).body.message,
    { user: 'Guest', user_type: 'Website User', installed_apps: ['frappe'] });
});

test('Authorization wins over the cookie; unknown credentials get 401', async () => {
  await fresh();
  assert.equal((await userInfo({ authorization: 'token k2:s2', cookie: 'sid=sid-alice' })).body.message.user, 'bob@x');
  assert.equal((await userInfo({ authorization: 'token k2:s2', cookie: 'sid=Guest' })).body.message.user, 'bob@x');
  const unknown = { status: 401, body: { exc_type: 'AuthenticationError' } };
  assert.deepEqual(await userInfo({ authorization: 'token nope:x', cookie: 'sid=sid-alice' }), unknown);
  assert.deepEqual(await userInfo({ cookie: 'sid=nope' }), unknown);
  await fake.config({ unknown_sid_as_guest: true });
  assert.equal((await userInfo({ cookie: 'sid=nope' })).body.message.user, 'Guest');
});

test('has_permission: doctypes, doc pairs, allow_all, denial', async () => {
  await fresh();
  const yes = { status: 200, body: { message: true } };
  const no = { status: 403, body: { exc_type: 'PermissionError' } };
  assert.deepEqual(await perm('ToDo', ''), yes);
  assert.deepEqual(await perm('ToDo', 'any'), yes);
  assert.deepEqual(await perm('Note', 'N/1 x'), yes);
  assert.deepEqual(await perm('Note', 'N/2'), no);
  assert.deepEqual(await perm('Note', ''), no);
  assert.deepEqual(await perm('ToDo', '', { cookie: 'sid=sid-bob' }), no);
  await fake.config({ allow_all: true });
  assert.deepEqual(await perm('Anything', 'x', { cookie: 'sid=sid-bob' }), yes);
});

test('html500, json500, close, and fail only N times', async () => {
  await fresh({ fail: { get_user_info: 'html500', has_permission: 'close' } });
  const res = await fetch(`${fake.url}${M}get_user_info`, { headers: { cookie: 'sid=sid-alice' } });
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.match(text, /^<!DOCTYPE html><html>/);
  // The exact error text Node's fetch().json() produces (reference section 7).
  assert.throws(() => JSON.parse(text), { message: /^Unexpected token '<', "<!DOCTYPE "\.\.\. is not valid JSON$/ });
  await assert.rejects(perm('ToDo', ''));

  await fake.config({ fail: { get_user_info: { mode: 'json500', times: 1 } } });
  assert.equal((await userInfo({ cookie: 'sid=sid-alice' })).status, 500);
  assert.equal((await userInfo({ cookie: 'sid=sid-alice' })).status, 200);
});

test('delay_ms delays only that endpoint', async () => {
  await fresh({ delay_ms: { get_user_info: 300 } });
  let t = Date.now();
  await userInfo({ cookie: 'sid=sid-alice' });
  assert.ok(Date.now() - t >= 290, 'delayed');
  t = Date.now();
  await perm('ToDo', '');
  assert.ok(Date.now() - t < 250, 'not delayed');
});

test('omit_apps: first reply lacks installed_apps (one-retry rule)', async () => {
  await fresh({ omit_apps: { 'sid-alice': 1 } });
  assert.deepEqual((await userInfo({ cookie: 'sid=sid-alice' })).body.message, { user: 'alice@x', user_type: 'System User' });
  assert.deepEqual((await userInfo({ cookie: 'sid=sid-alice' })).body.message.installed_apps, ['frappe', 'hd']);
  assert.ok((await userInfo({ cookie: 'sid=sid-bob' })).body.message.installed_apps, 'other credentials unaffected');
});

test('static secret', async () => {
  await fresh({ secret: 's3cret' });
  assert.deepEqual(await userInfo({ cookie: 'sid=sid-alice' }), { status: 200, body: { message: {} } });
  assert.deepEqual((await userInfo({ cookie: 'sid=sid-alice', 'x-frappe-socket-secret': 'bad' })).body, { message: {} });
  assert.equal((await userInfo({ cookie: 'sid=sid-alice', 'x-frappe-socket-secret': 's3cret' })).body.message.user, 'alice@x');
});

test('secret from redis: created lazily, re-read on every call', async () => {
  await redis.command('DEL', 'socketio_auth_secret');
  await fresh({ secret_redis: { host: '127.0.0.1', port: redis.port } });
  // Key absent: the fake creates it, like Frappe, and this call mismatches.
  assert.deepEqual((await userInfo({ cookie: 'sid=sid-alice' })).body, { message: {} });
  const secret = await redis.command('GET', 'socketio_auth_secret');
  assert.match(secret, /^[0-9a-f]{32}$/);
  const h = { cookie: 'sid=sid-alice', 'x-frappe-socket-secret': secret };
  assert.equal((await userInfo(h)).body.message.user, 'alice@x');
  await redis.command('SET', 'socketio_auth_secret', 'rotated');
  assert.deepEqual((await userInfo(h)).body, { message: {} });
  // has_permission does not check the secret.
  assert.equal((await perm('ToDo', '', h)).status, 200);
});

test('requests are recorded with headers and raw query; reset clears them', async () => {
  await fresh();
  await perm('Note', 'N/1 x', { cookie: 'sid=sid-alice', 'X-Frappe-Site-Name': 'site1.local' });
  await userInfo({ authorization: 'token k1:s1' });
  const all = await fake.requests();
  assert.equal(all.length, 2, 'control calls are not recorded');
  const [p] = await fake.requests('has_permission');
  assert.equal(p.method, 'GET');
  assert.equal(p.path, `${M}has_permission`);
  assert.equal(p.raw_query, 'doctype=Note&name=N%2F1+x');
  assert.deepEqual(p.query, { doctype: 'Note', name: 'N/1 x' });
  assert.equal(p.headers.cookie, 'sid=sid-alice');
  assert.equal(p.headers['x-frappe-site-name'], 'site1.local');
  assert.equal(p.status, 200);
  assert.equal((await fake.requests('get_user_info'))[0].headers.authorization, 'token k1:s1');
  await fake.reset();
  assert.deepEqual(await fake.requests(), []);
  assert.deepEqual(await fake.getConfig(), {});
});

test('keep-alive: two requests on one connection', async () => {
  await fresh();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = () => new Promise((resolve, reject) => {
    const req = http.get(`${fake.url}${M}get_user_info`, { agent, headers: { cookie: 'sid=Guest' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(req.reusedSocket));
    });
    req.on('error', reject);
  });
  assert.equal(await get(), false);
  assert.equal(await get(), true);
  agent.destroy();
});

test('redis helper: command, publish, restart', async () => {
  await redis.command('SET', 'k', 'v');
  assert.equal(await redis.command('GET', 'k'), 'v');
  assert.equal(await redis.publish('events', { event: 'x' }), 0);
  await redis.restart();
  assert.equal(await redis.command('GET', 'k'), null, 'nothing persisted');
});

test('startRealtimed: readiness, output, stop, early exit', async () => {
  const port = await freePort();
  // Stand-in binary: python that listens on --port and logs a line.
  const script = 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); '
    + 's.bind(("127.0.0.1", int(sys.argv[2]))); s.listen(); print("Realtime service listening on:", sys.argv[2], flush=True); time.sleep(60)';
  const saved = process.env.REALTIMED_BIN;
  process.env.REALTIMED_BIN = '/usr/bin/python3';
  try {
    const rt = await startRealtimed(['-c', script, '--port', String(port)], { env: { X: '1' } });
    assert.equal(rt.port, port);
    const m = await rt.waitForLine(/listening on: (\d+)/, 2000);
    assert.equal(Number(m[1]), port);
    assert.match(rt.output(), /Realtime service listening/);
    assert.deepEqual(await rt.stop(), { code: null, signal: 'SIGTERM' });

    await assert.rejects(
      startRealtimed(['-c', 'import sys; print("boom", file=sys.stderr); sys.exit(3)', '--port', String(port)]),
      /exited \(code 3.*\n.*boom/s,
    );
  } finally {
    if (saved === undefined) delete process.env.REALTIMED_BIN; else process.env.REALTIMED_BIN = saved;
  }
});

test('makeBench and waitFor', async () => {
  const dir = makeBench({ common_site_config: { redis_queue: 'redis://x' }, config: { a: 1 }, sites: ['s1.local', 's2.local'] });
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'sites/common_site_config.json'))), { redis_queue: 'redis://x' });
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'))), { a: 1 });
  assert.ok(fs.statSync(path.join(dir, 'sites/s2.local')).isDirectory());
  let n = 0;
  assert.equal(await waitFor(() => ++n >= 3 && n), 3);
  await assert.rejects(waitFor(() => false, 100), /timed out/);
});
