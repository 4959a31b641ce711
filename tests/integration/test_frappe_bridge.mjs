// Frappe mode, the Redis `events` bridge (issue "Frappe drop-in", point
// 6.6): message types, Python's indented key-sorted JSON, rooms vs
// broadcast to every site, malformed messages, and a Redis restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  SITE1, SITE2, startStack, startRedis, connect, collect, collectAll, publish, roundTrip, quiet, pyJson,
  waitFor, sleep,
} from '../lib/frappe_helpers.mjs';

let stack;
let redis;
let a1; // alice on site1
let a2; // alice on site2
let g1; // Guest on site1

before(async () => {
  stack = await startStack();
  ({ redis } = stack);
  a1 = await connect(stack, { site: SITE1 });
  a2 = await connect(stack, { site: SITE2, transports: ['websocket'] });
  g1 = await connect(stack, { site: SITE1, cookie: 'sid=Guest' });
});

after(async () => {
  if (stack) {
    const r = await stack.stop();
    assert.deepEqual(r, { code: 0, signal: null }, stack.rt.output());
  }
});

test('every JSON type of message is delivered as the single argument', async () => {
  const values = [
    { a: 1, nested: { list: [1, 'two', null, true], s: 'é ☃ "q"' } },
    [1, 2, { x: [] }],
    [],
    {},
    'a string',
    '',
    0,
    -12.5e3,
    123456789012,
    true,
    false,
    null,
  ];
  const got = collect(a1, 'types');
  for (const message of values) {
    await publish(redis, { event: 'types', message, room: 'user:alice@x', namespace: SITE1 });
  }
  // no message key at all: null (as Node's emit of undefined arrives)
  await publish(redis, { event: 'types', room: 'user:alice@x', namespace: SITE1 });
  await waitFor(() => got.length === values.length + 1);
  assert.deepEqual(got, [...values.map((v) => [v]), [null]]);
  for (const args of got) assert.equal(args.length, 1);
});

