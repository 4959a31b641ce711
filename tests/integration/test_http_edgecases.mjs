// Regressions found in review: pipelined bytes after `Connection: close`,
// a pipelined request behind an answered long-poll, and a ping that
// overflows an unpolled queue (the session must close cleanly).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, startRealtimed, waitFor, sleep } from '../lib/procs.mjs';

let rt, port;
before(async () => {
  port = await freePort();
  rt = await startRealtimed(['--conformance', '--port', String(port), '--listen-host', '127.0.0.1',
    '--out-hard-limit', '65536', '--ping-interval', '300', '--ping-timeout', '2000']);
});
after(async () => {
  const r = await rt.stop();
  assert.equal(r.code, 0, rt.output());
});

function raw() {
  const s = net.connect(port, '127.0.0.1');
  const st = { data: '', ended: false };
  s.setEncoding('latin1');
  s.on('data', (d) => { st.data += d; });
  s.on('end', () => { st.ended = true; });
  s.on('error', () => { st.ended = true; });
  return { s, st };
}
const count = (hay, needle) => hay.split(needle).length - 1;

test('pipelined requests after Connection: close are not answered; the connection ends', async () => {
  const { s, st } = raw();
  s.write('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHo');
  await sleep(50); // the partial head is retained, then completed with more requests behind it
  s.write('st: x\r\nConnection: close\r\n\r\n' +
    'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3));
  await waitFor(() => st.ended, 3000);
  assert.equal(count(st.data, 'HTTP/1.1 '), 1, st.data);
  assert.match(st.data, /^HTTP\/1\.1 200 OK/);
  assert.ok(rt.isRunning());
});

test('a request pipelined behind a parked long-poll is answered right after it', async () => {
  const hs = await (await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const { s, st } = raw();
  s.write(`GET /engine.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\n\r\n` +
    'GET /engine.io/?EIO=5&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(50);
  const t0 = Date.now();
  await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&sid=${sid}`,
    { method: 'POST', body: '4hello' });
  await waitFor(() => count(st.data, 'HTTP/1.1 ') === 2, 2000);
  assert.ok(Date.now() - t0 < 1000, `second answer took ${Date.now() - t0} ms`);
  assert.match(st.data, /4hello/);
  assert.match(st.data, /"code":5/);
  s.destroy();
});

test('a ping that overflows an unpolled queue closes the session cleanly', async () => {
  const hs = await (await fetch(`http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling`)).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const url = `http://127.0.0.1:${port}/engine.io/?EIO=4&transport=polling&sid=${sid}`;
  // The echo fills the queue to exactly out_hard_limit; the next ping overflows it.
  assert.equal(await (await fetch(url, { method: 'POST', body: '4' + 'a'.repeat(65535) })).text(), 'ok');
  await sleep(700);
  const r = await fetch(url);
  assert.equal(r.status, 400);
  assert.deepEqual(await r.json(), { code: 1, message: 'Session ID unknown' });
  assert.ok(rt.isRunning());
});
