// Process helpers for realtimed integration tests (node --test).
// Every process started here is killed, and every temp dir removed, when the
// test process exits; children and their pipes are unref'd so a forgotten
// stop() never keeps the test file from finishing.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FAKE_FRAPPE = path.join(ROOT, 'tests/fake_frappe/fake_frappe.py');

const live = new Set();
const tempDirs = new Set();

function cleanup() {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { cleanup(); process.exit(128 + os.constants.signals[sig]); });
}

export function tempDir(prefix = 'realtimed-test-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Under AddressSanitizer (SAN=1) freed blocks sit in a quarantine (256 MB
// by default) that RSS would show as held: servers whose memory a test
// measures get a small one, so the test sees what realtimed keeps.
export const SAN_ENV = process.env.ASAN_OPTIONS
  ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=8:thread_local_quarantine_size_kb=64` }
  : {};

/** Poll fn (may be async) until it returns a truthy value; returns that value. */
export async function waitFor(fn, ms = 5000, interval = 25) {
  const deadline = Date.now() + ms;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { lastErr = e; }
    if (Date.now() > deadline) {
      throw new Error(`waitFor timed out after ${ms} ms` + (lastErr ? `: ${lastErr.message}` : ''));
    }
    await sleep(interval);
  }
}

/** A port that was free a moment ago (bind 127.0.0.1:0 and release it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves true if a TCP (or unix socket) connect succeeds. */
function canConnect(target) {
  return new Promise((resolve) => {
    const s = net.connect(target);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// Spawn a child whose stdout+stderr are collected as lines.
function launch(cmd, args, opts = {}) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const lines = [];
  const waiters = new Set();
  let done = false;
  const exited = new Promise((resolve) => {
    const finish = (r) => { done = true; live.delete(proc); resolve(r); };
    // 'close' (not 'exit') so the last output lines are in before we resolve.
    proc.once('close', (code, signal) => finish({ code, signal }));
    // A failed spawn (e.g. ENOENT) emits 'error' and never 'exit'.
    proc.once('error', (e) => {
      lines.push(`spawn error: ${e.message}`);
      if (proc.pid === undefined) finish({ code: null, signal: null, error: e });
    });
  });
  for (const stream of [proc.stdout, proc.stderr]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        for (const w of waiters) w(line);
      }
    });
    stream.unref?.();
  }
  proc.unref();
  live.add(proc);

  const output = () => lines.join('\n');
  // Resolves with the regex match of the first line (already seen or future).
  function waitForLine(re, ms = 5000) {
    for (const l of lines) { const m = l.match(re); if (m) return Promise.resolve(m); }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`no line matching ${re} within ${ms} ms; output:\n${output()}`));
      }, ms);
      const w = (l) => {
        const m = l.match(re);
        if (m) { clearTimeout(t); waiters.delete(w); resolve(m); }
      };
      waiters.add(w);
    });
  }
  // SIGTERM, then SIGKILL after killMs; resolves with {code, signal}.
  async function stop(killMs = 5000) {
    if (!done) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), killMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    }
    return exited;
  }
  const isRunning = () => !done;
  return { proc, lines, output, waitForLine, stop, exited, isRunning };
}

// Poll until ready() is true; fail fast with the output if the child exits.
async function untilReady(p, ready, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    if (!p.isRunning()) {
      const { code, signal } = await p.exited;
      throw new Error(`${what} exited (code ${code}, signal ${signal}) before it was ready; output:\n${p.output()}`);
    }
    if (Date.now() > deadline) {
      await p.stop();
      throw new Error(`${what} not ready after ${ms} ms; output:\n${p.output()}`);
    }
    await sleep(25);
  }
}

// ---------------------------------------------------------------- redis

function encodeResp(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

// Parses one RESP reply at buf[pos]; returns [value, nextPos] or null if incomplete.
function parseResp(buf, pos = 0) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const kind = String.fromCharCode(buf[pos]);
  const head = buf.toString('utf8', pos + 1, eol);
  let next = eol + 2;
  if (kind === '+') return [head, next];
  if (kind === '-') return [new Error(head), next];
  if (kind === ':') return [Number(head), next];
  if (kind === '$') {
    const n = Number(head);
    if (n < 0) return [null, next];
    if (buf.length < next + n + 2) return null;
    return [buf.toString('utf8', next, next + n), next + n + 2];
  }
  if (kind === '*') {
    const n = Number(head);
    if (n < 0) return [null, next];
    const arr = [];
    for (let i = 0; i < n; i++) {
      const r = parseResp(buf, next);
      if (!r) return null;
      arr.push(r[0]);
      next = r[1];
    }
    return [arr, next];
  }
  throw new Error(`bad RESP reply: ${buf.toString()}`);
}

/** One redis command on a fresh connection, e.g. redisCommand(port, 'PUBLISH', 'events', json). */
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('redis command timed out')); });
    s.once('error', reject);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf);
      if (!r) return;
      s.destroy();
      if (r[0] instanceof Error) reject(r[0]); else resolve(r[0]);
    });
    s.write(encodeResp(args));
  });
}

/** redis-server on a free port with persistence off. */
export async function startRedis({ port, args = [] } = {}) {
  port ??= await freePort();
  const dir = tempDir('realtimed-redis-');
  let p;
  const boot = async () => {
    p = launch('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no',
      '--bind', '127.0.0.1', '--dir', dir, ...args]);
    await untilReady(p, () => redisCommand(port, 'PING').then((r) => r === 'PONG', () => false), 'redis-server');
  };
  await boot();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get proc() { return p.proc; },
    output: () => p.output(),
    command: (...a) => redisCommand(port, ...a),
    publish: (channel, msg) => redisCommand(port, 'PUBLISH', channel,
      typeof msg === 'string' ? msg : JSON.stringify(msg)),
    stop: () => p.stop(),
    // Same port, empty dataset (nothing is persisted).
    restart: async () => { await p.stop(); await boot(); },
  };
}

// ---------------------------------------------------------------- fake Frappe

/** tests/fake_frappe/fake_frappe.py on a free port; optional initial config. */
export async function startFakeFrappe({ config, verbose = false } = {}) {
  const p = launch('/usr/bin/python3', [FAKE_FRAPPE, '--port', '0', ...(verbose ? ['--verbose'] : [])]);
  const port = Number((await p.waitForLine(/^fake_frappe listening on (\d+)/, 10000).catch(async (e) => {
    await p.stop();
    throw e;
  }))[1]);
  const url = `http://127.0.0.1:${port}`;
  const call = async (method, route, body) => {
    const res = await fetch(url + route, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`fake_frappe ${route}: HTTP ${res.status}`);
    return res.json();
  };
  const fake = {
    port,
    url,
    proc: p.proc,
    output: p.output,
    /** Shallow-merge obj into the config ({replace: true} to replace it). */
    config: (obj, { replace = false } = {}) =>
      call('POST', `/_fake/config${replace ? '?replace=1' : ''}`, obj),
    getConfig: () => call('GET', '/_fake/config'),
    /** Recorded callbacks; endpoint ('get_user_info'|'has_permission') filters by path. */
    requests: async (endpoint) => {
      const all = await call('GET', '/_fake/requests');
      return endpoint ? all.filter((r) => r.path.endsWith(`.${endpoint}`)) : all;
    },
    reset: () => call('POST', '/_fake/reset', {}),
    stop: () => p.stop(),
  };
  if (config) await fake.config(config);
  return fake;
}

