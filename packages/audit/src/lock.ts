/**
 * One writer per trail: an exclusive lock file `LOCK` in the trail directory (FORMAT.md §Lock).
 *
 * Acquire = create `LOCK` with O_CREAT|O_EXCL|O_NOFOLLOW (atomic on local file systems) and write
 * `{"pid","hostname","boot_id","start_ticks","created"}` as one JSON line, then fsync.
 *
 * A lock is stale, and broken, when its holder is provably gone:
 *   - same host and a different kernel boot id (/proc/sys/kernel/random/boot_id) → the machine rebooted;
 *   - same host, `kill(pid, 0)` fails with ESRCH → the process is dead;
 *   - same host, the pid is alive but its start time (/proc/<pid>/stat field 22) differs from the one
 *     recorded → the pid was reused by another process.
 * A lock written on another host, or whose holder may be alive, is never broken: open fails with
 * {@link AuditLockedError} naming the holder's pid. An empty/unparseable LOCK younger than 10 s is
 * treated as held (its writer may be between create and write); older, as stale.
 *
 * Breaking is race-safe: rename LOCK to a unique name, re-read it, and only delete it if it still holds
 * the stale content; if another process replaced it meanwhile, it is linked back.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AuditLockedError } from './errors.js';
import { type AuditFs, fsyncDir, isErrno, O_CREATE_EXCL, writeAll } from './fs.js';

export const LOCK_FILE = 'LOCK';

export interface LockInfo {
  pid: number;
  hostname: string;
  boot_id: string | null;
  start_ticks: string | null;
  created: string;
}

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Kernel boot id (Linux), or null elsewhere. */
export function bootId(): string | null {
  return readProc('/proc/sys/kernel/random/boot_id')?.trim() ?? null;
}

/** Start time of `pid` in clock ticks since boot (Linux /proc/<pid>/stat field 22), or null. */
export function processStartTicks(pid: number): string | null {
  const s = readProc(`/proc/${pid}/stat`);
  if (s === null) return null;
  // Field 2 (comm) is parenthesized and may contain spaces: split after the last ')'.
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return rest[19] ?? null; // fields 3.. → index 0 is field 3, field 22 is index 19
}

/** Why a lock is considered held or stale. */
export type HolderState = { alive: true; why: string } | { alive: false; why: string };

/** Decides whether the holder recorded in a lock file is (possibly) alive. */
export function holderState(info: LockInfo, self = { hostname: hostname(), bootId: bootId() }): HolderState {
  if (info.hostname !== self.hostname) return { alive: true, why: `held on host ${info.hostname}` };
  if (info.boot_id && self.bootId && info.boot_id !== self.bootId)
    return { alive: false, why: 'host rebooted' };
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if (isErrno(e, 'ESRCH')) return { alive: false, why: `pid ${info.pid} is not running` };
    // EPERM: exists, owned by another user.
  }
  if (info.start_ticks) {
    const now = processStartTicks(info.pid);
    if (now !== null && now !== info.start_ticks) return { alive: false, why: `pid ${info.pid} was reused` };
  }
  return { alive: true, why: `pid ${info.pid} is running` };
}

function parseLock(text: string): LockInfo | null {
  try {
    const o = JSON.parse(text) as Partial<LockInfo>;
    if (
      typeof o.pid !== 'number' ||
      !Number.isInteger(o.pid) ||
      o.pid <= 0 ||
      typeof o.hostname !== 'string'
    ) {
      return null;
    }
    return {
      pid: o.pid,
      hostname: o.hostname,
      boot_id: typeof o.boot_id === 'string' ? o.boot_id : null,
      start_ticks: typeof o.start_ticks === 'string' ? o.start_ticks : null,
      created: typeof o.created === 'string' ? o.created : '',
    };
  } catch {
    return null;
  }
}

