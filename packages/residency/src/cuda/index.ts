/**
 * The `cuda` device backend: CUDA driver API through koffi (libcuda.so.1, loaded lazily — no
 * compile step at install, no CUDA toolkit at run time).
 *
 * `openCudaBackend()` throws {@link BackendUnavailableError} with the exact reason when libcuda
 * cannot be loaded, `cuInit` fails or no device exists.
 */
import type { DeviceBackend } from '../backend.js';
import { BackendUnavailableError } from '../errors.js';
import { loadDriver } from './driver.js';

export interface CudaBackendOptions {
  /** Path or soname of the driver library (default `libcuda.so.1`). */
  library?: string;
}

/** The CUDA backend: a DeviceBackend of kind `cuda`. */
export type CudaBackend = DeviceBackend & { readonly kind: 'cuda' };

/** Opens the CUDA backend (minimal version: probes the driver; full backend lands next). */
export async function openCudaBackend(opts: CudaBackendOptions = {}): Promise<CudaBackend> {
  const drv = loadDriver(opts.library);
  const count = drv.deviceCount();
  if (count === 0) throw new BackendUnavailableError('cuda', 'no CUDA device (cuDeviceGetCount = 0)');
  throw new BackendUnavailableError('cuda', 'the CUDA backend is not complete yet');
}
