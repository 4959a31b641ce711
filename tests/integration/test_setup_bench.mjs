// `realtimed setup-bench`: rewrites the socketio command in the files bench
// generates (Procfile, config/supervisor.conf, config/systemd/*.service) and
// nothing else; idempotent, one-time backups, modes kept, --check and
// --dry-run; then the rewritten supervisor program run by a real supervisord.
// The fixtures are written here after bench's templates (v5.x, and the
// `bench socketio` spelling of v5.31): see /work/notes/bench-templates.md.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ROOT, makeBench, tempDir, freePort, startRedis, startFakeFrappe, waitFor, sleep,
} from '../lib/procs.mjs';

const BIN = process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed');

function run(args, opts = {}) {
  return spawnSync(BIN, ['setup-bench', ...args], { encoding: 'utf8', ...opts });
}

// ---------------------------------------------------------------- fixtures

const NODE = '/usr/bin/node';

// bench/config/templates/Procfile as rendered by bench 5.x (the redis_socketio
// line is the 5.7–5.16 one, which must stay).
const procfile = (cmd = `${NODE} apps/frappe/socketio.js`) => `
redis_cache: redis-server config/redis_cache.conf
redis_socketio: redis-server config/redis_socketio.conf
redis_queue: redis-server config/redis_queue.conf


web: bench serve  --port 8000

socketio: ${cmd}

watch: bench watch

schedule: bench schedule
worker:  bench worker 1>> logs/worker.log 2>> logs/worker.error.log
`;

// bench/config/templates/supervisor.conf (a representative part) rendered for
// the bench at b; node: null leaves the socketio program out, as bench does
// when no node is on PATH.
function supervisorConf(b, { cmd = `${NODE} ${b}/apps/frappe/socketio.js`, node = true, user = 'frappe' } = {}) {
  const name = path.basename(b);
  return `; Notes:
; priority=1 --> Lower priorities indicate programs that start first and shut down last

[program:${name}-frappe-web]
command=${b}/env/bin/gunicorn -b 127.0.0.1:8000 -w 2 -t 120 frappe.app:application --preload
priority=4
autostart=true
autorestart=true
stdout_logfile=${b}/logs/web.log
stderr_logfile=${b}/logs/web.error.log
user=${user}
directory=${b}/sites

[program:${name}-redis-socketio]
command=/usr/bin/redis-server ${b}/config/redis_socketio.conf
priority=1
user=${user}
directory=${b}/sites
${node ? `
[program:${name}-node-socketio]
command=${cmd}
priority=4
autostart=true
autorestart=true
stdout_logfile=${b}/logs/node-socketio.log
stderr_logfile=${b}/logs/node-socketio.error.log
user=${user}
directory=${b}
startretries=10
` : ''}
[group:${name}-web]
programs=${name}-frappe-web${node ? `,${name}-node-socketio` : ''}
`;
}

// bench/config/templates/systemd/frappe-bench-node-socketio.service
const socketioUnit = (b, cmd = `${NODE} ${b}/apps/frappe/socketio.js`) => `[Unit]
After=${path.basename(b)}-frappe-web.service
Description="${path.basename(b)}-node-socketio"
PartOf=${path.basename(b)}-web.target

[Service]
User=frappe
Group=frappe
Restart=always
ExecStart=${cmd}
StandardOutput=file:${b}/logs/node-socketio.log
StandardError=file:${b}/logs/node-socketio.error.log
WorkingDirectory=${b}
`;

const workerUnit = (b) => `[Unit]
Description="${path.basename(b)}-frappe-short-worker %I"

[Service]
User=frappe
ExecStart=/usr/local/bin/bench worker --queue short
WorkingDirectory=${b}
`;

/** A bench with all three kinds of file, as `bench setup production` + systemd
 * leave it; opts (or opts(benchDir)) choose the commands. */
