/**
 * The `simulated` device backend: host memory standing in for VRAM, so everything runs without a
 * GPU. It is never mistaken for real residency — `kind` is `'simulated'` and the manager stamps that
 * on every handle and event.
 *
 * - `VRAMSEAL_SIM_DEVICES` (default 1) devices of `VRAMSEAL_SIM_VRAM_BYTES` (default 24 GiB; plain
 *   bytes or with a KiB/MiB/GiB/TiB suffix) each. Capacity is accounting: memory is allocated per
 *   allocation (zero-filled SharedArrayBuffer segments of ≤ 1 GiB, so the OS commits pages only when
 *   written), and an allocation beyond the free bytes fails like cudaMalloc (AllocationFailedError).
 * - Digests run on a worker pool (all cores) directly over the shared segments; small ranges are
 *   hashed inline where a worker round trip would cost more than it saves.
 */
import type {
  DeviceAllocation,
  DeviceBackend,
  DeviceInfo,
  MerkleRequest,
  MerkleResult,
  WriteProgress,
} from '../backend.js';
import { AllocationFailedError, BackendUnavailableError, DeviceError, InvalidInputError } from '../errors.js';
import { assertLeafSize, leafCount, leafHash, leafHashesOf, rootFromLeaves } from '../merkle.js';
import { DigestPool } from './digest-pool.js';

export const SIM_SEGMENT_BYTES = 1024 ** 3;
export const DEFAULT_SIM_VRAM_BYTES = 24 * 1024 ** 3;
/** Digests of at most this many bytes run inline (no worker round trip). */
export const DEFAULT_INLINE_DIGEST_BYTES = 4 * 1024 * 1024;
/** Upper bound of one worker task (bytes); tasks are aligned power-of-two leaf blocks. */
const MAX_TASK_BYTES = 64 * 1024 * 1024;

export interface SimulatedBackendOptions {
  /** Number of devices (default: env VRAMSEAL_SIM_DEVICES, else 1). */
  devices?: number;
  /** Bytes per device (default: env VRAMSEAL_SIM_VRAM_BYTES, else 24 GiB). */
  vramBytes?: number;
  /** Digest worker threads (default: os.availableParallelism()). */
  workers?: number;
  /** Ranges up to this many bytes are hashed on the calling thread (default 4 MiB; 0 = always workers). */
  inlineDigestBytes?: number;
  /** Environment to read (default process.env). */
  env?: Record<string, string | undefined>;
}

interface SimAlloc {
  readonly handle: DeviceAllocation;
  readonly segments: SharedArrayBuffer[];
}

const UNITS: Record<string, number> = { '': 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** Parses a byte count such as `1073741824` or `24GiB`. */
export function parseByteSize(field: string, s: string): number {
  const m = /^\s*(\d+)\s*(|KiB|MiB|GiB|TiB)\s*$/.exec(s);
  const n = m ? Number(m[1]) * (UNITS[m[2] as string] as number) : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidInputError(field, 'must be a positive byte count, e.g. 25769803776 or 24GiB');
  }
  return n;
}

export class SimulatedBackend implements DeviceBackend {
  readonly kind = 'simulated' as const;
  readonly #deviceCount: number;
  readonly #vramBytes: number;
  readonly #used: number[];
  readonly #allocs = new Map<number, SimAlloc>();
  readonly #pool: DigestPool;
  readonly #inline: number;
  #nextId = 1;
  #closed = false;

  constructor(opts: SimulatedBackendOptions = {}) {
    const env = opts.env ?? process.env;
    const devices = opts.devices ?? (env.VRAMSEAL_SIM_DEVICES ? Number(env.VRAMSEAL_SIM_DEVICES) : 1);
    if (!Number.isSafeInteger(devices) || devices < 1 || devices > 64) {
      throw new InvalidInputError('VRAMSEAL_SIM_DEVICES', 'must be an integer between 1 and 64');
    }
    const vram =
      opts.vramBytes ??
      (env.VRAMSEAL_SIM_VRAM_BYTES
        ? parseByteSize('VRAMSEAL_SIM_VRAM_BYTES', env.VRAMSEAL_SIM_VRAM_BYTES)
        : DEFAULT_SIM_VRAM_BYTES);
    if (!Number.isSafeInteger(vram) || vram <= 0) {
      throw new InvalidInputError('vramBytes', 'must be a positive safe integer');
    }
    this.#deviceCount = devices;
    this.#vramBytes = vram;
    this.#used = new Array(devices).fill(0);
    this.#pool = new DigestPool(opts.workers);
    this.#inline = Math.min(opts.inlineDigestBytes ?? DEFAULT_INLINE_DIGEST_BYTES, SIM_SEGMENT_BYTES);
  }

