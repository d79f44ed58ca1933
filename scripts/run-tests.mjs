#!/usr/bin/env node
// Runs the test suite with node:test on the TypeScript sources (tsx loader, "vramseal-source" export condition).
//   node scripts/run-tests.mjs [--gpu] [--only <substring>] [files...]
// Default: every packages/*/test/**/*.test.ts except *.gpu.test.ts and *.reliability.test.ts.
// --gpu: only *.gpu.test.ts (they skip with a visible notice when no GPU is present).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const gpu = args.includes('--gpu');
const reliability = args.includes('--reliability');
const onlyIdx = args.indexOf('--only');
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : undefined;
const explicit = args.filter((a, i) => !a.startsWith('--') && (onlyIdx < 0 || i !== onlyIdx + 1));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

let files = explicit;
if (files.length === 0) {
  files = [];
  for (const pkg of readdirSync(join(root, 'packages'))) {
    const t = join(root, 'packages', pkg, 'test');
    try {
      walk(t, files);
    } catch {}
  }
  files = files.filter((f) => {
    if (gpu) return f.endsWith('.gpu.test.ts');
    if (reliability) return f.endsWith('.reliability.test.ts');
    return !f.endsWith('.gpu.test.ts') && !f.endsWith('.reliability.test.ts');
  });
  if (only) files = files.filter((f) => f.includes(only));
}
files.sort();
if (files.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
const nodeArgs = ['--conditions=vramseal-source', '--import', 'tsx', '--test', '--test-concurrency=2'];
if (process.env.CI || !process.stdout.isTTY) nodeArgs.push('--test-reporter=spec');
const r = spawnSync(process.execPath, [...nodeArgs, ...files], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
