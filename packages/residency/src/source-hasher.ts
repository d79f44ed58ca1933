/**
 * Off-thread hashing of a shard source while it streams to the device: the plain SHA-256 (for
 * `expectedSha256`) and the `sha256-merkle-v1` tree head of the same bytes (to prove the device holds
 * exactly the bytes read) are computed by two worker threads in parallel, so the main thread (the
 * daemon's event loop) only copies each chunk once into shared memory.
 *
 * Backpressure: at most {@link MAX_IN_FLIGHT} chunks are outstanding; `update` waits beyond that,
 * so memory stays bounded whatever the source size.
 */
import { Worker } from 'node:worker_threads';
import { DeviceError } from './errors.js';
import { assertLeafSize } from './merkle.js';

const MAX_IN_FLIGHT = 4;

// One worker source for both jobs (`job` in workerData). CommonJS, node: builtins only, so it runs the
// same under tsx and from dist. The Merkle job is the stack form of merkle-stream.ts (FORMAT.md §1.3).
const HASHER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const LEAF_PREFIX = Buffer.alloc(64);
const NODE_PREFIX = Buffer.of(1);
const node = (l, r) => createHash('sha256').update(NODE_PREFIX).update(l).update(r).digest();
const L = workerData.leafSize;
const sha = createHash('sha256');
let leaf = null, inLeaf = 0;
const stack = [];
function pushLeaf() {
  let hash = leaf.digest(), h = 0;
  leaf = null; inLeaf = 0;
  while (stack.length && stack[stack.length - 1].h === h) { hash = node(stack.pop().hash, hash); h++; }
  stack.push({ h, hash });
}
function merkleUpdate(d) {
  let off = 0;
  while (off < d.length) {
    if (!leaf) leaf = createHash('sha256').update(LEAF_PREFIX);
    const take = Math.min(L - inLeaf, d.length - off);
    leaf.update(d.subarray(off, off + take));
    inLeaf += take; off += take;
    if (inLeaf === L) pushLeaf();
  }
}
function merkleDigest() {
  if (leaf) pushLeaf();
  if (stack.length === 0) return createHash('sha256').digest();
  let right = stack.pop().hash;
  while (stack.length) right = node(stack.pop().hash, right);
  return right;
}
parentPort.on('message', (m) => {
  try {
    if (m.end) {
      const out = workerData.job === 'sha256' ? sha.digest() : merkleDigest();
      parentPort.postMessage({ done: new Uint8Array(out) });
      return;
    }
    const d = new Uint8Array(m.sab, 0, m.length);
    if (workerData.job === 'sha256') sha.update(d); else merkleUpdate(d);
    parentPort.postMessage({ ack: true });
  } catch (e) {
    parentPort.postMessage({ error: String((e && e.message) || e) });
  }
});
`;

class HashWorker {
  readonly #worker: Worker;
  readonly #waiters: { resolve: (v: Uint8Array | undefined) => void; reject: (e: Error) => void }[] = [];
  #failed: Error | undefined;

  constructor(job: 'sha256' | 'merkle', leafSize: number) {
    this.#worker = new Worker(HASHER_SOURCE, { eval: true, execArgv: [], workerData: { job, leafSize } });
    this.#worker.on('message', (m: { ack?: true; done?: Uint8Array; error?: string }) => {
      const w = this.#waiters.shift();
      if (m.error) {
        this.#failed = new DeviceError('hash', 'WORKER_ERROR', `source hashing failed: ${m.error}`);
        w?.reject(this.#failed);
      } else w?.resolve(m.done);
    });
    this.#worker.on('error', (e) => this.#fail(e));
    this.#worker.on('exit', (code) => this.#fail(new Error(`exit code ${code}`)));
  }

  #fail(e: Error): void {
    this.#failed ??= new DeviceError('hash', 'WORKER_EXIT', `source hashing worker stopped: ${e.message}`);
    for (const w of this.#waiters.splice(0)) w.reject(this.#failed);
  }

  get pending(): number {
    return this.#waiters.length;
  }

  /** Posts a message; the promise settles with the worker's answer to it (answers are in order). */
  send(msg: object): Promise<Uint8Array | undefined> {
    if (this.#failed) return Promise.reject(this.#failed);
    const p = new Promise<Uint8Array | undefined>((resolve, reject) =>
      this.#waiters.push({ resolve, reject }),
    );
    this.#worker.postMessage(msg);
    return p;
  }

  close(): Promise<number> {
    this.#failed ??= new DeviceError('hash', 'CLOSED', 'source hasher closed');
    return this.#worker.terminate();
  }
}

/** SHA-256 + Merkle tree head of a byte stream, computed on two worker threads. */
export class OffThreadHasher {
  readonly #sha: HashWorker;
  readonly #merkle: HashWorker;
  readonly #acks: Promise<unknown>[] = [];

  constructor(leafSize: number) {
    assertLeafSize(leafSize);
    this.#sha = new HashWorker('sha256', leafSize);
    this.#merkle = new HashWorker('merkle', leafSize);
  }

  /** Queues a chunk (copied once into shared memory); waits while too many chunks are in flight. */
  async update(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return;
    const sab = new SharedArrayBuffer(chunk.length);
    new Uint8Array(sab).set(chunk);
    const msg = { sab, length: chunk.length };
    const both = Promise.all([this.#sha.send(msg), this.#merkle.send(msg)]);
    both.catch(() => {}); // surfaced by the await below or in finish()
    this.#acks.push(both);
    while (this.#acks.length > MAX_IN_FLIGHT) await this.#acks.shift();
  }

  /** Waits for every chunk and returns the hex SHA-256 and the Merkle tree head. */
  async finish(): Promise<{ sha256: string; merkleRoot: Uint8Array }> {
    await Promise.all(this.#acks.splice(0));
    const [sha, root] = await Promise.all([this.#sha.send({ end: true }), this.#merkle.send({ end: true })]);
    return { sha256: Buffer.from(sha as Uint8Array).toString('hex'), merkleRoot: root as Uint8Array };
  }

  async close(): Promise<void> {
    await Promise.all([this.#sha.close(), this.#merkle.close()]);
  }
}
