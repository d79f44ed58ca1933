/**
 * Checking one stored record line against FORMAT.md §Record: shape, `hash` and `mac`.
 *
 * A stored line is the RFC 8785 canonical JSON of the record, whose keys sort as
 * `audit_id, event, hash, mac, prev_hash, seq, service_id, time, v`. Cutting the `,"hash":"…"` and
 * `,"mac":"…"` members out of the line's bytes therefore leaves exactly the canonical body the hash
 * covers, so the hash is checked over the stored bytes without re-canonicalizing the event.
 *
 * Fast path ({@link fastCheck}): an ASCII line in exactly that layout has its envelope fields read at
 * their places with string operations and its hash checked; the event is not parsed unless asked for
 * (`record`/`event` are lazy). Its soundness rests on the hash: bytes whose SHA-256 matches the stored
 * hash — and, with a key, whose MAC checks — are the bytes the writer sealed, and the writer only seals
 * canonical JSON. (Without a key anyone can forge any line, well-formed or not; see FORMAT.md.)
 * Full path, for every other line: `JSON.parse`, field types checked, the hash checked over the stored
 * bytes and, if that fails, over the canonical body rebuilt from the parsed record
 * ({@link recomputeHash}) — a record passes if either matches.
 *
 * The `,"hash":"` located is the last one in the line: nothing after the top-level `hash` member can
 * contain it (the members that follow are strings and numbers, and a string cannot hold an unescaped `"`).
 *
 * The MAC is HMAC-SHA256 (RFC 2104) computed with precomputed ipad/opad key blocks over one-shot
 * SHA-256 calls — the same value as `createHmac`, checked at construction.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import * as crypto from 'node:crypto';
import { HASH_DOMAIN, MAC_DOMAIN, macOf, recomputeHash } from './record.js';

const HASH_MEMBER = Buffer.from(',"hash":"', 'latin1');
const MAC_MEMBER = Buffer.from(',"mac":"', 'latin1');
const QUOTE = 0x22;
const DOMAIN = Buffer.from(HASH_DOMAIN, 'latin1');

type OneShot = (alg: string, data: Uint8Array, enc: 'hex' | 'latin1') => string;
const oneShot: OneShot =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? ((crypto as unknown as { hash: OneShot }).hash as OneShot)
    : (alg, data, enc) => {
        const h = crypto.createHash(alg).update(data);
        return h.digest(enc === 'hex' ? 'hex' : 'binary');
      };

/** A parsed record whose shape is valid (fields as FORMAT.md §Record types them). */
export interface ParsedRecord {
  seq: number;
  prevHash: string;
  hash: string;
  mac: string | undefined;
  time: string;
  serviceId: string;
  auditId: string;
  event: Record<string, unknown>;
  /** The full parsed record. */
  record: Record<string, unknown>;
}

/** A parsed record with its hash checked. */
export interface CheckedRecord extends ParsedRecord {
  /** True when the stored `hash` matches the record's content. */
  hashOk: boolean;
  /** The hash the content gives (equals `hash` when `hashOk`; undefined if it could not be computed). */
  computedHash: string | undefined;
}

/** A line that is not a record: the reason names the field and the rule where it can. */
export interface RejectedLine {
  reason: string;
}

/** Hashing buffer: the domain prefix stays at its start; bodies are copied in after it. */
let scratch = withDomain(64 * 1024);
function withDomain(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  DOMAIN.copy(b, 0);
  return b;
}