// ---------------------------------------------------------------- realtimed

function portFromArgs(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port') return Number(args[i + 1]);
    if (args[i].startsWith('--port=')) return Number(args[i].slice(7));
  }
  return undefined;
}

/**
 * Spawn build/realtimed (or $REALTIMED_BIN). Ready once a connect to the port
 * (from `--port N` in args, or opts.port) or to opts.socketPath succeeds.
 */
export async function startRealtimed(args = [], { env = {}, cwd, port, socketPath, timeout = 10000 } = {}) {
  const bin = process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed');
  port ??= portFromArgs(args);
  if (port === undefined && !socketPath) throw new Error('startRealtimed: pass --port N or opts.port/socketPath');
  const p = launch(bin, args, { cwd, env: { ...process.env, ...env } });
  const target = socketPath ? { path: socketPath } : { port, host: '127.0.0.1' };
  await untilReady(p, () => canConnect(target), 'realtimed', timeout);
  return {
    proc: p.proc,
    port,
    url: port !== undefined ? `http://127.0.0.1:${port}` : undefined,
    lines: p.lines,
    output: p.output,
    waitForLine: p.waitForLine,
    isRunning: p.isRunning,
    exited: p.exited,
    stop: p.stop,
  };
}

// ---------------------------------------------------------------- nginx

/**
 * Debian's nginx in the foreground with a config of ours: `http` is the body
 * of its http block (temp paths, logs and pid are set here). Resolves once
 * `port` accepts connections.
 */
export async function startNginx(http, { port }) {
  const dir = tempDir('realtimed-nginx-');
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, d));
  const conf = `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${http}
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const p = launch('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;']);
  await untilReady(p, () => canConnect({ port, host: '127.0.0.1' }), 'nginx');
  return { ...p, dir, errors: () => fs.readFileSync(path.join(dir, 'error.log'), 'utf8') };
}

// ---------------------------------------------------------------- bench

/**
 * Temp bench dir: config.json, sites/common_site_config.json and one folder
 * (with site_config.json) per site. sites: array of names or {name: site_config}.
 * apps: {name: source folder}, symlinked into apps/ as bench does (names
 * listed in sites/apps.txt). Returns the bench path.
 */
export function makeBench({ common_site_config = {}, config = {}, sites = ['site1.local'], apps } = {}) {
  const dir = tempDir('realtimed-bench-');
  const siteMap = Array.isArray(sites) ? Object.fromEntries(sites.map((s) => [s, {}])) : sites;
  fs.mkdirSync(path.join(dir, 'sites'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 1));
  fs.writeFileSync(path.join(dir, 'sites/common_site_config.json'), JSON.stringify(common_site_config, null, 1));
  for (const [name, sc] of Object.entries(siteMap)) {
    fs.mkdirSync(path.join(dir, 'sites', name));
    fs.writeFileSync(path.join(dir, 'sites', name, 'site_config.json'), JSON.stringify(sc, null, 1));
  }
  if (apps) {
    fs.mkdirSync(path.join(dir, 'apps'));
    for (const [name, src] of Object.entries(apps)) fs.symlinkSync(src, path.join(dir, 'apps', name));
    fs.writeFileSync(path.join(dir, 'sites', 'apps.txt'), `${Object.keys(apps).join('\n')}\n`);
  }
  return dir;
}
