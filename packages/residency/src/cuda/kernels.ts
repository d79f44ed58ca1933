/**
 * The Merkle kernels (../../cuda/merkle.cu), shipped as PTX in ../../ptx/merkle.ptx and loaded with
 * cuModuleLoadData (the driver JIT-compiles it for the device; no toolkit needed at run time).
 */
import { readFileSync } from 'node:fs';
import { BackendUnavailableError } from '../errors.js';
import type { Driver, Handle } from './driver.js';

export const LEAF_THREADS = 128;
export const REDUCE_THREADS = 256;
/** Nodes one reduce block folds into one (9 tree levels per launch). */
export const REDUCE_SPAN = 2 * REDUCE_THREADS;

let shipped: Uint8Array | undefined;

/** The shipped PTX, NUL-terminated as cuModuleLoadData expects. */
export function shippedPtx(): Uint8Array {
  if (!shipped) {
    const url = new URL('../../ptx/merkle.ptx', import.meta.url);
    let text: Buffer;
    try {
      text = readFileSync(url);
    } catch (e) {
      throw new BackendUnavailableError(
        'cuda',
        `shipped PTX missing (${url.pathname}): ${(e as Error).message}`,
      );
    }
    shipped = Buffer.concat([text, Buffer.from([0])]);
  }
  return shipped;
}

/**
 * Multipliers the kernels take as parameters so that ptxas cannot fold them into shifts/adds
 * (see merkle.cu): one, 2^29 (>> 3), 2^22 (>> 10), 2^7 (rotr 25), 2^14 (rotr 18).
 */
const MUL = [1, 2 ** 29, 2 ** 22, 2 ** 7, 2 ** 14];

/** Kernel parameter block in pinned host memory: argument slots followed by the pointer table. */
export class ParamBlock {
  readonly #view: DataView;
  readonly #addr: bigint;
  #slot = 0;
  #ptrs: bigint[] = [];
  static readonly BYTES = 1024;
  constructor(mem: { addr: bigint; view: Uint8Array }) {
    this.#addr = mem.addr;
    this.#view = new DataView(mem.view.buffer, mem.view.byteOffset, ParamBlock.BYTES);
  }
  reset(): this {
    this.#slot = 0;
    this.#ptrs = [];
    return this;
  }
  #next(bytes: number): number {
    const at = this.#slot;
    this.#slot += Math.ceil(bytes / 8) * 8;
    this.#ptrs.push(this.#addr + BigInt(at));
    return at;
  }
  u64(v: bigint | number): this {
    this.#view.setBigUint64(this.#next(8), BigInt(v), true);
    return this;
  }
  u32(v: number): this {
    this.#view.setUint32(this.#next(4), v >>> 0, true);
    return this;
  }
  mul(): this {
    const at = this.#next(MUL.length * 4);
    for (const [i, m] of MUL.entries()) this.#view.setUint32(at + 4 * i, m >>> 0, true);
    return this;
  }
  /** Writes the pointer table and returns its address (the `kernelParams` argument). */
  table(): bigint {
    const at = this.#slot;
    for (const [i, p] of this.#ptrs.entries()) this.#view.setBigUint64(at + 8 * i, p, true);
    return this.#addr + BigInt(at);
  }
}

export interface MerkleModule {
  module: Handle;
  leaves: Handle;
  reduce: Handle;
}

/** Loads the PTX into the current context. */
export function loadMerkleModule(drv: Driver, ptx: Uint8Array = shippedPtx()): MerkleModule {
  const module = drv.moduleLoadData(ptx);
  return {
    module,
    leaves: drv.moduleGetFunction(module, 'vs_merkle_leaves'),
    reduce: drv.moduleGetFunction(module, 'vs_merkle_reduce'),
  };
}
