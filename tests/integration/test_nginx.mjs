// Several machines behind nginx (docs/scaling.md): three realtimed nodes
// (--node-id n1..n3) on one Redis, Debian's nginx in front routing polling
// requests by the sid's prefix (map $arg_sid) and new handshakes round robin.
// No "Session ID unknown", Frappe events reach every client once and in
// order, and a node killed with SIGKILL loses its clients to the others.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { startNginx } from '../lib/procs.mjs';
import {
  startStack, startRealtimed, freePort, waitFor, sleep, collect, SITE1, T,
} from '../lib/frappe_helpers.mjs';

let stack;
let nginx;
let nport;
const nodes = [];

export const nginxConfig = (ports, listen) => `
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  map $arg_sid $realtimed { ${ports.map((_, i) => `~^n${i + 1} rt_n${i + 1};`).join(' ')} default rt_any; }
  upstream rt_any { ${ports.map((p) => `server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;`).join(' ')} keepalive 16; }
  ${ports.map((p, i) => `upstream rt_n${i + 1} { server 127.0.0.1:${p}; keepalive 8; }`).join('\n  ')}
  server {
    listen 127.0.0.1:${listen};
    location /socket.io {
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 120s;
      proxy_pass http://$realtimed;
    }
  }`;

before(async () => {
  stack = await startStack({ args: ['--node-id', 'n1', '--log-level', 'info'] });
  nodes.push(stack.rt);
  const ports = [stack.port];
  for (let i = 2; i <= 3; i++) {
    const port = await freePort();
    nodes.push(await startRealtimed(['--webserver-host', '127.0.0.1', '--port', String(port), '--node-id', `n${i}`,
      '--log-level', 'info'], { cwd: stack.bench, port }));
    ports.push(port);
  }
  await waitFor(async () => (await stack.redis.command('PUBSUB', 'NUMSUB', 'events'))[1] === 3, 10000);
  nport = await freePort();
  nginx = await startNginx(nginxConfig(ports, nport), { port: nport });
});

after(async () => {
  await nginx?.stop();
  for (const n of nodes.slice(1)) if (n.isRunning()) await n.stop();
  await stack?.stop();
});

function client(transports, opts = {}) {
  return io(`http://127.0.0.1:${nport}/${SITE1}`, {
    forceNew: true, reconnection: false, timeout: T, transports,
    extraHeaders: { Cookie: 'sid=sid-alice', Origin: `http://127.0.0.1:${nport}`, 'X-Frappe-Site-Name': SITE1 },
    ...opts,
  });
}

test('200 polling-only clients and 30 that upgrade, through nginx round robin: no session errors', async () => {
  const errors = [];
  const all = [];
  const start = (t, upgrade) => {
    const s = client(t, { upgrade });
    s.on('connect_error', (e) => errors.push(`connect_error ${e.message}`));
    s.on('disconnect', (r) => errors.push(`disconnect ${r}`));
    all.push(s);
    return s;
  };
  for (let i = 0; i < 200; i++) start(['polling'], false);
  for (let i = 0; i < 30; i++) start(['polling', 'websocket'], true);
  await waitFor(() => all.every((s) => s.connected) || errors.length > 0, 30000);
  assert.deepEqual(errors, []);
  await waitFor(() => all.slice(200).every((s) => s.io.engine.transport.name === 'websocket'), 15000);
  assert.deepEqual([...new Set(all.map((s) => s.io.engine.id.slice(0, 2)))].sort(), ['n1', 'n2', 'n3']);
  // several polling cycles each, events both ways
  const got = all.map((s) => collect(s, 'seq'));
  for (let i = 0; i < 20; i++) {
    await stack.redis.publish('events', { event: 'seq', message: i, room: 'all', namespace: SITE1 });
    if (i % 5 === 4) await sleep(50);
  }
  await waitFor(() => got.every((g) => g.length >= 20), 15000);
  await sleep(300);
  for (const g of got) assert.deepEqual(g.map((a) => a[0]), [...Array(20).keys()]);
  const pongs = await Promise.all(all.map((s) => new Promise((resolve) => { s.once('pong', () => resolve(true)); s.emit('ping'); })));
  assert.equal(pongs.length, all.length);
  assert.deepEqual(errors, []);
  for (const s of all) s.close();
});

test('a node killed with SIGKILL: its clients reconnect through nginx to the others', async () => {
  const all = [];
  for (let i = 0; i < 30; i++) {
    const s = client(['polling', 'websocket'], { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500 });
    all.push(s);
  }
  await waitFor(() => all.every((s) => s.connected), 15000);
  const onN3 = all.filter((s) => s.io.engine.id.startsWith('n3'));
  assert.ok(onN3.length > 0, 'round robin gave n3 some clients');
  nodes[2].proc.kill('SIGKILL');
  await waitFor(() => onN3.some((s) => !s.connected), 10000);
  await waitFor(() => all.every((s) => s.connected && !s.io.engine.id.startsWith('n3')), 20000);
  const got = all.map((s) => collect(s, 'after'));
  await stack.redis.publish('events', { event: 'after', message: 1, room: 'all', namespace: SITE1 });
  await waitFor(() => got.every((g) => g.length === 1), 10000);
  for (const s of all) s.close();
});
