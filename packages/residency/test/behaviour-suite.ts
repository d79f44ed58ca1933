/**
 * The VramManager behaviour suite, parameterized over a device backend. Registered for every
 * available backend by test/behaviour.test.ts (simulated always, CUDA when it opens); the CUDA
 * helper's *.gpu.test.ts imports {@link registerBehaviourSuite} and runs the same tests on the GPU.
 *
 * Sizes are small (leaf 1 KiB) so the suite is fast; capacity tests set `reserveBytes` from the
 * device's free memory so they work on a 24 GiB simulated device and on an 80 GB H100 alike.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspect } from 'node:util';
import type { DeviceBackend } from '../src/backend.js';
import { openBackend } from '../src/backends.js';
import {
  AuditUnavailableError,
  InsufficientVramError,
  IntegrityViolationError,
  InvalidInputError,
  NotSealedError,
  PolicyViolationError,
  SealVerificationFailedError,
  StoppedError,
} from '../src/errors.js';
import { NO_DIGEST, VramManager, type VramManagerOptions } from '../src/manager.js';
import { formatDigest, merkleRoot } from '../src/merkle.js';
import { deriveSealKey } from '../src/seal.js';
import type { SealedShard } from '../src/shard.js';
import { OTHER_TOKEN, pattern, prng, RecordingAudit, TOKEN } from './helpers.js';

export interface BackendUnderTest {
  /** `simulated` or `cuda` (also the `backend` every handle and event must carry). */
  name: 'simulated' | 'cuda';
  /** A backend for one test. */
  open(): Promise<DeviceBackend>;
  /** Closes a backend from `open` (default: `backend.close()`). */
  dispose?(backend: DeviceBackend): Promise<void>;
}

/** `simulated`, plus `cuda` when `openBackend('cuda')` succeeds here. */
export async function backendsUnderTest(): Promise<BackendUnderTest[]> {
  const out: BackendUnderTest[] = [
    {
      name: 'simulated',
      open: () => openBackend('simulated', { simulated: { vramBytes: 256 * 1024 * 1024 } }),
    },
  ];
  try {
    const b = await openBackend('cuda');
    await b.close();
    out.push({ name: 'cuda', open: () => openBackend('cuda') });
  } catch {
    // no GPU here: the CUDA run is the job of *.gpu.test.ts, which says so visibly
  }
  return out;
}

const LEAF = 1024;
const WORKER = 'worker-1';

interface Ctx {
  backend: DeviceBackend;
  audit: RecordingAudit;
  m: VramManager;
  /** Another manager on the same backend (closed by the harness). */
  open(extra?: Partial<VramManagerOptions>, audit?: RecordingAudit): Promise<VramManager>;
  free(): Promise<number>;
}

function digestOf(data: Uint8Array, leaf = LEAF): string {
  return formatDigest(leaf, merkleRoot(data, leaf));
}

