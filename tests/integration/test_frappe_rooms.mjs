// Frappe mode, rooms, client events and presence (issue "Frappe drop-in",
// points 6.4 and 6.5): auto-joined rooms, ping, doctype/doc/task
// subscriptions with permission callbacks, unknown events, open_in_editor
// outside developer mode, and doc_viewers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  SITE1, USERS, startStack, connect, collect, collectAll, once, publish, publishUntil, roundTrip, quiet,
  redisSubscribe, callbacks, waitFor,
} from '../lib/frappe_helpers.mjs';

let stack;
let fake;
let redis;
let evn = 0;

before(async () => {
  stack = await startStack();
  ({ fake, redis } = stack);
});

after(async () => {
  if (stack) {
    const r = await stack.stop();
    assert.deepEqual(r, { code: 0, signal: null }, stack.rt.output());
  }
});

const alice = (o = {}) => connect(stack, { cookie: 'sid=sid-alice', ...o });
const bob = (o = {}) => connect(stack, { cookie: 'sid=sid-bob', ...o });

async function receives(s, room, site = SITE1) {
  const ev = `probe${++evn}`;
  const p = once(s, ev);
  await publish(redis, { event: ev, message: { room }, room, namespace: site });
  assert.deepEqual(await p, [{ room }], `receives ${room}`);
}

async function ignores(s, room, site = SITE1) {
  const ev = `probe${++evn}`;
  const got = collect(s, ev);
  await publish(redis, { event: ev, message: {}, room, namespace: site });
  await roundTrip(s);
  assert.deepEqual(await quiet(got), [], `ignores ${room}`);
}

/** Waits until s has joined room (the join follows a permission callback). */
async function joined(s, room) {
  const ev = `join${++evn}`;
  const got = collect(s, ev);
  await publishUntil(redis, { event: ev, message: null, room, namespace: SITE1 }, got);
  s.off(ev);
}

async function permCalls(n) {
  return callbacks(fake, 'has_permission', n);
}

// ---------------------------------------------------------------- rooms and events

test('auto rooms: user:<user>, website, and all for System Users only', async () => {
  const a = await alice();
  await receives(a, 'user:alice@x');
  await receives(a, 'website');
  await receives(a, 'all');
  await ignores(a, 'user:bob@x');
  const w = await connect(stack, { cookie: 'sid=sid-web' });
  await receives(w, 'user:web@x');
  await receives(w, 'website');
  await ignores(w, 'all');
  // bearer sessions get the same rooms
  const t = await connect(stack, { cookie: null, authorization: 'Bearer b1' });
  await receives(t, 'all');
  // a site without the frappe app: connected, but no rooms and no handlers (as in Node)
  const n = await connect(stack, { cookie: 'sid=sid-noapps' });
  const nothing = collectAll(n);
  for (const room of ['user:noapps@x', 'website', 'all']) {
    await publish(redis, { event: 'x', message: room, room, namespace: SITE1 });
  }
  n.emit('ping');
  n.emit('doctype_subscribe', 'ToDo');
  assert.deepEqual(await quiet(nothing), []);
  assert.ok(n.connected);
  for (const s of [a, w, t, n]) s.close();
});

test('ping -> pong (no arguments)', async () => {
  const a = await alice({ transports: ['websocket'] });
  assert.deepEqual(await roundTrip(a), []);
  const all = collectAll(a);
  a.emit('ping', { ignored: true });
  await waitFor(() => all.length === 1);
  assert.deepEqual(all, [['pong']]);
  a.close();
});

test('doctype_subscribe / doctype_unsubscribe: allowed, and 403 is silent', async () => {
  await fake.reset();
  await fake.config({ users: USERS });
  const a = await alice();
  const events = collectAll(a);
  a.emit('doctype_subscribe', 'ToDo');
  await joined(a, 'doctype:ToDo');
  const [p] = await permCalls(1);
  assert.equal(p.path, '/api/method/frappe.realtime.has_permission');
  assert.equal(p.raw_query, 'doctype=ToDo&name=');
  assert.equal(p.headers.cookie, 'sid=sid-alice');
  assert.equal(p.headers['x-frappe-site-name'], SITE1);
  assert.equal(p.status, 200);
  a.emit('doctype_unsubscribe', 'ToDo');
  await ignores(a, 'doctype:ToDo');

  // denied: no join, no error, the socket keeps working
  a.emit('doctype_subscribe', 'Salary Slip');
  const calls = await permCalls(2);
  assert.equal(calls[1].raw_query, 'doctype=Salary+Slip&name=');
  assert.equal(calls[1].status, 403);
  await ignores(a, 'doctype:Salary Slip');
  assert.ok(a.connected);
  // only the pongs of the two round trips above
  assert.deepEqual(events.filter(([e]) => !e.startsWith('join') && !e.startsWith('probe')), [['pong'], ['pong']]);
  await receives(a, 'user:alice@x');
  a.close();
});

