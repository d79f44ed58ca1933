/**
 * The `cuda` device backend: CUDA driver API through koffi (libcuda.so.1, loaded lazily — no
 * compile step at install, no CUDA toolkit at run time), shards in cuMemAlloc'd VRAM only, the
 * sha256-merkle-v1 digest computed on the GPU by the shipped PTX kernels (../../cuda/merkle.cu).
 *
 * - `openCudaBackend()` throws {@link BackendUnavailableError} with the exact reason when libcuda
 *   cannot be loaded, `cuInit` fails or no device exists.
 * - One primary context and one non-blocking stream per device; every device of the host is usable.
 * - Host → device through a bounded pinned staging pool per device in use (default 2 × 64 MiB),
 *   double-buffered (staging.ts), so several GPUs are loaded in parallel.
 * - Every wait polls an event between event-loop turns (wait.ts): Node keeps running.
 * - Device pointers never leave this module: callers hold opaque {@link DeviceAllocation}s.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type {
  DeviceAllocation,
  DeviceBackend,
  DeviceInfo,
  MerkleRequest,
  MerkleResult,
  WriteProgress,
} from '../backend.js';
import { AllocationFailedError, BackendUnavailableError, DeviceError, InvalidInputError } from '../errors.js';
import { assertLeafSize, leafCount } from '../merkle.js';
import { ATTR, CUDA_ERROR_OUT_OF_MEMORY, type Driver, type Handle, loadDriver } from './driver.js';
import {
  LEAF_THREADS,
  loadMerkleModule,
  type MerkleModule,
  ParamBlock,
  REDUCE_SPAN,
  REDUCE_THREADS,
} from './kernels.js';
import { checkAllocationPolicy, checkDevicePolicy, type DeviceFacts } from './policy.js';
import { DEFAULT_STAGING_BUFFERS, DEFAULT_STAGING_BYTES, StagingPool } from './staging.js';
import { Mutex, waitEvent } from './wait.js';

export { loadDriver } from './driver.js';
export { checkDevicePolicy, MIN_COMPUTE_CAPABILITY, MIN_DEVICE_BYTES, VRAM_ONLY_POLICY } from './policy.js';

export interface CudaBackendOptions {
  /** Path or soname of the driver library (default `libcuda.so.1`). */
  library?: string;
  /** Pinned staging buffer size in bytes (default 64 MiB). */
  stagingBytes?: number;
  /** Number of pinned staging buffers (default 2: double buffering). */
  stagingBuffers?: number;
  /** PTX text to load instead of the shipped one (tests and kernel experiments). */
  ptx?: Uint8Array | string;
  /**
   * Leaves per digest segment, a power of two ≥ 2048 (default 2^20). The fixed per-device digest
   * scratch (allocated at open) holds one segment of leaf hashes: 32 bytes × this.
   */
  segmentLeaves?: number;
}

/** GPU time of the last digest (kernels only, CUDA events), for benchmarks. */
export interface CudaDigestTiming {
  device: number;
  bytes: number;
  gpuMs: number;
}

/** The CUDA backend: a DeviceBackend of kind `cuda`, plus a few CUDA-specific extras. */
export type CudaBackend = DeviceBackend & {
  readonly kind: 'cuda';
  /** Pinned host bytes held by the staging pools (bounded: buffers × size per device in use). */
  readonly pinnedBytes: number;
  /** TEST ONLY: cuMemsetD8 of `length` bytes at `offset` to `value`, in place on the device. */
  memsetD8(alloc: DeviceAllocation, offset: number, value: number, length: number): Promise<void>;
  /**
   * Copies a whole regular file (e.g. from the page cache) into the allocation from offset 0 by
   * reading straight into the pinned staging buffers: no intermediate JS buffers. Resolves with the
   * bytes written; rejects if the file is larger than the allocation or changes size while read.
   */
  writeFromFile(alloc: DeviceAllocation, path: string, onProgress?: WriteProgress): Promise<number>;
  /** GPU time of the most recent `merkle()` call (leaf + tree kernels). */
  lastDigestTiming(): CudaDigestTiming | undefined;
  /** Copies device memory back and hashes it with plain SHA-256 on the CPU (the old method; bench only). */
  hostSha256(alloc: DeviceAllocation, length?: number): Promise<Uint8Array>;
};

