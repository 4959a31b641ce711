// The standalone mode (issue 18, first stages): --auth-mode jwt without a
// bench, tokens minted here with Node's crypto (HS256, RS256, ES256, EdDSA),
// every kind of bad token, expiry with socket.io-client's auth callback,
// --namespaces, and the HTTP API (publish, join, leave, disconnect, room)
// with its errors, all through socket.io-client over WebSocket and polling.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { io } from 'socket.io-client';
import { startRealtimed, freePort, tempDir, waitFor, sleep, ROOT } from '../lib/procs.mjs';

const BIN = process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed');

const stops = [];
after(async () => { for (const f of stops.reverse()) await f(); });
const T = 8000;

const dir = tempDir('realtimed-jwt-');
const write = (name, data) => { const p = path.join(dir, name); fs.writeFileSync(p, data); return p; };
const HS_SECRET = crypto.randomBytes(32).toString('hex');
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = crypto.generateKeyPairSync('ed25519');
const pem = (k) => k.publicKey.export({ type: 'spki', format: 'pem' });
const KEYS = {
  hs: write('hs.key', `${HS_SECRET}\n`),
  rsa: write('rsa.pem', pem(rsa)),
  ec: write('ec.pem', pem(ec)),
  ed: write('ed.pem', pem(ed)),
};
const SECRET_FILE = write('hook.secret', 's3cret\n');
const API_KEYS = write('api.keys', '# rotation: both are valid\nold-key-1\nnew-key-2\n');

const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
function mint(claims, { alg = 'HS256', kid, secret = HS_SECRET, header = {} } = {}) {
  const h = { alg, typ: 'JWT', ...(kid ? { kid } : {}), ...header };
  const input = `${b64(h)}.${b64(claims)}`;
  let sig;
  if (alg.startsWith('HS')) sig = crypto.createHmac(`sha${alg.slice(2)}`, secret).update(input).digest();
  else if (alg.startsWith('RS')) sig = crypto.sign(`sha${alg.slice(2)}`, Buffer.from(input), rsa.privateKey);
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg === 'EdDSA') sig = crypto.sign(null, Buffer.from(input), ed.privateKey);
  else sig = Buffer.alloc(0);
  return `${input}.${sig.toString('base64url')}`;
}

async function server(args = []) {
  const port = await freePort();
  const cwd = tempDir('realtimed-nobench-'); // no bench: nothing to read
  const rt = await startRealtimed(['--auth-mode', 'jwt', '--port', String(port), '--jwt-key', KEYS.hs, '--jwt-key',
    KEYS.rsa, '--jwt-key', KEYS.ec, '--jwt-key', KEYS.ed, '--api-key-file', API_KEYS, ...args], { cwd });
  stops.push(() => rt.stop());
  const url = `http://127.0.0.1:${port}`;
  const api = async (method, p, body, { key = 'new-key-2', raw, headers = {} } = {}) => {
    const res = await fetch(`${url}${p}`, {
      method, headers: { ...(key ? { 'X-API-Key': key } : {}), 'Content-Type': 'application/json', ...headers },
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = text; }
    return { status: res.status, json };
  };
  return { rt, port, url, api };
}

function client(url, { nsp = '/', ...opts } = {}) {
  const s = io(`${url}${nsp}`, { forceNew: true, reconnection: false, timeout: T, ...opts });
  stops.push(async () => s.close());
  return s;
}
const connected = (s) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('no connect')), T);
  s.once('connect', () => { clearTimeout(t); resolve(s); });
  s.once('connect_error', (e) => { clearTimeout(t); reject(e); });
});
const refusal = (s) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('no connect_error')), T);
  s.once('connect', () => { clearTimeout(t); reject(new Error('connected')); });
  s.once('connect_error', (e) => { clearTimeout(t); resolve(e.message); });
});
const collect = (s, ev) => { const got = []; s.on(ev, (...a) => got.push(a)); return got; };

test('every algorithm admits its token, over WebSocket and polling; rooms: user, own id, the claim', async () => {
  const { url, api } = await server();
  let i = 0;
  for (const alg of ['HS256', 'HS384', 'HS512', 'RS256', 'RS512', 'ES256', 'EdDSA']) {
    for (const transport of ['websocket', 'polling']) {
      const user = `u${i++}`;
      const s = await connected(client(url, { transports: [transport],
        auth: { token: mint({ sub: user, exp: now() + 60, rooms: ['team:a', 'team:b'] }, { alg }) } }));
      const got = collect(s, 'news');
      for (const room of [`user:${user}`, s.id, 'team:b']) {
        assert.deepEqual((await api('POST', '/api/publish', { room, event: 'news', data: { room } })).json, { ok: true });
      }
      await waitFor(() => got.length === 3, T);
      assert.deepEqual(got.map((g) => g[0].room), [`user:${user}`, s.id, 'team:b'], `${alg} ${transport}`);
      s.close();
    }
  }
});

