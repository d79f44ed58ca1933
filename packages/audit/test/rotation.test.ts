import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../src/clock.js';
import { AuditLogger } from '../src/logger.js';
import { readManifest } from '../src/manifest.js';
import { RotationPolicy } from '../src/rotation.js';
import { quiet, readTrail, recordFiles, routine, tmpTrail } from './writer-helpers.js';

const KEY = Buffer.alloc(32, 3);

test('size rotation: .N files, chain continues, closed files are 0400 with a sha256sum file and exact manifest', async () => {
  const dir = tmpTrail();
  const clock = new ManualClock('2026-03-04T10:00:00.000Z');
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    clock,
    macKey: KEY,
    logger: quiet,
    rotation: { maxBytes: 2000 },
    flush: { mode: 'batched', maxEvents: 3, maxDelayMs: 1 },
  });
  for (let i = 0; i < 20; i++) log.emit(routine(i));
  await log.flush();
  await log.close();
  const files = recordFiles(dir).sort((a, b) => a.length - b.length || a.localeCompare(b));
  assert.ok(files.length >= 4, `rotated into ${files.length} files`);
  assert.equal(files[0], '2026-03-04.audit');
  assert.equal(files[1], '2026-03-04.1.audit');
  assert.equal(files[2], '2026-03-04.2.audit');
  const recs = await readTrail(dir, KEY);
  assert.equal(recs.length, 20);
  const m = await readManifest(dir);
  assert.ok(m);
  assert.deepEqual(
    m.files.map((f) => f.name),
    files,
  );
  for (const f of m.files.slice(0, -1)) {
    const p = join(dir, f.name);
    const bytes = readFileSync(p);
    assert.ok(bytes.length <= 2000, 'file within maxBytes');
    assert.equal(statSync(p).mode & 0o777, 0o400, `${f.name} is 0400`);
    const sha = createHash('sha256').update(bytes).digest('hex');
    assert.equal(f.state, 'closed');
    assert.equal(f.sha256, sha);
    assert.equal(f.bytes, bytes.length);
    assert.equal(readFileSync(`${p}.sha256`, 'utf8'), `${sha}  ${f.name}\n`);
    assert.equal(statSync(`${p}.sha256`).mode & 0o777, 0o400);
    assert.equal(f.closed, '2026-03-04T10:00:00.000Z');
  }
  const last = m.files[m.files.length - 1];
  assert.equal(last?.state, 'open');
  assert.equal(last?.last_seq, 20);
  assert.equal(statSync(join(dir, last?.name as string)).mode & 0o777, 0o600);
});

test('daily rotation follows the UTC day of each record (injected clock)', async () => {
  const dir = tmpTrail();
  const clock = new ManualClock('2026-03-04T23:59:59.990Z');
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    clock,
    logger: quiet,
    flush: { mode: 'batched', maxEvents: 1000, maxDelayMs: 1000 },
  });
  log.emit(routine(1));
  log.emit(routine(2));
  clock.set('2026-03-05T00:00:00.001Z');
  log.emit(routine(3)); // same batch, but belongs to the next day
  clock.set('2026-03-07T12:00:00.000Z');
  log.emit(routine(4));
  await log.flush();
  await log.close();
  assert.deepEqual(recordFiles(dir), ['2026-03-04.audit', '2026-03-05.audit', '2026-03-07.audit']);
  const recs = await readTrail(dir);
  assert.deepEqual(
    recs.map((r) => [r.seq, r.file]),
    [
      [1, '2026-03-04.audit'],
      [2, '2026-03-04.audit'],
      [3, '2026-03-05.audit'],
      [4, '2026-03-07.audit'],
    ],
  );
  // daily: false keeps one file.
  const dir2 = tmpTrail();
  const l2 = await AuditLogger.open({
    mode: 'local',
    dir: dir2,
    serviceId: 'svc',
    clock,
    logger: quiet,
    rotation: { daily: false },
  });
  l2.emit(routine());
  clock.advance(3 * 86_400_000);
  l2.emit(routine());
  await l2.close();
  assert.deepEqual(recordFiles(dir2), ['2026-03-07.audit']);
});

