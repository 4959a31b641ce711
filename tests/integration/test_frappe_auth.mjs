// Frappe mode, sites and authentication (issue "Frappe drop-in", points 6.2
// and 6.3): site resolution, the middleware's CONNECT_ERROR texts, the
// get_user_info / has_permission callbacks (headers, secret, retry, failure
// texts, timeout), Guest, site isolation and coalescing of identical calls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  SITE1, SITE2, USERS, T, startStack, connect, connected, connectError, collect, once, publish,
  roundTrip, quiet, rawPolling, waitFor, sleep, callbacks,
} from '../lib/frappe_helpers.mjs';

let stack;
let fake;
let redis;
let evn = 0;

before(async () => {
  stack = await startStack({ common: { default_site: SITE1 } });
  ({ fake, redis } = stack);
});

after(async () => {
  if (stack) {
    const r = await stack.stop();
    assert.deepEqual(r, { code: 0, signal: null }, stack.rt.output());
  }
});

async function fresh(config = {}) {
  await fake.reset();
  await fake.config({ users: USERS, ...config });
}

/** Asserts that s (on site) receives what is published to `room` there. */
async function receives(s, room, site = SITE1) {
  const ev = `probe${++evn}`;
  const p = once(s, ev);
  assert.equal(await publish(redis, { event: ev, message: { room }, room, namespace: site }), 1);
  assert.deepEqual(await p, [{ room }]);
}

/** Asserts that s (on site) does not receive what is published to `room` there. */
async function ignores(s, room, site = SITE1) {
  const ev = `probe${++evn}`;
  const got = collect(s, ev);
  await publish(redis, { event: ev, message: {}, room, namespace: site });
  await roundTrip(s);
  assert.deepEqual(await quiet(got), []);
}

const wsHeaders = (h) => ({ transports: ['websocket'], headers: h });

// ---------------------------------------------------------------- sites and errors

test('CONNECT_ERROR texts of the middleware, exactly', async () => {
  await fresh();
  const cases = [
    // namespace != resolved site (X-Frappe-Site-Name wins)
    [{ site: SITE2, xsite: SITE1 }, 'Invalid namespace'],
    // default_site (Host 127.0.0.1) resolves site1.local
    [{ site: SITE2, xsite: null }, 'Invalid namespace'],
    [{ origin: 'http://evil.example' }, 'Invalid origin'],
    [{ origin: 'http://127.0.0.2:80' }, 'Invalid origin'],
    [{ origin: null }, 'Invalid origin'],
    [{ origin: null, transports: ['websocket'] }, 'Invalid origin'],
    [{ cookie: null }, 'Missing cookie and authorization header. Either one needed for authentication.'],
    [{ cookie: '' }, 'Missing cookie and authorization header. Either one needed for authentication.'],
    [{ cookie: 'full_name=Alice; system_user=yes' }, 'No authentication method used. Use cookie or authorization header.'],
    [{ cookie: 'sid=' }, 'No authentication method used. Use cookie or authorization header.'],
    [{ cookie: 'xsid=sid-alice', transports: ['websocket'] }, 'No authentication method used. Use cookie or authorization header.'],
    // order: namespace before origin before credentials
    [{ site: SITE2, xsite: SITE1, origin: null, cookie: null }, 'Invalid namespace'],
    [{ origin: 'http://evil.example', cookie: null }, 'Invalid origin'],
  ];
  for (const [opts, msg] of cases) {
    assert.equal(await connectError(stack.client(opts)), msg, JSON.stringify(opts));
  }
  // None of these reached the web server (no ghost callback after "Invalid namespace").
  await sleep(100);
  assert.deepEqual(await fake.requests(), []);
  // Ports are ignored in the origin check.
  await connect(stack, { origin: 'http://127.0.0.1:1' });
});

