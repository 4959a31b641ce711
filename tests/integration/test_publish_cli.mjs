// `realtimed publish`: the C publish command. Same config lookup and JSON
// envelope as the Python library; delivered through a real server to a real
// socket.io-client; clear errors and exit codes on bad JSON or no Redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { io } from 'socket.io-client';
import { freePort, startRedis, startRealtimed, makeBench, waitFor } from '../lib/procs.mjs';

const BIN = process.env.REALTIMED_BIN || new URL('../../build/realtimed', import.meta.url).pathname;
let redis, rt, bench, port, client;
const got = [];

function publish(args, opts = {}) {
  return spawnSync(BIN, ['publish', ...args], { encoding: 'utf8', cwd: bench, ...opts });
}

before(async () => {
  redis = await startRedis();
  port = await freePort();
  bench = makeBench({ common_site_config: { redis_queue: redis.url, default_site: 'demo' }, sites: ['demo'] });
  rt = await startRealtimed(['--auth-mode', 'guest', '--default-site', 'demo', '--port', String(port),
    '--listen-host', '127.0.0.1'], { cwd: bench });
  client = io(`http://127.0.0.1:${port}/demo`, { transports: ['websocket'] });
  client.onAny((event, ...args) => got.push([event, ...args]));
  await new Promise((resolve, reject) => { client.on('connect', resolve); client.on('connect_error', reject); });
});

after(async () => {
  client?.close();
  const r = await rt?.stop();
  await redis?.stop();
  assert.equal(r?.code, 0, `realtimed exit ${JSON.stringify(r)}\n${rt?.output()}`);
});

test('publishes to a room with the bench config (redis_queue, default_site)', async () => {
  const r = publish(['--room', 'website', 'count', '{"count": 7, "s": "é"}']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /published count to website on site demo \(1 subscriber\)/);
  await waitFor(() => got.find((g) => g[0] === 'count'));
  assert.deepEqual(got.find((g) => g[0] === 'count'), ['count', { count: 7, s: 'é' }]);
});

test('--user routes to user:<user>; any JSON type is the single argument', async () => {
  for (const [json, value] of [['"text"', 'text'], ['[1,2]', [1, 2]], ['null', null], ['42', 42]]) {
    got.length = 0;
    const r = publish(['--user', 'Guest', '--redis', redis.url, '--site', 'demo', 'typed', json]);
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => got.length > 0);
    assert.deepEqual(got[0], ['typed', value]);
  }
});

test('a message without JSON defaults to {}', async () => {
  got.length = 0;
  const r = publish(['--user', 'Guest', 'empty']);
  assert.equal(r.status, 0, r.stderr);
  await waitFor(() => got.length > 0);
  assert.deepEqual(got[0], ['empty', {}]);
});

test('bad JSON: exit 65 and a clear message, nothing published', () => {
  const r = publish(['--room', 'website', 'x', '{oops']);
  assert.equal(r.status, 65);
  assert.match(r.stderr, /the message is not valid JSON: \{oops/);
});

test('unreachable Redis: exit 69 and a clear message', async () => {
  const dead = await freePort();
  const r = publish(['--redis', `redis://127.0.0.1:${dead}`, '--site', 'demo', 'x']);
  assert.equal(r.status, 69);
  assert.match(r.stderr, /cannot reach Redis at 127\.0\.0\.1/);
});

test('conflicting room options and missing event are usage errors', () => {
  assert.equal(publish(['--room', 'a', '--user', 'b', 'x']).status, 64);
  assert.equal(publish([]).status, 64);
  assert.equal(publish(['--docname', 'n', 'x']).status, 64);
});
