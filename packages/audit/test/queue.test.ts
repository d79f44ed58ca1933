import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AuditLogger } from '../src/logger.js';
import { type AwaitTracker, PendingRecord, RecordQueue } from '../src/queue.js';
import { AuditDroppedError } from '../src/writer-errors.js';
import { critical, FaultFs, quiet, readTrail, routine, tmpTrail, turn } from './writer-helpers.js';

const tracker = (): AwaitTracker & { changes: number } => {
  const t = {
    waiting: 0,
    changes: 0,
    changed() {
      t.changes++;
    },
  };
  return t;
};

test('PendingRecord: durable is created lazily, settles before or after access, tracks waiters', async () => {
  const t = tracker();
  const a = new PendingRecord(1, 'a', 'x', '{}', false, 1, t);
  a.settle();
  await a.durable; // accessed after settling
  assert.equal(t.waiting, 0);
  const b = new PendingRecord(2, 'b', 'x', '{}', false, 1, t);
  const p = b.durable;
  assert.equal(t.waiting, 1);
  b.settle();
  await p;
  assert.equal(t.waiting, 0);
  const c = new PendingRecord(3, 'c', 'x', '{}', false, 1, t);
  const pc = c.durable;
  c.fail(new Error('nope'));
  await assert.rejects(pc, /nope/);
  const d = new PendingRecord(4, 'd', 'x', '{}', false, 1, t);
  d.fail(new Error('late'));
  await assert.rejects(d.durable, /late/);
  assert.equal(t.waiting, 0);
});

test('RecordQueue: FIFO with byte accounting across compaction (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.integer({ min: 1, max: 50 }), fc.constant(-1)), { maxLength: 400 }),
      (ops) => {
        const q = new RecordQueue();
        const model: PendingRecord[] = [];
        let seq = 0;
        const t = tracker();
        for (const op of ops) {
          if (op === -1) {
            assert.equal(q.shift(), model.shift());
          } else {
            for (let i = 0; i < op; i++) {
              const r = new PendingRecord(++seq, '', '', '', false, seq % 7, t);
              q.push(r);
              model.push(r);
            }
          }
          assert.equal(q.length, model.length);
          assert.equal(
            q.bytes,
            model.reduce((s, r) => s + r.cost, 0),
          );
          assert.equal(q.first(), model[0]);
        }
        assert.deepEqual(q.peek(3), model.slice(0, 3));
      },
    ),
    { numRuns: 30 },
  );
  // Compaction path (head ≥ 4096).
  const q = new RecordQueue();
  const t = tracker();
  for (let i = 1; i <= 10_000; i++) q.push(new PendingRecord(i, '', '', '', false, 1, t));
  for (let i = 1; i <= 6000; i++) assert.equal(q.shift()?.seq, i);
  assert.equal(q.first()?.seq, 6001);
  assert.equal(q.length, 4000);
  assert.equal(q.bytes, 4000);
});

test("onFull 'drop': routine events beyond the limit are dropped and counted, critical ones never; the drop is recorded", async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    fs: ff.fs,
    queue: { maxEvents: 5, onFull: 'drop' },
    flush: { mode: 'immediate' },
  });
  const release = ff.block(); // the disk is slow: nothing becomes durable yet
  const rs = Array.from({ length: 9 }, (_, i) => log.emit(routine(i)));
  const c = log.emit(critical(100));
  assert.deepEqual(
    rs.map((r) => r.dropped),
    [false, false, false, false, false, true, true, true, true],
  );
  assert.deepEqual(
    rs.map((r) => r.seq),
    [1, 2, 3, 4, 5, 0, 0, 0, 0],
  );
  assert.equal(c.seq, 6, 'critical accepted over the limit, seq stays gap-free');
  await assert.rejects(
    rs[8]?.durable as Promise<void>,
    (e: unknown) => e instanceof AuditDroppedError && e.code === 'AUDIT_DROPPED',
  );
  assert.equal(log.stats().dropped, 4);
  assert.equal(log.health().state, 'degraded');
  assert.equal(log.health().droppedPending, 4);
  release();
  await c.durable;
  await log.flush();
  await log.close();
  const recs = await readTrail(dir);
  const dropped = recs.find((r) => r.event.type === 'audit.events_dropped');
  assert.ok(dropped, 'audit.events_dropped recorded');
  assert.equal(dropped.event.count, 4);
  assert.equal(dropped.event.reason, 'queue full');
  assert.equal(recs.length, 7);
});

test("onFull 'wait': routine events are accepted up to twice the limit (durable waits), ready() signals room", async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    fs: ff.fs,
    queue: { maxEvents: 4 },
    flush: { mode: 'immediate' },
  });
  const release = ff.block();
  const rs = Array.from({ length: 10 }, (_, i) => log.emit(routine(i)));
  assert.equal(rs.filter((r) => !r.dropped).length, 8);
  assert.equal(log.health().state, 'degraded');
  let ready = false;
  const rp = log.ready().then(() => {
    ready = true;
  });
  await turn(10);
  assert.equal(ready, false);
  release();
  await rp;
  await Promise.all(rs.filter((r) => !r.dropped).map((r) => r.durable));
  await log.close();
  const recs = await readTrail(dir);
  assert.equal(recs.filter((r) => r.event.type === 'seal.verified').length, 8);
  assert.equal(recs.find((r) => r.event.type === 'audit.events_dropped')?.event.count, 2);
});

test('the queue is bounded by bytes too', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    fs: ff.fs,
    queue: { maxBytes: 1500, onFull: 'drop' },
    flush: { mode: 'immediate' },
  });
  const release = ff.block();
  const rs = Array.from({ length: 6 }, (_, i) => log.emit(routine(i)));
  const kept = rs.filter((r) => !r.dropped).length;
  assert.ok(kept >= 2 && kept <= 4, `kept ${kept}`);
  assert.ok(log.health().queueBytes <= 1500);
  release();
  await log.close();
});
