// The man page is generated from the options table (`realtimed --help-man`);
// the committed docs/realtimed.8 must be that output, and --help must name
// every bench key docs/frappe.md documents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { ROOT } from '../lib/procs.mjs';

const BIN = process.env.REALTIMED_BIN || `${ROOT}/build/realtimed`;

test('docs/realtimed.8 is the output of --help-man (regenerate: build/realtimed --help-man > docs/realtimed.8)', () => {
  const r = spawnSync(BIN, ['--help-man'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.equal(fs.readFileSync(`${ROOT}/docs/realtimed.8`, 'utf8'), r.stdout);
});

test('--help documents every bench key listed in docs/frappe.md', () => {
  const help = spawnSync(BIN, ['--help'], { encoding: 'utf8' }).stdout;
  const doc = fs.readFileSync(`${ROOT}/docs/frappe.md`, 'utf8');
  const keys = [...doc.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  assert.ok(keys.length >= 7, `keys found: ${keys}`);
  for (const k of keys) assert.match(help, new RegExp(`\\[bench key ${k}\\]`), k);
});

test('docs/operations.md lists every metric /metrics serves, and the live keys --help marks', async () => {
  const { startStack } = await import('../lib/frappe_helpers.mjs');
  const doc = fs.readFileSync(`${ROOT}/docs/operations.md`, 'utf8');
  const stack = await startStack({ args: ['--recovery-window', '1000'] }); // its families too
  try {
    const text = await (await fetch(`${stack.url}/metrics`)).text();
    const families = [...text.matchAll(/^# TYPE realtimed_(\w+) /gm)].map((m) => m[1]);
    assert.ok(families.length > 30, `families: ${families}`);
    // the table names families without the prefix, some several to a row
    const rows = doc.split('\n').filter((l) => l.startsWith('| `'));
    const named = new Set(rows.flatMap((l) => [...l.split('|')[1].matchAll(/`(\w+)(?:\{\w+\})?`/g)].map((m) => m[1])));
    for (const f of families) assert.ok(named.has(f), `realtimed_${f} is not in docs/operations.md`);
  } finally {
    await stack.stop();
  }
  const help = spawnSync(BIN, ['--help'], { encoding: 'utf8' }).stdout;
  const sighup = doc.split('\n').find((l) => l.startsWith('| `SIGHUP`'));
  const keysInHelp = help.split('\n  --').slice(1).filter((b) => b.includes('[SIGHUP applies it]'))
    .map((b) => b.split(/[ ,\n]/)[0].replaceAll('-', '_'));
  assert.ok(keysInHelp.length >= 10, `live keys: ${keysInHelp}`);
  for (const k of keysInHelp) assert.ok(sighup.includes(`\`${k}\``), `${k} is live but not in the SIGHUP row`);
});
