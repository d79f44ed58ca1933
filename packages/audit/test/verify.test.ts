import assert from 'node:assert/strict';
import { readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { macOf } from '../src/record.js';
import { checkRecordLine, MacChecker } from '../src/record-check.js';
import { TrailReadError, type VerifyProgress, verifyTrail } from '../src/verify.js';
import {
  buildTrail,
  readLines,
  readManifestJson,
  recomputeChainFrom,
  removeDir,
  sha256Hex,
  TEST_KEY,
  writeLines,
  writeManifest,
} from './fixtures/trail-builder.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) removeDir(d);
});
function build(o: Parameters<typeof buildTrail>[0]) {
  const t = buildTrail(o);
  dirs.push(t.dir);
  return t;
}

test('MacChecker equals HMAC-SHA256 for short, 32-byte and long (>64 byte) keys', () => {
  for (const key of [Buffer.alloc(16, 1), TEST_KEY, Buffer.alloc(100, 9)]) {
    const m = new MacChecker(key);
    const h = 'c'.repeat(64);
    assert.equal(m.macOf(h), macOf(key, h));
    assert.equal(m.matches(h, macOf(key, h)), true);
    assert.equal(m.matches(h, undefined), false);
    assert.equal(JSON.stringify({ m }), '{"m":"[MacChecker]"}');
  }
});

test('checkRecordLine: fast path and non-canonical-but-equal lines both check; shape errors name the field', async () => {
  const t = build({ files: [2] });
  const line = readLines(t.dir, t.names[0] as string)[0] as string;
  const ok = checkRecordLine(Buffer.from(line));
  assert.ok(!('reason' in ok) && ok.hashOk);
  // What it reports equals a full parse.
  const full = JSON.parse(line);
  assert.deepEqual(
    [ok.seq, ok.prevHash, ok.hash, ok.mac, ok.time, ok.serviceId, ok.auditId],
    [full.seq, full.prev_hash, full.hash, full.mac, full.time, full.service_id, full.audit_id],
  );
  assert.deepEqual(ok.record, full);
  assert.deepEqual(ok.event, full.event);
  // Escapes in envelope strings take the full path, and still check.
  const rec = { ...full, service_id: 'svc "quoted" \\ x' };
  const { reseal } = await import('./fixtures/trail-builder.js');
  const escaped = checkRecordLine(Buffer.from(reseal(rec, TEST_KEY)));
  assert.ok(!('reason' in escaped) && escaped.hashOk && escaped.serviceId === 'svc "quoted" \\ x');
  const spaced = JSON.stringify(JSON.parse(line), null, 1).replace(/\n/g, '');
  const ok2 = checkRecordLine(Buffer.from(spaced));
  assert.ok(!('reason' in ok2) && ok2.hashOk);
  const bad = checkRecordLine(Buffer.from(JSON.stringify({ ...JSON.parse(line), seq: -1 })));
  assert.deepEqual(bad, { reason: 'field seq: must be an integer >= 1' });
  assert.match((checkRecordLine(Buffer.from([0xc3, 0x28])) as { reason: string }).reason, /UTF-8/);
});

test('archived (.gz) files verify against the checksum of their uncompressed content', async () => {
  const t = build({ files: [4, 4, 4], archived: [0, 1] });
  const rep = await verifyTrail(t.dir, { macKey: TEST_KEY });
  assert.deepEqual(rep.failures, []);
  assert.equal(rep.records, 12);
  // Tampered archive: recompressed with one record changed.
  const a = t.names[0] as string;
  const text = readFileSync(join(t.dir, `${a}.gz`));
  const { gunzipSync } = await import('node:zlib');
  const content = gunzipSync(text).toString().replace('"shard-1"', '"shard-X"');
  writeFileSync(join(t.dir, `${a}.gz`), gzipSync(content));
  const rep2 = await verifyTrail(t.dir, { macKey: TEST_KEY });
  assert.deepEqual(
    rep2.failures.map((f) => [f.kind, f.file]),
    [
      ['modified_record', `${a}.gz`],
      ['checksum_mismatch', `${a}.gz`],
    ],
  );
  // A corrupt gzip stream is a failure, not a crash; the chain continues from the manifest.
  writeFileSync(join(t.dir, `${a}.gz`), Buffer.from('not gzip at all'));
  const rep3 = await verifyTrail(t.dir, { macKey: TEST_KEY });
  assert.deepEqual(
    rep3.failures.map((f) => [f.kind, f.file]),
    [['checksum_mismatch', `${a}.gz`]],
  );
});

