/**
 * Pinned staging pool for host ↔ device copies: a fixed number of page-locked buffers
 * (cuMemHostAlloc, portable across contexts), default 2 × 64 MiB whatever the shard size.
 *
 * Upload is double-buffered on the device's stream: while buffer A is being copied to the device
 * (cuMemcpyHtoDAsync), the next source chunk is read and copied into buffer B; a buffer is refilled
 * only after the event recorded behind its copy has completed (polled, see wait.ts). Large host
 * copies into pinned memory are split across koffi's worker threads (libc memcpy), so neither the
 * event loop nor a single core limits the transfer.
 */
import type { FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { InvalidInputError } from '../errors.js';
import type { Driver, Handle } from './driver.js';
import { Mutex, waitEvent } from './wait.js';

export const DEFAULT_STAGING_BYTES = 64 * 1024 * 1024;
export const DEFAULT_STAGING_BUFFERS = 2;
/** Host copies at least this large are split across worker threads, in parts of about this size. */
const PARALLEL_COPY_MIN = 2 * 1024 * 1024;
const PARALLEL_COPY_PART = 1024 * 1024;
/** File reads into a staging buffer are issued in parts of this size, all at once. */
const FILE_READ_PART = 8 * 1024 * 1024;

async function readFully(fh: FileHandle, buf: Buffer, at: number, len: number, pos: number): Promise<void> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, at + got, len - got, pos + got);
    if (bytesRead === 0) throw new InvalidInputError('source', 'file shrank while being read');
    got += bytesRead;
  }
}

interface PinnedBuffer {
  handle: Handle;
  addr: bigint;
  view: Uint8Array;
}

/** What a transfer needs from a device: its context, stream and one event per staging buffer. */
export interface StagingTarget {
  ctx: Handle;
  stream: Handle;
  events: Handle[];
}

export class StagingPool {
  readonly #drv: Driver;
  readonly #bufs: PinnedBuffer[] = [];
  readonly #lock = new Mutex();
  readonly #threads: number;
  readonly bufferBytes: number;

  constructor(drv: Driver, bufferBytes = DEFAULT_STAGING_BYTES, buffers = DEFAULT_STAGING_BUFFERS) {
    this.#drv = drv;
    this.bufferBytes = bufferBytes;
    for (let i = 0; i < buffers; i++) this.#bufs.push(drv.hostAlloc(bufferBytes));
    this.#threads = Math.max(1, Math.min(16, availableParallelism()));
  }

  get buffers(): number {
    return this.#bufs.length;
  }

  /** Total pinned host bytes held (bounded, independent of shard sizes). */
  get pinnedBytes(): number {
    return this.#bufs.length * this.bufferBytes;
  }

  /** Copies `src` into pinned memory at `at` (split across worker threads when large). */
  #copyIn(buf: PinnedBuffer, at: number, src: Uint8Array): Promise<void> {
    const n = src.length;
    if (n < PARALLEL_COPY_MIN || this.#threads === 1) {
      buf.view.set(src, at);
      return Promise.resolve();
    }
    const parts = Math.min(this.#threads, Math.ceil(n / PARALLEL_COPY_PART));
    const per = Math.ceil(n / parts / 4096) * 4096;
    const jobs: Promise<void>[] = [];
    for (let off = 0; off < n; off += per) {
      const len = Math.min(per, n - off);
      jobs.push(this.#drv.memcpyHostAsync(buf.addr + BigInt(at + off), src.subarray(off, off + len), len));
    }
    return Promise.all(jobs).then(() => undefined);
  }

  /**
   * Streams `source` to device memory at `dst`, back to back, at most `capacity` bytes.
   * Host copies of several chunks run at once; a staging buffer is handed to the copy engine once
   * full (or at the end), and refilled only after that copy completed. `onProgress` receives the
   * bytes taken from the source after each chunk, and the total once every copy has completed.
   * Resolves with the number of bytes written.
   */
  upload(
    t: StagingTarget,
    dst: bigint,
    capacity: number,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    onProgress?: (done: number) => void,
  ): Promise<number> {
    return this.#lock.run(async () => {
      const drv = this.#drv;
      const S = this.bufferBytes;
      const nb = Math.min(this.#bufs.length, t.events.length);
      const pending: boolean[] = new Array(nb).fill(false);
      const copies: Promise<void>[][] = Array.from({ length: nb }, () => []);
      let cur = 0;
      let fill = 0;
      let submitted = 0;
      let taken = 0;
      const retire = async (i: number): Promise<void> => {
        if (!pending[i]) return;
        await waitEvent(drv, t.events[i]);
        pending[i] = false;
      };
      const flush = async (): Promise<void> => {
        if (fill === 0) return;
        const buf = this.#bufs[cur] as PinnedBuffer;
        const inFlight = copies[cur] as Promise<void>[];
        copies[cur] = [];
        await Promise.all(inFlight);
        drv.setCurrent(t.ctx);
        drv.memcpyHtoDAsync(dst + BigInt(submitted), buf.addr, fill, t.stream);
        drv.eventRecord(t.events[cur], t.stream);
        pending[cur] = true;
        submitted += fill;
        fill = 0;
        cur = (cur + 1) % nb;
        await retire(cur); // the next buffer to fill must be free
      };
      try {
        for await (const chunk of source) {
          if (!(chunk instanceof Uint8Array))
            throw new InvalidInputError('source', 'chunks must be Uint8Array');
          if (taken + chunk.length > capacity) {
            throw new InvalidInputError('source', `more than the allocation's ${capacity} bytes`);
          }
          let off = 0;
          while (off < chunk.length) {
            const n = Math.min(chunk.length - off, S - fill);
            (copies[cur] as Promise<void>[]).push(
              this.#copyIn(this.#bufs[cur] as PinnedBuffer, fill, chunk.subarray(off, off + n)),
            );
            fill += n;
            off += n;
            if (fill === S) await flush();
          }
          taken += chunk.length;
          onProgress?.(taken);
        }
        await flush();
      } finally {
        // Never hand a buffer back (or let the caller free the allocation) with a copy in flight.
        for (let i = 0; i < nb; i++) {
          await Promise.allSettled(copies[i] as Promise<void>[]);
          try {
            await retire(i);
          } catch {
            /* the original error wins */
          }
        }
      }
      onProgress?.(submitted);
      return submitted;
    });
  }