test('the token from Authorization: Bearer, and from ?token= only with --jwt-query', async () => {
  const { url } = await server();
  const tok = mint({ sub: 'bearer-user' });
  for (const transport of ['websocket', 'polling']) {
    await connected(client(url, { transports: [transport], extraHeaders: { Authorization: `Bearer ${tok}` } }));
  }
  assert.equal(await refusal(client(url, { transports: ['websocket'], query: { token: tok } })), 'no token');
  const q = await server(['--jwt-query']);
  await connected(client(q.url, { transports: ['polling'], query: { token: tok } }));
});

test('bad tokens: each a CONNECT_ERROR with a short message, the server unharmed', async () => {
  const { url, rt } = await server(['--jwt-leeway', '5']);
  const rsaPemText = fs.readFileSync(KEYS.rsa, 'utf8');
  const cases = [
    [undefined, 'no token'],
    [5, 'invalid token'],
    [{ a: 1 }, 'invalid token'],
    ['garbage', 'invalid token'],
    ['a.b.c', 'invalid token'],
    [mint({ sub: 'x' }, { secret: 'wrong' }), 'invalid token'],
    [mint({ sub: 'x', exp: now() - 10 }), 'token expired'],
    [mint({ sub: 'x', nbf: now() + 100 }), 'token not yet valid'],
    [mint({ sub: 'x' }, { alg: 'none' }), 'invalid token'],
    [`${b64({ alg: 'none' })}.${b64({ sub: 'x' })}.`, 'invalid token'],
    [mint({ sub: 'x' }, { alg: 'HS256', secret: rsaPemText }), 'invalid token'], // algorithm confusion
    [mint({ sub: 'x' }, { header: { crit: ['exp'] } }), 'invalid token'],
    [mint({ sub: 'x' }, { kid: 'no-such-key' }), 'invalid token'],
    [mint({ name: 'x' }), 'token has no sub'],
    [mint({ sub: 42 }), 'token has no sub'],
    [mint({ sub: 'x', pad: 'y'.repeat(100000) }), 'invalid token'], // huge
  ];
  for (const [token, want] of cases) {
    const auth = token === undefined ? {} : { token };
    const msg = await refusal(client(url, { transports: ['websocket'], auth }));
    assert.equal(msg, want, JSON.stringify(auth).slice(0, 60));
  }
  // kid picks the key: the HS key's kid is its file's name
  await connected(client(url, { transports: ['websocket'], auth: { token: mint({ sub: 'k' }, { kid: 'hs' }) } }));
  assert.equal(rt.isRunning(), true);
});

test('--jwt-audience and --jwt-issuer', async () => {
  const { url } = await server(['--jwt-audience', 'app', '--jwt-issuer', 'https://id.example']);
  const ok = mint({ sub: 'a', aud: ['x', 'app'], iss: 'https://id.example' });
  await connected(client(url, { auth: { token: ok } }));
  assert.equal(await refusal(client(url, { auth: { token: mint({ sub: 'a', aud: 'other', iss: 'https://id.example' }) } })),
    'invalid audience');
  assert.equal(await refusal(client(url, { auth: { token: mint({ sub: 'a', aud: 'app' }) } })), 'invalid issuer');
});

test('an expired token closes the connection; the auth callback brings a fresh one (and recovers)', async () => {
  const { url, api } = await server(['--jwt-leeway', '0', '--recovery-window', '5000']);
  let minted = 0;
  const s = client(url, {
    transports: ['websocket'], reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100,
    auth: (cb) => { minted++; cb({ token: mint({ sub: 'carol', exp: now() + (minted === 1 ? 2 : 600), rooms: ['r'] }) }); },
  });
  const got = collect(s, 'news');
  await connected(s);
  const id = s.id;
  const reason = await new Promise((r) => s.once('disconnect', r));
  assert.equal(reason, 'transport close');
  await new Promise((r) => s.once('connect', r));
  assert.equal(minted, 2);
  assert.equal(s.id, id);
  assert.equal(s.recovered, true, 'the same session, with --recovery-window');
  await api('POST', '/api/publish', { room: 'r', event: 'news', data: 1 });
  await waitFor(() => got.length === 1, T);
});

test('--namespaces: the listed ones only; others get Invalid namespace', async () => {
  const { url, api } = await server(['--namespaces', '/, /chat']);
  const tok = mint({ sub: 'n' });
  const c = await connected(client(url, { nsp: '/chat', auth: { token: tok } }));
  const got = collect(c, 'm');
  assert.equal(await refusal(client(url, { nsp: '/other', auth: { token: tok } })), 'Invalid namespace');
  await api('POST', '/api/publish', { namespace: '/chat', event: 'm', args: [1, 'two', { three: 3 }] });
  await waitFor(() => got.length === 1, T);
  assert.deepEqual(got[0], [1, 'two', { three: 3 }]);
  assert.equal((await api('POST', '/api/publish', { namespace: '/other', event: 'm' })).status, 400);
});

