// Operations (commit 181438b): what a service manager, Prometheus and an
// operator see of a running realtimed, through real processes (redis-server,
// the fake Frappe web server, realtimed on temp benches).
//  - GET /metrics: the whole output validated as Prometheus text 0.0.4
//    (HELP/TYPE before samples, grouped families, labels, histograms), and
//    its values after real traffic (transports, namespaces, connect errors,
//    deliveries, auth latency, process gauges, Redis links, disconnects);
//    --metrics-listen; --workers 2 sums on every scrape.
//  - /health, /healthz (404), /ready (503 while Redis is down, then 200).
//  - Signals: SIGHUP re-reads --config (live keys applied, restart-only keys
//    logged, invalid JSON changes nothing; per-worker share of the limits),
//    --log-file reopened on SIGUSR1/SIGHUP, SIGUSR2 ignored, nobody dies
//    (also with --workers 2); --log-format json.
//  - SIGTERM drain: clients get "transport close", exit 0, --drain-timeout
//    bounds a drain blocked by a client that never reads.
//  - sd_notify: READY=1 only once Redis is reachable, WATCHDOG=1,
//    STOPPING=1, and with --workers only the master speaks.
//  - socketio_uds: --uds-mode, never replacing a live socket, replacing a
//    stale one, refusing a regular file; --check-config errors (exit 78).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  ROOT, startRedis, startFakeFrappe, startRealtimed, makeBench, freePort, tempDir, waitFor, sleep,
} from '../lib/procs.mjs';
import {
  SITE1, USERS, startStack, clientFor, connect, connectError, once, collect, publish, httpRequest,
  roundTrip,
} from '../lib/frappe_helpers.mjs';
import { eioWs, within } from '../lib/core_helpers.mjs';

const BIN = process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed');
const TEST = { timeout: 30000 };

// One fake Frappe web server for every stack of this file (it holds no
// per-stack state the tests here depend on).
let fake;
const stacks = new Set();
before(async () => {
  fake = await startFakeFrappe();
  await fake.config({ users: USERS });
});
after(async () => {
  for (const s of stacks) if (s.rt.isRunning()) await s.stop();
  await fake?.stop();
});

/** startStack on the shared fake; stopped in after() if a test forgets. */
async function stack(opts = {}) {
  const s = await startStack({ fake, ...opts });
  stacks.add(s);
  return s;
}

/** The exit of a realtimed (startRealtimed result) within ms (keeps the loop alive). */
const exitOf = (rt, ms = 8000) => within(rt.exited, ms, `realtimed did not exit within ${ms} ms:\n${rt.output()}`);