/** A held writer lock. */
export class TrailLock {
  readonly #afs: AuditFs;
  readonly #path: string;
  readonly #text: string;
  #released = false;
  /** Non-null when a stale lock was broken to acquire this one (what it said, and why it was stale). */
  readonly brokeStale: { holder: LockInfo | null; why: string } | null;
  constructor(afs: AuditFs, path: string, text: string, brokeStale: TrailLock['brokeStale']) {
    this.#afs = afs;
    this.#path = path;
    this.#text = text;
    this.brokeStale = brokeStale;
  }
  get path(): string {
    return this.#path;
  }
  /** Deletes LOCK if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    let cur: string;
    try {
      cur = (await this.#afs.readFile(this.#path)).toString('utf8');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      throw e;
    }
    if (cur === this.#text) await this.#afs.unlink(this.#path);
  }
}

const EMPTY_LOCK_GRACE_MS = 10_000;

/** Acquires `dir/LOCK` or throws {@link AuditLockedError} naming the holder's pid. */
export async function acquireLock(
  afs: AuditFs,
  dir: string,
  now: () => number = Date.now,
): Promise<TrailLock> {
  const path = join(dir, LOCK_FILE);
  const info: LockInfo = {
    pid: process.pid,
    hostname: hostname(),
    boot_id: bootId(),
    start_ticks: processStartTicks(process.pid),
    created: new Date(now()).toISOString(),
  };
  const text = `${JSON.stringify(info)}\n`;
  let broke: TrailLock['brokeStale'] = null;
  for (let attempt = 0; attempt < 4; attempt++) {
    let fd: number;
    try {
      fd = await afs.open(path, O_CREATE_EXCL, 0o600);
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw e;
      const stale = await staleness(afs, path, now);
      if (stale.held)
        throw new AuditLockedError(dir, stale.holder?.pid, lockedMessage(dir, stale.holder, stale.why));
      if (await breakStale(afs, path, stale.text)) broke = { holder: stale.holder, why: stale.why };
      continue;
    }
    try {
      await writeAll(afs, fd, Buffer.from(text), 0);
      await afs.fsync(fd);
    } finally {
      await afs.close(fd);
    }
    await fsyncDir(afs, dir);
    return new TrailLock(afs, path, text, broke);
  }
  throw new AuditLockedError(
    dir,
    undefined,
    `audit trail ${dir}: could not acquire ${LOCK_FILE} (contended)`,
  );
}

function lockedMessage(dir: string, holder: LockInfo | null, why: string): string {
  const who = holder ? `pid ${holder.pid} on ${holder.hostname}` : 'an unknown writer';
  return `audit trail ${dir} is locked by ${who} (${why}); if that writer is gone, remove ${join(dir, LOCK_FILE)}`;
}

async function staleness(
  afs: AuditFs,
  path: string,
  now: () => number,
): Promise<{ held: boolean; holder: LockInfo | null; why: string; text: string }> {
  let text: string;
  let mtime: number;
  try {
    text = (await afs.readFile(path)).toString('utf8');
    mtime = (await afs.lstat(path)).mtimeMs;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return { held: false, holder: null, why: 'vanished', text: '' };
    throw e;
  }
  const holder = parseLock(text);
  if (!holder) {
    const young = now() - mtime < EMPTY_LOCK_GRACE_MS;
    return { held: young, holder: null, why: young ? 'lock being written' : 'unreadable stale lock', text };
  }
  const st = holderState(holder);
  return { held: st.alive, holder, why: st.why, text };
}

/** Removes a stale lock whose content is `text`; returns true if it removed exactly that lock. */
async function breakStale(afs: AuditFs, path: string, text: string): Promise<boolean> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await afs.rename(path, aside);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return false;
    throw e;
  }
  const got = (await afs.readFile(aside)).toString('utf8');
  if (got !== text) {
    // Someone replaced the stale lock with a live one between our read and rename: put it back.
    try {
      await afs.link(aside, path);
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw e;
    }
    await afs.unlink(aside);
    return false;
  }
  await afs.unlink(aside);
  return true;
}
