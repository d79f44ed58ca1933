/**
 * Verification of an incoming batch before it touches storage (pure, CPU only):
 * the provider's Ed25519 signature over header + every line, then each record: canonical form
 * (FORMAT.md: a line is the RFC 8785 JCS of the record), recomputed hash, seq continuity and the
 * MAC-free hash chain inside the batch. Continuity with what is already stored is the store's job.
 */
import type { KeyObject } from 'node:crypto';
import { canonicalize, hashBody, type SignedBatch, verifyBatchSignature } from '@vramseal/audit';

export interface ParsedRecord {
  seq: number;
  hash: string;
  prevHash: string;
  auditId: string;
  serviceId: string;
  time: string;
  eventType: string;
  actor: string | null;
  customerId: string | null;
  shardId: string | null;
  line: string;
}

/** Why a batch was refused before storage. `status` is the HTTP status to answer with. */
export class BatchRejection extends Error {
  constructor(
    readonly status: 400 | 401,
    readonly error: string,
    message: string,
    readonly detail: { index?: number; seq?: number; expectedHash?: string; actualHash?: string } = {},
  ) {
    super(message);
    this.name = 'BatchRejection';
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const RFC3339_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const RECORD_KEYS = new Set([
  'v',
  'seq',
  'audit_id',
  'time',
  'service_id',
  'event',
  'prev_hash',
  'hash',
  'mac',
]);

/**
 * True when `line` is the RFC 8785 (JCS) text of `v` (= JSON.parse(line)). Fast path: when every
 * object's keys already iterate in JCS order (UTF-16 code-unit order, RFC 8785 §3.2.3),
 * JCS(v) is exactly JSON.stringify(v) — same number (§3.2.2.3) and string (§3.2.2.2) serialization.
 * Otherwise (e.g. integer-like keys, which JS iterates numerically) fall back to canonicalize().
 */
export function isCanonicalLine(v: unknown, line: string): boolean {
  if (keysInJcsOrder(v, 0)) return JSON.stringify(v) === line;
  try {
    return canonicalize(v) === line;
  } catch {
    return false;
  }
}

function keysInJcsOrder(v: unknown, depth: number): boolean {
  if (typeof v !== 'object' || v === null) return true;
  if (depth > 64) return false;
  if (Array.isArray(v)) {
    for (const x of v) if (!keysInJcsOrder(x, depth + 1)) return false;
    return true;
  }
  let prev: string | undefined;
  for (const k in v) {
    if (prev !== undefined && !(prev < k)) return false;
    prev = k;
    if (!keysInJcsOrder((v as Record<string, unknown>)[k], depth + 1)) return false;
  }
  return true;
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/** Checks the signature with the provider's registered keys (by key id). */
export function checkSignature(b: SignedBatch, keys: ReadonlyMap<string, KeyObject> | undefined): void {
  if (!keys)
    throw new BatchRejection(
      401,
      'UNKNOWN_PROVIDER',
      `provider ${JSON.stringify(b.provider_id)} is not registered`,
    );
  const key = keys.get(b.key_id);
  if (!key)
    throw new BatchRejection(
      401,
      'UNKNOWN_KEY',
      `key_id ${b.key_id} is not a registered key of provider ${JSON.stringify(b.provider_id)}`,
    );
  if (!verifyBatchSignature(b, key))
    throw new BatchRejection(401, 'BAD_SIGNATURE', 'batch signature does not verify with the provider key');
}

/** Parses and verifies every record of a (signature-checked) batch. */
export function parseBatchRecords(b: SignedBatch): ParsedRecord[] {
  const n = b.records.length;
  if (b.last_seq - b.first_seq + 1 !== n)
    throw new BatchRejection(
      400,
      'BATCH_INVALID',
      `last_seq - first_seq + 1 (${b.last_seq - b.first_seq + 1}) must equal the number of records (${n})`,
    );
  const out = new Array<ParsedRecord>(n);
  let prev = b.prev_hash;
  for (let i = 0; i < n; i++) {
    const line = b.records[i] as string;
    const seq = b.first_seq + i;
    const bad = (rule: string, extra: Partial<BatchRejection['detail']> = {}) =>
      new BatchRejection(400, 'RECORD_INVALID', `records[${i}] (seq ${seq}): ${rule}`, {
        index: i,
        seq,
        ...extra,
      });
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line);
    } catch {
      throw bad('not valid JSON');
    }
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad('not a JSON object');
    for (const k of Object.keys(r))
      if (!RECORD_KEYS.has(k)) throw bad(`unknown field ${JSON.stringify(k.slice(0, 40))}`);
    if (r.v !== 1) throw bad('v must be 1');
    if (r.seq !== seq) throw bad(`seq must be ${seq} (seq continuity)`);
    if (typeof r.hash !== 'string' || !HEX64.test(r.hash)) throw bad('hash must be 64 lowercase hex');
    if (typeof r.prev_hash !== 'string' || !HEX64.test(r.prev_hash))
      throw bad('prev_hash must be 64 lowercase hex');
    if (r.mac !== undefined && (typeof r.mac !== 'string' || !HEX64.test(r.mac)))
      throw bad('mac must be 64 lowercase hex');
    if (typeof r.audit_id !== 'string' || r.audit_id.length === 0 || r.audit_id.length > 256)
      throw bad('audit_id must be a string of 1..256 chars');
    if (typeof r.service_id !== 'string' || r.service_id.length === 0 || r.service_id.length > 256)
      throw bad('service_id must be a string of 1..256 chars');
    if (typeof r.time !== 'string' || !RFC3339_MS_Z.test(r.time) || Number.isNaN(Date.parse(r.time)))
      throw bad('time must be RFC 3339 UTC with milliseconds');
    const ev = r.event as Record<string, unknown> | null;
    if (typeof ev !== 'object' || ev === null || Array.isArray(ev) || typeof ev.type !== 'string')
      throw bad('event must be an object with a string type');
    if (!isCanonicalLine(r, line)) throw bad('line is not the RFC 8785 canonical form of the record');
    // The canonical line minus its "hash" (and "mac") members is exactly the hashed body (FORMAT.md
    // §Record): JCS orders keys audit_id, event, hash, mac, prev_hash, seq, service_id, time, v.
    const tail = `"prev_hash":"${r.prev_hash}","seq":${seq},"service_id":${JSON.stringify(r.service_id)},"time":"${r.time}","v":1}`;
    const hashPart = `"hash":"${r.hash}",${r.mac === undefined ? '' : `"mac":"${r.mac}",`}`;
    if (!line.endsWith(hashPart + tail)) throw bad('line is not the RFC 8785 canonical form of the record');
    const h = hashBody(line.slice(0, line.length - hashPart.length - tail.length) + tail);
    if (h !== r.hash)
      throw bad('hash does not match the record content', { expectedHash: h, actualHash: r.hash });
    if (r.prev_hash !== prev)
      throw bad(
        i === 0
          ? 'prev_hash must equal the batch prev_hash'
          : 'prev_hash must equal the previous record hash',
        {
          expectedHash: prev,
          actualHash: r.prev_hash,
        },
      );
    prev = r.hash;
    const actor = ev.actor;
    out[i] = {
      seq,
      hash: r.hash,
      prevHash: r.prev_hash,
      auditId: r.audit_id,
      serviceId: r.service_id,
      time: r.time,
      eventType: ev.type.slice(0, 128),
      actor:
        typeof actor === 'object' && actor !== null
          ? str((actor as Record<string, unknown>).user_id)
          : str(actor),
      customerId: str(ev.customer_id),
      shardId: str(ev.shard_id),
      line,
    };
  }
  if (prev !== b.last_hash)
    throw new BatchRejection(400, 'BATCH_INVALID', 'last_hash must equal the hash of the last record', {
      expectedHash: prev,
      actualHash: b.last_hash,
    });
  return out;
}
