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

/*
 * SHA-256 (FIPS 180-4 §6.2) specialised for the tree's two fixed-size inputs, in JavaScript.
 *
 * A leaf input 0x00 || 32 bytes is one padded 64-byte block, a node input 0x01 || 32 || 32 two blocks.
 * With SHA extensions OpenSSL compresses a block in tens of nanoseconds, so for inputs this short the
 * cost of node:crypto is the call itself (≈ 1.2–1.7 µs measured per crypto.hash on the 2-vCPU EPYC dev
 * box, with its result Buffer); the compression function below in V8 takes ≈ 0.6 µs per leaf and
 * ≈ 0.85 µs per node there, and writes straight into the caller's buffer. Inputs are public hashes, so
 * constant time is not a concern. The module checks it against node:crypto once at load (see
 * `fastHashOk`) and falls back to node:crypto should they ever disagree.
 */
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
const IV = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
/** Message schedule and chaining state (module scratch: the functions below are not re-entrant). */
const W = new Int32Array(64);
const H = new Int32Array(8);

/** FIPS 180-4 §6.2.2: one block (W[0..15] filled in) into H. */
function compress(): void {
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15] as number;
    const w2 = W[i - 2] as number;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = ((W[i - 16] as number) + s0 + (W[i - 7] as number) + s1) | 0;
  }
  let a = H[0] as number;
  let b = H[1] as number;
  let c = H[2] as number;
  let d = H[3] as number;
  let e = H[4] as number;
  let f = H[5] as number;
  let g = H[6] as number;
  let h = H[7] as number;
  // Two rounds per iteration, the second with the variables' roles shifted by one (so no register
  // moves), Ch(e,f,g) = g ^ (e & (f ^ g)) and Maj(a,b,c) = (a & b) | (c & (a | b)): ≈ 15 % fewer cycles.
  for (let i = 0; i < 64; i += 2) {
    let t1 =
      (h +
        (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
        (g ^ (e & (f ^ g))) +
        (K[i] as number) +
        (W[i] as number)) |
      0;
    let t2 =
      (((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
      ((a & b) | (c & (a | b)));
    h = (d + t1) | 0; // new e
    d = (t1 + t2) | 0; // new a
    t1 =
      (g +
        (((h >>> 6) | (h << 26)) ^ ((h >>> 11) | (h << 21)) ^ ((h >>> 25) | (h << 7))) +
        (f ^ (h & (e ^ f))) +
        (K[i + 1] as number) +
        (W[i + 1] as number)) |
      0;
    t2 =
      (((d >>> 2) | (d << 30)) ^ ((d >>> 13) | (d << 19)) ^ ((d >>> 22) | (d << 10))) +
      ((d & a) | (b & (d | a)));
    const e2 = (c + t1) | 0;
    const a2 = (t1 + t2) | 0;
    // After two rounds: (a, b, c, d, e, f, g, h) = (a2, new a, old a, old b, e2, new e, old e, old f).
    c = a;
    a = a2;
    const oldB = b;
    b = d;
    d = oldB;
    g = e;
    e = e2;
    const oldF = f;
    f = h;
    h = oldF;
  }
  H[0] = ((H[0] as number) + a) | 0;
  H[1] = ((H[1] as number) + b) | 0;
  H[2] = ((H[2] as number) + c) | 0;
  H[3] = ((H[3] as number) + d) | 0;
  H[4] = ((H[4] as number) + e) | 0;
  H[5] = ((H[5] as number) + f) | 0;
  H[6] = ((H[6] as number) + g) | 0;
  H[7] = ((H[7] as number) + h) | 0;
}

/** Big-endian word of the 4 bytes at s[k..k+4). */
function word(s: Uint8Array, k: number): number {
  return (
    ((s[k] as number) << 24) |
    ((s[k + 1] as number) << 16) |
    ((s[k + 2] as number) << 8) |
    (s[k + 3] as number)
  );
}

function digestInto(out: Uint8Array, q: number): void {
  for (let i = 0; i < 8; i++) {
    const v = H[i] as number;
    out[q + 4 * i] = v >>> 24;
    out[q + 4 * i + 1] = v >>> 16;
    out[q + 4 * i + 2] = v >>> 8;
    out[q + 4 * i + 3] = v;
  }
}

/** out[q..q+32) = SHA-256(0x00 || s[p..p+32)): one block, bit length 264. */
function jsLeafInto(s: Uint8Array, p: number, out: Uint8Array, q: number): void {
  H.set(IV);
  W[0] = ((s[p] as number) << 16) | ((s[p + 1] as number) << 8) | (s[p + 2] as number);
  for (let j = 1; j < 8; j++) W[j] = word(s, p + 4 * j - 1);
  W[8] = ((s[p + 31] as number) << 24) | 0x800000;
  for (let j = 9; j < 15; j++) W[j] = 0;
  W[15] = 264;
  compress();
  digestInto(out, q);
}

/** out[q..q+32) = SHA-256(0x01 || l[lp..lp+32) || r[rp..rp+32)): two blocks, bit length 520. */
function jsNodeInto(l: Uint8Array, lp: number, r: Uint8Array, rp: number, out: Uint8Array, q: number): void {
  H.set(IV);
  W[0] = 0x01000000 | ((l[lp] as number) << 16) | ((l[lp + 1] as number) << 8) | (l[lp + 2] as number);
  for (let j = 1; j < 8; j++) W[j] = word(l, lp + 4 * j - 1);
  W[8] =
    ((l[lp + 31] as number) << 24) |
    ((r[rp] as number) << 16) |
    ((r[rp + 1] as number) << 8) |
    (r[rp + 2] as number);
  for (let j = 1; j < 8; j++) W[8 + j] = word(r, rp + 4 * j - 1);
  compress();
  W[0] = ((r[rp + 31] as number) << 24) | 0x800000;
  for (let j = 1; j < 15; j++) W[j] = 0;
  W[15] = 520;
  compress();
  digestInto(out, q);
}

const leafScratch = Buffer.alloc(1 + HASH_SIZE);
leafScratch[0] = LEAF_PREFIX;
const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE);
nodeScratch[0] = NODE_PREFIX;

function cryptoLeafInto(s: Uint8Array, p: number, out: Uint8Array, q: number): void {
  leafScratch.set(s.subarray(p, p + HASH_SIZE), 1);
  out.set(sha256(leafScratch), q);
}

function cryptoNodeInto(
  l: Uint8Array,
  lp: number,
  r: Uint8Array,
  rp: number,
  out: Uint8Array,
  q: number,
): void {
  nodeScratch.set(l.subarray(lp, lp + HASH_SIZE), 1);
  nodeScratch.set(r.subarray(rp, rp + HASH_SIZE), 1 + HASH_SIZE);
  out.set(sha256(nodeScratch), q);
}

/** The JS compression agrees with node:crypto on a few inputs (checked once, at load). */
function fastHashOk(): boolean {
  const src = Buffer.alloc(3 * HASH_SIZE);
  for (let i = 0; i < src.length; i++) src[i] = (i * 151 + 7) & 0xff;
  const a = Buffer.alloc(HASH_SIZE);
  const b = Buffer.alloc(HASH_SIZE);
  for (let k = 0; k < 3; k++) {
    const p = k * 16;
    jsLeafInto(src, p, a, 0);
    cryptoLeafInto(src, p, b, 0);
    if (!a.equals(b)) return false;
    jsNodeInto(src, p, src, HASH_SIZE + k, a, 0);
    cryptoNodeInto(src, p, src, HASH_SIZE + k, b, 0);
    if (!a.equals(b)) return false;
  }
  return true;
}

const FAST = fastHashOk();
/** out[q..q+32) = leaf hash of the 32 bytes at s[p..]. */
const leafInto = FAST ? jsLeafInto : cryptoLeafInto;
/** out[q..q+32) = node hash of the 32 bytes at l[lp..] and r[rp..]. */
const nodeInto = FAST ? jsNodeInto : cryptoNodeInto;

/** RFC 9162 §2.1.1: the hash of the empty tree, SHA-256 of the empty string. */
export function emptyRoot(): Buffer {
  return sha256(Buffer.alloc(0));
}

/** RFC 9162 §2.1.1: leaf hash = SHA-256(0x00 || data), for leaf data of any length. */
export function hashLeaf(data: Uint8Array): Buffer {
  if (data.length === HASH_SIZE) {
    const out = Buffer.allocUnsafe(HASH_SIZE);
    leafInto(data, 0, out, 0);
    return out;
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
  const out = Buffer.allocUnsafe(HASH_SIZE);
  nodeInto(left, 0, right, 0, out, 0);
  return out;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Leaf hash of an audit record: SHA-256(0x00 || the 32 bytes of its 64-hex `hash`). */
export function recordLeafHash(recordHashHex: string): Buffer {
  if (typeof recordHashHex !== 'string' || !HEX64.test(recordHashHex)) {
    throw new TlogError('TLOG_BAD_INPUT', 'record hash: must be 64 lowercase hex characters');
  }
  const out = Buffer.allocUnsafe(HASH_SIZE);
  decodeScratch.write(recordHashHex, 0, HASH_SIZE, 'hex');
  leafInto(decodeScratch, 0, out, 0);
  return out;
}

const decodeScratch = Buffer.alloc(HASH_SIZE);

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
  /** Appends one node at `level` (its index must be count(level)); copies `hash` (the caller reuses it). */
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
  /** Owned 32-byte buffer per level that frontier[h] points to when set: appends allocate nothing. */
  #slots: Buffer[] = [];
  #leaf = Buffer.alloc(HASH_SIZE);
  #carryA = Buffer.alloc(HASH_SIZE);
  #carryB = Buffer.alloc(HASH_SIZE);

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
      if (Math.floor(size / 2 ** h) % 2 === 1) {
        const slot = this.#slot(h);
        slot.set(store.read(h, want - 1));
        this.#frontier[h] = slot;
      }
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
    return this.#append(leafHash);
  }

  #slot(h: number): Buffer {
    let s = this.#slots[h];
    if (!s) {
      s = Buffer.alloc(HASH_SIZE);
      this.#slots[h] = s;
    }
    return s;
  }

  /** Appends a 32-byte leaf hash; neither it nor the scratch carries are kept (the store copies). */
  #append(leaf: Uint8Array): number {
    let carry = leaf;
    let spare = this.#carryA;
    const store = this.#store;
    store.append(0, carry);
    let n = this.#size;
    let h = 0;
    // Each set low bit of the old size is a complete left sibling: merge it (binary-counter carry).
    while (n & 1) {
      const left = this.#frontier[h] as Buffer;
      this.#frontier[h] = undefined;
      nodeInto(left, 0, carry, 0, spare, 0);
      carry = spare;
      spare = spare === this.#carryA ? this.#carryB : this.#carryA;
      h++;
      store.append(h, carry);
      n = Math.floor(n / 2);
    }
    const slot = this.#slot(h);
    slot.set(carry);
    this.#frontier[h] = slot;
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
    // One hex decode for the whole run. Buffer's decoder stops at the first non-hex pair, so a short
    // result locates the first bad record: the ones before it are appended, as one by one.
    const hex =
      from === 0 && count * 64 === hashesHex.length
        ? hashesHex
        : hashesHex.substring(from * 64, (from + count) * 64);
    const bytes = Buffer.from(hex, 'hex');
    const good = Math.min(count, Math.floor(bytes.length / HASH_SIZE));
    const leaf = this.#leaf;
    for (let i = 0; i < good; i++) {
      leafInto(bytes, i * HASH_SIZE, leaf, 0);
      this.#append(leaf);
    }
    if (good < count) {
      throw new TlogError('TLOG_BAD_INPUT', `record hash at ${from + good}: must be 64 hex characters`);
    }
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