  /**
   * Reads `size` bytes of the open file `fh` from offset 0 straight into the pinned buffers (several
   * positioned reads at once, on libuv's thread pool) and copies them to `dst`, double-buffered.
   * No intermediate JS buffer: page cache → pinned memory → device.
   */
  uploadFile(
    t: StagingTarget,
    dst: bigint,
    fh: FileHandle,
    size: number,
    onProgress?: (done: number) => void,
  ): Promise<number> {
    return this.#lock.run(async () => {
      const drv = this.#drv;
      const S = this.bufferBytes;
      const nb = Math.min(this.#bufs.length, t.events.length);
      const pending: boolean[] = new Array(nb).fill(false);
      let cur = 0;
      let pos = 0;
      try {
        while (pos < size) {
          const n = Math.min(S, size - pos);
          const buf = this.#bufs[cur] as PinnedBuffer;
          const target = Buffer.from(buf.view.buffer, buf.view.byteOffset, n);
          const reads: Promise<void>[] = [];
          for (let off = 0; off < n; off += FILE_READ_PART) {
            const len = Math.min(FILE_READ_PART, n - off);
            reads.push(readFully(fh, target, off, len, pos + off));
          }
          await Promise.all(reads);
          drv.setCurrent(t.ctx);
          drv.memcpyHtoDAsync(dst + BigInt(pos), buf.addr, n, t.stream);
          drv.eventRecord(t.events[cur], t.stream);
          pending[cur] = true;
          pos += n;
          onProgress?.(pos);
          cur = (cur + 1) % nb;
          if (pending[cur]) {
            await waitEvent(drv, t.events[cur]);
            pending[cur] = false;
          }
        }
      } finally {
        for (let i = 0; i < nb; i++) {
          if (!pending[i]) continue;
          try {
            await waitEvent(drv, t.events[i]);
          } catch {
            /* the original error wins */
          }
        }
      }
      return pos;
    });
  }

  /** Copies `length` bytes of device memory at `src` into a new host buffer. */
  download(t: StagingTarget, src: bigint, length: number): Promise<Uint8Array> {
    return this.#lock.run(async () => {
      const out = new Uint8Array(length);
      const buf = this.#bufs[0] as PinnedBuffer;
      for (let off = 0; off < length; off += this.bufferBytes) {
        const n = Math.min(this.bufferBytes, length - off);
        this.#drv.setCurrent(t.ctx);
        this.#drv.memcpyDtoHAsync(buf.addr, src + BigInt(off), n, t.stream);
        this.#drv.eventRecord(t.events[0], t.stream);
        await waitEvent(this.#drv, t.events[0]);
        out.set(buf.view.subarray(0, n), off);
      }
      return out;
    });
  }

  /** Frees the pinned buffers (after every transfer has finished). */
  close(): Promise<void> {
    return this.#lock.run(async () => {
      for (const b of this.#bufs.splice(0)) this.#drv.hostFree(b.handle);
    });
  }
}
