// The JS client (clients/js/realtime.js) against realtimed in Frappe mode,
// authenticated by the fake web server (cookie sid): rooms by doctype, doc
// and task, presence with doc_open, off(), unsubscribing, and a server
// restart in the middle after which the client reconnects by itself (more
// than Frappe's three attempts, through refused handshakes) and gets its
// rooms back without the test subscribing again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';
import {
  freePort, startRedis, startFakeFrappe, startRealtimed, makeBench, waitFor, sleep,
} from '../lib/procs.mjs';

register('../lib/client_resolve.mjs', import.meta.url);
const { RealtimeClient, connect } = await import('../../clients/js/realtime.js');

const SITE = 'site1.local';
const USERS = {
  'alice@x': { sids: ['sid-alice'], doctypes: ['ToDo'], docs: [['Note', 'N/1']] },
  'bob@x': { sids: ['sid-bob'], docs: [['Note', 'N/1']] },
};

let redis;
let fake;
let bench;
let port;
let rt;
const clients = [];

const startServer = () => startRealtimed(
  ['--port', String(port), '--webserver-host', '127.0.0.1', '--log-level', 'warning'], { cwd: bench });

before(async () => {
  [redis, fake] = await Promise.all([startRedis(), startFakeFrappe({ config: { users: USERS } })]);
  port = await freePort();
  bench = makeBench({
    common_site_config: { redis_queue: redis.url, webserver_port: fake.port },
    sites: [SITE],
  });
  rt = await startServer();
});

after(async () => {
  for (const c of clients) c.close();
  if (rt?.isRunning()) await rt.stop();
  await Promise.all([redis?.stop(), fake?.stop()]);
});

function client(sid, opts = {}) {
  const url = `http://127.0.0.1:${port}`;
  const c = new RealtimeClient({
    url,
    site: SITE,
    extraHeaders: { cookie: `sid=${sid}`, origin: url, 'x-frappe-site-name': SITE },
    reconnectionDelay: 100,
    reconnectionDelayMax: 400,
    ...opts,
  });
  clients.push(c);
  return c;
}

/** Every message of `event` received by c, in order. */
function collect(c, event) {
  const got = [];
  c.on(event, (m) => got.push(m));
  return got;
}

const publish = (event, message, room) => redis.publish('events', { event, message, room, namespace: SITE });

/**
 * Publishes {n} to room until `got` (a collected array) contains it: the
 * server's permission check behind a subscribe has no reply, so the test
 * cannot know when the room is joined. Resolves the message.
 */
let seq = 0;
async function publishUntil(got, event, room, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const n = ++seq;
    await publish(event, { n }, room);
    const hit = await waitFor(() => got.find((m) => m.n === n), 150).catch(() => null);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`nothing on ${room} (${event}) within ${ms} ms`);
  }
}

/** Publishes to room and then to a room c surely is in (sync): resolves
 * true if `got` saw the first message. Events reach one socket in order. */
async function delivered(got, event, room, syncGot, syncEvent, syncRoom) {
  const n = ++seq;
  await publish(event, { n }, room);
  await publishUntil(syncGot, syncEvent, syncRoom);
  return got.some((m) => m.n === n);
}

const connected = (c, n = 1) => waitFor(() => c.connects >= n && c.connected, 15000);

let alice;
let bob;
let got;

test('subscribes to doctype, doc and task rooms and receives published events', async () => {
  alice = client('sid-alice');
  got = {
    list: collect(alice, 'list_update'),
    doc: collect(alice, 'doc_update'),
    task: collect(alice, 'task_progress'),
    user: collect(alice, 'msgprint'),
    viewers: collect(alice, 'doc_viewers'),
  };
  // Asked before the connection is up: sent on connect.
  alice.doctype_subscribe('ToDo').doc_subscribe('Note', 'N/1').task_subscribe('t-1');
  await connected(alice);
  assert.deepEqual(alice.subscriptions(), {
    doctypes: ['ToDo'], docs: [['Note', 'N/1']], open_docs: [], tasks: ['t-1'],
  });
  await publishUntil(got.list, 'list_update', 'doctype:ToDo');
  await publishUntil(got.doc, 'doc_update', 'doc:Note/N/1');
  await publishUntil(got.task, 'task_progress', 'task_progress:t-1');
  await publishUntil(got.user, 'msgprint', 'user:alice@x');
  // Not subscribed, and refused by the web server: nothing arrives.
  alice.doc_subscribe('Note', 'N/2');
  assert.equal(await delivered(got.doc, 'doc_update', 'doc:Note/N/2', got.user, 'msgprint', 'user:alice@x'), false);
  assert.equal(await delivered(got.doc, 'doc_update', 'doc:Note/N/3', got.user, 'msgprint', 'user:alice@x'), false);
  alice.doc_unsubscribe('Note', 'N/2');
});

