/**
 * RFC 9162 §2.1.1 Merkle Tree Hash over the audit trail, and the incremental tree that keeps it.
 *
 *   MTH({})       = SHA-256()
 *   MTH({d(0)})   = SHA-256(0x00 || d(0))                                  (leaf hash)
 *   MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))            (k = largest power of 2 < n)
 *
 * For a vramseal trail, leaf `i` (0-based) is the record with `seq = i + 1`, and its leaf input d(i) is
 * the record's 32-byte `hash` (the 64 hex chars decoded), so
 *
 *   leaf hash(seq) = SHA-256(0x00 || bytes(record.hash))
 *
 * The tree is kept as a "compact range" frontier in memory (one node per set bit of the size, which gives
 * the root in O(log n)) over a {@link NodeStore} that holds every complete aligned subtree hash by level:
 * level 0 = leaf hashes, level h = hashes of the perfect subtrees of 2^h leaves. Appending touches
 * amortised 2 nodes and at most log2(n) + 1; any MTH(D[a:b]) a proof needs is read from at most
 * 2·log2(n) stored nodes, so proofs never rehash the trail.
 */
import * as crypto from 'node:crypto';
import { TlogError } from './errors.js';

export const HASH_SIZE = 32;
const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

type OneShotHash = (alg: string, data: Uint8Array, enc: 'buffer') => Buffer;
// crypto.hash (Node >= 20.12) skips the Hash object: about 2x faster for 33/65-byte inputs.
const oneShot: OneShotHash | undefined = (crypto as unknown as { hash?: OneShotHash }).hash;
const sha256: (data: Uint8Array) => Buffer = oneShot
  ? (data) => oneShot('sha256', data, 'buffer')
  : (data) => crypto.createHash('sha256').update(data).digest();

const leafScratch = Buffer.alloc(1 + HASH_SIZE);
leafScratch[0] = LEAF_PREFIX;
const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE);
nodeScratch[0] = NODE_PREFIX;

/** RFC 9162 §2.1.1: the hash of the empty tree, SHA-256 of the empty string. */
export function emptyRoot(): Buffer {
  return sha256(Buffer.alloc(0));
}

/** RFC 9162 §2.1.1: leaf hash = SHA-256(0x00 || data), for leaf data of any length. */
export function hashLeaf(data: Uint8Array): Buffer {
  if (data.length === HASH_SIZE) {
    leafScratch.set(data, 1);
    return sha256(leafScratch);
  }
  const b = Buffer.allocUnsafe(1 + data.length);
  b[0] = LEAF_PREFIX;
  b.set(data, 1);
  return sha256(b);
}

/** RFC 9162 §2.1.1: interior node hash = SHA-256(0x01 || left || right). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    throw new TlogError('TLOG_BAD_INPUT', `node hash: children must be ${HASH_SIZE} bytes each`);
  }
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return sha256(nodeScratch);
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Leaf hash of an audit record: SHA-256(0x00 || the 32 bytes of its 64-hex `hash`). */
export function recordLeafHash(recordHashHex: string): Buffer {
  if (typeof recordHashHex !== 'string' || !HEX64.test(recordHashHex)) {
    throw new TlogError('TLOG_BAD_INPUT', 'record hash: must be 64 lowercase hex characters');
  }
  leafScratch.write(recordHashHex, 1, HASH_SIZE, 'hex');
  return sha256(leafScratch);
}

/**
 * {@link recordLeafHash} of the 64 hex characters at `offset` in `hex` (a batch of concatenated hashes),
 * without slicing. Buffer's hex decoder stops at the first non-hex pair, so a short decode is an error.
 */
function recordLeafHashAt(hex: string, offset: number): Buffer {
  const sub = hex.length === 64 && offset === 0 ? hex : hex.substring(offset, offset + 64);
  if (sub.length !== 64 || leafScratch.write(sub, 1, HASH_SIZE, 'hex') !== HASH_SIZE) {
    throw new TlogError('TLOG_BAD_INPUT', `record hash at ${offset / 64}: must be 64 hex characters`);
  }
  return sha256(leafScratch);
}

