import assert from 'node:assert/strict';
import { appendFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { canonicalize } from '../src/canonical.js';
import {
  followTrail,
  QueryArgumentError,
  type QueryOptions,
  queryTrail,
  TrailIntegrityError,
  tailTrail,
} from '../src/query.js';
import { sealRecord } from '../src/record.js';
import { trailStats } from '../src/stats.js';
import {
  type BuiltTrail,
  buildTrail,
  readLines,
  readManifestJson,
  removeDir,
  SERVICE,
  TEST_KEY,
  writeLines,
} from './fixtures/trail-builder.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) removeDir(d);
});
function build(o: Parameters<typeof buildTrail>[0]): BuiltTrail {
  const t = buildTrail(o);
  dirs.push(t.dir);
  return t;
}
async function seqs(dir: string, q: QueryOptions): Promise<number[]> {
  const out: number[] = [];
  for await (const r of queryTrail(dir, q)) out.push(r.seq);
  return out;
}
const range = (a: number, b: number, pred: (s: number) => boolean = () => true) =>
  Array.from({ length: b - a + 1 }, (_, i) => a + i).filter(pred);

// 4 files × 10 records, seq n at T0 + n minutes; type by seq % 4 (see defaultEvent).
const t = build({ files: [10, 10, 10, 10], archived: [1] });

test('no filter: every record in seq order, across plain, archived and open files', async () => {
  assert.deepEqual(await seqs(t.dir, {}), range(1, 40));
});

test('filters: types (exact and prefix), actor, shard, customer, resource, and their AND', async () => {
  assert.deepEqual(
    await seqs(t.dir, { types: ['seal.verified'] }),
    range(1, 40, (s) => s % 4 === 0),
  );
  assert.deepEqual(
    await seqs(t.dir, { types: ['vram.sealed', 'auth.*'] }),
    range(1, 40, (s) => s % 4 === 1 || s % 4 === 2),
  );
  // auth.success actor alternates alice (odd seq) / bob (even seq); auth.success is seq % 4 === 2.
  assert.deepEqual(
    await seqs(t.dir, { actor: 'bob' }),
    range(1, 40, (s) => s % 4 === 2),
  );
  assert.deepEqual(await seqs(t.dir, { actor: 'alice' }), []);
  assert.deepEqual(
    await seqs(t.dir, { shardId: 'shard-2' }),
    range(1, 40, (s) => s % 4 <= 1 && s % 3 === 2),
  );
  assert.deepEqual(
    await seqs(t.dir, { customerId: 'cust-1' }),
    range(1, 40, (s) => s % 4 === 3 && s % 2 === 1),
  );
  assert.deepEqual(await seqs(t.dir, { resourceId: 'job-7' }), [7]);
  assert.deepEqual(
    await seqs(t.dir, { types: ['vram.sealed'], shardId: 'shard-0' }),
    range(1, 40, (s) => s % 4 === 1 && s % 3 === 0),
  );
});

test('since/until (since inclusive, until exclusive) and limit', async () => {
  const at = (seq: number) => new Date(Date.parse('2026-03-01T00:00:00.000Z') + seq * 60_000).toISOString();
  assert.deepEqual(await seqs(t.dir, { since: at(15), until: at(22) }), range(15, 21));
  assert.deepEqual(await seqs(t.dir, { since: new Date(at(38)) }), [38, 39, 40]);
  assert.deepEqual(await seqs(t.dir, { until: Date.parse(at(3)) }), [1, 2]);
  assert.deepEqual(await seqs(t.dir, { limit: 3, types: ['seal.verified'] }), [4, 8, 12]);
  assert.deepEqual(await seqs(t.dir, { limit: 0 }), []);
  await assert.rejects(seqs(t.dir, { since: 'yesterday-ish' }), QueryArgumentError);
  await assert.rejects(seqs(t.dir, { limit: -1 }), /limit/);
});

test('files outside the time range are not opened (manifest first/last_time)', async () => {
  const d = build({ files: [5, 5, 5] });
  // Poison the first file: if the query opened it, verify-mode would throw.
  writeFileSync(join(d.dir, d.names[0] as string), 'garbage\n');
  const since = new Date(Date.parse('2026-03-01T00:00:00.000Z') + 6 * 60_000).toISOString();
  assert.deepEqual(await seqs(d.dir, { since, verify: true, macKey: TEST_KEY }), range(6, 15));
  await assert.rejects(seqs(d.dir, { verify: true }), TrailIntegrityError);
});

