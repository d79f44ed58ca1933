/**
 * Seal keys and seals (FORMAT.md §Seal).
 *
 *   key  = HKDF-SHA256(IKM = UTF-8(worker token), salt = UTF-8("vramseal-seal-salt-v1:" || worker_id),
 *                      info = UTF-8("vramseal-seal-v1"), L = 32)                       (RFC 5869 §2)
 *   seal = HMAC-SHA256(key, canonical(fields))                                          (RFC 2104)
 *
 * The salt binds the key to the worker id, so one token shared by two workers still yields two keys
 * (a handle minted by one worker never verifies on another). canonical() is a length-prefixed binary
 * encoding (no JSON, no ambiguity): see {@link encodeSealFields}. The key lives in a KeyObject that
 * never prints its bytes; neither the token nor the key is ever placed in an error or an event.
 */
import { createHmac, createSecretKey, hkdfSync, type KeyObject, timingSafeEqual } from 'node:crypto';
import type { BackendKind } from './backend.js';

export const SEAL_SCHEME = 'vramseal-seal-v1';
export const SEAL_KEY_INFO = 'vramseal-seal-v1';
export const SEAL_SALT_PREFIX = 'vramseal-seal-salt-v1:';

/** The public, sealed fields of a shard handle (snake_case, as in the audit events). */
export interface SealFields {
  shard_id: string;
  digest: string;
  /** RFC 3339 UTC with milliseconds, e.g. 2026-11-27T04:00:00.000Z. */
  sealed_at: string;
  gpu_device: number;
  vram_bytes: number;
  model_ref?: string | undefined;
  shard_index?: number | undefined;
  total_shards?: number | undefined;
  backend: BackendKind;
}

/** Derives the 32-byte seal key (RFC 5869 HKDF-SHA256). The caller validates the token first. */
export function deriveSealKey(token: string, workerId: string): KeyObject {
  const raw = new Uint8Array(
    hkdfSync(
      'sha256',
      Buffer.from(token, 'utf8'),
      Buffer.from(SEAL_SALT_PREFIX + workerId, 'utf8'),
      Buffer.from(SEAL_KEY_INFO, 'utf8'),
      32,
    ),
  );
  const key = createSecretKey(raw);
  raw.fill(0);
  return key;
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function u64(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError('seal field must be a non-negative safe integer');
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

const ABSENT = Buffer.of(0);
const PRESENT = Buffer.of(1);

/**
 * Canonical encoding of the sealed fields, in this fixed order:
 *
 *   str(scheme) str(shard_id) str(digest) str(sealed_at) u64(gpu_device) u64(vram_bytes)
 *   opt(str(model_ref)) opt(u64(shard_index)) opt(u64(total_shards)) str(backend)
 *
 *   str(s) = u32be(byte length of UTF-8(s)) || UTF-8(s);  u64(n) = 8-byte big-endian unsigned
 *   opt(x) = 0x00 when absent, 0x01 || x when present;     scheme = "vramseal-seal-v1"
 */
export function encodeSealFields(f: SealFields): Buffer {
  return Buffer.concat([
    str(SEAL_SCHEME),
    str(f.shard_id),
    str(f.digest),
    str(f.sealed_at),
    u64(f.gpu_device),
    u64(f.vram_bytes),
    ...(f.model_ref === undefined ? [ABSENT] : [PRESENT, str(f.model_ref)]),
    ...(f.shard_index === undefined ? [ABSENT] : [PRESENT, u64(f.shard_index)]),
    ...(f.total_shards === undefined ? [ABSENT] : [PRESENT, u64(f.total_shards)]),
    str(f.backend),
  ]);
}

/** HMAC-SHA256 seal over {@link encodeSealFields}. */
export function computeSeal(key: KeyObject, f: SealFields): Buffer {
  return createHmac('sha256', key).update(encodeSealFields(f)).digest();
}

/** Timing-safe check of `seal` against the fields; false (never throws) on any malformed input. */
export function sealMatches(key: KeyObject, f: SealFields, seal: Uint8Array | undefined): boolean {
  if (seal?.length !== 32) return false;
  let expected: Buffer;
  try {
    expected = computeSeal(key, f);
  } catch {
    return false;
  }
  return timingSafeEqual(expected, seal);
}
