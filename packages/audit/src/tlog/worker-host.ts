/**
 * {@link TreeHost} in a worker thread: the logger's thread only joins each durable batch's hashes into
 * one string and posts it; leaf/node hashing and tlog/ writes happen on another core. The final sync at
 * the logger's 'close' is synchronous (Atomics.wait on a SharedArrayBuffer the worker fills in).
 */
import { Worker } from 'node:worker_threads';
import { TlogError, type TlogErrorCode } from './errors.js';
import type { TreeHead, TreeHost } from './tree-host.js';
import {
  FINISH_BYTES,
  FINISH_OK,
  FINISH_PENDING,
  type HostRequest,
  type HostResponse,
  readFinish,
} from './worker-protocol.js';

/** How long the logger's 'close' may wait for the worker's final sync. */
const FINISH_TIMEOUT_MS = 60_000;

function workerBoot(): string {
  // Running from TypeScript sources (tests, tsx): the worker registers tsx itself before importing.
  const source = import.meta.url.endsWith('.ts');
  const entry = new URL(source ? './tree-worker.ts' : './tree-worker.js', import.meta.url).href;
  if (!source) return `import(${JSON.stringify(entry)});`;
  const tsx = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsx)}).then((m) => m.register()).then(() => import(${JSON.stringify(entry)}));`;
}

export class WorkerTreeHost implements TreeHost {
  readonly dir: string;
  #w: Worker;
  #nextId = 1;
  #pending = new Map<
    number,
    { resolve: (m: HostResponse & { t: 'ok' }) => void; reject: (e: unknown) => void }
  >();
  #failed: unknown;
  #exited = false;

  constructor(dir: string) {
    this.dir = dir;
    this.#w = new Worker(workerBoot(), { eval: true, workerData: { dir } });
    this.#w.unref();
    this.#w.on('message', (m: HostResponse) => {
      if (m.id === -1 && m.t === 'err') {
        this.#failed = new TlogError(m.code as TlogErrorCode, m.message);
        return;
      }
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.t === 'ok') p.resolve(m);
      else p.reject(new TlogError(m.code as TlogErrorCode, m.message));
    });
    const fail = (err: unknown) => {
      this.#failed ??= err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    this.#w.on('error', fail);
    this.#w.on('exit', () => {
      this.#exited = true;
      fail(new TlogError('TLOG_IO', 'tree worker exited'));
    });
  }

  #request(m: { t: 'start' | 'sync' | 'close' }): Promise<HostResponse & { t: 'ok' }> {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#w.postMessage({ ...m, id } satisfies HostRequest);
    });
  }

  async start(): Promise<{ size: number; caughtUp: number }> {
    const r = await this.#request({ t: 'start' });
    return { size: r.size ?? 0, caughtUp: r.caughtUp ?? 0 };
  }

  append(firstSeq: number, hashesHex: string): void {
    if (this.#failed || this.#exited) return;
    this.#w.postMessage({ t: 'append', seq: firstSeq, hex: hashesHex } satisfies HostRequest);
  }

  async sync(): Promise<TreeHead> {
    const r = await this.#request({ t: 'sync' });
    return { size: r.size ?? 0, root: Buffer.from(r.root ?? '', 'hex') };
  }

  closeSync(): TreeHead {
    if (this.#failed) throw this.#failed;
    const sab = new SharedArrayBuffer(FINISH_BYTES);
    this.#w.postMessage({ t: 'finish', sab } satisfies HostRequest);
    const waited = Atomics.wait(new Int32Array(sab), 0, FINISH_PENDING, FINISH_TIMEOUT_MS);
    void this.#w.terminate();
    const r = readFinish(sab);
    if (waited === 'timed-out' || r.state === FINISH_PENDING) {
      throw new TlogError(
        'TLOG_IO',
        `tree worker did not finish within ${FINISH_TIMEOUT_MS} ms; no final checkpoint`,
      );
    }
    if (r.state !== FINISH_OK) throw new TlogError('TLOG_IO', `tree worker: ${r.message}`);
    return { size: r.size, root: r.root };
  }

  async close(): Promise<void> {
    try {
      if (!this.#failed && !this.#exited) await this.#request({ t: 'close' });
    } finally {
      await this.#w.terminate();
    }
  }
}
