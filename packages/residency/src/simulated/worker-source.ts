/**
 * Source of the digest worker, run with `new Worker(DIGEST_WORKER_SOURCE, { eval: true })`. Kept as a
 * plain-JS string (CommonJS, node: builtins only) so the same code runs under tsx (tests) and from
 * dist without a file to resolve or copy. It hashes one task: an aligned block of 2^j leaves of a
 * SharedArrayBuffer segment (no copy of the shard), optionally writing the leaf hashes into a shared
 * output buffer, and answers with the block's subtree root. The maths is FORMAT.md §Digest, checked
 * against merkle.ts by test/simulated.test.ts.
 */
export const DIGEST_WORKER_SOURCE = `
'use strict';
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const LEAF_PREFIX = Buffer.alloc(64);
const NODE_PREFIX = Buffer.of(1);
parentPort.on('message', (m) => {
  try {
    const data = new Uint8Array(m.sab, m.start, m.end - m.start);
    const L = m.leafSize;
    const n = Math.ceil(data.length / L);
    let level = Buffer.allocUnsafe(n * 32);
    for (let i = 0; i < n; i++) {
      createHash('sha256')
        .update(LEAF_PREFIX)
        .update(data.subarray(i * L, Math.min(data.length, (i + 1) * L)))
        .digest()
        .copy(level, i * 32);
    }
    if (m.leavesOut) new Uint8Array(m.leavesOut, m.leavesOffset, n * 32).set(level);
    let k = n;
    while (k > 1) {
      const half = k >> 1;
      const next = Buffer.allocUnsafe(Math.ceil(k / 2) * 32);
      for (let i = 0; i < half; i++) {
        createHash('sha256')
          .update(NODE_PREFIX)
          .update(level.subarray(i * 64, i * 64 + 64))
          .digest()
          .copy(next, i * 32);
      }
      if (k & 1) level.copy(next, half * 32, (k - 1) * 32, k * 32);
      level = next;
      k = Math.ceil(k / 2);
    }
    parentPort.postMessage({ id: m.id, root: new Uint8Array(n === 0 ? createHash('sha256').digest() : level.subarray(0, 32)) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) });
  }
});
`;