test('the API: publish with except, join, leave, disconnect by user and by sid, room', async () => {
  const { url, api } = await server();
  const a1 = await connected(client(url, { auth: { token: mint({ sub: 'alice' }) } }));
  const a2 = await connected(client(url, { transports: ['polling'], auth: { token: mint({ sub: 'alice' }) } }));
  const b = await connected(client(url, { auth: { token: mint({ sub: 'bob', rooms: ['vip'], info: { plan: 'gold' } }) } }));
  const got = { a1: collect(a1, 'x'), a2: collect(a2, 'x'), b: collect(b, 'x') };
  // join alice's sockets to "room1", bob's by sid
  assert.deepEqual((await api('POST', '/api/join', { user: 'alice', room: 'room1' })).json, { ok: true, sockets: 2 });
  assert.deepEqual((await api('POST', '/api/join', { sid: b.id, room: 'room1' })).json, { ok: true, sockets: 1 });
  const room = (await api('GET', '/api/room?namespace=%2F&room=room1')).json;
  assert.equal(room.sockets, 3);
  assert.deepEqual(room.users.sort(), ['alice', 'bob']);
  assert.deepEqual(room.info, { bob: { plan: 'gold' } }, "the token's info, kept for the room API");
  await api('POST', '/api/publish', { room: 'room1', except: 'vip', event: 'x', data: 'not bob' });
  await api('POST', '/api/publish', { rooms: ['room1', 'vip'], except: [`user:alice`], event: 'x', data: 'bob only' });
  await api('POST', '/api/publish', { event: 'x', data: 'everyone' });
  await waitFor(() => got.a1.length === 2 && got.a2.length === 2 && got.b.length === 2, T);
  assert.deepEqual(got.a1.map((g) => g[0]), ['not bob', 'everyone']);
  assert.deepEqual(got.b.map((g) => g[0]), ['bob only', 'everyone']);
  await api('POST', '/api/leave', { user: 'alice', room: 'room1' });
  assert.equal((await api('GET', '/api/room?room=room1')).json.sockets, 1);
  const gone = new Promise((r) => a2.once('disconnect', r));
  assert.deepEqual((await api('POST', '/api/disconnect', { sid: a2.id })).json, { ok: true, sockets: 1 });
  assert.equal(await gone, 'io server disconnect');
  const gone2 = new Promise((r) => b.once('disconnect', r));
  await api('POST', '/api/disconnect', { user: 'bob' });
  assert.equal(await gone2, 'io server disconnect');
  assert.equal(a1.connected, true);
});

test('the API refuses: no key, a wrong key, bad JSON, bad fields, unknown path, wrong method, 10 MB; a slow body', async () => {
  const { api, url, rt } = await server();
  assert.deepEqual(await api('POST', '/api/publish', { event: 'e' }, { key: null }), { status: 401, json: { error: 'unauthorized' } });
  assert.equal((await api('POST', '/api/publish', { event: 'e' }, { key: 'nope' })).status, 401);
  assert.equal((await api('POST', '/api/publish', { event: 'e' }, { key: null, headers: { Authorization: 'apikey old-key-1' } })).status, 200);
  const bad = [
    [{ raw: '{"event":' }, 'body is not JSON'],
    [{ raw: '[1]' }, 'body is not a JSON object'],
    [{ body: {} }, "missing 'event'"],
    [{ body: { event: 7 } }, "'event' must be a string"],
    [{ body: { event: 'disconnect' } }, 'reserved event name'],
    [{ body: { event: 'e', room: 5 } }, "'room', 'rooms' and 'except' must be a string or an array of at most 64 strings"],
    [{ body: { event: 'e', data: 1, args: [1] } }, "give 'data' or 'args', not both"],
    [{ body: { event: 'e', args: 1 } }, "'args' must be an array"],
    [{ body: { event: 'e', namespace: '/nope' } }, 'unknown namespace'],
  ];
  for (const [req, want] of bad) {
    const r = await api('POST', '/api/publish', req.body, { raw: req.raw });
    assert.deepEqual(r, { status: 400, json: { error: want } }, JSON.stringify(req));
  }
  assert.deepEqual((await api('POST', '/api/join', { user: 'a' })).json, { error: "missing 'room'" });
  assert.deepEqual((await api('POST', '/api/join', { room: 'r' })).json, { error: "missing 'user' or 'sid'" });
  assert.deepEqual((await api('POST', '/api/join', { user: 'a', sid: 'b', room: 'r' })).json, { error: "give 'user' or 'sid', not both" });
  assert.equal((await api('GET', '/api/room')).status, 400);
  assert.equal((await api('POST', '/api/nothing', {})).status, 404);
  assert.equal((await api('GET', '/api/publish')).status, 405);
  assert.equal((await api('POST', '/api/room', {})).status, 405);
  const big = await api('POST', '/api/publish', undefined, { raw: JSON.stringify({ event: 'e', data: 'x'.repeat(10 << 20) }) })
    .catch((e) => ({ status: 'reset', e }));
  assert.ok(big.status === 413 || big.status === 'reset', `10 MB: ${big.status}`);
  // a slow body (headers, then the body trickling in): other calls go on meanwhile; it is
  // answered once complete (a request has 10 s from its first byte, head and body)
  const net = await import('node:net');
  const port = Number(new URL(url).port);
  const body = JSON.stringify({ event: 'e', data: 'slowly' });
  const slow = net.connect(port, '127.0.0.1');
  let answer = '';
  slow.on('data', (d) => { answer += d; });
  await new Promise((r) => slow.once('connect', r));
  slow.write(`POST /api/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: new-key-2\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`);
  for (let i = 0; i < 3; i++) {
    assert.equal((await api('POST', '/api/publish', { event: 'e' })).status, 200, 'not blocked by the slow one');
    await sleep(200);
  }
  slow.write(body.slice(5));
  await waitFor(() => answer.includes('{"ok":true}'), T);
  slow.destroy();
  // a socket is still served
  await connected(client(url, { auth: { token: mint({ sub: 'z' }) } }));
  assert.equal(rt.isRunning(), true);
});

