// The service files in contrib/: the supervisor program block run by
// Debian's supervisord (running, reload by `supervisorctl signal HUP`, a
// clean stop), the systemd unit checked by systemd-analyze, and socket
// activation through systemd-socket-activate (one process and --workers 2).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import {
  ROOT, makeBench, tempDir, freePort, startRedis, startFakeFrappe, waitFor, sleep,
} from '../lib/procs.mjs';
import { USERS } from '../lib/frappe_helpers.mjs';

const BIN = process.env.REALTIMED_BIN || path.join(ROOT, 'build/realtimed');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
const read = (p) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '');
const live = new Set();
after(() => { for (const p of live) p.kill('SIGKILL'); });

async function benchStack() {
  const [redis, fake] = await Promise.all([startRedis(), startFakeFrappe()]);
  await fake.config({ users: USERS });
  const port = await freePort();
  const bench = makeBench({
    common_site_config: { redis_queue: redis.url, webserver_port: fake.port, socketio_port: port },
  });
  return { redis, fake, port, bench, stop: () => Promise.all([redis.stop(), fake.stop()]) };
}

async function handshake(port) {
  const res = await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`).catch(() => null);
  return res && res.status === 200 && (await res.text());
}

function frappeClient(port) {
  return io(`http://127.0.0.1:${port}/site1.local`, {
    forceNew: true, reconnection: false, transports: ['websocket'],
    extraHeaders: { Cookie: 'sid=sid-alice', Origin: `http://127.0.0.1:${port}`, 'X-Frappe-Site-Name': 'site1.local' },
  });
}

