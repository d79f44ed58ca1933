/**
 * Full-disk and I/O-error scenarios (issue 9).
 *
 * `runDiskFaults`: the writer runs on a {@link FaultyDisk} whose schedule (seeded) alternates clean
 * stretches, random ENOSPC/EIO failures of write/fdatasync/open/rename/fsync/ftruncate, and a disk
 * that fills up (short write, then ENOSPC) — while 8 emitters keep emitting with `failClosed`.
 * Checks: every injected fault is surfaced as an `error` event (with health `unavailable` at that
 * moment, `ioErrors` counted, and `emit` refusing with AuditUnavailableError); every event that was
 * accepted (emit returned a receipt) is in the trail at its seq; the trail verifies; outages are
 * recorded as `audit.io_error`; writing resumes when the disk heals.
 *
 * `runRealFullDisk`: the same on a real tmpfs mounted small (root only; skipped with a notice
 * otherwise), grown with `mount -o remount,size=` to give the space back.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type AuditEvent, AuditLogger, AuditUnavailableError, verifyTrail } from '@vramseal/audit';
import { pino } from 'pino';
import { FaultyDisk } from './fault-fs.js';
import { reportRow, rng } from './summary.js';
import { readRecords, tempDir } from './trail-io.js';

const KEY = Buffer.alloc(32, 0x3d);
const quiet = pino({ level: 'silent' });
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ev(n: number): AuditEvent & { shard_id: string } {
  return {
    type: 'seal.verified',
    timestamp: new Date().toISOString(),
    shard_id: `disk-${n}`,
    worker_id: 'disk',
  } as AuditEvent & { shard_id: string };
}

export interface DiskResult {
  faults: number;
  errorEvents: number;
  accepted: number;
  refused: number;
  lost: number;
}

export async function runDiskFaults(opts: { seed: number; attempts: number }): Promise<DiskResult> {
  const r = rng(opts.seed);
  let calls = 0;
  let armed = false;
  const disk: FaultyDisk = new FaultyDisk({
    seed: opts.seed ^ 0x9e3779b9,
    ops: ['write', 'fdatasync', 'open', 'rename', 'fsync', 'ftruncate'],
    // The schedule advances with the writer's own file-system calls (it keeps retrying during an
    // outage), so a phase always ends, whatever the emitters are waiting for.
    tick: () => {
      if (armed && ++calls % 40 === 0) nextPhase();
    },
  });
  const dir = join(tempDir('disk'), 'trail');
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'disk-test',
    fs: disk.fs,
    failClosed: true,
    flush: { mode: 'immediate' },
    rotation: { maxBytes: 8192 },
    macKey: KEY,
    retry: { initialMs: 1, maxMs: 8 },
    logger: quiet,
  });
  const failures: string[] = [];
  let errorEvents = 0;
  let listenerRefusals = 0;
  const surfaced = new Map<string, number>();
  log.on('error', (e) => {
    errorEvents++;
    const k = `${(e as { operation?: string }).operation}:${(e as { errno?: string }).errno}`;
    surfaced.set(k, (surfaced.get(k) ?? 0) + 1);
    if (log.health().state !== 'unavailable') failures.push('error event while health is not unavailable');
    try {
      log.emit(ev(-1));
      failures.push('failClosed: emit accepted during an outage');
    } catch (e) {
      if (e instanceof AuditUnavailableError) listenerRefusals++;
      else failures.push(`emit threw ${String(e)}`);
    }
  });
  const accepted = new Map<number, string>();
  let refused = 0;
  let n = 0;
  let phase = 'clean';
  const nextPhase = () => {
    const k = r.int(4);
    disk.heal();
    if (k === 1) {
      phase = 'random faults';
      disk.rate = 0.02 + r.next() * 0.1;
    } else if (k === 2 || k === 3) {
      phase = 'disk full';
      disk.spaceLeft = r.int(4096);
    } else phase = 'clean';
  };
  const worker = async () => {
    while (n < opts.attempts) {
      const i = n++;
      const e = ev(i);
      let rec: ReturnType<AuditLogger['emit']>;
      try {
        rec = log.emit(e);
      } catch (x) {
        if (!(x instanceof AuditUnavailableError)) failures.push(`emit threw ${String(x)}`);
        refused++;
        await delay(1);
        continue;
      }
      accepted.set(rec.seq, e.shard_id);
      await rec.durable.catch((x) => failures.push(`durable rejected: ${String(x)}`));
    }
  };
  const res: DiskResult = { faults: 0, errorEvents: 0, accepted: 0, refused: 0, lost: 0 };
  let cleanup = 0;
  try {
    armed = true;
    await Promise.all(Array.from({ length: 8 }, worker));
    armed = false;
    disk.heal();
    phase = 'healed';
    // A write already in flight when the disk healed may still fail (its fault was decided before):
    // flush() then rejects and the records stay queued; the next flush writes them.
    for (let i = 0; ; i++) {
      try {
        await log.flush();
        break;
      } catch (e) {
        if (!(e instanceof AuditUnavailableError) || i >= 20) throw e;
        await delay(5);
      }
    }
    for (let i = 0; log.health().state !== 'ok' && i < 100; i++) await delay(1); // see known-issues
    if (log.health().state !== 'ok') failures.push(`health after healing: ${log.health().state}`);
    const st = log.stats();
    await log.close();
    res.faults = disk.faults;
    res.errorEvents = errorEvents;
    res.accepted = accepted.size;
    res.refused = refused;
    if (st.ioErrors !== errorEvents)
      failures.push(`stats.ioErrors ${st.ioErrors} ≠ error events ${errorEvents}`);
    // Every failed attempt is surfaced once. A failed ftruncate in the clean-up of an attempt that
    // already failed (trail-writer #truncateBack) belongs to that attempt: it is retried before the
    // next write, and not reported a second time.
    cleanup = disk.injected.get('ftruncate:EIO') ?? 0;
    cleanup += disk.injected.get('ftruncate:ENOSPC') ?? 0;
    const unsurfaced = disk.faults - errorEvents;
    if (unsurfaced < 0 || unsurfaced > cleanup)
      failures.push(
        `${disk.faults} faults injected, ${errorEvents} surfaced (${JSON.stringify([...disk.injected])} vs ${JSON.stringify([...surfaced])})`,
      );
    cleanup = Math.min(cleanup, Math.max(0, unsurfaced));
    const report = await verifyTrail(dir, { macKey: KEY, concurrency: 0 });
    if (!report.ok) failures.push(`trail does not verify: ${JSON.stringify(report.failures.slice(0, 3))}`);
    const recs = readRecords(dir);
    const bySeq = new Map(recs.map((x) => [x.seq, x]));
    for (const [seq, id] of accepted) {
      if (bySeq.get(seq)?.event.shard_id !== id) {
        res.lost++;
        if (res.lost < 5) failures.push(`accepted seq ${seq} (${id}) missing`);
      }
    }
    const ioRecords = recs.filter((x) => x.event.type === 'audit.io_error').length;
    if (disk.faults > 0 && ioRecords === 0) failures.push('no audit.io_error record for the outages');
    if (disk.faults > 0 && refused + listenerRefusals === 0)
      failures.push('failClosed never refused an emit');
  } finally {
    reportRow({
      category: 'disk faults: injected ENOSPC/EIO (fs layer)',
      injected: disk.faults,
      detected: errorEvents + cleanup,
      undetected: Math.max(0, disk.faults - errorEvents - cleanup),
      lost: res.lost,
      note: `seed ${opts.seed}; ${errorEvents} error events (+${cleanup} ftruncate faults inside an already-reported attempt); faults ${[...disk.injected].map(([k, v]) => `${k}×${v}`).join(' ')}; ${accepted.size} accepted, ${refused + listenerRefusals} refused fail-closed; phase at end: ${phase}`,
    });
  }
  assert.deepEqual(failures, []);
  return res;
}

/** Mounts a tmpfs of `size` at a fresh directory, or returns the reason it cannot. */
export function mountTmpfs(
  size: string,
): { dir: string; unmount(): void; grow(size: string): void } | string {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not running as root';
  const dir = tempDir('tmpfs');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    return `mount -t tmpfs failed: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`;
  }
  return {
    dir,
    grow: (s) => execFileSync('mount', ['-o', `remount,size=${s}`, dir], { stdio: 'pipe' }),
    unmount: () => {
      try {
        execFileSync('umount', [dir], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      }
    },
  };
}