function fullBench(opts = {}) {
  const b = makeBench();
  if (typeof opts === 'function') opts = opts(b);
  const name = path.basename(b);
  fs.mkdirSync(path.join(b, 'config/systemd'), { recursive: true });
  fs.writeFileSync(path.join(b, 'Procfile'), procfile(opts.procfileCmd));
  fs.writeFileSync(path.join(b, 'config/supervisor.conf'), supervisorConf(b, opts));
  fs.writeFileSync(path.join(b, `config/systemd/${name}-node-socketio.service`), socketioUnit(b, opts.unitCmd));
  fs.writeFileSync(path.join(b, `config/systemd/${name}-frappe-short-worker@.service`), workerUnit(b));
  fs.writeFileSync(path.join(b, `config/systemd/${name}.target`), '[Unit]\nAfter=network.target\n');
  return { b, name, unit: path.join(b, `config/systemd/${name}-node-socketio.service`) };
}

const read = (f) => fs.readFileSync(f, 'utf8');
const mode = (f) => fs.statSync(f).mode & 0o7777;
/** Every file under dir (relative path -> content). */
function snapshot(dir) {
  const out = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const full = path.join(e.parentPath ?? e.path, e.name);
    if (e.isFile()) out[path.relative(dir, full)] = read(full);
  }
  return out;
}

// ---------------------------------------------------------------- rewriting

test('rewrites the socketio command in Procfile, supervisor.conf and the unit; every other byte stays', () => {
  const { b, name, unit } = fullBench();
  const before = snapshot(b);
  const r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, new RegExp(`^bench ${b}, realtimed ${BIN}\n`));
  assert.match(r.stdout, /^Procfile: changed \(original kept as Procfile\.pre-realtimed\)$/m);
  assert.match(r.stdout, /^config\/supervisor\.conf: changed \(original kept as config\/supervisor\.conf\.pre-realtimed\)$/m);
  assert.match(r.stdout, new RegExp(`^config/systemd/${name}-node-socketio\\.service: changed `, 'm'));
  // the worker unit has no entry: not reported one by one
  assert.doesNotMatch(r.stdout, /short-worker/);
  assert.match(r.stdout, /supervisorctl reread && sudo supervisorctl update/);
  assert.match(r.stdout, new RegExp(`systemctl restart ${name}-node-socketio\\.service`));
  assert.match(r.stdout, /run `realtimed setup-bench` after each/);

  // Exactly the expected files, byte for byte: only the command changed.
  assert.equal(read(path.join(b, 'Procfile')), procfile(BIN));
  assert.equal(read(path.join(b, 'config/supervisor.conf')), supervisorConf(b, { cmd: BIN }));
  assert.equal(read(unit), socketioUnit(b, BIN));
  const after = snapshot(b);
  const changed = ['Procfile', 'config/supervisor.conf', path.relative(b, unit)];
  for (const f of changed) assert.equal(after[`${f}.pre-realtimed`], before[f], `backup of ${f}`);
  for (const [f, text] of Object.entries(before)) if (!changed.includes(f)) assert.equal(after[f], text, f);
  assert.deepEqual(Object.keys(after).sort(), [...Object.keys(before), ...changed.map((f) => `${f}.pre-realtimed`)].sort());
});

test('a second run changes nothing and says so', () => {
  const { b, unit } = fullBench();
  assert.equal(run(['--bench', b]).status, 0);
  const once = snapshot(b);
  const inode = fs.statSync(path.join(b, 'config/supervisor.conf')).ino;
  const r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Procfile: already realtimed$/m);
  assert.match(r.stdout, /^config\/supervisor\.conf: already realtimed$/m);
  assert.match(r.stdout, new RegExp(`^${path.relative(b, unit).replace(/\./g, '\\.')}: already realtimed$`, 'm'));
  assert.match(r.stdout, /^nothing to change$/m);
  assert.doesNotMatch(r.stdout, /changed|restart what/);
  assert.deepEqual(snapshot(b), once);
  assert.equal(fs.statSync(path.join(b, 'config/supervisor.conf')).ino, inode, 'the file was not even replaced');
});

