/**
 * Retention of a trail's closed files: archive (gzip) after `archiveAfterDays`, delete after
 * `deleteAfterDays` — never inside `minRetentionDays`, and only files that verify — recording each
 * step in the trail itself so the chain of evidence stays complete (FORMAT.md §Manifest states
 * `archived` and `deleted`):
 *
 *  - archive: `<name>` → `<name>.gz` (written to a temp file, fsynced, renamed, read back and checked
 *    against the manifest `sha256` of the uncompressed content — the `.sha256` sidecar stays valid),
 *    then an `audit.file_archived` record, then the manifest entry becomes `archived`, then `<name>`
 *    is removed;
 *  - delete: the file is verified (every record's hash and MAC when a key is given, seq and links
 *    from the previous entry's `last_hash`, count, last hash, SHA-256 against manifest and sidecar),
 *    then an `audit.file_deleted` record (file, seq range, sha256) is made durable, then the manifest
 *    entry becomes `deleted` with `deleted_at` and `deleted_by_seq`, then the file and its sidecar are
 *    removed. A file that does not verify is kept and reported.
 *
 * Each step is ordered so a crash leaves evidence rather than a gap: re-running finishes the job.
 * Age is measured from the file's newest record (`last_time`), with an injected clock.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { type Clock, systemClock } from './clock.js';
import type { AuditEvent } from './events.js';
import { type Manifest, type ManifestFile, readManifest } from './manifest.js';
import { shipperOf } from './platform/attach.js';
import { readShipperState } from './platform/state.js';
import { GENESIS_HASH } from './record.js';
import { checkRecordLine, MacChecker } from './record-check.js';
import { scanTrailFile } from './trail-reader.js';

const DAY_MS = 86_400_000;

/** Retention periods in days. Defaults: 90 / 2555 / 2555 (2555 days ≈ 7 years). */
export interface RetentionPolicy {
  archiveAfterDays?: number;
  deleteAfterDays?: number;
  /** Nothing younger than this is ever deleted, whatever `deleteAfterDays` says. */
  minRetentionDays?: number;
}

export const DEFAULT_RETENTION: Required<RetentionPolicy> = {
  archiveAfterDays: 90,
  deleteAfterDays: 2555,
  minRetentionDays: 2555,
};

/** What retention needs from the live writer (the real `AuditLogger` satisfies it). */
export interface RetentionLogger {
  readonly dir: string;
  emit(event: AuditEvent): { seq: number; durable: Promise<void> };
  mutateManifest(fn: (m: Manifest) => void | Promise<void>): Promise<void>;
}

export interface RetentionOptions {
  policy?: RetentionPolicy;
  clock?: Clock;
  /** The trail's MAC key: deletion then also requires every MAC to check. */
  macKey?: Uint8Array;
  /** Report what would be done, change nothing. */
  dryRun?: boolean;
}

export interface RetentionAction {
  file: string;
  firstSeq: number | null;
  lastSeq: number | null;
  ageDays: number;
  /** For deletions: the seq of the `audit.file_deleted` record (null in a dry run). */
  recordSeq?: number | null;
}

export interface RetentionReport {
  archived: RetentionAction[];
  deleted: RetentionAction[];
  /** Files due for a step but left alone, and why (failed verification, empty, missing...). */
  skipped: (RetentionAction & { reason: string })[];
}

/** An invalid retention policy value (names the field and the rule). */
export class RetentionPolicyError extends Error {
  readonly code = 'INVALID_RETENTION_POLICY' as const;
  constructor(
    readonly field: string,
    rule: string,
  ) {
    super(`retention policy ${field}: ${rule}`);
    this.name = 'RetentionPolicyError';
  }
}

/** Resolves defaults and checks a policy. */
export function resolvePolicy(p: RetentionPolicy = {}): Required<RetentionPolicy> {
  const r = {
    ...DEFAULT_RETENTION,
    ...Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)),
  };
  for (const k of ['archiveAfterDays', 'deleteAfterDays', 'minRetentionDays'] as const) {
    const v = r[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new RetentionPolicyError(k, 'must be a finite number of days >= 0');
    }
  }
  return r;
}

