/**
 * Backend selection: `openBackend('auto' | 'cuda' | 'simulated')`.
 *
 * - `simulated`: host memory (src/simulated/).
 * - `cuda`: dynamic `import('./cuda/index.js')` → `openCudaBackend(opts.cuda)`; any failure is a
 *   `BackendUnavailableError` with the exact reason (a `PolicyViolationError` passes through: the
 *   device exists but the VRAM-only policy refuses it).
 * - `auto`: CUDA when it opens, else `simulated`; `onFallback` receives the reason CUDA was not used.
 *   A policy violation is not a reason to fall back silently: it is thrown.
 *
 * With no kind, `VRAMSEAL_BACKEND` (auto | cuda | simulated) decides, default `auto`.
 */
import type { DeviceBackend } from './backend.js';
import { BackendUnavailableError, InvalidInputError, PolicyViolationError } from './errors.js';
import { SimulatedBackend, type SimulatedBackendOptions } from './simulated/index.js';

export type BackendChoice = 'auto' | 'cuda' | 'simulated';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'cuda', 'simulated'];

export interface OpenBackendOptions {
  simulated?: SimulatedBackendOptions;
  /** Passed to `openCudaBackend` unchanged. */
  cuda?: unknown;
  /** Called with the reason when `auto` falls back to `simulated`. */
  onFallback?: (reason: string) => void;
  env?: Record<string, string | undefined>;
}

// Kept in a variable so the type checker does not require the CUDA module (built by another issue)
// to exist; at run time tsx maps it to cuda/index.ts, and dist has cuda/index.js.
const CUDA_MODULE = './cuda/index.js';

type CudaModule = { openCudaBackend(opts?: unknown): Promise<DeviceBackend> };

async function openCuda(opts: unknown): Promise<DeviceBackend> {
  let mod: CudaModule;
  try {
    mod = (await import(CUDA_MODULE)) as CudaModule;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const msg = (e as Error).message ?? String(e);
    const self = code === 'ERR_MODULE_NOT_FOUND' && /cuda[\\/]index/.test(msg);
    throw new BackendUnavailableError(
      'cuda',
      self ? 'the CUDA backend module is not present in this build' : `cannot load the CUDA backend: ${msg}`,
    );
  }
  if (typeof mod.openCudaBackend !== 'function') {
    throw new BackendUnavailableError('cuda', 'the CUDA backend module does not export openCudaBackend');
  }
  try {
    return await mod.openCudaBackend(opts);
  } catch (e) {
    if (e instanceof BackendUnavailableError || e instanceof PolicyViolationError) throw e;
    throw new BackendUnavailableError('cuda', (e as Error).message ?? String(e));
  }
}

/** Opens a device backend (see module doc). */
export async function openBackend(
  kind?: BackendChoice,
  opts: OpenBackendOptions = {},
): Promise<DeviceBackend> {
  const env = opts.env ?? process.env;
  const choice = kind ?? ((env.VRAMSEAL_BACKEND || 'auto') as BackendChoice);
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new InvalidInputError(
      kind === undefined ? 'VRAMSEAL_BACKEND' : 'backend',
      'must be auto, cuda or simulated',
    );
  }
  const simulated = () => new SimulatedBackend({ env, ...opts.simulated });
  if (choice === 'simulated') return simulated();
  if (choice === 'cuda') return openCuda(opts.cuda);
  try {
    return await openCuda(opts.cuda);
  } catch (e) {
    if (!(e instanceof BackendUnavailableError)) throw e;
    opts.onFallback?.(e.message);
    return simulated();
  }
}
