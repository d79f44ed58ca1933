/**
 * Streaming line reader over trail files (`.audit`, and `.audit.gz` archives — FORMAT.md §Directory).
 *
 * Memory is bounded whatever the input: chunks are read `chunkBytes` at a time, a line longer than
 * `maxLineBytes` is never buffered whole (its bytes are counted and dropped until the next `\n`, and it
 * is reported as oversize), and the SHA-256 of the (uncompressed) content is computed on the fly, so one
 * pass gives both the lines and the checksum FORMAT.md's `.sha256` sidecar and manifest `sha256` describe.
 *
 * Bytes are handed out as Buffers; nothing here decodes UTF-8 or parses JSON (callers decide what a
 * malformed line means), so random bytes and invalid UTF-8 cannot make it throw.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';

/** Default cap on one line: 1 MiB. Records are far smaller (the writer caps events well below this). */
export const DEFAULT_MAX_LINE_BYTES = 1 << 20;
const DEFAULT_CHUNK_BYTES = 1 << 20;
const NL = 0x0a;

/** Receives the lines of a file, in order. Line numbers start at 1. */
export interface LineSink {
  /**
   * A line (without its `\n`). `terminated` is false only for a last line that has no `\n` (a torn
   * tail). The buffer may be a view into a reused chunk: copy it if you keep it past the call.
   */
  line(bytes: Buffer, lineNo: number, terminated: boolean): void;
  /** A line longer than the cap; `bytes` is its full length (without the `\n`). */
  oversize(lineNo: number, bytes: number, terminated: boolean): void;
}

/** What a complete pass over one file found. */
export interface FileScan {
  /** Uncompressed bytes read. */
  bytes: number;
  /** Lines seen (a torn last line counts). */
  lines: number;
  /** Lowercase hex SHA-256 of the uncompressed content. */
  sha256: string;
  /** True when the content is empty or ends with `\n`. */
  endsWithNewline: boolean;
}

/**
 * Splits a byte stream into lines with a bounded carry-over buffer. Push chunks in order, then `end()`.
 */
export class LineSplitter {
  readonly #max: number;
  readonly #sink: LineSink;
  #carry: Buffer[] = [];
  #carryLen = 0;
  /** While > 0, the current line is over the cap and is being skipped; value = its length so far. */
  #skipping = -1;
  #lineNo = 0;
  #last = NL;

  constructor(sink: LineSink, maxLineBytes = DEFAULT_MAX_LINE_BYTES) {
    this.#sink = sink;
    this.#max = maxLineBytes;
  }

  get lines(): number {
    return this.#lineNo;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    if (n === 0) return;
    this.#last = chunk[n - 1] as number;
    let start = 0;
    while (start < n) {
      const nl = chunk.indexOf(NL, start);
      if (nl < 0) {
        this.#hold(chunk, start, n);
        return;
      }
      this.#lineNo++;
      if (this.#skipping >= 0) {
        this.#sink.oversize(this.#lineNo, this.#skipping + (nl - start), true);
        this.#skipping = -1;
      } else if (this.#carryLen > 0) {
        const total = this.#carryLen + (nl - start);
        if (total > this.#max) {
          this.#sink.oversize(this.#lineNo, total, true);
        } else {
          this.#carry.push(chunk.subarray(start, nl));
          this.#sink.line(Buffer.concat(this.#carry, total), this.#lineNo, true);
        }
        this.#carry = [];
        this.#carryLen = 0;
      } else if (nl - start > this.#max) {
        this.#sink.oversize(this.#lineNo, nl - start, true);
      } else {
        this.#sink.line(chunk.subarray(start, nl), this.#lineNo, true);
      }
      start = nl + 1;
    }
  }

  #hold(chunk: Buffer, start: number, end: number): void {
    const len = end - start;
    if (this.#skipping >= 0) {
      this.#skipping += len;
      return;
    }
    if (this.#carryLen + len > this.#max) {
      this.#skipping = this.#carryLen + len;
      this.#carry = [];
      this.#carryLen = 0;
      return;
    }
    // Copy: the chunk's memory may be reused by the stream after we return.
    this.#carry.push(Buffer.from(chunk.subarray(start, end)));
    this.#carryLen += len;
  }

  /** Flushes an unterminated last line (reported with `terminated = false`). */
  end(): void {
    if (this.#skipping >= 0) {
      this.#lineNo++;
      this.#sink.oversize(this.#lineNo, this.#skipping, false);
      this.#skipping = -1;
    } else if (this.#carryLen > 0) {
      this.#lineNo++;
      this.#sink.line(Buffer.concat(this.#carry, this.#carryLen), this.#lineNo, false);
    }
    this.#carry = [];
    this.#carryLen = 0;
  }

  /** True while part of an unterminated line is held (or being skipped). */
  get midLine(): boolean {
    return this.#carryLen > 0 || this.#skipping >= 0;
  }

  get endsWithNewline(): boolean {
    return this.#last === NL;
  }
}

