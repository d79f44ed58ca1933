/**
 * The tamper matrix (issue 3): a trail of several rotated files; each kind of damage is applied to a
 * copy, and verify must report exactly that kind at the right place — plus, at most, the consequences
 * listed per case (a damaged closed file also fails its checksum) — and nothing else.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { type VerifyFailure, type VerifyFailureKind, verifyTrail } from '../src/verify.js';
import {
  type BuiltTrail,
  buildTrail,
  copyTrail,
  readLines,
  readManifestJson,
  recomputeChainFrom,
  removeDir,
  reseal,
  TEST_KEY,
  writeLines,
  writeManifest,
} from './fixtures/trail-builder.js';

let trail: BuiltTrail;
const dirs: string[] = [];
// Files A, B closed; C open. 6 records each: A = seq 1..6, B = 7..12, C = 13..18.
let A: string;
let B: string;
let C: string;

before(() => {
  trail = buildTrail({ files: [6, 6, 6] });
  [A, B, C] = trail.names as [string, string, string];
  dirs.push(trail.dir);
});
after(() => {
  for (const d of dirs) removeDir(d);
});

function copy(): string {
  const d = copyTrail(trail.dir);
  dirs.push(d);
  return d;
}

interface Expect {
  kind: VerifyFailureKind;
  file: () => string;
  line: number | null;
  seq: number | null;
  lastSeq?: number;
  /** Kinds allowed besides the expected failure (consequences), each at most once. */
  also?: VerifyFailureKind[];
  key?: boolean;
}

async function expectDamage(dir: string, e: Expect): Promise<VerifyFailure[]> {
  const rep = await verifyTrail(dir, e.key === false ? {} : { macKey: TEST_KEY });
  const f = rep.failures;
  const msg = JSON.stringify(f, null, 1);
  assert.equal(rep.ok, false, 'damage must be detected');
  const main = f.filter((x) => x.kind === e.kind);
  assert.equal(main.length, 1, `exactly one ${e.kind}: ${msg}`);
  const m = main[0] as VerifyFailure;
  assert.equal(m.file, e.file(), msg);
  assert.equal(m.line, e.line, msg);
  assert.equal(m.seq, e.seq, msg);
  if (e.lastSeq !== undefined) assert.equal(m.lastSeq, e.lastSeq, msg);
  const rest = f.filter((x) => x !== m);
  for (const r of rest) assert.ok((e.also ?? []).includes(r.kind), `unexpected extra failure: ${msg}`);
  assert.ok(rest.length <= (e.also ?? []).length, msg);
  assert.ok(m.message.length > 10);
  return f;
}

function editLine(dir: string, name: string, idx: number, fn: (r: Record<string, unknown>) => string): void {
  const ls = readLines(dir, name);
  ls[idx] = fn(JSON.parse(ls[idx] as string));
  writeLines(dir, name, ls);
}

test('a clean trail verifies, with and without the key', async () => {
  for (const opts of [{ macKey: TEST_KEY }, {}]) {
    const rep = await verifyTrail(trail.dir, opts);
    assert.deepEqual(rep.failures, []);
    assert.equal(rep.ok, true);
    assert.equal(rep.files, 3);
    assert.equal(rep.records, 18);
    assert.equal(rep.firstSeq, 1);
    assert.equal(rep.lastSeq, 18);
    assert.equal(rep.firstTime, '2026-03-01T00:01:00.000Z');
    assert.equal(rep.lastTime, '2026-03-01T00:18:00.000Z');
  }
});

test('modified_record: content altered, hash untouched', async () => {
  const d = copy();
  editLine(d, B, 2, (r) => JSON.stringify({ ...r, service_id: 'evil' }));
  await expectDamage(d, {
    kind: 'modified_record',
    file: () => B,
    line: 3,
    seq: 9,
    also: ['checksum_mismatch'],
  });
});