/** Runs realtimed to its exit; resolves {code, signal, output}. */
function runRealtimed(args, { cwd, env = {}, ms = 8000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${args.join(' ')}: no exit within ${ms} ms:\n${out}`)); }, ms);
    p.once('error', (e) => { clearTimeout(t); reject(e); });
    p.once('close', (code, signal) => { clearTimeout(t); resolve({ code, signal, output: out }); });
  });
}

const children = (pid) => {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').map(Number).filter(Boolean);
  } catch { return []; }
};
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };

// ---------------------------------------------------------------- Prometheus text 0.0.4

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|NaN)$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, where) {
  assert.match(s, FLOAT, `${where}: bad value '${s}'`);
  if (/Inf$/.test(s)) return s[0] === '-' ? -Infinity : Infinity;
  return Number(s);
}

// `a="x",b="y\"z"` -> {a: 'x', b: 'y"z'} (escapes \\ \" \n); trailing comma allowed.
function parseLabels(s, where) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    assert.ok(eq > i, `${where}: bad labels {${s}}`);
    const name = s.slice(i, eq).trim();
    assert.match(name, LABEL, `${where}: bad label name '${name}'`);
    assert.ok(!name.startsWith('__'), `${where}: reserved label name '${name}'`);
    assert.ok(!(name in labels), `${where}: label '${name}' repeated`);
    assert.equal(s[eq + 1], '"', `${where}: label value not quoted`);
    let v = '';
    let j = eq + 2;
    for (;; j++) {
      assert.ok(j < s.length, `${where}: unterminated label value`);
      const c = s[j];
      if (c === '\\') {
        const n = s[++j];
        assert.ok(n === '\\' || n === '"' || n === 'n', `${where}: bad escape \\${n}`);
        v += n === 'n' ? '\n' : n;
      } else if (c === '"') break;
      else {
        assert.notEqual(c, '\n', `${where}: newline in a label value`);
        v += c;
      }
    }
    labels[name] = v;
    i = j + 1;
    if (s[i] === ',') i++;
    else assert.equal(i, s.length, `${where}: junk after a label value`);
  }
  return labels;
}

const key = (name, labels) => `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;

/**
 * Parses and validates a whole exposition; throws (assert) at the first
 * violation. Returns {families: Map(name -> {help, type, samples}), get, sum}.
 */
function parseMetrics(text) {
  assert.ok(text.length > 0, 'empty exposition');
  assert.ok(text.endsWith('\n'), 'the exposition must end with a newline');
  const families = new Map();
  const seen = new Set(); // sample keys
  const closed = new Set(); // families whose group has ended
  let current = null; // family whose lines we are in
  const familyOf = (sample) => {
    for (const suffix of ['_bucket', '_sum', '_count', '']) {
      if (!sample.endsWith(suffix)) continue;
      const base = sample.slice(0, sample.length - suffix.length);
      const f = families.get(base);
      if (!f) continue;
      if (suffix === '') return f;
      if (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket')) return f;
    }
    return null;
  };
  const open = (name, where) => {
    if (current && current.name === name) return current;
    assert.ok(!closed.has(name), `${where}: lines of ${name} are not grouped together`);
    if (current) closed.add(current.name);
    let f = families.get(name);
    if (!f) {
      f = { name, help: undefined, type: undefined, samples: [] };
      families.set(name, f);
    }
    current = f;
    return f;
  };
  text.slice(0, -1).split('\n').forEach((line, n) => {
    const where = `line ${n + 1} '${line}'`;
    if (line === '') return; // allowed (ignored) by the format
    if (line.startsWith('#')) {
      const m = line.match(/^# (HELP|TYPE) (\S+)(?: (.*))?$/);
      if (!m) return; // a plain comment
      const [, what, name, rest = ''] = m;
      assert.match(name, NAME, `${where}: bad metric name`);
      assert.ok(name.startsWith('realtimed_'), `${where}: metric name not prefixed realtimed_`);
      const f = open(name, where);
      assert.equal(f.samples.length, 0, `${where}: ${what} after the samples of ${name}`);
      if (what === 'HELP') {
        assert.equal(f.help, undefined, `${where}: second HELP for ${name}`);
        assert.ok(rest.trim().length > 0, `${where}: empty HELP`);
        assert.doesNotMatch(rest.replace(/\\[\\n]/g, ''), /\\/, `${where}: bad escape in HELP`);
        f.help = rest;
      } else {
        assert.equal(f.type, undefined, `${where}: second TYPE for ${name}`);
        assert.ok(TYPES.has(rest), `${where}: unknown type '${rest}'`);
        f.type = rest;
      }
      return;
    }
    const m = line.match(/^([^\s{]+)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$/);
    assert.ok(m, `${where}: not a sample line`);
    const [, name, rawLabels = '', rawValue] = m;
    assert.match(name, NAME, `${where}: bad metric name`);
    assert.ok(name.startsWith('realtimed_'), `${where}: metric name not prefixed realtimed_`);
    const f = familyOf(name);
    assert.ok(f, `${where}: sample of a family without # HELP and # TYPE before it`);
    assert.ok(f.help !== undefined, `${where}: no # HELP line before the samples of ${f.name}`);
    assert.ok(f.type !== undefined, `${where}: no # TYPE line before the samples of ${f.name}`);
    open(f.name, where);
    const labels = parseLabels(rawLabels, where);
    const value = parseValue(rawValue, where);
    const k = key(name, labels);
    assert.ok(!seen.has(k), `${where}: duplicate sample ${k}`);
    seen.add(k);
    if (f.type === 'counter') assert.ok(value >= 0 && Number.isFinite(value), `${where}: counter must be finite and >= 0`);
    if (f.type === 'histogram') {
      if (name.endsWith('_bucket')) assert.ok('le' in labels, `${where}: bucket without le`);
      else assert.ok(!('le' in labels), `${where}: le outside a bucket`);
    }
    if (f.type !== 'histogram' && f.type !== 'summary') assert.equal(name, f.name, `${where}: sample name differs from family`);
    f.samples.push({ name, labels, value });
  });
  // Families declared and never sampled are legal; histograms must be whole.
  for (const f of families.values()) {
    assert.ok(f.help !== undefined && f.type !== undefined, `${f.name}: HELP and TYPE both required`);
    if (f.type !== 'histogram') continue;
    const groups = new Map(); // other labels -> {buckets, sum, count}
    for (const s of f.samples) {
      const { le, ...rest } = s.labels;
      const g = groups.get(key('', rest)) ?? { buckets: [], sum: undefined, count: undefined };
      groups.set(key('', rest), g);
      if (s.name === `${f.name}_bucket`) g.buckets.push({ le: parseValue(le, `${f.name} le`), value: s.value });
      else if (s.name === `${f.name}_sum`) g.sum = s.value;
      else if (s.name === `${f.name}_count`) g.count = s.value;
      else assert.fail(`${f.name}: unexpected sample ${s.name}`);
    }
    assert.ok(groups.size > 0, `${f.name}: a histogram without samples`);
    for (const [k, g] of groups) {
      assert.ok(g.buckets.length > 0, `${f.name}${k}: no buckets`);
      assert.ok(g.sum !== undefined && Number.isFinite(g.sum), `${f.name}${k}: no _sum`);
      assert.ok(g.count !== undefined, `${f.name}${k}: no _count`);
      for (let i = 1; i < g.buckets.length; i++) {
        assert.ok(g.buckets[i].le > g.buckets[i - 1].le, `${f.name}${k}: le not increasing`);
        assert.ok(g.buckets[i].value >= g.buckets[i - 1].value,
          `${f.name}${k}: buckets not cumulative at le=${g.buckets[i].le}`);
      }
      const last = g.buckets[g.buckets.length - 1];
      assert.equal(last.le, Infinity, `${f.name}${k}: the last bucket is not le="+Inf"`);
      assert.equal(last.value, g.count, `${f.name}${k}: +Inf bucket != _count`);
    }
  }
  const samples = new Map();
  for (const f of families.values()) for (const s of f.samples) samples.set(key(s.name, s.labels), s.value);
  return {
    families,
    text,
    /** Value of the sample name{labels} (exact label set), or undefined. */
    get: (name, labels = {}) => samples.get(key(name, labels)),
    /** Sum over every label set of name. */
    sum: (name) => [...families.values()].flatMap((f) => f.samples).filter((s) => s.name === name)
      .reduce((a, s) => a + s.value, 0),
  };
}

/** GET /metrics on a fresh connection; asserts the HTTP envelope and validates the body. */
async function scrape(port) {
  const r = await httpRequest({ port, path: '/metrics' });
  assert.equal(r.status, 200, `/metrics: ${r.status} ${r.body}`);
  assert.match(r.headers['content-type'] ?? '', /^text\/plain; ?version=0\.0\.4/, 'Content-Type');
  return parseMetrics(r.body);
}

/** Polls /metrics until pred(m) is true; returns that scrape. */
async function scrapeUntil(port, pred, ms = 5000, what = 'metrics condition') {
  let last;
  try {
    return await waitFor(async () => {
      last = await scrape(port);
      return pred(last) ? last : null;
    }, ms, 50);
  } catch (e) {
    throw new Error(`${what} not met within ${ms} ms (${e.message}); last scrape:\n${last?.text ?? '(none)'}`);
  }
}

// ---------------------------------------------------------------- 1. /metrics with traffic

test('/metrics: valid Prometheus text whose values follow real traffic', TEST, async () => {
  const st = await stack();
  const m0 = await scrape(st.port);
  assert.equal(m0.get('realtimed_workers'), 1);
  assert.equal(m0.get('realtimed_ready'), 1);

  const ws = await connect(st, { transports: ['websocket'] });
  const poll = await connect(st, { transports: ['polling'] });
  let m = await scrapeUntil(st.port, (x) => x.get('realtimed_connections', { transport: 'websocket' }) === 1
    && x.get('realtimed_connections', { transport: 'polling' }) === 1, 5000, 'connections 1+1');
  assert.equal(m.get('realtimed_sockets', { namespace: `/${SITE1}` }), 2, m.text);
  assert.ok(m.get('realtimed_auth_request_duration_seconds_count') > 0, 'auth callbacks timed');
  assert.ok(m.get('realtimed_process_resident_memory_bytes') > 0);
  assert.ok(m.get('realtimed_process_open_fds') > 0);
  assert.equal(m.get('realtimed_redis_up', { link: 'subscriber' }), 1);
  assert.ok(m.get('realtimed_connects_total') >= 2);

  // A client without cookie or Authorization: connect_error, counted.
  const errs0 = m.get('realtimed_connect_errors_total', { reason: 'no_credentials' });
  assert.notEqual(errs0, undefined, 'realtimed_connect_errors_total{reason="no_credentials"} present');
  await connectError(clientFor(st, { cookie: null }));
  m = await scrapeUntil(st.port,
    (x) => x.get('realtimed_connect_errors_total', { reason: 'no_credentials' }) === errs0 + 1, 3000, 'no_credentials +1');

  // A Frappe event to a room both sockets are in.
  const before = m;
  const gotWs = collect(ws, 'ops_event');
  const gotPoll = collect(poll, 'ops_event');
  await publish(st.redis, { event: 'ops_event', message: { n: 1 }, room: 'all', namespace: SITE1 });
  await waitFor(() => gotWs.length === 1 && gotPoll.length === 1, 5000);
  m = await scrapeUntil(st.port,
    (x) => x.get('realtimed_event_delivery_seconds_count') > before.get('realtimed_event_delivery_seconds_count'),
    3000, 'event_delivery_seconds_count grows');
  assert.ok(m.get('realtimed_deliveries_total') >= before.get('realtimed_deliveries_total') + 2,
    `deliveries ${before.get('realtimed_deliveries_total')} -> ${m.get('realtimed_deliveries_total')}`);
  assert.ok(m.get('realtimed_redis_events_total') > before.get('realtimed_redis_events_total'));
  assert.ok(m.get('realtimed_broadcasts_total') > before.get('realtimed_broadcasts_total'));
  assert.equal(m.families.get('realtimed_event_delivery_seconds').type, 'histogram');
  assert.equal(m.families.get('realtimed_auth_request_duration_seconds').type, 'histogram');

  // A client's disconnect is counted by reason.
  const gone = (x) => x.get('realtimed_disconnects_total', { reason: 'client_namespace_disconnect' })
    + x.get('realtimed_disconnects_total', { reason: 'transport_close' });
  const gone0 = gone(m);
  assert.ok(Number.isFinite(gone0), 'disconnects_total{reason=client_namespace_disconnect|transport_close} present');
  ws.disconnect();
  m = await scrapeUntil(st.port, (x) => gone(x) >= gone0 + 1
    && x.get('realtimed_connections', { transport: 'websocket' }) === 0, 3000, 'disconnect counted');
  assert.equal(m.get('realtimed_sockets', { namespace: `/${SITE1}` }), 1);
  poll.close();
  await scrapeUntil(st.port, (x) => x.get('realtimed_connections', { transport: 'polling' }) === 0, 3000, 'polling gone');
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, st.rt.output());
});

// ---------------------------------------------------------------- 2. /health, /ready

test('/health, /healthz 404, /ready follows Redis (503 while it is down)', TEST, async () => {
  const st = await stack();
  const get = (p) => httpRequest({ port: st.port, path: p });
  let r = await get('/health');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'ok');
  assert.equal((await get('/healthz')).status, 404);
  r = await waitFor(async () => { const x = await get('/ready'); return x.status === 200 && x; }, 5000);
  assert.equal(r.body, 'ready');

  await st.redis.stop();
  r = await waitFor(async () => { const x = await get('/ready'); return x.status === 503 && x; }, 5000);
  assert.match(r.body, /^not ready: redis/);
  const m = await scrape(st.port);
  assert.equal(m.get('realtimed_ready'), 0);
  assert.equal(m.get('realtimed_redis_up', { link: 'subscriber' }), 0);
  assert.equal((await get('/health')).status, 200, 'liveness is not readiness');

  await st.redis.restart();
  r = await waitFor(async () => { const x = await get('/ready'); return x.status === 200 && x; }, 10000, 100);
  assert.equal(r.body, 'ready');
  await scrapeUntil(st.port, (x) => x.get('realtimed_ready') === 1
    && x.get('realtimed_redis_up', { link: 'subscriber' }) === 1, 3000, 'ready 1 again');
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, st.rt.output());
});

// ---------------------------------------------------------------- 3. --metrics-listen

test('--metrics-listen: /metrics, /health, /ready there; the main port has no /metrics', TEST, async () => {
  const mport = await freePort();
  const st = await stack({ args: ['--metrics-listen', `127.0.0.1:${mport}`] });
  await waitFor(() => httpRequest({ port: mport, path: '/health' }).then((x) => x.status === 200, () => false), 5000);
  const m = await scrape(mport);
  assert.equal(m.get('realtimed_workers'), 1);
  let r = await httpRequest({ port: mport, path: '/health' });
  assert.equal(r.body, 'ok');
  r = await waitFor(async () => { const x = await httpRequest({ port: mport, path: '/ready' }); return x.status === 200 && x; }, 5000);
  assert.equal(r.body, 'ready');

  assert.equal((await httpRequest({ port: st.port, path: '/metrics' })).status, 404, 'main port /metrics');
  r = await httpRequest({ port: st.port, path: '/health' });
  assert.deepEqual([r.status, r.body], [200, 'ok']);
  r = await httpRequest({ port: st.port, path: '/ready' });
  assert.deepEqual([r.status, r.body], [200, 'ready']);
  // and the main port still serves Socket.IO
  const s = await connect(st, { transports: ['websocket'] });
  await scrapeUntil(mport, (x) => x.get('realtimed_connections', { transport: 'websocket' }) === 1, 3000, 'ws 1');
  s.close();
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, st.rt.output());
});

// ---------------------------------------------------------------- 4. --workers 2 sums

test('--workers 2: every scrape (any worker) reports both workers and the machine total', TEST, async () => {
  const st = await stack({ args: ['--workers', '2'] });
  await st.rt.waitForLine(/2 workers serving/);
  const clients = [];
  for (let i = 0; i < 6; i++) clients.push(await connect(st, { transports: ['websocket'] }));
  await scrapeUntil(st.port, (x) => x.get('realtimed_connections', { transport: 'websocket' }) === 6, 5000, 'sum reaches 6');
  for (let i = 0; i < 6; i++) {
    const m = await scrape(st.port); // httpRequest: a new TCP connection each time
    assert.equal(m.get('realtimed_workers'), 2, `scrape ${i}`);
    assert.equal(m.get('realtimed_connections', { transport: 'websocket' }), 6, `scrape ${i}:\n${m.text}`);
    assert.equal(m.get('realtimed_sockets', { namespace: `/${SITE1}` }), 6, `scrape ${i}`);
    await sleep(200);
  }
  for (const c of clients) c.close();
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, st.rt.output());
});