/**
 * Applies the retention policy to the trail `log` writes. Steps run oldest file first; see the module
 * comment for the order of each step.
 */
export async function applyRetention(
  log: RetentionLogger,
  opts: RetentionOptions = {},
): Promise<RetentionReport> {
  const policy = resolvePolicy(opts.policy);
  const clock = opts.clock ?? systemClock;
  const dir = log.dir;
  const report: RetentionReport = { archived: [], deleted: [], skipped: [] };
  const m = await readManifest(dir);
  if (!m) return report;
  const deleteAfter = Math.max(policy.deleteAfterDays, policy.minRetentionDays);
  const mac = opts.macKey ? new MacChecker(opts.macKey) : null;
  const now = clock.now();
  // Platform mode: the local trail is the spool. A record the collector has not acknowledged exists
  // nowhere else, so a file holding one is never deleted (the live shipper's figure, else the one it
  // persisted in platform-state.json).
  const shipped = shipperOf(log)?.status().ackedSeq ?? (await readShipperState(dir))?.acked_seq;

  for (let i = 0; i < m.files.length; i++) {
    const e = m.files[i] as ManifestFile;
    const prev = i > 0 ? (m.files[i - 1] as ManifestFile) : null;
    if (e.state === 'deleted') {
      // A crash after the manifest said deleted: finish removing what is left.
      if (!opts.dryRun) await removeFiles(dir, e.name);
      continue;
    }
    if (e.state !== 'closed' && e.state !== 'archived') continue;
    const newest = Date.parse(e.last_time ?? e.closed ?? '');
    const act: RetentionAction = {
      file: e.name,
      firstSeq: e.first_seq,
      lastSeq: e.last_seq,
      ageDays: Number.isFinite(newest) ? (now - newest) / DAY_MS : Number.NaN,
    };
    if (!Number.isFinite(act.ageDays)) {
      report.skipped.push({ ...act, reason: 'manifest entry has no last_time/closed time' });
      continue;
    }
    const dueDelete = act.ageDays >= deleteAfter;
    const dueArchive = !dueDelete && e.state === 'closed' && act.ageDays >= policy.archiveAfterDays;
    if (!dueDelete && !dueArchive) continue;
    if (e.count === 0 || e.first_seq === null || e.last_seq === null || e.sha256 === null) {
      report.skipped.push({ ...act, reason: 'file holds no records' });
      continue;
    }
    const problem = await checkFile(dir, e, prev, mac);
    if (problem !== null) {
      report.skipped.push({ ...act, reason: `does not verify: ${problem}` });
      continue;
    }
    if (dueDelete && shipped !== undefined && e.last_seq > shipped) {
      report.skipped.push({
        ...act,
        reason: `records up to seq ${e.last_seq} not yet acknowledged by the collector (acknowledged through seq ${shipped})`,
      });
      continue;
    }
    if (dueDelete) {
      if (opts.dryRun) {
        report.deleted.push({ ...act, recordSeq: null });
        continue;
      }
      const r = log.emit({
        type: 'audit.file_deleted',
        timestamp: new Date(now).toISOString(),
        file: e.name,
        first_seq: e.first_seq,
        last_seq: e.last_seq,
        sha256: e.sha256,
        reason: `retention: newest record older than ${deleteAfter} days`,
      } as AuditEvent);
      await r.durable;
      await log.mutateManifest((mm) => {
        const x = mm.files.find((f) => f.name === e.name);
        if (!x) return;
        x.state = 'deleted';
        x.deleted_at = new Date(now).toISOString();
        x.deleted_by_seq = r.seq;
      });
      await removeFiles(dir, e.name);
      report.deleted.push({ ...act, recordSeq: r.seq });
    } else {
      if (opts.dryRun) {
        report.archived.push(act);
        continue;
      }
      await archiveFile(dir, e);
      const r = log.emit({
        type: 'audit.file_archived',
        timestamp: new Date(now).toISOString(),
        file: e.name,
        archive: `${e.name}.gz`,
        first_seq: e.first_seq,
        last_seq: e.last_seq,
        sha256: e.sha256,
      } as AuditEvent);
      await r.durable;
      await log.mutateManifest((mm) => {
        const x = mm.files.find((f) => f.name === e.name);
        if (x?.state !== 'closed') return;
        x.state = 'archived';
        x.archive = `${e.name}.gz`;
      });
      await unlink(join(dir, e.name)).catch(ignoreMissing);
      await fsyncDir(dir);
      report.archived.push(act);
    }
  }
  return report;
}