  #open(): void {
    if (this.#closed) throw new BackendUnavailableError('simulated', 'backend is closed');
  }

  #device(device: number): number {
    this.#open();
    if (!Number.isInteger(device) || device < 0 || device >= this.#deviceCount) {
      throw new InvalidInputError('device', `must be an integer in 0..${this.#deviceCount - 1}`);
    }
    return device;
  }

  #get(op: string, alloc: DeviceAllocation): SimAlloc {
    this.#open();
    const a = this.#allocs.get(alloc?.id);
    if (!a || a.handle.device !== alloc.device || a.handle.bytes !== alloc.bytes) {
      throw new DeviceError(op, 'INVALID_ALLOCATION', `${op}: unknown or freed allocation`);
    }
    return a;
  }

  #range(op: string, a: SimAlloc, offset: number, length: number): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > a.handle.bytes
    ) {
      throw new InvalidInputError(
        `${op}.range`,
        `[offset, offset+length) must lie within the ${a.handle.bytes}-byte allocation`,
      );
    }
  }

  /** Calls fn for each piece of [offset, offset+length) with the segment view and the position in the range. */
  #pieces(a: SimAlloc, offset: number, length: number, fn: (view: Uint8Array, at: number) => void): void {
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const seg = Math.floor(pos / SIM_SEGMENT_BYTES);
      const inSeg = pos - seg * SIM_SEGMENT_BYTES;
      const sab = a.segments[seg] as SharedArrayBuffer;
      const n = Math.min(end - pos, sab.byteLength - inSeg);
      fn(new Uint8Array(sab, inSeg, n), pos - offset);
      pos += n;
    }
  }

  async devices(): Promise<DeviceInfo[]> {
    this.#open();
    return this.#used.map((used, index) => ({
      index,
      name: `vramseal simulated device ${index} (host memory)`,
      kind: 'simulated' as const,
      totalBytes: this.#vramBytes,
      freeBytes: this.#vramBytes - used,
    }));
  }

  async memoryInfo(device: number): Promise<{ totalBytes: number; freeBytes: number }> {
    const d = this.#device(device);
    return { totalBytes: this.#vramBytes, freeBytes: this.#vramBytes - (this.#used[d] as number) };
  }

  async allocate(device: number, bytes: number): Promise<DeviceAllocation> {
    const d = this.#device(device);
    if (!Number.isSafeInteger(bytes) || bytes <= 0)
      throw new InvalidInputError('bytes', 'must be a positive integer');
    const free = this.#vramBytes - (this.#used[d] as number);
    if (bytes > free) {
      throw new AllocationFailedError(d, bytes, `out of memory (simulated cudaMalloc: ${free} bytes free)`);
    }
    const segments: SharedArrayBuffer[] = [];
    try {
      for (let left = bytes; left > 0; left -= SIM_SEGMENT_BYTES) {
        segments.push(new SharedArrayBuffer(Math.min(left, SIM_SEGMENT_BYTES)));
      }
    } catch (e) {
      throw new AllocationFailedError(d, bytes, `host memory exhausted (${(e as Error).message})`, e);
    }
    this.#used[d] = (this.#used[d] as number) + bytes;
    const handle: DeviceAllocation = Object.freeze({ id: this.#nextId++, device: d, bytes });
    this.#allocs.set(handle.id, { handle, segments });
    return handle;
  }

  async free(alloc: DeviceAllocation): Promise<void> {
    const a = this.#get('free', alloc);
    this.#allocs.delete(a.handle.id);
    this.#used[a.handle.device] = (this.#used[a.handle.device] as number) - a.handle.bytes;
  }

  async write(alloc: DeviceAllocation, offset: number, data: Uint8Array): Promise<void> {
    const a = this.#get('write', alloc);
    this.#range('write', a, offset, data.length);
    this.#pieces(a, offset, data.length, (view, at) => view.set(data.subarray(at, at + view.length)));
  }

  async writeFrom(
    alloc: DeviceAllocation,
    source: AsyncIterable<Uint8Array>,
    onProgress?: WriteProgress,
  ): Promise<number> {
    const a = this.#get('writeFrom', alloc);
    let off = 0;
    for await (const chunk of source) {
      this.#get('writeFrom', alloc); // freed or closed meanwhile?
      if (off + chunk.length > a.handle.bytes) {
        throw new InvalidInputError('source', `is longer than the ${a.handle.bytes}-byte allocation`);
      }
      this.#pieces(a, off, chunk.length, (view, at) => view.set(chunk.subarray(at, at + view.length)));
      off += chunk.length;
      onProgress?.(off, a.handle.bytes);
    }
    return off;
  }

  async read(alloc: DeviceAllocation, offset: number, length: number): Promise<Uint8Array> {
    const a = this.#get('read', alloc);
    this.#range('read', a, offset, length);
    const out = new Uint8Array(length);
    this.#pieces(a, offset, length, (view, at) => out.set(view, at));
    return out;
  }

  async merkle(alloc: DeviceAllocation, req: MerkleRequest): Promise<MerkleResult> {
    const a = this.#get('merkle', alloc);
    assertLeafSize(req.leafSize);
    const length = req.length ?? a.handle.bytes;
    this.#range('merkle', a, 0, length);
    const L = req.leafSize;
    if (length <= this.#inline) {
      const view =
        length === 0 ? new Uint8Array(0) : new Uint8Array(a.segments[0] as SharedArrayBuffer, 0, length);
      const leaves = leafHashesOf(view, L);
      return req.wantLeaves ? { root: rootFromLeaves(leaves), leaves } : { root: rootFromLeaves(leaves) };
    }
    const n = leafCount(length, L);
    // Leaves per task: a power of two, ≤ MAX_TASK_BYTES, aiming at ≥ 4 tasks per worker for balance.
    let lpt = 1;
    while (lpt * 2 * L <= MAX_TASK_BYTES && lpt * 2 * L * this.#pool.size * 4 <= length) lpt *= 2;
    const leavesOut = req.wantLeaves ? new SharedArrayBuffer(n * 32) : undefined;
    const jobs: Promise<Uint8Array>[] = [];
    for (let first = 0; first < n; first += lpt) {
      const start = first * L;
      const end = Math.min(length, (first + lpt) * L);
      const seg = Math.floor(start / SIM_SEGMENT_BYTES); // tasks never straddle segments (powers of two)
      const base = seg * SIM_SEGMENT_BYTES;
      jobs.push(
        this.#pool.run({
          sab: a.segments[seg] as SharedArrayBuffer,
          start: start - base,
          end: end - base,
          leafSize: L,
          leavesOut,
          leavesOffset: first * 32,
        }),
      );
    }
    const roots = await Promise.all(jobs);
    this.#get('merkle', alloc);
    const blockRoots = new Uint8Array(roots.length * 32);
    for (const [i, r] of roots.entries()) blockRoots.set(r, i * 32);
    // Aligned 2^j-leaf blocks are exactly the nodes of level j, so the tree over the block roots
    // (same odd-carry rule) is the tree over all leaves.
    const root = rootFromLeaves(blockRoots);
    return leavesOut ? { root, leaves: new Uint8Array(leavesOut) } : { root };
  }

  async leafHashes(
    alloc: DeviceAllocation,
    leafSize: number,
    indices: readonly number[],
    length?: number,
  ): Promise<Uint8Array> {
    const a = this.#get('leafHashes', alloc);
    assertLeafSize(leafSize);
    const len = length ?? a.handle.bytes;
    this.#range('leafHashes', a, 0, len);
    const n = leafCount(len, leafSize);
    const out = new Uint8Array(indices.length * 32);
    indices.forEach((i, k) => {
      if (!Number.isInteger(i) || i < 0 || i >= n)
        throw new InvalidInputError('indices', `leaf index must be in 0..${n - 1}`);
      const off = i * leafSize;
      const seg = Math.floor(off / SIM_SEGMENT_BYTES);
      const inSeg = off - seg * SIM_SEGMENT_BYTES;
      const chunk = new Uint8Array(
        a.segments[seg] as SharedArrayBuffer,
        inSeg,
        Math.min(leafSize, len - off),
      );
      out.set(leafHash(chunk), k * 32);
    });
    return out;
  }

  async corrupt(alloc: DeviceAllocation, offset: number, length = 1, mask = 0xff): Promise<void> {
    const a = this.#get('corrupt', alloc);
    this.#range('corrupt', a, offset, length);
    if (!Number.isInteger(mask) || mask < 1 || mask > 255)
      throw new InvalidInputError('mask', 'must be in 1..255');
    this.#pieces(a, offset, length, (view) => {
      for (let i = 0; i < view.length; i++) view[i] = (view[i] as number) ^ mask;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#allocs.clear();
    this.#used.fill(0);
    await this.#pool.close();
  }
}
