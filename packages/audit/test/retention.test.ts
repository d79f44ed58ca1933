/**
 * Retention against the real writer (AuditLogger) with an injected clock: archive, delete with an
 * `audit.file_deleted` record, min retention, damaged files kept, dry run — and the trail verifies
 * after every step.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { ManualClock } from '../src/clock.js';
import { AuditLogger } from '../src/logger.js';
import { writeShipperState } from '../src/platform/state.js';
import { queryTrail } from '../src/query.js';
import { applyRetention, RetentionPolicyError, resolvePolicy } from '../src/retention.js';
import { verifyTrail } from '../src/verify.js';
import { readManifestJson, removeDir, TEST_KEY } from './fixtures/trail-builder.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) removeDir(d);
});

const DAY = 86_400_000;
const START = Date.parse('2020-01-01T12:00:00.000Z');

/** A trail with one closed file per day for `days` days (3 records each), then an open file. */
async function dailyTrail(days: number): Promise<{ dir: string; clock: ManualClock; log: AuditLogger }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'vramseal-ret-')), 'trail');
  dirs.push(join(dir, '..'));
  const clock = new ManualClock(START);
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'ret-test',
    macKey: TEST_KEY,
    flush: { mode: 'immediate' },
    rotation: { daily: true },
    clock,
    logger: pino({ level: 'silent' }),
  });
  for (let d = 0; d <= days; d++) {
    clock.set(START + d * DAY);
    for (let i = 0; i < 3; i++) {
      await log.emit({
        type: 'seal.verified',
        timestamp: new Date(clock.now()).toISOString(),
        shard_id: `s-${d}-${i}`,
        worker_id: 'w',
      }).durable;
    }
  }
  return { dir, clock, log };
}

async function events(dir: string, type: string) {
  const out = [];
  for await (const r of queryTrail(dir, { types: [type] })) out.push(r);
  return out;
}

test('resolvePolicy: defaults 90/2555/2555; bad values name the field', () => {
  assert.deepEqual(resolvePolicy(), { archiveAfterDays: 90, deleteAfterDays: 2555, minRetentionDays: 2555 });
  assert.deepEqual(resolvePolicy({ archiveAfterDays: 7 }).archiveAfterDays, 7);
  assert.throws(
    () => resolvePolicy({ deleteAfterDays: -1 }),
    (e: unknown) => {
      assert.ok(e instanceof RetentionPolicyError);
      assert.equal(e.field, 'deleteAfterDays');
      return true;
    },
  );
  assert.throws(() => resolvePolicy({ minRetentionDays: Number.NaN }), /minRetentionDays/);
});

test('archive after 90 days, delete after 2555 (recorded as audit.file_deleted), trail verifies at each step', async () => {
  const { dir, clock, log } = await dailyTrail(3);
  try {
    const m0 = readManifestJson(dir);
    assert.deepEqual(
      m0.files.map((f) => f.state),
      ['closed', 'closed', 'closed', 'open'],
    );
    // Day 3 + 1: nothing is old enough.
    clock.set(START + 4 * DAY);
    let rep = await applyRetention(log, { clock, macKey: TEST_KEY });
    assert.deepEqual([rep.archived.length, rep.deleted.length, rep.skipped.length], [0, 0, 0]);

    // Dry run changes nothing.
    clock.set(START + 92 * DAY);
    rep = await applyRetention(log, { clock, macKey: TEST_KEY, dryRun: true });
    assert.equal(rep.archived.length, 3);
    assert.deepEqual(readManifestJson(dir), m0);

    // 91–92 days after the first three days: the three closed files are archived, the open one is not.
    rep = await applyRetention(log, { clock, macKey: TEST_KEY });
    assert.deepEqual(
      rep.archived.map((a) => a.file),
      m0.files.slice(0, 3).map((f) => f.name),
    );
    const m1 = readManifestJson(dir);
    // The file_archived records, stamped on day 92, rotated the writer into a new daily file: the
    // day-3 file is closed now but only 89 days old, so it stays.
    assert.deepEqual(
      m1.files.map((f) => f.state),
      ['archived', 'archived', 'archived', 'closed', 'open'],
    );
    for (const f of m1.files.slice(0, 3)) {
      assert.ok(existsSync(join(dir, `${f.name}.gz`)));
      assert.ok(!existsSync(join(dir, f.name)));
      assert.ok(existsSync(join(dir, `${f.name}.sha256`)));
    }
    const archivedEv = await events(dir, 'audit.file_archived');
    assert.equal(archivedEv.length, 3);
    assert.deepEqual(
      { ...archivedEv[0]?.event, timestamp: undefined },
      {
        type: 'audit.file_archived',
        timestamp: undefined,
        file: m0.files[0]?.name,
        archive: `${m0.files[0]?.name}.gz`,
        first_seq: 1,
        last_seq: 3,
        sha256: m0.files[0]?.sha256,
      },
    );
    assert.deepEqual((await verifyTrail(dir, { macKey: TEST_KEY })).failures, []);

    // min retention wins over a shorter deleteAfterDays.
    rep = await applyRetention(log, { clock, macKey: TEST_KEY, policy: { deleteAfterDays: 30 } });
    assert.equal(rep.deleted.length, 0);

    // 2555 days after day 0 (but not after day 1): only the first file goes.
    clock.set(START + 2555 * DAY + 1000);
    rep = await applyRetention(log, { clock, macKey: TEST_KEY });
    assert.deepEqual(
      rep.deleted.map((d) => [d.file, d.firstSeq, d.lastSeq]),
      [[m0.files[0]?.name, 1, 3]],
    );
    const m2 = readManifestJson(dir);
    const del = m2.files[0] as (typeof m2.files)[number];
    assert.equal(del.state, 'deleted');
    assert.equal(del.deleted_by_seq, rep.deleted[0]?.recordSeq);
    assert.ok(!existsSync(join(dir, `${del.name}.gz`)) && !existsSync(join(dir, `${del.name}.sha256`)));
    const deletedEv = await events(dir, 'audit.file_deleted');
    assert.equal(deletedEv.length, 1);
    assert.equal(deletedEv[0]?.seq, del.deleted_by_seq);
    assert.equal((deletedEv[0]?.event as { sha256?: string } | undefined)?.sha256, m0.files[0]?.sha256);
    // The chain continues from the deleted entry's last_hash; the deletion is backed by its record.
    const v = await verifyTrail(dir, { macKey: TEST_KEY });
    assert.deepEqual(v.failures, []);
    assert.equal(v.firstSeq, 4);
  } finally {
    await log.close();
  }
});

