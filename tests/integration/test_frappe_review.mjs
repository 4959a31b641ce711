// Regressions from the code review: header injection through the sid cookie,
// the per-socket room cap (joins stay cheap, memory bounded), Node's
// `name || ""` for a missing docname, truthy non-boolean bench values and
// --check-config masking every form of the Redis password.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  SITE1, startStack, connect, connectError, once, publish, quiet, collectAll, callbacks, roundTrip,
} from '../lib/frappe_helpers.mjs';
import { makeBench, ROOT } from '../lib/procs.mjs';

const BIN = process.env.REALTIMED_BIN || `${ROOT}/build/realtimed`;
let stack;
before(async () => { stack = await startStack(); });
after(async () => {
  const r = await stack.stop();
  assert.deepEqual(r, { code: 0, signal: null }, stack.rt.output());
});

test('a sid cookie with encoded CR/LF is no sid: no header can be injected into the callback', async () => {
  await stack.fake.reset();
  await stack.fake.config({ users: (await import('../lib/frappe_helpers.mjs')).USERS });
  const s = stack.client({ cookie: 'sid=abc%0d%0aX-Frappe-Site-Name:%20evil.site' });
  assert.equal(await connectError(s), 'No authentication method used. Use cookie or authorization header.');
  const reqs = await stack.fake.requests('get_user_info');
  assert.equal(reqs.length, 0, JSON.stringify(reqs));
  s.close();
});

test('joins beyond 4096 rooms per socket are refused; the socket keeps working', async () => {
  const s = await connect(stack, { cookie: 'sid=sid-alice' });
  for (let i = 0; i < 4200; i++) s.emit('task_subscribe', `t${i}`);
  await roundTrip(s); // every join processed
  const inside = once(s, 'in');
  await publish(stack.redis, { event: 'in', message: 1, room: 'task_progress:t4000', namespace: SITE1 });
  assert.deepEqual(await inside, [1]);
  const got = collectAll(s);
  await publish(stack.redis, { event: 'over', message: 2, room: 'task_progress:t4199', namespace: SITE1 });
  await quiet(got);
  assert.deepEqual(got, [], 'joins past the cap are refused');
  assert.match(stack.rt.output(), /rooms already: join refused/);
  s.close();
});

test('doc_subscribe without a docname asks has_permission with name="" (Node: name || "")', async () => {
  await stack.fake.reset();
  await stack.fake.config({ users: (await import('../lib/frappe_helpers.mjs')).USERS });
  const s = await connect(stack, { cookie: 'sid=sid-alice' });
  s.emit('doc_subscribe', 'ToDo');
  const reqs = await callbacks(stack.fake, 'has_permission', 1);
  assert.equal(reqs[0].raw_query, 'doctype=ToDo&name=');
  s.close();
});

test('truthy non-boolean bench values count as true; --check-config masks every password form', () => {
  const bench = makeBench({ common_site_config: { developer_mode: 2, redis_queue: 'redis://:p@ss@h:1' } });
  let r = spawnSync(BIN, ['--check-config'], { cwd: bench, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /developer_mode\s+= true/);
  assert.match(r.stdout, /redis_queue\s+= redis:\/\/:\*\*\*\*@h:1 /);
  assert.doesNotMatch(r.stdout, /p@ss|ss@h/);
  r = spawnSync(BIN, ['--check-config', '--redis-queue', 'unix:///x?db=2&password=topsecret'],
    { cwd: bench, encoding: 'utf8' });
  assert.match(r.stdout, /unix:\/\/\/x\?db=2&password=\*\*\*\* /);
  assert.doesNotMatch(r.stdout, /topsecret/);
});