test('deleted manifest entries: the chain continues from last_hash when an audit.file_deleted record backs them', async () => {
  const t = build({ files: [3, 3, 3] });
  const m = readManifestJson(t.dir);
  const a = m.files[0] as (typeof m.files)[number];
  // Record seq 8 becomes the audit.file_deleted record (written with the key, like the real logger).
  recomputeChainFrom(
    t,
    t.dir,
    2,
    1,
    (r) => {
      r.event = {
        type: 'audit.file_deleted',
        timestamp: r.time,
        file: a.name,
        first_seq: a.first_seq,
        last_seq: a.last_seq,
        sha256: a.sha256,
        reason: 'retention',
      };
    },
    TEST_KEY,
  );
  unlinkSync(join(t.dir, a.name));
  unlinkSync(join(t.dir, `${a.name}.sha256`));
  const m2 = readManifestJson(t.dir);
  Object.assign(m2.files[0] as object, {
    state: 'deleted',
    deleted_at: '2033-01-01T00:00:00.000Z',
    deleted_by_seq: 8,
  });
  writeManifest(t.dir, m2);
  const rep = await verifyTrail(t.dir, { macKey: TEST_KEY });
  assert.deepEqual(rep.failures, []);
  assert.equal(rep.files, 2);
  assert.equal(rep.firstSeq, 4);
  // Not backed: point deleted_by_seq at an ordinary record.
  (m2.files[0] as { deleted_by_seq: number }).deleted_by_seq = 5;
  writeManifest(t.dir, m2);
  const rep2 = await verifyTrail(t.dir, { macKey: TEST_KEY });
  assert.deepEqual(
    rep2.failures.map((f) => [f.kind, f.file]),
    [['manifest_mismatch', a.name]],
  );
  assert.match(rep2.failures[0]?.message ?? '', /not backed/);
});

test('a trail written with a MAC verifies without the key too (macChecked false), and a wrong key fails every record once', async () => {
  const t = build({ files: [5, 5] });
  const rep = await verifyTrail(t.dir);
  assert.equal(rep.ok, true);
  assert.equal(rep.macChecked, false);
  const rep2 = await verifyTrail(t.dir, { macKey: Buffer.alloc(32, 1) });
  assert.deepEqual(
    rep2.failures.map((f) => [f.kind, f.seq, f.lastSeq]),
    [['chain_recomputed', 1, 10]],
  );
});

test('progress is reported per chunk and per file; failures are capped with a count of the rest', async () => {
  const t = build({ files: [50, 50, 50] });
  const seen: VerifyProgress[] = [];
  await verifyTrail(t.dir, { onProgress: (p) => seen.push(p) });
  const last = seen[seen.length - 1] as VerifyProgress;
  assert.equal(last.filesDone, 3);
  assert.equal(last.bytesDone, last.bytesTotal);
  assert.equal(last.records, 150);
  // 25 separate deletions in one open file → 25 failures, capped at 10.
  const name = t.names[2] as string;
  writeLines(
    t.dir,
    name,
    readLines(t.dir, name).filter((_, i) => i % 2 === 1),
  );
  const rep = await verifyTrail(t.dir, { maxFailures: 10 });
  assert.equal(rep.failures.length, 10);
  assert.equal(rep.failuresOmitted, 15);
  assert.equal(rep.ok, false);
});

