/**
 * The simulated backend: capacity enforced like cudaMalloc, env configuration, segment boundaries,
 * and its worker-pool digest against the CPU reference (property tests).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  AllocationFailedError,
  BackendUnavailableError,
  DeviceError,
  InvalidInputError,
} from '../src/errors.js';
import { leafHash, leafHashesOf, merkleRoot } from '../src/merkle.js';
import { StreamingMerkle } from '../src/merkle-stream.js';
import { parseByteSize, SIM_SEGMENT_BYTES, SimulatedBackend } from '../src/simulated/index.js';
import { pattern } from './helpers.js';

const MiB = 1024 * 1024;

test('capacity is enforced by the backend: over-allocation fails like cudaMalloc', async () => {
  const b = new SimulatedBackend({ devices: 2, vramBytes: 4 * MiB });
  try {
    const devs = await b.devices();
    assert.deepEqual(
      devs.map((d) => [d.index, d.kind, d.totalBytes, d.freeBytes]),
      [
        [0, 'simulated', 4 * MiB, 4 * MiB],
        [1, 'simulated', 4 * MiB, 4 * MiB],
      ],
    );
    const a = await b.allocate(0, 3 * MiB);
    assert.equal((await b.memoryInfo(0)).freeBytes, MiB);
    assert.equal((await b.memoryInfo(1)).freeBytes, 4 * MiB);
    await assert.rejects(b.allocate(0, MiB + 1), (e: unknown) => {
      assert.ok(e instanceof AllocationFailedError);
      assert.equal(e.retriable, true);
      assert.match(e.message, /out of memory/);
      return true;
    });
    const c = await b.allocate(0, MiB);
    await b.free(a);
    await assert.rejects(b.free(a), DeviceError, 'double free is refused');
    await assert.rejects(b.write(a, 0, new Uint8Array(1)), DeviceError, 'use after free is refused');
    await assert.rejects(b.allocate(2, 1), InvalidInputError);
    await assert.rejects(b.write(c, MiB - 1, new Uint8Array(2)), InvalidInputError);
    assert.equal((await b.memoryInfo(0)).freeBytes, 3 * MiB);
  } finally {
    await b.close();
  }
  await assert.rejects(b.devices(), BackendUnavailableError);
});

test('VRAMSEAL_SIM_DEVICES / VRAMSEAL_SIM_VRAM_BYTES configure the devices; bad values are named', async () => {
  const b = new SimulatedBackend({ env: { VRAMSEAL_SIM_DEVICES: '3', VRAMSEAL_SIM_VRAM_BYTES: '2GiB' } });
  assert.deepEqual(
    (await b.devices()).map((d) => d.totalBytes),
    [2 ** 31, 2 ** 31, 2 ** 31],
  );
  await b.close();
  const d = new SimulatedBackend({ env: {} });
  assert.equal((await d.devices())[0]?.totalBytes, 24 * 1024 ** 3);
  await d.close();
  assert.throws(() => new SimulatedBackend({ env: { VRAMSEAL_SIM_DEVICES: 'x' } }), {
    field: 'VRAMSEAL_SIM_DEVICES',
  });
  assert.throws(() => new SimulatedBackend({ env: { VRAMSEAL_SIM_VRAM_BYTES: '-1' } }), {
    field: 'VRAMSEAL_SIM_VRAM_BYTES',
  });
  assert.equal(parseByteSize('x', '1073741824'), 1024 ** 3);
  assert.equal(parseByteSize('x', '512MiB'), 512 * MiB);
  assert.throws(() => parseByteSize('x', '1.5GiB'), /positive byte count/);
});

test('reads, writes, corruption and leaf hashes across a segment boundary', async () => {
  const b = new SimulatedBackend({ vramBytes: 2 * SIM_SEGMENT_BYTES });
  try {
    const a = await b.allocate(0, SIM_SEGMENT_BYTES + 4096); // two segments; untouched pages cost nothing
    const at = SIM_SEGMENT_BYTES - 3;
    await b.write(a, at, Uint8Array.of(1, 2, 3, 4, 5, 6));
    assert.deepEqual([...(await b.read(a, at - 1, 8))], [0, 1, 2, 3, 4, 5, 6, 0]);
    await b.corrupt(a, at + 1, 4, 0x0f);
    assert.deepEqual([...(await b.read(a, at, 6))], [1, 2 ^ 15, 3 ^ 15, 4 ^ 15, 5 ^ 15, 6]);
    const L = 4096;
    const lastLeaf = SIM_SEGMENT_BYTES / L; // the leaf in the second segment
    const h = await b.leafHashes(a, L, [lastLeaf - 1, lastLeaf]);
    const tail = await b.read(a, (lastLeaf - 1) * L, L);
    assert.deepEqual(Buffer.from(h.subarray(0, 32)), Buffer.from(leafHash(tail)));
    assert.deepEqual(Buffer.from(h.subarray(32)), Buffer.from(leafHash(await b.read(a, lastLeaf * L, 4096))));
    await assert.rejects(b.leafHashes(a, L, [lastLeaf + 1]), InvalidInputError);
  } finally {
    await b.close();
  }
});

test('worker-pool digest = CPU reference, leaves included (property, random sizes and leaf sizes)', async () => {
  const b = new SimulatedBackend({ vramBytes: 64 * MiB, inlineDigestBytes: 0, workers: 2 });
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 300_000 }),
        fc.constantFrom(1024, 2048, 4096, 16384),
        fc.integer({ min: 1, max: 250 }),
        async (n, L, mul) => {
          const data = pattern(n, mul, n % 251);
          const a = await b.allocate(0, n);
          try {
            await b.writeFrom(
              a,
              (async function* () {
                for (let o = 0; o < n; o += 50_000) yield data.subarray(o, o + 50_000);
              })(),
            );
            const r = await b.merkle(a, { leafSize: L, wantLeaves: true });
            assert.deepEqual(Buffer.from(r.root), Buffer.from(merkleRoot(data, L)));
            assert.deepEqual(Buffer.from(r.leaves as Uint8Array), Buffer.from(leafHashesOf(data, L)));
            const part = Math.max(1, Math.floor(n / 3));
            const rp = await b.merkle(a, { leafSize: L, length: part });
            assert.deepEqual(Buffer.from(rp.root), Buffer.from(merkleRoot(data.subarray(0, part), L)));
          } finally {
            await b.free(a);
          }
        },
      ),
      { numRuns: 25 },
    );
  } finally {
    await b.close();
  }
});

test('streaming Merkle = CPU reference for any chunking (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 12_000 }),
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 8 }),
      fc.constantFrom(1024, 2048),
      (data, cuts, L) => {
        const s = new StreamingMerkle(L);
        let o = 0;
        for (let i = 0; o < data.length; i++) {
          const c = cuts[i % cuts.length] as number;
          s.update(data.subarray(o, o + c));
          o += c;
        }
        assert.equal(s.length, data.length);
        assert.deepEqual(Buffer.from(s.digest()), Buffer.from(merkleRoot(data, L)));
      },
    ),
    { numRuns: 150 },
  );
});
