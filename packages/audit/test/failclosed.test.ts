import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { AuditUnavailableError } from '../src/errors.js';
import { type AuditFs, nodeFs } from '../src/fs.js';
import { AuditLogger } from '../src/logger.js';
import { readManifest } from '../src/manifest.js';
import { TrailIoError } from '../src/trail-writer.js';
import { FaultFs, quiet, readTrail, recordFiles, routine, tmpTrail, turn } from './writer-helpers.js';

const KEY = Buffer.alloc(32, 5);
const base = (dir: string, ff: FaultFs) =>
  ({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    fs: ff.fs,
    macKey: KEY,
    retry: { initialMs: 5, maxMs: 20 },
    flush: { mode: 'immediate' },
  }) as const;

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await turn(2);
  }
}

test('ENOSPC: error event + unavailable health; failClosed emit throws; queued records are kept and written once the disk recovers', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({ ...base(dir, ff), failClosed: true });
  await log.emit(routine(0)).durable;
  const errors: unknown[] = [];
  log.on('error', (e) => errors.push(e));
  ff.fail('write', 'ENOSPC');
  const pending = [log.emit(routine(1)), log.emit(routine(2))];
  await until(() => errors.length > 0);
  const e = errors[0] as TrailIoError;
  assert.ok(e instanceof TrailIoError);
  assert.equal(e.errno, 'ENOSPC');
  assert.equal(e.operation, 'write');
  const h = log.health();
  assert.equal(h.state, 'unavailable');
  assert.match(h.lastError ?? '', /ENOSPC/);
  assert.equal(h.queueDepth, 2);
  assert.ok(log.stats().ioErrors >= 1);
  assert.throws(
    () => log.emit(routine(3)),
    (x: unknown) => x instanceof AuditUnavailableError && /ENOSPC/.test(x.message),
  );
  assert.equal(log.stats().rejected, 1);
  await until(() => errors.length >= 2); // it keeps retrying
  ff.heal();
  await Promise.all(pending.map((r) => r.durable));
  assert.equal(log.health().state, 'ok');
  const after = log.emit(routine(4));
  assert.equal(after.seq, 5, 'seq 4 went to the audit.io_error record');
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.deepEqual(
    recs.map((r) => r.event.type),
    ['seal.verified', 'seal.verified', 'seal.verified', 'audit.io_error', 'seal.verified'],
  );
  assert.equal(recs[3]?.event.code, 'ENOSPC');
  assert.equal(recs[3]?.event.operation, 'write');
});

test('a torn write (half written, then EIO) is truncated back: no partial line, no duplicate, chain intact', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open(base(dir, ff));
  await log.emit(routine(0)).durable;
  ff.tornWrite();
  const rs = [log.emit(routine(1)), log.emit(routine(2)), log.emit(routine(3))];
  await Promise.all(rs.map((r) => r.durable));
  await log.close();
  const recs = await readTrail(dir, KEY); // checks every line parses and chains
  assert.deepEqual(
    recs.filter((r) => r.event.type === 'seal.verified').map((r) => r.event.shard_id),
    ['shard-0', 'shard-1', 'shard-2', 'shard-3'],
  );
  assert.ok(log.stats().truncations >= 1);
});

test('fdatasync EIO: the run is rewritten from the last durable boundary (no duplicates)', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open(base(dir, ff));
  await log.emit(routine(0)).durable;
  ff.fail('fdatasync', 'EIO', 2);
  const rs = [log.emit(routine(1)), log.emit(routine(2))];
  await Promise.all(rs.map((r) => r.durable));
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.equal(recs.filter((r) => r.event.type === 'seal.verified').length, 3);
  assert.equal(recs.filter((r) => r.event.type === 'audit.io_error').length, 1);
});

test('write and truncate both failing: the tail is truncated before the next attempt', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open(base(dir, ff));
  await log.emit(routine(0)).durable;
  ff.tornWrite();
  ff.fail('ftruncate', 'EIO', 1);
  await log.emit(routine(1)).durable;
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.equal(recs.filter((r) => r.event.type === 'seal.verified').length, 2);
});

test('without failClosed emits are still accepted during an outage; flush() rejects while the disk fails', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({
    ...base(dir, ff),
    flush: { mode: 'batched', maxEvents: 100, maxDelayMs: 1000 },
  });
  log.on('error', () => {});
  ff.fail('write', 'EIO');
  const rs = [log.emit(routine(1))];
  await assert.rejects(
    log.flush(),
    (e: unknown) => e instanceof AuditUnavailableError && e.cause instanceof TrailIoError,
  );
  rs.push(log.emit(routine(2)));
  assert.equal(log.health().state, 'unavailable');
  ff.heal();
  await log.flush();
  await Promise.all(rs.map((r) => r.durable));
  await log.close();
  assert.equal((await readTrail(dir, KEY)).filter((r) => r.event.type === 'seal.verified').length, 2);
});