test('--check-config: no key, an unreadable or bad key, a bad namespace, an empty key file', async () => {
  const cwd = tempDir('realtimed-nobench-');
  const run = (...args) => spawnSync(BIN, ['--auth-mode', 'jwt', '--check-config', ...args], { cwd, encoding: 'utf8' });
  assert.equal(run('--jwt-key', KEYS.hs).status, 0, run('--jwt-key', KEYS.hs).stderr);
  const cases = [
    [[], /at least one --jwt-key/],
    [['--jwt-key', path.join(dir, 'missing.key')], /missing\.key: No such file/],
    [['--jwt-key', write('priv.pem', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }))], /not a PEM public key/],
    [['--jwt-key', write('small.pem', pem(crypto.generateKeyPairSync('rsa', { modulusLength: 1024 })))], /2048/],
    [['--jwt-key', write('empty.key', '\n')], /empty HMAC secret/],
    [['--jwt-key', KEYS.hs, '--namespaces', 'chat'], /invalid namespace 'chat'/],
    [['--jwt-key', KEYS.hs, '--namespaces', '/a,/a'], /listed twice/],
    [['--jwt-key', KEYS.hs, '--api-key-file', write('none.keys', '# nothing\n')], /has no key/],
  ];
  const hook = (...a) => spawnSync(BIN, ['--auth-mode', 'webhook', '--check-config', ...a], { cwd, encoding: 'utf8' });
  assert.equal(hook('--auth-webhook', 'http://127.0.0.1:1/a', '--webhook-secret-file', SECRET_FILE).status, 0);
  assert.match(hook('--webhook-secret-file', SECRET_FILE).stderr, /needs --auth-webhook/);
  assert.match(hook('--auth-webhook', 'ftp://x/').stderr, /needs --auth-webhook/);
  assert.match(hook('--auth-webhook', 'http://x/').stderr, /needs --webhook-secret-file/);
  assert.match(hook('--auth-webhook', 'http://x/', '--webhook-secret-file', write('two.secret', 'a\nb\n')).stderr, /more than one line/);
  assert.match(run('--jwt-key', KEYS.hs, '--events-webhook', 'http://x/').stderr, /needs --webhook-secret-file/);
  assert.match(run('--jwt-key', KEYS.hs, '--events-webhook', 'x', '--webhook-secret-file', SECRET_FILE).stderr,
    /must be an http/);
  for (const [args, re] of cases) {
    const r = run(...args);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
  }
});

// ---- --auth-mode webhook: a real HTTP server in the test as the backend ----
import http from 'node:http';

async function backend(handler) {
  const calls = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const call = { headers: req.headers, body: JSON.parse(body) };
      calls.push(call);
      handler(call, res);
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  stops.push(async () => { srv.closeAllConnections(); srv.close(); });
  return { url: `http://127.0.0.1:${srv.address().port}/auth`, calls };
}
async function hookServer(url, args = []) {
  const port = await freePort();
  const rt = await startRealtimed(['--auth-mode', 'webhook', '--auth-webhook', url, '--webhook-secret-file',
    SECRET_FILE, '--api-key-file', API_KEYS, '--port', String(port), ...args], { cwd: tempDir('realtimed-nobench-') });
  stops.push(() => rt.stop());
  const base = `http://127.0.0.1:${port}`;
  const publish = (body) => fetch(`${base}/api/publish`, { method: 'POST', headers: { 'X-API-Key': 'old-key-1' }, body: JSON.stringify(body) });
  return { rt, url: base, publish };
}

test('webhook: 200 {user, rooms} admits; the call carries namespace, auth, headers, address and the secret', async () => {
  const be = await backend((call, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ user: call.body.auth.name, rooms: ['w'], info: { plan: 'pro' } }));
  });
  const { url, publish } = await hookServer(be.url);
  for (const transport of ['websocket', 'polling']) {
    const s = await connected(client(url, { transports: [transport], auth: { name: `dave-${transport}` },
      extraHeaders: { Cookie: 'session=abc', Authorization: 'Bearer xyz', 'User-Agent': 'test-agent' } }));
    const got = collect(s, 'hi');
    await publish({ room: `user:dave-${transport}`, event: 'hi', data: 1 });
    await publish({ room: 'w', event: 'hi', data: 2 });
    await waitFor(() => got.length === 2, T);
    s.close();
  }
  const c = be.calls[0];
  assert.equal(c.headers['x-realtimed-secret'], 's3cret');
  assert.equal(c.headers['content-type'], 'application/json');
  assert.deepEqual(Object.keys(c.body).sort(), ['address', 'auth', 'headers', 'namespace']);
  assert.equal(c.body.namespace, '/');
  assert.deepEqual(c.body.auth, { name: 'dave-websocket' });
  assert.equal(c.body.headers.cookie, 'session=abc');
  assert.equal(c.body.headers.authorization, 'Bearer xyz');
  assert.equal(c.body.headers['user-agent'], 'test-agent');
  assert.match(c.body.address, /^(::ffff:)?127\.0\.0\.1$/, 'the address, without the port (as socket.io shows it)');
});

