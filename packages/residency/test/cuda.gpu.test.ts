/**
 * CUDA backend on a real GPU (`npm run test:gpu`). Without a GPU every test is skipped with a
 * visible notice naming the reason, and nothing fails for that reason.
 *
 * Runs the VramManager behaviour suite unchanged on the `cuda` backend, plus CUDA-specific checks:
 * device facts and policy, pointer attributes, GPU digest = CPU digest, cuMemsetD8 corruption
 * detected and localized from device-computed leaf hashes, memory returned on release, the event
 * loop kept running during long GPU work, and every device of a multi-GPU host.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeviceAllocation, DeviceBackend } from '../src/backend.js';
import { openBackend } from '../src/backends.js';
import { loadDriver } from '../src/cuda/driver.js';
import { type CudaBackend, openCudaBackend } from '../src/cuda/index.js';
import { checkAllocationPolicy } from '../src/cuda/policy.js';
import { AllocationFailedError, PolicyViolationError } from '../src/errors.js';
import { VramManager } from '../src/manager.js';
import { leafHashesOf, merkleRoot, rootFromLeaves } from '../src/merkle.js';
import { registerBehaviourSuite } from './behaviour-suite.js';
import { pattern, prng, RecordingAudit, TOKEN } from './helpers.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const STAGING = 8 * MiB;

let reason = '';
try {
  const b = await openCudaBackend({ stagingBytes: STAGING });
  await b.close();
} catch (e) {
  reason = (e as Error).message;
}
const skip = reason ? `no CUDA device: ${reason}` : false;
if (skip) console.log(`# cuda.gpu.test.ts: SKIPPED — ${skip}`);

async function withBackend(fn: (b: CudaBackend) => Promise<void>): Promise<void> {
  const b = await openCudaBackend({ stagingBytes: STAGING });
  try {
    await fn(b);
  } finally {
    await b.close();
  }
}

async function upload(b: CudaBackend, data: Uint8Array, device = 0): Promise<DeviceAllocation> {
  const a = await b.allocate(device, data.length);
  async function* chunks() {
    // odd chunk sizes that straddle staging buffers
    for (let off = 0; off < data.length; off += 3 * MiB + 7) yield data.subarray(off, off + 3 * MiB + 7);
  }
  assert.equal(await b.writeFrom(a, chunks()), data.length);
  return a;
}

const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');

if (!skip) {
  registerBehaviourSuite({
    name: 'cuda',
    open: () => openBackend('cuda', { cuda: { stagingBytes: STAGING } }),
  });
} else {
  test('[cuda] VramManager behaviour suite', { skip }, () => {});
}

test('devices: name, PCI bus id, compute capability, memory, driver version; policy passes', {
  skip,
}, async () => {
  await withBackend(async (b) => {
    const devs = await b.devices();
    assert.ok(devs.length >= 1);
    for (const d of devs) {
      assert.equal(d.kind, 'cuda');
      assert.ok(d.name.length > 0);
      assert.match(d.pciBusId ?? '', /^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F]$/);
      assert.match(d.computeCapability ?? '', /^\d+\.\d$/);
      assert.match(d.driverVersion ?? '', /^\d+\.\d+$/);
      assert.equal(d.integrated, false);
      assert.ok(d.totalBytes >= GiB && d.freeBytes <= d.totalBytes && d.freeBytes > 0);
      await b.checkPolicy?.(d.index);
    }
    console.log(
      `# ${devs.map((d) => `${d.name} cc ${d.computeCapability} driver ${d.driverVersion}`).join('; ')}`,
    );
  });
});

test('pointer attributes: cuMemAlloc memory passes; pinned host and managed memory are refused', {
  skip,
}, async () => {
  await withBackend(async (b) => {
    const a = await b.allocate(0, MiB); // allocate() itself checks MEMORY_TYPE/IS_MANAGED/ordinal
    await b.free(a);
    const drv = loadDriver();
    const host = drv.hostAlloc(4096);
    try {
      assert.throws(
        () => checkAllocationPolicy(drv, 0, host.addr),
        (e: unknown) =>
          e instanceof PolicyViolationError && /not device memory.*MEMORY_TYPE is 1/.test(e.message),
      );
    } finally {
      drv.hostFree(host.handle);
    }
    const managed = drv.memAllocManagedForTest(4096);
    try {
      assert.throws(
        () => checkAllocationPolicy(drv, 0, managed),
        (e: unknown) =>
          e instanceof PolicyViolationError && /managed memory.*IS_MANAGED is 1/.test(e.message),
      );
    } finally {
      drv.memFree(managed);
    }
  });
});

test('GPU digest = CPU digest: vectors and random sizes, full leaves and selected leaves', {
  skip,
}, async () => {
  await withBackend(async (b) => {
    const rnd = prng(0x5eed);
    const data = randomBytes(40 * MiB + 333);
    const a = await upload(b, data);
    try {
      assert.equal(hex(await b.read(a, 12345, 1000)), hex(data.subarray(12345, 13345)), 'read back equals');
      const cases: [number, number][] = [
        [0, 16384],
        [1, 16384],
        [55, 1024],
        [56, 1024],
        [64, 1024],
        [1023, 1024],
        [1024, 1024],
        [1025, 1024],
        [16383, 16384],
        [16384, 16384],
        [16385, 16384],
        [5 * 16384 + 17, 16384],
        [data.length, 16384],
        [data.length, 1 << 20],
        [data.length, 1024],
      ];
      for (let i = 0; i < 12; i++)
        cases.push([1 + rnd(8 * MiB), [1024, 4096, 16384, 65536][rnd(4)] as number]);
      for (const [len, leaf] of cases) {
        const view = data.subarray(0, len);
        const got = await b.merkle(a, { leafSize: leaf, length: len, wantLeaves: true });
        assert.equal(hex(got.root), hex(merkleRoot(view, leaf)), `root, length ${len}, leaf ${leaf}`);
        assert.equal(
          hex(got.leaves ?? new Uint8Array()),
          hex(leafHashesOf(view, leaf)),
          `leaves, length ${len}`,
        );
      }
      const all = leafHashesOf(data, 16384);
      const idx = [0, 7, 2559, 1, 2560, 100, 7];
      const some = await b.leafHashes(a, 16384, idx);
      assert.equal(hex(some), idx.map((i) => hex(all.subarray(32 * i, 32 * i + 32))).join(''));
      const t = b.lastDigestTiming();
      assert.ok(t && t.gpuMs > 0 && t.device === 0);
    } finally {
      await b.free(a);
    }
  });
});

test('digest in several segments (small segmentLeaves) equals the CPU digest', { skip }, async () => {
  const b = await openCudaBackend({ stagingBytes: STAGING, segmentLeaves: 2048 });
  try {
    const data = randomBytes(3 * 2048 * 1024 + 5 * 1024 + 77);
    const a = await upload(b, data);
    try {
      for (const [len, leaf] of [
        [data.length, 1024],
        [2048 * 1024, 1024],
        [2048 * 1024 + 1, 1024],
        [4096 * 1024, 1024],
        [data.length, 4096],
      ] as const) {
        const view = data.subarray(0, len);
        const got = await b.merkle(a, { leafSize: leaf, length: len, wantLeaves: true });
        assert.equal(hex(got.root), hex(merkleRoot(view, leaf)), `root, length ${len}, leaf ${leaf}`);
        assert.equal(hex(got.leaves ?? new Uint8Array()), hex(leafHashesOf(view, leaf)));
      }
    } finally {
      await b.free(a);
    }
  } finally {
    await b.close();
  }
});

test('writeFromFile reads a file straight into pinned staging and onto the device', { skip }, async () => {
  await withBackend(async (b) => {
    const dir = await mkdtemp(join(tmpdir(), 'vramseal-cuda-'));
    try {
      const data = randomBytes(3 * STAGING + 12345);
      const file = join(dir, 'shard.bin');
      await writeFile(file, data);
      const a = await b.allocate(0, data.length + 100);
      try {
        const seen: number[] = [];
        assert.equal(await b.writeFromFile(a, file, (done) => seen.push(done)), data.length);
        assert.equal(seen.at(-1), data.length);
        const got = await b.merkle(a, { leafSize: 16384, length: data.length });
        assert.equal(hex(got.root), hex(merkleRoot(data, 16384)));
      } finally {
        await b.free(a);
      }
      const small = await b.allocate(0, 1000);
      await assert.rejects(b.writeFromFile(small, file), /more than the allocation/);
      await b.free(small);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('cuMemsetD8 corruption at random offsets is detected and localized without copying the shard back', {
  skip,
}, async () => {
  await withBackend(async (b) => {
    const rnd = prng(42);
    const leaf = 16384;
    const data = pattern(24 * MiB + 5000, 7, 3);
    const a = await upload(b, data);
    try {
      const sealed = await b.merkle(a, { leafSize: leaf, wantLeaves: true });
      assert.equal(hex(sealed.root), hex(merkleRoot(data, leaf)));
      const offsets = [0, data.length - 1];
      for (let i = 0; i < 6; i++) offsets.push(rnd(data.length));
      const expectBad = new Set<number>();
      for (const off of offsets) {
        await b.memsetD8(a, off, ((data[off] as number) ^ 0x5a) & 0xff, 1);
        expectBad.add(Math.floor(off / leaf));
      }
      const now = await b.merkle(a, { leafSize: leaf, wantLeaves: true });
      assert.notEqual(hex(now.root), hex(sealed.root), 'corruption changes the root');
      const bad: number[] = [];
      const L0 = sealed.leaves as Uint8Array;
      const L1 = now.leaves as Uint8Array;
      for (let i = 0; i < L0.length / 32; i++) {
        if (Buffer.compare(L0.subarray(32 * i, 32 * i + 32), L1.subarray(32 * i, 32 * i + 32)) !== 0)
          bad.push(i);
      }
      assert.deepEqual(
        bad,
        [...expectBad].sort((x, y) => x - y),
        'exactly the corrupted leaves differ',
      );
      assert.equal(hex(rootFromLeaves(L1)), hex(now.root));
      // spot check of the corrupted leaves alone agrees
      const spot = await b.leafHashes(a, leaf, bad);
      assert.equal(hex(spot), bad.map((i) => hex(L1.subarray(32 * i, 32 * i + 32))).join(''));
      // corrupt() (XOR) restores when applied twice
      await b.corrupt(a, 100, 3, 0x0f);
      await b.corrupt(a, 100, 3, 0x0f);
      assert.equal(hex((await b.merkle(a, { leafSize: leaf })).root), hex(now.root));
    } finally {
      await b.free(a);
    }
  });
});

test('release returns memory; an impossible allocation is AllocationFailed (retriable)', {
  skip,
}, async () => {
  await withBackend(async (b) => {
    const before = (await b.memoryInfo(0)).freeBytes;
    const a = await b.allocate(0, GiB);
    const during = (await b.memoryInfo(0)).freeBytes;
    assert.ok(before - during >= GiB, `free bytes drop by ≥ 1 GiB (${before} → ${during})`);
    await b.free(a);
    const after = (await b.memoryInfo(0)).freeBytes;
    assert.ok(after - during >= GiB, `free bytes come back (${during} → ${after})`);
    const total = (await b.memoryInfo(0)).totalBytes;
    await assert.rejects(
      b.allocate(0, total * 2),
      (e: unknown) =>
        e instanceof AllocationFailedError && e.retriable && /CUDA_ERROR_OUT_OF_MEMORY/.test(e.message),
    );
    await assert.rejects(b.free(a), /unknown or freed allocation/);
  });
});

test('a real CUDA out-of-memory during seal is AllocationFailed (retriable) with vram.allocation_failed', {
  skip,
}, async () => {
  const inner = await openCudaBackend({ stagingBytes: STAGING });
  const hogs: DeviceAllocation[] = [];
  // Passes the manager's admission, then lets another "process" take the memory before cuMemAlloc.
  const backend: DeviceBackend = {
    kind: 'cuda',
    devices: () => inner.devices(),
    memoryInfo: (d) => inner.memoryInfo(d),
    allocate: async (device, bytes) => {
      const free = (await inner.memoryInfo(device)).freeBytes;
      hogs.push(await inner.allocate(device, free - 64 * MiB));
      return inner.allocate(device, Math.max(bytes, 256 * MiB));
    },
    free: (a) => inner.free(a),
    write: (a, o, d) => inner.write(a, o, d),
    writeFrom: (a, src, p) => inner.writeFrom(a, src, p),
    read: (a, o, n) => inner.read(a, o, n),
    merkle: (a, r) => inner.merkle(a, r),
    leafHashes: (a, l, i, n) => inner.leafHashes(a, l, i, n),
    corrupt: (a, o, n, k) => inner.corrupt(a, o, n, k),
    close: async () => {},
  };
  const audit = new RecordingAudit();
  const m = await VramManager.open({ workerToken: TOKEN, workerId: 'w-oom', audit, backend, leafSize: 1024 });
  try {
    await assert.rejects(
      m.seal(pattern(4096)),
      (e: unknown) =>
        e instanceof AllocationFailedError && e.retriable && /CUDA_ERROR_OUT_OF_MEMORY/.test(e.message),
    );
    const failed = audit.of('vram.allocation_failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.backend, 'cuda');
    assert.equal(m.state, 'open', 'an allocation failure does not stop the manager');
  } finally {
    await m.close();
    for (const h of hogs) await inner.free(h);
    await inner.close();
  }
});

test('the event loop keeps running during a 2 GiB copy and its digest', { skip }, async () => {
  await withBackend(async (b) => {
    const block = pattern(256 * MiB, 13, 1);
    const a = await b.allocate(0, 8 * block.length);
    try {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      let progressCalls = 0;
      async function* src() {
        for (let i = 0; i < 8; i++) yield block;
      }
      const t0 = performance.now();
      await b.writeFrom(a, src(), () => progressCalls++);
      const copyMs = performance.now() - t0;
      const copyTicks = ticks;
      const { root } = await b.merkle(a, { leafSize: 16384 });
      clearInterval(timer);
      assert.ok(progressCalls >= 8, 'progress reported per chunk');
      assert.equal(b.pinnedBytes, 2 * STAGING, 'pinned staging stays bounded (2 buffers) for a 2 GiB shard');
      assert.ok(copyTicks >= 3, `timers fired during the copy (${copyTicks} in ${copyMs.toFixed(0)} ms)`);
      const oneBlock = leafHashesOf(block, 16384);
      const leaves = new Uint8Array(oneBlock.length * 8);
      for (let i = 0; i < 8; i++) leaves.set(oneBlock, i * oneBlock.length);
      assert.equal(hex(root), hex(rootFromLeaves(leaves)));
    } finally {
      await b.free(a);
    }
  });
});

test('every device of a multi-GPU host seals and digests', { skip }, async (t) => {
  await withBackend(async (b) => {
    const devs = await b.devices();
    if (devs.length < 2) {
      t.skip(`single GPU host (${devs[0]?.name}): multi-device not exercised`);
      return;
    }
    const data = randomBytes(3 * MiB + 11);
    const want = hex(merkleRoot(data, 16384));
    // each device gets its own bounded pinned pool, so the copies below run in parallel
    await Promise.all(
      devs.map(async (d) => {
        const a = await upload(b, data, d.index);
        try {
          assert.equal(hex((await b.merkle(a, { leafSize: 16384 })).root), want, `device ${d.index}`);
          assert.equal(hex(await b.read(a, 1000, 64)), hex(data.subarray(1000, 1064)));
        } finally {
          await b.free(a);
        }
      }),
    );
    assert.equal(b.pinnedBytes, devs.length * 2 * STAGING);
  });
});

test('old method for reference: device → host copy + CPU SHA-256 equals hashing the source', {
  skip,
}, async () => {
  await withBackend(async (b) => {
    const data = randomBytes(20 * MiB + 1);
    const a = await upload(b, data);
    try {
      assert.equal(hex(await b.hostSha256(a)), createHash('sha256').update(data).digest('hex'));
    } finally {
      await b.free(a);
    }
  });
});