// ---------------------------------------------------------------- 5. SIGHUP + --config

test('SIGHUP re-reads --config: live keys applied, restart keys logged, invalid JSON changes nothing', TEST, async () => {
  const cfg = path.join(tempDir(), 'realtimed.json');
  fs.writeFileSync(cfg, JSON.stringify({ log_level: 'info', max_sessions: 100 }));
  const st = await stack({ args: ['--config', cfg] });
  fs.writeFileSync(cfg, JSON.stringify({ log_level: 'debug', max_sessions: 1, listen_host: '127.0.0.1' }));
  st.rt.proc.kill('SIGHUP');
  await st.rt.waitForLine(/SIGHUP: listen_host changed: it takes effect after a restart/);
  await st.rt.waitForLine(/SIGHUP: configuration reloaded: 2 changes applied, 1 waiting for a restart/);
  assert.ok(st.rt.isRunning());

  const s = await connect(st); // the one session allowed
  const hs = () => httpRequest({ port: st.port, path: '/socket.io/?EIO=4&transport=polling' });
  let r = await hs();
  assert.equal(r.status, 503, `second handshake with max_sessions 1: ${r.status} ${r.body}`);

  const mark = st.rt.lines.length;
  fs.writeFileSync(cfg, '{"log_level": "info", "max_sessions": ');
  st.rt.proc.kill('SIGHUP');
  await waitFor(() => st.rt.lines.slice(mark).some((l) => /nothing changed/.test(l)), 5000);
  assert.ok(st.rt.isRunning(), 'still running after an invalid config');
  r = await hs();
  assert.equal(r.status, 503, 'max_sessions is still 1');
  await roundTrip(s);
  s.close();
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, st.rt.output());
});

