/**
 * On-disk {@link NodeStore}: the trail's Merkle tree levels in `<trail>/tlog/`.
 *
 *   tlog/level-00.bin   leaf hashes, 32 bytes each, leaf i at byte offset 32·i
 *   tlog/level-01.bin   hashes of the perfect 2-leaf subtrees, node i covers leaves [2i, 2i+2)
 *   tlog/level-NN.bin   node i covers leaves [i·2^NN, (i+1)·2^NN)
 *   tlog/state.json     {"v":1,"size":S,"root":"<64 hex>"}: the last size made durable (fsync'd)
 *
 * No headers: the layout is raw concatenated SHA-256 hashes, so node (h, i) is one pread at 32·i.
 * Files are append-only; a tree of n leaves holds floor(n / 2^h) nodes at level h (about 2n nodes in all,
 * 64 bytes per record).
 *
 * Appends are buffered in memory and written by {@link FileNodeStore.flush} (no fsync: the tree is
 * derived data that can be re-read from the trail) and made durable by {@link FileNodeStore.sync}
 * (write + fsync every level + atomically replace state.json), which the transparency layer calls
 * before it signs a checkpoint. On open, every level is cut back to the durable size in state.json;
 * the caller re-appends the trail's records after it (see transparency.ts), so a crash at any point
 * costs at most a re-read of the records since the last checkpoint, never a rehash of the trail.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { TlogError } from './errors.js';
import { emptyRoot, HASH_SIZE, hashChildren, type NodeStore } from './merkle.js';

export const TLOG_DIR = 'tlog';
const STATE_FILE = 'state.json';
let tmpCounter = 0;

interface StateFile {
  v: 1;
  size: number;
  root: string;
}

function levelFile(dir: string, level: number): string {
  return join(dir, `level-${String(level).padStart(2, '0')}.bin`);
}

function ioError(op: string, path: string, err: unknown): TlogError {
  const e = err as NodeJS.ErrnoException;
  return new TlogError('TLOG_IO', `tlog: ${op} ${path} failed: ${e.code ?? ''} ${e.message}`.trim(), {
    cause: err,
  });
}

/** Ensures `dir` exists as a real directory (not a symlink), mode 0700 when created. */
export function ensurePrivateDir(dir: string): void {
  try {
    const st = fs.lstatSync(dir);
    if (st.isSymbolicLink() || !st.isDirectory()) {
      throw new TlogError('TLOG_IO', `tlog: ${dir} must be a directory, not a symlink or file`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
}

/** fsync a directory so a rename or file creation in it is durable. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the data files themselves are fsync'd.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Deletes a trail's stored tree (`<trail>/tlog/`); the next attach rebuilds it from the trail. */
export function removeStoredTree(trailDir: string): void {
  const dir = join(trailDir, TLOG_DIR);
  try {
    if (fs.lstatSync(dir).isSymbolicLink())
      throw new TlogError('TLOG_IO', `tlog: ${dir} is a symlink; refusing to remove it`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  // state.json first: a crash half-way leaves level files without a durable size, i.e. an empty tree.
  fs.rmSync(join(dir, STATE_FILE), { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Reads `tlog/state.json`; undefined when the tree was never synced. */
export function readTlogState(trailDir: string): { size: number; root: Buffer } | undefined {
  const p = join(trailDir, TLOG_DIR, STATE_FILE);
  let text: string;
  try {
    text = fs.readFileSync(p, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError('read', p, err);
  }
  let s: StateFile;
  try {
    s = JSON.parse(text) as StateFile;
  } catch {
    throw new TlogError('TLOG_CORRUPT', `tlog: ${p} is not valid JSON`);
  }
  if (
    s === null ||
    typeof s !== 'object' ||
    s.v !== 1 ||
    !Number.isSafeInteger(s.size) ||
    s.size < 0 ||
    typeof s.root !== 'string' ||
    !/^[0-9a-f]{64}$/.test(s.root)
  ) {
    throw new TlogError('TLOG_CORRUPT', `tlog: ${p} must be {"v":1,"size":<int >= 0>,"root":"<64 hex>"}`);
  }
  return { size: s.size, root: Buffer.from(s.root, 'hex') };
}

export interface FileNodeStoreOptions {
  /**
   * Read-only view of the durable part (size from state.json; nothing is truncated or written).
   * Safe while a writer appends to the same files.
   */
  readOnly?: boolean;
}

/** The file-backed {@link NodeStore}; see the module comment for the layout. */
export class FileNodeStore implements NodeStore {
  readonly dir: string;
  readonly readOnly: boolean;
  #fds: number[] = [];
  /** Nodes already written to each level file. */
  #written: number[] = [];
  /** Nodes appended but not yet written, per level: #pendingN[h] hashes packed in #pendingBuf[h]. */
  #pendingBuf: (Buffer | undefined)[] = [];
  #pendingN: number[] = [];
  #durableSize = 0;
  #closed = false;
  #readBuf = Buffer.allocUnsafe(HASH_SIZE);

  private constructor(dir: string, readOnly: boolean) {
    this.dir = dir;
    this.readOnly = readOnly;
  }

  /**
   * Opens (creating when absent and not read-only) the store under `<trailDir>/tlog/`. In write mode every
   * level is cut back to the durable size recorded in state.json, and the root at that size is checked
   * against state.json (throws `TLOG_CORRUPT` when the level files were damaged).
   */
  static open(trailDir: string, opts: FileNodeStoreOptions = {}): FileNodeStore {
    const dir = join(trailDir, TLOG_DIR);
    const readOnly = opts.readOnly === true;
    if (!readOnly) ensurePrivateDir(dir);
    const state = readTlogState(trailDir);
    const size = state?.size ?? 0;
    const store = new FileNodeStore(dir, readOnly);
    store.#durableSize = size;
    try {
      for (let h = 0; h === 0 || 2 ** h <= size; h++) {
        const want = Math.floor(size / 2 ** h);
        const p = levelFile(dir, h);
        let fd: number;
        try {
          fd = readOnly
            ? fs.openSync(p, 'r')
            : fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
        } catch (err) {
          if (readOnly && (err as NodeJS.ErrnoException).code === 'ENOENT' && want === 0) break;
          throw ioError('open', p, err);
        }
        store.#fds[h] = fd;
        const have = Math.floor(fs.fstatSync(fd).size / HASH_SIZE);
        if (have < want) {
          throw new TlogError(
            'TLOG_CORRUPT',
            `tlog: ${p} holds ${have} nodes but the durable tree of ${size} leaves needs ${want}`,
          );
        }
        if (!readOnly && fs.fstatSync(fd).size !== want * HASH_SIZE) fs.ftruncateSync(fd, want * HASH_SIZE);
        store.#written[h] = want;
        store.#pendingN[h] = 0;
      }
      if (!readOnly) {
        // Levels above the durable tree's height may hold nodes written after the last sync: drop them.
        for (const name of fs.readdirSync(dir)) {
          const m = /^level-(\d{2})\.bin$/.exec(name);
          if (m && store.#fds[Number(m[1])] === undefined && fs.lstatSync(join(dir, name)).isFile()) {
            fs.truncateSync(join(dir, name), 0);
          }
        }
      }
      if (state) {
        const root = store.#rootOfDurable(size);
        if (!root.equals(state.root)) {
          throw new TlogError(
            'TLOG_CORRUPT',
            `tlog: level files do not match state.json (root at size ${size} differs); rebuild the tree (Transparency.attach({ rebuild: true }))`,
          );
        }
      }
    } catch (err) {
      store.close();
      throw err;
    }
    return store;
  }

  /** The size made durable by the last {@link sync} (or found on open). */
  get durableSize(): number {
    return this.#durableSize;
  }

  #rootOfDurable(size: number): Buffer {
    let acc: Buffer | undefined;
    for (let h = 0; 2 ** h <= size; h++) {
      const c = Math.floor(size / 2 ** h);
      if (c % 2 === 1) {
        const node = this.read(h, c - 1);
        acc = acc ? hashChildren(node, acc) : node;
      }
    }
    return acc ?? emptyRoot();
  }

  count(level: number): number {
    if (this.readOnly) return Math.floor(this.#durableSize / 2 ** level);
    return (this.#written[level] ?? 0) + (this.#pendingN[level] ?? 0);
  }

  read(level: number, index: number): Buffer {
    const written = this.readOnly ? this.count(level) : (this.#written[level] ?? 0);
    if (index < written) {
      const fd = this.#fds[level];
      if (fd === undefined) throw new TlogError('TLOG_CORRUPT', `tlog: level ${level} file is missing`);
      const n = fs.readSync(fd, this.#readBuf, 0, HASH_SIZE, index * HASH_SIZE);
      if (n !== HASH_SIZE) {
        throw new TlogError('TLOG_CORRUPT', `tlog: short read at level ${level} node ${index}`);
      }
      return Buffer.from(this.#readBuf);
    }
    const i = index - written;
    const buf = this.#pendingBuf[level];
    if (!buf || !(i >= 0 && i < (this.#pendingN[level] ?? 0))) {
      throw new TlogError('TLOG_CORRUPT', `tlog: no node at level ${level} index ${index}`);
    }
    return Buffer.from(buf.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
  }

  append(level: number, hash: Uint8Array): void {
    if (this.readOnly) throw new TlogError('TLOG_IO', 'tlog: store opened read-only');
    if (hash.length !== HASH_SIZE) throw new TlogError('TLOG_BAD_INPUT', 'tlog: a node must be 32 bytes');
    let n = this.#pendingN[level];
    if (n === undefined) {
      for (let h = this.#pendingN.length; h <= level; h++) {
        this.#pendingN[h] ??= 0;
        this.#written[h] ??= 0;
      }
      n = 0;
    }
    // Packed per level (copied: the tree reuses its buffers), so a flush is one write per level.
    let buf = this.#pendingBuf[level];
    if (!buf || (n + 1) * HASH_SIZE > buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(64, 2 * n) * HASH_SIZE);
      if (buf) buf.copy(grown, 0, 0, n * HASH_SIZE);
      buf = grown;
      this.#pendingBuf[level] = buf;
    }
    buf.set(hash, n * HASH_SIZE);
    this.#pendingN[level] = n + 1;
  }

  /** Writes pending nodes to the level files (no fsync). */
  flush(): void {
    if (this.readOnly || this.#closed) return;
    for (let h = 0; h < this.#pendingN.length; h++) {
      const count = this.#pendingN[h] ?? 0;
      if (count === 0) continue;
      let fd = this.#fds[h];
      const path = levelFile(this.dir, h);
      if (fd === undefined) {
        try {
          fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
        } catch (err) {
          throw ioError('open', path, err);
        }
        this.#fds[h] = fd;
      }
      const buf = (this.#pendingBuf[h] as Buffer).subarray(0, count * HASH_SIZE);
      const pos = (this.#written[h] ?? 0) * HASH_SIZE;
      try {
        let off = 0;
        while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, pos + off);
      } catch (err) {
        throw ioError('write', path, err);
      }
      this.#written[h] = (this.#written[h] ?? 0) + count;
      this.#pendingN[h] = 0;
    }
  }

  /**
   * Writes and fsyncs every level, then atomically records `size` (= level 0 count) and `root` in
   * state.json. `root` must be the tree's root at that size (the caller has it from the frontier).
   */
  syncWithRoot(root: Uint8Array): void {
    if (this.readOnly || this.#closed) return;
    this.flush();
    const size = this.count(0);
    for (let h = 0; h < this.#fds.length; h++) {
      const fd = this.#fds[h];
      if (fd === undefined) continue;
      try {
        fs.fsyncSync(fd);
      } catch (err) {
        throw ioError('fsync', levelFile(this.dir, h), err);
      }
    }
    const body = `${JSON.stringify({ v: 1, size, root: Buffer.from(root).toString('hex') })}\n`;
    const final = join(this.dir, STATE_FILE);
    const tmp = `${final}.tmp`;
    try {
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeSync(fd, body);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, final);
    } catch (err) {
      throw ioError('write', final, err);
    }
    fsyncDir(this.dir);
    this.#durableSize = size;
  }

  /**
   * Asynchronous {@link syncWithRoot}: writes pending nodes now, then fsyncs off the event loop and
   * records (size, root) in state.json. `root` must be the root at the current size (take it right
   * before the call, with no append in between); appends may continue while this runs.
   */
  async syncWithRootAsync(root: Uint8Array): Promise<void> {
    if (this.readOnly || this.#closed) return;
    this.flush();
    const size = this.count(0);
    const fds = this.#fds.filter((fd): fd is number => fd !== undefined);
    await Promise.all(
      fds.map(
        (fd) =>
          new Promise<void>((resolve, reject) =>
            fs.fsync(fd, (err) =>
              err && !this.#closed ? reject(ioError('fsync', this.dir, err)) : resolve(),
            ),
          ),
      ),
    );
    if (this.#closed || size <= this.#durableSize) return;
    const body = `${JSON.stringify({ v: 1, size, root: Buffer.from(root).toString('hex') })}\n`;
    const final = join(this.dir, STATE_FILE);
    const tmp = `${final}.${process.pid}.${++tmpCounter}.tmp`;
    try {
      const fh = await fs.promises.open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (this.#closed || size <= this.#durableSize) {
        await fs.promises.rm(tmp, { force: true });
        return;
      }
      await fs.promises.rename(tmp, final);
    } catch (err) {
      throw ioError('write', final, err);
    }
    fsyncDir(this.dir);
    this.#durableSize = size;
  }

  /** {@link NodeStore.sync}: flush + fsync of the level files (state.json needs the root: use syncWithRoot). */
  sync(): void {
    if (this.readOnly || this.#closed) return;
    this.flush();
    for (const fd of this.#fds) if (fd !== undefined) fs.fsyncSync(fd);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#fds) {
      if (fd !== undefined) {
        try {
          fs.closeSync(fd);
        } catch {}
      }
    }
    this.#fds = [];
  }
}