test('webhook: refusals, and backends that are down, slow, wrong or huge: clear errors, the server unharmed', async () => {
  const be = await backend((call, res) => {
    const mode = call.body.auth.mode;
    if (mode === '401') { res.writeHead(401, { 'Content-Type': 'application/json' }); res.end('{"message":"go away"}'); }
    else if (mode === '403') { res.writeHead(403); res.end('nope'); }
    else if (mode === '500') { res.writeHead(500); res.end('<html>'); }
    else if (mode === 'garbage') { res.writeHead(200); res.end('not json'); }
    else if (mode === 'nouser') { res.writeHead(200); res.end('{"rooms":[]}'); }
    else if (mode === 'badrooms') { res.writeHead(200); res.end('{"user":"u","rooms":"r"}'); }
    else if (mode === 'huge') { res.writeHead(200); res.end(`{"user":"u","pad":"${'x'.repeat(3 << 20)}"}`); }
    else if (mode === 'slow') { setTimeout(() => { res.writeHead(200); res.end('{"user":"late"}'); }, 1500); }
    else { res.writeHead(200); res.end('{"user":"ok"}'); }
  });
  const { url, rt } = await hookServer(be.url, ['--auth-timeout', '500']);
  const cases = [['401', 'go away'], ['403', 'unauthorized'], ['500', 'auth webhook failed'],
    ['garbage', 'auth webhook answered without a user'], ['nouser', 'auth webhook answered without a user'],
    ['badrooms', 'auth webhook answered without a user'], ['huge', 'auth webhook unavailable'],
    ['slow', 'auth webhook timed out']];
  for (const [mode, want] of cases) {
    assert.equal(await refusal(client(url, { transports: ['websocket'], auth: { mode } })), want, mode);
  }
  await connected(client(url, { auth: { mode: 'fine' } }));
  // identical connects at the same moment: one call
  const before = be.calls.length;
  const many = Array.from({ length: 10 }, () => client(url, { transports: ['websocket'], auth: { mode: 'fine', same: 1 } }));
  await Promise.all(many.map(connected));
  assert.ok(be.calls.length - before < 10, `${be.calls.length - before} calls for 10 identical connects`);
  // the backend down
  const down = await hookServer(`http://127.0.0.1:${await freePort()}/auth`);
  assert.equal(await refusal(client(down.url, { auth: {} })), 'auth webhook unavailable');
  assert.equal(rt.isRunning(), true);
});

test('the JS client from its npm pack: token option refreshes the token on reconnect; types ship', async () => {
  const { execFileSync } = await import('node:child_process');
  const proj = tempDir('realtimed-jsproj-');
  const tgz = execFileSync('npm', ['pack', '--silent', '--pack-destination', proj, path.join(ROOT, 'clients/js')],
    { encoding: 'utf8' }).trim().split('\n').pop();
  const mod = path.join(proj, 'node_modules', 'realtimed-client');
  fs.mkdirSync(mod, { recursive: true });
  execFileSync('tar', ['xzf', path.join(proj, tgz), '-C', mod, '--strip-components=1']);
  assert.deepEqual(fs.readdirSync(mod).sort(), ['README.md', 'package.json', 'realtime.d.ts', 'realtime.js']);
  // its one dependency, from the test's own install (offline)
  fs.symlinkSync(path.join(ROOT, 'tests/node_modules/socket.io-client'), path.join(proj, 'node_modules', 'socket.io-client'));
  for (const dep of ['engine.io-client', 'socket.io-parser', '@socket.io', 'debug', 'ms', 'ws', 'xmlhttprequest-ssl', 'engine.io-parser']) {
    const src = path.join(ROOT, 'tests/node_modules', dep);
    if (fs.existsSync(src) && !fs.existsSync(path.join(proj, 'node_modules', dep))) fs.symlinkSync(src, path.join(proj, 'node_modules', dep));
  }
  const { url, api } = await server(['--jwt-leeway', '0']);
  const script = path.join(proj, 'use.mjs');
  fs.writeFileSync(script, `
    import { RealtimeClient } from 'realtimed-client';
    const tokens = JSON.parse(process.argv[2]);
    let n = 0;
    const rt = new RealtimeClient({ url: ${JSON.stringify(url)}, transports: ['websocket'], reconnectionDelay: 50,
      reconnectionDelayMax: 100, token: async () => tokens[Math.min(n++, tokens.length - 1)] });
    rt.on('connect', () => console.log('connect ' + n));
    rt.on('news', (m) => { console.log('news ' + m); rt.close(); });
  `);
  const tokens = [mint({ sub: 'js', exp: now() + 1 }), mint({ sub: 'js', exp: now() + 600 })];
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [script, JSON.stringify(tokens)], { cwd: proj });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  stops.push(async () => child.kill());
  await waitFor(() => out.includes('connect 2'), T); // the first token expired: a fresh one
  await api('POST', '/api/publish', { room: 'user:js', event: 'news', data: 'fresh' });
  await waitFor(() => out.includes('news fresh'), T);
});