test('SIGHUP with --workers 2: the master logs once, no worker restarts, limits split per worker', TEST, async () => {
  const cfg = path.join(tempDir(), 'realtimed.json');
  fs.writeFileSync(cfg, JSON.stringify({ log_level: 'info', max_sessions: 100 }));
  const st = await stack({ args: ['--config', cfg, '--workers', '2'] });
  await st.rt.waitForLine(/2 workers serving/);
  const pids = children(st.rt.proc.pid).sort();
  assert.equal(pids.length, 2);
  const mark = st.rt.lines.length;
  fs.writeFileSync(cfg, JSON.stringify({ log_level: 'debug', max_sessions: 2, listen_host: '127.0.0.1' }));
  st.rt.proc.kill('SIGHUP');
  await st.rt.waitForLine(/SIGHUP: configuration reloaded: 2 changes applied, 1 waiting for a restart/);

  // 2 sessions for the machine: one per worker, whichever worker accepts.
  const accepted = [];
  let refused = 0;
  for (let i = 0; i < 30 && !(refused >= 10 && new Set(accepted.map((x) => x[0])).size === 2); i++) {
    const r = await httpRequest({ port: st.port, path: '/socket.io/?EIO=4&transport=polling' });
    if (r.status === 200) accepted.push(JSON.parse(r.body.slice(1)).sid);
    else { assert.equal(r.status, 503, r.body); refused++; }
  }
  assert.deepEqual(accepted.map((x) => x[0]).sort(), ['A', 'B'],
    `exactly one session per worker (accepted ${accepted.join(' ')}, ${refused} refused)`);

  const after = st.rt.lines.slice(mark);
  assert.equal(after.filter((l) => /configuration reloaded/.test(l)).length, 1, after.join('\n'));
  assert.ok(after.find((l) => /configuration reloaded/.test(l)).includes('master/'), 'logged by the master');
  assert.ok(!after.some((l) => /worker \d+ started|restarting|exited|was killed/.test(l)), after.join('\n'));
  assert.deepEqual(children(st.rt.proc.pid).sort(), pids, 'same workers');
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, st.rt.output());
});