/** Largest power of two strictly less than n (n >= 2): the split point k of RFC 9162 §2.1.1. */
export function splitPoint(n: number): number {
  if (!(n >= 2)) throw new TlogError('TLOG_BAD_INPUT', `split point: n must be >= 2, got ${n}`);
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** Math.floor(Math.log2(n)) === n;
}

/** Reference MTH of a list of leaf hashes, straight from the RFC definition (tests and small trees). */
export function rootOfLeafHashes(leafHashes: readonly Uint8Array[]): Buffer {
  if (leafHashes.length === 0) return emptyRoot();
  const rec = (lo: number, hi: number): Buffer => {
    if (hi - lo === 1) return Buffer.from(leafHashes[lo] as Uint8Array);
    const k = splitPoint(hi - lo);
    return hashChildren(rec(lo, lo + k), rec(lo + k, hi));
  };
  return rec(0, leafHashes.length);
}

/**
 * Storage of complete aligned subtree hashes (Trillian/Tessera-style storage layer).
 * Level `h` holds, in order, the hashes of the perfect subtrees of 2^h leaves: node `i` covers leaves
 * [i·2^h, (i+1)·2^h). A tree of size n stores floor(n / 2^h) nodes at level h.
 */
export interface NodeStore {
  /** Number of nodes stored at `level`. */
  count(level: number): number;
  /** The node at (level, index); must exist. Returns a 32-byte buffer the caller may keep. */
  read(level: number, index: number): Buffer;
  /** Appends one node at `level` (its index must be count(level)). */
  append(level: number, hash: Uint8Array): void;
  /** Makes every appended node durable (write + fsync for files). */
  sync(): void;
  close(): void;
}

/** A {@link NodeStore} in memory (tests, proofs built on the fly from a trail). */
export class MemoryNodeStore implements NodeStore {
  #levels: Buffer[][] = [];
  count(level: number): number {
    return this.#levels[level]?.length ?? 0;
  }
  read(level: number, index: number): Buffer {
    const n = this.#levels[level]?.[index];
    if (!n) throw new TlogError('TLOG_CORRUPT', `node store: no node at level ${level} index ${index}`);
    return n;
  }
  append(level: number, hash: Uint8Array): void {
    let l = this.#levels[level];
    if (!l) {
      for (let i = this.#levels.length; i <= level; i++) this.#levels[i] = [];
      l = this.#levels[level] as Buffer[];
    }
    l.push(Buffer.from(hash));
  }
  sync(): void {}
  close(): void {}
}

/**
 * A {@link NodeStore} that keeps nothing but counts: a {@link MerkleTree} over it can append and give its
 * root (from the frontier, O(log n) memory) but not proofs. Used to recompute a trail's root streaming.
 */
export class FrontierOnlyStore implements NodeStore {
  #counts: number[] = [];
  count(level: number): number {
    return this.#counts[level] ?? 0;
  }
  read(level: number, index: number): Buffer {
    throw new TlogError('TLOG_BAD_INPUT', `frontier-only tree keeps no node (level ${level} index ${index})`);
  }
  append(level: number): void {
    this.#counts[level] = (this.#counts[level] ?? 0) + 1;
  }
  sync(): void {}
  close(): void {}
}

/** Read access to a tree's hashes, enough to build proofs (see proof.ts). */
export interface TreeReader {
  /** Current number of leaves. */
  readonly size: number;
  /** MTH(D[lo:hi]) for 0 <= lo < hi <= size (RFC 9162 §2.1.1 notation). */
  rangeHash(lo: number, hi: number): Buffer;
  /** MTH(D[0:size]) for size <= this.size. */
  rootAt(size: number): Buffer;
}

/**
 * The incremental RFC 9162 tree over a {@link NodeStore}.
 *
 * `append` is O(log n) worst case (amortised O(1) hashes); `root` is O(log n) from the in-memory
 * frontier; `rangeHash` reads at most O(log n) stored nodes.
 */
export class MerkleTree implements TreeReader {
  #store: NodeStore;
  #size: number;
  /** frontier[h] = hash of the perfect subtree of 2^h leaves at the right edge, when bit h of size is set. */
  #frontier: (Buffer | undefined)[] = [];

