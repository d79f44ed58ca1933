import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  emptyRoot,
  hashChildren,
  hashLeaf,
  MemoryNodeStore,
  MerkleTree,
  recordLeafHash,
  rootOfLeafHashes,
  splitPoint,
} from '../src/tlog/merkle.js';
import {
  assertConsistency,
  consistencyProof,
  inclusionProof,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from '../src/tlog/proof.js';
import { FileNodeStore, readTlogState } from '../src/tlog/store.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

// RFC 6962 / Certificate Transparency reference inputs (google/certificate-transparency
// cpp/merkletree/merkle_tree_test.cc; transparency-dev/merkle proof/verify_test.go).
const LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(hex);
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
].map(hex);
// (leaf index 0-based, tree size, proof)
const INCLUSION: [number, number, string[]][] = [
  [0, 1, []],
  [0, 2, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7']],
  [1, 2, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d']],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [
    1,
    5,
    [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
  [
    0,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    5,
    8,
    [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
];
const CONSISTENCY: [number, number, string[]][] = [
  [1, 1, []],
  [
    1,
    8,
    [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  ],
  [
    6,
    8,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
  [
    2,
    5,
    [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  ],
  [
    6,
    7,
    [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  ],
];

function memTree(leafHashes: Buffer[]): MerkleTree {
  const t = new MerkleTree(new MemoryNodeStore());
  for (const l of leafHashes) t.appendLeafHash(l);
  return t;
}

// Reference proofs straight from the RFC's recursive definitions (independent of proof.ts's iteration).
function refPath(l: Buffer[], m: number): Buffer[] {
  if (l.length <= 1) return [];
  const k = splitPoint(l.length);
  return m < k
    ? [...refPath(l.slice(0, k), m), rootOfLeafHashes(l.slice(k))]
    : [...refPath(l.slice(k), m - k), rootOfLeafHashes(l.slice(0, k))];
}
function refSubproof(l: Buffer[], m: number, b: boolean): Buffer[] {
  const n = l.length;
  if (m === n) return b ? [] : [rootOfLeafHashes(l)];
  const k = splitPoint(n);
  return m <= k
    ? [...refSubproof(l.slice(0, k), m, b), rootOfLeafHashes(l.slice(k))]
    : [...refSubproof(l.slice(k), m - k, false), rootOfLeafHashes(l.slice(0, k))];
}

const syntheticLeaves = (n: number, salt = 'x'): Buffer[] =>
  Array.from({ length: n }, (_, i) =>
    recordLeafHash(createHash('sha256').update(`${salt}${i}`).digest('hex')),
  );

test('RFC 6962 test vectors: empty root, leaf and node hashing, roots of sizes 1..8', () => {
  assert.equal(
    emptyRoot().toString('hex'),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  );
  const leafHashes = LEAVES.map((d) => hashLeaf(d));
  const tree = new MerkleTree(new MemoryNodeStore());
  assert.deepEqual(tree.root(), emptyRoot());
  for (let i = 0; i < LEAVES.length; i++) {
    tree.appendLeafHash(leafHashes[i] as Buffer);
    assert.equal(tree.root().toString('hex'), (ROOTS[i] as Buffer).toString('hex'), `root of size ${i + 1}`);
    assert.deepEqual(rootOfLeafHashes(leafHashes.slice(0, i + 1)), ROOTS[i]);
  }
  for (let s = 1; s <= 8; s++) assert.deepEqual(tree.rootAt(s), ROOTS[s - 1]);
  assert.deepEqual(hashChildren(leafHashes[0] as Buffer, leafHashes[1] as Buffer), ROOTS[1]);
});

test('record leaf hash = SHA-256(0x00 || 32 hash bytes); rejects non-hex input', () => {
  const h = 'ab'.repeat(32);
  const want = createHash('sha256')
    .update(Buffer.concat([Buffer.from([0]), Buffer.from(h, 'hex')]))
    .digest();
  assert.deepEqual(recordLeafHash(h), want);
  assert.deepEqual(hashLeaf(Buffer.from(h, 'hex')), want);
  for (const bad of ['AB'.repeat(32), 'ab'.repeat(31), `${'ab'.repeat(31)}zz`, '']) {
    assert.throws(() => recordLeafHash(bad), { code: 'TLOG_BAD_INPUT' });
  }
});

test('RFC 6962 inclusion proof vectors: generated and verified', () => {
  const leafHashes = LEAVES.map((d) => hashLeaf(d));
  const tree = memTree(leafHashes);
  for (const [index, size, want] of INCLUSION) {
    const proof = inclusionProof(tree, index, size);
    assert.deepEqual(
      proof.map((p) => p.toString('hex')),
      want,
      `proof ${index}/${size}`,
    );
    assert.ok(verifyInclusion(index, size, leafHashes[index] as Buffer, proof, ROOTS[size - 1] as Buffer));
  }
});

test('RFC 6962 consistency proof vectors: generated and verified', () => {
  const leafHashes = LEAVES.map((d) => hashLeaf(d));
  const tree = memTree(leafHashes);
  for (const [s1, s2, want] of CONSISTENCY) {
    const proof = consistencyProof(tree, s1, s2);
    assert.deepEqual(
      proof.map((p) => p.toString('hex')),
      want,
      `proof ${s1}->${s2}`,
    );
    assertConsistency(s1, s2, proof, ROOTS[s1 - 1] as Buffer, ROOTS[s2 - 1] as Buffer);
  }
});

test('every size 1..40 and every index: proofs equal the RFC recursive definition and verify', () => {
  const N = 40;
  const leaves = syntheticLeaves(N);
  const tree = memTree(leaves);
  for (let n = 1; n <= N; n++) {
    const root = tree.rootAt(n);
    assert.deepEqual(root, rootOfLeafHashes(leaves.slice(0, n)), `root ${n}`);
    for (let i = 0; i < n; i++) {
      const proof = inclusionProof(tree, i, n);
      assert.deepEqual(proof, refPath(leaves.slice(0, n), i), `path ${i}/${n}`);
      assert.ok(verifyInclusion(i, n, leaves[i] as Buffer, proof, root), `verify ${i}/${n}`);
      // Wrong leaf, wrong index, wrong size never verify.
      assert.equal(verifyInclusion(i, n, leaves[(i + 1) % N] as Buffer, proof, root), false);
      if (n > 1) assert.equal(verifyInclusion((i + 1) % n, n, leaves[i] as Buffer, proof, root), false);
      // (The root authenticates the size only together with it: check against the root of size n + 1.)
      if (n < N)
        assert.equal(verifyInclusion(i, n + 1, leaves[i] as Buffer, proof, tree.rootAt(n + 1)), false);
    }
    for (let m = 1; m <= n; m++) {
      const proof = consistencyProof(tree, m, n);
      assert.deepEqual(
        proof,
        m === n ? [] : refSubproof(leaves.slice(0, n), m, true),
        `consistency ${m}->${n}`,
      );
      assertConsistency(m, n, proof, tree.rootAt(m), root);
      if (m < n) {
        assert.equal(verifyConsistency(m, n, proof, root, root), false, `swapped roots ${m}->${n}`);
        if (m > 1) assert.equal(verifyConsistency(m - 1, n, proof, tree.rootAt(m - 1), root), false);
      }
    }
  }
});

test('tampered proofs: every bit flip, truncation, extension, reordering is rejected', () => {
  const leaves = syntheticLeaves(23);
  const tree = memTree(leaves);
  const root = tree.root();
  for (const [i, n] of [
    [0, 23],
    [7, 23],
    [22, 23],
    [11, 16],
  ] as const) {
    const r = tree.rootAt(n);
    const proof = inclusionProof(tree, i, n);
    assert.ok(verifyInclusion(i, n, leaves[i] as Buffer, proof, r));
    for (let k = 0; k < proof.length; k++) {
      for (let bit = 0; bit < 256; bit += 37) {
        const bad = proof.map((p) => Buffer.from(p));
        const b = bad[k] as Buffer;
        b[bit >> 3] = (b[bit >> 3] as number) ^ (1 << (bit & 7));
        assert.equal(verifyInclusion(i, n, leaves[i] as Buffer, bad, r), false);
      }
    }
    assert.equal(verifyInclusion(i, n, leaves[i] as Buffer, proof.slice(0, -1), r), false);
    assert.equal(verifyInclusion(i, n, leaves[i] as Buffer, [...proof, r], r), false);
    assert.equal(verifyInclusion(i, n, leaves[i] as Buffer, [r, ...proof], r), false);
    assert.equal(verifyInclusion(i, n, leaves[i] as Buffer, [...proof].reverse(), r), false);
    assert.equal(verifyInclusion(i, n, leaves[i] as Buffer, [...proof, Buffer.alloc(0)], r), false);
  }
  const cp = consistencyProof(tree, 6, 23);
  const r6 = tree.rootAt(6);
  assert.ok(verifyConsistency(6, 23, cp, r6, root));
  for (let k = 0; k < cp.length; k++) {
    const bad = cp.map((p) => Buffer.from(p));
    const b = bad[k] as Buffer;
    b[0] = (b[0] as number) ^ 16;
    assert.equal(verifyConsistency(6, 23, bad, r6, root), false);
  }
  assert.equal(verifyConsistency(6, 23, cp.slice(0, -1), r6, root), false);
  assert.equal(verifyConsistency(6, 23, [...cp, root], r6, root), false);
  assert.equal(verifyConsistency(6, 23, [], r6, root), false);
  assert.equal(verifyConsistency(5, 23, cp, r6, root), false);
  assert.equal(verifyConsistency(7, 23, cp, r6, root), false);
  assert.equal(verifyConsistency(6, 46, cp, r6, root), false);
  assert.equal(verifyConsistency(23, 6, cp, root, r6), false);
  // Trivial cases: empty tree is a prefix of everything; equal sizes need equal roots and an empty proof.
  assert.ok(verifyConsistency(0, 23, [], emptyRoot(), root));
  assert.ok(verifyConsistency(23, 23, [], root, root));
  assert.equal(verifyConsistency(23, 23, [], r6, root), false);
  assert.equal(verifyConsistency(23, 23, [root], root, root), false);
  assert.throws(() => rootFromInclusionProof(23, 23, leaves[0] as Buffer, []), {
    code: 'TLOG_PROOF_INVALID',
  });
});

test('property: random trees, indices and size pairs verify (fast-check)', () => {
  const leaves = syntheticLeaves(300, 'p');
  const tree = memTree(leaves);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), (n, a, b) => {
      const i = a % n;
      const m = 1 + (b % n);
      const root = tree.rootAt(n);
      assert.ok(verifyInclusion(i, n, leaves[i] as Buffer, inclusionProof(tree, i, n), root));
      assert.ok(verifyConsistency(m, n, consistencyProof(tree, m, n), tree.rootAt(m), root));
    }),
    { numRuns: 200 },
  );
});

test('file store: persisted levels, reopen without rehash, crash tail cut back to the durable size', () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-store-'));
  try {
    const leaves = syntheticLeaves(100, 'f');
    let store = FileNodeStore.open(dir);
    let tree = new MerkleTree(store);
    for (const l of leaves.slice(0, 77)) tree.appendLeafHash(l);
    store.syncWithRoot(tree.root());
    assert.equal(readTlogState(dir)?.size, 77);
    // Nodes written after the last sync (a crash before the next checkpoint) are dropped on reopen.
    for (const l of leaves.slice(77, 90)) tree.appendLeafHash(l);
    store.flush();
    store.close();
    assert.equal(fs.statSync(join(dir, 'tlog', 'level-00.bin')).size, 90 * 32);
    store = FileNodeStore.open(dir);
    tree = new MerkleTree(store);
    assert.equal(tree.size, 77);
    assert.equal(fs.statSync(join(dir, 'tlog', 'level-00.bin')).size, 77 * 32);
    assert.deepEqual(tree.root(), rootOfLeafHashes(leaves.slice(0, 77)));
    for (const l of leaves.slice(77)) tree.appendLeafHash(l);
    assert.deepEqual(tree.root(), rootOfLeafHashes(leaves));
    // Proofs mix flushed, unflushed and pending nodes.
    for (let i = 0; i < 100; i += 9) {
      assert.ok(verifyInclusion(i, 100, leaves[i] as Buffer, inclusionProof(tree, i, 100), tree.root()));
    }
    store.syncWithRoot(tree.root());
    store.close();
    assert.equal((fs.statSync(join(dir, 'tlog', 'level-00.bin')).mode & 0o777).toString(8), '600');
    // Read-only view sees the durable tree.
    const ro = FileNodeStore.open(dir, { readOnly: true });
    const rt = new MerkleTree(ro);
    assert.equal(rt.size, 100);
    assert.deepEqual(rt.root(), rootOfLeafHashes(leaves));
    assert.deepEqual(consistencyProof(rt, 40, 100), refSubproof(leaves, 40, true));
    ro.close();
    // A damaged right-edge node is detected against state.json on open (100 = 64 + 32 + 4: the
    // frontier holds level-2 node 24). Damage elsewhere shows up when a proof fails its self-check.
    const fd = fs.openSync(join(dir, 'tlog', 'level-02.bin'), 'r+');
    fs.writeSync(fd, Buffer.alloc(32, 1), 0, 32, 24 * 32);
    fs.closeSync(fd);
    assert.throws(() => FileNodeStore.open(dir), { code: 'TLOG_CORRUPT' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('batch append of concatenated record hashes equals one-by-one; bad hex in a batch is rejected', () => {
  const hashes = Array.from({ length: 37 }, (_, i) => createHash('sha256').update(`b${i}`).digest('hex'));
  const one = new MerkleTree(new MemoryNodeStore());
  for (const h of hashes) one.appendRecordHash(h);
  const batch = new MerkleTree(new MemoryNodeStore());
  batch.appendRecordHashes(hashes.slice(0, 5).join(''));
  batch.appendRecordHashes(hashes.join(''), 5);
  assert.equal(batch.size, 37);
  assert.deepEqual(batch.root(), one.root());
  for (const bad of [`${'a'.repeat(62)}zz`, 'a'.repeat(63), `${'a'.repeat(63)}g`]) {
    assert.throws(() => new MerkleTree(new MemoryNodeStore()).appendRecordHashes(hashes[0] + bad), {
      code: 'TLOG_BAD_INPUT',
    });
  }
});
