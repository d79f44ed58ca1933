/**
 * Restart recovery of the open record file (FORMAT.md §Recovery).
 *
 * Only the tail of the last file is read (a window of 64 KiB, doubled until a complete record is
 * found), never the whole trail. Working backwards from the end, the last complete line that parses
 * as a record whose `hash` recomputes is the resume point: `seq` and `hash` continue from it.
 * Every byte after it (a torn line from a crash mid-write, or garbage) is first copied to
 * `quarantine/<file>.<time>.torn` (0400, fsynced), then cut from the file (ftruncate + fsync). The
 * caller records each such move as an `audit.recovered` event, so nothing is silently dropped.
 *
 * The writer refuses to open (AuditCorruptError) when the file holds fewer records than the manifest
 * already recorded for it, when it is missing although the manifest lists records in it, or when
 * its first record does not continue the previous file's chain.
 */
import { join } from 'node:path';
import { type AuditFs, fsyncDir, isErrno, O_CREATE_EXCL, O_RDWR_NOFOLLOW, readAt, writeAll } from './fs.js';
import type { ManifestFile } from './manifest.js';
import { macMatches, recomputeHash } from './record.js';
import { AuditConfigError, AuditCorruptError } from './writer-errors.js';

export const QUARANTINE_DIR = 'quarantine';
const WINDOW = 64 * 1024;

/** Chain position: the last record's seq and hash (0 and GENESIS_HASH for an empty trail). */
export interface ChainPoint {
  seq: number;
  hash: string;
  time: string | null;
}

/** One quarantined tail (becomes an `audit.recovered` event). */
export interface RecoveredTail {
  file: string;
  quarantine_file: string;
  bytes: number;
  reason: 'torn_tail' | 'invalid_tail';
}

export interface RecoveredFile {
  fd: number;
  /** File size after recovery (end of the last good record). */
  size: number;
  /** Chain point after the file's last good record (or `prev` when it has none). */
  last: ChainPoint;
  /** Records in the file, and its first record's seq/hash/time (null when empty). */
  count: number;
  first: ChainPoint | null;
  recovered: RecoveredTail | null;
}

interface ParsedRecord {
  seq: number;
  hash: string;
  prev_hash: string;
  time: string;
  mac?: string;
}

/** Parses one line as a record whose hash recomputes; null otherwise. Throws on a MAC mismatch. */
function parseRecord(line: string, macKey: Uint8Array | undefined, file: string): ParsedRecord | null {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof r !== 'object' || r === null || r.v !== 1) return null;
  if (typeof r.seq !== 'number' || !Number.isSafeInteger(r.seq) || r.seq < 1) return null;
  if (typeof r.hash !== 'string' || typeof r.prev_hash !== 'string' || typeof r.time !== 'string')
    return null;
  if (typeof r.audit_id !== 'string' || typeof r.service_id !== 'string') return null;
  if (typeof r.event !== 'object' || r.event === null) return null;
  let h: string;
  try {
    h = recomputeHash(r as unknown as Parameters<typeof recomputeHash>[0]);
  } catch {
    return null;
  }
  if (h !== r.hash) return null;
  if (macKey && typeof r.mac === 'string' && !macMatches(macKey, h, r.mac)) {
    throw new AuditConfigError('macKey', `does not verify record seq ${r.seq} of ${file} (wrong key?)`);
  }
  return {
    seq: r.seq,
    hash: h,
    prev_hash: r.prev_hash,
    time: r.time,
    mac: typeof r.mac === 'string' ? r.mac : undefined,
  };
}

/**
 * Opens the manifest's open file `entry` for appending after recovering its tail.
 * `prev` is the chain point before the file (from the previous file's manifest entry).
 * Returns null when the file does not exist and the manifest lists no records in it.
 */
export async function recoverOpenFile(
  afs: AuditFs,
  dir: string,
  entry: ManifestFile,
  prev: ChainPoint,
  opts: { macKey?: Uint8Array; now: () => string },
): Promise<RecoveredFile | null> {
  const path = join(dir, entry.name);
  let st: Awaited<ReturnType<AuditFs['lstat']>>;
  try {
    st = await afs.lstat(path);
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) throw e;
    if (entry.count > 0)
      throw new AuditCorruptError(path, `missing, but the manifest lists ${entry.count} records`);
    return null;
  }
  if (st.isSymbolicLink()) throw new AuditConfigError('dir', `${path} is a symlink (refused)`);
  if (!st.isFile()) throw new AuditCorruptError(path, 'is not a regular file');
  if ((st.mode & 0o777) !== 0o600) await afs.chmod(path, 0o600);
  const fd = await afs.open(path, O_RDWR_NOFOLLOW);
  try {
    return await recoverFd(afs, dir, fd, entry, prev, opts);
  } catch (e) {
    await afs.close(fd).catch(() => {});
    throw e;
  }
}