test('modified_record: one record altered and rehashed without the key (link to it breaks)', async () => {
  for (const key of [true, false]) {
    const d = copy();
    editLine(d, C, 2, (r) => reseal({ ...r, event: { ...(r.event as object), shard_id: 'x' } }));
    await expectDamage(d, { kind: 'modified_record', file: () => C, line: 3, seq: 15, key });
  }
});

test('modified_record: the hash field itself altered (one failure, chain continues)', async () => {
  const d = copy();
  editLine(d, C, 1, (r) => JSON.stringify({ ...r, hash: 'f'.repeat(64) }));
  await expectDamage(d, { kind: 'modified_record', file: () => C, line: 2, seq: 14 });
});

test('deleted_records: one record removed from a closed file', async () => {
  const d = copy();
  const ls = readLines(d, B);
  ls.splice(2, 1);
  writeLines(d, B, ls);
  await expectDamage(d, {
    kind: 'deleted_records',
    file: () => B,
    line: 3,
    seq: 9,
    lastSeq: 9,
    also: ['checksum_mismatch'],
  });
});

test('deleted_records: several records removed from the open file', async () => {
  const d = copy();
  const ls = readLines(d, C);
  ls.splice(1, 3);
  writeLines(d, C, ls);
  await expectDamage(d, { kind: 'deleted_records', file: () => C, line: 2, seq: 14, lastSeq: 16 });
});

test('deleted_records: a whole file and its manifest entry removed', async () => {
  const d = copy();
  unlinkSync(join(d, B));
  unlinkSync(join(d, `${B}.sha256`));
  const m = readManifestJson(d);
  m.files.splice(1, 1);
  writeManifest(d, m);
  await expectDamage(d, { kind: 'deleted_records', file: () => C, line: 1, seq: 7, lastSeq: 12 });
});

test('inserted_record: a replayed (duplicate) line', async () => {
  const d = copy();
  const ls = readLines(d, C);
  ls.splice(4, 0, ls[1] as string);
  writeLines(d, C, ls);
  await expectDamage(d, { kind: 'inserted_record', file: () => C, line: 5, seq: 14 });
});

test('inserted_record: a forged record claiming the next seq (found by who the chain continues from)', async () => {
  for (const key of [true, false]) {
    const d = copy();
    const ls = readLines(d, C);
    const real = JSON.parse(ls[2] as string); // seq 15
    const forged = reseal({ ...real, audit_id: 'forged', event: { type: 'auth.success', note: 'x' } });
    ls.splice(2, 0, forged);
    writeLines(d, C, ls);
    await expectDamage(d, { kind: 'inserted_record', file: () => C, line: 3, seq: 15, key });
  }
});

test('reordered_records: two records swapped', async () => {
  const d = copy();
  const ls = readLines(d, C);
  [ls[1], ls[2]] = [ls[2] as string, ls[1] as string];
  writeLines(d, C, ls);
  await expectDamage(d, { kind: 'reordered_records', file: () => C, line: 2, seq: 14, lastSeq: 14 });
});

test('reordered_records: a record moved several places back', async () => {
  const d = copy();
  const ls = readLines(d, C);
  const [moved] = ls.splice(1, 1); // seq 14 moved after seq 17
  ls.splice(4, 0, moved as string);
  writeLines(d, C, ls);
  await expectDamage(d, { kind: 'reordered_records', file: () => C, line: 2, seq: 14 });
});

test('truncated_file: whole lines cut off the end of a closed file (next file still links)', async () => {
  const d = copy();
  const ls = readLines(d, B);
  writeLines(d, B, ls.slice(0, 4));
  await expectDamage(d, {
    kind: 'truncated_file',
    file: () => B,
    line: 5,
    seq: 11,
    lastSeq: 12,
    also: ['checksum_mismatch'],
  });
});

test('torn_line: a closed file cut in the middle of its last line', async () => {
  const d = copy();
  const buf = readFileSync(join(d, B));
  writeFileSync(join(d, B), buf.subarray(0, buf.length - 40));
  await expectDamage(d, {
    kind: 'torn_line',
    file: () => B,
    line: 6,
    seq: null,
    also: ['checksum_mismatch'],
  });
});