/** Hashes DOMAIN || a || b with one one-shot SHA-256 call. */
function hashBodyParts(line: Buffer, cut: number, resume: number): string {
  const need = DOMAIN.length + cut + (line.length - resume);
  if (scratch.length < need) scratch = withDomain(Math.max(need, scratch.length * 2));
  line.copy(scratch, DOMAIN.length, 0, cut);
  line.copy(scratch, DOMAIN.length + cut, resume);
  return oneShot('sha256', scratch.subarray(0, need), 'hex');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses one line (without its `\n`) and checks the record's field types, without hashing. Never
 * throws: any problem is a {@link RejectedLine}.
 */
export function parseRecordLine(line: Buffer): ParsedRecord | RejectedLine {
  if (!isUtf8(line)) return { reason: 'line is not valid UTF-8' };
  let rec: unknown;
  try {
    rec = JSON.parse(line.toString('utf8'));
  } catch (e) {
    return { reason: `line is not JSON (${(e as Error).message.slice(0, 120)})` };
  }
  if (!isPlainObject(rec)) return { reason: 'line is not a JSON object' };
  const shape = shapeError(rec);
  if (shape) return { reason: shape };
  return {
    seq: rec.seq as number,
    prevHash: rec.prev_hash as string,
    hash: rec.hash as string,
    mac: rec.mac as string | undefined,
    time: rec.time as string,
    serviceId: rec.service_id as string,
    auditId: rec.audit_id as string,
    event: rec.event as Record<string, unknown>,
    record: rec,
  };
}

/**
 * Parses and checks one line (without its `\n`): field types and hash. Never throws: any problem is a
 * {@link RejectedLine}.
 */
export function checkRecordLine(line: Buffer): CheckedRecord | RejectedLine {
  const fast = fastCheck(line);
  if (fast) return fast;
  const p = parseRecordLine(line);
  if ('reason' in p) return p;
  const rec = p.record;
  const hash = p.hash;
  let hashOk = false;
  let computed: string | undefined;
  try {
    const at = line.lastIndexOf(HASH_MEMBER);
    if (at > 0 && line[at + 73] === QUOTE && line.toString('latin1', at + 9, at + 73) === hash) {
      let resume = at + 74;
      if (
        resume + MAC_MEMBER.length <= line.length &&
        line.compare(MAC_MEMBER, 0, MAC_MEMBER.length, resume, resume + MAC_MEMBER.length) === 0
      ) {
        resume += MAC_MEMBER.length + 65;
      }
      computed = hashBodyParts(line, at, resume);
      hashOk = computed === hash;
    }
    if (!hashOk) {
      computed = recomputeHash(
        rec as {
          seq: number;
          audit_id: string;
          time: string;
          service_id: string;
          event: unknown;
          prev_hash: string;
        },
      );
      hashOk = computed === hash;
    }
  } catch {
    // Un-canonicalizable content (too deep, non-finite...) cannot match any hash the writer made.
    hashOk = false;
  }
  return Object.assign(p as CheckedRecord, { hashOk, computedHash: computed });
}

/**
 * Fewest characters from the start of `,"hash":"` to the end of a line in canonical layout:
 * `,"hash":"` 64 hex `"` `,"prev_hash":"` 64 hex `"` `,"seq":` 1 digit `,"service_id":""` `,"time":""`
 * `,"v":1}` (empty service id and time).
 */
const TAIL_MIN = 9 + 64 + 1 + 14 + 64 + 1 + 7 + 1 + 16 + 10 + 7;

/** A record read by {@link fastCheck}: the event is parsed only when asked for. */
class LazyRecord implements CheckedRecord {
  readonly hashOk = true;
  #line: Buffer;
  #parsed: Record<string, unknown> | undefined;
  constructor(
    line: Buffer,
    readonly seq: number,
    readonly prevHash: string,
    readonly hash: string,
    readonly mac: string | undefined,
    readonly time: string,
    readonly serviceId: string,
    readonly auditId: string,
    readonly computedHash: string,
  ) {
    this.#line = line;
  }
  get record(): Record<string, unknown> {
    if (this.#parsed === undefined) {
      try {
        const v: unknown = JSON.parse(this.#line.toString('latin1'));
        this.#parsed = isPlainObject(v) && isPlainObject(v.event) ? v : { event: {} };
      } catch {
        this.#parsed = { event: {} }; // hash-valid bytes that are not JSON: made by whoever hashed them
      }
    }
    return this.#parsed;
  }
  get event(): Record<string, unknown> {
    return this.record.event as Record<string, unknown>;
  }
}

/**
 * Fast path for an ASCII line in exact canonical layout whose hash checks: the envelope is read at its
 * fixed places with string operations, without parsing the event. Anything else (another layout,
 * escapes in envelope strings, non-ASCII, a hash that does not check) returns null, and the caller
 * takes the full path, which parses, validates and classifies.
 */
function fastCheck(line: Buffer): CheckedRecord | null {
  if (!isAscii(line)) return null;
  const s = line.toString('latin1');
  if (!s.startsWith('{"audit_id":"')) return null;
  const idEnd = s.indexOf('"', 13);
  if (idEnd < 0 || !s.startsWith(',"event":{', idEnd + 1)) return null;
  // In the layout below the hash member starts at least TAIL_MIN characters before the end, so the
  // backward search can start there (it is the costliest string operation here otherwise).
  const hashAt = s.lastIndexOf(',"hash":"', s.length - TAIL_MIN);
  if (hashAt <= idEnd || s.charCodeAt(hashAt - 1) !== 0x7d || s.charCodeAt(hashAt + 73) !== QUOTE)
    return null;
  let p = hashAt + 74;
  let mac: string | undefined;
  if (s.startsWith(',"mac":"', p)) {
    if (s.charCodeAt(p + 72) !== QUOTE) return null;
    mac = s.slice(p + 8, p + 72);
    p += 73;
  }
  const resume = p;
  if (!s.startsWith(',"prev_hash":"', p) || s.charCodeAt(p + 78) !== QUOTE) return null;
  const prevHash = s.slice(p + 14, p + 78);
  p += 79;
  if (!s.startsWith(',"seq":', p)) return null;
  p += 7;
  const d0 = p;
  let seq = 0;
  for (let c = s.charCodeAt(p); c >= 0x30 && c <= 0x39 && p - d0 < 16; c = s.charCodeAt(++p))
    seq = seq * 10 + (c - 0x30);
  if (p === d0 || s.charCodeAt(d0) === 0x30 || !Number.isSafeInteger(seq)) return null;
  if (!s.startsWith(',"service_id":"', p)) return null;
  const svcEnd = s.indexOf('"', p + 15);
  if (svcEnd < 0) return null;
  const serviceId = s.slice(p + 15, svcEnd);
  p = svcEnd + 1;
  if (!s.startsWith(',"time":"', p)) return null;
  const timeEnd = s.indexOf('"', p + 9);
  if (timeEnd < 0) return null;
  const time = s.slice(p + 9, timeEnd);
  if (timeEnd + 8 !== s.length || !s.endsWith('","v":1}')) return null;
  // A backslash anywhere in the envelope strings means escapes: leave those to JSON.parse.
  const auditId = s.slice(13, idEnd);
  if (auditId.includes('\\') || serviceId.includes('\\') || time.includes('\\')) return null;
  const hash = s.slice(hashAt + 9, hashAt + 73);
  const computed = hashBodyParts(line, hashAt, resume);
  if (computed !== hash) return null;
  return new LazyRecord(line, seq, prevHash, hash, mac, time, serviceId, auditId, computed);
}

/**
 * FORMAT.md §Record field types; returns a message naming the field and rule, or undefined. Hash
 * fields are checked for type and length only: a non-hex value can never equal a computed hash, so it
 * fails the hash, link or MAC comparison it takes part in (and is reported there).
 */
function shapeError(r: Record<string, unknown>): string | undefined {
  if (r.v !== 1) return 'field v: must be 1';
  const seq = r.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
    return 'field seq: must be an integer >= 1';
  if (typeof r.audit_id !== 'string') return 'field audit_id: must be a string';
  if (typeof r.time !== 'string') return 'field time: must be a string';
  if (typeof r.service_id !== 'string') return 'field service_id: must be a string';
  if (!isPlainObject(r.event)) return 'field event: must be an object';
  if (typeof r.prev_hash !== 'string' || r.prev_hash.length !== 64)
    return 'field prev_hash: must be 64 lowercase hex';
  if (typeof r.hash !== 'string' || r.hash.length !== 64) return 'field hash: must be 64 lowercase hex';
  if (r.mac !== undefined && (typeof r.mac !== 'string' || r.mac.length !== 64))
    return 'field mac: must be 64 lowercase hex';
  return undefined;
}

/** Checks MACs under one key (HMAC-SHA256, RFC 2104, with the key blocks precomputed once). */
export class MacChecker {
  readonly #inner: Buffer;
  readonly #outer: Buffer;
  readonly #innerMsgAt: number;

  constructor(key: Uint8Array) {
    // RFC 2104 §2: keys longer than the block size (64) are hashed first.
    const k = key.length > 64 ? crypto.createHash('sha256').update(key).digest() : Buffer.from(key);
    const ipad = Buffer.alloc(64, 0x36);
    const opad = Buffer.alloc(64, 0x5c);
    for (let i = 0; i < k.length; i++) {
      ipad[i] = (ipad[i] as number) ^ (k[i] as number);
      opad[i] = (opad[i] as number) ^ (k[i] as number);
    }
    k.fill(0);
    const dom = Buffer.from(MAC_DOMAIN, 'latin1');
    this.#inner = Buffer.concat([ipad, dom, Buffer.alloc(64)]);
    this.#innerMsgAt = 64 + dom.length;
    this.#outer = Buffer.concat([opad, Buffer.alloc(32)]);
    ipad.fill(0);
    opad.fill(0);
    const probe = 'ab'.repeat(32);
    if (this.macOf(probe) !== macOf(key, probe)) throw new Error('MacChecker self-test failed');
  }

  /**
   * Lowercase hex HMAC-SHA256(key, MAC_DOMAIN || hash). The inner digest travels as a latin1 string
   * (one byte per char), which Node returns much more cheaply than a Buffer.
   */
  macOf(hash: string): string {
    this.#inner.write(hash, this.#innerMsgAt, 64, 'latin1');
    this.#outer.write(oneShot('sha256', this.#inner, 'latin1') as string, 64, 32, 'latin1');
    return oneShot('sha256', this.#outer, 'hex') as string;
  }

  /** True when `mac` is the MAC of `hash`. */
  matches(hash: string, mac: string | undefined): boolean {
    return typeof mac === 'string' && mac.length === 64 && this.macOf(hash) === mac;
  }

  toJSON(): string {
    return '[MacChecker]';
  }
}

const V_END = Buffer.from(',"v":1}', 'latin1');
/** How many records an unparsable line may hold (lines glued together by a lost `\n`). */
export function countRecordEnds(b: Buffer): number {
  let n = 0;
  let at = b.indexOf(V_END);
  while (at >= 0 && n < 1_000_000) {
    n++;
    at = b.indexOf(V_END, at + V_END.length);
  }
  return n;
}
