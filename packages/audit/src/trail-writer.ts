/**
 * The local file layer of a trail: the directory, the writer lock, the manifest, the open record file,
 * rotation and restart recovery (FORMAT.md §Directory, §Rotation, §Lock, §Recovery).
 *
 * It writes already-sealed lines; chaining and queueing live in the logger. All methods except
 * {@link FileTrail.mutateManifest} are called by one writer at a time.
 *
 * Durability: {@link FileTrail.append} writes a run of records with one positional write at the end of
 * the last good record, then `fdatasync`s, and only then reports them durable. If the write or the sync
 * fails, the file is truncated back to the last durable record boundary (before the next attempt, if
 * truncation itself fails now), so a retry never leaves a half-written line behind.
 */

import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { utcDay } from './clock.js';
import { AuditError } from './errors.js';
import { type AuditFs, fsyncDir, isErrno, O_CREATE_EXCL, readAt, writeAll, writeFileAtomic } from './fs.js';
import { acquireLock, type TrailLock } from './lock.js';
import {
  checkManifest,
  cloneManifest,
  MANIFEST_FILE,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestFile,
  newFileEntry,
  parseRecordFileName,
  readManifest,
  writeManifest,
} from './manifest.js';
import { GENESIS_HASH } from './record.js';
import { type ChainPoint, type RecoveredTail, recoverOpenFile } from './recovery.js';
import type { RotationPolicy } from './rotation.js';
import { AuditConfigError, AuditCorruptError } from './writer-errors.js';

/**
 * A record ready to be written: its encoded line — `len` bytes of `buf` from `off`, the trailing `\n`
 * included — and what the manifest needs.
 */
export interface SealedRecord {
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  readonly buf: Buffer | null;
  readonly off: number;
  readonly len: number;
}

/** An I/O failure of the trail, naming the operation (`write`, `fdatasync`, `rotate`, ...) and errno code. */
export class TrailIoError extends AuditError {
  declare readonly code: 'AUDIT_IO';
  constructor(
    readonly operation: string,
    readonly errno: string,
    readonly file: string,
    cause: unknown,
  ) {
    super('AUDIT_IO', `audit trail ${operation} failed on ${file}: ${errno}`, { cause });
  }
}

function ioError(operation: string, file: string, e: unknown): TrailIoError {
  if (e instanceof TrailIoError) return e;
  const code = (e as NodeJS.ErrnoException)?.code ?? 'EIO';
  return new TrailIoError(operation, code, file, e);
}

export interface TrailCounters {
  writes: number;
  fsyncs: number;
  fsyncTotalMs: number;
  fsyncMaxMs: number;
  bytesWritten: number;
  rotations: number;
  truncations: number;
}

interface OpenFile {
  fd: number;
  entry: ManifestFile;
  day: string;
  /** Bytes up to the end of the last durable record. */
  size: number;
  /** Running SHA-256 of the file's durable bytes, or null when unknown (file reopened after restart). */
  sha: Hash | null;
  /** Bytes past `size` may hold a failed write: truncate before writing again. */
  dirtyTail: boolean;
}

export interface FileTrailOptions {
  afs: AuditFs;
  dir: string;
  serviceId: string;
  rotation: RotationPolicy;
  macKey?: Uint8Array;
  now: () => number;
  log: Logger;
}

export class FileTrail {
  readonly dir: string;
  readonly counters: TrailCounters = {
    writes: 0,
    fsyncs: 0,
    fsyncTotalMs: 0,
    fsyncMaxMs: 0,
    bytesWritten: 0,
    rotations: 0,
    truncations: 0,
  };
  readonly #afs: AuditFs;
  readonly #rotation: RotationPolicy;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #lock: TrailLock;
  #manifest: Manifest;
  #manifestDirty = false;
  #manifestChain: Promise<unknown> = Promise.resolve();
  #file: OpenFile | null = null;
  /** A file being closed by rotation whose close has not completed (retried first on the next append). */
  #closing: OpenFile | null = null;
  /** Chain point the trail resumed from at open. */
  readonly resume: ChainPoint;
  /** Tails quarantined at open; the logger records each as `audit.recovered`. */
  readonly recovered: readonly RecoveredTail[];

