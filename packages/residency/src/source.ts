/**
 * Shard sources: an in-memory Buffer/Uint8Array, or a file streamed in bounded chunks (a 50 GB file
 * is never read into RAM: at most one chunk per `next()` is alive in this module). When asked, the
 * same single pass also computes the plain SHA-256 of the bytes and their `sha256-merkle-v1` tree
 * head, so the manager can compare the source with `expectedSha256` and with what the device hashed.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { InvalidInputError } from './errors.js';
import { StreamingMerkle } from './merkle-stream.js';
import { OffThreadHasher } from './source-hasher.js';

/** A shard's bytes: a Buffer/Uint8Array, a file path, or `{ path }`. */
export type ShardSource = Uint8Array | string | { readonly path: string };

/** Default chunk size for streaming (bytes). */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
/** Sources larger than this are hashed on worker threads (smaller ones inline: no thread start-up). */
export const DEFAULT_OFF_THREAD_HASH_BYTES = 8 * 1024 * 1024;

export interface SourceHashes {
  /** Lowercase hex SHA-256 of every byte yielded. */
  sha256: string;
  /** sha256-merkle-v1 tree head of the same bytes (leaf size as requested). */
  merkleRoot: Uint8Array;
}

export interface OpenedSource {
  readonly kind: 'buffer' | 'file';
  /** The file path (file sources only). */
  readonly path?: string;
  /** Exact byte length (for files: fstat of the opened descriptor). */
  readonly size: number;
  /**
   * The bytes, in order, in chunks of at most `chunkBytes`. Each chunk is a fresh buffer (files) or
   * a view of the caller's buffer, valid as long as the consumer holds it. One pass only.
   */
  chunks(): AsyncIterable<Uint8Array>;
  /** Available after `chunks()` was fully consumed, when hashing was requested. */
  hashes(): SourceHashes | undefined;
  close(): Promise<void>;
}

export interface OpenSourceOptions {
  chunkBytes?: number;
  /** Compute SHA-256 + host Merkle root during the pass with this leaf size. */
  hashLeafSize?: number;
  /** Hash on worker threads when the source is larger than this (default 8 MiB; 0 = always). */
  offThreadHashBytes?: number;
}

interface Hasher {
  update(b: Uint8Array): void | Promise<void>;
  finish(): SourceHashes | Promise<SourceHashes>;
  close(): Promise<void>;
}

class InlineHasher implements Hasher {
  readonly #sha: Hash = createHash('sha256');
  readonly #merkle: StreamingMerkle;
  constructor(leafSize: number) {
    this.#merkle = new StreamingMerkle(leafSize);
  }
  update(b: Uint8Array): void {
    this.#sha.update(b);
    this.#merkle.update(b);
  }
  finish(): SourceHashes {
    return { sha256: this.#sha.digest('hex'), merkleRoot: this.#merkle.digest() };
  }
  async close(): Promise<void> {}
}

function hasherFor(size: number, opts: OpenSourceOptions): Hasher | undefined {
  if (opts.hashLeafSize === undefined) return undefined;
  return size > (opts.offThreadHashBytes ?? DEFAULT_OFF_THREAD_HASH_BYTES)
    ? new OffThreadHasher(opts.hashLeafSize)
    : new InlineHasher(opts.hashLeafSize);
}

/** Feeds chunks to the hasher as they pass; the hashes are ready when the stream ends. */
async function* hashed(
  chunks: AsyncIterable<Uint8Array>,
  makeHasher: () => Hasher | undefined,
  done: (r: SourceHashes) => void,
): AsyncGenerator<Uint8Array> {
  const h = makeHasher(); // on the first next(): a stream never started starts no worker
  if (!h) {
    yield* chunks;
    return;
  }
  try {
    for await (const c of chunks) {
      await h.update(c);
      yield c;
    }
    done(await h.finish());
  } finally {
    await h.close();
  }
}

/** Opens a source. Files must be regular files; the path appears in errors, never the content. */
export async function openSource(source: ShardSource, opts: OpenSourceOptions = {}): Promise<OpenedSource> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
    throw new InvalidInputError('chunkBytes', 'must be a positive integer');
  }
  if (source instanceof Uint8Array) return bufferSource(source, chunkBytes, opts);
  const path = typeof source === 'string' ? source : (source as { path?: unknown } | null)?.path;
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
    throw new InvalidInputError('source', 'must be a Buffer/Uint8Array or a non-empty file path without NUL');
  }
  return fileSource(path, chunkBytes, opts);
}

function bufferSource(buf: Uint8Array, chunkBytes: number, opts: OpenSourceOptions): OpenedSource {
  let result: SourceHashes | undefined;
  let used = false;
  async function* views() {
    for (let off = 0; off < buf.length; off += chunkBytes)
      yield buf.subarray(off, Math.min(buf.length, off + chunkBytes));
  }
  return {
    kind: 'buffer',
    size: buf.length,
    chunks() {
      if (used) throw new Error('source already consumed');
      used = true;
      return hashed(
        views(),
        () => hasherFor(buf.length, opts),
        (r) => {
          result = r;
        },
      );
    },
    hashes: () => result,
    close: async () => {},
  };
}

async function fileSource(path: string, chunkBytes: number, opts: OpenSourceOptions): Promise<OpenedSource> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, constants.O_RDONLY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new InvalidInputError('source', `cannot open file ${JSON.stringify(path)} (${code})`);
  }
  let size: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new InvalidInputError('source', `${JSON.stringify(path)} is not a regular file`);
    size = st.size;
  } catch (e) {
    await fh.close();
    throw e;
  }
  let result: SourceHashes | undefined;
  let used = false;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await fh.close();
  };
  return {
    kind: 'file',
    path,
    size,
    chunks() {
      if (used) throw new Error('source already consumed');
      used = true;
      return hashed(
        reads(),
        () => hasherFor(size, opts),
        (r) => {
          result = r;
        },
      );
    },
    hashes: () => result,
    close,
  };

  async function* reads(): AsyncGenerator<Uint8Array> {
    let pos = 0;
    while (pos < size) {
      const want = Math.min(chunkBytes, size - pos);
      const buf = Buffer.allocUnsafeSlow(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, pos + got);
        if (bytesRead === 0) {
          throw new InvalidInputError('source', `file ${JSON.stringify(path)} shrank while being read`);
        }
        got += bytesRead;
      }
      pos += want;
      yield buf;
    }
    const probe = Buffer.alloc(1);
    if ((await fh.read(probe, 0, 1, size)).bytesRead !== 0) {
      throw new InvalidInputError('source', `file ${JSON.stringify(path)} grew while being read`);
    }
  }
}
