import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatDigest, merkleRoot, parseDigest } from '../src/merkle.js';

const sha = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const leaf = (c: Uint8Array) => sha(new Uint8Array(64), c);
const node = (l: Uint8Array, r: Uint8Array) => sha(Uint8Array.of(1), l, r);

// Straightforward RFC 9162 §2.1.1 recursion: split at the largest power of two k < n.
function mth(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return sha();
  if (leaves.length === 1) return leaves[0] as Uint8Array;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return node(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
function reference(data: Uint8Array, L: number): Uint8Array {
  const leaves: Uint8Array[] = [];
  for (let o = 0; o < data.length; o += L) leaves.push(leaf(data.subarray(o, Math.min(o + L, data.length))));
  return mth(leaves);
}

test('merkleRoot equals the RFC 9162 recursive definition (property)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 20 * 1024 }),
      fc.constantFrom(1024, 2048, 4096),
      (d, L) => {
        assert.deepEqual(Buffer.from(merkleRoot(d, L)), Buffer.from(reference(d, L)));
      },
    ),
    { numRuns: 200 },
  );
});

test('digest strings round-trip and reject malformed input', () => {
  const r = merkleRoot(new Uint8Array(5000), 1024);
  const s = formatDigest(1024, r);
  assert.match(s, /^sha256-merkle-v1:1024:[0-9a-f]{64}$/);
  assert.deepEqual(Buffer.from(parseDigest(s).root), Buffer.from(r));
  assert.throws(() => parseDigest(`sha256-merkle-v1:1000:${'0'.repeat(64)}`), /power of two/);
  assert.throws(() => parseDigest('sha256:abc'), /digest must look like/);
});