test('verify while reading: passes on a clean trail, throws with kind/file/line on damage', async () => {
  assert.equal((await seqs(t.dir, { verify: true, macKey: TEST_KEY })).length, 40);
  const d = build({ files: [5, 5] });
  const name = d.names[1] as string;
  const ls = readLines(d.dir, name);
  ls.splice(2, 1);
  writeLines(d.dir, name, ls);
  // Not verifying: the query just reads what is there.
  assert.equal((await seqs(d.dir, {})).length, 9);
  await assert.rejects(seqs(d.dir, { verify: true }), (e: unknown) => {
    assert.ok(e instanceof TrailIntegrityError);
    assert.equal(e.kind, 'deleted_records');
    assert.equal(e.file, name);
    assert.equal(e.line, 3);
    return true;
  });
  const d2 = build({ files: [5] });
  await assert.rejects(seqs(d2.dir, { verify: true, macKey: Buffer.alloc(32, 3) }), /bad_mac/);
});

test('without a manifest, files are read in (date, N) order', async () => {
  const d = build({ files: [3, 3, 3] });
  unlinkSync(join(d.dir, 'manifest.json'));
  assert.deepEqual(await seqs(d.dir, {}), range(1, 9));
});

test('tailTrail returns the last n records across files', async () => {
  assert.deepEqual(
    (await tailTrail(t.dir, 12)).map((r) => r.seq),
    range(29, 40),
  );
  assert.deepEqual(await tailTrail(t.dir, 0), []);
});

test('followTrail yields appended records and follows rotation into a new file', async () => {
  const d = build({ files: [3, 3] });
  const ac = new AbortController();
  const got: number[] = [];
  const it = followTrail(d.dir, { pollMs: 10, signal: ac.signal });
  const m = readManifestJson(d.dir);
  const open = m.files[1] as (typeof m.files)[number];
  const append = (file: string, seq: number, prev: string) => {
    const time = new Date(Date.parse('2026-03-01T00:00:00.000Z') + seq * 60_000).toISOString();
    const { line, hash } = sealRecord({
      seq,
      audit_id: `id-${seq}`,
      time,
      service_id: SERVICE,
      eventJson: canonicalize({ type: 'seal.verified', timestamp: time, shard_id: 's', worker_id: 'w' }),
      prev_hash: prev,
    });
    appendFileSync(join(d.dir, file), `${line}\n`);
    return hash;
  };
  const consumer = (async () => {
    for await (const r of it) {
      got.push(r.seq);
      if (got.length === 3) ac.abort();
    }
  })();
  await new Promise((r) => setTimeout(r, 50));
  const h7 = append(open.name, 7, open.last_hash as string);
  const h8 = append(open.name, 8, h7);
  // Rotate: a new file listed in the manifest.
  const next = '2026-03-02.audit';
  m.files.push({ ...open, name: next, first_seq: 9, state: 'open' });
  writeFileSync(join(d.dir, 'manifest.json'), JSON.stringify(m));
  append(next, 9, h8);
  await consumer;
  assert.deepEqual(got, [7, 8, 9]);
});

test('trailStats: counts by type and severity, files by state, seq and time span', async () => {
  const s = await trailStats(t.dir);
  assert.equal(s.records, 40);
  assert.deepEqual(s.files, { total: 4, open: 1, closed: 2, archived: 1, deleted: 0, missing: 0 });
  assert.deepEqual(s.byType, {
    'seal.verified': 10,
    'vram.sealed': 10,
    'auth.success': 10,
    'data.inference_executed': 10,
  });
  assert.deepEqual(s.bySeverity, { info: 40 });
  assert.equal(s.firstSeq, 1);
  assert.equal(s.lastSeq, 40);
  assert.equal(s.spanMs, 39 * 60_000);
  assert.ok(s.bytesOnDisk > 0 && s.bytesContent > s.bytesOnDisk / 2);
  // An event with its own severity, and a critical type without one.
  const d = build({
    files: [2],
    event: (seq) =>
      seq === 1
        ? { type: 'seal.verification_failed', timestamp: 'x', severity: 'high' }
        : { type: 'auth.failure', timestamp: 'x' },
  });
  assert.deepEqual((await trailStats(d.dir)).bySeverity, { high: 1, critical: 1 });
});