test('torn_line: the open file ends mid-record (crash mid-write)', async () => {
  const d = copy();
  const buf = readFileSync(join(d, C));
  writeFileSync(join(d, C), buf.subarray(0, buf.length - 100));
  await expectDamage(d, { kind: 'torn_line', file: () => C, line: 6, seq: null });
});

test('missing_file: a file the manifest lists is gone (chain continues from its last_hash)', async () => {
  const d = copy();
  unlinkSync(join(d, B));
  await expectDamage(d, { kind: 'missing_file', file: () => B, line: null, seq: 7, lastSeq: 12 });
});

test('extra_file: a record file the manifest does not list', async () => {
  const d = copy();
  writeFileSync(join(d, '2026-03-09.audit'), readFileSync(join(d, A)));
  await expectDamage(d, { kind: 'extra_file', file: () => '2026-03-09.audit', line: null, seq: null });
});

test('manifest_mismatch: the manifest disagrees with intact files', async () => {
  const d = copy();
  const m = readManifestJson(d);
  (m.files[1] as { count: number }).count = 99;
  writeManifest(d, m);
  await expectDamage(d, { kind: 'manifest_mismatch', file: () => B, line: null, seq: 7 });
});

test('manifest_mismatch: manifest.json missing (files still verified from the listing)', async () => {
  const d = copy();
  unlinkSync(join(d, 'manifest.json'));
  await expectDamage(d, { kind: 'manifest_mismatch', file: () => 'manifest.json', line: null, seq: null });
});

test('checksum_mismatch: a sidecar that does not match the content', async () => {
  const d = copy();
  writeFileSync(join(d, `${A}.sha256`), `${'0'.repeat(64)}  ${A}\n`);
  await expectDamage(d, { kind: 'checksum_mismatch', file: () => A, line: null, seq: null });
});

test('checksum_mismatch: a sidecar missing', async () => {
  const d = copy();
  unlinkSync(join(d, `${A}.sha256`));
  await expectDamage(d, { kind: 'checksum_mismatch', file: () => A, line: null, seq: null });
});

test('bad_mac: one record with a wrong MAC (hash intact)', async () => {
  const d = copy();
  editLine(d, C, 2, (r) => JSON.stringify({ ...r, mac: '1'.repeat(64) }));
  await expectDamage(d, { kind: 'bad_mac', file: () => C, line: 3, seq: 15 });
});

test('bad_mac: MAC stripped from a record when the key is given', async () => {
  const d = copy();
  editLine(d, C, 2, (r) => JSON.stringify({ ...r, mac: undefined }));
  await expectDamage(d, { kind: 'bad_mac', file: () => C, line: 3, seq: 15 });
});

test('chain_recomputed: altered and the whole chain recomputed without the key, sidecars and manifest fixed', async () => {
  const d = copy();
  recomputeChainFrom(trail, d, 1, 1, (r) => {
    r.event = { ...(r.event as object), shard_id: 'swapped' };
  });
  await expectDamage(d, { kind: 'chain_recomputed', file: () => B, line: 2, seq: 8, lastSeq: 18 });
  // Without the key such a rewrite is undetectable by construction (documented limitation).
  const rep = await verifyTrail(d);
  assert.equal(rep.ok, true);
});

test('unparsable_line: a record replaced by random bytes (no cascade into deleted_records)', async () => {
  const d = copy();
  const ls = readLines(d, B);
  ls[2] = randomBytes(200).toString('latin1').replace(/\n/g, ' ');
  writeFileSync(join(d, B), Buffer.from(`${ls.join('\n')}\n`, 'latin1'));
  await expectDamage(d, {
    kind: 'unparsable_line',
    file: () => B,
    line: 3,
    seq: null,
    also: ['checksum_mismatch'],
  });
});

