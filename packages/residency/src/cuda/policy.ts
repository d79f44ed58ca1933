/**
 * The VRAM-only policy (issue 5): shards live in discrete GPU memory and nowhere else.
 *  - device: not integrated (no UMA), compute capability ≥ 6.0, ≥ 1 GiB of memory;
 *  - allocation: CU_POINTER_ATTRIBUTE_MEMORY_TYPE is CU_MEMORYTYPE_DEVICE and IS_MANAGED is 0
 *    (cuMemAlloc only: never managed or host-mapped memory).
 * Violations throw {@link PolicyViolationError}; the VramManager turns them into
 * `security.policy_violation` and refuses to start or seal.
 */
import { PolicyViolationError } from '../errors.js';
import { type Driver, MEMORYTYPE, POINTER_ATTR } from './driver.js';

export const VRAM_ONLY_POLICY = 'vram-only';
export const MIN_COMPUTE_CAPABILITY = 6.0;
export const MIN_DEVICE_BYTES = 1024 ** 3;

export interface DeviceFacts {
  index: number;
  name: string;
  integrated: boolean;
  ccMajor: number;
  ccMinor: number;
  totalBytes: number;
}

/** Throws PolicyViolationError when the device may not hold sealed shards. */
export function checkDevicePolicy(d: DeviceFacts): void {
  const where = `device ${d.index} (${d.name})`;
  if (d.integrated) {
    throw new PolicyViolationError(
      VRAM_ONLY_POLICY,
      'integrated GPU',
      `${where} shares host memory (UMA); only discrete VRAM is allowed`,
    );
  }
  if (d.ccMajor + d.ccMinor / 10 < MIN_COMPUTE_CAPABILITY) {
    throw new PolicyViolationError(
      VRAM_ONLY_POLICY,
      'compute capability too low',
      `${where} has compute capability ${d.ccMajor}.${d.ccMinor}, at least ${MIN_COMPUTE_CAPABILITY.toFixed(1)} is required`,
    );
  }
  if (d.totalBytes < MIN_DEVICE_BYTES) {
    throw new PolicyViolationError(
      VRAM_ONLY_POLICY,
      'device memory too small',
      `${where} has ${d.totalBytes} bytes, at least ${MIN_DEVICE_BYTES} are required`,
    );
  }
}

/** Checks a fresh allocation's pointer attributes (context of its device current). */
export function checkAllocationPolicy(drv: Driver, device: number, ptr: bigint): void {
  const type = drv.pointerAttribute(POINTER_ATTR.MEMORY_TYPE, ptr);
  if (type !== MEMORYTYPE.DEVICE) {
    throw new PolicyViolationError(
      VRAM_ONLY_POLICY,
      'allocation is not device memory',
      `CU_POINTER_ATTRIBUTE_MEMORY_TYPE is ${type}, expected ${MEMORYTYPE.DEVICE} (CU_MEMORYTYPE_DEVICE) on device ${device}`,
    );
  }
  const managed = drv.pointerAttribute(POINTER_ATTR.IS_MANAGED, ptr);
  if (managed !== 0) {
    throw new PolicyViolationError(
      VRAM_ONLY_POLICY,
      'allocation is managed memory',
      `CU_POINTER_ATTRIBUTE_IS_MANAGED is ${managed} on device ${device}`,
    );
  }
  const ordinal = drv.pointerAttribute(POINTER_ATTR.DEVICE_ORDINAL, ptr);
  if (ordinal !== device) {
    throw new PolicyViolationError(
      VRAM_ONLY_POLICY,
      'allocation on the wrong device',
      `CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL is ${ordinal}, expected ${device}`,
    );
  }
}
