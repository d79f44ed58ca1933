// `vramseal devices` through the real binary.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const BIN = join(REPO, 'packages/cli/dist/bin.js');

function run(args: string[], env: Record<string, string> = {}) {
  if (!existsSync(BIN)) {
    const b = spawnSync('npx', ['tsc', '-b', 'packages/cli'], { cwd: REPO, stdio: 'inherit' });
    assert.equal(b.status, 0, 'build failed');
  }
  return spawnSync(process.execPath, [BIN, 'devices', ...args], {
    env: { ...process.env, NO_COLOR: '1', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

test('devices --json on the simulated backend: devices, memory, policy', () => {
  const r = run(['--json', '--backend', 'simulated'], {
    VRAMSEAL_SIM_DEVICES: '2',
    VRAMSEAL_SIM_VRAM_BYTES: '2GiB',
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.backend, 'simulated');
  assert.equal(out.devices.length, 2);
  assert.deepEqual(
    out.devices.map((d: { index: number; total_bytes: number; kind: string }) => [
      d.index,
      d.total_bytes,
      d.kind,
    ]),
    [
      [0, 2 * 1024 ** 3, 'simulated'],
      [1, 2 * 1024 ** 3, 'simulated'],
    ],
  );
  assert.equal(out.policy.vram_only, true);
  assert.equal(out.policy.max_model_bytes, 100 * 1024 ** 3);
});

test('devices (human) with auto: says which backend and why', () => {
  const r = run([]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^backend: (cuda|simulated)/m);
  assert.match(r.stdout, /^policy: {2}VRAM only/m);
  if (/^backend: simulated/m.test(r.stdout)) assert.match(r.stdout, /no GPU used: /);
});

test('devices --backend cuda: a GPU or a clear reason (exit 1), never a crash', () => {
  const r = run(['--backend', 'cuda', '--json']);
  const out = JSON.parse(r.stdout);
  if (r.status === 0) assert.equal(out.backend, 'cuda');
  else {
    console.log(`# no GPU here: ${out.error.message}`);
    assert.equal(r.status, 1);
    assert.equal(out.ok, false);
    assert.equal(out.error.code, 'BACKEND_UNAVAILABLE');
  }
});

test('devices: bad --backend is a usage error', () => {
  const r = run(['--backend', 'tpu']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--backend: must be auto, cuda or simulated/);
});

test('bench --list --json names the benchmarks and whether each is present; unknown name → exit 2', () => {
  const list = spawnSync(process.execPath, [BIN, 'bench', '--list', '--json'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(list.status, 0, list.stderr);
  const rows = JSON.parse(list.stdout) as Array<{ name: string; present: boolean; path: string }>;
  const names = rows.map((r) => r.name);
  assert.deepEqual(names.slice(0, 3), ['audit', 'vram', 'collector']);
  const scripts = Object.keys(JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).scripts ?? {});
  for (const k of scripts.filter((k) => k.startsWith('bench:'))) assert.ok(names.includes(k.slice(6)), k);
  for (const r of rows) assert.equal(r.present, existsSync(join(REPO, r.path)), r.name);
  const bad = spawnSync(process.execPath, [BIN, 'bench', 'nope'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown benchmark nope/);
});
