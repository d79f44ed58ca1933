/**
 * Worker threads for parallel verification: each worker reads one file at a time, checks every
 * line's shape, hash and MAC (the costly part: JSON parsing and three SHA-256 compressions per record)
 * and streams compact results back; the main thread consumes files in trail order and runs the
 * chain logic, which is cheap. A worker runs ahead on the next file while the main thread consumes the
 * current one; flow control (acks) bounds what is buffered.
 */
import { Worker } from 'node:worker_threads';
import type { FileScan } from './trail-reader.js';
import {
  F_HASH_OK,
  F_MAC_OK,
  F_TERMINATED,
  K_BAD,
  K_RECORD,
  type WorkerBatch,
  type WorkerReply,
  type WorkerRequest,
} from './verify-worker.js';

/** A record as the chain logic needs it (a CheckedRecord satisfies it). */
export interface RecordLite {
  seq: number;
  prevHash: string;
  hash: string;
  mac?: string | undefined;
  time: string;
  hashOk: boolean;
  computedHash?: string | undefined;
  /** Present at least for `audit.file_deleted` events. */
  event?: Record<string, unknown>;
}

export interface LineHandlers {
  record(lineNo: number, terminated: boolean, r: RecordLite, macOk: boolean): void;
  bad(lineNo: number, reason: string, terminated: boolean, records: number): void;
  oversize(lineNo: number, length: number, terminated: boolean): void;
}

function workerBoot(): string {
  // From TypeScript sources (tests, tsx) the worker registers tsx before importing the module.
  const source = import.meta.url.endsWith('.ts');
  const entry = new URL(source ? './verify-worker.ts' : './verify-worker.js', import.meta.url).href;
  if (!source) return `import(${JSON.stringify(entry)});`;
  const tsx = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsx)}).then((m) => m.register()).then(() => import(${JSON.stringify(entry)}));`;
}

/** One file being scanned by a worker. */
export class ScanJob {
  readonly #batches: WorkerBatch[] = [];
  #end: { scan?: FileScan; error?: { code: string; message: string } } | null = null;
  #wake: (() => void) | null = null;
  worker: Worker | null = null;

  constructor(
    readonly id: number,
    readonly req: Extract<WorkerRequest, { t: 'scan' }>,
  ) {}

  push(b: WorkerBatch): void {
    this.#batches.push(b);
    this.#notify();
  }
  finish(end: { scan?: FileScan; error?: { code: string; message: string } }): void {
    this.#end ??= end;
    this.#notify();
  }
  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Feeds every line result to `h` in order; resolves with the file's scan or rejects like scanTrailFile. */
  async consume(h: LineHandlers, onDiskBytes?: (n: number) => void): Promise<FileScan> {
    for (;;) {
      const b = this.#batches.shift();
      if (b) {
        this.worker?.postMessage({ t: 'ack', id: this.id } satisfies WorkerRequest);
        feed(b, h);
        if (onDiskBytes && b.diskBytes !== undefined) onDiskBytes(b.diskBytes);
        continue;
      }
      if (this.#end) {
        if (this.#end.scan) return this.#end.scan;
        const e = this.#end.error ?? { code: 'ERROR', message: 'worker failed' };
        throw Object.assign(new Error(e.message), { code: e.code });
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }
}

function feed(b: WorkerBatch, h: LineHandlers): void {
  for (let i = 0; i < b.n; i++) {
    const kind = b.kind[i] as number;
    const flags = b.flags[i] as number;
    const terminated = (flags & F_TERMINATED) !== 0;
    const lineNo = b.line[i] as number;
    if (kind === K_RECORD) {
      const x = b.extra[i];
      const r: RecordLite = {
        seq: b.num[i] as number,
        hash: b.hashes.slice(i * 64, i * 64 + 64),
        prevHash: b.prevs.slice(i * 64, i * 64 + 64),
        // Only the first and last record of a batch carry their time (all the chain logic uses).
        time: i === b.firstTimeAt ? b.firstTime : i === b.lastTimeAt ? b.lastTime : '',
        hashOk: (flags & F_HASH_OK) !== 0,
        computedHash: x?.computed,
        event: x?.event,
      };
      h.record(lineNo, terminated, r, (flags & F_MAC_OK) !== 0);
    } else if (kind === K_BAD) {
      h.bad(lineNo, b.extra[i]?.reason ?? 'not a record', terminated, b.num[i] as number);
    } else {
      h.oversize(lineNo, b.num[i] as number, terminated);
    }
  }
}

/** A fixed set of workers scanning files; jobs start in submission order as workers free up. */
export class VerifyPool {
  readonly size: number;
  readonly #workers: Worker[] = [];
  readonly #idle: Worker[] = [];
  readonly #queue: ScanJob[] = [];
  readonly #running = new Map<Worker, ScanJob>();
  #nextId = 1;
  #closed = false;

  constructor(size: number, macKey?: Uint8Array) {
    this.size = size;
    for (let i = 0; i < size; i++) {
      const w = new Worker(workerBoot(), { eval: true, workerData: { macKey } });
      w.on('message', (m: WorkerReply) => this.#onMessage(w, m));
      const fail = (err: unknown) => {
        const job = this.#running.get(w);
        this.#running.delete(w);
        job?.finish({
          error: { code: 'WORKER', message: `verify worker failed: ${(err as Error)?.message ?? err}` },
        });
        // Queued jobs go to the remaining workers; with none left they fail.
        const i = this.#idle.indexOf(w);
        if (i >= 0) this.#idle.splice(i, 1);
        const j = this.#workers.indexOf(w);
        if (j >= 0) this.#workers.splice(j, 1);
        if (this.#workers.length === 0) {
          for (const q of this.#queue.splice(0))
            q.finish({ error: { code: 'WORKER', message: 'no verify worker left' } });
        }
      };
      w.on('error', fail);
      w.on('exit', (code) => {
        if (!this.#closed) fail(new Error(`exited with code ${code}`));
      });
      this.#workers.push(w);
      this.#idle.push(w);
    }
  }

  /** Queues a scan of `path`; returns its job (consume it in order). */
  scan(path: string, gzip: boolean, maxLineBytes: number): ScanJob {
    const id = this.#nextId++;
    const job = new ScanJob(id, { t: 'scan', id, path, gzip, maxLineBytes });
    if (this.#workers.length === 0)
      job.finish({ error: { code: 'WORKER', message: 'no verify worker left' } });
    else {
      this.#queue.push(job);
      this.#pump();
    }
    return job;
  }

  #pump(): void {
    while (this.#idle.length > 0 && this.#queue.length > 0) {
      const w = this.#idle.shift() as Worker;
      const job = this.#queue.shift() as ScanJob;
      job.worker = w;
      this.#running.set(w, job);
      w.postMessage(job.req);
    }
  }

  #onMessage(w: Worker, m: WorkerReply): void {
    const job = this.#running.get(w);
    if (!job || job.id !== m.id) return;
    if (m.t === 'batch') {
      job.push(m.b);
      return;
    }
    this.#running.delete(w);
    this.#idle.push(w);
    if (m.t === 'done') {
      job.finish({
        scan: { bytes: m.bytes, lines: m.lines, sha256: m.sha256, endsWithNewline: m.endsWithNewline },
      });
    } else {
      job.finish({ error: { code: m.code, message: m.message } });
    }
    this.#pump();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
