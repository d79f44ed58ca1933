/**
 * RFC 9162 Merkle inclusion proofs (§2.1.3) and consistency proofs (§2.1.4): generation over any
 * {@link TreeReader} and verification with nothing but hashes (§2.1.3.2, §2.1.4.2).
 *
 * Proof elements are 32-byte node hashes, ordered from the leaf (or the old tree's root) upwards, exactly
 * as RFC 9162 (and RFC 6962, Certificate Transparency, transparency-dev/merkle) define them.
 */
import { TlogError } from './errors.js';
import { HASH_SIZE, hashChildren, splitPoint, type TreeReader } from './merkle.js';

function checkSize(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new TlogError('TLOG_BAD_INPUT', `${name}: must be a non-negative safe integer, got ${v}`);
  }
}

/**
 * RFC 9162 §2.1.3.1: the inclusion proof PATH(index, D[0:size]) of leaf `index` (0-based) in the tree of
 * the first `size` leaves of `tree`.
 */
export function inclusionProof(tree: TreeReader, index: number, size: number): Buffer[] {
  checkSize('index', index);
  checkSize('size', size);
  if (size > tree.size) {
    throw new TlogError('TLOG_BAD_INPUT', `size: ${size} exceeds the tree's ${tree.size} leaves`);
  }
  if (index >= size) throw new TlogError('TLOG_BAD_INPUT', `index: ${index} is not below size ${size}`);
  // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])        for m < k
  //               = PATH(m - k, D[k:n]) : MTH(D[0:k])    for m >= k
  // Walk from the root down; the element found at each level goes after the deeper ones.
  const topDown: Buffer[] = [];
  let lo = 0;
  let hi = size;
  let m = index;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (m < k) {
      topDown.push(tree.rangeHash(lo + k, hi));
      hi = lo + k;
    } else {
      topDown.push(tree.rangeHash(lo, lo + k));
      lo += k;
      m -= k;
    }
  }
  return topDown.reverse();
}

/**
 * RFC 9162 §2.1.4.1: the consistency proof PROOF(size1, D[0:size2]) that the tree of `size1` leaves is a
 * prefix of the tree of `size2` leaves. Empty when size1 is 0 or size1 = size2.
 */
export function consistencyProof(tree: TreeReader, size1: number, size2: number): Buffer[] {
  checkSize('size1', size1);
  checkSize('size2', size2);
  if (size2 > tree.size) {
    throw new TlogError('TLOG_BAD_INPUT', `size2: ${size2} exceeds the tree's ${tree.size} leaves`);
  }
  if (size1 > size2) throw new TlogError('TLOG_BAD_INPUT', `size1: ${size1} is larger than size2 ${size2}`);
  if (size1 === 0 || size1 === size2) return [];
  // SUBPROOF(m, D[n], b) = [] if m = n and b; [MTH(D[n])] if m = n and not b;
  //   SUBPROOF(m, D[0:k], b) : MTH(D[k:n])          for m <= k
  //   SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])  for m > k
  const topDown: Buffer[] = [];
  let lo = 0;
  let hi = size2;
  let m = size1;
  let b = true;
  while (m !== hi - lo) {
    const k = splitPoint(hi - lo);
    if (m <= k) {
      topDown.push(tree.rangeHash(lo + k, hi));
      hi = lo + k;
    } else {
      topDown.push(tree.rangeHash(lo, lo + k));
      lo += k;
      m -= k;
      b = false;
    }
  }
  if (!b) topDown.push(tree.rangeHash(lo, hi));
  return topDown.reverse();
}

