/**
 * verifyTrail(dir, { publicKey, checkpoint? }): the trail checked against a signed checkpoint as part of
 * verification — what catches a tail cut off cleanly (manifest and sidecars made to agree) that the hash
 * chain alone cannot.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { AuditLogger } from '../src/logger.js';
import { SignerKey } from '../src/tlog/keys.js';
import { latestTrailCheckpoint } from '../src/tlog/proof-bundle.js';
import { Transparency } from '../src/tlog/transparency.js';
import { verifyTrail } from '../src/verify.js';

const signer = SignerKey.generate('vramseal.test/verify');
const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function trailWithCheckpoints(records: number): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'vramseal-vcp-'));
  roots.push(root);
  const dir = join(root, 'trail');
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    flush: { mode: 'batched', maxEvents: 16, maxDelayMs: 5 },
    logger: pino({ level: 'silent' }),
  });
  const tl = await Transparency.attach(log, { signer, worker: false, everyRecords: 1000, everyMs: 0 });
  for (let i = 0; i < records; i++) {
    log.emit({
      type: 'seal.verified',
      timestamp: '2026-11-27T00:00:00.000Z',
      shard_id: `s-${i}`,
      worker_id: 'w',
    });
  }
  await log.flush();
  await tl.checkpoint();
  await log.close(); // final checkpoint
  return dir;
}

/** Cuts the last `n` records off the (single) record file and rewrites manifest + sidecar to match. */
function cutTail(dir: string, n: number): void {
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const f = m.files.at(-1);
  const lines = readFileSync(join(dir, f.name), 'utf8').split('\n').filter(Boolean);
  const kept = lines.slice(0, lines.length - n);
  writeFileSync(join(dir, f.name), `${kept.join('\n')}\n`, { mode: 0o600 });
  const last = JSON.parse(kept.at(-1) as string);
  Object.assign(f, {
    last_seq: last.seq,
    last_hash: last.hash,
    count: kept.length,
    last_time: last.time,
    bytes: Buffer.byteLength(`${kept.join('\n')}\n`),
    // an "open" file has no sidecar to disagree with
    state: 'open',
    closed: null,
    sha256: null,
  });
  rmSync(join(dir, `${f.name}.sha256`), { force: true });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
}

test('a clean trail verifies against its own latest signed checkpoint', async () => {
  const dir = await trailWithCheckpoints(40);
  const r = await verifyTrail(dir, { publicKey: signer.verifier });
  assert.deepEqual(r.failures, []);
  assert.equal(r.ok, true);
});

test('a wrong public key or a missing checkpoint is checkpoint_invalid; a checkpoint needs a key', async () => {
  const dir = await trailWithCheckpoints(10);
  const wrong = await verifyTrail(dir, { publicKey: SignerKey.generate('other').verifier });
  assert.equal(wrong.ok, false);
  assert.ok(wrong.failures.some((f) => f.kind === 'checkpoint_invalid'));
  rmSync(join(dir, 'checkpoints'));
  const none = await verifyTrail(dir, { publicKey: signer.verifier });
  assert.deepEqual(
    none.failures.map((f) => [f.kind, f.file]),
    [['checkpoint_invalid', 'checkpoints']],
  );
  await assert.rejects(verifyTrail(dir, { checkpoint: 'x' }), /checkpoint needs publicKey/);
});

test('a tail cut off cleanly passes the chain checks but not a witnessed checkpoint: truncated_trail', async () => {
  const dir = await trailWithCheckpoints(30);
  const witnessed = latestTrailCheckpoint(dir); // a copy kept elsewhere (witness)
  const copy = `${dir}-cut`;
  cpSync(dir, copy, { recursive: true });
  cutTail(copy, 5);
  rmSync(join(copy, 'checkpoints')); // the attacker also removes the local checkpoints
  rmSync(join(copy, 'tlog'), { recursive: true, force: true });
  const plain = await verifyTrail(copy);
  assert.equal(plain.ok, true, `chain checks alone see nothing: ${JSON.stringify(plain.failures)}`);
  const r = await verifyTrail(copy, { publicKey: signer.verifier, checkpoint: witnessed });
  assert.equal(r.ok, false);
  const t = r.failures.find((f) => f.kind === 'truncated_trail');
  assert.ok(t, JSON.stringify(r.failures));
});
