/**
 * Incremental `sha256-merkle-v1` (FORMAT.md §Digest) over a byte stream of unknown chunking:
 * O(log n) memory, bit-identical to merkle.ts. Used to check, on the host, that the bytes read from a
 * source are the bytes the device hashed (seal with expectedSha256).
 *
 * Stack form of RFC 9162 §2.1.1: complete subtrees of equal height are merged as soon as they
 * appear; at the end the stack is folded right-to-left, which is the "split at the largest power of
 * two" shape (equivalently, bottom-up pairing with the odd last node carried up).
 */
import { createHash, type Hash } from 'node:crypto';
import { assertLeafSize, LEAF_PREFIX, nodeHash } from './merkle.js';

export class StreamingMerkle {
  readonly #leafSize: number;
  #leaf: Hash | undefined;
  #inLeaf = 0;
  #length = 0;
  readonly #stack: { h: number; hash: Uint8Array }[] = [];

  constructor(leafSize: number) {
    assertLeafSize(leafSize);
    this.#leafSize = leafSize;
  }

  get length(): number {
    return this.#length;
  }

  update(data: Uint8Array): this {
    let off = 0;
    while (off < data.length) {
      if (!this.#leaf) this.#leaf = createHash('sha256').update(LEAF_PREFIX);
      const take = Math.min(this.#leafSize - this.#inLeaf, data.length - off);
      this.#leaf.update(data.subarray(off, off + take));
      this.#inLeaf += take;
      off += take;
      if (this.#inLeaf === this.#leafSize) this.#pushLeaf();
    }
    this.#length += data.length;
    return this;
  }

  #pushLeaf(): void {
    let hash: Uint8Array = (this.#leaf as Hash).digest();
    this.#leaf = undefined;
    this.#inLeaf = 0;
    let h = 0;
    for (let top = this.#stack.at(-1); top && top.h === h; top = this.#stack.at(-1)) {
      this.#stack.pop();
      hash = nodeHash(top.hash, hash);
      h++;
    }
    this.#stack.push({ h, hash });
  }

  /** The tree head; the builder is finished afterwards. */
  digest(): Uint8Array {
    if (this.#leaf) this.#pushLeaf();
    if (this.#stack.length === 0) return createHash('sha256').digest();
    let right = (this.#stack.pop() as { hash: Uint8Array }).hash;
    for (let left = this.#stack.pop(); left; left = this.#stack.pop()) right = nodeHash(left.hash, right);
    return right;
  }
}
