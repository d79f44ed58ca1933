/**
 * Worker side of parallel verification (see verify-pool.ts): reads one trail file, checks every line
 * (shape, hash, MAC) and streams compact batches of results back in line order; the chain across
 * records and files is then checked on the main thread. Flow control: at most MAX_IN_FLIGHT batches
 * are unacknowledged, so memory stays bounded whatever the file size.
 */

import { createHash } from 'node:crypto';
import { constants as C } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { checkRecordLine, countRecordEnds, MacChecker } from './record-check.js';
import { LineSplitter, openTrailStream } from './trail-reader.js';

/** Flags of one entry. */
export const F_TERMINATED = 1;
export const F_HASH_OK = 2;
export const F_MAC_OK = 4;
/** Entry kinds. */
export const K_RECORD = 0;
export const K_BAD = 1;
export const K_OVERSIZE = 2;

/** A batch of line results (parallel arrays; hex hashes concatenated, 64 chars each). */
export interface WorkerBatch {
  n: number;
  kind: Uint8Array;
  flags: Uint8Array;
  line: Float64Array;
  /** seq (records), or byte length (oversize), or record count estimate (bad lines). */
  num: Float64Array;
  hashes: string;
  prevs: string;
  /** `time` of the first and of the last record in the batch (the only ones the main thread needs). */
  firstTime: string;
  firstTimeAt: number;
  lastTime: string;
  lastTimeAt: number;
  /** Bytes read from disk so far (compressed bytes for archives), for progress. */
  diskBytes?: number;
  /** Per entry index: reason (bad lines), computed hash (records whose hash fails), event (file_deleted). */
  extra: Record<number, { reason?: string; computed?: string; event?: Record<string, unknown> }>;
}

export type WorkerRequest =
  | { t: 'scan'; id: number; path: string; gzip: boolean; maxLineBytes: number }
  | { t: 'ack'; id: number };
export type WorkerReply =
  | { t: 'batch'; id: number; b: WorkerBatch }
  | { t: 'done'; id: number; bytes: number; lines: number; sha256: string; endsWithNewline: boolean }
  | { t: 'error'; id: number; code: string; message: string };

const BATCH = 8192;
const SLICE = 64 * 1024;
const ZERO64 = '0'.repeat(64);
const FILE_DELETED = Buffer.from('"type":"audit.file_deleted"');
const MAX_IN_FLIGHT = 8;

function newBatch(): WorkerBatch {
  return {
    n: 0,
    kind: new Uint8Array(BATCH),
    flags: new Uint8Array(BATCH),
    line: new Float64Array(BATCH),
    num: new Float64Array(BATCH),
    hashes: '',
    prevs: '',
    firstTime: '',
    firstTimeAt: -1,
    lastTime: '',
    lastTimeAt: -1,
    extra: {},
  };
}

