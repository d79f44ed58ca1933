/**
 * End to end with the real audit trail: a VramManager writes to an AuditLogger (hash chain + MAC),
 * every one of the seven VRAM events is produced on its path, and the trail verifies offline.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AuditLogger, verifyTrail } from '@vramseal/audit';
import pino from 'pino';
import {
  InsufficientVramError,
  IntegrityViolationError,
  PolicyViolationError,
  SealVerificationFailedError,
} from '../src/errors.js';
import { VRAM_EVENT_TYPES } from '../src/events.js';
import { VramManager } from '../src/manager.js';
import { SimulatedBackend } from '../src/simulated/index.js';
import { pattern, TOKEN } from './helpers.js';

test('all seven VRAM events, with the right fields, in a real trail that verifies', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vramseal-trail-'));
  const macKey = randomBytes(32);
  try {
    const log = await AuditLogger.open({
      mode: 'local',
      dir: join(dir, 'trail'),
      serviceId: 'vramseal-residency-test',
      flush: { mode: 'hybrid', maxEvents: 64, maxDelayMs: 20 },
      macKey,
      failClosed: true,
      logger: pino({ level: 'silent' }),
    });
    const backend = new SimulatedBackend({ vramBytes: 40 * 1024 });
    const m = await VramManager.open({
      workerToken: TOKEN,
      workerId: 'worker-7',
      audit: log,
      backend,
      leafSize: 1024,
      maxModelBytes: 32 * 1024,
      reserveBytes: 1024,
      failClosed: true,
    });
    const a = await m.seal(pattern(5000), {
      shardId: 'shard-a',
      modelRef: 'org/model',
      shardIndex: 0,
      totalShards: 2,
    });
    const b = await m.seal(pattern(3000, 3), {
      shardId: 'shard-b',
      modelRef: 'org/model',
      shardIndex: 1,
      totalShards: 2,
    });
    await m.verify(a);
    await m.verifySample(b, { chunks: 2 });
    await assert.rejects(m.seal(pattern(32_000)), InsufficientVramError);
    await assert.rejects(m.seal(pattern(40_000)), PolicyViolationError);
    await assert.rejects(m.seal(pattern(100), { expectedSha256: 'a'.repeat(64) }), IntegrityViolationError);
    await m.release(b);
    await m.corruptForTesting(a, 2100, 10);
    await assert.rejects(m.verify(a), SealVerificationFailedError);
    await m.close();
    await backend.close();
    await log.close();

    const report = await verifyTrail(join(dir, 'trail'), { macKey });
    assert.deepEqual(report.failures, []);
    assert.equal(report.ok, true);
    assert.equal(report.macChecked, true);

    const files = (await readdir(join(dir, 'trail'))).filter((f) => f.endsWith('.audit')).sort();
    const records = [];
    for (const f of files) {
      for (const line of (await readFile(join(dir, 'trail', f), 'utf8')).split('\n')) {
        if (line) records.push(JSON.parse(line));
      }
    }
    const events = records.sort((x, y) => x.seq - y.seq).map((r) => r.event);
    const types = new Set(events.map((e) => e.type));
    for (const t of VRAM_EVENT_TYPES) assert.ok(types.has(t), `${t} is in the trail`);
    assert.ok(types.has('security.integrity_violation'));

    const one = (type: string, pred: (e: Record<string, unknown>) => boolean = () => true) => {
      const e = events.find((x) => x.type === type && pred(x));
      assert.ok(e, type);
      return e;
    };
    const sealed = one('vram.sealed', (e) => e.shard_id === 'shard-a');
    assert.deepEqual(
      [
        sealed.digest,
        sealed.vram_bytes,
        sealed.gpu_device,
        sealed.worker_id,
        sealed.backend,
        sealed.model_ref,
        sealed.total_shards,
      ],
      [a.digest, 5000, 0, 'worker-7', 'simulated', 'org/model', 2],
    );
    const allocated = one('vram.allocated');
    assert.deepEqual(
      [allocated.requested_bytes, allocated.used_bytes, allocated.backend],
      [5000, 5000, 'simulated'],
    );
    assert.deepEqual(
      events.filter((e) => e.type === 'seal.verified').map((e) => [e.shard_id, e.mode]),
      [
        ['shard-a', 'full'],
        ['shard-b', 'sample'],
      ],
    );
    const failed = one('seal.verification_failed');
    assert.deepEqual(
      [failed.shard_id, failed.severity, failed.expected_digest, failed.corrupt_ranges, failed.chunks_failed],
      ['shard-a', 'critical', a.digest, [{ offset: 2048, length: 1024 }], 1],
    );
    assert.match(
      one('vram.allocation_failed', (e) => /insufficient/.test(String(e.reason))).reason,
      /need 32000/,
    );
    assert.equal(one('security.policy_violation').policy, 'max_model_bytes');
    assert.deepEqual(
      events.filter((e) => e.type === 'vram.deallocated').map((e) => [e.shard_id, e.reason]),
      [
        [events.find((e) => e.type === 'security.integrity_violation').resource_id, 'error'],
        ['shard-b', 'release'],
        ['shard-a', 'close'],
      ],
    );
    const text = JSON.stringify(records);
    assert.equal(text.includes(TOKEN), false);
    assert.ok(events.filter((e) => 'backend' in e).every((e) => e.backend === 'simulated'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// (The batched trail would otherwise hold the record for 60 s; the timeout only guards against that hang.)
test('a verification failure is on disk before verify() rejects, even with a slow batched trail', {
  timeout: 30_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vramseal-trail-'));
  try {
    const trail = join(dir, 'trail');
    const log = await AuditLogger.open({
      mode: 'local',
      dir: trail,
      serviceId: 'vramseal-residency-test',
      flush: { mode: 'batched', maxEvents: 10_000, maxDelayMs: 60_000 },
      logger: pino({ level: 'silent' }),
    });
    const m = await VramManager.open({
      workerToken: TOKEN,
      workerId: 'worker-7',
      audit: log,
      backend: 'simulated',
      backendOptions: { simulated: { vramBytes: 1024 * 1024 } },
      leafSize: 1024,
    });
    const s = await m.seal(pattern(4096), { shardId: 'shard-z' });
    await m.corruptForTesting(s, 0);
    await assert.rejects(m.verify(s), SealVerificationFailedError);
    const files = (await readdir(trail)).filter((f) => f.endsWith('.audit'));
    const text = (await Promise.all(files.map((f) => readFile(join(trail, f), 'utf8')))).join('');
    assert.match(text, /"type":"seal\.verification_failed"/);
    assert.match(text, /"type":"vram\.sealed"/, 'everything queued before it was flushed with it');
    await m.close();
    await log.close();
    assert.equal((await verifyTrail(trail)).ok, true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
