/**
 * The device-backend interface. Every backend (`simulated`, `cuda`) implements it; the
 * VramManager only talks to this. Device pointers never leave a backend: callers hold an
 * opaque {@link DeviceAllocation} whose `id` means nothing outside the backend that issued it.
 */

export type BackendKind = 'cuda' | 'simulated';

export interface DeviceInfo {
  index: number;
  name: string;
  kind: BackendKind;
  totalBytes: number;
  freeBytes: number;
  /** CUDA only. */
  pciBusId?: string;
  /** CUDA only, e.g. "9.0". */
  computeCapability?: string;
  /** CUDA only: true for integrated (UMA) GPUs, which the VRAM-only policy refuses. */
  integrated?: boolean;
  /** CUDA only, e.g. "13.0". */
  driverVersion?: string;
}

/** Opaque allocation handle. */
export interface DeviceAllocation {
  readonly id: number;
  readonly device: number;
  readonly bytes: number;
}

export interface MerkleRequest {
  /** Leaf (chunk) size in bytes: a power of two, see FORMAT.md. */
  leafSize: number;
  /** Bytes of the allocation to digest, from offset 0. Defaults to `alloc.bytes`. */
  length?: number;
  /** Also return every leaf hash (32 bytes each, in order) for localization. */
  wantLeaves?: boolean;
}

export interface MerkleResult {
  /** 32-byte Merkle tree head. */
  root: Uint8Array;
  /** Present when `wantLeaves`: leafCount × 32 bytes. */
  leaves?: Uint8Array;
}

export type WriteProgress = (bytesDone: number, bytesTotal: number) => void;

export interface DeviceBackend {
  readonly kind: BackendKind;
  /** Discovers devices (fresh free-memory figures each call). */
  devices(): Promise<DeviceInfo[]>;
  /** Device-wide memory figures (for CUDA: other processes' use included). */
  memoryInfo(device: number): Promise<{ totalBytes: number; freeBytes: number }>;
  /** Allocates `bytes` of device memory; rejects with an AllocationFailed-coded error when it cannot. */
  allocate(device: number, bytes: number): Promise<DeviceAllocation>;
  free(alloc: DeviceAllocation): Promise<void>;
  /** Host → device copy of `data` at `offset`. */
  write(alloc: DeviceAllocation, offset: number, data: Uint8Array): Promise<void>;
  /**
   * Host → device copy of a stream of chunks, written back to back from offset 0. Backends overlap
   * reading the next chunk with copying the previous one (CUDA: double-buffered pinned staging).
   * Resolves with the number of bytes written. Must iterate `source` to its end (never `break` at
   * `alloc.bytes`): the manager's sources check their length and finish hashing (expectedSha256)
   * only when iteration completes.
   */
  writeFrom(
    alloc: DeviceAllocation,
    source: AsyncIterable<Uint8Array>,
    onProgress?: WriteProgress,
  ): Promise<number>;
  /**
   * Optional: copies a whole regular file into the allocation from offset 0 without passing through
   * JS buffers (CUDA: read straight into pinned staging). Resolves with the bytes written. The
   * manager uses it for file sources when no host-side hash (expectedSha256) is requested.
   */
  writeFromFile?(alloc: DeviceAllocation, path: string, onProgress?: WriteProgress): Promise<number>;
  /** Device → host copy, for diagnostics only (never used to verify). */
  read(alloc: DeviceAllocation, offset: number, length: number): Promise<Uint8Array>;
  /** Merkle digest (FORMAT.md) computed where the bytes live. */
  merkle(alloc: DeviceAllocation, req: MerkleRequest): Promise<MerkleResult>;
  /** Hashes of selected leaves only (for spot checks), 32 bytes each in the order given. */
  leafHashes(
    alloc: DeviceAllocation,
    leafSize: number,
    indices: readonly number[],
    length?: number,
  ): Promise<Uint8Array>;
  /**
   * Optional VRAM-only policy check of one device (CUDA: not integrated, compute capability ≥ 6.0,
   * ≥ 1 GiB). Rejects with a `PolicyViolationError` (../errors.js). The VramManager calls it for
   * every device at open and emits `security.policy_violation` before refusing to start; a backend
   * without it has no device policy (simulated). Per-allocation checks (pointer attributes) belong in
   * `allocate`, which should free the memory and reject with `PolicyViolationError` — the manager
   * turns that into `security.policy_violation` + `vram.allocation_failed` too.
   * (Added by the residency helper, issue 4; optional so existing backends stay compatible.)
   */
  checkPolicy?(device: number): Promise<void>;
  /** TEST ONLY: XORs `mask` (default 0xff) into `length` bytes at `offset`, in place on the device. */
  corrupt(alloc: DeviceAllocation, offset: number, length?: number, mask?: number): Promise<void>;
  /** Releases everything the backend holds. */
  close(): Promise<void>;
}