// ---------------------------------------------------------------- 6. --log-file, SIGUSR1/2

test('--log-file: nothing on stderr; SIGUSR1 and SIGHUP reopen it; SIGUSR2 is logged and ignored', TEST, async () => {
  const dir = tempDir();
  const file = path.join(dir, 'realtimed.log');
  const st = await stack({ args: ['--log-file', file] });
  await waitFor(() => fs.existsSync(file) && /listening on/.test(fs.readFileSync(file, 'utf8')), 5000);
  const s = await connect(st);
  s.close();
  await waitFor(() => /connect: site site1\.local/.test(fs.readFileSync(file, 'utf8')), 5000);
  assert.deepEqual(st.rt.lines.filter((l) => l.trim()), [], 'stderr stays empty');

  fs.renameSync(file, `${file}.1`);
  st.rt.proc.kill('SIGUSR1');
  await waitFor(() => fs.existsSync(file), 5000);
  st.rt.proc.kill('SIGUSR2');
  await waitFor(() => /SIGUSR2 received: ignored/.test(fs.readFileSync(file, 'utf8')), 5000);
  assert.doesNotMatch(fs.readFileSync(`${file}.1`, 'utf8'), /SIGUSR2/, 'the rotated file gets nothing new');

  fs.renameSync(file, `${file}.2`);
  st.rt.proc.kill('SIGHUP');
  await waitFor(() => fs.existsSync(file), 5000);
  st.rt.proc.kill('SIGUSR2');
  await waitFor(() => /SIGUSR2 received: ignored/.test(fs.readFileSync(file, 'utf8')), 5000);
  assert.ok(st.rt.isRunning());
  assert.equal((await httpRequest({ port: st.port, path: '/health' })).body, 'ok');
  assert.deepEqual(st.rt.lines.filter((l) => l.trim()), [], 'stderr stays empty');
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, fs.readFileSync(file, 'utf8'));
});