  private constructor(
    o: FileTrailOptions,
    lock: TrailLock,
    manifest: Manifest,
    file: OpenFile | null,
    resume: ChainPoint,
    recovered: RecoveredTail[],
  ) {
    this.dir = o.dir;
    this.#afs = o.afs;
    this.#rotation = o.rotation;
    this.#now = o.now;
    this.#log = o.log;
    this.#lock = lock;
    this.#manifest = manifest;
    this.#file = file;
    this.resume = resume;
    this.recovered = recovered;
  }

  get lock(): TrailLock {
    return this.#lock;
  }

  /** Prepares the directory, takes the lock, reads the manifest and recovers the open file. */
  static async open(o: FileTrailOptions): Promise<FileTrail> {
    const { afs, dir } = o;
    await prepareDir(afs, dir, o.log);
    const lock = await acquireLock(afs, dir, o.now);
    try {
      if (lock.brokeStale) {
        o.log.warn(
          { dir, holder: lock.brokeStale.holder, why: lock.brokeStale.why },
          'broke stale audit trail lock',
        );
      }
      return await FileTrail.#openLocked(o, lock);
    } catch (e) {
      await lock.release().catch(() => {});
      throw e;
    }
  }

  static async #openLocked(o: FileTrailOptions, lock: TrailLock): Promise<FileTrail> {
    const { afs, dir } = o;
    const nowIso = () => new Date(o.now()).toISOString();
    try {
      await afs.unlink(join(dir, `${MANIFEST_FILE}.tmp`));
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
    }
    const names = await afs.readdir(dir);
    let manifest = await readManifest(dir, afs);
    const fresh = manifest === null;
    const recordFiles = names.filter((n) => parseRecordFileName(n) || /\.audit\.gz$/.test(n));
    if (!manifest) {
      if (recordFiles.length > 0) {
        throw new AuditCorruptError(
          join(dir, MANIFEST_FILE),
          `missing, but ${recordFiles.length} record file(s) exist (e.g. ${recordFiles[0]}); refusing to guess the chain`,
        );
      }
      manifest = { v: MANIFEST_VERSION, service_id: o.serviceId, files: [] };
    } else if (manifest.service_id !== o.serviceId) {
      throw new AuditConfigError(
        'serviceId',
        `trail ${dir} belongs to service ${JSON.stringify(manifest.service_id)}, not ${JSON.stringify(o.serviceId)}`,
      );
    }
    // Record files the manifest does not know: an empty one is a leftover of a crash between creating
    // the file and recording it (removed); anything else is refused.
    const known = new Set(manifest.files.map((f) => f.name));
    for (const n of names) {
      if (!parseRecordFileName(n) || known.has(n)) continue;
      const st = await afs.lstat(join(dir, n));
      if (st.isFile() && st.size === 0) {
        await afs.unlink(join(dir, n));
        o.log.warn({ dir, file: n }, 'removed empty record file not listed in the manifest');
      } else {
        throw new AuditCorruptError(join(dir, n), 'record file not listed in the manifest');
      }
    }
    // Chain point before the last file.
    const files = manifest.files;
    const last = files[files.length - 1];
    let prev: ChainPoint = { seq: 0, hash: GENESIS_HASH, time: null };
    for (let i = files.length - 1 - (last?.state === 'open' ? 1 : 0); i >= 0; i--) {
      const f = files[i] as ManifestFile;
      if (f.count > 0) {
        prev = { seq: f.last_seq as number, hash: f.last_hash as string, time: f.last_time };
        break;
      }
    }
    let file: OpenFile | null = null;
    let resume = prev;
    const recovered: RecoveredTail[] = [];
    let dirty = fresh; // a new trail writes its manifest at once: it binds the directory to the service id
    if (last?.state === 'open') {
      const r = await recoverOpenFile(afs, dir, last, prev, { macKey: o.macKey, now: nowIso });
      if (r === null) {
        files.pop(); // listed, never created, no records: forget it
        dirty = true;
      } else {
        if (r.recovered) recovered.push(r.recovered);
        resume = r.last;
        last.count = r.count;
        last.bytes = r.size;
        if (r.first) {
          last.first_seq = r.first.seq;
          last.first_hash = r.first.hash;
          last.first_time = r.first.time;
          last.last_seq = r.last.seq;
          last.last_hash = r.last.hash;
          last.last_time = r.last.time;
        }
        dirty = true;
        const day = parseRecordFileName(last.name)?.day as string;
        file = {
          fd: r.fd,
          entry: last,
          day,
          size: r.size,
          sha: r.size === 0 ? createHash('sha256') : null,
          dirtyTail: false,
        };
      }
    }
    const t = new FileTrail(o, lock, manifest, file, resume, recovered);
    if (dirty) {
      t.#manifestDirty = true;
      await t.#writeManifestNow();
    }
    return t;
  }

  /** The manifest as the writer last wrote or will write it (a copy). */
  manifest(): Manifest {
    return cloneManifest(this.#manifest);
  }

  /**
   * Writes `recs` (in seq order), rotating as needed. Calls `onDurable(n)` each time the next `n`
   * records are on disk and fdatasync'ed. Throws {@link TrailIoError}; records not yet reported
   * durable must be passed again (with any new ones after them).
   */
  async append(recs: readonly SealedRecord[], onDurable: (n: number) => void): Promise<void> {
    if (this.#closing) await this.#finishClose();
    if (this.#manifestDirty) await this.#writeManifestOrThrow();
    let i = 0;
    const n = recs.length;
    while (i < n) {
      const r0 = recs[i] as SealedRecord;
      let f = this.#file;
      if (f && f.entry.count === 0 && this.#rotation.daily && utcDay(r0.time) !== f.day) {
        await this.#discardEmpty(f); // empty file from before a restart, named for another day
        f = null;
      }
      if (
        f &&
        this.#rotation.mustRotate({ count: f.entry.count, bytes: f.size, day: f.day }, r0.time, r0.len)
      ) {
        this.#closing = f;
        this.#file = null;
        await this.#finishClose();
        f = null;
      }
      if (!f) f = await this.#createFile(r0.time);
      // Collect the run of records that fit in this file; adjacent lines in one buffer form one slice.
      let bytes = f.size;
      let count = f.entry.count;
      let k = i;
      const slices: Buffer[] = [];
      let cur: Buffer | null = null;
      let start = 0;
      let end = 0;
      while (k < n) {
        const r = recs[k] as SealedRecord;
        if (this.#rotation.mustRotate({ count, bytes, day: f.day }, r.time, r.len)) break;
        const b = r.buf as Buffer;
        if (b === cur && r.off === end) end += r.len;
        else {
          if (cur) slices.push(cur.subarray(start, end));
          cur = b;
          start = r.off;
          end = r.off + r.len;
        }
        bytes += r.len;
        count++;
        k++;
      }
      if (cur) slices.push(cur.subarray(start, end));
      const buf = slices.length === 1 ? (slices[0] as Buffer) : Buffer.concat(slices, bytes - f.size);
      await this.#writeDurable(f, buf);
      const e = f.entry;
      const first = recs[i] as SealedRecord;
      const lastR = recs[k - 1] as SealedRecord;
      if (e.count === 0) {
        e.first_seq = first.seq;
        e.first_hash = first.hash;
        e.first_time = first.time;
      }
      e.count += k - i;
      e.last_seq = lastR.seq;
      e.last_hash = lastR.hash;
      e.last_time = lastR.time;
      e.bytes = f.size;
      onDurable(k - i);
      i = k;
    }
  }

  async #writeDurable(f: OpenFile, buf: Buffer): Promise<void> {
    const afs = this.#afs;
    const path = join(this.dir, f.entry.name);
    if (f.dirtyTail) {
      try {
        await afs.ftruncate(f.fd, f.size);
      } catch (e) {
        throw ioError('ftruncate', path, e);
      }
      f.dirtyTail = false;
      this.counters.truncations++;
    }
    try {
      f.dirtyTail = true; // until the write and sync both succeed
      await writeAll(afs, f.fd, buf, f.size);
      this.counters.writes++;
    } catch (e) {
      await this.#truncateBack(f);
      throw ioError('write', path, e);
    }
    const t0 = performance.now();
    try {
      await afs.fdatasync(f.fd);
    } catch (e) {
      // After a failed fdatasync the page cache state is unknown: rewrite the whole run on retry.
      await this.#truncateBack(f);
      throw ioError('fdatasync', path, e);
    }
    const dt = performance.now() - t0;
    this.counters.fsyncs++;
    this.counters.fsyncTotalMs += dt;
    if (dt > this.counters.fsyncMaxMs) this.counters.fsyncMaxMs = dt;
    f.dirtyTail = false;
    f.size += buf.length;
    f.sha?.update(buf);
    this.counters.bytesWritten += buf.length;
  }

  async #truncateBack(f: OpenFile): Promise<void> {
    try {
      await this.#afs.ftruncate(f.fd, f.size);
      f.dirtyTail = false;
      this.counters.truncations++;
    } catch {
      f.dirtyTail = true; // retried before the next write
    }
  }

  async #createFile(time: string): Promise<OpenFile> {
    const afs = this.#afs;
    const taken = new Set<string>();
    for (;;) {
      const name = this.#rotation.nextName(this.#manifest, time, taken);
      const path = join(this.dir, name);
      let fd: number;
      try {
        fd = await afs.open(path, O_CREATE_EXCL, 0o600);
      } catch (e) {
        if (isErrno(e, 'EEXIST') && taken.size < 1000) {
          taken.add(name); // a leftover not in the manifest (or a symlink): never overwrite, pick the next name
          continue;
        }
        throw ioError('create', path, e);
      }
      const entry = newFileEntry(name, new Date(this.#now()).toISOString());
      const f: OpenFile = {
        fd,
        entry,
        day: utcDay(time),
        size: 0,
        sha: createHash('sha256'),
        dirtyTail: false,
      };
      this.#file = f;
      this.#manifest.files.push(entry);
      this.#manifestDirty = true;
      try {
        await fsyncDir(afs, this.dir);
      } catch (e) {
        throw ioError('fsync-dir', this.dir, e);
      }
      await this.#writeManifestOrThrow();
      this.#log.debug({ file: name }, 'audit record file created');
      return f;
    }
  }

  async #discardEmpty(f: OpenFile): Promise<void> {
    const path = join(this.dir, f.entry.name);
    try {
      await this.#afs.close(f.fd);
      await this.#afs.unlink(path);
    } catch (e) {
      throw ioError('discard-empty', path, e);
    }
    this.#file = null;
    const i = this.#manifest.files.indexOf(f.entry);
    if (i >= 0) this.#manifest.files.splice(i, 1);
    this.#manifestDirty = true;
    await this.#writeManifestOrThrow();
  }

  /** Closes the file being rotated out: sha256, `<file>.sha256`, manifest `closed`, chmod 0400. Idempotent. */
  async #finishClose(): Promise<void> {
    const f = this.#closing;
    if (!f) return;
    const afs = this.#afs;
    const path = join(this.dir, f.entry.name);
    try {
      if (f.dirtyTail) {
        await afs.ftruncate(f.fd, f.size);
        f.dirtyTail = false;
      }
      if (!f.sha) f.sha = await hashFile(afs, f.fd, f.size);
      const sha = f.sha.copy().digest('hex');
      await writeFileAtomic(afs, this.dir, `${path}.sha256`, Buffer.from(`${sha}  ${f.entry.name}\n`), 0o400);
      f.entry.state = 'closed';
      f.entry.sha256 = sha;
      f.entry.bytes = f.size;
      f.entry.closed ??= new Date(this.#now()).toISOString();
      this.#manifestDirty = true;
      await this.#writeManifestOrThrow();
      await afs.chmod(path, 0o400);
      if (f.fd >= 0) {
        await afs.close(f.fd);
        f.fd = -1;
      }
    } catch (e) {
      throw ioError('rotate', path, e);
    }
    this.#closing = null;
    this.counters.rotations++;
    this.#log.debug({ file: f.entry.name }, 'audit record file closed');
  }

  async #writeManifestOrThrow(): Promise<void> {
    try {
      await this.#writeManifestNow();
    } catch (e) {
      throw ioError('manifest', join(this.dir, MANIFEST_FILE), e);
    }
  }

  /** Writes the manifest now (serialized with {@link mutateManifest}). */
  #writeManifestNow(): Promise<void> {
    const p = this.#manifestChain.then(async () => {
      this.#manifestDirty = true;
      await writeManifest(this.#afs, this.dir, this.#manifest);
      this.#manifestDirty = false;
    });
    this.#manifestChain = p.catch(() => {});
    return p;
  }

  /**
   * Applies `fn` to a copy of the manifest and writes it atomically, serialized with the writer's own
   * manifest writes. `fn` may change closed entries (e.g. mark them `archived` or `deleted`); the open
   * entry is the writer's and is kept as the writer has it.
   */
  mutateManifest(fn: (m: Manifest) => void | Promise<void>): Promise<void> {
    const p = this.#manifestChain.then(async () => {
      const copy = cloneManifest(this.#manifest);
      await fn(copy);
      const live = this.#file?.entry;
      if (live) {
        const i = copy.files.findIndex((f) => f.name === live.name);
        if (i !== copy.files.length - 1)
          throw new AuditConfigError('mutateManifest', 'the open file entry must stay last');
        copy.files[i] = live;
      }
      const closing = this.#closing?.entry;
      if (closing) {
        const i = copy.files.findIndex((f) => f.name === closing.name);
        if (i < 0) throw new AuditConfigError('mutateManifest', 'the file being closed must stay listed');
        copy.files[i] = closing;
      }
      checkManifest(copy, 'mutateManifest result');
      await writeManifest(this.#afs, this.dir, copy);
      this.#manifest = copy;
      this.#manifestDirty = false;
    });
    this.#manifestChain = p.catch(() => {});
    return p;
  }

  /** Flushes pending state: finishes a rotation, fdatasyncs, writes the manifest, closes the fd. */
  async close(): Promise<void> {
    if (this.#closing) await this.#finishClose();
    const f = this.#file;
    if (f) {
      const path = join(this.dir, f.entry.name);
      try {
        if (f.dirtyTail) await this.#afs.ftruncate(f.fd, f.size);
        await this.#afs.fdatasync(f.fd);
      } catch (e) {
        throw ioError('close', path, e);
      }
      f.entry.bytes = f.size;
      this.#manifestDirty = true;
    }
    if (this.#manifestDirty) await this.#writeManifestOrThrow();
    if (f) {
      await this.#afs.close(f.fd).catch(() => {});
      this.#file = null;
    }
  }

  async releaseLock(): Promise<void> {
    await this.#lock.release();
  }
}

/** Makes `dir` (0700, parents as needed); refuses a symlink or a non-directory. */
async function prepareDir(afs: AuditFs, dir: string, log: Logger): Promise<void> {
  try {
    const st = await afs.lstat(dir);
    if (st.isSymbolicLink()) throw new AuditConfigError('dir', `${dir} is a symlink (refused)`);
    if (!st.isDirectory()) throw new AuditConfigError('dir', `${dir} is not a directory`);
    if ((st.mode & 0o777) !== 0o700) {
      log.warn({ dir, mode: (st.mode & 0o777).toString(8) }, 'audit trail directory tightened to mode 0700');
      await afs.chmod(dir, 0o700);
    }
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) throw e;
    await afs.mkdir(dir, 0o700);
    const st = await afs.lstat(dir);
    if (st.isSymbolicLink() || !st.isDirectory())
      throw new AuditConfigError('dir', `${dir} is not a directory`);
    if ((st.mode & 0o777) !== 0o700) await afs.chmod(dir, 0o700);
  }
}

/** SHA-256 of the first `size` bytes of an open file. */
async function hashFile(afs: AuditFs, fd: number, size: number): Promise<Hash> {
  const h = createHash('sha256');
  const chunk = 1024 * 1024;
  for (let pos = 0; pos < size; pos += chunk) {
    const b = await readAt(afs, fd, pos, Math.min(chunk, size - pos));
    h.update(b);
    if (b.length === 0) break;
  }
  return h;
}