test('a file that does not verify is never deleted (nor archived): kept and reported', async () => {
  const { dir, clock, log } = await dailyTrail(2);
  try {
    const m = readManifestJson(dir);
    const victim = m.files[1]?.name as string;
    const p = join(dir, victim);
    chmodSync(p, 0o600);
    writeFileSync(p, readFileSync(p, 'utf8').replace('"s-1-1"', '"s-1-X"'));
    clock.set(START + 3000 * DAY);
    const rep = await applyRetention(log, { clock, macKey: TEST_KEY });
    assert.deepEqual(
      rep.deleted.map((d) => d.file),
      [m.files[0]?.name],
    );
    assert.equal(rep.skipped.length, 1);
    assert.equal(rep.skipped[0]?.file, victim);
    assert.match(rep.skipped[0]?.reason ?? '', /does not verify: line 2: content does not match its hash/);
    assert.ok(existsSync(p));
    assert.equal(readManifestJson(dir).files[1]?.state, 'closed');
  } finally {
    await log.close();
  }
});

test('a wrong MAC key makes retention refuse to delete', async () => {
  const { dir, clock, log } = await dailyTrail(1);
  try {
    clock.set(START + 3000 * DAY);
    const rep = await applyRetention(log, { clock, macKey: Buffer.alloc(32, 1) });
    assert.equal(rep.deleted.length, 0);
    assert.match(rep.skipped[0]?.reason ?? '', /MAC/);
    assert.equal(readManifestJson(dir).files[0]?.state, 'closed');
  } finally {
    await log.close();
  }
});

test('a crash after the manifest said deleted (file still there) is finished by the next run; the trail verifies', async () => {
  const { dir, clock, log } = await dailyTrail(1);
  try {
    const m0 = readManifestJson(dir);
    const first = m0.files[0]?.name as string;
    const content = readFileSync(join(dir, first));
    const sidecar = readFileSync(join(dir, `${first}.sha256`));
    clock.set(START + 3000 * DAY);
    const rep = await applyRetention(log, { clock, macKey: TEST_KEY });
    assert.deepEqual(
      rep.deleted.map((d) => d.file),
      [first],
    );
    // Simulate the crash window: the files are back although the manifest says deleted.
    writeFileSync(join(dir, first), content);
    writeFileSync(join(dir, `${first}.sha256`), sidecar);
    const v1 = await verifyTrail(dir, { macKey: TEST_KEY });
    assert.deepEqual(
      v1.failures.map((f) => f.kind),
      ['manifest_mismatch'],
    );
    await applyRetention(log, { clock, macKey: TEST_KEY });
    assert.ok(!existsSync(join(dir, first)) && !existsSync(join(dir, `${first}.sha256`)));
    assert.deepEqual((await verifyTrail(dir, { macKey: TEST_KEY })).failures, []);
  } finally {
    await log.close();
  }
});

test('platform spool: a file with records the collector has not acknowledged is never deleted', async () => {
  const { dir, clock, log } = await dailyTrail(2);
  try {
    const m0 = readManifestJson(dir);
    const [first, second] = m0.files as Array<{ name: string; last_seq: number; last_hash: string }>;
    // The collector acknowledged the first day's file only.
    await writeShipperState(dir, {
      v: 1,
      provider_id: 'p1',
      collector_url: 'http://127.0.0.1:1',
      acked_seq: first?.last_seq as number,
      acked_hash: first?.last_hash as string,
      updated_at: new Date(clock.now()).toISOString(),
    });
    clock.set(START + 2560 * DAY);
    const rep = await applyRetention(log, { clock, macKey: TEST_KEY });
    assert.deepEqual(
      rep.deleted.map((d) => d.file),
      [first?.name],
    );
    const kept = rep.skipped.find((s) => s.file === second?.name);
    assert.match(kept?.reason ?? '', /not yet acknowledged by the collector \(acknowledged through seq 3\)/);
    assert.ok(existsSync(join(dir, second?.name as string)));
    assert.equal((await verifyTrail(dir, { macKey: TEST_KEY })).ok, true);
  } finally {
    await log.close();
  }
});
