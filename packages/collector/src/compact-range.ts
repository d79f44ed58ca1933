/**
 * An RFC 9162 §2.1.1 Merkle Tree Hash kept as a compact range (the right-edge "frontier"): one 32-byte
 * node per set bit of the tree size. Appending a leaf is O(1) amortised, the root is O(log n), and the
 * whole state is at most 64 hashes — which the collector stores with each witnessed checkpoint, so the
 * next checkpoint only costs the records added since (never a rehash of the provider's trail).
 *
 *   frontier[h] = MTH of the perfect subtree of 2^h leaves at the right edge, when bit h of size is set
 *   root        = fold of the frontier from the lowest level up: acc = H(0x01 || frontier[h] || acc)
 *
 * Leaves are trail records: leaf hash = SHA-256(0x00 || 32 bytes of the record hash) (TRANSPARENCY.md,
 * `recordLeafHash` of @vramseal/audit), leaf i = the record with seq i + 1.
 */
import { emptyRoot, HASH_SIZE, hashChildren, recordLeafHash } from '@vramseal/audit';
import { CollectorError } from './errors.js';

export class CompactRange {
  #size: number;
  #frontier: (Buffer | undefined)[];

  private constructor(size: number, frontier: (Buffer | undefined)[]) {
    this.#size = size;
    this.#frontier = frontier;
  }

  /** The empty tree. */
  static empty(): CompactRange {
    return new CompactRange(0, []);
  }

  /**
   * Restores a range from `size` and its frontier hashes (lowercase hex, lowest level first, one per
   * set bit of `size`), as {@link toHex} wrote them.
   */
  static fromHex(size: number, hashes: readonly string[]): CompactRange {
    if (!Number.isSafeInteger(size) || size < 0)
      throw new CollectorError('COLLECTOR_STORAGE', 'compact range: size must be a non-negative integer');
    const frontier: (Buffer | undefined)[] = [];
    let i = 0;
    for (let h = 0; 2 ** h <= size; h++) {
      if (Math.floor(size / 2 ** h) % 2 === 1) {
        const x = hashes[i++];
        if (typeof x !== 'string' || !/^[0-9a-f]{64}$/.test(x))
          throw new CollectorError(
            'COLLECTOR_STORAGE',
            `compact range: frontier hash ${i - 1} is not 64 hex`,
          );
        frontier[h] = Buffer.from(x, 'hex');
      }
    }
    if (i !== hashes.length)
      throw new CollectorError(
        'COLLECTOR_STORAGE',
        `compact range: a tree of ${size} leaves has ${i} frontier hashes, got ${hashes.length}`,
      );
    return new CompactRange(size, frontier);
  }

  get size(): number {
    return this.#size;
  }

  /** Appends the record whose hash is `recordHashHex` (64 hex). */
  appendRecordHash(recordHashHex: string): void {
    let carry = recordLeafHash(recordHashHex);
    let n = this.#size;
    let h = 0;
    // Binary-counter carry: each set low bit of the old size is a complete left sibling.
    while (n % 2 === 1) {
      carry = hashChildren(this.#frontier[h] as Buffer, carry);
      this.#frontier[h] = undefined;
      h++;
      n = Math.floor(n / 2);
    }
    this.#frontier[h] = carry;
    this.#size++;
  }

  /** RFC 9162 root of the leaves appended so far (SHA-256("") when empty). */
  root(): Buffer {
    let acc: Buffer | undefined;
    for (const f of this.#frontier) {
      if (!f) continue;
      acc = acc ? hashChildren(f, acc) : f;
    }
    return acc ? Buffer.from(acc) : emptyRoot();
  }

  /** The frontier hashes, lowest level first (see {@link fromHex}). */
  toHex(): string[] {
    return this.#frontier
      .filter((f): f is Buffer => f !== undefined && f.length === HASH_SIZE)
      .map((f) => f.toString('hex'));
  }
}