test('doc_open presence between two users', async () => {
  bob = connect(`http://127.0.0.1:${port}`, SITE, {
    extraHeaders: { cookie: 'sid=sid-bob', origin: `http://127.0.0.1:${port}`, 'x-frappe-site-name': SITE },
    reconnectionDelay: 100,
    reconnectionDelayMax: 400,
  });
  clients.push(bob);
  assert.ok(bob instanceof RealtimeClient);
  await connected(bob);
  alice.doc_open('Note', 'N/1');
  await sleep(100);
  bob.doc_open('Note', 'N/1');
  const v = await waitFor(() => got.viewers.find((m) => m.users.length === 2));
  assert.deepEqual(v, { doctype: 'Note', docname: 'N/1', users: ['alice@x', 'bob@x'] });
});

test('off() removes one listener or all of an event', async () => {
  const second = [];
  const h = (m) => second.push(m);
  alice.on('list_update', h);
  const before = got.list.length;
  await publishUntil(got.list, 'list_update', 'doctype:ToDo');
  assert.equal(second.length, got.list.length - before);
  alice.off('list_update', h);
  const m = await publishUntil(got.list, 'list_update', 'doctype:ToDo');
  assert.ok(!second.includes(m), 'removed listener still called');
  // off(event) without a callback on a reserved event keeps re-subscription working.
  const extra = [];
  alice.on('connect', () => extra.push(1));
  alice.off('connect');
  assert.equal(alice.socket.listeners('connect').length, 1, 'the client keeps its own connect handler');
});

test('server restart: reconnects by itself, with backoff, and gets its rooms back', async () => {
  // Unsubscribed before the restart: must not come back after it.
  alice.task_subscribe('t-2');
  await publishUntil(got.task, 'task_progress', 'task_progress:t-2');
  alice.task_unsubscribe('t-2');
  assert.equal(await delivered(got.task, 'task_progress', 'task_progress:t-2', got.user, 'msgprint', 'user:alice@x'), false);

  const attempts = [];
  alice.socket.io.on('reconnect_attempt', (n) => attempts.push(n));
  const refused = collect(alice, 'connect_error');
  const bobRefused = collect(bob, 'connect_error');
  const viewersBefore = got.viewers.length;

  const r = await rt.stop();
  assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  await waitFor(() => !alice.connected && !bob.connected);
  // Down long enough for more attempts than Frappe's client would make (3).
  await waitFor(() => attempts.length >= 5, 10000);
  // The first handshakes after the restart are refused (web server errors;
  // realtimed calls get_user_info twice before it refuses): socket.io-client
  // does not retry a refused namespace by itself, the client does.
  await fake.config({ fail: { get_user_info: { mode: 'json500', times: 4 } } });
  rt = await startServer();
  await Promise.all([connected(alice, 2), connected(bob, 2)]);
  const isRefusal = (e) => !/poll error|websocket error|timeout/.test(e.message);
  assert.ok([...refused, ...bobRefused].some(isRefusal), 'a refused handshake was retried');
  await fake.config({ fail: {} });

  // No subscribe calls from the test: the client asked again on connect.
  await publishUntil(got.list, 'list_update', 'doctype:ToDo');
  await publishUntil(got.doc, 'doc_update', 'doc:Note/N/1');
  await publishUntil(got.task, 'task_progress', 'task_progress:t-1');
  assert.equal(await delivered(got.task, 'task_progress', 'task_progress:t-2', got.user, 'msgprint', 'user:alice@x'), false);
  assert.equal(await delivered(got.doc, 'doc_update', 'doc:Note/N/2', got.user, 'msgprint', 'user:alice@x'), false);
  // Presence: both re-opened the document on the new server.
  const v = await waitFor(() => got.viewers.slice(viewersBefore).find((m) => m.users.length === 2), 10000);
  assert.deepEqual({ ...v, users: [...v.users].sort() }, { doctype: 'Note', docname: 'N/1', users: ['alice@x', 'bob@x'] });

  const perms = await fake.requests('has_permission');
  assert.ok(perms.filter((p) => p.query.doctype === 'ToDo' && p.headers.cookie === 'sid=sid-alice').length >= 2);
});

test('doc_close, unsubscribe and close()', async () => {
  const n = got.viewers.length;
  bob.doc_close('Note', 'N/1');
  const v = await waitFor(() => got.viewers.slice(n).find((m) => m.users.length === 1));
  assert.deepEqual(v, { doctype: 'Note', docname: 'N/1', users: ['alice@x'] });
  assert.deepEqual(bob.subscriptions().open_docs, []);

  alice.doctype_unsubscribe('ToDo');
  assert.equal(await delivered(got.list, 'list_update', 'doctype:ToDo', got.user, 'msgprint', 'user:alice@x'), false);

  alice.close();
  bob.close();
  await waitFor(() => !alice.connected && !bob.connected);
  await sleep(300);
  assert.equal(alice.connected, false, 'close() is final');
  const r = await rt.stop();
  assert.deepEqual(r, { code: 0, signal: null }, rt.output());
});