test('the manifest is the authority on order; files on disk without it are sorted by (date, N)', async () => {
  const t = build({ files: [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2], stepMs: 1000 });
  // names 2026-03-01.audit, .1 ... .11: .10 and .11 must sort after .9 (numeric, not lexical)
  assert.ok(t.names.includes('2026-03-01.11.audit'));
  unlinkSync(join(t.dir, 'manifest.json'));
  const rep = await verifyTrail(t.dir);
  assert.deepEqual(
    rep.failures.map((f) => f.kind),
    ['manifest_mismatch'],
  );
  assert.equal(rep.records, 24);
});

test('verifyTrail rejects with TrailReadError when the directory cannot be read', async () => {
  await assert.rejects(verifyTrail('/nonexistent/trail'), (e: unknown) => {
    assert.ok(e instanceof TrailReadError);
    assert.equal(e.code, 'TRAIL_UNREADABLE');
    assert.match(e.message, /ENOENT/);
    return true;
  });
});

test('an open file longer than its manifest entry (appended since the last manifest write) is fine', async () => {
  const t = build({ files: [3, 3] });
  const m = readManifestJson(t.dir);
  const open = m.files[1] as (typeof m.files)[number];
  open.last_seq = 5;
  open.count = 2;
  open.last_hash = t.hashes[5] as string;
  open.bytes = 10;
  writeManifest(t.dir, m);
  assert.deepEqual((await verifyTrail(t.dir, { macKey: TEST_KEY })).failures, []);
  // ...but a manifest last_hash that disagrees with the record at last_seq is a mismatch.
  open.last_hash = sha256Hex('x');
  writeManifest(t.dir, m);
  const rep = await verifyTrail(t.dir, { macKey: TEST_KEY });
  assert.deepEqual(
    rep.failures.map((f) => f.kind),
    ['manifest_mismatch'],
  );
});

test('manifest entries with a missing, mistyped or unknown field, or an open last_seq outside the file, are mismatches', async () => {
  const cases: Array<[string, (e: Record<string, unknown>) => void, RegExp]> = [
    ['missing key', (e) => delete e.last_seq, /last_seq is missing/],
    ['unknown key', (e) => (e.extra = 1), /unknown field "extra"/],
    ['mistyped key', (e) => (e.count = '3'), /count must be an integer/],
    ['open last_seq below the file', (e) => (e.last_seq = 2), /last_seq 2 is not a record of this file/],
  ];
  // Top level: only v, service_id and files.
  {
    const t = build({ files: [3] });
    const m = readManifestJson(t.dir) as unknown as Record<string, unknown>;
    m.created = '2026-01-01T00:00:00.000Z';
    writeManifest(t.dir, m as never);
    const rep = await verifyTrail(t.dir, { macKey: TEST_KEY });
    assert.ok(
      rep.failures.some((f) => f.kind === 'manifest_mismatch' && /unknown field "created"/.test(f.message)),
    );
  }
  for (const [what, edit, want] of cases) {
    const t = build({ files: [3, 3] });
    const m = readManifestJson(t.dir);
    edit(m.files[1] as unknown as Record<string, unknown>);
    writeManifest(t.dir, m);
    const rep = await verifyTrail(t.dir, { macKey: TEST_KEY });
    assert.equal(rep.ok, false, what);
    assert.ok(
      rep.failures.some((f) => f.kind === 'manifest_mismatch' && want.test(f.message)),
      `${what}: ${JSON.stringify(rep.failures)}`,
    );
  }
});

