/**
 * CPU implementation of the `sha256-merkle-v1` digest (FORMAT.md §Digest), the reference that
 * every backend must match bit for bit.
 *
 *   chunks:  the n bytes split into ceil(n / L) chunks of L bytes (the last may be shorter)
 *   leaf(c)  = SHA-256(P || c), P = 64 bytes: 0x00 followed by 63 zero bytes (RFC 9162 §2.1.1
 *              leaf prefix 0x00, padded to one SHA-256 block so chunk data stays block-aligned and
 *              the first compression is a constant midstate)
 *   node(l,r)= SHA-256(0x01 || l || r)                         (RFC 9162 §2.1.1 node prefix)
 *   MTH      = RFC 9162 §2.1.1 tree over the leaf hashes: for n > 1 split at the largest power of
 *              two k < n. Equivalently, bottom-up pairing where an odd last node is carried up unchanged.
 *   n = 0    → SHA-256("") (RFC 9162 MTH of the empty list)
 *   digest string: `sha256-merkle-v1:<L>:<64 lowercase hex>`
 */
import { createHash } from 'node:crypto';

export const DIGEST_SCHEME = 'sha256-merkle-v1';
export const MIN_LEAF_SIZE = 1024;
export const MAX_LEAF_SIZE = 16 * 1024 * 1024;
export const DEFAULT_LEAF_SIZE = 16 * 1024;
export const LEAF_PREFIX = new Uint8Array(64); // 0x00 then 63 zero bytes
const NODE_PREFIX = new Uint8Array([1]);

export function assertLeafSize(leafSize: number): void {
  if (
    !Number.isInteger(leafSize) ||
    leafSize < MIN_LEAF_SIZE ||
    leafSize > MAX_LEAF_SIZE ||
    (leafSize & (leafSize - 1)) !== 0
  ) {
    throw new RangeError(
      `leafSize must be a power of two between ${MIN_LEAF_SIZE} and ${MAX_LEAF_SIZE}, got ${leafSize}`,
    );
  }
}

export function leafCount(length: number, leafSize: number): number {
  return Math.ceil(length / leafSize);
}

export function leafHash(chunk: Uint8Array): Uint8Array {
  return createHash('sha256').update(LEAF_PREFIX).update(chunk).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** Hashes every leaf of `data` into one buffer of leafCount × 32 bytes. */
export function leafHashesOf(data: Uint8Array, leafSize: number): Uint8Array {
  assertLeafSize(leafSize);
  const n = leafCount(data.length, leafSize);
  const out = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) {
    out.set(leafHash(data.subarray(i * leafSize, Math.min(data.length, (i + 1) * leafSize))), i * 32);
  }
  return out;
}

/** Merkle tree head over concatenated 32-byte leaf hashes (bottom-up, odd node carried up). */
export function rootFromLeaves(leaves: Uint8Array): Uint8Array {
  let n = leaves.length / 32;
  if (!Number.isInteger(n)) throw new RangeError('leaf hash buffer length must be a multiple of 32');
  if (n === 0) return createHash('sha256').digest();
  let level = leaves;
  while (n > 1) {
    const m = Math.ceil(n / 2);
    const next = new Uint8Array(m * 32);
    for (let i = 0; i < Math.floor(n / 2); i++) {
      next.set(
        nodeHash(level.subarray(i * 64, i * 64 + 32), level.subarray(i * 64 + 32, i * 64 + 64)),
        i * 32,
      );
    }
    if (n % 2 === 1) next.set(level.subarray((n - 1) * 32, n * 32), (m - 1) * 32);
    level = next;
    n = m;
  }
  return level.slice(0, 32);
}

/** The Merkle tree head of `data` with leaf size `leafSize`. */
export function merkleRoot(data: Uint8Array, leafSize: number = DEFAULT_LEAF_SIZE): Uint8Array {
  return rootFromLeaves(leafHashesOf(data, leafSize));
}

export function formatDigest(leafSize: number, root: Uint8Array): string {
  return `${DIGEST_SCHEME}:${leafSize}:${Buffer.from(root).toString('hex')}`;
}

export function parseDigest(digest: string): { leafSize: number; root: Uint8Array } {
  const m = /^sha256-merkle-v1:(\d{1,9}):([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new RangeError('digest must look like sha256-merkle-v1:<leafSize>:<64 lowercase hex>');
  const leafSize = Number(m[1]);
  assertLeafSize(leafSize);
  return { leafSize, root: Buffer.from(m[2] as string, 'hex') };
}
