import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type AuditFs, nodeFs } from '../src/fs.js';
import { AuditLogger } from '../src/logger.js';
import {
  critical,
  FaultFs,
  quiet,
  readTrail,
  recordFiles,
  routine,
  tmpTrail,
  turn,
} from './writer-helpers.js';

function tracingFs(events: string[]): AuditFs {
  return {
    ...nodeFs,
    write: async (...a) => {
      const n = await nodeFs.write(...a);
      events.push('write');
      return n;
    },
    fdatasync: async (fd) => {
      await nodeFs.fdatasync(fd);
      events.push('fdatasync');
    },
  };
}

test('immediate: a receipt resolves only after its record was written and fdatasync completed', async () => {
  const dir = tmpTrail();
  const events: string[] = [];
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    fs: tracingFs(events),
    flush: { mode: 'immediate' },
  });
  const r = log.emit(routine(1));
  await r.durable.then(() => events.push('resolved'));
  const i = events.indexOf('resolved');
  assert.deepEqual(events.slice(i - 2, i + 1), ['write', 'fdatasync', 'resolved']);
  const file = readFileSync(join(dir, recordFiles(dir)[0] as string), 'utf8');
  assert.ok(file.includes(r.auditId));
  await log.close();
});

test('immediate: group commit — 64 concurrent emitters share writes and fdatasyncs', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    fs: ff.fs,
    flush: { mode: 'immediate' },
  });
  const before = ff.count('fdatasync');
  await Promise.all(
    Array.from({ length: 64 }, async (_, w) => {
      for (let i = 0; i < 5; i++) await log.emit(routine(w * 10 + i)).durable;
    }),
  );
  const syncs = ff.count('fdatasync') - before;
  assert.ok(syncs <= 40, `320 records took ${syncs} fdatasyncs`);
  assert.ok(log.stats().fsyncs <= 40);
  await log.close();
  assert.equal((await readTrail(dir)).length, 320);
});

test('batched: nothing is written before maxEvents; the maxEvents-th event flushes the batch in one write', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    fs: ff.fs,
    flush: { mode: 'batched', maxEvents: 10, maxDelayMs: 60_000 },
  });
  const w0 = ff.count('write');
  const rs = Array.from({ length: 9 }, (_, i) => log.emit(routine(i)));
  await turn(30);
  assert.equal(ff.count('write'), w0);
  assert.equal(log.health().queueDepth, 9);
  rs.push(log.emit(routine(9)));
  await Promise.all(rs.map((r) => r.durable));
  assert.equal(log.stats().writes, 1, 'one write of the record file');
  assert.equal(log.stats().fsyncs, 1);
  await log.close();
});

test('batched: maxDelayMs flushes a partial batch with a real timer', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    flush: { mode: 'batched', maxEvents: 1000, maxDelayMs: 300 },
  });
  const t0 = performance.now();
  const r = log.emit(routine());
  await turn(5);
  assert.equal(log.lastSeq, 0, 'not yet durable');
  await r.durable;
  assert.ok(performance.now() - t0 >= 290, 'waited for the timer');
  assert.equal(log.lastSeq, 1);
  await log.close();
});

test('hybrid: a critical event is made durable at once, together with everything queued before it', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    fs: ff.fs,
    flush: { mode: 'hybrid', maxEvents: 1000, maxDelayMs: 60_000 },
  });
  const w0 = ff.count('write');
  const early = [log.emit(routine(1)), log.emit(routine(2))];
  await turn(20);
  assert.equal(ff.count('write'), w0);
  const c = log.emit(critical(3));
  await c.durable;
  await Promise.all(early.map((r) => r.durable)); // already durable: resolved with the critical one
  assert.equal(log.stats().writes, 1);
  assert.equal(log.lastSeq, 3);
  log.emit(routine(4));
  await turn(20);
  assert.equal(log.lastSeq, 3, 'routine events after it wait for the batch');
  await log.flush();
  assert.equal(log.lastSeq, 4);
  await log.close();
});

test('flush() resolves when everything emitted before it is durable', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    flush: { mode: 'batched', maxEvents: 1000, maxDelayMs: 60_000 },
  });
  await log.flush();
  for (let i = 0; i < 25; i++) log.emit(routine(i));
  await log.flush();
  assert.equal(log.lastSeq, 25);
  assert.equal(log.health().queueDepth, 0);
  await log.close();
});

test('batched timers do not keep the process alive, yet queued records are written when it ends naturally', () => {
  const dir = tmpTrail();
  const r = spawnSync(
    process.execPath,
    [
      '--conditions=vramseal-source',
      '--import',
      'tsx',
      fileURLToPath(new URL('./fixtures/writer-natural-exit.ts', import.meta.url)),
      dir,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const file = readFileSync(join(dir, recordFiles(dir)[0] as string), 'utf8');
  assert.equal(file.split('\n').filter(Boolean).length, 3);
});