test('worker threads (concurrency 2) report exactly what the inline verifier reports', async () => {
  const t = build({ files: [20, 20, 20, 20, 20], archived: [0] });
  const names = t.names;
  // Damage: a deleted record (file 2), a modified record (file 3), a swap (file 4), a torn tail (open file).
  const edit = (i: number, fn: (ls: string[]) => void) => {
    const ls = readLines(t.dir, names[i] as string);
    fn(ls);
    writeLines(t.dir, names[i] as string, ls);
  };
  edit(1, (ls) => ls.splice(4, 1));
  edit(2, (ls) => {
    ls[7] = (ls[7] as string).replace('"w-1"', '"w-2"');
  });
  edit(3, (ls) => {
    [ls[2], ls[3]] = [ls[3] as string, ls[2] as string];
  });
  const last = join(t.dir, names[4] as string);
  writeFileSync(last, readFileSync(last).subarray(0, -30));
  const inline = await verifyTrail(t.dir, { macKey: TEST_KEY, concurrency: 0 });
  const pooled = await verifyTrail(t.dir, { macKey: TEST_KEY, concurrency: 2 });
  assert.deepEqual(
    inline.failures.map((f) => f.kind),
    [
      'deleted_records',
      'checksum_mismatch',
      'modified_record',
      'checksum_mismatch',
      'reordered_records',
      'checksum_mismatch',
      'torn_line',
    ],
  );
  assert.deepEqual(pooled.failures, inline.failures);
  assert.deepEqual({ ...pooled, durationMs: 0 }, { ...inline, durationMs: 0 });
  // Unreadable inputs through the workers: a corrupt archive, a symlink to a device.
  writeFileSync(join(t.dir, `${names[0]}.gz`), 'not gzip');
  unlinkSync(join(t.dir, names[1] as string));
  symlinkSync('/dev/zero', join(t.dir, names[1] as string));
  const inline2 = await verifyTrail(t.dir, { macKey: TEST_KEY, concurrency: 0 });
  const pooled2 = await verifyTrail(t.dir, { macKey: TEST_KEY, concurrency: 2 });
  assert.deepEqual(pooled2.failures, inline2.failures);
  assert.deepEqual(
    inline2.failures.slice(0, 2).map((f) => f.kind),
    ['checksum_mismatch', 'io_error'],
  );
});

test('trails written by the real AuditLogger (size rotation, restart) verify clean, and damage to them is found', async () => {
  const { AuditLogger } = await import('../src/logger.js');
  const { default: pino } = await import('pino');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const parent = mkdtempSync(join(tmpdir(), 'vramseal-writer-compat-'));
  dirs.push(parent);
  const dir = join(parent, 'trail');
  const open = () =>
    AuditLogger.open({
      mode: 'local',
      dir,
      serviceId: 'compat',
      macKey: TEST_KEY,
      flush: { mode: 'batched', maxEvents: 64, maxDelayMs: 5 },
      rotation: { maxBytes: 4096, daily: false },
      logger: pino({ level: 'silent' }),
    });
  let log = await open();
  for (let i = 0; i < 60; i++) {
    log.emit({
      type: 'seal.verified',
      timestamp: new Date().toISOString(),
      shard_id: `s${i}`,
      worker_id: 'w',
    });
  }
  await log.close();
  log = await open(); // restart: the chain and seq resume
  for (let i = 0; i < 40; i++) {
    log.emit({
      type: 'vram.sealed',
      timestamp: new Date().toISOString(),
      shard_id: `s${i}`,
      gpu_device: 0,
      vram_bytes: 1024,
      digest: 'ab'.repeat(32),
      worker_id: 'w',
    });
  }
  await log.close();
  const m = readManifestJson(dir);
  assert.ok(m.files.length >= 5, `expected several rotated files, got ${m.files.length}`);
  const rep = await verifyTrail(dir, { macKey: TEST_KEY });
  assert.deepEqual(rep.failures, []);
  assert.equal(rep.records, 100);
  assert.equal(rep.lastSeq, 100);
  // Writer and verifier agree on FORMAT.md: every closed file has its sidecar and manifest sha256.
  for (const f of m.files.filter((x) => x.state === 'closed')) {
    assert.equal(readFileSync(join(dir, `${f.name}.sha256`), 'utf8'), `${f.sha256}  ${f.name}\n`);
  }
  // A record deleted from a closed middle file of the writer's trail.
  const victim = m.files[2]?.name as string;
  const { chmodSync } = await import('node:fs');
  chmodSync(join(dir, victim), 0o600);
  const ls = readLines(dir, victim);
  ls.splice(1, 1);
  writeLines(dir, victim, ls);
  const rep2 = await verifyTrail(dir, { macKey: TEST_KEY });
  assert.deepEqual(
    rep2.failures.map((f) => [f.kind, f.file, f.line]),
    [
      ['deleted_records', victim, 2],
      ['checksum_mismatch', victim, null],
    ],
  );
});