test('unparsable_line: a lost newline glues two records together (no cascade)', async () => {
  const d = copy();
  const ls = readLines(d, C);
  ls.splice(1, 2, `${ls[1]}${ls[2]}`);
  writeLines(d, C, ls);
  await expectDamage(d, { kind: 'unparsable_line', file: () => C, line: 2, seq: null });
});

test('hostile lines: over the cap, invalid UTF-8, 10k-deep JSON, NUL bytes — reported, never thrown', async () => {
  const d = copy();
  const ls = readLines(d, C);
  const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
  const deepRecord = (ls[3] as string).replace('"event":{', `"event":{"nested":${deep},`);
  const lines = [
    ...ls,
    'x'.repeat(2 << 20),
    Buffer.from([0xff, 0xfe, 0x7b, 0x00]).toString('latin1'),
    deep,
    deepRecord,
    '\u0000\u0000',
  ];
  writeFileSync(join(d, C), Buffer.from(`${lines.join('\n')}\n`, 'latin1'));
  const rep = await verifyTrail(d, { macKey: TEST_KEY, maxLineBytes: 1 << 20 });
  assert.equal(rep.ok, false);
  // Consecutive unparsable lines are one failure; the deep record has a valid shape but cannot match its hash.
  const kinds = rep.failures.map((f) => f.kind).sort();
  assert.deepEqual(
    kinds,
    ['modified_record', 'unparsable_line', 'unparsable_line'],
    JSON.stringify(rep.failures),
  );
  const first = rep.failures.find((f) => f.kind === 'unparsable_line');
  assert.equal(first?.line, 7);
  assert.equal(first?.lastLine, 9);
  assert.match(first?.message ?? '', /cap/);
});

test('a symlinked record file is refused (io_error), not followed', async () => {
  const d = copy();
  rmSync(join(d, A));
  symlinkSync('/dev/zero', join(d, A));
  const rep = await verifyTrail(d, { macKey: TEST_KEY });
  assert.ok(rep.failures.some((f) => f.kind === 'io_error' && f.file === A));
});

test('fuzz: random byte mutations never crash the verifier and are always detected', async () => {
  const d = copy();
  const names = [A, B, C];
  const orig = names.map((n) => readFileSync(join(trail.dir, n)));
  await fc.assert(
    fc.asyncProperty(
      fc.nat(2),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      async (fi, muts) => {
        const buf = Buffer.from(orig[fi] as Buffer);
        for (const [pos, x] of muts) buf[pos % buf.length] = (buf[pos % buf.length] as number) ^ x;
        writeFileSync(join(d, names[fi] as string), buf);
        try {
          const rep = await verifyTrail(d, { macKey: TEST_KEY });
          assert.equal(rep.ok, false);
          assert.ok(rep.failures.length >= 1 && rep.failures.length <= 12, JSON.stringify(rep.failures));
        } finally {
          writeFileSync(join(d, names[fi] as string), orig[fi] as Buffer);
        }
      },
    ),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 40) },
  );
});

test('hostile manifests (deep JSON, traversal names, wrong types) are reported, never followed or crashed on', async () => {
  const cases: string[] = [
    `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
    JSON.stringify({ v: 1, service_id: 's', files: [{ name: '../../../etc/passwd', state: 'closed' }] }),
    JSON.stringify({ v: 1, service_id: 's', files: [{ name: `${A}`, state: 'exploded', first_seq: 'one' }] }),
    '\u0000\u00ff not json',
  ];
  for (const text of cases) {
    const d = copy();
    writeFileSync(join(d, 'manifest.json'), text);
    const rep = await verifyTrail(d, { macKey: TEST_KEY });
    assert.equal(rep.ok, false);
    const kinds = new Set(rep.failures.map((f) => f.kind));
    assert.deepEqual([...kinds], ['manifest_mismatch'], JSON.stringify(rep.failures));
    // The record files themselves were still verified, from the directory listing.
    assert.equal(rep.records, 18);
  }
});