interface DeviceState {
  facts: DeviceFacts;
  pciBusId: string;
  ctx: Handle;
  stream: Handle;
  /** This device's pinned staging pool (lazily created). */
  staging?: StagingPool;
  /** Staging transfers' events (one per staging buffer). */
  events: Handle[];
  /** Event for operations under `lock` (digest, sync). */
  evOp: Handle;
  tStart: Handle;
  tEnd: Handle;
  lock: Mutex;
  kernels?: MerkleModule;
  scratch?: Scratch;
  /** Small pinned area: kernel parameters + root / index / leaf-hash transfers. */
  small: { handle: Handle; addr: bigint; view: Uint8Array };
  params: ParamBlock;
}

/** Fixed per-device digest scratch: one segment of leaf hashes, two level buffers, segment roots. */
interface Scratch {
  ptr: bigint;
  bytes: number;
  segmentLeaves: number;
  maxSegments: number;
  leaves: bigint;
  tmpA: bigint;
  tmpB: bigint;
  segRoots: bigint;
  final: bigint;
}

/** Leaves per digest segment (2^20: 32 MiB of leaf hashes; 16 GiB of data at 16 KiB leaves). */
export const DEFAULT_SEGMENT_LEAVES = 1 << 20;
const MAX_SEGMENTS = 4096;

interface AllocRecord {
  alloc: DeviceAllocation;
  ptr: bigint;
}

const SMALL_BYTES = 64 * 1024;
const SMALL_DATA_OFFSET = ParamBlock.BYTES;
/** Indices per leafHashes batch: 4 bytes in + 32 bytes out each must fit in the small area. */
const INDEX_BATCH = Math.floor((SMALL_BYTES - SMALL_DATA_OFFSET) / 36);
/** Writes up to this size go through the device's small pinned area, in stream order. */
const SMALL_WRITE_MAX = SMALL_BYTES - SMALL_DATA_OFFSET;
const EMPTY_ROOT = createHash('sha256').digest();

class CudaBackendImpl implements CudaBackend {
  readonly kind = 'cuda' as const;
  readonly #drv: Driver;
  readonly #devs: DeviceState[];
  readonly #stagingBytes: number;
  readonly #stagingBuffers: number;
  readonly #allocs = new Map<number, AllocRecord>();
  readonly #ptx: Uint8Array | undefined;
  readonly #driverVersion: string;
  #nextId = 1;
  #closed = false;
  #lastTiming: CudaDigestTiming | undefined;

  constructor(
    drv: Driver,
    devs: DeviceState[],
    staging: { bytes: number; buffers: number },
    ptx: Uint8Array | undefined,
  ) {
    this.#drv = drv;
    this.#devs = devs;
    this.#stagingBytes = staging.bytes;
    this.#stagingBuffers = staging.buffers;
    this.#ptx = ptx;
    this.#driverVersion = drv.driverVersion();
  }

  get pinnedBytes(): number {
    let n = 0;
    for (const d of this.#devs) n += d.staging?.pinnedBytes ?? 0;
    return n;
  }

  #dev(index: number, field = 'device'): DeviceState {
    if (this.#closed) throw new DeviceError('cuda', 'CLOSED', 'the CUDA backend is closed');
    const d = Number.isInteger(index) ? this.#devs[index] : undefined;
    if (!d) throw new InvalidInputError(field, `must be a device index 0..${this.#devs.length - 1}`);
    return d;
  }

  #rec(op: string, alloc: DeviceAllocation): AllocRecord {
    if (this.#closed) throw new DeviceError(op, 'CLOSED', 'the CUDA backend is closed');
    const r = this.#allocs.get(alloc?.id);
    if (!r || r.alloc !== alloc) {
      throw new DeviceError(op, 'UNKNOWN_ALLOCATION', `${op}: unknown or freed allocation`);
    }
    return r;
  }

  #range(alloc: DeviceAllocation, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw new InvalidInputError('offset', 'must be a non-negative integer');
    if (!Number.isSafeInteger(length) || length < 0)
      throw new InvalidInputError('length', 'must be a non-negative integer');
    if (offset + length > alloc.bytes) {
      throw new InvalidInputError(
        'length',
        `offset + length must be ≤ the allocation's ${alloc.bytes} bytes`,
      );
    }
  }