test('--log-file with --workers 2: workers follow the reopen; HUP/USR1/USR2 kill nobody', TEST, async () => {
  const dir = tempDir();
  const file = path.join(dir, 'realtimed.log');
  const st = await stack({ args: ['--log-file', file, '--workers', '2'] });
  await waitFor(() => fs.existsSync(file) && /2 workers serving/.test(fs.readFileSync(file, 'utf8')), 5000);
  const pids = children(st.rt.proc.pid).sort();
  assert.equal(pids.length, 2);

  fs.renameSync(file, `${file}.1`);
  st.rt.proc.kill('SIGUSR1');
  await waitFor(() => fs.existsSync(file), 5000);
  st.rt.proc.kill('SIGUSR2');
  await waitFor(() => /master\/app: SIGUSR2 received: ignored/.test(fs.readFileSync(file, 'utf8')), 5000);
  // workers write to the new file too (a connect is logged by a worker)
  const s = await connect(st);
  await waitFor(() => /w\d\/frappe: connect: site site1\.local/.test(fs.readFileSync(file, 'utf8')), 5000);
  assert.doesNotMatch(fs.readFileSync(`${file}.1`, 'utf8'), /frappe: connect/);
  s.close();

  st.rt.proc.kill('SIGHUP');
  st.rt.proc.kill('SIGUSR2');
  // as `systemctl kill -s ...` does: the signals reach every process
  for (const sig of ['SIGHUP', 'SIGUSR1', 'SIGUSR2']) for (const p of pids) process.kill(p, sig);
  await waitFor(() => (fs.readFileSync(file, 'utf8').match(/SIGUSR2 received: ignored/g) ?? []).length >= 4, 5000);
  assert.ok(st.rt.isRunning(), 'master alive');
  for (const p of pids) assert.ok(alive(p), `worker ${p} alive`);
  assert.deepEqual(children(st.rt.proc.pid).sort(), pids, 'no worker was restarted');
  const m = await scrape(st.port);
  assert.equal(m.get('realtimed_workers'), 2);
  const s2 = await connect(st);
  await roundTrip(s2);
  s2.close();
  assert.deepEqual(st.rt.lines.filter((l) => l.trim()), [], 'stderr stays empty');
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, fs.readFileSync(file, 'utf8'));
});

// ---------------------------------------------------------------- 7. --log-format json

function assertJsonLines(lines, { workers = false } = {}) {
  assert.ok(lines.length > 0);
  for (const l of lines) {
    let o;
    try { o = JSON.parse(l); } catch { assert.fail(`not a JSON line: ${l}`); }
    for (const k of ['time', 'level', 'module', 'msg']) assert.equal(typeof o[k], 'string', `${k} in ${l}`);
    assert.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, l);
    assert.match(o.level, /^(debug|info|notice|warning|error)$/, l);
    if (workers) assert.match(o.process, /^(master|w\d+)$/, l);
  }
}

test('--log-format json: every stderr line is a JSON object (also with --workers 2)', TEST, async () => {
  for (const workers of [1, 2]) {
    const st = await stack({ args: ['--log-format', 'json', '--log-level', 'debug', '--workers', String(workers)] });
    const s = await connect(st);
    await roundTrip(s);
    s.disconnect();
    await connectError(clientFor(st, { cookie: null }));
    st.rt.proc.kill('SIGUSR2');
    await st.rt.waitForLine(/SIGUSR2 received: ignored/);
    assert.deepEqual(await st.stop(), { code: 0, signal: null }, st.rt.output());
    const lines = st.rt.lines.filter((l) => l.length);
    assertJsonLines(lines, { workers: workers > 1 });
    assert.ok(lines.some((l) => JSON.parse(l).msg.startsWith('connect: site site1.local')), st.rt.output());
    if (workers > 1) {
      assert.ok(lines.some((l) => JSON.parse(l).process === 'master'));
      assert.ok(lines.some((l) => JSON.parse(l).process === 'w0' || JSON.parse(l).process === 'w1'));
    }
  }
});

test('--log-format json: a SIGHUP with an invalid --config file still logs JSON only', TEST, async () => {
  const cfg = path.join(tempDir(), 'realtimed.json');
  fs.writeFileSync(cfg, '{}');
  const st = await stack({ args: ['--log-format', 'json', '--config', cfg] });
  fs.writeFileSync(cfg, '{bad');
  st.rt.proc.kill('SIGHUP');
  await st.rt.waitForLine(/nothing changed/);
  assert.deepEqual(await st.stop(), { code: 0, signal: null }, st.rt.output());
  assertJsonLines(st.rt.lines.filter((l) => l.length));
});

