// Transparency commands through the real binary (a file of its own: the in-process tests in
// tlog.test.ts swap process.stdout.write, which must not overlap another test's report).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  buildInclusionProof,
  loadVerifierKey,
  SignerKey,
  verifyProofBundle,
  writeKeyPair,
} from '@vramseal/audit';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const BIN = join(REPO, 'packages/cli/dist/bin.js');

function bin(args: string[], input?: string) {
  if (!existsSync(BIN)) {
    const b = spawnSync('npx', ['tsc', '-b', 'packages/cli'], { cwd: REPO, stdio: 'inherit' });
    assert.equal(b.status, 0, 'build failed');
  }
  return spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, NO_COLOR: '1' },
    encoding: 'utf8',
    timeout: 60_000,
    ...(input !== undefined ? { input } : {}),
  });
}

test('real binary: audit emit --tlog-key writes checkpoints; audit verify --checkpoint; prove + verify-proof', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'tlog-bin-'));
  try {
    const prefix = join(root, 'k');
    writeKeyPair(prefix, 'vramseal.test/bin');
    const dir = join(root, 'trail');
    const witness = join(root, 'w');
    const events = Array.from({ length: 25 }, (_, i) =>
      JSON.stringify({
        type: 'data.model_accessed',
        customer_id: `c${i}`,
        model_ref: 'm',
        access_type: 'read',
      }),
    ).join('\n');
    const em = bin(
      ['audit', 'emit', dir, '--service-id', 'svc', '--tlog-key', `${prefix}.key`, '--witness-dir', witness],
      `${events}\n`,
    );
    assert.equal(em.status, 0, em.stderr);
    const cps = fs.readFileSync(join(dir, 'checkpoints'), 'utf8');
    assert.match(cps, /^vramseal\/svc\n25\n/);
    const wfile = join(witness, 'vramseal_svc.checkpoints');
    assert.equal(fs.readFileSync(wfile, 'utf8'), cps);
    const ok = bin([
      'audit',
      'verify',
      dir,
      '--checkpoint',
      wfile,
      '--public-key',
      `${prefix}.pub`,
      '--no-progress',
    ]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const proof = await buildInclusionProof(dir, 25);
    assert.ok(verifyProofBundle(proof, loadVerifierKey(`${prefix}.pub`)).ok);
    assert.equal(verifyProofBundle(proof, SignerKey.generate('vramseal.test/bin').verifier).ok, false);
    // A second run appends to the same trail; its checkpoint still holds for the first 25 records.
    assert.equal(
      bin(['audit', 'emit', dir, '--service-id', 'svc', '--tlog-key', `${prefix}.key`], `${events}\n`).status,
      0,
    );
    const latest = fs.readFileSync(join(dir, 'checkpoints'), 'utf8');
    assert.match(latest, /\nvramseal\/svc\n5\d\n/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