  /**
   * Opens a tree over `store`, whose level 0 count gives the size. The store must be consistent
   * (every level h holding floor(size / 2^h) nodes); {@link FileNodeStore} repairs itself to that on open.
   */
  constructor(store: NodeStore) {
    this.#store = store;
    const size = store.count(0);
    this.#size = size;
    for (let h = 0; 2 ** h <= size; h++) {
      const want = Math.floor(size / 2 ** h);
      if (store.count(h) !== want) {
        throw new TlogError(
          'TLOG_CORRUPT',
          `tree store: level ${h} holds ${store.count(h)} nodes, a tree of ${size} leaves needs ${want}`,
        );
      }
      if (Math.floor(size / 2 ** h) % 2 === 1) this.#frontier[h] = store.read(h, want - 1);
    }
  }

  get size(): number {
    return this.#size;
  }

  get store(): NodeStore {
    return this.#store;
  }

  /** Appends a leaf by its leaf hash (see {@link recordLeafHash}); returns the new size. */
  appendLeafHash(leafHash: Uint8Array): number {
    if (leafHash.length !== HASH_SIZE) throw new TlogError('TLOG_BAD_INPUT', 'leaf hash: must be 32 bytes');
    return this.#append(Buffer.from(leafHash));
  }

  /** Appends a leaf hash buffer the tree may keep (no copy: the hot path). */
  #append(leaf: Buffer): number {
    let carry = leaf;
    const store = this.#store;
    store.append(0, carry);
    let n = this.#size;
    let h = 0;
    // Each set low bit of the old size is a complete left sibling: merge it (binary-counter carry).
    while (n & 1) {
      const left = this.#frontier[h] as Buffer;
      this.#frontier[h] = undefined;
      carry = hashChildren(left, carry);
      h++;
      store.append(h, carry);
      n = Math.floor(n / 2);
    }
    this.#frontier[h] = carry;
    this.#size++;
    return this.#size;
  }

  /** Appends the record whose hash is `recordHashHex` (64 hex). */
  appendRecordHash(recordHashHex: string): number {
    return this.#append(recordLeafHash(recordHashHex));
  }

  /**
   * Appends `count` records whose hashes are concatenated in `hashesHex` (64 hex each) from record
   * `from` on. The batch path of the live tree: one string, no per-record copies.
   */
  appendRecordHashes(hashesHex: string, from = 0, count = hashesHex.length / 64 - from): number {
    for (let i = from; i < from + count; i++) this.#append(recordLeafHashAt(hashesHex, i * 64));
    return this.#size;
  }

  /** Root hash of the current tree (RFC 9162 §2.1.1; SHA-256("") when empty). */
  root(): Buffer {
    let acc: Buffer | undefined;
    for (let h = 0; h < this.#frontier.length; h++) {
      const f = this.#frontier[h];
      if (!f) continue;
      acc = acc ? hashChildren(f, acc) : f;
    }
    return acc ? Buffer.from(acc) : emptyRoot();
  }

  /** Leaf hash at 0-based `index`. */
  leafHash(index: number): Buffer {
    this.#checkRange(index, index + 1);
    return this.#store.read(0, index);
  }

  rootAt(size: number): Buffer {
    if (size === this.#size) return this.root();
    if (size === 0) return emptyRoot();
    return this.rangeHash(0, size);
  }

  rangeHash(lo: number, hi: number): Buffer {
    this.#checkRange(lo, hi);
    const n = hi - lo;
    // A perfect aligned subtree is one stored node.
    if (isPowerOfTwo(n) && lo % n === 0) return this.#store.read(Math.log2(n), lo / n);
    const k = splitPoint(n);
    return hashChildren(this.rangeHash(lo, lo + k), this.rangeHash(lo + k, hi));
  }

  #checkRange(lo: number, hi: number): void {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo < 0 || hi <= lo || hi > this.#size) {
      throw new TlogError(
        'TLOG_BAD_INPUT',
        `range [${lo}, ${hi}) is not inside a tree of ${this.#size} leaves`,
      );
    }
  }
}