// ---------------------------------------------------------------- 8. SIGTERM drain

test('SIGTERM: a connected client gets "transport close" (it would reconnect), exit 0', TEST, async () => {
  const st = await stack();
  const s = await connect(st); // reconnection disabled (clientFor)
  const reason = once(s, 'disconnect');
  const t0 = Date.now();
  st.rt.proc.kill('SIGTERM');
  const [why] = await reason;
  assert.equal(why, 'transport close');
  assert.deepEqual(await exitOf(st.rt), { code: 0, signal: null }, st.rt.output());
  const took = Date.now() - t0;
  assert.ok(took < 5000, `drained in ${took} ms, under the 10 s drain timeout`);
  await st.stop();
});

test('SIGTERM with --drain-timeout 1000 and a client that never reads: exit 0 in time', TEST, async () => {
  const st = await stack({ args: ['--drain-timeout', '1000'] });
  const { ws } = await eioWs(st.port, '/socket.io/', {
    head: { Cookie: 'sid=sid-alice', Origin: st.url, 'X-Frappe-Site-Name': SITE1 },
  });
  ws.text(`40/${SITE1},`);
  const c = await ws.nextText();
  assert.match(c.text, new RegExp(`^40/${SITE1.replace('.', '\\.')},\\{"sid":`));
  ws.socket.pause(); // reads nothing from now on
  const m0 = await scrape(st.port);
  const big = 'x'.repeat(200 * 1024);
  const N = 50; // ~10 MB: more than the kernel buffers take, under out_hard_limit
  for (let i = 0; i < N; i++) await publish(st.redis, { event: 'big', message: { i, big }, room: 'all', namespace: SITE1 });
  await scrapeUntil(st.port, (x) => x.get('realtimed_redis_events_total') >= m0.get('realtimed_redis_events_total') + N,
    5000, 'every event read');
  const t0 = Date.now();
  st.rt.proc.kill('SIGTERM');
  const r = await exitOf(st.rt, 6000);
  const took = Date.now() - t0;
  assert.deepEqual(r, { code: 0, signal: null }, st.rt.output());
  assert.ok(took < 3000, `exited after ${took} ms (drain timeout 1000 ms)`);
  assert.ok(/drain timeout/.test(st.rt.output()) || ws.isClosed || ws.socket.readableEnded,
    `neither a drain timeout nor a closed client:\n${st.rt.output()}`);
  ws.destroy();
  await st.stop();
});

// ---------------------------------------------------------------- 9. sd_notify

// Binds a Unix datagram socket at path; every datagram is printed as one
// JSON line with the sender's pid (SO_PASSCRED), as the service manager sees it.
const NOTIFY_PY = `
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    print(json.dumps({"pid": pid, "data": msg.decode("utf-8", "replace")}), flush=True)
`;

async function notifyListener() {
  const sock = path.join(tempDir(), 'notify.sock');
  const p = spawn('/usr/bin/python3', ['-c', NOTIFY_PY, sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  const got = []; // {pid, data, vars: Set, at}
  let bound = false;
  let buf = '';
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  p.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const o = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (o.bound) { bound = true; continue; }
      got.push({ ...o, vars: new Set(o.data.split('\n').filter(Boolean)), at: Date.now() });
    }
  });
  p.unref();
  p.stdout.unref?.();
  p.stderr.unref?.();
  await waitFor(() => bound || p.exitCode !== null, 5000);
  assert.ok(bound, `notify listener did not start: ${err}`);
  return {
    path: sock,
    got,
    with: (v) => got.filter((d) => d.vars.has(v)),
    stop: () => { if (p.exitCode === null) p.kill(); },
  };
}

