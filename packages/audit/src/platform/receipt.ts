/**
 * A receipt: the collector's signed statement that it durably stores a provider's trail up to
 * `last_seq`, whose record hash is `head_hash`.
 *
 *   { "v": 1, "provider_id", "last_seq", "head_hash", "time", "key_id", "signature" }
 *
 * signature = base64 Ed25519 (RFC 8032) over "vramseal-receipt-v1\n" || JCS(receipt without "signature").
 * A receipt for an empty trail has last_seq 0 and head_hash = GENESIS_HASH.
 */
import { type KeyObject, sign, verify } from 'node:crypto';
import { canonicalize } from '../canonical.js';

export const RECEIPT_DOMAIN = 'vramseal-receipt-v1\n';

export interface ReceiptBody {
  v: 1;
  provider_id: string;
  last_seq: number;
  head_hash: string;
  /** RFC 3339 UTC time the collector issued the receipt. */
  time: string;
  /** {@link keyId} of the collector key. */
  key_id: string;
}

export interface Receipt extends ReceiptBody {
  signature: string;
}

function receiptInput(r: ReceiptBody): Buffer {
  return Buffer.from(
    RECEIPT_DOMAIN +
      canonicalize({
        v: r.v,
        provider_id: r.provider_id,
        last_seq: r.last_seq,
        head_hash: r.head_hash,
        time: r.time,
        key_id: r.key_id,
      }),
    'utf8',
  );
}

export function signReceipt(body: ReceiptBody, privateKey: KeyObject): Receipt {
  return { ...body, signature: sign(null, receiptInput(body), privateKey).toString('base64') };
}

/** True when `r` is well-formed and carries a valid signature by `publicKey`. */
export function verifyReceipt(r: unknown, publicKey: KeyObject): r is Receipt {
  if (typeof r !== 'object' || r === null) return false;
  const x = r as Record<string, unknown>;
  if (
    x.v !== 1 ||
    typeof x.provider_id !== 'string' ||
    !Number.isSafeInteger(x.last_seq) ||
    typeof x.head_hash !== 'string' ||
    typeof x.time !== 'string' ||
    typeof x.key_id !== 'string' ||
    typeof x.signature !== 'string'
  )
    return false;
  const sig = Buffer.from(x.signature, 'base64');
  if (sig.length !== 64) return false;
  try {
    return verify(null, receiptInput(x as unknown as ReceiptBody), publicKey, sig);
  } catch {
    return false;
  }
}