test("Python's indented, key-sorted JSON (frappe.as_json) is accepted", async () => {
  const env = {
    event: 'py', message: { z: 1, a: ['é', { b: null }], title: 'Ünïcödé' }, room: 'user:alice@x', namespace: SITE1,
  };
  const text = pyJson(env);
  assert.match(text, /^\{\n "event": "py",\n "message": \{\n  "a": \[\n   "\\u00e9",/);
  const got = collect(a1, 'py');
  await publish(redis, text);
  // also CRLF and tabs as whitespace, and escaped slashes
  await publish(redis, '{\r\n\t"event" : "py" ,\r\n\t"message" : "a\\/b" ,\r\n\t"namespace" : "site1.local" ,\r\n\t"room" : "user:alice@x"\r\n}\r\n');
  await waitFor(() => got.length === 2);
  assert.deepEqual(got, [[env.message], ['a/b']]);
});

test('no room: delivered to every site; room null with a namespace too', async () => {
  const all = [a1, a2, g1].map((s) => collect(s, 'bcast'));
  await publish(redis, { event: 'bcast', message: 1 }); // esbuild's build_event shape
  await publish(redis, { event: 'bcast', message: 2, room: null, namespace: SITE1 });
  await publish(redis, { event: 'bcast', message: 3, room: '', namespace: SITE2 });
  await publish(redis, pyJson({ event: 'bcast', message: 4, namespace: 'no.such.site', room: null }));
  await waitFor(() => all.every((g) => g.length === 4));
  for (const g of all) assert.deepEqual(g, [[1], [2], [3], [4]]);
});

test('rooms route within one site; a site without sockets is harmless', async () => {
  const got = [a1, a2, g1].map((s) => collect(s, 'routed'));
  assert.equal(await publish(redis, { event: 'routed', message: 'x', room: 'all', namespace: 'empty.site' }), 1);
  await publish(redis, { event: 'routed', message: 'y', room: 'user:alice@x', namespace: 'site3.local' });
  await publish(redis, { event: 'routed', message: 'w', room: 'website', namespace: SITE1 });
  await publish(redis, { event: 'routed', message: 'z', room: 'no-such-room', namespace: SITE2 });
  await publish(redis, { event: 'routed', message: 'v', room: 'website', namespace: SITE2 });
  await waitFor(() => got[1].length === 1 && got[2].length === 1 && got[0].length === 1);
  await quiet(got[0]);
  assert.deepEqual(got, [[['w']], [['v']], [['w']]]);
  // a client can still connect to a site that was published to first
  const s3 = await connect(stack, { site: 'site3.local' });
  const g3 = collect(s3, 'routed');
  await publish(redis, { event: 'routed', message: 'late', room: 'user:alice@x', namespace: 'site3.local' });
  await waitFor(() => g3.length === 1);
  assert.deepEqual(g3, [['late']]);
  s3.close();
});

test('malformed messages are skipped and delivery continues', async () => {
  const got = [a1, a2, g1].map((s) => collectAll(s));
  const bad = [
    'not json',
    '{"event": "bad", "message": 1, ',
    'null',
    '[]',
    '["bad", 1]',
    '"bad"',
    '42',
    '',
    JSON.stringify({ message: 'no event' }),
    JSON.stringify({ event: 5, message: 'numeric event' }),
    JSON.stringify({ event: null, message: 'null event' }),
    JSON.stringify({ event: ['bad'], message: 'array event' }),
    JSON.stringify({ event: 'bad', message: 'room without namespace', room: 'all' }),
    JSON.stringify({ event: 'bad', message: 'null namespace', room: 'all', namespace: null }),
    JSON.stringify({ event: 'bad', message: 'number room', room: 5, namespace: SITE1 }),
  ];
  const linesBefore = stack.rt.lines.length;
  for (const m of bad) await publish(redis, m);
  await publish(redis, { event: 'good', message: 'after', room: 'website', namespace: SITE1 });
  await waitFor(() => got[0].length === 1 && got[2].length === 1);
  assert.deepEqual(got[0], [['good', 'after']]);
  assert.deepEqual(got[2], [['good', 'after']]);
  await roundTrip(a2);
  assert.deepEqual(got[1], [['pong']]);
  assert.ok(stack.rt.isRunning());
  const logged = stack.rt.lines.slice(linesBefore).filter((l) => /skipped a message on 'events'/.test(l));
  assert.ok(logged.length >= 10, `logged: ${logged.join('\n')}`);
});

test('reserved event names from Redis are not sent (they would kill every client)', async () => {
  // socket.io-client rejects an EVENT named like this as a "parse error" and
  // closes the connection; Node's server throws on emit instead of sending.
  // (own clients, reached through their user room, so that a failure here
  // does not take the other tests' clients down)
  const reserved = ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener'];
  const socks = [
    await connect(stack, { site: SITE1, cookie: 'sid=sid-bob' }),
    await connect(stack, { site: SITE2, cookie: 'sid=sid-bob', transports: ['websocket'] }),
  ];
  const disconnects = socks.map((s) => collect(s, 'disconnect'));
  const got = socks.map((s) => collectAll(s));
  for (const event of reserved) {
    for (const namespace of [SITE1, SITE2]) {
      await publish(redis, { event, message: 1, room: 'user:bob@x', namespace });
    }
  }
  for (const namespace of [SITE1, SITE2]) {
    await publish(redis, { event: 'still_here', message: 3, room: 'user:bob@x', namespace });
  }
  await waitFor(() => got.every((g) => g.length >= 1) || disconnects.some((d) => d.length));
  assert.deepEqual(disconnects, [[], []], 'no client was disconnected');
  await quiet(got[0]);
  for (const g of got) assert.deepEqual(g, [['still_here', 3]]);
  assert.ok(socks.every((s) => s.connected));
  for (const s of socks) s.close();
});

test('Redis restart: clients stay connected and delivery resumes', async () => {
  const port = redis.port;
  const disconnects = [a1, a2, g1].map((s) => collect(s, 'disconnect'));
  const before = stack.rt.lines.length;
  await redis.stop();
  await stack.rt.waitForLine(/lost the Redis .*connection/, 5000);
  // the server and its clients do not notice beyond the log
  await roundTrip(a1);
  await roundTrip(a2);
  // a connect needs the secret from Redis: it waits for Redis (at most the
  // auth timeout) instead of calling without it
  const duringP = connect(stack, { site: SITE1, cookie: 'sid=sid-bob' });
  await sleep(300);
  const redis2 = await startRedis({ port });
  const during = await duringP;
  stack.redis = redis2;
  redis = redis2;
  const got = [a1, a2, during].map((s) => collect(s, 'back'));
  await waitFor(async () => (await publish(redis2, { event: 'back', message: 'again' })) === 1, 10000, 100);
  await waitFor(() => got.every((g) => g.length >= 1), 5000);
  for (const g of got) assert.deepEqual(g[0], ['again']);
  assert.deepEqual(disconnects, [[], [], []]);
  assert.ok(a1.connected && a2.connected && g1.connected);
  const log = stack.rt.lines.slice(before).join('\n');
  assert.match(log, /lost the Redis/);
  assert.match(log, /reconnected to Redis/);
  // room routing works as before
  const r = collect(a2, 'after');
  await publish(redis2, { event: 'after', message: 1, room: 'user:alice@x', namespace: SITE2 });
  await waitFor(() => r.length === 1);
  during.close();
  await redis2.stop();
});
