/**
 * Shard sources: bounded chunks from files, one-pass SHA-256 + Merkle, clear errors.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { merkleRoot } from '../src/merkle.js';
import { openSource } from '../src/source.js';
import { pattern } from './helpers.js';

test('a file is streamed in chunks of at most chunkBytes, hashed in the same pass', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vramseal-src-'));
  try {
    const data = pattern(1_000_003, 11);
    const file = join(dir, 'f.bin');
    await writeFile(file, data);
    const src = await openSource(file, { chunkBytes: 65_536, hashLeafSize: 4096 });
    assert.equal(src.kind, 'file');
    assert.equal(src.size, data.length);
    const sizes: number[] = [];
    const parts: Buffer[] = [];
    for await (const c of src.chunks()) {
      sizes.push(c.length);
      parts.push(Buffer.from(c));
    }
    await src.close();
    assert.ok(Math.max(...sizes) <= 65_536);
    assert.equal(sizes.length, Math.ceil(data.length / 65_536));
    assert.deepEqual(Buffer.concat(parts), data);
    assert.equal(src.hashes()?.sha256, createHash('sha256').update(data).digest('hex'));
    assert.deepEqual(Buffer.from(src.hashes()?.merkleRoot ?? []), Buffer.from(merkleRoot(data, 4096)));
    // One pass only.
    await assert.rejects(async () => {
      for await (const _ of src.chunks()) break;
    }, /already consumed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('buffers are yielded as views (no copy) and hashed only when asked', async () => {
  const data = pattern(10_000);
  const src = await openSource(data, { chunkBytes: 4096 });
  const chunks: Uint8Array[] = [];
  for await (const c of src.chunks()) chunks.push(c);
  assert.deepEqual(
    chunks.map((c) => c.length),
    [4096, 4096, 1808],
  );
  assert.equal(chunks[0]?.buffer, data.buffer);
  assert.equal(src.hashes(), undefined);
});

test('bad sources are refused with the field and the reason', async () => {
  await assert.rejects(openSource('/nonexistent/vramseal/x.bin'), { field: 'source', message: /ENOENT/ });
  await assert.rejects(openSource(tmpdir()), /not a regular file/);
  await assert.rejects(openSource(''), { field: 'source' });
  await assert.rejects(openSource(42 as unknown as string), { field: 'source' });
  await assert.rejects(openSource(new Uint8Array(1), { chunkBytes: 0 }), { field: 'chunkBytes' });
});

test('a file that shrinks while being read is detected', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vramseal-src-'));
  try {
    const file = join(dir, 'f.bin');
    await writeFile(file, pattern(200_000));
    const src = await openSource(file, { chunkBytes: 50_000 });
    await writeFile(file, pattern(60_000)); // truncates under the open descriptor
    await assert.rejects(async () => {
      for await (const _ of src.chunks()) {
      }
    }, /shrank/);
    await src.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('off-thread hashing (worker threads) gives the same SHA-256 and Merkle head as inline', async () => {
  const data = pattern(3_000_017, 13);
  const results = [];
  for (const offThreadHashBytes of [0, Number.MAX_SAFE_INTEGER]) {
    const src = await openSource(data, { chunkBytes: 100_000, hashLeafSize: 2048, offThreadHashBytes });
    let n = 0;
    for await (const c of src.chunks()) n += c.length;
    assert.equal(n, data.length);
    const h = src.hashes();
    results.push(h && { sha256: h.sha256, merkleRoot: Buffer.from(h.merkleRoot) });
  }
  assert.deepEqual(results[0], results[1]);
  assert.equal(results[0]?.sha256, createHash('sha256').update(data).digest('hex'));
  assert.deepEqual(Buffer.from(results[0]?.merkleRoot ?? []), Buffer.from(merkleRoot(data, 2048)));
  // An abandoned stream stops its workers (the test process would not exit otherwise).
  const src = await openSource(data, { chunkBytes: 100_000, hashLeafSize: 2048, offThreadHashBytes: 0 });
  for await (const _ of src.chunks()) break;
  assert.equal(src.hashes(), undefined);
});