  #memInfo(d: DeviceState): { totalBytes: number; freeBytes: number } {
    this.#drv.setCurrent(d.ctx);
    return this.#drv.memGetInfo();
  }

  async devices(): Promise<DeviceInfo[]> {
    if (this.#closed) throw new DeviceError('devices', 'CLOSED', 'the CUDA backend is closed');
    return this.#devs.map((d) => {
      const m = this.#memInfo(d);
      return {
        index: d.facts.index,
        name: d.facts.name,
        kind: 'cuda' as const,
        totalBytes: m.totalBytes,
        freeBytes: m.freeBytes,
        pciBusId: d.pciBusId,
        computeCapability: `${d.facts.ccMajor}.${d.facts.ccMinor}`,
        integrated: d.facts.integrated,
        driverVersion: this.#driverVersion,
      };
    });
  }

  async memoryInfo(device: number): Promise<{ totalBytes: number; freeBytes: number }> {
    return this.#memInfo(this.#dev(device));
  }

  async checkPolicy(device: number): Promise<void> {
    checkDevicePolicy(this.#dev(device).facts);
  }

  async allocate(device: number, bytes: number): Promise<DeviceAllocation> {
    const d = this.#dev(device);
    if (!Number.isSafeInteger(bytes) || bytes <= 0)
      throw new InvalidInputError('bytes', 'must be a positive integer');
    checkDevicePolicy(d.facts);
    this.#drv.setCurrent(d.ctx);
    const { res, ptr } = this.#drv.memAlloc(bytes);
    if (res !== 0) {
      const name = this.#drv.errorName(res);
      if (res === CUDA_ERROR_OUT_OF_MEMORY) throw new AllocationFailedError(device, bytes, name);
      throw new AllocationFailedError(device, bytes, name, new DeviceError('cuMemAlloc', name));
    }
    try {
      checkAllocationPolicy(this.#drv, d.facts.index, ptr);
    } catch (e) {
      this.#drv.memFree(ptr);
      throw e;
    }
    const alloc: DeviceAllocation = Object.freeze({ id: this.#nextId++, device, bytes });
    this.#allocs.set(alloc.id, { alloc, ptr });
    return alloc;
  }

  async free(alloc: DeviceAllocation): Promise<void> {
    const r = this.#rec('free', alloc);
    const d = this.#dev(alloc.device);
    this.#allocs.delete(alloc.id);
    await d.lock.run(async () => {
      await this.#sync(d);
      this.#drv.setCurrent(d.ctx);
      this.#drv.memFree(r.ptr);
    });
  }

  /** Waits (non-blocking) until all work queued on the device's stream has finished. */
  async #sync(d: DeviceState): Promise<void> {
    this.#drv.setCurrent(d.ctx);
    const ev = d.evOp;
    this.#drv.eventRecord(ev, d.stream);
    await waitEvent(this.#drv, ev);
  }

  /** The device's own pinned staging pool (created on first use), so devices copy in parallel. */
  #pool(d: DeviceState): StagingPool {
    if (!d.staging) {
      this.#drv.setCurrent(d.ctx);
      d.staging = new StagingPool(this.#drv, this.#stagingBytes, this.#stagingBuffers);
    }
    return d.staging;
  }

  #target(d: DeviceState) {
    return { ctx: d.ctx, stream: d.stream, events: d.events };
  }

  async write(alloc: DeviceAllocation, offset: number, data: Uint8Array): Promise<void> {
    const r = this.#rec('write', alloc);
    if (!(data instanceof Uint8Array)) throw new InvalidInputError('data', 'must be a Uint8Array');
    this.#range(alloc, offset, data.length);
    if (data.length === 0) return;
    const d = this.#dev(alloc.device);
    if (data.length <= SMALL_WRITE_MAX) {
      // Pinned + async on the device's stream: ordered with every kernel and copy queued there
      // (a pageable cuMemcpyHtoD may return before its DMA lands, on another stream).
      await d.lock.run(async () => {
        d.small.view.set(data, SMALL_DATA_OFFSET);
        this.#drv.setCurrent(d.ctx);
        this.#drv.memcpyHtoDAsync(
          r.ptr + BigInt(offset),
          d.small.addr + BigInt(SMALL_DATA_OFFSET),
          data.length,
          d.stream,
        );
        this.#drv.eventRecord(d.evOp, d.stream);
        await waitEvent(this.#drv, d.evOp);
      });
      return;
    }
    await this.#pool(d).upload(this.#target(d), r.ptr + BigInt(offset), data.length, [data]);
  }

  /**
   * Streams chunks through this device's pinned staging pool. Host copies of consecutive chunks run
   * concurrently with reading the next one, so a chunk must stay unchanged until writeFrom resolves
   * (fresh buffers or views of an unchanging buffer, as `openSource` yields).
   */
  async writeFrom(
    alloc: DeviceAllocation,
    source: AsyncIterable<Uint8Array>,
    onProgress?: WriteProgress,
  ): Promise<number> {
    const r = this.#rec('writeFrom', alloc);
    const d = this.#dev(alloc.device);
    return this.#pool(d).upload(
      this.#target(d),
      r.ptr,
      alloc.bytes,
      source,
      onProgress ? (done) => onProgress(done, alloc.bytes) : undefined,
    );
  }

  async writeFromFile(alloc: DeviceAllocation, path: string, onProgress?: WriteProgress): Promise<number> {
    const r = this.#rec('writeFromFile', alloc);
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
      throw new InvalidInputError('path', 'must be a non-empty file path without NUL');
    }
    const d = this.#dev(alloc.device);
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new InvalidInputError('path', 'must be a regular file');
      if (st.size > alloc.bytes) {
        throw new InvalidInputError(
          'path',
          `file is ${st.size} bytes, more than the allocation's ${alloc.bytes}`,
        );
      }
      const n = await this.#pool(d).uploadFile(
        this.#target(d),
        r.ptr,
        fh,
        st.size,
        onProgress ? (done) => onProgress(done, st.size) : undefined,
      );
      if ((await fh.stat()).size !== st.size)
        throw new InvalidInputError('path', 'file changed size while being read');
      return n;
    } finally {
      await fh.close();
    }
  }

  async read(alloc: DeviceAllocation, offset: number, length: number): Promise<Uint8Array> {
    const r = this.#rec('read', alloc);
    this.#range(alloc, offset, length);
    if (length === 0) return new Uint8Array(0);
    const d = this.#dev(alloc.device);
    return this.#pool(d).download(this.#target(d), r.ptr + BigInt(offset), length);
  }

  #kernels(d: DeviceState): MerkleModule {
    if (!d.kernels) {
      this.#drv.setCurrent(d.ctx);
      try {
        d.kernels = loadMerkleModule(this.#drv, this.#ptx);
      } catch (e) {
        const name = e instanceof DeviceError ? e.resultName : (e as Error).message;
        throw new DeviceError(
          'cuModuleLoadData',
          name,
          `loading the Merkle PTX on device ${d.facts.index} (compute capability ${d.facts.ccMajor}.${d.facts.ccMinor}) failed: ${name}; the shipped PTX targets compute capability ≥ 7.5`,
        );
      }
    }
    return d.kernels;
  }

  /** The device's fixed digest scratch (allocated at open, so free memory stays stable). */
  #scratch(d: DeviceState): Scratch {
    if (!d.scratch)
      throw new DeviceError('merkle', 'NO_SCRATCH', `device ${d.facts.index} has no digest scratch`);
    return d.scratch;
  }

  /** Reduces `m` nodes at `src` to one node written at `final` (always at least one launch). */
  #reduceTo(d: DeviceState, k: MerkleModule, src: bigint, m: number, final: bigint, sc: Scratch): void {
    const tmp = [sc.tmpA, sc.tmpB];
    let i = 0;
    let n = m;
    let from = src;
    do {
      const blocks = Math.ceil(n / REDUCE_SPAN);
      const to = blocks === 1 ? final : (tmp[i] as bigint);
      i ^= 1;
      const p = d.params.reset().u64(from).u32(n).u64(to).mul();
      this.#drv.launchKernel(k.reduce, blocks, REDUCE_THREADS, 0, d.stream, p.table());
      from = to;
      n = blocks;
    } while (n > 1);
  }

  #launchLeaves(
    d: DeviceState,
    k: MerkleModule,
    data: bigint,
    length: number,
    shift: number,
    indices: bigint,
    count: number,
    out: bigint,
  ): void {
    const p = d.params.reset().u64(data).u64(length).u32(shift).u64(indices).u32(count).u64(out).mul();
    this.#drv.launchKernel(k.leaves, Math.ceil(count / LEAF_THREADS), LEAF_THREADS, 0, d.stream, p.table());
  }

  async merkle(alloc: DeviceAllocation, req: MerkleRequest): Promise<MerkleResult> {
    const r = this.#rec('merkle', alloc);
    const leafSize = req.leafSize;
    assertLeafSize(leafSize);
    const length = req.length ?? alloc.bytes;
    this.#range(alloc, 0, length);
    const n = leafCount(length, leafSize);
    if (n === 0)
      return req.wantLeaves
        ? { root: EMPTY_ROOT.slice(), leaves: new Uint8Array(0) }
        : { root: EMPTY_ROOT.slice() };
    if (n > 0xffffffff) throw new InvalidInputError('leafSize', 'too many leaves for one digest (> 2^32)');
    const d = this.#dev(alloc.device);
    const shift = Math.log2(leafSize);
    return d.lock.run(async () => {
      const drv = this.#drv;
      const k = this.#kernels(d);
      const sc = this.#scratch(d);
      const seg = sc.segmentLeaves;
      const segments = Math.ceil(n / seg);
      if (segments > sc.maxSegments) {
        throw new InvalidInputError(
          'length',
          `too many leaves for one digest (${n} > ${sc.maxSegments * seg})`,
        );
      }
      const leaves = req.wantLeaves ? new Uint8Array(n * 32) : undefined;
      drv.setCurrent(d.ctx);
      drv.eventRecord(d.tStart, d.stream);
      // Aligned segments of 2^k leaves are complete subtrees: each reduces to the level-k node
      // (the last, partial one too, by the odd-node carry rule), then the segment roots reduce.
      for (let sgi = 0; sgi < segments; sgi++) {
        const first = sgi * seg;
        const count = Math.min(seg, n - first);
        const base = r.ptr + BigInt(first) * BigInt(leafSize);
        const segLen = Math.min(length - first * leafSize, count * leafSize);
        drv.setCurrent(d.ctx);
        this.#launchLeaves(d, k, base, segLen, shift, 0n, count, sc.leaves);
        this.#reduceTo(d, k, sc.leaves, count, sc.segRoots + BigInt(32 * sgi), sc);
        if (leaves) {
          const part = await this.#pool(d).download(this.#target(d), sc.leaves, count * 32);
          leaves.set(part, first * 32);
        }
      }
      drv.setCurrent(d.ctx);
      let rootPtr = sc.segRoots;
      if (segments > 1) {
        this.#reduceTo(d, k, sc.segRoots, segments, sc.final, sc);
        rootPtr = sc.final;
      }
      drv.eventRecord(d.tEnd, d.stream);
      drv.memcpyDtoHAsync(d.small.addr + BigInt(SMALL_DATA_OFFSET), rootPtr, 32, d.stream);
      drv.eventRecord(d.evOp, d.stream);
      await waitEvent(drv, d.evOp);
      const root = d.small.view.slice(SMALL_DATA_OFFSET, SMALL_DATA_OFFSET + 32);
      this.#lastTiming = {
        device: d.facts.index,
        bytes: length,
        gpuMs: drv.eventElapsedMs(d.tStart, d.tEnd),
      };
      return leaves ? { root, leaves } : { root };
    });
  }

  async leafHashes(
    alloc: DeviceAllocation,
    leafSize: number,
    indices: readonly number[],
    length?: number,
  ): Promise<Uint8Array> {
    const r = this.#rec('leafHashes', alloc);
    assertLeafSize(leafSize);
    const len = length ?? alloc.bytes;
    this.#range(alloc, 0, len);
    const n = leafCount(len, leafSize);
    indices.forEach((i, j) => {
      if (!Number.isInteger(i) || i < 0 || i >= n)
        throw new InvalidInputError(`indices[${j}]`, `must be a leaf index 0..${n - 1}`);
    });
    const out = new Uint8Array(indices.length * 32);
    if (indices.length === 0) return out;
    const d = this.#dev(alloc.device);
    const shift = Math.log2(leafSize);
    return d.lock.run(async () => {
      const drv = this.#drv;
      const k = this.#kernels(d);
      const scratch = this.#scratch(d).leaves;
      const idxHost = d.small.addr + BigInt(SMALL_DATA_OFFSET);
      const idxView = new DataView(d.small.view.buffer, d.small.view.byteOffset + SMALL_DATA_OFFSET);
      const outOff = SMALL_DATA_OFFSET + INDEX_BATCH * 4;
      for (let b = 0; b < indices.length; b += INDEX_BATCH) {
        const batch = indices.slice(b, b + INDEX_BATCH);
        for (const [j, i] of batch.entries()) idxView.setUint32(4 * j, i, true);
        drv.setCurrent(d.ctx);
        drv.memcpyHtoDAsync(scratch, idxHost, batch.length * 4, d.stream);
        const devOut = scratch + BigInt(INDEX_BATCH * 4);
        this.#launchLeaves(d, k, r.ptr, len, shift, scratch, batch.length, devOut);
        drv.memcpyDtoHAsync(d.small.addr + BigInt(outOff), devOut, batch.length * 32, d.stream);
        drv.eventRecord(d.evOp, d.stream);
        await waitEvent(drv, d.evOp);
        out.set(d.small.view.subarray(outOff, outOff + batch.length * 32), b * 32);
      }
      return out;
    });
  }

  async memsetD8(alloc: DeviceAllocation, offset: number, value: number, length: number): Promise<void> {
    const r = this.#rec('memsetD8', alloc);
    this.#range(alloc, offset, length);
    if (!Number.isInteger(value) || value < 0 || value > 255)
      throw new InvalidInputError('value', 'must be a byte 0..255');
    const d = this.#dev(alloc.device);
    await d.lock.run(async () => {
      this.#drv.setCurrent(d.ctx);
      this.#drv.memsetD8Async(r.ptr + BigInt(offset), value, length, d.stream);
      await this.#sync(d);
    });
  }

  async corrupt(alloc: DeviceAllocation, offset: number, length = 1, mask = 0xff): Promise<void> {
    this.#rec('corrupt', alloc);
    this.#range(alloc, offset, length);
    if (!Number.isInteger(mask) || mask < 1 || mask > 255)
      throw new InvalidInputError('mask', 'must be 1..255');
    const bytes = await this.read(alloc, offset, length);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (bytes[i] as number) ^ mask;
    await this.write(alloc, offset, bytes);
  }

  lastDigestTiming(): CudaDigestTiming | undefined {
    return this.#lastTiming;
  }

  async hostSha256(alloc: DeviceAllocation, length = alloc.bytes): Promise<Uint8Array> {
    const r = this.#rec('hostSha256', alloc);
    this.#range(alloc, 0, length);
    const d = this.#dev(alloc.device);
    const h = createHash('sha256');
    const step = this.#pool(d).bufferBytes;
    for (let off = 0; off < length; off += step) {
      h.update(
        await this.#pool(d).download(this.#target(d), r.ptr + BigInt(off), Math.min(step, length - off)),
      );
    }
    return h.digest();
  }

  /** Loads the kernels and allocates the fixed digest scratch on every device (at open). */
  prepare(segmentLeaves: number): void {
    const drv = this.#drv;
    const tmpBytes = Math.ceil(Math.max(segmentLeaves, MAX_SEGMENTS) / REDUCE_SPAN) * 32;
    const leavesBytes = segmentLeaves * 32;
    const bytes = leavesBytes + 2 * tmpBytes + MAX_SEGMENTS * 32 + 256;
    if (this.#devs[0]) this.#pool(this.#devs[0]);
    for (const d of this.#devs) {
      try {
        this.#kernels(d);
      } catch {
        // reported with its reason by the first digest on this device
      }
      drv.setCurrent(d.ctx);
      const { res, ptr } = drv.memAlloc(bytes);
      if (res !== 0) {
        throw new BackendUnavailableError(
          'cuda',
          `device ${d.facts.index}: cannot allocate the ${bytes}-byte digest scratch: ${drv.errorName(res)}`,
        );
      }
      const at = (off: number) => ptr + BigInt(off);
      d.scratch = {
        ptr,
        bytes,
        segmentLeaves,
        maxSegments: MAX_SEGMENTS,
        leaves: ptr,
        tmpA: at(leavesBytes),
        tmpB: at(leavesBytes + tmpBytes),
        segRoots: at(leavesBytes + 2 * tmpBytes),
        final: at(leavesBytes + 2 * tmpBytes + MAX_SEGMENTS * 32),
      };
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const drv = this.#drv;
    for (const d of this.#devs) {
      await d.lock.run(async () => {
        await this.#sync(d);
      });
    }
    this.#closed = true;
    for (const d of this.#devs) {
      await d.staging?.close();
      d.staging = undefined;
    }
    for (const d of this.#devs) {
      drv.setCurrent(d.ctx);
      for (const [id, rec] of this.#allocs) {
        if (rec.alloc.device === d.facts.index) {
          drv.memFree(rec.ptr);
          this.#allocs.delete(id);
        }
      }
      if (d.scratch) drv.memFree(d.scratch.ptr);
      d.scratch = undefined;
      if (d.kernels) drv.moduleUnload(d.kernels.module);
      for (const ev of [...d.events, d.evOp, d.tStart, d.tEnd]) drv.eventDestroy(ev);
      drv.streamDestroy(d.stream);
      drv.hostFree(d.small.handle);
      drv.primaryCtxRelease(drv.device(d.facts.index));
    }
  }
}

/**
 * Opens the CUDA backend over every device of the host. Throws BackendUnavailableError with the
 * exact reason when libcuda cannot load, cuInit fails or there is no device. Device policy
 * (VRAM-only) is checked by `checkPolicy(device)` and again on every allocation.
 */
export async function openCudaBackend(opts: CudaBackendOptions = {}): Promise<CudaBackend> {
  const sb = opts.stagingBytes ?? DEFAULT_STAGING_BYTES;
  if (!Number.isSafeInteger(sb) || sb < 1024 * 1024 || sb % 4096 !== 0) {
    throw new InvalidInputError('stagingBytes', 'must be a multiple of 4096, at least 1 MiB');
  }
  const nb = opts.stagingBuffers ?? DEFAULT_STAGING_BUFFERS;
  if (!Number.isInteger(nb) || nb < 2 || nb > 8)
    throw new InvalidInputError('stagingBuffers', 'must be 2..8');
  const segmentLeaves = opts.segmentLeaves ?? DEFAULT_SEGMENT_LEAVES;
  if (
    !Number.isInteger(segmentLeaves) ||
    segmentLeaves < 2048 ||
    (segmentLeaves & (segmentLeaves - 1)) !== 0
  ) {
    throw new InvalidInputError('segmentLeaves', 'must be a power of two ≥ 2048');
  }
  const drv = loadDriver(opts.library);
  let count: number;
  try {
    count = drv.deviceCount();
  } catch (e) {
    throw new BackendUnavailableError('cuda', (e as Error).message);
  }
  if (count === 0) throw new BackendUnavailableError('cuda', 'no CUDA device (cuDeviceGetCount = 0)');
  const devs: DeviceState[] = [];
  for (let i = 0; i < count; i++) {
    const cu = drv.device(i);
    const facts: DeviceFacts = {
      index: i,
      name: drv.deviceName(cu),
      integrated: drv.attribute(cu, ATTR.INTEGRATED) !== 0,
      ccMajor: drv.attribute(cu, ATTR.COMPUTE_CAPABILITY_MAJOR),
      ccMinor: drv.attribute(cu, ATTR.COMPUTE_CAPABILITY_MINOR),
      totalBytes: drv.totalMem(cu),
    };
    const ctx = drv.primaryCtxRetain(cu);
    drv.setCurrent(ctx);
    const small = drv.hostAlloc(SMALL_BYTES);
    devs.push({
      facts,
      pciBusId: drv.pciBusId(cu),
      ctx,
      stream: drv.streamCreate(),
      events: Array.from({ length: Math.max(2, opts.stagingBuffers ?? DEFAULT_STAGING_BUFFERS) }, () =>
        drv.eventCreate(),
      ),
      evOp: drv.eventCreate(),
      tStart: drv.eventCreate(true),
      tEnd: drv.eventCreate(true),
      lock: new Mutex(),
      small,
      params: new ParamBlock(small),
    });
  }
  const staging = {
    bytes: opts.stagingBytes ?? DEFAULT_STAGING_BYTES,
    buffers: opts.stagingBuffers ?? DEFAULT_STAGING_BUFFERS,
  };
  const ptx =
    opts.ptx === undefined
      ? undefined
      : Buffer.concat([Buffer.from(opts.ptx as Uint8Array | string), Buffer.from([0])]);
  const backend = new CudaBackendImpl(drv, devs, staging, ptx);
  try {
    backend.prepare(segmentLeaves);
  } catch (e) {
    await backend.close();
    throw e;
  }
  return backend;
}