export async function runRealFullDisk(mnt: { dir: string; grow(size: string): void }): Promise<void> {
  const dir = join(mnt.dir, 'trail');
  mkdirSync(dir, { mode: 0o700 });
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'tmpfs-test',
    failClosed: true,
    flush: { mode: 'immediate' },
    rotation: { maxBytes: 32 * 1024 },
    macKey: KEY,
    retry: { initialMs: 2, maxMs: 20 },
    logger: quiet,
  });
  const failures: string[] = [];
  const errors: unknown[] = [];
  log.on('error', (e) => errors.push(e));
  const accepted = new Map<number, string>();
  const pending: Promise<unknown>[] = [];
  let refusedWhileFull = 0;
  let lost = 0;
  try {
    // Fill the disk.
    for (let i = 0; errors.length === 0 && i < 100_000; i++) {
      const e = ev(i);
      const rec = log.emit(e);
      accepted.set(rec.seq, e.shard_id);
      pending.push(rec.durable);
      if (i % 16 === 15) await Promise.race([rec.durable, delay(200)]);
    }
    assert.ok(errors.length > 0, 'the tmpfs filled up');
    const code =
      (errors[0] as { errno?: string; code?: string }).errno ?? (errors[0] as { code?: string }).code;
    if (code !== 'ENOSPC') failures.push(`first error is ${code}, not ENOSPC`);
    const h = log.health();
    if (h.state !== 'unavailable' || !/ENOSPC/.test(h.lastError ?? ''))
      failures.push(`health while full: ${JSON.stringify(h)}`);
    if (log.stats().ioErrors < 1) failures.push('ioErrors not counted');
    try {
      log.emit(ev(-1));
      failures.push('failClosed: emit accepted on a full disk');
    } catch (e) {
      if (e instanceof AuditUnavailableError) refusedWhileFull++;
      else failures.push(`emit threw ${String(e)}`);
    }
    // The trail on disk is consistent while full (what was written verifies).
    const during = await verifyTrail(dir, { macKey: KEY, concurrency: 0 });
    const bad = during.failures.filter((f) => f.kind !== 'torn_line');
    if (bad.length > 0) failures.push(`trail corrupted while full: ${JSON.stringify(bad.slice(0, 3))}`);
    // Space returns.
    mnt.grow('4m');
    await log.flush();
    await Promise.all(pending);
    if (log.health().state !== 'ok') failures.push(`health after growing: ${log.health().state}`);
    const after = log.emit(ev(1_000_000));
    accepted.set(after.seq, 'disk-1000000');
    await after.durable;
    await log.close();
    const report = await verifyTrail(dir, { macKey: KEY, concurrency: 0 });
    if (!report.ok) failures.push(`trail does not verify: ${JSON.stringify(report.failures.slice(0, 3))}`);
    const recs = readRecords(dir);
    const bySeq = new Map(recs.map((x) => [x.seq, x]));
    for (const [seq, id] of accepted) if (bySeq.get(seq)?.event.shard_id !== id) lost++;
    if (lost > 0) failures.push(`${lost} accepted record(s) missing`);
    const io = recs.find((x) => x.event.type === 'audit.io_error');
    if (io?.event.code !== 'ENOSPC') failures.push('no audit.io_error (ENOSPC) record');
  } finally {
    reportRow({
      category: 'disk full: real tmpfs (ENOSPC)',
      injected: 1,
      detected: errors.length > 0 ? 1 : 0,
      undetected: errors.length > 0 ? 0 : 1,
      lost,
      note: `${accepted.size} records accepted, ${errors.length} error event(s) until space returned, ${refusedWhileFull} emit refused fail-closed`,
    });
  }
  assert.deepEqual(failures, []);
}