test('the socket.io Redis emitter protocol: @socket.io/redis-emitter from npm, unchanged', async () => {
  const { startRedis } = await import('../lib/procs.mjs');
  const { Emitter } = await import('@socket.io/redis-emitter');
  const { createClient } = await import('redis');
  const redis = await startRedis();
  stops.push(() => redis.stop());
  const { url } = await server(['--redis-queue', redis.url, '--namespaces', '/,/chat']);
  await waitFor(async () => (await redis.command('PUBSUB', 'NUMPAT')) >= 2, T);
  const rc = createClient({ url: redis.url });
  await rc.connect();
  stops.push(async () => rc.quit());
  const emitter = new Emitter(rc);
  const a = await connected(client(url, { transports: ['websocket'], auth: { token: mint({ sub: 'ann', rooms: ['r1'] }) } }));
  const b = await connected(client(url, { transports: ['polling'], auth: { token: mint({ sub: 'ben' }) } }));
  const c = await connected(client(url, { nsp: '/chat', auth: { token: mint({ sub: 'cid' }) } }));
  const got = { a: collect(a, 'e'), b: collect(b, 'e'), c: collect(c, 'e') };
  emitter.emit('e', 'all', { n: 1 });
  emitter.to('r1').emit('e', 'r1 only');
  emitter.except('user:ann').emit('e', 'not ann');
  emitter.to('user:ben').emit('e', 'bin', Buffer.from([1, 2, 3]));
  emitter.of('/chat').emit('e', 'chat', [1, 'x']);
  emitter.volatile.compress(false).to('user:ann').emit('e', 'flags');
  await waitFor(() => got.a.length === 3 && got.b.length === 3 && got.c.length === 1, T);
  assert.deepEqual(got.a, [['all', { n: 1 }], ['r1 only'], ['flags']]);
  assert.deepEqual(got.b.slice(0, 2), [['all', { n: 1 }], ['not ann']]);
  assert.equal(got.b[2][0], 'bin');
  assert.deepEqual([...new Uint8Array(got.b[2][1])], [1, 2, 3]);
  assert.deepEqual(got.c, [['chat', [1, 'x']]]);
  // socketsJoin / socketsLeave / disconnectSockets
  emitter.in('user:ben').socketsJoin(['r2', 'r3']);
  await sleep(100);
  emitter.to('r3').emit('e', 'joined');
  await waitFor(() => got.b.length === 4, T);
  assert.deepEqual(got.b[3], ['joined']);
  emitter.in('user:ben').socketsLeave('r3');
  await sleep(100);
  emitter.to('r3').emit('e', 'left');
  emitter.to('r2').emit('e', 'still in r2');
  await waitFor(() => got.b.length === 5, T);
  assert.deepEqual(got.b[4], ['still in r2']);
  const gone = new Promise((r) => a.once('disconnect', r));
  emitter.in('user:ann').disconnectSockets();
  assert.equal(await gone, 'io server disconnect');
  const gone2 = new Promise((r) => b.once('disconnect', r));
  emitter.in('user:ben').disconnectSockets(true);
  assert.equal(await gone2, 'transport close');
  // garbage on the channels: skipped, the server unharmed
  await rc.publish('socket.io#/#', Buffer.from([0xc1, 0x00]));
  await rc.publish('socket.io-request#/#', 'not json');
  await rc.publish('socket.io-request#/#', JSON.stringify({ type: 5, opts: {} }));
  emitter.of('/chat').emit('e', 'after garbage');
  await waitFor(() => got.c.length === 2, T);
  const m = await (await fetch(`${url}/metrics`)).text();
  assert.match(m, /realtimed_emitter_messages_total\{kind="invalid"\} 2\n/);
  assert.match(m, /realtimed_emitter_messages_total\{kind="ignored"\} 1\n/);
});