function ignoreMissing(e: NodeJS.ErrnoException): void {
  if (e.code !== 'ENOENT') throw e;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function removeFiles(dir: string, name: string): Promise<void> {
  for (const n of [name, `${name}.gz`, `${name}.sha256`, `${name}.gz.tmp`]) {
    await unlink(join(dir, n)).catch(ignoreMissing);
  }
  await fsyncDir(dir);
}

/** gzip `<name>` to `<name>.gz` through a temp file; reads the archive back and checks its SHA-256. */
async function archiveFile(dir: string, e: ManifestFile): Promise<void> {
  const src = join(dir, e.name);
  const tmp = join(dir, `${e.name}.gz.tmp`);
  const dst = join(dir, `${e.name}.gz`);
  await pipeline(createReadStream(src), createGzip({ level: 6 }), createWriteStream(tmp, { mode: 0o600 }));
  const fh = await open(tmp, 'r+');
  try {
    await fh.sync();
    await fh.chmod(0o400);
  } finally {
    await fh.close();
  }
  const back = await scanTrailFile(tmp, { line() {}, oversize() {} }, { gzip: true });
  if (back.sha256 !== e.sha256) {
    await unlink(tmp).catch(ignoreMissing);
    throw new Error(
      `archive of ${e.name} does not read back to its sha256 (disk problem?); left uncompressed`,
    );
  }
  await rename(tmp, dst);
  await fsyncDir(dir);
}

/**
 * Verifies one closed/archived file on its own: every line a record whose hash (and MAC) checks, seq
 * from `first_seq` without gaps, links from the previous entry's `last_hash`, last hash and count as
 * listed, content SHA-256 equal to the manifest's and the sidecar's. Returns null or the problem.
 */
async function checkFile(
  dir: string,
  e: ManifestFile,
  prev: ManifestFile | null,
  mac: MacChecker | null,
): Promise<string | null> {
  const path = e.state === 'archived' ? join(dir, `${e.name}.gz`) : join(dir, e.name);
  let expSeq = e.first_seq as number;
  let expPrev: string | null = prev ? prev.last_hash : e.first_seq === 1 ? GENESIS_HASH : null;
  let count = 0;
  let problem: string | null = null;
  const note = (line: number, what: string) => {
    problem ??= `line ${line}: ${what}`;
  };
  let scan: Awaited<ReturnType<typeof scanTrailFile>>;
  try {
    scan = await scanTrailFile(
      path,
      {
        line(bytes, n, terminated) {
          if (problem !== null) return;
          if (!terminated) return note(n, 'torn last line');
          const r = checkRecordLine(bytes);
          if ('reason' in r) return note(n, r.reason);
          if (!r.hashOk) return note(n, 'content does not match its hash');
          if (r.seq !== expSeq) return note(n, `seq ${r.seq}, expected ${expSeq}`);
          if (expPrev !== null && r.prevHash !== expPrev) return note(n, 'prev_hash does not link');
          if (mac && !mac.matches(r.hash, r.mac)) return note(n, 'MAC does not match');
          expSeq++;
          expPrev = r.hash;
          count++;
        },
        oversize(n) {
          note(n, 'line over the length cap');
        },
      },
      { gzip: e.state === 'archived' },
    );
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  if (problem !== null) return problem;
  if (count !== e.count) return `${count} records, manifest lists ${e.count}`;
  if (expPrev !== e.last_hash) return 'last hash differs from the manifest';
  if (scan.sha256 !== e.sha256) return 'content SHA-256 differs from the manifest';
  try {
    const side = await readFile(join(dir, `${e.name}.sha256`), 'latin1');
    if (!side.startsWith(`${e.sha256}  ${e.name}`)) return `${e.name}.sha256 does not match`;
  } catch {
    return `${e.name}.sha256 is missing`;
  }
  return null;
}
