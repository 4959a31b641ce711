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