test('contrib/supervisor-realtimed.conf under supervisord: running, HUP reloads, stop exits 0', {
  skip: !has('supervisord') && 'supervisord not installed (Debian package supervisor)',
  timeout: 60000,
}, async () => {
  const st = await benchStack();
  try {
    const b = st.bench;
    fs.mkdirSync(path.join(b, 'logs'));
    const cfgFile = path.join(b, 'realtimed.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ log_level: 'info' }));
    // the shipped block, pointed at this bench, binary and user
    const block = read(path.join(ROOT, 'contrib/supervisor-realtimed.conf'))
      .replace(/^command=.*$/m, `command=${BIN} --config ${cfgFile}`)
      .replaceAll('/home/frappe/frappe-bench', b)
      .replace(/^user=.*$/m, `user=${os.userInfo().username}`);
    const d = tempDir('realtimed-supervisor-');
    fs.writeFileSync(path.join(d, 'realtimed.conf'), block);
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
files=${d}/realtimed.conf
`);
    const sd = spawn('supervisord', ['-c', main], { stdio: 'ignore' });
    live.add(sd);
    const ctl = (...a) => spawnSync('supervisorctl', ['-c', main, ...a], { encoding: 'utf8' });
    const prog = 'frappe-bench-frappe-node-socketio';
    await waitFor(() => /RUNNING/.test(ctl('status', prog).stdout), 15000, 100);
    assert.match(await waitFor(() => handshake(st.port), 10000, 100), /^0\{"sid":"/);
    const pid = ctl('pid', prog).stdout.trim();
    const errlog = path.join(b, 'logs/node-socketio.error.log');

    // a reload: the same process, the new level applied
    fs.writeFileSync(cfgFile, JSON.stringify({ log_level: 'debug' }));
    const sig = ctl('signal', 'HUP', prog);
    assert.match(sig.stdout, /signalled/, sig.stdout + sig.stderr);
    await waitFor(() => /SIGHUP: configuration reloaded: 1 change applied/.test(read(errlog)), 5000, 50);
    assert.equal(ctl('pid', prog).stdout.trim(), pid);
    assert.match(ctl('status', prog).stdout, /RUNNING/);

    // a connected client, then a stop: it drains and exits 0 before stopwaitsecs
    const c = frappeClient(st.port);
    await new Promise((resolve, reject) => { c.once('connect', resolve); c.once('connect_error', reject); });
    const gone = new Promise((resolve) => c.once('disconnect', resolve));
    const t0 = Date.now();
    const stop = ctl('stop', prog);
    assert.match(stop.stdout, /stopped/, stop.stdout + stop.stderr);
    assert.equal(await gone, 'transport close');
    assert.ok(Date.now() - t0 < 10000, `stop took ${Date.now() - t0} ms`);
    const log = await waitFor(() => {
      const t = read(path.join(d, 'supervisord.log'));
      return /stopped: \S*node-socketio/.test(t) && t;
    }, 5000, 50);
    assert.match(log, /stopped: \S*node-socketio \(exit status 0\)/, log);
    ctl('shutdown');
    await new Promise((resolve) => (sd.exitCode !== null ? resolve() : sd.once('exit', resolve)));
    live.delete(sd);
  } finally {
    await st.stop();
  }
});

test('contrib/realtimed.service and .socket pass systemd-analyze verify', {
  skip: !has('systemd-analyze') && 'systemd-analyze not installed',
}, () => {
  const d = tempDir('realtimed-unit-');
  for (const f of ['realtimed.service', 'realtimed.socket']) {
    const text = read(path.join(ROOT, 'contrib', f)).replace(/^ExecStart=.*$/m, `ExecStart=${BIN}`);
    fs.writeFileSync(path.join(d, f), text);
  }
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', path.join(d, 'realtimed.socket'),
    path.join(d, 'realtimed.service')], { encoding: 'utf8' });
  // Only the unit files are judged: the host's own units (or the absence of
  // a running systemd) may add lines of their own.
  const ours = (r.stdout + r.stderr).split('\n').filter((l) => /realtimed\.(service|socket)/.test(l));
  assert.deepEqual(ours, [], ours.join('\n'));
});

for (const workers of [1, 2]) {
  test(`socket activation (systemd-socket-activate), --workers ${workers}`, {
    skip: !has('systemd-socket-activate') && 'systemd-socket-activate not installed',
    timeout: 30000,
  }, async () => {
    const st = await benchStack();
    try {
      const port = await freePort(); // systemd's, not socketio_port
      const p = spawn('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, BIN, '--workers', String(workers)],
        { cwd: st.bench, stdio: ['ignore', 'pipe', 'pipe'] });
      live.add(p);
      let out = '';
      p.stdout.on('data', (b) => { out += b; });
      p.stderr.on('data', (b) => { out += b; });
      // systemd-socket-activate starts the program on the first connection
      assert.match(await waitFor(() => handshake(port), 10000, 100), /^0\{"sid":"/);
      await waitFor(() => /listening on: the socket systemd passed/.test(out), 5000, 50);
      const c = frappeClient(port);
      await new Promise((resolve, reject) => { c.once('connect', resolve); c.once('connect_error', reject); });
      c.close();
      // the bench's own socketio_port is not opened
      assert.equal(await handshake(st.port), null);
      p.kill('SIGTERM');
      const code = await new Promise((resolve) => p.once('exit', (c2) => resolve(c2)));
      live.delete(p);
      assert.equal(code, 0, out);
    } finally {
      await st.stop();
    }
  });
}

test('LISTEN_FDS naming a descriptor that is not a listening socket is refused', async () => {
  const bench = makeBench({});
  const r = spawnSync('sh', ['-c', `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" 3</dev/null`, BIN],
    { cwd: bench, encoding: 'utf8', timeout: 5000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /fd 3 is not a listening stream socket/);
  await sleep(0);
});

test('--check-config --probe asks Redis and each site\'s web server; 69 when one does not answer', {
  timeout: 30000,
}, async () => {
  const st = await benchStack();
  try {
    const probe = () => spawnSync(BIN, ['--check-config', '--probe', '--webserver-host', '127.0.0.1'],
      { cwd: st.bench, encoding: 'utf8', timeout: 15000 });
    let r = probe();
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /probe: redis_queue: reachable \(db 0\); socketio_auth_secret is (set|not set yet)/);
    assert.match(r.stdout, new RegExp(`probe: site site1\\.local: web server 127\\.0\\.0\\.1:${st.fake.port} answers get_user_info with HTTP \\d+`));
    await st.fake.stop();
    r = probe();
    assert.equal(r.status, 69, r.stdout + r.stderr);
    assert.match(r.stdout, /probe: site site1\.local: web server: cannot connect to 127\.0\.0\.1:\d+: Connection refused/);
    await st.redis.stop();
    r = probe();
    assert.equal(r.status, 69);
    assert.match(r.stdout, /probe: redis_queue: cannot reach Redis at 127\.0\.0\.1: Connection refused/);
    // without --probe nothing is contacted: the values are fine
    assert.equal(spawnSync(BIN, ['--check-config'], { cwd: st.bench, encoding: 'utf8' }).status, 0);
  } finally {
    await st.stop().catch(() => {});
  }
});
