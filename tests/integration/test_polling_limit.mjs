// A long-polling client that stops polling must not make the server buffer
// without bound: past out_hard_limit its session is closed (the next request
// gets "Session ID unknown"), and other clients carry on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { freePort, startRealtimed, waitFor } from '../lib/procs.mjs';

let rt, base;
before(async () => {
  const port = await freePort();
  rt = await startRealtimed(['--conformance', '--port', String(port), '--listen-host', '127.0.0.1',
    '--out-hard-limit', '65536', '--ping-interval', '20000', '--ping-timeout', '20000',
    '--connect-timeout', '20000']);
  base = `http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`;
});
after(async () => {
  const r = await rt.stop();
  assert.equal(r.code, 0, rt.output());
});

test('a polling session that stops polling is closed past out_hard_limit', async () => {
  const hs = await (await fetch(base)).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const url = `${base}&sid=${sid}`;
  const post = (body) => fetch(url, { method: 'POST', body }).then((r) => r.text());
  assert.equal(await post('40'), 'ok');
  assert.match(await (await fetch(url)).text(), /^40\{"sid":/); // CONNECT reply (+ auth event)
  assert.equal(await post('42["join","slow"]'), 'ok');
  // From now on the raw client never polls. A normal client floods the room.
  const sender = io(url.replace(/\/socket\.io\/.*/, ''), { transports: ['websocket'] });
  await new Promise((r) => sender.on('connect', r));
  const big = 'x'.repeat(10000);
  for (let i = 0; i < 10; i++) await sender.emitWithAck('broadcast', 'slow', 'flood', big);
  // 10 x ~10 KB > 64 KiB: the session is gone.
  await waitFor(async () => (await fetch(url)).status === 400);
  const r = await fetch(url);
  assert.equal(r.status, 400);
  assert.deepEqual(await r.json(), { code: 1, message: 'Session ID unknown' });
  assert.ok(sender.connected, 'the other client is unaffected');
  assert.equal(await sender.emitWithAck('message-with-ack', 1), 1);
  assert.match(rt.output(), /closing a polling session with \d+ bytes unpolled/);
  sender.close();
});