test('a record larger than maxBytes gets a file of its own', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    rotation: { maxBytes: 100 },
  });
  for (let i = 0; i < 3; i++) log.emit(routine(i));
  await log.close();
  assert.equal(recordFiles(dir).length, 3);
  assert.equal((await readTrail(dir)).length, 3);
});

test('RotationPolicy.nextName counts per day and skips taken names', () => {
  const p = new RotationPolicy();
  const m = {
    v: 1 as const,
    service_id: 's',
    files: [{ name: '2026-01-02.audit' }, { name: '2026-01-02.3.audit' }] as never,
  };
  assert.equal(p.nextName(m, '2026-01-02T05:00:00.000Z'), '2026-01-02.4.audit');
  assert.equal(p.nextName(m, '2026-01-03T05:00:00.000Z'), '2026-01-03.audit');
  assert.equal(
    p.nextName(m, '2026-01-03T05:00:00.000Z', new Set(['2026-01-03.audit'])),
    '2026-01-03.1.audit',
  );
  assert.equal(p.mustRotate({ count: 0, bytes: 10 ** 9, day: 'x' }, '2026-01-01T00:00:00Z', 10), false);
  assert.equal(p.mustRotate({ count: 1, bytes: 10, day: '2026-01-01' }, '2026-01-02T00:00:00Z', 10), true);
});

test('property: any interleaving of emits, clock jumps and restarts yields one gap-free verified chain', async () => {
  const step = fc.oneof(
    fc.record({ k: fc.constant('emit' as const), n: fc.integer({ min: 1, max: 6 }) }),
    fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 2 * 86_400_000 }) }),
    fc.record({ k: fc.constant('restart' as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
      const dir = tmpTrail();
      const clock = new ManualClock('2026-05-01T20:00:00.000Z');
      const open = () =>
        AuditLogger.open({
          mode: 'local',
          dir,
          serviceId: 'svc',
          clock,
          macKey: KEY,
          logger: quiet,
          rotation: { maxBytes: 1500 },
          flush: { mode: 'batched', maxEvents: 4, maxDelayMs: 1 },
        });
      let log = await open();
      let total = 0;
      for (const s of steps) {
        if (s.k === 'emit') for (let i = 0; i < s.n; i++) assert.equal(log.emit(routine(total++)).seq, total);
        else if (s.k === 'tick') clock.advance(s.ms);
        else {
          await log.close();
          log = await open();
          assert.equal(log.lastSeq, total);
        }
      }
      await log.close();
      const recs = await readTrail(dir, KEY);
      assert.equal(recs.length, total);
    }),
    { numRuns: Number(process.env.VRAMSEAL_PROPERTY_RUNS ?? 15) },
  );
});

test('mutateManifest (retention): serialized with the writer, persisted, and guarded against touching the open file', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    rotation: { maxBytes: 1500 },
    flush: { mode: 'batched', maxEvents: 2, maxDelayMs: 1 },
  });
  for (let i = 0; i < 8; i++) log.emit(routine(i));
  await log.flush();
  const first = log.manifest()?.files[0];
  assert.equal(first?.state, 'closed');
  // Mutate concurrently with more writes (and rotations).
  const more = Array.from({ length: 8 }, (_, i) => log.emit(routine(100 + i)));
  await log.mutateManifest((m) => {
    const f = m.files[0];
    if (f) {
      f.state = 'archived';
      f.archive = `${f.name}.gz`;
    }
  });
  await Promise.all(more.map((r) => r.durable));
  await assert.rejects(
    log.mutateManifest((m) => {
      m.files.pop();
    }),
    /open file entry must stay last/,
  );
  await assert.rejects(
    log.mutateManifest((m) => {
      (m.files[0] as { first_seq: number }).first_seq = 99;
    }),
    /mutateManifest result/,
  );
  await log.close();
  const m = await readManifest(dir);
  assert.equal(m?.files[0]?.state, 'archived');
  assert.equal(m?.files[0]?.archive, `${first?.name}.gz`);
  assert.equal(m?.files.at(-1)?.last_seq, 16);
  assert.equal(m?.files.at(-1)?.state, 'open');
});