test('doc_subscribe / doc_unsubscribe: names with "/", spaces and unicode', async () => {
  await fake.reset();
  await fake.config({ users: USERS });
  const a = await alice();
  const name = 'T/1 x é';
  a.emit('doc_subscribe', 'ToDo', name);
  await joined(a, `doc:ToDo/${name}`);
  const [p] = await permCalls(1);
  assert.equal(p.raw_query, 'doctype=ToDo&name=T%2F1+x+%C3%A9');
  assert.deepEqual(p.query, { doctype: 'ToDo', name });
  await ignores(a, 'doc:ToDo/T/1 x');
  a.emit('doc_unsubscribe', 'ToDo', name);
  await ignores(a, `doc:ToDo/${name}`);
  // other characters that need encoding
  const odd = 'a&b=c+d%e?f#g';
  a.emit('doc_subscribe', 'ToDo', odd);
  await joined(a, `doc:ToDo/${odd}`);
  assert.equal((await permCalls(2))[1].raw_query, 'doctype=ToDo&name=a%26b%3Dc%2Bd%25e%3Ff%23g');

  // denied (web@x may read ToDo, not Note): silent
  const w = await connect(stack, { cookie: 'sid=sid-web' });
  const wev = collectAll(w);
  w.emit('doc_subscribe', 'Note', 'N-1');
  const calls = await permCalls(3);
  assert.equal(calls[2].status, 403);
  await ignores(w, 'doc:Note/N-1');
  assert.deepEqual(wev.filter(([e]) => !e.startsWith('probe')), [['pong']]);
  a.close();
  w.close();
});

// Frappe's handler: frappe_request(has_permission, {doctype, name: name || ""})
test("non-string arguments become JavaScript's String(value) in the query and the room", async () => {
  await fake.reset();
  await fake.config({ users: USERS });
  const a = await alice();
  const args = [
    [7, 'n', 'doctype=7&name=n'],
    ['ToDo', 1.5, 'doctype=ToDo&name=1.5'],
    ['ToDo', true, 'doctype=ToDo&name=true'],
    ['ToDo', null, 'doctype=ToDo&name='], // Node: name || "" (room: doc:ToDo/null)
    ['ToDo', { a: 1 }, 'doctype=ToDo&name=%5Bobject+Object%5D'],
    ['ToDo', undefined, 'doctype=ToDo&name='], // argument absent: name || "" as well
    ['ToDo', ['a', 'b'], 'doctype=ToDo&name=a%2Cb'], // String(['a','b']) === 'a,b'
  ];
  for (const [dt, dn] of args) {
    if (dn === undefined) a.emit('doc_subscribe', dt);
    else a.emit('doc_subscribe', dt, dn);
  }
  // Identical calls in flight together are coalesced (null and absent both
  // ask name=""), so the web server sees each distinct query once.
  const expected = [...new Set(args.map(([, , q]) => q))].sort();
  const calls = await permCalls(expected.length);
  assert.deepEqual(calls.map((c) => c.raw_query).sort(), expected);
  await joined(a, 'doc:ToDo/1.5');
  await joined(a, 'doc:ToDo/a,b');
  a.close();
});