export interface ReadOptions {
  /** Decompress with gunzip (`.audit.gz`). Default: by file name suffix. */
  gzip?: boolean;
  maxLineBytes?: number;
  chunkBytes?: number;
  /** Called after each chunk with the compressed/raw bytes read from disk so far (for progress). */
  onDiskBytes?: (bytes: number) => void;
  /** Read from this already-open handle instead of opening `path` (the caller closes it). */
  handle?: FileHandle;
  /**
   * {@link readTrailLines} only: lines for which this returns false are dropped before they are
   * yielded (a cheap byte-level prefilter; oversize lines are always yielded).
   */
  filter?: (bytes: Buffer) => boolean;
}

/** The (decompressed) byte stream of a trail file and a way to stop reading it early. */
export interface TrailStream {
  chunks: AsyncIterable<Buffer>;
  close(): void;
}

/** Opens the (decompressed) byte stream of a trail file. */
export function openTrailStream(path: string, opts: ReadOptions = {}): TrailStream {
  const gz = opts.gzip ?? path.endsWith('.gz');
  const raw = opts.handle
    ? createReadStream('', {
        fd: opts.handle,
        autoClose: false,
        highWaterMark: opts.chunkBytes ?? DEFAULT_CHUNK_BYTES,
      })
    : createReadStream(path, { highWaterMark: opts.chunkBytes ?? DEFAULT_CHUNK_BYTES });
  if (opts.onDiskBytes) {
    const cb = opts.onDiskBytes;
    raw.on('data', () => cb(raw.bytesRead));
  }
  if (!gz) return { chunks: raw, close: () => raw.destroy() };
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  raw.on('error', (e) => gunzip.destroy(e));
  raw.pipe(gunzip);
  return {
    chunks: gunzip,
    close(): void {
      raw.destroy();
      gunzip.destroy();
    },
  };
}

/**
 * Reads a whole trail file through `sink`, returning byte count, line count and SHA-256 of the
 * uncompressed content. Rejects on I/O or gzip errors (with the partial counts on `err.partial`).
 */
export async function scanTrailFile(path: string, sink: LineSink, opts: ReadOptions = {}): Promise<FileScan> {
  const split = new LineSplitter(sink, opts.maxLineBytes);
  const hash: Hash = createHash('sha256');
  let bytes = 0;
  const stream = openTrailStream(path, opts);
  try {
    for await (const chunk of stream.chunks) {
      bytes += chunk.length;
      hash.update(chunk);
      split.push(chunk);
    }
  } catch (err) {
    stream.close();
    Object.assign(err as object, { partial: { bytes, lines: split.lines } });
    throw err;
  }
  split.end();
  return { bytes, lines: split.lines, sha256: hash.digest('hex'), endsWithNewline: split.endsWithNewline };
}

/** One line yielded by {@link readTrailLines}: `bytes` is a private copy (null when oversize). */
export interface TrailLine {
  lineNo: number;
  bytes: Buffer | null;
  length: number;
  terminated: boolean;
}

/**
 * Async iterator over the lines of a trail file (for query and tail). Memory stays bounded: at most one
 * chunk's lines are held at a time.
 */
export async function* readTrailLines(path: string, opts: ReadOptions = {}): AsyncGenerator<TrailLine> {
  let out: TrailLine[] = [];
  const filter = opts.filter;
  const split = new LineSplitter(
    {
      line(bytes, lineNo, terminated) {
        if (filter && !filter(bytes)) return;
        out.push({ lineNo, bytes, length: bytes.length, terminated });
      },
      oversize(lineNo, length, terminated) {
        out.push({ lineNo, bytes: null, length, terminated });
      },
    },
    opts.maxLineBytes,
  );
  const stream = openTrailStream(path, opts);
  try {
    for await (const chunk of stream.chunks) {
      split.push(chunk);
      if (out.length > 0) {
        const batch = out;
        out = [];
        yield* batch;
      }
    }
    split.end();
    yield* out;
  } finally {
    stream.close();
  }
}
