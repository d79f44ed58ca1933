/**
 * koffi bindings to the CUDA driver API (libcuda.so.1), loaded lazily on first use: no compile step
 * at install, no CUDA toolkit at run time. Every CUresult other than CUDA_SUCCESS becomes a
 * {@link DeviceError} carrying the name from cuGetErrorName (e.g. `CUDA_ERROR_OUT_OF_MEMORY`).
 *
 * Conventions: device pointers (CUdeviceptr) and host addresses we computed are `bigint`s passed as
 * `uint64_t` (same register class as a pointer on x86-64/aarch64); opaque handles (CUcontext,
 * CUstream, CUevent, CUmodule, CUfunction) are koffi pointer objects. Nothing here leaves the backend.
 */
import { createRequire } from 'node:module';
import { BackendUnavailableError, DeviceError } from '../errors.js';

const require = createRequire(import.meta.url);

/** Opaque driver handle (koffi pointer object). */
export type Handle = unknown;

// biome-ignore lint/suspicious/noExplicitAny: koffi function objects are untyped
type Fn = (...args: any[]) => any;

export const CUDA_SUCCESS = 0;
export const CUDA_ERROR_OUT_OF_MEMORY = 2;
export const CUDA_ERROR_NOT_READY = 600;

/** CUdevice_attribute values used here (cuda.h). */
export const ATTR = {
  MULTIPROCESSOR_COUNT: 16,
  INTEGRATED: 18,
  UNIFIED_ADDRESSING: 41,
  COMPUTE_CAPABILITY_MAJOR: 75,
  COMPUTE_CAPABILITY_MINOR: 76,
} as const;

/** CUpointer_attribute values (cuda.h). */
export const POINTER_ATTR = { MEMORY_TYPE: 2, IS_MANAGED: 8, DEVICE_ORDINAL: 9 } as const;
/** CUmemorytype values (cuda.h). */
export const MEMORYTYPE = { HOST: 1, DEVICE: 2, ARRAY: 3, UNIFIED: 4 } as const;

const CU_MEMHOSTALLOC_PORTABLE = 0x01;
const CU_STREAM_NON_BLOCKING = 0x1;
const CU_EVENT_DISABLE_TIMING = 0x2;

/** The driver functions used by the backend, each checked (throws DeviceError on failure). */
export interface Driver {
  readonly koffi: typeof import('koffi');
  errorName(res: number): string;
  /** Throws DeviceError(op, name) unless res is CUDA_SUCCESS. */
  check(res: number, op: string): void;
  driverVersion(): string;
  deviceCount(): number;
  device(ordinal: number): number;
  deviceName(dev: number): string;
  pciBusId(dev: number): string;
  attribute(dev: number, attr: number): number;
  totalMem(dev: number): number;
  primaryCtxRetain(dev: number): Handle;
  primaryCtxRelease(dev: number): void;
  setCurrent(ctx: Handle): void;
  memGetInfo(): { freeBytes: number; totalBytes: number };
  /** Raw CUresult + pointer, so callers can map OOM to AllocationFailed. */
  memAlloc(bytes: number): { res: number; ptr: bigint };
  memFree(ptr: bigint): void;
  /** TEST ONLY (proves the policy check rejects it): cuMemAllocManaged. Never used by the backend. */
  memAllocManagedForTest(bytes: number): bigint;
  pointerAttribute(attr: number, ptr: bigint): number;
  hostAlloc(bytes: number): { handle: Handle; addr: bigint; view: Uint8Array };
  hostFree(handle: Handle): void;
  memcpyHtoDAsync(dst: bigint, srcAddr: bigint, bytes: number, stream: Handle): void;
  memcpyDtoHAsync(dstAddr: bigint, src: bigint, bytes: number, stream: Handle): void;
  memsetD8Async(dst: bigint, value: number, count: number, stream: Handle): void;
  streamCreate(): Handle;
  streamDestroy(stream: Handle): void;
  eventCreate(timing?: boolean): Handle;
  eventDestroy(ev: Handle): void;
  eventRecord(ev: Handle, stream: Handle): void;
  /** true when complete, false when CUDA_ERROR_NOT_READY; throws on any other result. */
  eventQuery(ev: Handle): boolean;
  eventElapsedMs(start: Handle, end: Handle): number;
  moduleLoadData(image: Uint8Array): Handle;
  moduleUnload(mod: Handle): void;
  moduleGetFunction(mod: Handle, name: string): Handle;
  launchKernel(
    fn: Handle,
    grid: number,
    block: number,
    sharedBytes: number,
    stream: Handle,
    paramsAddr: bigint,
  ): void;
  /** libc memcpy run on koffi's worker threads (parallel host copies into pinned memory). */
  memcpyHostAsync(dstAddr: bigint, src: Uint8Array, bytes: number): Promise<void>;
}

