/**
 * The audit record envelope (FORMAT.md §Record) and its hash and MAC.
 *
 * A record is one NDJSON line: the RFC 8785 canonical JSON of
 * `{ v, seq, audit_id, time, service_id, event, prev_hash, hash, mac? }`.
 *
 *   hash = hex(SHA-256("vramseal-audit-v1\n" || JCS(record without "hash" and "mac")))
 *   mac  = hex(HMAC-SHA256(key, "vramseal-audit-mac-v1\n" || hash))      (hash as 64 lowercase hex chars)
 *
 * The first record of a trail (seq 1) has prev_hash = GENESIS_HASH (64 "0").
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalize } from './canonical.js';

export const RECORD_VERSION = 1 as const;
export const GENESIS_HASH = '0'.repeat(64);
export const HASH_DOMAIN = 'vramseal-audit-v1\n';
export const MAC_DOMAIN = 'vramseal-audit-mac-v1\n';

/** A stored audit record (one line of a trail file). */
export interface AuditRecord<E = Record<string, unknown>> {
  v: typeof RECORD_VERSION;
  seq: number;
  audit_id: string;
  /** RFC 3339 UTC time the record was sealed into the chain, millisecond precision. */
  time: string;
  service_id: string;
  event: E;
  prev_hash: string;
  hash: string;
  mac?: string;
}

/** The fields a record's hash covers, already in canonical form where it matters. */
export interface RecordBody {
  seq: number;
  audit_id: string;
  time: string;
  service_id: string;
  /** The event's canonical JSON (see {@link canonicalize}). */
  eventJson: string;
  prev_hash: string;
}

/** Canonical JSON of the hashed part of a record (keys in RFC 8785 order). */
export function bodyJson(b: RecordBody): string {
  return `{"audit_id":${JSON.stringify(b.audit_id)},"event":${b.eventJson},"prev_hash":${JSON.stringify(
    b.prev_hash,
  )},"seq":${b.seq},"service_id":${JSON.stringify(b.service_id)},"time":${JSON.stringify(b.time)},"v":${RECORD_VERSION}}`;
}

export function hashBody(canonicalBody: string): string {
  return createHash('sha256').update(HASH_DOMAIN).update(canonicalBody).digest('hex');
}

export function macOf(key: Uint8Array, hash: string): string {
  return createHmac('sha256', key).update(MAC_DOMAIN).update(hash).digest('hex');
}

/**
 * Builds the stored line (without trailing newline) for a record body: canonical JSON with
 * `hash` and, when a key is given, `mac`. Returns the line and the hash.
 */
export function sealRecord(b: RecordBody, macKey?: Uint8Array): { line: string; hash: string } {
  const hash = hashBody(bodyJson(b));
  const macPart = macKey ? `"mac":"${macOf(macKey, hash)}",` : '';
  const line = `{"audit_id":${JSON.stringify(b.audit_id)},"event":${b.eventJson},"hash":"${hash}",${macPart}"prev_hash":${JSON.stringify(
    b.prev_hash,
  )},"seq":${b.seq},"service_id":${JSON.stringify(b.service_id)},"time":${JSON.stringify(b.time)},"v":${RECORD_VERSION}}`;
  return { line, hash };
}

/** Recomputes the hash of a parsed record (ignores its stored `hash` and `mac`). */
export function recomputeHash(
  r: Pick<AuditRecord<unknown>, 'seq' | 'audit_id' | 'time' | 'service_id' | 'event' | 'prev_hash'>,
): string {
  return hashBody(
    bodyJson({
      seq: r.seq,
      audit_id: r.audit_id,
      time: r.time,
      service_id: r.service_id,
      eventJson: canonicalize(r.event),
      prev_hash: r.prev_hash,
    }),
  );
}

/** Timing-safe comparison of a record's MAC against the one `key` gives. */
export function macMatches(key: Uint8Array, hash: string, mac: string | undefined): boolean {
  if (typeof mac !== 'string' || mac.length !== 64) return false;
  const want = Buffer.from(macOf(key, hash), 'hex');
  const got = Buffer.from(mac, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}
