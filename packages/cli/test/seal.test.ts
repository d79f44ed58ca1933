// `vramseal seal` through the real binary (simulated backend).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const BIN = join(REPO, 'packages/cli/dist/bin.js');
const tmp = mkdtempSync(join(tmpdir(), 'vramseal-seal-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const TOKEN = 'seal-test-worker-token-0123456789';
const model = join(tmp, 'model.bin');
const data = Buffer.alloc(200_000);
for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
writeFileSync(model, data);
const sha = createHash('sha256').update(data).digest('hex');

function seal(args: string[], env: Record<string, string | undefined> = { VRAMSEAL_WORKER_TOKEN: TOKEN }) {
  if (!existsSync(BIN)) {
    const b = spawnSync('npx', ['tsc', '-b', 'packages/cli'], { cwd: REPO, stdio: 'inherit' });
    assert.equal(b.status, 0, 'build failed');
  }
  const e: Record<string, string | undefined> = {
    ...process.env,
    VRAMSEAL_BACKEND: 'simulated',
    NO_COLOR: '1',
    ...env,
  };
  if (!('VRAMSEAL_WORKER_TOKEN' in env)) delete e.VRAMSEAL_WORKER_TOKEN;
  return spawnSync(process.execPath, [BIN, 'seal', ...args], { env: e, encoding: 'utf8', timeout: 60_000 });
}

function trailText(dir: string): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.audit'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('');
}

test('seal --json: handle, timings, verified, released; events in the trail; no token anywhere', () => {
  const auditDir = join(tmp, 'audit-ok');
  const r = seal([model, '--expect-sha256', sha, '--audit-dir', auditDir, '--shard-id', 'm-1', '--json']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.ok, true);
  assert.equal(out.shard.shard_id, 'm-1');
  assert.equal(out.shard.vram_bytes, 200_000);
  assert.equal(out.shard.model_ref, 'model.bin');
  assert.equal(out.shard.backend, 'simulated');
  assert.match(out.shard.digest, /^sha256-merkle-v1:16384:[0-9a-f]{64}$/);
  assert.ok(out.seal.ms > 0 && out.verify.chunks === 13);
  const types = trailText(auditDir)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l).event.type);
  assert.deepEqual(types, ['vram.allocated', 'vram.sealed', 'seal.verified', 'vram.deallocated']);
  assert.ok(!(r.stdout + r.stderr + trailText(auditDir)).includes(TOKEN));
});

test('seal (human): prints the handle and GB/s', () => {
  const r = seal([model, '--audit-dir', join(tmp, 'audit-human')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /✔ sealed {2}195\.3 KiB in .* — [\d.]+ [GM]B\/s/);
  assert.match(r.stdout, /shard_id {3}\S+/);
  assert.match(r.stdout, /✔ verified {2}13 chunks re-hashed from device memory/);
  assert.match(r.stdout, /✔ released/);
});

test('seal --expect-sha256 mismatch: refused, exit 1, integrity violation recorded', () => {
  const auditDir = join(tmp, 'audit-bad');
  const r = seal([model, '--expect-sha256', '0'.repeat(64), '--audit-dir', auditDir, '--json']);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.ok, false);
  assert.equal(out.error.code, 'INTEGRITY_VIOLATION');
  assert.match(trailText(auditDir), /"security\.integrity_violation"/);
});

test('seal: worker token from --token-file (0600)', () => {
  const tf = join(tmp, 'worker-token');
  writeFileSync(tf, `${TOKEN}\n`, { mode: 0o600 });
  const r = seal([model, '--token-file', tf, '--audit-dir', join(tmp, 'audit-tf'), '--json'], {});
  assert.equal(r.status, 0, r.stderr);
});

test('seal: usage and I/O errors exit 2 with a clear message', () => {
  const noToken = seal([model], {});
  assert.equal(noToken.status, 2);
  assert.match(noToken.stderr, /no worker token: pass --token-file F .* or set VRAMSEAL_WORKER_TOKEN/);
  const missing = seal([join(tmp, 'nope.bin')]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /nope\.bin: ENOENT/);
  const badSha = seal([model, '--expect-sha256', 'xyz']);
  assert.equal(badSha.status, 2);
  assert.match(badSha.stderr, /--expect-sha256: must be 64 hex digits/);
  const badDev = seal([model, '--device', '3', '--audit-dir', join(tmp, 'audit-dev')]);
  assert.equal(badDev.status, 2, badDev.stdout + badDev.stderr);
  assert.match(badDev.stdout, /invalid device: must be an integer in 0\.\.0/);
});
