/**
 * koffi bindings to the CUDA driver API (libcuda.so.1), loaded lazily on first use.
 * Every CUresult other than CUDA_SUCCESS becomes a {@link DeviceError} carrying the name from
 * cuGetErrorName (e.g. CUDA_ERROR_OUT_OF_MEMORY).
 */
import { createRequire } from 'node:module';
import { BackendUnavailableError, DeviceError } from '../errors.js';

const require = createRequire(import.meta.url);

// biome-ignore lint/suspicious/noExplicitAny: koffi function objects are untyped
type Fn = (...args: any[]) => any;

export interface Driver {
  deviceCount(): number;
}

let cached: Driver | undefined;

/** Loads libcuda and runs cuInit(0); throws BackendUnavailableError naming the reason. */
export function loadDriver(library = 'libcuda.so.1'): Driver {
  if (cached) return cached;
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
  const cuInit: Fn = lib.func('int cuInit(unsigned int flags)');
  const cuGetErrorName: Fn = lib.func('int cuGetErrorName(int error, _Out_ const char **pStr)');
  const cuDeviceGetCount: Fn = lib.func('int cuDeviceGetCount(_Out_ int *count)');
  const name = (res: number): string => {
    const out: [string | null] = [null];
    return cuGetErrorName(res, out) === 0 && out[0] ? out[0] : `CUresult ${res}`;
  };
  const rc = cuInit(0);
  if (rc !== 0) throw new BackendUnavailableError('cuda', `cuInit failed: ${name(rc)}`);
  cached = {
    deviceCount() {
      const out = [0];
      const r = cuDeviceGetCount(out);
      if (r !== 0) throw new DeviceError('cuDeviceGetCount', name(r));
      return out[0] as number;
    },
  };
  return cached;
}
