/**
 * VramManager paths that need a misbehaving or unusual device: backend policy violations, real
 * allocation failures, device errors mid-copy and mid-verify, external memory use, lagging memory
 * figures (admission must still be atomic), multiple devices, option validation, backend selection.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeviceAllocation, MerkleRequest, MerkleResult, WriteProgress } from '../src/backend.js';
import { openBackend } from '../src/backends.js';
import {
  AllocationFailedError,
  BackendUnavailableError,
  DeviceError,
  InsufficientVramError,
  IntegrityViolationError,
  InvalidInputError,
  PolicyViolationError,
  SealVerificationFailedError,
  StoppedError,
} from '../src/errors.js';
import { VramManager, type VramManagerOptions } from '../src/manager.js';
import { formatDigest, merkleRoot } from '../src/merkle.js';
import { SimulatedBackend } from '../src/simulated/index.js';
import { pattern, RecordingAudit, TOKEN } from './helpers.js';

const MiB = 1024 * 1024;

class FaultyBackend extends SimulatedBackend {
  allocateFault: Error | undefined;
  policyFault: PolicyViolationError | undefined;
  writeFault: Error | undefined;
  merkleFault: Error | undefined;
  externalUse = 0;
  freezeFreeAt: number | undefined;
  writeGate: Promise<void> | undefined;
  flipAfterWrite: number | undefined;
  chunkDelayMs = 0;
  chunksSeen = 0;
  override async allocate(device: number, bytes: number): Promise<DeviceAllocation> {
    if (this.allocateFault) throw this.allocateFault;
    return super.allocate(device, bytes);
  }
  override async memoryInfo(device: number) {
    const m = await super.memoryInfo(device);
    return { totalBytes: m.totalBytes, freeBytes: this.freezeFreeAt ?? m.freeBytes - this.externalUse };
  }
  override async writeFrom(
    a: DeviceAllocation,
    s: AsyncIterable<Uint8Array>,
    p?: WriteProgress,
  ): Promise<number> {
    await this.writeGate;
    if (this.writeFault) throw this.writeFault;
    const self = this;
    const slow = async function* () {
      for await (const c of s) {
        self.chunksSeen++;
        if (self.chunkDelayMs) await new Promise((r) => setTimeout(r, self.chunkDelayMs));
        yield c;
      }
    };
    const n = await super.writeFrom(a, slow(), p);
    if (this.flipAfterWrite !== undefined) await this.corrupt(a, this.flipAfterWrite, 1, 0x80); // a bad copy
    return n;
  }
  override async merkle(a: DeviceAllocation, r: MerkleRequest): Promise<MerkleResult> {
    if (this.merkleFault && !r.wantLeaves) throw this.merkleFault;
    return super.merkle(a, r);
  }
  async checkPolicy(device: number): Promise<void> {
    if (this.policyFault && device === 1) throw this.policyFault;
  }
}

async function setup(extra: Partial<VramManagerOptions> = {}, devices = 1) {
  const backend = new FaultyBackend({ devices, vramBytes: 16 * MiB });
  const audit = new RecordingAudit();
  const m = await VramManager.open({
    workerToken: TOKEN,
    workerId: 'w',
    audit,
    backend,
    leafSize: 1024,
    ...extra,
  });
  const done = async () => {
    await m.close();
    await backend.close();
    assert.deepEqual(audit.rejected, []);
  };
  return { backend, audit, m, done };
}

test('a backend policy violation on allocate emits security.policy_violation and vram.allocation_failed', async () => {
  const { backend, audit, m, done } = await setup();
  backend.allocateFault = new PolicyViolationError(
    'vram_only',
    'allocation is managed memory',
    'IS_MANAGED=1',
  );
  await assert.rejects(m.seal(pattern(4096)), PolicyViolationError);
  const [pv] = audit.of('security.policy_violation');
  assert.deepEqual([pv?.policy, pv?.severity, pv?.action_taken], ['vram_only', 'critical', 'seal_refused']);
  assert.match(audit.of('vram.allocation_failed')[0]?.reason ?? '', /managed memory/);
  assert.equal((await m.capacity()).usedBytes, 0);
  await done();
});

test('a real allocation failure is AllocationFailed (retriable) with vram.allocation_failed', async () => {
  const { backend, audit, m, done } = await setup();
  backend.allocateFault = new AllocationFailedError(0, 4096, 'CUDA_ERROR_OUT_OF_MEMORY');
  await assert.rejects(
    m.seal(pattern(4096)),
    (e: unknown) => e instanceof AllocationFailedError && e.retriable,
  );
  assert.match(audit.of('vram.allocation_failed')[0]?.reason ?? '', /CUDA_ERROR_OUT_OF_MEMORY/);
  backend.allocateFault = undefined;
  assert.equal((await m.capacity()).usedBytes, 0);
  await m.verify(await m.seal(pattern(4096)));
  await done();
});

test('a device policy violation at open refuses to start and is recorded', async () => {
  const backend = new FaultyBackend({ devices: 2, vramBytes: MiB });
  backend.policyFault = new PolicyViolationError(
    'vram_only',
    'integrated GPU (UMA)',
    'device 1 is integrated',
  );
  const audit = new RecordingAudit();
  await assert.rejects(
    VramManager.open({ workerToken: TOKEN, workerId: 'w', audit, backend }),
    PolicyViolationError,
  );
  const [pv] = audit.of('security.policy_violation');
  assert.deepEqual(
    [pv?.policy, pv?.action_taken, pv?.severity],
    ['vram_only', 'refused_to_start', 'critical'],
  );
  await backend.close();
});

test('admission stays atomic even when the device memory figure lags', async () => {
  const { backend, m, done } = await setup({ reserveBytes: 0 });
  backend.freezeFreeAt = 16 * MiB; // never reflects our own allocations
  const r = await Promise.allSettled(Array.from({ length: 10 }, () => m.seal(pattern(2 * MiB))));
  assert.equal(r.filter((x) => x.status === 'fulfilled').length, 8);
  assert.ok(
    r.every(
      (x) => x.status === 'fulfilled' || (x as PromiseRejectedResult).reason instanceof InsufficientVramError,
    ),
  );
  assert.equal((await m.capacity()).usedBytes, 16 * MiB);
  await done();
});

test('memory used by other processes is respected (device-wide free)', async () => {
  const { backend, audit, m, done } = await setup({ reserveBytes: MiB });
  backend.externalUse = 12 * MiB;
  await assert.rejects(m.seal(pattern(4 * MiB)), (e: unknown) => {
    assert.ok(e instanceof InsufficientVramError);
    assert.equal(e.available, 3 * MiB);
    assert.match(e.message, /device-wide/);
    return true;
  });
  assert.equal(audit.of('vram.allocation_failed')[0]?.available_bytes, 3 * MiB);
  assert.equal((await m.capacity()).availableBytes, 3 * MiB);
  await m.seal(pattern(3 * MiB));
  await done();
});

test('a copy failure frees the memory, records vram.deallocated (error) and does not stop the manager', async () => {
  const { backend, audit, m, done } = await setup();
  backend.writeFault = new DeviceError('cuMemcpyHtoDAsync', 'CUDA_ERROR_LAUNCH_FAILED');
  await assert.rejects(m.seal(pattern(5000), { shardId: 'x' }), DeviceError);
  assert.deepEqual(audit.types(), ['vram.allocated', 'vram.deallocated']);
  assert.equal(audit.of('vram.deallocated')[0]?.reason, 'error');
  assert.equal((await backend.memoryInfo(0)).freeBytes, 16 * MiB);
  assert.equal(m.state, 'open');
  backend.writeFault = undefined;
  await m.seal(pattern(5000), { shardId: 'x' }); // the id is free again
  await done();
});

test('a device error during verify is a verification failure: event and stop', async () => {
  const { backend, audit, m, done } = await setup();
  const s = await m.seal(pattern(5000));
  backend.merkleFault = new DeviceError('digest', 'CUDA_ERROR_ILLEGAL_ADDRESS');
  await assert.rejects(m.verify(s), SealVerificationFailedError);
  assert.match(audit.of('seal.verification_failed')[0]?.reason ?? '', /CUDA_ERROR_ILLEGAL_ADDRESS/);
  assert.equal(m.state, 'stopped');
  await done();
});

test('a seal in flight when the manager stops is undone', async () => {
  const { backend, audit, m, done } = await setup();
  const victim = await m.seal(pattern(3000), { shardId: 'victim' });
  let open!: () => void;
  backend.writeGate = new Promise((r) => (open = r));
  const pending = m.seal(pattern(3000), { shardId: 'late' });
  await new Promise((r) => setTimeout(r, 5));
  backend.writeGate = undefined;
  await m.corruptForTesting(victim, 0);
  await assert.rejects(m.verify(victim), SealVerificationFailedError);
  open();
  await assert.rejects(pending, StoppedError);
  assert.equal(m.shard('late'), undefined);
  assert.deepEqual(
    audit.of('vram.deallocated').map((e) => [e.shard_id, e.reason]),
    [['late', 'error']],
  );
  assert.equal((await m.capacity()).usedBytes, 3000);
  await done();
});

test('several devices: per-device placement, accounting and events', async () => {
  const { audit, m, done } = await setup({}, 2);
  const a = await m.seal(pattern(4096), { device: 1 });
  assert.equal(a.gpu_device, 1);
  assert.equal((await m.capacity(1)).usedBytes, 4096);
  assert.equal((await m.capacity(0)).usedBytes, 0);
  assert.equal((await m.capacity(1)).shards, 1);
  assert.deepEqual(
    audit.events.map((e) => ('gpu_device' in e ? e.gpu_device : -1)),
    [1, 1],
  );
  await m.verify(a);
  await assert.rejects(m.capacity(2), InvalidInputError);
  await done();
});

test('open() validates its options and names the field', async () => {
  const backend = new SimulatedBackend({ vramBytes: MiB });
  const audit = new RecordingAudit();
  const base = { workerToken: TOKEN, workerId: 'w', audit, backend };
  const cases: [Partial<VramManagerOptions> & Record<string, unknown>, string][] = [
    [{ workerId: 'a/b' }, 'workerId'],
    [{ workerId: undefined as unknown as string }, 'workerId'],
    [{ workerToken: undefined }, 'workerToken'],
    [{ tokenFile: '/tmp/x' }, 'workerToken'],
    [{ audit: {} as never }, 'audit'],
    [{ leafSize: 1000 }, 'leafSize'],
    [{ reserveBytes: -1 }, 'reserveBytes'],
    [{ maxModelBytes: 0 }, 'maxModelBytes'],
    [{ quotaBytes: -1 }, 'quotaBytes'],
    [{ tokenFile: '/nonexistent/token', workerToken: undefined }, 'tokenFile'],
  ];
  for (const [patch, field] of cases) {
    await assert.rejects(VramManager.open({ ...base, ...patch } as VramManagerOptions), (e: unknown) => {
      assert.ok(e instanceof InvalidInputError, field);
      assert.equal(e.field, field);
      return true;
    });
  }
  await backend.close();
});

test('openBackend: simulated, VRAMSEAL_BACKEND, invalid names, auto fallback with the reason', async () => {
  const s = await openBackend('simulated');
  assert.equal(s.kind, 'simulated');
  await s.close();
  const e = await openBackend(undefined, {
    env: { VRAMSEAL_BACKEND: 'simulated', VRAMSEAL_SIM_VRAM_BYTES: '1MiB' },
  });
  assert.equal((await e.devices())[0]?.totalBytes, MiB);
  await e.close();
  await assert.rejects(openBackend('tpu' as never), { field: 'backend' });
  await assert.rejects(openBackend(undefined, { env: { VRAMSEAL_BACKEND: 'gpu' } }), {
    field: 'VRAMSEAL_BACKEND',
  });
  let cudaHere = true;
  await openBackend('cuda').then(
    (b) => b.close(),
    (err) => {
      assert.ok(err instanceof BackendUnavailableError);
      assert.match(err.message, /backend cuda unavailable: \S/);
      cudaHere = false;
    },
  );
  const reasons: string[] = [];
  const auto = await openBackend('auto', { onFallback: (r) => reasons.push(r) });
  assert.equal(auto.kind, cudaHere ? 'cuda' : 'simulated');
  assert.equal(reasons.length, cudaHere ? 0 : 1);
  await auto.close();
});

test('a manager that opened its backend by name closes it; every handle says simulated', async () => {
  const audit = new RecordingAudit();
  const m = await VramManager.open({
    workerToken: TOKEN,
    workerId: 'w',
    audit,
    backend: 'simulated',
    backendOptions: { simulated: { vramBytes: MiB } },
  });
  assert.equal(m.backendKind, 'simulated');
  const s = await m.seal(pattern(10));
  assert.equal(s.backend, 'simulated');
  assert.ok(audit.events.every((e) => !('backend' in e) || e.backend === 'simulated'));
  await m.close();
  assert.equal(m.state, 'closed');
});

test('periodic sample verification: status through the handle and the manager', async () => {
  const { m, audit, done } = await setup();
  assert.equal(m.periodicStatus(), undefined);
  await m.seal(pattern(8192));
  assert.throws(() => m.startPeriodicVerification({ intervalMs: 5 }), { field: 'intervalMs' });
  assert.throws(() => m.startPeriodicVerification({ intervalMs: 20, mode: 'both' as never }), {
    field: 'mode',
  });
  const p = m.startPeriodicVerification({ intervalMs: 10, mode: 'sample', chunks: 2 });
  for (let i = 0; i < 300 && p.status().runs < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(p.status().runs >= 2);
  assert.equal(m.periodicStatus()?.mode, 'sample');
  await p.stop();
  const runs = p.status().runs;
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(p.status().runs, runs, 'no run after stop()');
  assert.equal(m.periodicStatus()?.running, false);
  const samples = audit.of('seal.verified');
  assert.ok(samples.length >= 2 && samples.every((e) => e.mode === 'sample' && e.chunks_checked === 2));
  await done();
});

test('a large file with expectedSha256 is hashed off-thread and checked against the device digest', async () => {
  const { m, audit, done } = await setup();
  const dir = await mkdtemp(join(tmpdir(), 'vramseal-big-'));
  try {
    const data = pattern(9 * MiB + 3, 17);
    const file = join(dir, 'big.bin');
    await writeFile(file, data);
    const sha = createHash('sha256').update(data).digest('hex');
    const s = await m.seal(file, { expectedSha256: sha });
    assert.equal(s.digest, formatDigest(1024, merkleRoot(data, 1024)));
    await m.release(s);
    await assert.rejects(m.seal(file, { expectedSha256: 'f'.repeat(64) }), IntegrityViolationError);
    assert.equal(audit.of('security.integrity_violation')[0]?.actual_hash, sha);
    assert.equal((await m.capacity()).usedBytes, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await done();
  }
});

test('with expectedSha256, device bytes that differ from the bytes read (a bad copy) are refused', async () => {
  const { backend, audit, m, done } = await setup();
  const data = pattern(50_000);
  backend.flipAfterWrite = 40_000;
  const sha = createHash('sha256').update(data).digest('hex');
  await assert.rejects(m.seal(data, { expectedSha256: sha }), /differ from the bytes read/);
  const [iv] = audit.of('security.integrity_violation');
  assert.equal(iv?.expected_hash, formatDigest(1024, merkleRoot(data, 1024)));
  assert.equal((await m.capacity()).usedBytes, 0);
  await done();
});

test('quotaBytes caps what one manager holds per device, below the device size', async () => {
  const { m, done } = await setup({ quotaBytes: 3 * MiB, reserveBytes: MiB });
  const cap = await m.capacity();
  assert.deepEqual([cap.availableBytes, cap.quotaBytes, cap.reserveBytes], [3 * MiB, 3 * MiB, MiB]);
  await m.seal(pattern(2 * MiB));
  await assert.rejects(m.seal(pattern(MiB + 1)), (e: unknown) => {
    assert.ok(e instanceof InsufficientVramError);
    assert.match(e.message, /quota 3145728 bytes/);
    return true;
  });
  await m.seal(pattern(MiB));
  assert.equal((await m.capacity()).availableBytes, 0);
  await done();
});

test('file sources use the backend writeFromFile fast path when no host hash is needed', async () => {
  const calls: string[] = [];
  class FileBackend extends SimulatedBackend {
    async writeFromFile(a: DeviceAllocation, path: string, p?: WriteProgress): Promise<number> {
      calls.push(path);
      const data = await readFile(path);
      await this.write(a, 0, data);
      p?.(data.length, a.bytes);
      return data.length;
    }
  }
  const backend = new FileBackend({ vramBytes: 4 * MiB });
  const audit = new RecordingAudit();
  const m = await VramManager.open({ workerToken: TOKEN, workerId: 'w', audit, backend, leafSize: 1024 });
  const dir = await mkdtemp(join(tmpdir(), 'vramseal-ff-'));
  try {
    const data = pattern(100_000, 9);
    const file = join(dir, 'f.bin');
    await writeFile(file, data);
    const a = await m.seal(file);
    assert.deepEqual(calls, [file]);
    assert.equal(a.digest, formatDigest(1024, merkleRoot(data, 1024)));
    const b = await m.seal(file, { expectedSha256: createHash('sha256').update(data).digest('hex') });
    assert.deepEqual(calls, [file], 'expectedSha256 streams through JS to hash the bytes read');
    assert.equal(b.digest, a.digest);
    await m.seal(data);
    assert.equal(calls.length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await m.close();
    await backend.close();
  }
});

test('close() during a long copy ends the copy early and frees its memory', async () => {
  const { backend, audit, m } = await setup();
  backend.chunkDelayMs = 5;
  const sealing = m.seal(pattern(MiB), { chunkBytes: 16 * 1024, shardId: 'long' });
  while (backend.chunksSeen < 3) await new Promise((r) => setTimeout(r, 2));
  await m.close();
  await assert.rejects(sealing, StoppedError);
  assert.ok(backend.chunksSeen < 64, `copy stopped early (${backend.chunksSeen} of 64 chunks)`);
  assert.deepEqual(
    audit.of('vram.deallocated').map((e) => [e.shard_id, e.reason]),
    [['long', 'error']],
  );
  assert.equal((await backend.memoryInfo(0)).freeBytes, 16 * MiB);
  await backend.close();
});
