// The live-count demo (examples/live-count) in a real browser: Debian's
// chromium, headless, driven by playwright-core. realtimed runs in guest mode
// and serves the page, the JS client and socket.io-client's ESM build; the
// Python publisher sends count=i every 0.2 s. The page must show the count
// going up, keep going after realtimed restarts, and is saved as
// test-output/demo.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  ROOT, freePort, startRedis, startRealtimed, tempDir, waitFor,
} from '../lib/procs.mjs';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const OUT = path.join(ROOT, 'test-output');
const SITE = 'demo';

let redis;
let rt;
let publisher;
let publisherOut = '';
let context;
let port;
let www;
const cwd = tempDir('realtimed-demo-cwd-'); // guest mode: no bench needed

// What scripts/run.sh serves: the page, the client and socket.io-client's ESM build.
function assemble(dir) {
  for (const f of ['examples/live-count/index.html', 'clients/js/realtime.js',
    'tests/node_modules/socket.io-client/dist/socket.io.esm.min.js']) {
    fs.copyFileSync(path.join(ROOT, f), path.join(dir, path.basename(f)));
  }
}

const startServer = () => startRealtimed(['--auth-mode', 'guest', '--default-site', SITE,
  '--static-dir', www, '--redis-queue', redis.url, '--port', String(port),
  '--listen-host', '127.0.0.1', '--log-level', 'notice'], { cwd });

function killPublisher() {
  if (publisher && publisher.exitCode === null && publisher.signalCode === null) publisher.kill('SIGKILL');
}
process.on('exit', killPublisher);

before(async () => {
  www = tempDir('realtimed-demo-www-');
  assemble(www);
  redis = await startRedis();
  port = await freePort();
  rt = await startServer();
  publisher = spawn('/usr/bin/python3', [path.join(ROOT, 'examples/live-count/publisher.py'),
    '--redis', redis.url, '--site', SITE, '--interval', '0.2'], {
    env: { ...process.env, PYTHONPATH: path.join(ROOT, 'clients/python') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const s of [publisher.stdout, publisher.stderr]) s.on('data', (d) => { publisherOut += d; });
  const userDataDir = tempDir('realtimed-chromium-');
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 800, height: 450 },
  });
});

after(async () => {
  await context?.close();
  if (publisher && publisher.exitCode === null) {
    const gone = new Promise((r) => publisher.once('close', r));
    publisher.kill('SIGTERM');
    await gone;
  }
  if (rt?.isRunning()) await rt.stop();
  await redis?.stop();
});

/** Polls the page's "Count: N" until `more` increases past `from` were seen. */
async function countsAfter(page, from, more, ms = 15000) {
  const seen = [];
  await waitFor(async () => {
    const text = (await page.textContent('#count')).trim();
    assert.match(text, /^Count: \d+$/);
    const n = Number(text.slice(7));
    if (n > (seen.length ? seen[seen.length - 1] : from)) seen.push(n);
    return seen.length >= more;
  }, ms, 50);
  return seen;
}

test('the page shows Count: N going up, also after a realtimed restart', async () => {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const res = await page.goto(`http://127.0.0.1:${port}/`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /^text\/html/);
  assert.equal(await page.title(), 'Live count · realtimed');

  await page.waitForSelector('#status.up', { timeout: 10000 });
  assert.equal(await page.textContent('#status'), `live on /${SITE}`);
  const first = Number((await page.textContent('#n')).trim());
  const seen = await countsAfter(page, first, 2);
  assert.ok(seen[1] > seen[0] && seen[0] > first, `increasing: ${first} ${seen}\n${publisherOut}`);

  fs.mkdirSync(OUT, { recursive: true });
  const shot = path.join(OUT, 'demo.png');
  await page.screenshot({ path: shot });
  assert.ok(fs.statSync(shot).size > 1000, 'screenshot written');

  // The browser reconnects by itself to a new realtimed on the same port.
  const r = await rt.stop();
  assert.deepEqual(r, { code: 0, signal: null }, rt.output());
  await page.waitForSelector('#status.down', { timeout: 10000 });
  rt = await startServer();
  await page.waitForSelector('#status.up', { timeout: 20000 });
  const last = Number((await page.textContent('#n')).trim());
  await countsAfter(page, last, 2);

  assert.deepEqual(errors, []);
  await page.close();
  const r2 = await rt.stop();
  assert.deepEqual(r2, { code: 0, signal: null }, rt.output());
  assert.match(rt.output(), /auth_mode=guest/, 'guest mode is logged');
});
