/**
 * FORMAT.md is normative: its digest and seal test vectors are parsed from the document and checked
 * against the CPU reference (merkle.ts), the streaming builder, the simulated backend's worker-pool
 * digest, and seal.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { formatDigest, merkleRoot, parseDigest } from '../src/merkle.js';
import { StreamingMerkle } from '../src/merkle-stream.js';
import { computeSeal, deriveSealKey, encodeSealFields, type SealFields } from '../src/seal.js';
import { SimulatedBackend } from '../src/simulated/index.js';
import { pattern } from './helpers.js';

const doc = readFileSync(new URL('../FORMAT.md', import.meta.url), 'utf8');

function vectors(): { n: number; L: number; digest: string }[] {
  const out = [];
  for (const m of doc.matchAll(/^\| (\d+) +\| (\d+) +\| `(sha256-merkle-v1:[^`]+)` +\|$/gm)) {
    out.push({ n: Number(m[1]), L: Number(m[2]), digest: m[3] as string });
  }
  return out;
}

test('FORMAT.md lists the required digest vectors (0 < n < L, multiples, L + 1, large)', () => {
  const v = vectors();
  assert.ok(v.length >= 13);
  assert.ok(v.some((x) => x.n > 0 && x.n < x.L));
  assert.ok(v.some((x) => x.n === x.L));
  assert.ok(v.some((x) => x.n > x.L && x.n % x.L === 0));
  assert.ok(v.some((x) => x.n === x.L + 1));
  assert.ok(v.some((x) => x.n >= 64 * 1024 * 1024));
});

test('digest vectors: CPU reference and streaming builder', () => {
  for (const { n, L, digest } of vectors()) {
    const data = pattern(n);
    assert.equal(formatDigest(L, merkleRoot(data, L)), digest, `P(${n}), L=${L}`);
    const s = new StreamingMerkle(L);
    for (let off = 0; off < n; off += 777_777) s.update(data.subarray(off, off + 777_777));
    assert.equal(formatDigest(L, s.digest()), digest, `streaming P(${n}), L=${L}`);
    assert.deepEqual(parseDigest(digest).root, Buffer.from(merkleRoot(data, L)));
  }
  const big = pattern(64 * 1024 * 1024);
  assert.equal(
    createHash('sha256').update(big).digest('hex'),
    /Plain SHA-256 of `P\(67108864\)`[^`]*`([0-9a-f]{64})`/.exec(doc)?.[1],
  );
  for (const [byte, name] of [
    [0x00, '0x00'],
    [0xff, '0xff'],
  ] as const) {
    const want = new RegExp(`\\| 1048576 × ${name} +\\| 16384 \\| \`([^\`]+)\``).exec(doc)?.[1];
    assert.equal(formatDigest(16384, merkleRoot(Buffer.alloc(1048576, byte), 16384)), want);
  }
});

test('digest vectors: simulated backend, computed on worker threads from device memory', async () => {
  const b = new SimulatedBackend({
    devices: 1,
    vramBytes: 128 * 1024 * 1024,
    inlineDigestBytes: 0,
    workers: 2,
  });
  try {
    for (const { n, L, digest } of vectors()) {
      if (n === 0) continue; // allocations are > 0 bytes
      const a = await b.allocate(0, n);
      await b.write(a, 0, pattern(n));
      const r = await b.merkle(a, { leafSize: L });
      assert.equal(formatDigest(L, r.root), digest, `simulated P(${n}), L=${L}`);
      await b.free(a);
    }
  } finally {
    await b.close();
  }
});

test('seal vectors: HKDF key, canonical encoding and HMAC match FORMAT.md §2.4', () => {
  const field = (name: string, from = 0) => {
    const re = new RegExp(`^${name} +=\\s*(\\S+)$`, 'gm');
    re.lastIndex = from;
    const m = re.exec(doc);
    assert.ok(m, `FORMAT.md has ${name}`);
    return { value: m[1] as string, end: re.lastIndex };
  };
  const token = field('token').value;
  const workerId = field('worker_id').value;
  const key = deriveSealKey(token, workerId);
  assert.equal(key.export().toString('hex'), field('key').value);
  const a: SealFields = {
    shard_id: field('shard_id').value,
    digest: field('digest').value,
    sealed_at: field('sealed_at').value,
    gpu_device: Number(field('gpu_device').value),
    vram_bytes: Number(field('vram_bytes').value),
    model_ref: field('model_ref').value,
    shard_index: Number(field('shard_index').value),
    total_shards: Number(field('total_shards').value),
    backend: field('backend').value as 'simulated',
  };
  const mA = field('M');
  const sA = field('seal');
  assert.equal(encodeSealFields(a).toString('hex'), mA.value);
  assert.equal(computeSeal(key, a).toString('hex'), sA.value);
  const b: SealFields = {
    ...a,
    model_ref: undefined,
    shard_index: undefined,
    total_shards: undefined,
    backend: 'cuda',
  };
  assert.equal(encodeSealFields(b).toString('hex'), field('M', sA.end).value);
  assert.equal(computeSeal(key, b).toString('hex'), field('seal', sA.end).value);
});
