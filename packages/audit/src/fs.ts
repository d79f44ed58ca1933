/**
 * The file-system layer the writer uses, as a small injectable interface so tests can
 * substitute failures (ENOSPC, EIO, short writes) for any single operation.
 *
 * Calls take and return file descriptors (numbers) and are promise based; the default
 * implementation wraps the callback API of `node:fs` (lighter than `fs/promises` FileHandles).
 */
import * as fs from 'node:fs';

export interface StatLike {
  size: number;
  mode: number;
  mtimeMs: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

export interface AuditFs {
  open(path: string, flags: number, mode?: number): Promise<number>;
  /** Writes `length` bytes of `buf` from `offset` at file `position`; may write fewer (short write). */
  write(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  read(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  fstat(fd: number): Promise<StatLike>;
  close(fd: number): Promise<void>;
  lstat(path: string): Promise<StatLike>;
  /** Creates `path` and missing parents (no error if it exists). */
  mkdir(path: string, mode: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  link(existing: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  readFile(path: string): Promise<Buffer>;
}

function cb<T>(fn: (done: (err: NodeJS.ErrnoException | null, v?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    fn((err, v) => (err ? reject(err) : resolve(v as T)));
  });
}

/** The real file system (`node:fs`). */
export const nodeFs: AuditFs = {
  open: (p, flags, mode) => cb<number>((d) => fs.open(p, flags, mode ?? 0o600, d)),
  write: (fd, buf, off, len, pos) => cb<number>((d) => fs.write(fd, buf, off, len, pos, (e, n) => d(e, n))),
  read: (fd, buf, off, len, pos) => cb<number>((d) => fs.read(fd, buf, off, len, pos, (e, n) => d(e, n))),
  fdatasync: (fd) => cb<void>((d) => fs.fdatasync(fd, d)),
  fsync: (fd) => cb<void>((d) => fs.fsync(fd, d)),
  ftruncate: (fd, len) => cb<void>((d) => fs.ftruncate(fd, len, d)),
  fstat: (fd) => cb<fs.Stats>((d) => fs.fstat(fd, d)),
  close: (fd) => cb<void>((d) => fs.close(fd, d)),
  lstat: (p) => cb<fs.Stats>((d) => fs.lstat(p, d)),
  mkdir: (p, mode) => cb<void>((d) => fs.mkdir(p, { mode, recursive: true }, (e) => d(e))),
  chmod: (p, mode) => cb<void>((d) => fs.chmod(p, mode, d)),
  rename: (a, b) => cb<void>((d) => fs.rename(a, b, d)),
  link: (a, b) => cb<void>((d) => fs.link(a, b, d)),
  unlink: (p) => cb<void>((d) => fs.unlink(p, d)),
  readdir: (p) => cb<string[]>((d) => fs.readdir(p, d)),
  readFile: (p) => cb<Buffer>((d) => fs.readFile(p, d)),
};

const C = fs.constants;
/** Flags: create a new file exclusively, never following a symlink. */
export const O_CREATE_EXCL = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
/** Flags: open an existing file for read+write, never following a symlink. */
export const O_RDWR_NOFOLLOW = C.O_RDWR | C.O_NOFOLLOW;
/** Flags: open for reading, never following a symlink. */
export const O_RDONLY_NOFOLLOW = C.O_RDONLY | C.O_NOFOLLOW;

/** `true` when `err` is a Node system error with the given code. */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** Writes all of `buf` at `position`, looping over short writes. Returns bytes written (= buf.length). */
export async function writeAll(afs: AuditFs, fd: number, buf: Uint8Array, position: number): Promise<number> {
  let off = 0;
  while (off < buf.length) {
    const n = await afs.write(fd, buf, off, buf.length - off, position + off);
    if (n <= 0) {
      const e = new Error(`write returned ${n}`) as NodeJS.ErrnoException;
      e.code = 'EIO';
      throw e;
    }
    off += n;
  }
  return off;
}

/** Opens a directory and fsyncs it (makes a rename/create in it durable). */
export async function fsyncDir(afs: AuditFs, dir: string): Promise<void> {
  const fd = await afs.open(dir, C.O_RDONLY | C.O_DIRECTORY);
  try {
    await afs.fsync(fd);
  } finally {
    await afs.close(fd);
  }
}

/**
 * Atomically replaces `path` with `data`: write `path.tmp`, fsync, rename over `path`, fsync the directory.
 */
export async function writeFileAtomic(
  afs: AuditFs,
  dir: string,
  path: string,
  data: Uint8Array,
  mode: number,
): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    await afs.unlink(tmp);
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) throw e;
  }
  const fd = await afs.open(tmp, O_CREATE_EXCL, mode);
  try {
    await writeAll(afs, fd, data, 0);
    await afs.fsync(fd);
  } finally {
    await afs.close(fd);
  }
  await afs.rename(tmp, path);
  await fsyncDir(afs, dir);
}

/** Reads `length` bytes at `position` (fewer at end of file). */
export async function readAt(afs: AuditFs, fd: number, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = await afs.read(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}