test('after bench regenerates a file: rewritten again, the first backup is kept', () => {
  const { b } = fullBench();
  const conf = path.join(b, 'config/supervisor.conf');
  const original = read(conf);
  assert.equal(run(['--bench', b]).status, 0);
  // `bench setup supervisor` again, with a different node this time
  fs.writeFileSync(conf, supervisorConf(b, { cmd: `/opt/node/bin/node ${b}/apps/frappe/socketio.js` }));
  const r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^config\/supervisor\.conf: changed$/m); // no new backup
  assert.equal(read(conf), supervisorConf(b, { cmd: BIN }));
  assert.equal(read(`${conf}.pre-realtimed`), original);
});

test('a backup that already exists is never overwritten', () => {
  const { b } = fullBench();
  fs.writeFileSync(path.join(b, 'Procfile.pre-realtimed'), 'operator kept this\n');
  const r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Procfile: changed$/m);
  assert.equal(read(path.join(b, 'Procfile.pre-realtimed')), 'operator kept this\n');
});

test('file modes are kept, on the file and on its backup', () => {
  const { b, unit } = fullBench();
  const conf = path.join(b, 'config/supervisor.conf');
  fs.chmodSync(conf, 0o640);
  fs.chmodSync(path.join(b, 'Procfile'), 0o600);
  fs.chmodSync(unit, 0o644);
  assert.equal(run(['--bench', b]).status, 0);
  assert.equal(mode(conf), 0o640);
  assert.equal(mode(`${conf}.pre-realtimed`), 0o640);
  assert.equal(mode(path.join(b, 'Procfile')), 0o600);
  assert.equal(mode(path.join(b, 'Procfile.pre-realtimed')), 0o600);
  assert.equal(mode(unit), 0o644);
  // no temp file left behind
  assert.deepEqual(fs.readdirSync(path.join(b, 'config')).filter((f) => f.includes('realtimed-')), []);
});

test('run as root: the bench user keeps owning the files and their backups', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
  const { b } = fullBench();
  const conf = path.join(b, 'config/supervisor.conf');
  fs.chownSync(conf, 65534, 65534);
  assert.equal(run(['--bench', b]).status, 0);
  for (const f of [conf, `${conf}.pre-realtimed`]) {
    const st = fs.statSync(f);
    assert.deepEqual([st.uid, st.gid], [65534, 65534], f);
  }
});

