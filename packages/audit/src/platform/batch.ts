/**
 * A signed batch: the unit a provider ships to the collector (`POST /v1/batches`).
 *
 * Wire form (JSON):
 *
 *   { "v": 1, "provider_id", "first_seq", "last_seq", "prev_hash", "last_hash", "sent_at",
 *     "key_id", "records": ["<trail line>", ...], "signature": "<base64 Ed25519>" }
 *
 * `records` are the exact trail lines (FORMAT.md §Record, without the trailing newline) of seq
 * `first_seq..last_seq`; `prev_hash` is the `prev_hash` of the first one, `last_hash` the `hash`
 * of the last one. The Ed25519 signature (RFC 8032, pure Ed25519) is over
 *
 *   "vramseal-batch-v1\n" || JCS({ v, provider_id, first_seq, last_seq, prev_hash, last_hash, sent_at,
 *                                  key_id, count, records_sha256 })
 *
 * where `records_sha256` = hex SHA-256 of the lines each followed by "\n" (computed by the verifier
 * from the records received, never taken from the wire) and `count` = number of records. So the
 * signature covers every byte of every line, MACs included, and the batch header.
 */
import { createHash, type KeyObject, sign, verify } from 'node:crypto';
import { canonicalize } from '../canonical.js';

export const BATCH_VERSION = 1 as const;
export const BATCH_DOMAIN = 'vramseal-batch-v1\n';

export interface BatchHeader {
  v: typeof BATCH_VERSION;
  provider_id: string;
  first_seq: number;
  last_seq: number;
  prev_hash: string;
  last_hash: string;
  /** RFC 3339 UTC time the provider signed the batch. */
  sent_at: string;
  /** {@link keyId} of the signing key. */
  key_id: string;
}

export interface SignedBatch extends BatchHeader {
  records: string[];
  /** base64 Ed25519 signature, see the module comment. */
  signature: string;
}

/** hex SHA-256 of the lines, each followed by "\n" (exactly the bytes they occupy in the trail). */
export function recordsDigest(lines: readonly string[]): string {
  const h = createHash('sha256');
  for (const l of lines) h.update(l).update('\n');
  return h.digest('hex');
}

/** The exact bytes a batch signature covers. */
export function batchSigningInput(h: BatchHeader, lines: readonly string[]): Buffer {
  const body = canonicalize({
    v: h.v,
    provider_id: h.provider_id,
    first_seq: h.first_seq,
    last_seq: h.last_seq,
    prev_hash: h.prev_hash,
    last_hash: h.last_hash,
    sent_at: h.sent_at,
    key_id: h.key_id,
    count: lines.length,
    records_sha256: recordsDigest(lines),
  });
  return Buffer.from(BATCH_DOMAIN + body, 'utf8');
}

/** Signs a batch header + lines with the provider's Ed25519 private key. */
export function signBatch(h: BatchHeader, lines: string[], privateKey: KeyObject): SignedBatch {
  const signature = sign(null, batchSigningInput(h, lines), privateKey).toString('base64');
  return { ...h, records: lines, signature };
}

/** Verifies a batch signature; false on any mismatch or malformed signature. */
export function verifyBatchSignature(b: SignedBatch, publicKey: KeyObject): boolean {
  const sig = Buffer.from(b.signature, 'base64');
  if (sig.length !== 64) return false;
  try {
    return verify(null, batchSigningInput(b, b.records), publicKey, sig);
  } catch {
    return false;
  }
}