test('an error during rotation (sha256 file) is retried; the closed file ends up complete', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const log = await AuditLogger.open({ ...base(dir, ff), rotation: { maxBytes: 1200 } });
  log.on('error', () => {});
  ff.fail('open', 'ENOSPC', 2, (a) => String(a[0]).endsWith('.sha256.tmp'));
  const rs = Array.from({ length: 6 }, (_, i) => log.emit(routine(i)));
  await Promise.all(rs.map((r) => r.durable));
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.equal(recs.filter((r) => r.event.type === 'seal.verified').length, 6);
  const m = await readManifest(dir);
  for (const f of m?.files.slice(0, -1) ?? []) {
    assert.equal(f.state, 'closed');
    assert.ok(existsSync(join(dir, `${f.name}.sha256`)));
  }
  assert.ok(recordFiles(dir).length >= 2);
});

test('close() with a dead disk: gives up after closeTimeoutMs, rejects pending receipts, releases the lock, no unhandled rejection', async () => {
  const dir = tmpTrail();
  const ff = new FaultFs();
  const unhandled: unknown[] = [];
  const onU = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onU);
  try {
    const log = await AuditLogger.open({ ...base(dir, ff), closeTimeoutMs: 50 });
    log.on('error', () => {});
    await log.emit(routine(0)).durable;
    ff.fail('write', 'EIO');
    const r = log.emit(routine(1));
    log.emit(routine(2)); // never awaited
    await assert.rejects(
      log.close(),
      (e: unknown) => e instanceof AuditUnavailableError && /not written/.test(e.message),
    );
    await assert.rejects(r.durable, AuditUnavailableError);
    assert.equal(existsSync(join(dir, 'LOCK')), false);
    await turn(10);
  } finally {
    process.off('unhandledRejection', onU);
  }
  assert.deepEqual(unhandled, []);
  // Nothing half-written was left behind.
  const text = readFileSync(join(dir, recordFiles(dir)[0] as string), 'utf8');
  assert.ok(text.endsWith('\n'));
  assert.equal(text.split('\n').length - 1, 1);
});

/** An fs layer whose mutating calls fail at random (seeded): ENOSPC/EIO, and torn writes. */
function flakyFs(seed: number, p: number): { fs: AuditFs; on: (b: boolean) => void; faults: () => number } {
  let x = seed >>> 0 || 1;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  let active = true;
  let faults = 0;
  const fail = (op: string) => {
    if (!active || rnd() >= p) return;
    faults++;
    const e = new Error(`injected ${op} failure`) as NodeJS.ErrnoException;
    e.code = rnd() < 0.5 ? 'ENOSPC' : 'EIO';
    throw e;
  };
  const fs: AuditFs = {
    ...nodeFs,
    write: async (fd, buf, off, len, pos) => {
      if (active && rnd() < p / 2 && len > 1) {
        faults++;
        await nodeFs.write(fd, buf, off, Math.floor(len / 2), pos); // torn
        const e = new Error('injected torn write') as NodeJS.ErrnoException;
        e.code = 'EIO';
        throw e;
      }
      fail('write');
      return nodeFs.write(fd, buf, off, len, pos);
    },
    fdatasync: async (fd) => {
      fail('fdatasync');
      return nodeFs.fdatasync(fd);
    },
    fsync: async (fd) => {
      fail('fsync');
      return nodeFs.fsync(fd);
    },
    ftruncate: async (fd, len) => {
      fail('ftruncate');
      return nodeFs.ftruncate(fd, len);
    },
    rename: async (a, b) => {
      fail('rename');
      return nodeFs.rename(a, b);
    },
  };
  return { fs, on: (b) => (active = b), faults: () => faults };
}

test('property: random ENOSPC/EIO/torn writes during writes and rotations never lose an acknowledged record, never duplicate one, never break the chain', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.array(fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constant(0)), { minLength: 2, maxLength: 8 }),
      async (seed, steps) => {
        const dir = tmpTrail();
        const flaky = flakyFs(seed, 0.25);
        const open = async () => {
          flaky.on(false); // faults only while writing, not while opening/closing
          const l = await AuditLogger.open({
            mode: 'local',
            dir,
            serviceId: 'svc',
            logger: quiet,
            fs: flaky.fs,
            macKey: KEY,
            retry: { initialMs: 1, maxMs: 4 },
            rotation: { maxBytes: 1500 },
            flush: { mode: 'immediate' },
          });
          l.on('error', () => {});
          flaky.on(true);
          return l;
        };
        let log = await open();
        const acked: string[] = [];
        let n = 0;
        for (const k of steps) {
          if (k === 0) {
            flaky.on(false);
            await log.close();
            log = await open();
            continue;
          }
          const rs = Array.from({ length: k }, () => {
            const id = `s-${n++}`;
            return log.emit({ ...routine(), shard_id: id } as never).durable.then(() => acked.push(id));
          });
          await Promise.all(rs);
        }
        flaky.on(false);
        await log.close();
        const recs = await readTrail(dir, KEY); // chain, seq gap-free, hashes, MACs, no partial line
        const ids = recs
          .filter((r) => r.event.type === 'seal.verified')
          .map((r) => r.event.shard_id as string);
        assert.equal(new Set(ids).size, ids.length, 'no record written twice');
        for (const a of acked) assert.ok(ids.includes(a), `acknowledged ${a} is in the trail`);
        assert.equal(acked.length, n, 'every record was eventually written');
        if (flaky.faults() > 0) assert.ok(recs.some((r) => r.event.type === 'audit.io_error'));
      },
    ),
    { numRuns: Number(process.env.VRAMSEAL_PROPERTY_RUNS ?? 6) },
  );
});