test('events webhook: in order per socket, acks from the backend, bounded concurrency and queues, errors', async () => {
  let active = 0, peak = 0;
  const be = await backend((call, res) => {
    active++;
    peak = Math.max(peak, active);
    const { event, args } = call.body;
    const delay = event === 'slow' ? 40 : 5;
    setTimeout(() => {
      active--;
      if (event === 'fail') { res.writeHead(500); res.end(); return; }
      if (event === 'noack') { res.writeHead(204); res.end(); return; }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ ack: [{ echo: args, user: call.body.user, sid: call.body.sid }] }));
    }, delay);
  });
  const { url } = await server(['--events-webhook', be.url, '--webhook-secret-file', SECRET_FILE, '--webhook-concurrency', '2']);
  const s = await connected(client(url, { transports: ['websocket'], auth: { token: mint({ sub: 'eve' }) } }));
  const r = await s.emitWithAck('hello', 1, { two: 2 });
  assert.deepEqual(r, { echo: [1, { two: 2 }], user: 'eve', sid: s.id });
  assert.equal(be.calls.at(-1).headers['x-realtimed-secret'], 's3cret');
  assert.equal(be.calls.at(-1).body.namespace, '/');
  // one socket's events reach the backend in the order sent
  const before = be.calls.length;
  const acks = await Promise.all([...Array(10).keys()].map((i) => s.emitWithAck('seq', i)));
  assert.deepEqual(acks.map((a) => a.echo[0]), [...Array(10).keys()]);
  assert.deepEqual(be.calls.slice(before).map((c) => c.body.args[0]), [...Array(10).keys()]);
  // no ack asked: posted anyway; 2xx without a body: an empty ack
  s.emit('fire', 'and forget');
  assert.deepEqual(await s.emitWithAck('noack'), undefined);
  assert.ok(be.calls.some((c) => c.body.event === 'fire'));
  // failures come back as the ack's error
  assert.deepEqual(await s.emitWithAck('fail'), { error: 'events webhook answered HTTP 500' });
  // binary arguments: placeholders, and the bytes in base64
  await s.emitWithAck('bin', Buffer.from([9, 8, 7]));
  const bin = be.calls.findLast((c) => c.body.event === 'bin').body;
  assert.deepEqual(bin.args, [{ _placeholder: true, num: 0 }]);
  assert.deepEqual(bin.attachments, [Buffer.from([9, 8, 7]).toString('base64')]);
  // at most 2 calls in flight for 6 sockets
  peak = 0;
  const many = await Promise.all([...Array(6).keys()].map((i) =>
    connected(client(url, { transports: ['websocket'], auth: { token: mint({ sub: `m${i}` }) } }))));
  await Promise.all(many.map((m) => m.emitWithAck('slow')));
  assert.ok(peak <= 2, `peak ${peak} calls in flight`);
  // a socket that sends faster than the backend answers: beyond 64 waiting, refused at once
  const flood = await Promise.all([...Array(80).keys()].map(() => s.emitWithAck('slow')));
  const refused = flood.filter((a) => a && a.error === 'too many events waiting').length;
  assert.ok(refused >= 10 && refused <= 16, `${refused} refused`);
  const m = await (await fetch(`${url}/metrics`)).text();
  assert.match(m, new RegExp(`realtimed_events_webhook_total\\{result="overflow"\\} ${refused}\\n`));
  // the backend down
  const down = await server(['--events-webhook', `http://127.0.0.1:${await freePort()}/x`, '--webhook-secret-file', SECRET_FILE]);
  const d = await connected(client(down.url, { auth: { token: mint({ sub: 'x' }) } }));
  assert.deepEqual(await d.emitWithAck('e'), { error: 'events webhook unavailable' });
});

test('--api-listen: the API on its own port only; with Redis, API calls reach every node', async () => {
  const { startRedis } = await import('../lib/procs.mjs');
  const redis = await startRedis();
  stops.push(() => redis.stop());
  const apiPort = await freePort();
  const n1 = await server(['--redis-queue', redis.url, '--api-listen', `127.0.0.1:${apiPort}`]);
  const n2 = await server(['--redis-queue', redis.url]);
  await waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'realtimed:api'))[1] === 2, T);
  // the main listener of n1 has no API now
  assert.equal((await n1.api('POST', '/api/publish', { event: 'e' })).status, 404);
  const api = async (method, p, body) => {
    const res = await fetch(`http://127.0.0.1:${apiPort}${p}`, { method, headers: { 'X-API-Key': 'new-key-2' },
      body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: await res.json() };
  };
  // a client of node 2, driven through node 1's API
  const s = await connected(client(n2.url, { auth: { token: mint({ sub: 'far' }) } }));
  const got = collect(s, 'e');
  assert.deepEqual(await api('POST', '/api/publish', { room: 'user:far', event: 'e', data: 1 }), { status: 200, json: { ok: true } });
  await waitFor(() => got.length === 1, T);
  assert.deepEqual((await api('POST', '/api/join', { user: 'far', room: 'club' })).json, { ok: true });
  await waitFor(async () => (await n2.api('GET', '/api/room?room=club')).json.sockets === 1, T);
  // the room across the nodes: asked on node 1 (its API port), the socket is node 2's
  const n1b = await connected(client(n1.url, { auth: { token: mint({ sub: 'near' }) } }));
  await api('POST', '/api/join', { sid: n1b.id, room: 'club' });
  await waitFor(async () => (await api('GET', '/api/room?room=club')).json.sockets === 2, T);
  const r = (await api('GET', '/api/room?room=club')).json;
  assert.deepEqual({ ...r, users: r.users.sort() }, { sockets: 2, users: ['far', 'near'], info: {}, nodes: 2 });
  await api('POST', '/api/publish', { rooms: ['club'], event: 'e', data: 2 });
  await waitFor(() => got.length === 2, T);
  const gone = new Promise((r) => s.once('disconnect', r));
  await api('POST', '/api/disconnect', { sid: s.id });
  assert.equal(await gone, 'io server disconnect');
  // Redis away: a clear 503, not a call that silently reaches one node; /ready says so
  await redis.stop();
  await waitFor(async () => (await api('POST', '/api/publish', { event: 'e' })).status === 503, T);
  await waitFor(async () => (await fetch(`${n2.url}/ready`)).status === 503, T);
  assert.match(await (await fetch(`${n2.url}/ready`)).text(), /redis: link down/);
  assert.deepEqual((await api('POST', '/api/publish', { event: 'e' })).json,
    { error: 'Redis unavailable: the call cannot reach every node' });
});