async function notifyRun(workers) {
  const listener = await notifyListener();
  const redis = await startRedis();
  try {
    await redis.stop(); // a port where Redis will come up later
    const port = await freePort();
    const bench = makeBench({ common_site_config: { redis_queue: redis.url, socketio_port: port }, sites: [SITE1] });
    const rt = await startRealtimed(['--workers', String(workers)], {
      cwd: bench, port, env: { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '200000' },
    });
    try {
      // Redis down: listening, but not ready, for a whole second.
      const t0 = Date.now();
      await sleep(1000);
      assert.deepEqual(listener.with('READY=1'), [], 'READY=1 while Redis is unreachable');
      const dogs = listener.with('WATCHDOG=1').filter((d) => d.at >= t0);
      assert.ok(dogs.length >= 3, `${dogs.length} WATCHDOG=1 in 1 s with WATCHDOG_USEC=200000`);
      assert.equal((await httpRequest({ port, path: '/ready' })).status, 503);

      const up = Date.now();
      await redis.restart();
      await waitFor(() => listener.with('READY=1').length > 0, 10000, 50);
      const [ready] = listener.with('READY=1');
      assert.ok(ready.at >= up, 'READY=1 after Redis came up');
      assert.equal(ready.pid, rt.proc.pid, 'READY=1 from the main process');
      // /ready follows: READY=1 waits for the subscriber link only, /ready
      // for the command link too, which may come up a few ms later
      await waitFor(async () => (await httpRequest({ port, path: '/ready' })).status === 200, 3000, 20);
      const n = listener.with('WATCHDOG=1').length;
      await waitFor(() => listener.with('WATCHDOG=1').length >= n + 3, 2000);
      if (workers > 1) await sleep(300); // room for a (wrong) second READY=1
      assert.equal(listener.with('READY=1').length, 1, 'exactly one READY=1');
      for (const d of listener.got) assert.equal(d.pid, rt.proc.pid, `datagram ${JSON.stringify(d.data)} from pid ${d.pid}, not the main pid`);

      rt.proc.kill('SIGTERM');
      await waitFor(() => listener.with('STOPPING=1').length > 0, 5000);
      assert.deepEqual(await exitOf(rt), { code: 0, signal: null }, rt.output());
      assert.equal(listener.with('STOPPING=1')[0].pid, rt.proc.pid);
      assert.equal(listener.with('READY=1').length, 1, 'exactly one READY=1');
    } finally {
      if (rt.isRunning()) await rt.stop();
    }
  } finally {
    listener.stop();
    await redis.stop();
  }
}

test('sd_notify: READY=1 only once Redis is reachable, WATCHDOG=1, STOPPING=1', TEST, () => notifyRun(1));
test('sd_notify with --workers 2: one READY=1 from the master, STOPPING=1', TEST, () => notifyRun(2));

// ---------------------------------------------------------------- 10. socketio_uds

test('socketio_uds: mode 0666 / --uds-mode, a live socket is never replaced, a stale one is', TEST, async () => {
  const redis = await startRedis();
  const dir = tempDir();
  const socketPath = path.join(dir, 'realtimed.sock');
  const bench = makeBench({ common_site_config: { redis_queue: redis.url, socketio_uds: socketPath }, sites: [SITE1] });
  const health = () => httpRequest({ socketPath, path: '/health' });
  const rt = await startRealtimed([], { cwd: bench, socketPath });
  try {
    assert.equal((fs.statSync(socketPath).mode & 0o777).toString(8), '666');
    assert.equal((await health()).body, 'ok');

    // A second instance on the same path: refused, the first keeps serving.
    const second = await runRealtimed([], { cwd: bench });
    assert.notEqual(second.code, 0, second.output);
    assert.match(second.output, /another process is serving/);
    assert.ok(rt.isRunning());
    assert.deepEqual([(await health()).status, (await health()).body], [200, 'ok']);

    // SIGKILL leaves the file behind; the next start replaces it.
    rt.proc.kill('SIGKILL');
    await exitOf(rt);
    assert.ok(fs.existsSync(socketPath), 'stale socket left behind');
    const rt2 = await startRealtimed(['--uds-mode', '0660'], { cwd: bench, socketPath });
    try {
      assert.equal((fs.statSync(socketPath).mode & 0o777).toString(8), '660');
      assert.equal((await health()).body, 'ok');
    } finally {
      assert.deepEqual(await rt2.stop(), { code: 0, signal: null }, rt2.output());
    }

    // A regular file at the path is never removed.
    fs.rmSync(socketPath, { force: true });
    fs.writeFileSync(socketPath, 'not a socket');
    const reg = await runRealtimed(['--socketio-uds', socketPath], { cwd: bench });
    assert.notEqual(reg.code, 0, reg.output);
    assert.match(reg.output, /is not a socket/);
    assert.equal(fs.readFileSync(socketPath, 'utf8'), 'not a socket');
  } finally {
    if (rt.isRunning()) await rt.stop();
    await redis.stop();
  }
});

// ---------------------------------------------------------------- 11. --check-config

test('--check-config: 78 naming the key for bad values, 0 for a valid bench', TEST, async () => {
  const bench = makeBench({ common_site_config: { redis_queue: 'redis://127.0.0.1:6379', socketio_port: 9000 }, sites: [SITE1] });
  const cases = [
    [['--uds-mode', '999'], /uds_mode|uds-mode/],
    [['--log-format', 'xml'], /log_format|log-format/],
    [['--socketio-uds='], /socketio_uds|socketio-uds/],
    [['--metrics-listen', 'nope'], /metrics_listen|metrics-listen/],
  ];
  const results = await Promise.all(cases.map(([args]) => runRealtimed(['--check-config', ...args], { cwd: bench })));
  results.forEach((r, i) => {
    const [args, re] = cases[i];
    assert.equal(r.code, 78, `${args.join(' ')}: exit ${r.code}\n${r.output}`);
    assert.match(r.output, re, args.join(' '));
  });
  const ok = await runRealtimed(['--check-config'], { cwd: bench });
  assert.equal(ok.code, 0, ok.output);
});