const port = parentPort;
if (port) {
  const key = (workerData as { macKey?: Uint8Array } | undefined)?.macKey;
  const mac = key ? new MacChecker(key) : null;
  const acks = new Map<number, () => void>();
  const inFlight = new Map<number, number>();

  const scan = async (req: Extract<WorkerRequest, { t: 'scan' }>): Promise<void> => {
    const { id } = req;
    inFlight.set(id, 0);
    let b = newBatch();
    let hashes: string[] = [];
    let prevs: string[] = [];
    let disk = 0;
    const post = (): void => {
      b.diskBytes = disk;
      b.hashes = hashes.join('');
      b.prevs = prevs.join('');
      port.postMessage({ t: 'batch', id, b } satisfies WorkerReply);
      b = newBatch();
      hashes = [];
      prevs = [];
      inFlight.set(id, (inFlight.get(id) ?? 0) + 1);
    };
    const throttle = async (): Promise<void> => {
      while ((inFlight.get(id) ?? 0) >= MAX_IN_FLIGHT) {
        await new Promise<void>((resolve) => acks.set(id, resolve));
      }
    };
    // Called after each entry: a full batch goes out at once (the sink cannot wait).
    const full = (): void => {
      if (b.n === BATCH) post();
    };
    const split = new LineSplitter(
      {
        line(bytes, lineNo, terminated) {
          const i = b.n++;
          b.line[i] = lineNo;
          const r = checkRecordLine(bytes);
          if ('reason' in r) {
            b.kind[i] = K_BAD;
            b.flags[i] = terminated ? F_TERMINATED : 0;
            b.num[i] = countRecordEnds(bytes);
            b.extra[i] = { reason: r.reason };
            hashes.push(ZERO64);
            prevs.push(ZERO64);
            full();
            return;
          }
          b.kind[i] = K_RECORD;
          b.num[i] = r.seq;
          let f = terminated ? F_TERMINATED : 0;
          if (r.hashOk) {
            f |= F_HASH_OK;
            if (mac?.matches(r.hash, r.mac)) f |= F_MAC_OK;
          } else if (r.computedHash !== undefined) {
            b.extra[i] = { computed: r.computedHash };
          }
          // Only deletion records are needed whole (the manifest's deleted entries are checked against
          // them); testing the bytes first keeps every other event unparsed (see checkRecordLine).
          if (bytes.indexOf(FILE_DELETED) >= 0 && r.event.type === 'audit.file_deleted') {
            b.extra[i] = { ...b.extra[i], event: r.event };
          }
          b.flags[i] = f;
          hashes.push(r.hash);
          prevs.push(r.prevHash);
          if (b.firstTimeAt < 0) {
            b.firstTimeAt = i;
            b.firstTime = r.time;
          }
          b.lastTimeAt = i;
          b.lastTime = r.time;
          full();
        },
        oversize(lineNo, length, terminated) {
          const i = b.n++;
          b.kind[i] = K_OVERSIZE;
          b.line[i] = lineNo;
          b.num[i] = length;
          b.flags[i] = terminated ? F_TERMINATED : 0;
          hashes.push(ZERO64);
          prevs.push(ZERO64);
          full();
        },
      },
      req.maxLineBytes,
    );
    let fh: FileHandle | undefined;
    try {
      fh = await open(req.path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      const st = await fh.stat();
      if (!st.isFile()) throw Object.assign(new Error('not a regular file (refused)'), { code: 'NOTFILE' });
      const hash = createHash('sha256');
      let bytes = 0;
      const stream = openTrailStream(req.path, {
        gzip: req.gzip,
        handle: fh,
        onDiskBytes: (n) => {
          disk = n;
        },
      });
      try {
        for await (const chunk of stream.chunks) {
          bytes += chunk.length;
          hash.update(chunk);
          // In slices, so that a chunk of many short lines posts a bounded number of batches per wait.
          for (let at = 0; at < chunk.length; at += SLICE) {
            split.push(chunk.subarray(at, at + SLICE));
            await throttle();
          }
        }
      } catch (e) {
        stream.close();
        throw e;
      }
      split.end();
      if (b.n > 0) post();
      port.postMessage({
        t: 'done',
        id,
        bytes,
        lines: split.lines,
        sha256: hash.digest('hex'),
        endsWithNewline: split.endsWithNewline,
      } satisfies WorkerReply);
    } catch (e) {
      if (b.n > 0) {
        b.hashes = hashes.join('');
        b.prevs = prevs.join('');
        port.postMessage({ t: 'batch', id, b } satisfies WorkerReply);
      }
      port.postMessage({
        t: 'error',
        id,
        code: String((e as NodeJS.ErrnoException).code ?? 'ERROR'),
        message: (e as Error).message,
      } satisfies WorkerReply);
    } finally {
      inFlight.delete(id);
      await fh?.close().catch(() => {});
    }
  };

  port.on('message', (m: WorkerRequest) => {
    if (m.t === 'ack') {
      inFlight.set(m.id, Math.max(0, (inFlight.get(m.id) ?? 1) - 1));
      const resolve = acks.get(m.id);
      if (resolve) {
        acks.delete(m.id);
        resolve();
      }
      return;
    }
    void scan(m);
  });
}