test('recovery across two standalone nodes sharing Redis: missed API publishes, same id, recovered', async () => {
  const net = await import('node:net');
  const { startRedis } = await import('../lib/procs.mjs');
  const redis = await startRedis();
  stops.push(() => redis.stop());
  const args = ['--redis-queue', redis.url, '--recovery-window', '5000'];
  const n1 = await server(args);
  const n2 = await server(args);
  await waitFor(async () => (await redis.command('PUBSUB', 'NUMSUB', 'realtimed:recover'))[1] === 2, T);
  // a proxy whose connections can be cut, and pointed elsewhere
  const live = new Set();
  const px = { target: n1.port, blocked: false };
  const proxy = net.createServer((c) => {
    if (px.blocked) { c.destroy(); return; }
    const u = net.connect(px.target, '127.0.0.1');
    live.add(c); live.add(u);
    c.pipe(u); u.pipe(c);
    const end = () => { c.destroy(); u.destroy(); };
    for (const x of [c, u]) { x.on('error', end); x.on('close', end); }
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  stops.push(async () => { for (const x of live) x.destroy(); proxy.close(); });
  const s = client(`http://127.0.0.1:${proxy.address().port}`, {
    transports: ['websocket'], reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100,
    auth: (cb) => cb({ token: mint({ sub: 'roamer', rooms: ['live'] }) }),
  });
  const got = [];
  s.on('e', (n) => got.push(n));
  await connected(s);
  await n1.api('POST', '/api/publish', { room: 'live', event: 'e', data: 1 });
  await waitFor(() => got.length === 1, T);
  const id = s.id;
  px.blocked = true;
  const gone = new Promise((r) => s.once('disconnect', r));
  for (const x of live) x.destroy();
  await gone;
  await sleep(100);
  for (const n of [2, 3, 4]) await n2.api('POST', '/api/publish', { room: 'live', event: 'e', data: n });
  px.target = n2.port;
  px.blocked = false;
  await new Promise((r) => s.once('connect', r));
  assert.equal(s.recovered, true);
  assert.equal(s.id, id);
  await n1.api('POST', '/api/publish', { room: 'live', event: 'e', data: 5 });
  await waitFor(() => got.length >= 5, T);
  await sleep(150);
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
});

test('SIGHUP reads the key files again: JWT and API key rotation without a restart', async () => {
  const keyFile = write('rot.key', 'first-secret\n');
  const apiFile = write('rot.api', 'api-one\n');
  const port = await freePort();
  const rt = await startRealtimed(['--auth-mode', 'jwt', '--jwt-key', keyFile, '--api-key-file', apiFile, '--port', String(port)],
    { cwd: tempDir('realtimed-nobench-') });
  stops.push(() => rt.stop());
  const url = `http://127.0.0.1:${port}`;
  const publish = (key) => fetch(`${url}/api/publish`, { method: 'POST', headers: { 'X-API-Key': key }, body: '{"event":"e"}' })
    .then((r) => r.status);
  await connected(client(url, { auth: { token: mint({ sub: 'a' }, { secret: 'first-secret' }) } }));
  assert.equal(await refusal(client(url, { auth: { token: mint({ sub: 'a' }, { secret: 'second-secret' }) } })), 'invalid token');
  assert.equal(await publish('api-one'), 200);
  fs.writeFileSync(keyFile, 'second-secret\n'); // the same name, a new content
  fs.writeFileSync(apiFile, 'api-two\n');
  rt.proc.kill('SIGHUP');
  await rt.waitForLine(/SIGHUP: API keys loaded/);
  await connected(client(url, { auth: { token: mint({ sub: 'a' }, { secret: 'second-secret' }) } }));
  assert.equal(await refusal(client(url, { auth: { token: mint({ sub: 'a' }, { secret: 'first-secret' }) } })), 'invalid token');
  assert.equal(await publish('api-one'), 401);
  assert.equal(await publish('api-two'), 200);
  // a broken key file: nothing changes (the configuration is refused as a whole)
  fs.writeFileSync(keyFile, '\n');
  rt.proc.kill('SIGHUP');
  await rt.waitForLine(/SIGHUP: the configuration files are invalid/);
  await connected(client(url, { auth: { token: mint({ sub: 'a' }, { secret: 'second-secret' }) } }));
});
