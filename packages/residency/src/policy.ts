/**
 * Residency policy: the limits a VramManager enforces before it touches a device, and the input
 * rules for ids and labels. Pure functions, no I/O; every refusal names the field and the rule.
 */
import { InvalidInputError } from './errors.js';
import { assertLeafSize, DEFAULT_LEAF_SIZE } from './merkle.js';

export const GiB = 1024 ** 3;
/** Default cap on one shard: 100 GiB. */
export const DEFAULT_MAX_MODEL_BYTES = 100 * GiB;
/** Default bytes of device memory the manager never hands out (headroom for the inference runtime). */
export const DEFAULT_RESERVE_BYTES = 0;

/** Allowed shard ids: `[A-Za-z0-9_-]{1,256}` (no dots, slashes, NUL: safe as a file name and a label). */
export const SHARD_ID_PATTERN = /^[A-Za-z0-9_-]{1,256}$/;
/** Allowed worker ids: `[A-Za-z0-9._:-]{1,256}` (host names and instance ids, but never a path separator). */
export const WORKER_ID_PATTERN = /^[A-Za-z0-9._:-]{1,256}$/;
/** Minimum worker token length (characters). The token is the seal-key input keying material. */
export const MIN_TOKEN_LENGTH = 16;
export const MAX_TOKEN_LENGTH = 4096;

// C0/C1 controls (tab and newline included: labels are single-line identifiers), bidi overrides
// (U+202A–202E, U+2066–2069), BOM — the audit validator's identifier rule, applied here first so a
// bad label is refused before any device work.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find control characters
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\ufeff]/;

export interface ResidencyPolicy {
  readonly maxModelBytes: number;
  readonly reserveBytes: number;
  /** Most bytes this manager may hold per device (a quota below the device size); undefined = none. */
  readonly quotaBytes: number | undefined;
  readonly leafSize: number;
  readonly failClosed: boolean;
}

function nonNegativeSafeInt(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new InvalidInputError(field, 'must be a non-negative safe integer (bytes)');
  }
  return v;
}

/** Resolves and validates the policy part of `VramManager.open` options. */
export function resolvePolicy(opts: {
  maxModelBytes?: number | undefined;
  reserveBytes?: number | undefined;
  quotaBytes?: number | undefined;
  leafSize?: number | undefined;
  failClosed?: boolean | undefined;
}): ResidencyPolicy {
  const maxModelBytes = nonNegativeSafeInt('maxModelBytes', opts.maxModelBytes ?? DEFAULT_MAX_MODEL_BYTES);
  if (maxModelBytes === 0) throw new InvalidInputError('maxModelBytes', 'must be > 0');
  const reserveBytes = nonNegativeSafeInt('reserveBytes', opts.reserveBytes ?? DEFAULT_RESERVE_BYTES);
  const leafSize = opts.leafSize ?? DEFAULT_LEAF_SIZE;
  try {
    assertLeafSize(leafSize);
  } catch (e) {
    throw new InvalidInputError('leafSize', (e as Error).message.replace(/^leafSize /, ''));
  }
  if (opts.failClosed !== undefined && typeof opts.failClosed !== 'boolean') {
    throw new InvalidInputError('failClosed', 'must be a boolean');
  }
  const quotaBytes =
    opts.quotaBytes === undefined ? undefined : nonNegativeSafeInt('quotaBytes', opts.quotaBytes);
  return Object.freeze({
    maxModelBytes,
    reserveBytes,
    quotaBytes,
    leafSize,
    failClosed: opts.failClosed ?? false,
  });
}

export function checkShardId(v: unknown): string {
  if (typeof v !== 'string' || !SHARD_ID_PATTERN.test(v)) {
    throw new InvalidInputError('shardId', 'must match [A-Za-z0-9_-]{1,256}');
  }
  return v;
}

export function checkWorkerId(v: unknown): string {
  if (typeof v !== 'string' || !WORKER_ID_PATTERN.test(v)) {
    throw new InvalidInputError('workerId', 'must match [A-Za-z0-9._:-]{1,256}');
  }
  return v;
}

/** A free-text label (e.g. model_ref): 1..256 characters, no control/bidi/BOM characters. */
export function checkLabel(field: string, v: unknown, max = 256): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw new InvalidInputError(field, `must be a string of 1..${max} characters`);
  }
  if (UNSAFE_TEXT.test(v)) {
    throw new InvalidInputError(field, 'must not contain control, bidi-override or BOM characters');
  }
  return v;
}

export function checkIndex(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new InvalidInputError(field, 'must be a non-negative integer');
  }
  return v;
}

/** Validates a worker token's shape without ever echoing it. */
export function checkToken(v: unknown, field = 'workerToken'): string {
  if (typeof v !== 'string') throw new InvalidInputError(field, 'must be a string');
  if (v.length < MIN_TOKEN_LENGTH || v.length > MAX_TOKEN_LENGTH) {
    throw new InvalidInputError(field, `must be ${MIN_TOKEN_LENGTH}..${MAX_TOKEN_LENGTH} characters long`);
  }
  if (v.trim() !== v || UNSAFE_TEXT.test(v)) {
    throw new InvalidInputError(field, 'must not contain surrounding whitespace or control characters');
  }
  return v;
}

/** Size admission by policy (not by capacity): 0 < size ≤ maxModelBytes. Returns a refusal or null. */
export function sizeRefusal(
  size: number,
  policy: ResidencyPolicy,
): { kind: 'invalid' | 'policy'; rule: string } | null {
  if (!Number.isSafeInteger(size) || size <= 0)
    return { kind: 'invalid', rule: 'shard size must be > 0 bytes' };
  if (size > policy.maxModelBytes) {
    return { kind: 'policy', rule: `shard size ${size} exceeds maxModelBytes ${policy.maxModelBytes}` };
  }
  return null;
}