let cached: Driver | undefined;
let cachedFailure: BackendUnavailableError | undefined;

const big = (v: number | bigint): bigint => (typeof v === 'bigint' ? v : BigInt(v));
const num = (v: number | bigint): number => (typeof v === 'bigint' ? Number(v) : v);

/**
 * Loads koffi and libcuda, then runs cuInit(0). Throws BackendUnavailableError naming the exact
 * reason (koffi missing, library not loadable, cuInit result name). The result is cached.
 */
export function loadDriver(library = 'libcuda.so.1'): Driver {
  if (cached) return cached;
  if (cachedFailure && library === 'libcuda.so.1') throw cachedFailure;
  try {
    cached = bind(library);
    return cached;
  } catch (e) {
    const err =
      e instanceof BackendUnavailableError
        ? e
        : new BackendUnavailableError('cuda', `binding ${library} failed: ${(e as Error).message}`);
    if (library === 'libcuda.so.1') cachedFailure = err;
    throw err;
  }
}

function bind(library: string): Driver {
  let koffi: typeof import('koffi');
  try {
    koffi = require('koffi');
  } catch (err) {
    throw new BackendUnavailableError('cuda', `koffi could not be loaded: ${(err as Error).message}`);
  }
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(library);
  } catch (err) {
    throw new BackendUnavailableError('cuda', `${library} could not be loaded: ${(err as Error).message}`);
  }
  const f = (decl: string): Fn => lib.func(decl) as Fn;
  const cuGetErrorName = f('int cuGetErrorName(int error, _Out_ const char **pStr)');
  const cuInit = f('int cuInit(unsigned int flags)');
  const errorName = (res: number): string => {
    const out: [string | null] = [null];
    return cuGetErrorName(res, out) === 0 && out[0] ? out[0] : `CUresult ${res}`;
  };
  const rc = cuInit(0);
  if (rc !== 0) throw new BackendUnavailableError('cuda', `cuInit failed: ${errorName(rc)}`);

  const cuDriverGetVersion = f('int cuDriverGetVersion(_Out_ int *v)');
  const cuDeviceGetCount = f('int cuDeviceGetCount(_Out_ int *count)');
  const cuDeviceGet = f('int cuDeviceGet(_Out_ int *dev, int ordinal)');
  const cuDeviceGetName = f('int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)');
  const cuDeviceGetPCIBusId = f('int cuDeviceGetPCIBusId(_Out_ uint8_t *id, int len, int dev)');
  const cuDeviceGetAttribute = f('int cuDeviceGetAttribute(_Out_ int *v, int attrib, int dev)');
  const cuDeviceTotalMem = f('int cuDeviceTotalMem_v2(_Out_ uint64_t *bytes, int dev)');
  const cuDevicePrimaryCtxRetain = f('int cuDevicePrimaryCtxRetain(_Out_ void **ctx, int dev)');
  const cuDevicePrimaryCtxRelease = f('int cuDevicePrimaryCtxRelease_v2(int dev)');
  const cuCtxSetCurrent = f('int cuCtxSetCurrent(void *ctx)');
  const cuMemGetInfo = f('int cuMemGetInfo_v2(_Out_ uint64_t *free, _Out_ uint64_t *total)');
  const cuMemAlloc = f('int cuMemAlloc_v2(_Out_ uint64_t *dptr, uint64_t bytes)');
  const cuMemFree = f('int cuMemFree_v2(uint64_t dptr)');
  const cuPointerGetAttribute = f('int cuPointerGetAttribute(_Out_ uint32_t *data, int attr, uint64_t ptr)');
  const cuMemHostAlloc = f('int cuMemHostAlloc(_Out_ void **pp, uint64_t bytes, unsigned int flags)');
  const cuMemFreeHost = f('int cuMemFreeHost(void *p)');
  const cuMemcpyHtoDAsync = f(
    'int cuMemcpyHtoDAsync_v2(uint64_t dst, uint64_t src, uint64_t bytes, void *stream)',
  );
  const cuMemcpyDtoHAsync = f(
    'int cuMemcpyDtoHAsync_v2(uint64_t dst, uint64_t src, uint64_t bytes, void *stream)',
  );
  const cuMemsetD8Async = f('int cuMemsetD8Async(uint64_t dst, uint8_t v, uint64_t n, void *stream)');
  const cuStreamCreate = f('int cuStreamCreate(_Out_ void **stream, unsigned int flags)');
  const cuStreamDestroy = f('int cuStreamDestroy_v2(void *stream)');
  const cuEventCreate = f('int cuEventCreate(_Out_ void **ev, unsigned int flags)');
  const cuEventDestroy = f('int cuEventDestroy_v2(void *ev)');
  const cuEventRecord = f('int cuEventRecord(void *ev, void *stream)');
  const cuEventQuery = f('int cuEventQuery(void *ev)');
  const cuEventElapsedTime = f('int cuEventElapsedTime(_Out_ float *ms, void *start, void *end)');
  const cuModuleLoadData = f('int cuModuleLoadData(_Out_ void **mod, const void *image)');
  const cuModuleUnload = f('int cuModuleUnload(void *mod)');
  const cuModuleGetFunction = f('int cuModuleGetFunction(_Out_ void **fn, void *mod, const char *name)');
  const cuLaunchKernel = f(
    'int cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int shmem, void *stream, uint64_t params, void *extra)',
  );

  let memcpy: (Fn & { async: Fn }) | undefined;
  const libcMemcpy = (): Fn & { async: Fn } => {
    if (!memcpy) {
      const libc = koffi.load(process.platform === 'darwin' ? 'libc.dylib' : 'libc.so.6');
      memcpy = libc.func('void *memcpy(uint64_t dst, const void *src, uint64_t n)') as Fn & { async: Fn };
    }
    return memcpy;
  };

  const check = (res: number, op: string): void => {
    if (res !== CUDA_SUCCESS) throw new DeviceError(op, errorName(res));
  };
  const cstr = (buf: Uint8Array): string => {
    const end = buf.indexOf(0);
    return Buffer.from(buf.subarray(0, end < 0 ? buf.length : end)).toString('utf8');
  };
  const outPtr = (fn: Fn, op: string, ...args: unknown[]): Handle => {
    const out: [Handle] = [null];
    check(fn(out, ...args), op);
    return out[0];
  };

  return {
    koffi,
    errorName,
    check,
    driverVersion() {
      const v = [0];
      check(cuDriverGetVersion(v), 'cuDriverGetVersion');
      const n = v[0] as number;
      return `${Math.floor(n / 1000)}.${Math.floor((n % 1000) / 10)}`;
    },
    deviceCount() {
      const v = [0];
      check(cuDeviceGetCount(v), 'cuDeviceGetCount');
      return v[0] as number;
    },
    device(ordinal) {
      const v = [0];
      check(cuDeviceGet(v, ordinal), 'cuDeviceGet');
      return v[0] as number;
    },
    deviceName(dev) {
      const b = new Uint8Array(256);
      check(cuDeviceGetName(b, b.length, dev), 'cuDeviceGetName');
      return cstr(b);
    },
    pciBusId(dev) {
      const b = new Uint8Array(64);
      check(cuDeviceGetPCIBusId(b, b.length, dev), 'cuDeviceGetPCIBusId');
      return cstr(b);
    },
    attribute(dev, attr) {
      const v = [0];
      check(cuDeviceGetAttribute(v, attr, dev), 'cuDeviceGetAttribute');
      return v[0] as number;
    },
    totalMem(dev) {
      const v: [number | bigint] = [0];
      check(cuDeviceTotalMem(v, dev), 'cuDeviceTotalMem');
      return num(v[0]);
    },
    primaryCtxRetain(dev) {
      return outPtr(cuDevicePrimaryCtxRetain, 'cuDevicePrimaryCtxRetain', dev);
    },
    primaryCtxRelease(dev) {
      check(cuDevicePrimaryCtxRelease(dev), 'cuDevicePrimaryCtxRelease');
    },
    setCurrent(ctx) {
      check(cuCtxSetCurrent(ctx), 'cuCtxSetCurrent');
    },
    memGetInfo() {
      const fr: [number | bigint] = [0];
      const to: [number | bigint] = [0];
      check(cuMemGetInfo(fr, to), 'cuMemGetInfo');
      return { freeBytes: num(fr[0]), totalBytes: num(to[0]) };
    },
    memAlloc(bytes) {
      const v: [number | bigint] = [0];
      const res = cuMemAlloc(v, bytes) as number;
      return { res, ptr: big(v[0]) };
    },
    memFree(ptr) {
      check(cuMemFree(ptr), 'cuMemFree');
    },
    memAllocManagedForTest(bytes) {
      const fn = f('int cuMemAllocManaged(_Out_ uint64_t *dptr, uint64_t bytes, unsigned int flags)');
      const v: [number | bigint] = [0];
      check(fn(v, bytes, 1 /* CU_MEM_ATTACH_GLOBAL */), 'cuMemAllocManaged');
      return big(v[0]);
    },
    pointerAttribute(attr, ptr) {
      const v = [0];
      check(cuPointerGetAttribute(v, attr, ptr), 'cuPointerGetAttribute');
      return v[0] as number;
    },
    hostAlloc(bytes) {
      const handle = outPtr(cuMemHostAlloc, 'cuMemHostAlloc', bytes, CU_MEMHOSTALLOC_PORTABLE);
      return { handle, addr: koffi.address(handle), view: new Uint8Array(koffi.view(handle, bytes)) };
    },
    hostFree(handle) {
      check(cuMemFreeHost(handle), 'cuMemFreeHost');
    },
    memcpyHtoDAsync(dst, srcAddr, bytes, stream) {
      check(cuMemcpyHtoDAsync(dst, srcAddr, bytes, stream), 'cuMemcpyHtoDAsync');
    },
    memcpyDtoHAsync(dstAddr, src, bytes, stream) {
      check(cuMemcpyDtoHAsync(dstAddr, src, bytes, stream), 'cuMemcpyDtoHAsync');
    },
    memsetD8Async(dst, value, count, stream) {
      check(cuMemsetD8Async(dst, value, count, stream), 'cuMemsetD8Async');
    },
    streamCreate() {
      return outPtr(cuStreamCreate, 'cuStreamCreate', CU_STREAM_NON_BLOCKING);
    },
    streamDestroy(stream) {
      check(cuStreamDestroy(stream), 'cuStreamDestroy');
    },
    eventCreate(timing = false) {
      return outPtr(cuEventCreate, 'cuEventCreate', timing ? 0 : CU_EVENT_DISABLE_TIMING);
    },
    eventDestroy(ev) {
      check(cuEventDestroy(ev), 'cuEventDestroy');
    },
    eventRecord(ev, stream) {
      check(cuEventRecord(ev, stream), 'cuEventRecord');
    },
    eventQuery(ev) {
      const r = cuEventQuery(ev) as number;
      if (r === CUDA_SUCCESS) return true;
      if (r === CUDA_ERROR_NOT_READY) return false;
      throw new DeviceError('cuEventQuery', errorName(r));
    },
    eventElapsedMs(start, end) {
      const v = [0];
      check(cuEventElapsedTime(v, start, end), 'cuEventElapsedTime');
      return v[0] as number;
    },
    moduleLoadData(image) {
      return outPtr(cuModuleLoadData, 'cuModuleLoadData', image);
    },
    moduleUnload(mod) {
      check(cuModuleUnload(mod), 'cuModuleUnload');
    },
    moduleGetFunction(mod, name) {
      return outPtr(cuModuleGetFunction, 'cuModuleGetFunction', mod, name);
    },
    launchKernel(fn, grid, block, sharedBytes, stream, paramsAddr) {
      check(
        cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, sharedBytes, stream, paramsAddr, null),
        'cuLaunchKernel',
      );
    },
    memcpyHostAsync(dstAddr, src, bytes) {
      const fn = libcMemcpy();
      return new Promise((resolve, reject) => {
        fn.async(dstAddr, src, bytes, (err: unknown) => (err ? reject(err) : resolve()));
      });
    },
  };
}