test('a symlinked file is edited through the link, which stays a link', () => {
  const { b } = fullBench();
  const conf = path.join(b, 'config/supervisor.conf');
  const real = path.join(b, 'config/supervisor.real.conf');
  fs.renameSync(conf, real);
  fs.symlinkSync('supervisor.real.conf', conf);
  const r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^config/supervisor\\.conf: changed \\(original kept as ${fs.realpathSync(real)}\\.pre-realtimed\\)$`, 'm'));
  assert.ok(fs.lstatSync(conf).isSymbolicLink());
  assert.equal(read(real), supervisorConf(b, { cmd: BIN }));
  assert.ok(fs.existsSync(`${real}.pre-realtimed`));
});

// ---------------------------------------------------------------- --check and --dry-run

test('--check: exit 1 while a file starts the Node server, 0 after the rewrite; writes nothing', () => {
  const { b, name } = fullBench();
  const before = snapshot(b);
  let r = run(['--bench', b, '--check']);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^Procfile: starts node apps\/frappe\/socketio\.js \(line 9\)$/m);
  assert.match(r.stdout, /^config\/supervisor\.conf: starts node apps\/frappe\/socketio\.js \(line 21\)$/m);
  assert.match(r.stdout, new RegExp(`^config/systemd/${name}-node-socketio\\.service: starts node .* \\(line 10\\)$`, 'm'));
  assert.match(r.stderr, /3 files start Frappe's own realtime server .*run `realtimed setup-bench`/);
  assert.deepEqual(snapshot(b), before);

  assert.equal(run(['--bench', b]).status, 0);
  r = run(['--bench', b, '--check']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.stdout.match(/already realtimed/g).length, 3);

  // one file reverted by bench: exit 1 again, naming it
  fs.writeFileSync(path.join(b, 'Procfile'), procfile());
  r = run(['--bench', b, '--check']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /1 file starts Frappe's own realtime server/);
});

test('--dry-run prints the changed lines as a diff and writes nothing', () => {
  const { b, name } = fullBench();
  const before = snapshot(b);
  const r = run(['--bench', b, '--dry-run']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\(dry run: nothing is written\)/);
  assert.ok(r.stdout.includes(`Procfile: would change (1 line)
--- a/Procfile
+++ b/Procfile
@@ -9 +9 @@
-socketio: ${NODE} apps/frappe/socketio.js
+socketio: ${BIN}
`), r.stdout);
  assert.ok(r.stdout.includes(`@@ -21 +21 @@
-command=${NODE} ${b}/apps/frappe/socketio.js
+command=${BIN}
`), r.stdout);
  assert.ok(r.stdout.includes(`--- a/config/systemd/${name}-node-socketio.service`));
  assert.ok(r.stdout.includes(`-ExecStart=${NODE} ${b}/apps/frappe/socketio.js\n+ExecStart=${BIN}\n`));
  assert.deepEqual(snapshot(b), before);
});

// ---------------------------------------------------------------- what is (not) an entry

test('supervisor.conf without a socketio program (bench found no node): "no socketio entry", --check 0', () => {
  const b = makeBench();
  fs.mkdirSync(path.join(b, 'config'));
  const text = supervisorConf(b, { node: false });
  fs.writeFileSync(path.join(b, 'config/supervisor.conf'), text);
  let r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Procfile: not found$/m);
  assert.match(r.stdout, /^config\/supervisor\.conf: no socketio entry$/m);
  assert.match(r.stdout, /^config\/systemd\/: not found$/m);
  assert.match(r.stdout, /^nothing to change$/m);
  assert.equal(read(path.join(b, 'config/supervisor.conf')), text, 'redis-socketio untouched');
  assert.ok(!fs.existsSync(path.join(b, 'config/supervisor.conf.pre-realtimed')));
  r = run(['--bench', b, '--check']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('bench 5.31 `bench socketio` and the Python server are replaced too; env and redirections kept', () => {
  const { b, unit } = fullBench((dir) => ({
    procfileCmd: 'FOO=1 bench socketio 1>> logs/socketio.log',
    cmd: '/home/frappe/.local/bin/bench socketio',
    unitCmd: `-${dir}/env/bin/python3.11 -u -m frappe.realtime.server`,
  }));
  let r = run(['--bench', b, '--check']);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /^Procfile: starts bench socketio/m);
  assert.match(r.stdout, /: starts Frappe's Python realtime server \(line 10\)$/m);
  r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(read(path.join(b, 'Procfile')), procfile(`FOO=1 ${BIN} 1>> logs/socketio.log`));
  assert.equal(read(path.join(b, 'config/supervisor.conf')), supervisorConf(b, { cmd: BIN }));
  assert.equal(read(unit), socketioUnit(b, `-${BIN}`)); // systemd's "-" prefix stays
});

test('commands that only look alike are left alone', () => {
  const b = makeBench();
  const text = [
    '# socketio: /usr/bin/node apps/frappe/socketio.js',
    'socketio_old: /usr/bin/node apps/other/socketio.js',
    'helper: /usr/bin/node tools/x.js apps/frappe/socketio.js',
    'bench_watch: bench watch socketio',
    'py: python3 -m frappe.utils.bench_helper',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(b, 'Procfile'), text);
  const r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Procfile: no socketio entry$/m);
  assert.equal(read(path.join(b, 'Procfile')), text);
});

test('an entry already on realtimed at another path gets the new path and keeps its flags; CRLF kept', () => {
  const b = makeBench();
  fs.writeFileSync(path.join(b, 'Procfile'), 'web: bench serve\r\nsocketio: /opt/old/realtimed --workers auto\r\n');
  const r = run(['--bench', b]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Procfile: changed/m);
  assert.equal(read(path.join(b, 'Procfile')), `web: bench serve\r\nsocketio: ${BIN} --workers auto\r\n`);
  assert.equal(run(['--bench', b, '--check']).status, 0);
});

// ---------------------------------------------------------------- bench root, binary, errors

test('the bench root: working directory, FRAPPE_BENCH_ROOT, --bench', () => {
  for (const how of ['cwd', 'env', 'flag']) {
    const { b } = fullBench();
    const r = how === 'cwd' ? run([], { cwd: b })
      : how === 'env' ? run([], { cwd: os.tmpdir(), env: { ...process.env, FRAPPE_BENCH_ROOT: b } })
        : run([`--bench=${b}`], { cwd: os.tmpdir() });
    assert.equal(r.status, 0, `${how}: ${r.stderr}`);
    assert.equal(read(path.join(b, 'Procfile')), procfile(BIN), how);
  }
});

test('not a bench: exit 78 and the message frappe_start uses', () => {
  const d = tempDir();
  fs.writeFileSync(path.join(d, 'Procfile'), procfile());
  let r = run([], { cwd: d });
  assert.equal(r.status, 78);
  assert.equal(r.stderr, `realtimed setup-bench: ${fs.realpathSync(d)} is not a Frappe bench (no sites/ folder): `
    + 'run it in the bench root or pass --bench DIR\n');
  assert.equal(r.stdout, '');
  assert.equal(read(path.join(d, 'Procfile')), procfile());
  r = run(['--bench', path.join(d, 'nope')]);
  assert.equal(r.status, 78);
  assert.match(r.stderr, /bench directory .*nope does not exist/);
});

test('--binary: kept as given (a symlink stays a symlink); unusable paths refused with 64', () => {
  const { b } = fullBench();
  const d = tempDir();
  fs.symlinkSync(BIN, path.join(d, 'realtimed'));
  let r = run(['--bench', b, '--binary', path.join(d, 'realtimed')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(read(path.join(b, 'Procfile')), procfile(path.join(d, 'realtimed')));
  // relative: made absolute against the working directory
  r = run(['--bench', b, '--binary', './realtimed'], { cwd: d });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Procfile: already realtimed/);

  const spaced = path.join(d, 'with space');
  fs.mkdirSync(spaced);
  fs.copyFileSync(BIN, path.join(spaced, 'realtimed'));
  fs.chmodSync(path.join(spaced, 'realtimed'), 0o755);
  r = run(['--bench', b, '--binary', path.join(spaced, 'realtimed')]);
  assert.equal(r.status, 64);
  assert.match(r.stderr, /cannot go unquoted into a Procfile/);
  r = run(['--bench', b, '--binary', path.join(d, 'missing')]);
  assert.equal(r.status, 64);
  assert.match(r.stderr, /is not an executable file/);
  assert.equal(run(['--bench', b, '--bogus']).status, 64);
  assert.equal(run(['--bench']).status, 64);
  assert.equal(read(path.join(b, 'Procfile')), procfile(path.join(d, 'realtimed')));
});

test('--help names the files, when to re-run and --check', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0);
  for (const s of ['Procfile', 'config/supervisor.conf', 'config/systemd/*.service', 'bench setup production',
    '--check', '--dry-run', '--binary', '.pre-realtimed']) assert.ok(r.stdout.includes(s), s);
});

test('a file it cannot write: exit 73, the file unchanged, the others still done', { skip: process.getuid?.() === 0 && 'root writes anywhere' }, () => {
  const { b } = fullBench();
  fs.chmodSync(path.join(b, 'config'), 0o555);
  try {
    const r = run(['--bench', b]);
    assert.equal(r.status, 73);
    assert.match(r.stderr, /config\/supervisor\.conf: cannot write/);
    assert.equal(read(path.join(b, 'Procfile')), procfile(BIN));
    assert.equal(read(path.join(b, 'config/supervisor.conf')), supervisorConf(b));
  } finally {
    fs.chmodSync(path.join(b, 'config'), 0o755);
  }
});

// ---------------------------------------------------------------- a real supervisord

const SUPERVISORD = spawnSync('sh', ['-c', 'command -v supervisord'], { encoding: 'utf8' }).stdout.trim();
const live = new Set();
after(() => { for (const p of live) p.kill('SIGKILL'); });

test('supervisord runs the rewritten program; supervisorctl stop makes realtimed exit 0', {
  skip: !SUPERVISORD && 'supervisord not installed (Debian package supervisor)',
  timeout: 60000,
}, async () => {
  const [redis, fake] = await Promise.all([startRedis(), startFakeFrappe()]);
  try {
    const port = await freePort();
    const b = makeBench({ common_site_config: { redis_queue: redis.url, webserver_port: fake.port, socketio_port: port } });
    fs.mkdirSync(path.join(b, 'logs'));
    fs.mkdirSync(path.join(b, 'config'));
    const name = path.basename(b);
    // bench's file, with the current user (supervisord is not root-only here)
    // and the web program off: there is no gunicorn in this bench.
    const conf = supervisorConf(b, { user: os.userInfo().username }).replace(
      /(\[program:[^\]]*-frappe-web\][^[]*?)autostart=true/, '$1autostart=false').replace(
      /(\[program:[^\]]*-redis-socketio\]\n)/, '$1autostart=false\n');
    fs.writeFileSync(path.join(b, 'config/supervisor.conf'), conf);
    const r = run(['--bench', b]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(read(path.join(b, 'config/supervisor.conf')), new RegExp(`\ncommand=${BIN}\n`));

    // supervisord's own config, like /etc/supervisor/supervisord.conf with
    // conf.d/<bench>.conf -> config/supervisor.conf, in a temp dir.
    const d = tempDir('realtimed-supervisor-');
    const sock = path.join(d, 'supervisor.sock');
    const main = path.join(d, 'supervisord.conf');
    fs.writeFileSync(main, `[unix_http_server]
file=${sock}
chmod=0700

[supervisord]
logfile=${d}/supervisord.log
pidfile=${d}/supervisord.pid
childlogdir=${d}
nodaemon=true
${process.getuid() === 0 ? 'user=root\n' : ''}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://${sock}

[include]
files=${b}/config/supervisor.conf
`);
    const sd = spawn(SUPERVISORD, ['-c', main], { stdio: 'ignore' });
    live.add(sd);
    const ctl = (...a) => spawnSync('supervisorctl', ['-c', main, ...a], { encoding: 'utf8' });
    const prog = `${name}-web:${name}-node-socketio`;
    await waitFor(() => /RUNNING/.test(ctl('status', prog).stdout), 15000, 100);
    const health = await waitFor(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`).catch(() => null);
      return res && res.status === 200 && res.text();
    }, 10000, 100);
    assert.match(health, /^0\{"sid":"/);
    await sleep(200);
    assert.match(read(path.join(b, 'logs/node-socketio.log')) + read(path.join(b, 'logs/node-socketio.error.log')),
      new RegExp(`Realtime service listening on: ${port}`));

    const stop = ctl('stop', prog);
    assert.match(stop.stdout, /stopped/, stop.stdout + stop.stderr);
    assert.match(ctl('status', prog).stdout, /STOPPED/);
    // supervisord logs how the process ended: a clean exit, not a kill
    const log = await waitFor(() => {
      const t = read(path.join(d, 'supervisord.log'));
      return /stopped: \S*node-socketio/.test(t) && t;
    }, 5000, 50);
    assert.match(log, /stopped: \S*node-socketio \(exit status 0\)/, log);
    ctl('shutdown');
    await new Promise((resolve) => (sd.exitCode !== null ? resolve() : sd.once('exit', resolve)));
    live.delete(sd);
  } finally {
    await Promise.all([redis.stop(), fake.stop()]);
  }
});
