/**
 * Typed errors of @vramseal/residency. Each has a string `code`, and says whether retrying can help
 * (`retriable`) or the manager is now stopped (`fatal`). Messages never contain tokens, keys or
 * device pointers.
 */

export type ResidencyErrorCode =
  | 'INVALID_INPUT'
  | 'INSUFFICIENT_VRAM'
  | 'ALLOCATION_FAILED'
  | 'SEAL_VERIFICATION_FAILED'
  | 'NOT_SEALED'
  | 'INTEGRITY_VIOLATION'
  | 'POLICY_VIOLATION'
  | 'STOPPED'
  | 'AUDIT_UNAVAILABLE'
  | 'BACKEND_UNAVAILABLE'
  | 'DEVICE_ERROR';

export class ResidencyError extends Error {
  readonly code: ResidencyErrorCode;
  readonly retriable: boolean;
  readonly fatal: boolean;
  constructor(
    code: ResidencyErrorCode,
    message: string,
    opts: { retriable?: boolean; fatal?: boolean; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = opts.retriable ?? false;
    this.fatal = opts.fatal ?? false;
  }
}

/** Bad argument: names the field and the rule. */
export class InvalidInputError extends ResidencyError {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super('INVALID_INPUT', `invalid ${field}: ${rule}`);
  }
}

/** Admission refused: not enough free device memory (after the reserve). */
export class InsufficientVramError extends ResidencyError {
  constructor(
    readonly device: number,
    readonly needed: number,
    readonly available: number,
    detail = '',
  ) {
    super(
      'INSUFFICIENT_VRAM',
      `insufficient VRAM on device ${device}: need ${needed} bytes, ${available} available${detail ? ` (${detail})` : ''}; release shards, lower reserveBytes or use another device`,
      { retriable: true },
    );
  }
}

/** The device refused an allocation (e.g. CUDA_ERROR_OUT_OF_MEMORY). Retriable. */
export class AllocationFailedError extends ResidencyError {
  constructor(
    readonly device: number,
    readonly requested: number,
    reason: string,
    cause?: unknown,
  ) {
    super('ALLOCATION_FAILED', `allocation of ${requested} bytes on device ${device} failed: ${reason}`, {
      retriable: true,
      cause,
    });
  }
}

/** A sealed shard failed verification; the manager is stopped. */
export class SealVerificationFailedError extends ResidencyError {
  constructor(
    message: string,
    readonly shardId: string,
    readonly corruptRanges: ReadonlyArray<{ offset: number; length: number }> = [],
  ) {
    super('SEAL_VERIFICATION_FAILED', message, { fatal: true });
  }
}

/** The shard is unknown to this manager or already released. */
export class NotSealedError extends ResidencyError {
  constructor(readonly shardId: string) {
    super(
      'NOT_SEALED',
      `shard ${JSON.stringify(shardId)} is not sealed by this manager (unknown or released)`,
      {
        fatal: true,
      },
    );
  }
}

/** The bytes on the device differ from the expected digest/SHA-256 given at seal time. Nothing was sealed. */
export class IntegrityViolationError extends ResidencyError {
  constructor(
    message: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super('INTEGRITY_VIOLATION', message);
  }
}

/** The VRAM-only policy refused a device or an allocation. */
export class PolicyViolationError extends ResidencyError {
  constructor(
    readonly policy: string,
    readonly violation: string,
    readonly details: string,
  ) {
    super('POLICY_VIOLATION', `policy ${policy} violated: ${violation} (${details})`);
  }
}

/** The manager stopped after a failed verification; reopen it to continue. */
export class StoppedError extends ResidencyError {
  constructor(reason: string) {
    super('STOPPED', `the VRAM manager is stopped: ${reason}; reopen it to continue`, { fatal: true });
  }
}

/** failClosed is set and the audit trail cannot record. */
export class AuditUnavailableError extends ResidencyError {
  constructor(reason: string) {
    super('AUDIT_UNAVAILABLE', `audit trail unavailable (failClosed): ${reason}`, { retriable: true });
  }
}

/** A requested backend cannot be used here (e.g. no libcuda.so.1, cuInit failed, no device). */
export class BackendUnavailableError extends ResidencyError {
  constructor(
    readonly backend: string,
    reason: string,
  ) {
    super('BACKEND_UNAVAILABLE', `backend ${backend} unavailable: ${reason}`);
  }
}

/** A device/driver call failed (CUDA: carries the CUresult name, e.g. CUDA_ERROR_ILLEGAL_ADDRESS). */
export class DeviceError extends ResidencyError {
  constructor(
    readonly op: string,
    readonly resultName: string,
    message?: string,
  ) {
    super('DEVICE_ERROR', message ?? `${op} failed: ${resultName}`);
  }
}