/** Registers the behaviour tests for one backend. */
export function registerBehaviourSuite(target: BackendUnderTest): void {
  const kind = target.name;

  function scenario(name: string, fn: (ctx: Ctx) => Promise<void>, extra: Partial<VramManagerOptions> = {}) {
    test(`[${kind}] ${name}`, async () => {
      const backend = await target.open();
      const managers: VramManager[] = [];
      const audits: RecordingAudit[] = [];
      const open = async (more: Partial<VramManagerOptions> = {}, audit = new RecordingAudit()) => {
        audits.push(audit);
        const m = await VramManager.open({
          workerToken: TOKEN,
          workerId: WORKER,
          audit,
          backend,
          leafSize: LEAF,
          ...extra,
          ...more,
        });
        managers.push(m);
        return m;
      };
      const audit = new RecordingAudit();
      const m = await open({}, audit);
      try {
        await fn({ backend, audit, m, open, free: async () => (await backend.memoryInfo(0)).freeBytes });
        for (const a of audits) assert.deepEqual(a.rejected, [], 'every event passes the audit validator');
      } finally {
        for (const x of managers) await x.close();
        await (target.dispose ? target.dispose(backend) : backend.close());
      }
    });
  }

  scenario('seal → verify (full and sample) → release: handle, digest, events', async ({ m, audit }) => {
    const data = pattern(5 * LEAF + 17);
    const s = await m.seal(data, {
      shardId: 'llama-3-8b_shard-00',
      modelRef: 'meta/llama-3-8b',
      shardIndex: 0,
      totalShards: 2,
    });
    assert.equal(s.shard_id, 'llama-3-8b_shard-00');
    assert.equal(s.gpu_device, 0);
    assert.equal(s.vram_bytes, data.length);
    assert.equal(s.digest, digestOf(data), 'device digest equals the CPU reference');
    assert.equal(s.backend, kind);
    assert.equal(s.model_ref, 'meta/llama-3-8b');
    assert.equal(s.shard_index, 0);
    assert.equal(s.total_shards, 2);
    assert.match(s.sealed_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(s))).sort(), [
      'backend',
      'digest',
      'gpu_device',
      'model_ref',
      'sealed_at',
      'shard_id',
      'shard_index',
      'total_shards',
      'vram_bytes',
    ]);
    assert.equal(m.shard(s.shard_id), s);

    const full = await m.verify(s);
    assert.deepEqual([full.mode, full.chunks_checked, full.digest], ['full', 6, s.digest]);
    const sample = await m.verifySample(s, { chunks: 3 });
    assert.deepEqual([sample.mode, sample.chunks_checked], ['sample', 3]);
    assert.equal((await m.capacity()).usedBytes, data.length);

    await m.release(s);
    assert.equal((await m.capacity()).usedBytes, 0);
    assert.deepEqual(m.shards(), []);
    await assert.rejects(m.release(s), NotSealedError);

    assert.deepEqual(audit.types(), [
      'vram.allocated',
      'vram.sealed',
      'seal.verified',
      'seal.verified',
      'vram.deallocated',
    ]);
    const [alloc] = audit.of('vram.allocated');
    assert.deepEqual(
      { ...alloc, timestamp: undefined },
      {
        type: 'vram.allocated',
        timestamp: undefined,
        requested_bytes: data.length,
        allocated_bytes: data.length,
        available_bytes: alloc?.available_bytes,
        used_bytes: data.length,
        gpu_device: 0,
        worker_id: WORKER,
        backend: kind,
      },
    );
    const [sealed] = audit.of('vram.sealed');
    assert.equal(sealed?.digest, s.digest);
    assert.equal(sealed?.sealed_at, s.sealed_at);
    assert.equal(sealed?.model_ref, 'meta/llama-3-8b');
    assert.equal(sealed?.vram_bytes, data.length);
    assert.equal(sealed?.backend, kind);
    const verified = audit.of('seal.verified');
    assert.deepEqual(
      verified.map((e) => [e.mode, e.chunks_checked, e.shard_id, e.backend]),
      [
        ['full', 6, s.shard_id, kind],
        ['sample', 3, s.shard_id, kind],
      ],
    );
    const [dealloc] = audit.of('vram.deallocated');
    assert.deepEqual(
      [dealloc?.reason, dealloc?.freed_bytes, dealloc?.remaining_used],
      ['release', data.length, 0],
    );
  });

  scenario('seal a file streamed in bounded chunks, with expectedSha256 and progress', async ({ m }) => {
    const dir = await mkdtemp(join(tmpdir(), 'vramseal-res-'));
    try {
      const data = pattern(300_001, 7, 3);
      const file = join(dir, 'shard.bin');
      await writeFile(file, data);
      const progress: number[] = [];
      const sha = createHash('sha256').update(data).digest('hex');
      const s = await m.seal(file, {
        expectedSha256: sha,
        chunkBytes: 65536,
        onProgress: (done, total) => {
          assert.equal(total, data.length);
          progress.push(done);
        },
      });
      assert.equal(s.digest, digestOf(data));
      assert.equal(progress.at(-1), data.length);
      assert.ok(progress.length >= 5, 'progress reported per chunk');
      assert.deepEqual(
        [...progress].sort((a, b) => a - b),
        progress,
        'progress is monotonic',
      );
      await m.verify(s);
      const s2 = await m.seal({ path: file }, { expectedSha256: sha.toUpperCase() });
      assert.equal(s2.digest, s.digest);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  scenario(
    'expectedSha256 / expectedDigest mismatch: integrity violation, nothing sealed, memory freed',
    async ({ m, audit }) => {
      const data = pattern(4 * LEAF + 1);
      await assert.rejects(
        m.seal(data, { shardId: 'bad-sha', expectedSha256: '0'.repeat(64) }),
        (e: unknown) => {
          assert.ok(e instanceof IntegrityViolationError);
          assert.equal(e.expected, '0'.repeat(64));
          assert.equal(e.actual, createHash('sha256').update(data).digest('hex'));
          return true;
        },
      );
      const wrong = formatDigest(LEAF, new Uint8Array(32).fill(1));
      await assert.rejects(
        m.seal(data, { shardId: 'bad-digest', expectedDigest: wrong }),
        IntegrityViolationError,
      );
      assert.equal((await m.capacity()).usedBytes, 0);
      assert.deepEqual(m.shards(), []);
      assert.equal(m.state, 'open', 'a refused seal does not stop the manager');
      const iv = audit.of('security.integrity_violation');
      assert.deepEqual(
        iv.map((e) => [e.resource_id, e.expected_hash, e.severity, e.action_taken]),
        [
          ['bad-sha', '0'.repeat(64), 'critical', 'seal_refused'],
          ['bad-digest', wrong, 'critical', 'seal_refused'],
        ],
      );
      assert.deepEqual(
        audit.of('vram.deallocated').map((e) => [e.shard_id, e.reason, e.freed_bytes]),
        [
          ['bad-sha', 'error', data.length],
          ['bad-digest', 'error', data.length],
        ],
      );
      assert.equal(audit.of('vram.sealed').length, 0);
      // A matching expectedDigest with another leaf size is honoured: the shard uses that leaf size.
      const ok = await m.seal(data, { expectedDigest: digestOf(data, 4096) });
      assert.equal(ok.digest, digestOf(data, 4096));
      await m.verify(ok);
    },
  );

  scenario('exact-capacity seal succeeds; one byte more is refused', async ({ open }) => {
    const N = 64 * LEAF;
    const m = await open({ quotaBytes: N });
    assert.equal((await m.capacity()).availableBytes, N);
    const s = await m.seal(pattern(N));
    assert.equal((await m.capacity()).availableBytes, 0);
    await m.verify(s);
    await assert.rejects(m.seal(pattern(1)), InsufficientVramError);
    await m.release(s);
    await assert.rejects(m.seal(pattern(N + 1)), InsufficientVramError);
    const again = await m.seal(pattern(N));
    await m.verify(again);
  });

  scenario(
    'insufficient VRAM: actionable, retriable error and vram.allocation_failed',
    async ({ open, free }) => {
      const audit = new RecordingAudit();
      const avail = 8 * LEAF;
      const m = await open({ reserveBytes: (await free()) - avail }, audit);
      await assert.rejects(m.seal(pattern(avail + 5), { device: 0 }), (e: unknown) => {
        assert.ok(e instanceof InsufficientVramError);
        assert.equal(e.code, 'INSUFFICIENT_VRAM');
        assert.equal(e.retriable, true);
        assert.equal(e.fatal, false);
        assert.equal(e.needed, avail + 5);
        assert.equal(e.available, avail);
        assert.match(e.message, /need \d+ bytes, \d+ available/);
        assert.match(e.message, /release shards|lower reserveBytes/);
        return true;
      });
      const [f] = audit.of('vram.allocation_failed');
      assert.equal(f?.requested_bytes, avail + 5);
      assert.equal(f?.available_bytes, avail);
      assert.equal(f?.gpu_device, 0);
      assert.equal(f?.backend, kind);
      assert.match(f?.reason ?? '', /insufficient VRAM/);
      assert.equal(audit.of('vram.allocated').length, 0);
      assert.equal(m.state, 'open');
    },
  );

  scenario('maxModelBytes: oversize shard is a policy violation', async ({ open }) => {
    const audit = new RecordingAudit();
    const m = await open({ maxModelBytes: 4 * LEAF }, audit);
    await assert.rejects(m.seal(pattern(4 * LEAF + 1)), PolicyViolationError);
    await m.seal(pattern(4 * LEAF));
    const [pv] = audit.of('security.policy_violation');
    assert.equal(pv?.policy, 'max_model_bytes');
    assert.equal(pv?.action_taken, 'seal_refused');
    assert.equal(pv?.worker_id, WORKER);
    assert.equal(audit.of('vram.allocation_failed').length, 1);
  });

  scenario('invalid ids and options are refused before any device work', async ({ m, audit }) => {
    const data = pattern(100);
    for (const id of ['../etc/passwd', 'a/b', 'a\0b', 'x'.repeat(257), '', 'a b', 'é', 'shard.bin', 'a\nb']) {
      await assert.rejects(m.seal(data, { shardId: id }), (e: unknown) => {
        assert.ok(e instanceof InvalidInputError, `shard id ${JSON.stringify(id)}`);
        assert.equal(e.field, 'shardId');
        assert.match(e.message, /shardId.*\[A-Za-z0-9_-\]\{1,256\}/);
        return true;
      });
    }
    await m.seal(data, { shardId: 'x'.repeat(256) });
    await assert.rejects(m.seal(data, { shardId: 'x'.repeat(256) }), /already sealed/);
    await assert.rejects(m.seal(data, { device: 99 }), { field: 'device' });
    await assert.rejects(m.seal(data, { device: -1 }), { field: 'device' });
    await assert.rejects(m.seal(data, { modelRef: 'a\u202eb' }), { field: 'modelRef' });
    await assert.rejects(m.seal(data, { shardIndex: 2, totalShards: 2 }), { field: 'shardIndex' });
    await assert.rejects(m.seal(data, { expectedDigest: 'sha256:abc' }), { field: 'expectedDigest' });
    await assert.rejects(m.seal(data, { expectedSha256: 'xyz' }), { field: 'expectedSha256' });
    await assert.rejects(m.seal(join(tmpdir(), `missing-${randomBytes(4).toString('hex')}`)), {
      field: 'source',
    });
    await assert.rejects(m.seal(tmpdir()), /not a regular file/);
    assert.equal((await m.capacity()).usedBytes, 100);
    assert.deepEqual(audit.types(), ['vram.allocated', 'vram.sealed']);
  });

  scenario('zero-size shard is refused; a 1-byte shard seals and verifies', async ({ m, audit }) => {
    await assert.rejects(
      m.seal(new Uint8Array(0)),
      (e: unknown) => e instanceof InvalidInputError && /> 0/.test(e.message),
    );
    assert.match(audit.of('vram.allocation_failed')[0]?.reason ?? '', /size/);
    const one = await m.seal(Uint8Array.of(0x5a));
    assert.equal(one.vram_bytes, 1);
    assert.equal(one.digest, digestOf(Uint8Array.of(0x5a)));
    assert.deepEqual((await m.verify(one)).chunks_checked, 1);
    await m.verifySample(one, { chunks: 10 });
    await m.corruptForTesting(one, 0);
    await assert.rejects(m.verify(one), (e: unknown) => {
      assert.ok(e instanceof SealVerificationFailedError);
      assert.deepEqual(e.corruptRanges, [{ offset: 0, length: 1 }]);
      return true;
    });
  });

  scenario('all-zero and all-one data seal, verify and differ', async ({ m }) => {
    const zeros = Buffer.alloc(3 * LEAF + 5, 0);
    const ones = Buffer.alloc(3 * LEAF + 5, 0xff);
    const a = await m.seal(zeros);
    const b = await m.seal(ones);
    assert.equal(a.digest, digestOf(zeros));
    assert.equal(b.digest, digestOf(ones));
    assert.notEqual(a.digest, b.digest);
    await m.verify(a);
    await m.verify(b);
  });

  scenario('corruption at random offsets is detected and localized (full verify)', async ({ open }) => {
    const size = 37 * LEAF + 123;
    for (const seed of [1, 7, 42, 1234, 99991]) {
      const rnd = prng(seed);
      const audit = new RecordingAudit();
      const m = await open({}, audit);
      const s = await m.seal(pattern(size, 3, seed % 251));
      const offset = rnd(size);
      const length = 1 + rnd(Math.min(3 * LEAF, size - offset));
      await m.corruptForTesting(s, offset, length);
      const first = Math.floor(offset / LEAF);
      const last = Math.floor((offset + length - 1) / LEAF);
      const expected = [{ offset: first * LEAF, length: Math.min(size, (last + 1) * LEAF) - first * LEAF }];
      await assert.rejects(m.verify(s), (e: unknown) => {
        assert.ok(e instanceof SealVerificationFailedError, `seed ${seed}`);
        assert.equal(e.fatal, true);
        assert.equal(e.shardId, s.shard_id);
        assert.deepEqual(e.corruptRanges, expected, `seed ${seed}: offset ${offset} length ${length}`);
        return true;
      });
      const [f] = audit.of('seal.verification_failed');
      assert.equal(f?.severity, 'critical');
      assert.equal(f?.expected_digest, s.digest);
      assert.notEqual(f?.actual_digest, s.digest);
      assert.deepEqual(f?.corrupt_ranges, expected);
      assert.equal(f?.chunks_failed, last - first + 1);
      assert.equal(f?.backend, kind);
      assert.equal(m.state, 'stopped');
    }
  });

  scenario('sample verification catches corruption in the sampled chunks', async ({ m, audit }) => {
    const s = await m.seal(pattern(10 * LEAF));
    await m.corruptForTesting(s, 5 * LEAF + 3, 2, 0x01);
    await assert.rejects(m.verifySample(s, { chunks: 10 }), (e: unknown) => {
      assert.ok(e instanceof SealVerificationFailedError);
      assert.deepEqual(e.corruptRanges, [{ offset: 5 * LEAF, length: LEAF }]);
      return true;
    });
    const [f] = audit.of('seal.verification_failed');
    assert.equal(f?.chunks_failed, 1);
    assert.equal(f?.actual_digest, NO_DIGEST);
  });

  scenario('one tampered shard among many is the one reported', async ({ m, audit }) => {
    const shards: SealedShard[] = [];
    for (let i = 0; i < 6; i++)
      shards.push(await m.seal(pattern(3 * LEAF + i, i + 1), { shardId: `shard-${i}` }));
    await m.corruptForTesting(shards[3] as SealedShard, 2 * LEAF + 1);
    for (let i = 0; i < 3; i++) await m.verify(shards[i] as SealedShard);
    await assert.rejects(m.verify(shards[3] as SealedShard), { shardId: 'shard-3' });
    await assert.rejects(m.verify(shards[4] as SealedShard), StoppedError);
    const failed = audit.of('seal.verification_failed');
    assert.deepEqual(
      failed.map((e) => e.shard_id),
      ['shard-3'],
    );
    assert.deepEqual(
      audit.of('seal.verified').map((e) => e.shard_id),
      ['shard-0', 'shard-1', 'shard-2'],
    );
  });

  scenario(
    'forged or altered handles, wrong keys and released shards are rejected and stop the manager',
    async (ctx) => {
      type Forgery = (m: VramManager, s: SealedShard) => Promise<unknown>;
      const forgeries: Record<string, Forgery> = {
        'digest changed': async (_m, s) =>
          Object.assign(s, { digest: formatDigest(LEAF, new Uint8Array(32)) }),
        'size changed': async (_m, s) => Object.assign(s, { vram_bytes: s.vram_bytes - 1 }),
        'backend relabelled': async (_m, s) =>
          Object.assign(s, { backend: kind === 'cuda' ? 'simulated' : 'cuda' }),
        'model_ref added': async (_m, s) => Object.assign(s, { model_ref: 'other/model' }),
        'sealed_at changed': async (_m, s) => Object.assign(s, { sealed_at: '2020-01-01T00:00:00.000Z' }),
        'shard_id swapped to another sealed shard': async (m, s) => {
          await m.seal(pattern(2 * LEAF + 9), { shardId: 'shard-1' });
          return Object.assign(s, { shard_id: 'shard-1' });
        },
        'digest getter that changes after the seal check': async (m, s) => {
          // The device bytes are corrupted and the handle's digest is a getter that answers the
          // sealed digest to the first reads (the seal check) and the corrupted bytes' digest
          // afterwards: verify must use the authenticated snapshot, not re-read the handle.
          const corrupted = pattern(2 * LEAF + 9);
          corrupted[5] = (corrupted[5] as number) ^ 0xff;
          await m.corruptForTesting(s, 5);
          const sealed = s.digest;
          let reads = 0;
          Object.defineProperty(s, 'digest', { get: () => (reads++ < 2 ? sealed : digestOf(corrupted)) });
          return s;
        },
        'plain copy': async (_m, s) => ({ ...s }),
        'JSON round trip': async (_m, s) => JSON.parse(JSON.stringify(s)),
        'not an object': async () => 'shard-0',
        'released shard': async (m, s) => {
          await m.release(s);
          return s;
        },
      };
      for (const [name, forge] of Object.entries(forgeries)) {
        const audit = new RecordingAudit();
        const m = await ctx.open({}, audit);
        const s = await m.seal(pattern(2 * LEAF + 9), { shardId: 'shard-0' });
        const forged = (await forge(m, s)) ?? s;
        await assert.rejects(m.verify(forged as SealedShard), SealVerificationFailedError, name);
        assert.equal(m.state, 'stopped', name);
        const [f] = audit.of('seal.verification_failed');
        assert.ok(f, `${name}: event emitted`);
        assert.equal(f.severity, 'critical');
        if (!name.startsWith('digest getter')) {
          assert.equal(f.actual_digest, NO_DIGEST, `${name}: no device work for a bad handle`);
        }
        // Memory of an altered handle can still be released (by identity).
        if (name !== 'released shard') await m.release(s);
        assert.equal((await m.capacity()).usedBytes, name.startsWith('shard_id') ? 2 * LEAF + 9 : 0, name);
      }
      // Wrong key: a handle from a manager with another token, or another worker id, never verifies.
      for (const other of [{ workerToken: OTHER_TOKEN }, { workerId: 'worker-2' }]) {
        const a = await ctx.open();
        const s = await a.seal(pattern(LEAF), { shardId: 'shard-k' });
        const audit = new RecordingAudit();
        const b = await ctx.open(other, audit);
        await assert.rejects(b.verify(s), /seal mismatch/);
        await assert.rejects(b.verifySample(s), StoppedError);
        assert.equal(audit.of('seal.verification_failed').length, 1);
        await a.verify(s); // the issuer still accepts it
      }
      // Same key, different manager: issued elsewhere → unknown here.
      const a = await ctx.open();
      const s = await a.seal(pattern(LEAF), { shardId: 'shard-x' });
      const b = await ctx.open();
      await assert.rejects(b.verify(s), /not sealed by this manager/);
    },
  );

  scenario(
    'stopped state refuses seal/verify/execute until reopened; release, capacity and close still work',
    async (ctx) => {
      const { m, audit } = ctx;
      const good = await m.seal(pattern(2 * LEAF), { shardId: 'good' });
      const bad = await m.seal(pattern(2 * LEAF, 5), { shardId: 'bad' });
      await m.corruptForTesting(bad, 10);
      await assert.rejects(m.verify(bad), SealVerificationFailedError);
      assert.equal(m.state, 'stopped');
      assert.match(m.stopReason ?? '', /bad/);
      for (const op of [
        () => m.seal(pattern(10)),
        () => m.verify(good),
        () => m.verifySample(good),
        () => m.execute(good, () => 1),
      ]) {
        await assert.rejects(op(), (e: unknown) => {
          assert.ok(e instanceof StoppedError);
          assert.equal(e.code, 'STOPPED');
          assert.equal(e.fatal, true);
          assert.match(e.message, /reopen/);
          return true;
        });
      }
      assert.throws(() => m.startPeriodicVerification({ intervalMs: 100 }), StoppedError);
      assert.equal((await m.capacity()).usedBytes, 4 * LEAF);
      await m.release(good);
      assert.equal((await m.capacity()).usedBytes, 2 * LEAF);
      await m.close();
      assert.equal(m.state, 'closed');
      assert.deepEqual(
        audit.of('vram.deallocated').map((e) => [e.shard_id, e.reason]),
        [
          ['good', 'release'],
          ['bad', 'close'],
        ],
      );
      const fresh = await ctx.open(); // reopening gives a working manager
      await fresh.verify(await fresh.seal(pattern(10)));
    },
  );

  scenario('concurrent seals: admission is atomic and accounting exact', async ({ open }) => {
    const size = 4 * LEAF;
    const fits = 12;
    const audit = new RecordingAudit();
    const m = await open({ quotaBytes: fits * size }, audit);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => m.seal(pattern(size, i + 1))),
    );
    const ok = results
      .filter((r) => r.status === 'fulfilled')
      .map((r) => (r as PromiseFulfilledResult<SealedShard>).value);
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(ok.length, fits);
    assert.ok(refused.every((r) => (r as PromiseRejectedResult).reason instanceof InsufficientVramError));
    const cap = await m.capacity();
    assert.equal(cap.usedBytes, fits * size);
    assert.equal(cap.availableBytes, 0);
    assert.equal(audit.of('vram.allocation_failed').length, 20 - fits);
    // concurrent verifies, samples and releases
    await Promise.all(ok.flatMap((s) => [m.verify(s), m.verifySample(s, { chunks: 2 })]));
    await Promise.all(ok.slice(0, 6).map((s) => Promise.all([m.verify(s), m.release(s)])));
    assert.equal((await m.capacity()).usedBytes, 6 * size);
    const more = await Promise.allSettled(Array.from({ length: 8 }, () => m.seal(pattern(size))));
    assert.equal(more.filter((r) => r.status === 'fulfilled').length, 6);
    assert.equal((await m.capacity()).usedBytes, fits * size);
    assert.equal(m.state, 'open');
    const dealloc = audit.of('vram.deallocated');
    assert.equal(dealloc.length, 6);
    assert.deepEqual(
      dealloc.map((e) => e.remaining_used).sort((a, b) => b - a),
      [11, 10, 9, 8, 7, 6].map((k) => k * size),
    );
  });

  scenario(
    'periodic verification runs, reports status, and stops the manager on corruption',
    async ({ m }) => {
      const a = await m.seal(pattern(3 * LEAF), { shardId: 'pa' });
      await m.seal(pattern(3 * LEAF, 2), { shardId: 'pb' });
      const p = m.startPeriodicVerification({ intervalMs: 15 });
      const until = async (cond: () => boolean) => {
        for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(cond(), 'condition reached in time');
      };
      await until(() => p.status().runs >= 2);
      const st = p.status();
      assert.equal(st.running, true);
      assert.equal(st.mode, 'full');
      assert.equal(st.failures, 0);
      assert.ok(st.shardsVerified >= 4);
      assert.ok(st.lastRunFinishedAt);
      await m.corruptForTesting(a, 5);
      await until(() => m.state === 'stopped');
      await until(() => p.status().failures === 1);
      assert.equal(p.status().running, false);
      assert.match(p.status().lastError ?? '', /pa/);
      await p.stop();
      assert.throws(() => m.startPeriodicVerification({ intervalMs: 1 }), StoppedError);
    },
  );

  scenario('close and asyncDispose release everything with vram.deallocated', async ({ open, free }) => {
    const before = await free();
    const audit = new RecordingAudit();
    const m = await open({}, audit);
    await m.seal(pattern(LEAF), { shardId: 'c1' });
    await m.seal(pattern(LEAF), { shardId: 'c2' });
    const p = m.startPeriodicVerification({ intervalMs: 1000 });
    const held = await free();
    await m.close();
    await m.close(); // idempotent
    assert.equal(p.status().running, false);
    const after = await free();
    assert.ok(after > held, 'close returned device memory');
    // Exact on the simulated device; a CUDA context may keep memory it loaded lazily (e.g. a module).
    if (kind === 'simulated') assert.equal(after, before);
    assert.deepEqual(
      audit.of('vram.deallocated').map((e) => [e.shard_id, e.reason]),
      [
        ['c1', 'close'],
        ['c2', 'close'],
      ],
    );
    await assert.rejects(m.seal(pattern(1)), /closed/);

    const audit2 = new RecordingAudit();
    const d = await open({}, audit2);
    await d.seal(pattern(LEAF), { shardId: 'd1' });
    const held2 = await free();
    await d[Symbol.asyncDispose]();
    assert.ok((await free()) > held2, 'dispose returned device memory');
    assert.deepEqual(
      audit2.of('vram.deallocated').map((e) => e.reason),
      ['dispose'],
    );
    if (kind === 'simulated') assert.equal(await free(), before);
  });

  scenario('execute verifies (sample by default, or full) then runs the function', async ({ m, audit }) => {
    const s = await m.seal(pattern(4 * LEAF));
    assert.equal(await m.execute(s, (x) => x.shard_id), s.shard_id);
    assert.equal(await m.execute(s, async () => 42, { verify: 'full' }), 42);
    assert.deepEqual(
      audit.of('seal.verified').map((e) => e.mode),
      ['sample', 'full'],
    );
    await m.corruptForTesting(s, 0);
    let ran = false;
    await assert.rejects(
      m.execute(
        s,
        () => {
          ran = true;
        },
        { verify: 'full' },
      ),
      SealVerificationFailedError,
    );
    assert.equal(ran, false);
  });

  scenario(
    'failClosed: an unavailable trail refuses seals; without it audit failures are counted, not blocking',
    async (ctx) => {
      const audit = new RecordingAudit();
      const m = await ctx.open({ failClosed: true }, audit);
      const s = await m.seal(pattern(LEAF));
      audit.state = 'unavailable';
      await assert.rejects(m.seal(pattern(LEAF)), AuditUnavailableError);
      audit.state = 'ok';
      audit.failDurable = new Error('disk full');
      await assert.rejects(m.seal(pattern(LEAF), { shardId: 'undone' }), (e: unknown) => {
        assert.ok(e instanceof AuditUnavailableError);
        assert.equal(e.retriable, true);
        return true;
      });
      assert.equal(m.shard('undone'), undefined);
      assert.equal((await m.capacity()).usedBytes, LEAF, 'the undone seal freed its memory');
      audit.failDurable = undefined;
      audit.throwOnEmit = new Error('trail unavailable');
      await assert.rejects(m.seal(pattern(LEAF)), AuditUnavailableError);
      audit.throwOnEmit = undefined;
      await m.verify(s);

      const lax = new RecordingAudit();
      const n = await ctx.open({}, lax);
      lax.throwOnEmit = new Error('trail unavailable');
      const t = await n.seal(pattern(LEAF));
      await n.verify(t);
      assert.equal(n.stats().auditFailures, 3);
      assert.match(n.stats().auditLastError ?? '', /trail unavailable/);
    },
  );

  scenario('secrets never reach events, errors, toJSON or inspect', async (ctx) => {
    const key = deriveSealKey(TOKEN, WORKER).export();
    const needles = [TOKEN, key.toString('hex'), key.toString('base64'), key.toString('base64url')];
    const seen: string[] = [];
    const { m, audit } = ctx;
    const s = await m.seal(pattern(3 * LEAF));
    seen.push(
      JSON.stringify(s),
      inspect(s, { showHidden: true, depth: 10 }),
      JSON.stringify(m),
      inspect(m, { showHidden: true }),
    );
    seen.push(
      JSON.stringify(m.stats()),
      JSON.stringify(await m.capacity()),
      inspect(Object.getOwnPropertyDescriptors(s)),
    );
    await m.corruptForTesting(s, 1);
    const errors: unknown[] = [];
    await m.verify(s).catch((e) => errors.push(e));
    await m.seal(pattern(1)).catch((e) => errors.push(e));
    for (const bad of ['short', `${TOKEN} `, `${TOKEN}\n`]) {
      await VramManager.open({ workerToken: bad, workerId: WORKER, audit, backend: ctx.backend }).catch((e) =>
        errors.push(e),
      );
    }
    const dir = await mkdtemp(join(tmpdir(), 'vramseal-tok-'));
    try {
      const file = join(dir, 'token');
      await writeFile(file, `${TOKEN}\n`, { mode: 0o644 });
      await chmod(file, 0o644);
      await VramManager.open({ tokenFile: file, workerId: WORKER, audit, backend: ctx.backend }).catch((e) =>
        errors.push(e),
      );
      await chmod(file, 0o600);
      const viaFile = await ctx.open({ workerToken: undefined, tokenFile: file });
      await viaFile.verify(await viaFile.seal(pattern(5))); // same token from the file works
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.ok(errors.length >= 6);
    for (const e of errors)
      seen.push(
        String(e),
        (e as Error).stack ?? '',
        inspect(e, { showHidden: true, depth: 10 }),
        JSON.stringify(e),
      );
    seen.push(JSON.stringify(audit.events));
    const all = seen.join('\n');
    for (const n of needles) assert.equal(all.includes(n), false, 'secret leaked');
    assert.match(all, /chmod 600/);
  });
}