async function recoverFd(
  afs: AuditFs,
  dir: string,
  fd: number,
  entry: ManifestFile,
  prev: ChainPoint,
  opts: { macKey?: Uint8Array; now: () => string },
): Promise<RecoveredFile> {
  const path = join(dir, entry.name);
  const size = (await afs.fstat(fd)).size;
  // Find the last good record, scanning backwards with a growing window.
  let good: { rec: ParsedRecord; end: number } | null = null;
  let window = Math.min(WINDOW, size);
  let sawInvalidCompleteLine = false;
  while (size > 0) {
    const base = size - window;
    const buf = await readAt(afs, fd, base, window);
    let end = buf.lastIndexOf(0x0a); // index of the last '\n' in buf
    while (end >= 0) {
      const start = end > 0 ? buf.lastIndexOf(0x0a, end - 1) + 1 : 0; // 0 when no earlier '\n'
      if (start === 0 && base > 0) break; // line may begin before the window: widen it
      const rec = parseRecord(buf.toString('utf8', start, end), opts.macKey, path);
      if (rec) {
        good = { rec, end: base + end + 1 };
        break;
      }
      sawInvalidCompleteLine = true;
      end = start - 1;
    }
    if (good || base === 0) break;
    window = Math.min(size, window * 2);
  }
  const goodEnd = good ? good.end : 0;
  if (good?.rec.mac !== undefined && !opts.macKey) {
    // Refuse a silent downgrade: the trail is MAC'd, so continuing without a key would drop the MAC.
    throw new AuditConfigError('macKey', `${path} carries MACs but no macKey was given`);
  }
  if (!good && entry.count > 0) {
    throw new AuditCorruptError(path, `no valid record found, but the manifest lists ${entry.count}`);
  }
  if (good && entry.last_seq !== null && good.rec.seq < entry.last_seq) {
    throw new AuditCorruptError(
      path,
      `last valid record has seq ${good.rec.seq}, but the manifest already recorded seq ${entry.last_seq}: records are missing`,
    );
  }
  let first: ChainPoint | null = null;
  let count = 0;
  if (good) {
    if (entry.first_seq !== null && entry.first_hash !== null && entry.first_time !== null) {
      first = { seq: entry.first_seq, hash: entry.first_hash, time: entry.first_time };
    } else {
      const head = await readAt(afs, fd, 0, Math.min(goodEnd, 1024 * 1024));
      const nl = head.indexOf(0x0a);
      const r = nl > 0 ? parseRecord(head.toString('utf8', 0, nl), opts.macKey, path) : null;
      if (!r) throw new AuditCorruptError(path, 'first line is not a valid record');
      first = { seq: r.seq, hash: r.hash, time: r.time };
      if (r.prev_hash !== prev.hash || r.seq !== prev.seq + 1) {
        throw new AuditCorruptError(
          path,
          `first record (seq ${r.seq}) does not continue the chain at seq ${prev.seq}`,
        );
      }
    }
    count = good.rec.seq - first.seq + 1;
  }
  let recovered: RecoveredTail | null = null;
  if (goodEnd < size) {
    const tail = await readAt(afs, fd, goodEnd, size - goodEnd);
    const qname = await quarantine(afs, dir, entry.name, tail, opts.now());
    await afs.ftruncate(fd, goodEnd);
    await afs.fsync(fd);
    // A tail with a complete but invalid line is not just a torn write.
    const reason = sawInvalidCompleteLine && tail.includes(0x0a) ? 'invalid_tail' : 'torn_tail';
    recovered = { file: entry.name, quarantine_file: qname, bytes: tail.length, reason };
  }
  const last: ChainPoint = good ? { seq: good.rec.seq, hash: good.rec.hash, time: good.rec.time } : prev;
  return { fd, size: goodEnd, last, count, first, recovered };
}

/** Copies `bytes` to a new file in quarantine/ (0400, fsynced). Returns its path relative to the trail dir. */
export async function quarantine(
  afs: AuditFs,
  dir: string,
  fileName: string,
  bytes: Uint8Array,
  nowIso: string,
): Promise<string> {
  const qdir = join(dir, QUARANTINE_DIR);
  await afs.mkdir(qdir, 0o700);
  const st = await afs.lstat(qdir);
  if (st.isSymbolicLink() || !st.isDirectory())
    throw new AuditConfigError('dir', `${qdir} is not a plain directory`);
  const stamp = nowIso.replace(/[-:.]/g, '');
  for (let i = 0; ; i++) {
    const name = `${fileName}.${stamp}${i ? `.${i}` : ''}.torn`;
    let fd: number;
    try {
      fd = await afs.open(join(qdir, name), O_CREATE_EXCL, 0o400);
    } catch (e) {
      if (isErrno(e, 'EEXIST') && i < 1000) continue;
      throw e;
    }
    try {
      await writeAll(afs, fd, bytes, 0);
      await afs.fsync(fd);
    } finally {
      await afs.close(fd);
    }
    await fsyncDir(afs, qdir);
    return `${QUARANTINE_DIR}/${name}`;
  }
}