test('permission callback failures deny without an error to the client', async () => {
  await fake.reset();
  await fake.config({ users: USERS, fail: { has_permission: 'close' } });
  const a = await alice();
  const ev = collectAll(a);
  a.emit('doc_subscribe', 'ToDo', 'F-1');
  await callbacks(fake, 'has_permission', 1);
  await stack.rt.waitForLine(/Can't check permissions for ToDo/);
  await ignores(a, 'doc:ToDo/F-1');
  await fake.config({ fail: { has_permission: 'json500' } });
  a.emit('doctype_subscribe', 'ToDo');
  await callbacks(fake, 'has_permission', 2);
  await ignores(a, 'doctype:ToDo');
  assert.ok(a.connected);
  assert.deepEqual(ev.filter(([e]) => !e.startsWith('probe')), [['pong'], ['pong']]);
  await fake.config({ fail: {} });
  a.close();
});

test('task_subscribe / progress_subscribe / task_unsubscribe: no permission check', async () => {
  await fake.reset();
  await fake.config({ users: USERS });
  const w = await connect(stack, { cookie: 'sid=sid-web' });
  w.emit('task_subscribe', 'job-1');
  w.emit('progress_subscribe', 'job/2 é');
  await roundTrip(w); // synchronous joins: handled before the pong
  await receives(w, 'task_progress:job-1');
  await receives(w, 'task_progress:job/2 é');
  w.emit('task_unsubscribe', 'job-1');
  await roundTrip(w);
  await ignores(w, 'task_progress:job-1');
  await receives(w, 'task_progress:job/2 é');
  w.emit('task_unsubscribe', 'job/2 é');
  await ignores(w, 'task_progress:job/2 é');
  assert.deepEqual(await fake.requests('has_permission'), []);
  w.close();
});

test('unknown events are ignored; a client cannot publish to others', async () => {
  await fake.reset();
  await fake.config({ users: USERS });
  const a = await alice();
  const b = await bob();
  const bev = collectAll(b);
  const aev = collectAll(a);
  a.emit('no_such_event', 1, 2, 3);
  a.emit('list_update', { doctype: 'ToDo' });
  a.emit('publish', 'list_update', { doctype: 'ToDo' }, 'all');
  a.emit('doc_viewers', { users: ['x'] });
  a.emit('pong');
  await roundTrip(a);
  await roundTrip(b);
  assert.deepEqual(await quiet(bev), [['pong']]);
  assert.deepEqual(aev, [['pong']]);
  assert.deepEqual(await fake.requests('has_permission'), []);
  a.close();
  b.close();
});

test('open_in_editor outside developer_mode: nothing published, server alive', async () => {
  const sub = await redisSubscribe(redis.port, 'open_in_editor');
  const a = await alice();
  a.emit('open_in_editor', { file: '/etc/passwd', line: 1 });
  a.emit('open_in_editor', 'x');
  a.emit('open_in_editor');
  const g = await connect(stack, { cookie: 'sid=Guest' });
  g.emit('open_in_editor', { file: 'a.py' });
  await roundTrip(a);
  await roundTrip(g);
  assert.deepEqual(await quiet(sub.messages), []);
  assert.ok(stack.rt.isRunning());
  assert.ok(a.connected && g.connected);
  sub.close();
  a.close();
  g.close();
});

// ---------------------------------------------------------------- presence

/** doc_open and wait until the socket is in the open_doc room. */
async function open(s, dt, dn) {
  s.emit('doc_open', dt, dn);
  await joined(s, `open_doc:${dt}/${dn}`);
}

const viewers = (doctype, docname, users) => [{ doctype, docname, users }];

test('doc_open: exact doc_viewers payload; alone is silent; two users', async () => {
  const a = await alice();
  const b = await bob();
  const av = collect(a, 'doc_viewers');
  const bv = collect(b, 'doc_viewers');
  await open(a, 'ToDo', 'P-1');
  assert.deepEqual(await quiet(av), [], 'self only: nothing');
  await open(b, 'ToDo', 'P-1');
  await waitFor(() => av.length === 1 && bv.length === 1);
  assert.deepEqual(av, [viewers('ToDo', 'P-1', ['alice@x', 'bob@x'])]);
  assert.deepEqual(bv, av);
  // on the wire: exactly one argument, keys in this order
  assert.equal(JSON.stringify(av[0]), '[{"doctype":"ToDo","docname":"P-1","users":["alice@x","bob@x"]}]');
  // doc_subscribe alone does not count as viewing
  const w = await connect(stack, { cookie: 'sid=sid-web' });
  const wv = collect(w, 'doc_viewers');
  w.emit('doc_subscribe', 'ToDo', 'P-1');
  await joined(w, 'doc:ToDo/P-1');
  assert.deepEqual(await quiet(wv), []);
  assert.equal(av.length, 1);
  for (const s of [a, b, w]) s.close();
});

test('users are in connection order, not doc_open order', async () => {
  const a = await alice(); // connects first
  const b = await bob();
  const av = collect(a, 'doc_viewers');
  const bv = collect(b, 'doc_viewers');
  await open(b, 'ToDo', 'P-2'); // opens first
  await open(a, 'ToDo', 'P-2');
  await waitFor(() => av.length === 1 && bv.length === 1);
  assert.deepEqual(av, [viewers('ToDo', 'P-2', ['alice@x', 'bob@x'])]);
  assert.deepEqual(bv, av);
  a.close();
  b.close();
});

test('same user in two tabs: de-duplicated, and the self-only rule does not fire', async () => {
  const t1 = await alice();
  const t2 = await alice({ transports: ['websocket'] });
  const v1 = collect(t1, 'doc_viewers');
  const v2 = collect(t2, 'doc_viewers');
  await open(t1, 'ToDo', 'P-3');
  assert.deepEqual(await quiet(v1), []);
  await open(t2, 'ToDo', 'P-3');
  await waitFor(() => v1.length === 1 && v2.length === 1);
  assert.deepEqual(v1, [viewers('ToDo', 'P-3', ['alice@x'])]);
  assert.deepEqual(v2, v1);
  // a third viewer: alice once, then bob
  const b = await bob();
  await open(b, 'ToDo', 'P-3');
  await waitFor(() => v1.length === 2 && v2.length === 2);
  assert.deepEqual(v1[1], viewers('ToDo', 'P-3', ['alice@x', 'bob@x']));
  assert.deepEqual(v2[1], v1[1]);
  for (const s of [t1, t2, b]) s.close();
});

test('doc_close updates the remaining viewers', async () => {
  const a = await alice();
  const b = await bob();
  const av = collect(a, 'doc_viewers');
  const bv = collect(b, 'doc_viewers');
  const name = 'P/4 é';
  await open(a, 'ToDo', name);
  await open(b, 'ToDo', name);
  await waitFor(() => av.length === 1 && bv.length === 1);
  b.emit('doc_close', 'ToDo', name);
  await waitFor(() => av.length === 2);
  assert.deepEqual(av[1], viewers('ToDo', name, ['alice@x']));
  await roundTrip(b);
  assert.deepEqual(await quiet(bv), [viewers('ToDo', name, ['alice@x', 'bob@x'])], 'bob left the room');
  await ignores(b, `open_doc:ToDo/${name}`);
  // the last viewer closes: nobody left to tell
  a.emit('doc_close', 'ToDo', name);
  await roundTrip(a);
  assert.equal((await quiet(av)).length, 2);
  a.close();
  b.close();
});

test('disconnect updates the remaining viewers', async () => {
  const a = await alice();
  const b = await bob();
  const av = collect(a, 'doc_viewers');
  await open(a, 'ToDo', 'P-5');
  await open(b, 'ToDo', 'P-5');
  await waitFor(() => av.length === 1);
  b.close();
  await waitFor(() => av.length === 2);
  assert.deepEqual(av[1], viewers('ToDo', 'P-5', ['alice@x']));
  a.close();
});

test('the Node doc_close bug is absent: after closing A, a disconnect still updates B', async () => {
  const a = await alice();
  const b = await bob();
  const av = collect(a, 'doc_viewers');
  for (const dn of ['A-1', 'B-1']) {
    await open(a, 'ToDo', dn);
    await open(b, 'ToDo', dn);
  }
  await waitFor(() => av.length === 2);
  b.emit('doc_close', 'ToDo', 'A-1');
  await waitFor(() => av.length === 3);
  assert.deepEqual(av[2], viewers('ToDo', 'A-1', ['alice@x']));
  b.close();
  await waitFor(() => av.length === 4);
  assert.deepEqual(av[3], viewers('ToDo', 'B-1', ['alice@x']));
  await quiet(av);
  assert.equal(av.length, 4, 'nothing for A-1 on disconnect');
  a.close();
});

test('doc_open denied: no join, no presence', async () => {
  await fake.reset();
  await fake.config({ users: USERS });
  const a = await alice();
  const b = await bob();
  const av = collect(a, 'doc_viewers');
  const bv = collect(b, 'doc_viewers');
  await open(a, 'ToDo', 'N-2');
  b.emit('doc_open', 'Note', 'N-2'); // bob may read ToDo only
  b.emit('doc_open', 'ToDo', 'N-2x');
  const calls = await callbacks(fake, 'has_permission', 3);
  assert.deepEqual(calls.map((c) => [c.raw_query, c.status]).slice(1).sort(),
    [['doctype=Note&name=N-2', 403], ['doctype=ToDo&name=N-2x', 200]]);
  await joined(b, 'open_doc:ToDo/N-2x');
  await ignores(b, 'open_doc:Note/N-2');
  assert.deepEqual(await quiet(av), []);
  assert.deepEqual(bv, []);
  a.close();
  b.close();
});