function checkHashes(proof: readonly Uint8Array[], what: string): void {
  if (!Array.isArray(proof)) throw new TlogError('TLOG_PROOF_INVALID', `${what}: proof must be an array`);
  for (let i = 0; i < proof.length; i++) {
    if (!(proof[i] instanceof Uint8Array) || (proof[i] as Uint8Array).length !== HASH_SIZE) {
      throw new TlogError('TLOG_PROOF_INVALID', `${what}: proof[${i}] must be a ${HASH_SIZE}-byte hash`);
    }
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * RFC 9162 §2.1.3.2: the root hash an inclusion proof leads to, from the leaf hash of leaf `index` in a
 * tree of `size` leaves. Throws `TLOG_PROOF_INVALID` when the proof has the wrong shape for (index, size).
 */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Buffer {
  checkSize('index', index);
  checkSize('size', size);
  checkHashes(proof, 'inclusion');
  if (leafHash.length !== HASH_SIZE)
    throw new TlogError('TLOG_PROOF_INVALID', 'inclusion: leaf hash must be 32 bytes');
  // 1. If leaf_index >= tree_size, fail.
  if (index >= size)
    throw new TlogError('TLOG_PROOF_INVALID', `inclusion: index ${index} is not below size ${size}`);
  // 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leafHash);
  // 4. For each p in inclusion_path:
  for (const p of proof) {
    // a. If sn is 0, stop the iteration and fail the proof verification.
    if (sn === 0)
      throw new TlogError('TLOG_PROOF_INVALID', 'inclusion: proof is longer than the path to the root');
    // b. If LSB(fn) is set, or if fn is equal to sn, then:
    if (fn % 2 === 1 || fn === sn) {
      // i. r = HASH(0x01 || p || r)
      r = hashChildren(p, r);
      // ii. If LSB(fn) is not set, right-shift fn and sn equally until either LSB(fn) is set or fn is 0.
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      // Otherwise: r = HASH(0x01 || r || p)
      r = hashChildren(r, p);
    }
    // c. Finally, right-shift both fn and sn one time.
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5. Compare sn to 0 (the caller compares r to root_hash).
  if (sn !== 0)
    throw new TlogError('TLOG_PROOF_INVALID', 'inclusion: proof is shorter than the path to the root');
  return r;
}

/** RFC 9162 §2.1.3.2: true iff `proof` proves leaf `index` with `leafHash` is in the tree `root` of `size`. */
export function verifyInclusion(
  index: number,
  size: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  try {
    return equalBytes(rootFromInclusionProof(index, size, leafHash, proof), root);
  } catch (err) {
    if (err instanceof TlogError) return false;
    throw err;
  }
}

/**
 * RFC 9162 §2.1.4.2: checks that the tree `root1` of `size1` leaves is a prefix of the tree `root2` of
 * `size2` leaves. Throws `TLOG_PROOF_INVALID` naming the reason when not.
 */
export function assertConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): void {
  checkSize('size1', size1);
  checkSize('size2', size2);
  checkHashes(proof, 'consistency');
  const fail = (why: string): never => {
    throw new TlogError('TLOG_PROOF_INVALID', `consistency ${size1} -> ${size2}: ${why}`);
  };
  if (size2 < size1) fail('the second tree is smaller than the first');
  if (size1 === size2) {
    // Same tree: the proof is empty and the roots are equal.
    if (proof.length !== 0) fail('proof must be empty for equal sizes');
    if (!equalBytes(root1, root2)) fail('equal sizes but different roots');
    return;
  }
  if (size1 === 0) {
    // The empty tree is a prefix of every tree.
    if (proof.length !== 0) fail('proof must be empty from the empty tree');
    return;
  }
  // 1. If consistency_path is an empty array, stop and fail the proof verification.
  if (proof.length === 0) fail('empty proof');
  const path: Uint8Array[] = [...proof];
  // 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
  if (2 ** Math.floor(Math.log2(size1)) === size1) path.unshift(root1);
  // 3. Set fn to first - 1 and sn to second - 1.
  let fn = size1 - 1;
  let sn = size2 - 1;
  // 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5. Set both fr and sr to the first value in the consistency_path array.
  let fr: Buffer = Buffer.from(path[0] as Uint8Array);
  let sr: Buffer = Buffer.from(path[0] as Uint8Array);
  // 6. For each subsequent value c in the consistency_path array:
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    // a. If sn is 0, then stop the iteration and fail the proof verification.
    if (sn === 0) fail('proof is too long');
    // b. If LSB(fn) is set, or if fn is equal to sn, then:
    if (fn % 2 === 1 || fn === sn) {
      // i. Set fr to HASH(0x01 || c || fr). Set sr to HASH(0x01 || c || sr).
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      // ii. If LSB(fn) is not set, right-shift fn and sn equally until either LSB(fn) is set or fn is 0.
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      // Otherwise: Set sr to HASH(0x01 || sr || c).
      sr = hashChildren(sr, c);
    }
    // c. Finally, right-shift both fn and sn one time.
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 7. fr must equal first_hash, sr must equal second_hash, and sn must be 0.
  if (sn !== 0) fail('proof is too short');
  if (!equalBytes(fr, root1)) fail('proof does not lead to the first root');
  if (!equalBytes(sr, root2)) fail('proof does not lead to the second root');
}

/** RFC 9162 §2.1.4.2 as a boolean (see {@link assertConsistency} for the reason of a failure). */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): boolean {
  try {
    assertConsistency(size1, size2, proof, root1, root2);
    return true;
  } catch (err) {
    if (err instanceof TlogError) return false;
    throw err;
  }
}
