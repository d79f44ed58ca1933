/**
 * A small pool of digest workers (worker_threads) for the simulated backend, so a digest uses every
 * core. Workers start on first use, are unref'd while idle (they never keep the process alive) and
 * ref'd while they have work. Shard memory is shared (SharedArrayBuffer), never copied.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DeviceError } from '../errors.js';
import { DIGEST_WORKER_SOURCE } from './worker-source.js';

export interface DigestTask {
  sab: SharedArrayBuffer;
  /** Byte range inside `sab`. */
  start: number;
  end: number;
  leafSize: number;
  leavesOut?: SharedArrayBuffer | undefined;
  leavesOffset?: number | undefined;
}

interface Pending {
  task: DigestTask;
  resolve: (root: Uint8Array) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Pending | undefined;
}

export class DigestPool {
  readonly size: number;
  #slots: Slot[] = [];
  #queue: Pending[] = [];
  #nextId = 1;
  #closed = false;

  constructor(size = availableParallelism()) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError('digest pool size must be >= 1');
    this.size = size;
  }

  /** Hashes one block; resolves with its subtree root (32 bytes). */
  run(task: DigestTask): Promise<Uint8Array> {
    if (this.#closed)
      return Promise.reject(new DeviceError('digest', 'POOL_CLOSED', 'digest pool is closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ task, resolve, reject });
      this.#pump();
    });
  }

  #spawn(): Slot {
    // execArgv: [] — the worker needs no loader (tsx) and starts faster without it.
    const worker = new Worker(DIGEST_WORKER_SOURCE, { eval: true, execArgv: [] });
    const slot: Slot = { worker, busy: undefined };
    worker.on('message', (m: { root?: Uint8Array; error?: string }) => {
      const p = slot.busy;
      slot.busy = undefined;
      if (p) {
        if (m.root) p.resolve(m.root);
        else p.reject(new DeviceError('digest', 'WORKER_ERROR', `digest worker failed: ${m.error}`));
      }
      this.#pump();
    });
    const fail = (err: Error) => {
      const p = slot.busy;
      slot.busy = undefined;
      this.#slots = this.#slots.filter((s) => s !== slot);
      p?.reject(new DeviceError('digest', 'WORKER_EXIT', `digest worker died: ${err.message}`));
      this.#pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.#closed) fail(new Error(`exit code ${code}`));
    });
    worker.unref();
    this.#slots.push(slot);
    return slot;
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.find((s) => !s.busy);
      if (!slot) {
        if (this.#slots.length >= this.size) break;
        slot = this.#spawn();
      }
      const p = this.#queue.shift() as Pending;
      slot.busy = p;
      slot.worker.ref();
      const { task } = p;
      slot.worker.postMessage({ id: this.#nextId++, ...task });
    }
    for (const s of this.#slots) if (!s.busy) s.worker.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#queue) p.reject(new DeviceError('digest', 'POOL_CLOSED', 'digest pool is closed'));
    this.#queue = [];
    const slots = this.#slots;
    this.#slots = [];
    for (const s of slots) s.busy?.reject(new DeviceError('digest', 'POOL_CLOSED', 'digest pool is closed'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
