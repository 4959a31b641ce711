// Frappe mode, configuration (issue "Frappe drop-in", point 6.1): --check-config,
// validation errors, Frappe's truthy-only merge of config.json and
// sites/common_site_config.json, env and flag overrides, --help, socketio_uds,
// and the callback URL taken from Origin (no webserver_host, developer_mode).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir } from '../lib/procs.mjs';
import {
  SITE1, USERS, startRedis, startFakeFrappe, startRealtimed, makeBench, freePort, waitFor,
  clientFor, connected, publish, rawPolling, redisSubscribe, roundTrip, quiet,
} from '../lib/frappe_helpers.mjs';

const BIN = process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed');

// Environment without any setting realtimed reads (the test runner's own).
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(FRAPPE_|REALTIMED_(?!BIN))/.test(k)) delete env[k];
  return { ...env, ...extra };
}

function run(args, { env = {}, cwd } = {}) {
  const r = spawnSync(BIN, args, { env: cleanEnv(env), cwd, encoding: 'utf8', timeout: 20000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

// --check-config output: {key: {value, source}}.
function parseConfig(stdout) {
  const out = {};
  for (const line of stdout.split('\n')) {
    const m = line.match(/^(\w+)\s+= (.*?)  \((.*)\)$/);
    if (m) out[m[1]] = { value: m[2], source: m[3] };
  }
  return out;
}

// A bench folder with no configuration file at all (sites/ only).
function emptyBench() {
  const d = tempDir();
  fs.mkdirSync(path.join(d, 'sites'));
  return d;
}

function checkConfig(bench, args = [], env = {}) {
  const r = run(['--check-config', '--bench', bench, ...args], { env });
  assert.equal(r.code, 0, `--check-config failed: ${r.stderr}`);
  return parseConfig(r.stdout);
}

const servers = [];
after(async () => {
  // Safety net: anything a failed test left running.
  await Promise.all(servers.map((s) => s.stop()));
});

test('--check-config prints the effective config with the redis password masked', () => {
  const bench = makeBench({
    common_site_config: { redis_queue: 'redis://:hunter2@127.0.0.1:11311/2', socketio_port: 9011, webserver_port: 8011 },
    config: { default_site: 'main.local' },
  });
  const r = run(['--check-config', '--bench', bench]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.doesNotMatch(r.stdout, /hunter2/);
  const c = parseConfig(r.stdout);
  assert.deepEqual(c.redis_queue, { value: 'redis://:****@127.0.0.1:11311/2', source: 'sites/common_site_config.json' });
  assert.deepEqual(c.socketio_port, { value: '9011', source: 'sites/common_site_config.json' });
  assert.deepEqual(c.webserver_port, { value: '8011', source: 'sites/common_site_config.json' });
  assert.deepEqual(c.default_site, { value: 'main.local', source: 'config.json' });
  assert.deepEqual(c.developer_mode, { value: 'false', source: 'default' });
  assert.deepEqual(c.webserver_host, { value: '(unset)', source: 'default' });
  assert.deepEqual(c.auth_timeout, { value: '10000', source: 'default' });

  // user:password form, given as a flag
  const r2 = run(['--check-config', '--bench', bench, '--redis-queue', 'redis://default:s3cr3t@10.0.0.1:6379']);
  assert.equal(r2.code, 0, r2.stderr);
  assert.doesNotMatch(r2.stdout, /s3cr3t/);
  assert.deepEqual(parseConfig(r2.stdout).redis_queue, { value: 'redis://default:****@10.0.0.1:6379', source: 'command line' });

  // no password: printed as is; defaults without any bench file
  const empty = emptyBench();
  const c3 = checkConfig(empty);
  assert.deepEqual(c3.redis_queue, { value: 'redis://127.0.0.1:11000', source: 'default' });
  assert.deepEqual(c3.socketio_port, { value: '9000', source: 'default' });
  assert.deepEqual(c3.webserver_port, { value: '8000', source: 'default' });
});

test('invalid values exit non-zero with a message naming the key', () => {
  const cases = [
    [{ common_site_config: { socketio_port: 'abc' } }, [], {}, /socketio_port.*common_site_config\.json/],
    [{ common_site_config: { socketio_port: 70000 } }, [], {}, /socketio_port/],
    [{ config: { webserver_port: 'x' } }, [], {}, /webserver_port.*config\.json/],
    [{ common_site_config: { redis_queue: 'http://127.0.0.1:6379' } }, [], {}, /redis_queue/],
    [{}, ['--redis-queue', 'localhost:6379'], {}, /redis_queue/],
    [{}, ['--auth-timeout', 'soon'], {}, /auth_timeout.*command line/],
    [{}, ['--developer-mode=maybe'], {}, /developer_mode/],
    [{}, [], { FRAPPE_SOCKETIO_PORT: 'abc' }, /socketio_port.*FRAPPE_SOCKETIO_PORT/],
    [{}, [], { FRAPPE_REDIS_QUEUE: 'tcp://x' }, /redis_queue/],
  ];
  for (const [benchOpts, args, env, re] of cases) {
    const bench = makeBench(benchOpts);
    for (const check of [true, false]) {
      const r = run([...(check ? ['--check-config'] : []), '--bench', bench, ...args], { env });
      const what = `${JSON.stringify(benchOpts)} ${args.join(' ')} ${JSON.stringify(env)} check=${check}`;
      assert.notEqual(r.code, 0, `accepted: ${what}`);
      assert.equal(r.code, 78, what);
      assert.match(r.stderr, re, what);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
  }
  const r = run(['--bench', makeBench(), '--no-such-flag']);
  assert.equal(r.code, 64);
  assert.match(r.stderr, /--no-such-flag/);
  const r2 = run(['--bench', makeBench(), '--socketio-port']);
  assert.equal(r2.code, 64);
  assert.match(r2.stderr, /--socketio-port/);
});

test('truthy-only merge: common_site_config.json wins, but 0/false/"" never override', () => {
  const bench = makeBench({
    config: {
      socketio_port: 9100, default_site: 'a.local', developer_mode: true, webserver_port: 8100,
      webserver_host: 'web.internal', redis_queue: 'redis://127.0.0.1:7001',
    },
    common_site_config: {
      socketio_port: 9200, default_site: '', developer_mode: false, webserver_port: 0,
      webserver_host: null, redis_queue: 'redis://127.0.0.1:7002',
    },
  });
  const c = checkConfig(bench);
  assert.deepEqual(c.socketio_port, { value: '9200', source: 'sites/common_site_config.json' });
  assert.deepEqual(c.redis_queue, { value: 'redis://127.0.0.1:7002', source: 'sites/common_site_config.json' });
  assert.deepEqual(c.default_site, { value: 'a.local', source: 'config.json' });
  assert.deepEqual(c.developer_mode, { value: 'true', source: 'config.json' });
  assert.deepEqual(c.webserver_port, { value: '8100', source: 'config.json' });
  assert.deepEqual(c.webserver_host, { value: 'web.internal', source: 'config.json' });

  // the bench is the working directory by default, or FRAPPE_BENCH_ROOT
  const fromCwd = parseConfig(run(['--check-config'], { cwd: bench }).stdout);
  assert.equal(fromCwd.socketio_port.value, '9200');
  const fromEnv = parseConfig(run(['--check-config'], { env: { FRAPPE_BENCH_ROOT: bench }, cwd: tempDir() }).stdout);
  assert.equal(fromEnv.socketio_port.value, '9200');
  assert.equal(fromEnv.bench.value, bench);
});

test('FRAPPE_* environment overrides the bench files; flags override the environment', () => {
  const bench = makeBench({
    common_site_config: { socketio_port: 9200, redis_queue: 'redis://127.0.0.1:7002', default_site: 'file.local' },
  });
  const env = {
    FRAPPE_SOCKETIO_PORT: '9300', FRAPPE_REDIS_QUEUE: 'redis://:envpw@127.0.0.1:7003', FRAPPE_SITE: 'env.local',
    FRAPPE_SOCKETIO_UDS: '/tmp/env.sock',
  };
  const c = checkConfig(bench, [], env);
  assert.deepEqual(c.socketio_port, { value: '9300', source: 'FRAPPE_SOCKETIO_PORT' });
  assert.deepEqual(c.redis_queue, { value: 'redis://:****@127.0.0.1:7003', source: 'FRAPPE_REDIS_QUEUE' });
  assert.deepEqual(c.default_site, { value: 'env.local', source: 'FRAPPE_SITE' });
  assert.deepEqual(c.socketio_uds, { value: '/tmp/env.sock', source: 'FRAPPE_SOCKETIO_UDS' });

  const f = checkConfig(bench, ['--socketio-port', '9400', '--redis-queue=redis://127.0.0.1:7004',
    '--default-site', 'flag.local'], env);
  assert.deepEqual(f.socketio_port, { value: '9400', source: 'command line' });
  assert.deepEqual(f.redis_queue, { value: 'redis://127.0.0.1:7004', source: 'command line' });
  assert.deepEqual(f.default_site, { value: 'flag.local', source: 'command line' });
  // aliases
  assert.equal(checkConfig(bench, ['--port', '9500'], env).socketio_port.value, '9500');
  // an empty variable does not override
  assert.equal(checkConfig(bench, [], { FRAPPE_SOCKETIO_PORT: '' }).socketio_port.value, '9200');
});

test('a missing bench directory is a one-line error', () => {
  const missing = path.join(tempDir(), 'nope');
  for (const [args, env] of [[['--bench', missing], {}], [[], { FRAPPE_BENCH_ROOT: missing }],
    [['--check-config', '--bench', missing], {}]]) {
    const r = run(args, { env });
    assert.equal(r.code, 78, JSON.stringify(r));
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], new RegExp(`^realtimed: .*${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  }
});

test('an invalid or unreadable config file is a one-line error naming the file', () => {
  for (const rel of ['config.json', 'sites/common_site_config.json']) {
    for (const content of ['{"socketio_port": 9000,', '[1, 2]', 'not json', 'DIR']) {
      const bench = makeBench();
      const file = path.join(bench, rel);
      if (content === 'DIR') {
        fs.rmSync(file);
        fs.mkdirSync(file); // unreadable as a file (tests run as root: chmod would not do)
      } else {
        fs.writeFileSync(file, content);
      }
      for (const args of [['--bench', bench], ['--check-config', '--bench', bench]]) {
        const r = run(args);
        const what = `${rel} = ${content}`;
        assert.equal(r.code, 78, what);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
        assert.ok(lines[0].includes(file), `${what}: names the file: ${lines[0]}`);
      }
    }
  }
});

test('--help lists every setting, its flag, bench key and environment variable', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  const help = r.stdout;
  const keys = Object.keys(checkConfig(emptyBench()));
  assert.ok(keys.length >= 19, `settings: ${keys}`);
  for (const k of keys) {
    assert.ok(help.includes(`--${k.replaceAll('_', '-')}`), `--help lists --${k.replaceAll('_', '-')}`);
  }
  for (const k of ['socketio_port', 'socketio_uds', 'redis_queue', 'webserver_host', 'webserver_port',
    'default_site', 'developer_mode']) {
    assert.ok(help.includes(`[bench key ${k}]`), `bench key ${k}`);
  }
  for (const e of ['FRAPPE_SOCKETIO_PORT', 'FRAPPE_SOCKETIO_UDS', 'FRAPPE_REDIS_QUEUE', 'FRAPPE_SITE',
    'FRAPPE_BENCH_ROOT']) {
    assert.ok(help.includes(e), `env ${e}`);
  }
  assert.match(help, /--check-config/);
  assert.equal(run(['-h']).stdout, help);
  const v = run(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^realtimed \d+\.\d+\.\d+\n$/);
});

test('socketio_uds: listens on a Unix socket; polling handshake, auth and events over it', async () => {
  const [redis, fake] = await Promise.all([startRedis(), startFakeFrappe({ config: { users: USERS } })]);
  const dir = tempDir();
  const sock = path.join(dir, 'socketio.sock');
  const bench = makeBench({
    common_site_config: { redis_queue: redis.url, webserver_port: fake.port, socketio_uds: sock, webserver_host: '127.0.0.1' },
    sites: [SITE1],
  });
  const rt = await startRealtimed([], { cwd: bench, socketPath: sock });
  servers.push(rt);
  try {
    await rt.waitForLine(new RegExp(`Realtime service listening on: ${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.ok(fs.statSync(sock).isSocket());
    const headers = {
      Host: 'site1.local', Origin: 'https://site1.local', 'X-Frappe-Site-Name': SITE1, Cookie: 'sid=sid-alice',
    };
    const p = await rawPolling({ socketPath: sock }, headers);
    assert.equal(p.response.status, 200);
    assert.deepEqual(Object.keys(p.handshake).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
    assert.deepEqual(p.handshake.upgrades, ['websocket']);
    assert.equal(p.handshake.pingInterval, 25000);
    assert.equal(p.handshake.pingTimeout, 20000);
    assert.equal(p.handshake.maxPayload, 1000000);
    assert.equal(await p.send('40/site1.local,'), 'ok');
    const [pkt] = await p.recv();
    assert.match(pkt, /^40\/site1\.local,\{"sid":"[^"]+"\}$/);
    const [cb] = await fake.requests('get_user_info');
    assert.equal(cb.headers.cookie, 'sid=sid-alice');
    // an event published to the user's room arrives over the Unix socket
    const recv = p.recv();
    await waitFor(async () => (await publish(redis, { event: 'uds', message: { ok: 1 }, room: 'user:alice@x', namespace: SITE1 })) === 1);
    assert.deepEqual(await recv, ['42/site1.local,["uds",{"ok":1}]']);
  } finally {
    const r = await rt.stop();
    await Promise.all([redis.stop(), fake.stop()]);
    assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  }
  assert.equal(fs.existsSync(sock), false, 'socket file removed on exit');
});

test('without webserver_host the callback goes to the Origin when it names a site; FRAPPE_SOCKETIO_PORT at runtime', async () => {
  const [redis, fake] = await Promise.all([startRedis(), startFakeFrappe({ config: { users: USERS } })]);
  const port = await freePort();
  const bench = makeBench({
    // socketio_port from the file is overridden by the environment
    common_site_config: { redis_queue: redis.url, socketio_port: 1, webserver_port: 1 },
    // the Origin's hostname is a site folder of the bench (any other Origin
    // gets 127.0.0.1:webserver_port: test_hardening.mjs)
    sites: [SITE1, '127.0.0.1'],
  });
  const rt = await startRealtimed([], { cwd: bench, port, env: { FRAPPE_SOCKETIO_PORT: String(port) } });
  servers.push(rt);
  const stack = { port, url: `http://127.0.0.1:${port}` };
  try {
    // Origin = the fake's address: the callback is GET <Origin>/api/method/...
    const s = clientFor(stack, { origin: `http://127.0.0.1:${fake.port}` });
    await connected(s);
    const [cb] = await fake.requests('get_user_info');
    assert.equal(cb.headers.host, `127.0.0.1:${fake.port}`);
    assert.equal(cb.headers['x-frappe-site-name'], SITE1);
    assert.equal(cb.headers.cookie, 'sid=sid-alice');
    s.close();
  } finally {
    const r = await rt.stop();
    await Promise.all([redis.stop(), fake.stop()]);
    assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  }
});

test('developer_mode: callback to Origin with webserver_port; open_in_editor is published', async () => {
  const [redis, fake] = await Promise.all([startRedis(), startFakeFrappe({ config: { users: USERS } })]);
  const port = await freePort();
  const bench = makeBench({
    common_site_config: { redis_queue: redis.url, socketio_port: port, webserver_port: fake.port, developer_mode: 1 },
    sites: [SITE1],
  });
  const rt = await startRealtimed([], { cwd: bench, port });
  servers.push(rt);
  const stack = { port, url: `http://127.0.0.1:${port}` };
  try {
    // Origin port 1 is swapped for webserver_port (the fake)
    const s = clientFor(stack, { origin: 'http://127.0.0.1:1' });
    await connected(s);
    const [cb] = await fake.requests('get_user_info');
    assert.equal(cb.headers.host, `127.0.0.1:${fake.port}`);

    const sub = await redisSubscribe(redis.port, 'open_in_editor');
    const data = { file: 'apps/frappe/frappe/__init__.py', line: 12, column: 3 };
    s.emit('open_in_editor', data);
    await waitFor(() => sub.messages.length === 1);
    assert.deepEqual(JSON.parse(sub.messages[0]), data);
    // a non-object argument is published as its JSON too; no argument publishes nothing
    s.emit('open_in_editor');
    s.emit('open_in_editor', 'x.py');
    await waitFor(() => sub.messages.length === 2);
    assert.equal(sub.messages[1], '"x.py"');
    await roundTrip(s);
    await quiet(sub.messages);
    assert.equal(sub.messages.length, 2);
    // a Website User (or Guest) may not open files in the developer's editor
    const w = clientFor(stack, { origin: 'http://127.0.0.1:1', cookie: 'sid=sid-web' });
    await connected(w);
    w.emit('open_in_editor', { file: 'x.py' });
    await roundTrip(w);
    await quiet(sub.messages);
    assert.equal(sub.messages.length, 2);
    w.close();
    sub.close();
    s.close();
  } finally {
    const r = await rt.stop();
    await Promise.all([redis.stop(), fake.stop()]);
    assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  }
});