test('CONNECT_ERROR on the wire: 44/<site>,{"message":...}', async () => {
  await fresh();
  const p = await rawPolling({ port: stack.port }, { 'X-Frappe-Site-Name': SITE1, Cookie: 'sid=sid-alice' });
  assert.equal(await p.send('40/site1.local,'), 'ok');
  assert.deepEqual(await p.recv(), ['44/site1.local,{"message":"Invalid origin"}']);

  const q = await rawPolling({ port: stack.port },
    { 'X-Frappe-Site-Name': SITE1, Origin: `http://127.0.0.1:${stack.port}`, Cookie: 'sid=sid-alice' });
  // the handshake auth payload is ignored; a repeated CONNECT is answered again
  assert.equal(await q.send('40/site1.local,{"token":"ignored"}'), 'ok');
  const [first] = await q.recv();
  const m = first.match(/^40\/site1\.local,\{"sid":"([^"]+)"\}$/);
  assert.ok(m, first);
  assert.equal(await q.send('40/site1.local,'), 'ok');
  const [second] = await q.recv();
  assert.match(second, /^40\/site1\.local,\{"sid":"[^"]+"\}$/);
  // the main namespace has no middleware and no handlers
  assert.equal(await q.send('40'), 'ok');
  const [main] = await q.recv();
  assert.match(main, /^40\{"sid":"[^"]+"\}$/);
  assert.equal(await q.send('42["ping"]'), 'ok');
  assert.equal(await q.send('42/site1.local,["ping"]'), 'ok');
  assert.deepEqual(await q.recv(), ['42/site1.local,["pong"]']);
  assert.equal(await q.send('1'), 'ok');
});

test('site resolution: X-Frappe-Site-Name, default_site, Origin, Host', async () => {
  await fresh();
  // 1. X-Frappe-Site-Name with scheme and port stripped wins over a custom domain
  await connect(stack, {
    site: SITE2, xsite: 'http://site2.local:8443',
    ...wsHeaders({ Host: 'www.custom.example', Origin: 'https://www.custom.example' }),
  });
  await connect(stack, { site: SITE2, xsite: 'site2.local:8000' });
  let [cb] = await callbacks(fake, 'get_user_info', 2);
  assert.equal(cb.headers['x-frappe-site-name'], SITE2);
  // 2. default_site when Host is 127.0.0.1 or localhost (Origin is not consulted)
  await connect(stack, { xsite: null });
  await connect(stack, { xsite: null, ...wsHeaders({ Host: 'localhost:8000', Origin: 'http://localhost:3000' }) });
  // ... but not for another Host: then the Origin's hostname
  await connect(stack, { site: SITE2, xsite: null, ...wsHeaders({ Host: 'site2.local', Origin: 'https://site2.local' }) });
  // 3. Origin beats Host: the namespace check passes for the Origin's host, then the origin check fails
  assert.equal(await connectError(stack.client({ site: SITE2, xsite: null, ...wsHeaders({ Host: 'custom.example:8080', Origin: 'http://site2.local' }) })),
    'Invalid origin');
  assert.equal(await connectError(stack.client({ nsp: 'custom.example', xsite: null, ...wsHeaders({ Host: 'custom.example:8080', Origin: 'http://site2.local' }) })),
    'Invalid namespace');
  // 4. Host's hostname when there is no Origin
  assert.equal(await connectError(stack.client({ site: SITE2, xsite: null, origin: null, ...wsHeaders({ Host: 'site2.local:80' }) })),
    'Invalid origin');
  assert.equal(await connectError(stack.client({ site: SITE1, xsite: null, origin: null, ...wsHeaders({ Host: 'site2.local:80' }) })),
    'Invalid namespace');
  // an empty X-Frappe-Site-Name is ignored
  await connect(stack, { xsite: '' });
  const all = await callbacks(fake, 'get_user_info', 6);
  assert.deepEqual(all.map((r) => r.headers['x-frappe-site-name']),
    [SITE2, SITE2, SITE1, SITE1, SITE2, SITE1]);
  [cb] = all;
  assert.equal(cb.headers.cookie, 'sid=sid-alice');
});

test('two sites are isolated: the same room name on each', async () => {
  await fresh();
  const a1 = await connect(stack, { site: SITE1 });
  const a2 = await connect(stack, { site: SITE2 });
  const b2 = await connect(stack, { site: SITE2, cookie: 'sid=sid-bob' });
  const g1 = collect(a1, 'iso');
  const g2 = collect(a2, 'iso');
  const gb = collect(b2, 'iso');
  await publish(redis, { event: 'iso', message: 1, room: 'user:alice@x', namespace: SITE1 });
  await publish(redis, { event: 'iso', message: 2, room: 'user:alice@x', namespace: SITE2 });
  await publish(redis, { event: 'iso', message: 3, room: 'all', namespace: SITE2 });
  await waitFor(() => g1.length === 1 && g2.length === 2 && gb.length === 1);
  await quiet(g1);
  assert.deepEqual(g1, [[1]]);
  assert.deepEqual(g2, [[2], [3]]);
  assert.deepEqual(gb, [[3]]);
  for (const s of [a1, a2, b2]) s.close();
});

// ---------------------------------------------------------------- auth

test('cookie sid: the callback sends Cookie: sid=<sid>, X-Frappe-Site-Name, no Authorization', async () => {
  await fresh();
  for (const transports of [['polling', 'websocket'], ['polling'], ['websocket']]) {
    const s = await connect(stack, { cookie: 'full_name=Alice%20A; sid=sid-alice; system_user=yes', transports });
    await receives(s, 'user:alice@x');
    s.close();
  }
  const calls = await callbacks(fake, 'get_user_info', 3);
  assert.equal(calls.length, 3);
  for (const c of calls) {
    assert.equal(c.method, 'GET');
    assert.equal(c.path, '/api/method/frappe.realtime.get_user_info');
    assert.equal(c.raw_query, '');
    assert.equal(c.headers.cookie, 'sid=sid-alice');
    assert.equal(c.headers.authorization, undefined);
    assert.equal(c.headers['x-frappe-site-name'], SITE1);
    assert.equal(c.headers.host, `127.0.0.1:${fake.port}`);
  }
});

test('Authorization: token and Bearer; the token wins over the cookie', async () => {
  await fresh();
  const t = await connect(stack, { cookie: null, authorization: 'token k1:s1' });
  await receives(t, 'user:alice@x');
  const b = await connect(stack, { cookie: null, authorization: 'Bearer b1', transports: ['websocket'] });
  await receives(b, 'user:alice@x');
  // both: Authorization is sent, the cookie is not
  const both = await connect(stack, { cookie: 'sid=sid-alice', authorization: 'token k2:s2' });
  await receives(both, 'user:bob@x', SITE1);
  await ignores(both, 'user:alice@x');
  // a Guest cookie does not override a token (Frappe PR #26766)
  const g = await connect(stack, { cookie: 'sid=Guest', authorization: 'token k2:s2' });
  await receives(g, 'user:bob@x');
  const calls = await callbacks(fake, 'get_user_info', 4);
  assert.deepEqual(calls.map((c) => [c.headers.authorization, c.headers.cookie]), [
    ['token k1:s1', undefined], ['Bearer b1', undefined], ['token k2:s2', undefined], ['token k2:s2', undefined],
  ]);
  // permission checks carry the same credentials
  both.emit('doctype_subscribe', 'ToDo');
  const [perm] = await waitFor(async () => {
    const r = await fake.requests('has_permission');
    return r.length ? r : null;
  });
  assert.equal(perm.headers.authorization, 'token k2:s2');
  assert.equal(perm.headers.cookie, undefined);
  assert.equal(perm.headers['x-frappe-site-name'], SITE1);
  for (const s of [t, b, both, g]) s.close();
});

test('X-Frappe-Socket-Secret: read from redis before every callback, rotation, has_permission', async () => {
  await fresh({ secret_redis: { host: '127.0.0.1', port: redis.port } });
  await redis.command('SET', 'socketio_auth_secret', 'secret-1');
  const s1 = await connect(stack);
  await redis.command('SET', 'socketio_auth_secret', 'secret-2');
  const s2 = await connect(stack, { site: SITE2 });
  s2.emit('doc_subscribe', 'ToDo', 'T-1');
  const perm = await waitFor(async () => (await fake.requests('has_permission'))[0]);
  const calls = await callbacks(fake, 'get_user_info', 2);
  assert.deepEqual(calls.map((c) => [c.headers['x-frappe-socket-secret'], c.headers['x-frappe-site-name']]),
    [['secret-1', SITE1], ['secret-2', SITE2]]);
  assert.equal(perm.headers['x-frappe-socket-secret'], 'secret-2');
  assert.equal(perm.headers['x-frappe-site-name'], SITE2);
  assert.equal(perm.raw_query, 'doctype=ToDo&name=T-1');
  s1.close();
  s2.close();
});

test('one retry when installed_apps is missing: exactly two get_user_info calls', async () => {
  await fresh({ omit_apps: { 'sid-alice': 1, 'token k1:s1': 5 } });
  const s = await connect(stack);
  await receives(s, 'user:alice@x');
  assert.equal((await callbacks(fake, 'get_user_info', 2)).length, 2);
  s.close();

  // missing twice: the retry's answer is used as is (no rooms without the app list)
  await fresh({ omit_apps: { 'token k1:s1': 5 } });
  const t = await connect(stack, { authorization: 'token k1:s1', cookie: null });
  assert.equal((await callbacks(fake, 'get_user_info', 2)).length, 2);
  t.close();

  // secret bootstrap: the key does not exist yet; the web server creates it on
  // the first call (which cannot match), the retry reads and sends it.
  await redis.command('DEL', 'socketio_auth_secret');
  await fresh({ secret_redis: { host: '127.0.0.1', port: redis.port } });
  const b = await connect(stack);
  await receives(b, 'user:alice@x');
  const calls = await callbacks(fake, 'get_user_info', 2);
  assert.equal(calls.length, 2);
  const secret = await redis.command('GET', 'socketio_auth_secret');
  assert.equal(calls[0].headers['x-frappe-socket-secret'], undefined);
  assert.equal(calls[1].headers['x-frappe-socket-secret'], secret);
  b.close();
});

test('get_user_info failures: {} , 401, HTML 500, JSON 500, closed connection', async () => {
  // secret mismatch: {} twice, then rejected (Node would accept a deaf socket)
  await fresh({ secret: 'not-the-one-in-redis' });
  assert.equal(await connectError(stack.client()), 'Unauthorized: Error: get_user_info returned no user');
  assert.equal((await callbacks(fake, 'get_user_info', 2)).length, 2);

  // unknown credentials: 401 JSON
  await fresh();
  const undef = "Unauthorized: TypeError: Cannot read properties of undefined (reading 'installed_apps')";
  assert.equal(await connectError(stack.client({ cookie: 'sid=nope' })), undef);
  assert.equal(await connectError(stack.client({ cookie: null, authorization: 'token bad:bad' })), undef);
  await fresh({ fail: { get_user_info: 'json500' } });
  assert.equal(await connectError(stack.client()), undef);

  // HTML from a proxy: V8's JSON.parse message, and no retry
  await fresh({ fail: { get_user_info: { mode: 'html500', times: 1 } } });
  assert.equal(await connectError(stack.client()),
    'Unauthorized: SyntaxError: Unexpected token \'<\', "<!DOCTYPE "... is not valid JSON');
  assert.equal((await callbacks(fake, 'get_user_info', 1)).length, 1);
  // (the next attempt succeeds)
  (await connect(stack)).close();

  await fresh({ fail: { get_user_info: 'close' } });
  assert.equal(await connectError(stack.client()), 'Unauthorized: TypeError: fetch failed');
  // the server keeps working
  await fresh();
  const s = await connect(stack);
  await roundTrip(s);
  s.close();
});

test('slow web server beyond --auth-timeout 300: TimeoutError', async () => {
  await fresh({ delay_ms: { get_user_info: 1500 } });
  const slow = await startStack({ redis, fake, args: ['--auth-timeout', '300'] });
  try {
    const t0 = Date.now();
    assert.equal(await connectError(slow.client()), 'Unauthorized: TimeoutError: The operation was aborted due to timeout');
    const dt = Date.now() - t0;
    assert.ok(dt >= 250 && dt < 1400, `rejected after ${dt} ms`);
    // a fast answer within the timeout is fine
    await fresh({ delay_ms: { get_user_info: 50 } });
    await connect(slow);
    // SIGTERM while a callback is in flight: prompt exit 0 (no wait for the answer)
    await fresh({ delay_ms: { get_user_info: 3000 } });
    const s = slow.client();
    await once(s.io, 'open');
    await sleep(50);
    const t1 = Date.now();
    const r = await slow.stop();
    assert.deepEqual(r, { code: 0, signal: null }, slow.rt.output());
    assert.ok(Date.now() - t1 < 2500, `exit took ${Date.now() - t1} ms`);
  } finally {
    const r = await slow.stop();
    assert.deepEqual(r, { code: 0, signal: null }, slow.rt.output());
  }
});

test('clients that leave while their callback is in flight', async () => {
  await fresh({ delay_ms: { get_user_info: 400, has_permission: 400 } });
  // during get_user_info
  const s = stack.client();
  await once(s.io, 'open');
  await sleep(20);
  s.close();
  await callbacks(fake, 'get_user_info', 1);
  // during has_permission (doc_open: no presence for a gone socket)
  const b = await connect(stack, { cookie: 'sid=sid-bob' });
  b.emit('doc_open', 'ToDo', 'L-1');
  b.emit('doctype_subscribe', 'ToDo');
  await sleep(20);
  b.close();
  await callbacks(fake, 'has_permission', 2);
  await sleep(100);
  // the server is fine
  await fresh();
  const a = await connect(stack);
  await receives(a, 'user:alice@x');
  a.close();
});

test('Guest (sid=Guest) connects and is only in website and user:Guest', async () => {
  await fresh();
  const g = await connect(stack, { cookie: 'sid=Guest' });
  const [cb] = await callbacks(fake, 'get_user_info', 1);
  assert.equal(cb.headers.cookie, 'sid=Guest');
  await receives(g, 'website');
  await receives(g, 'user:Guest');
  await ignores(g, 'all');
  await ignores(g, 'user:alice@x');
  await roundTrip(g);
  g.close();
});

test('coalescing: 20 simultaneous connects with the same cookie', async () => {
  await fresh({ delay_ms: { get_user_info: 300 } });
  const socks = Array.from({ length: 20 }, () => stack.client());
  await Promise.all(socks.map((s) => connected(s, T)));
  await callbacks(fake, 'get_user_info', 1, { exact: false });
  await sleep(300); // let any straggler be recorded
  const n = (await fake.requests('get_user_info')).length;
  // reported by the test run (see the final report)
  console.log(`# coalescing: ${n} get_user_info calls for 20 connects`);
  assert.ok(n >= 1 && n < 20, `${n} calls`);
  // every socket is a full alice socket
  const got = socks.map((s) => collect(s, 'c'));
  await publish(redis, { event: 'c', message: 'x', room: 'user:alice@x', namespace: SITE1 });
  await waitFor(() => got.every((g) => g.length === 1));
  for (const s of socks) s.close();
});

test('web server down: Unauthorized: TypeError: fetch failed (last: stops the fake)', async () => {
  await fresh();
  await fake.stop();
  const t0 = Date.now();
  assert.equal(await connectError(stack.client()), 'Unauthorized: TypeError: fetch failed');
  assert.ok(Date.now() - t0 < 3000);
  assert.equal(await connectError(stack.client({ site: SITE2, cookie: null, authorization: 'token k1:s1' })),
    'Unauthorized: TypeError: fetch failed');
  assert.ok(stack.rt.isRunning());
  await sleep(0);
});
