/**
 * The writer's hot path for FORMAT.md §Record: canonical event JSON and record sealing, producing
 * exactly what `canonicalize` and `sealRecord` produce (checked at construction and by tests), faster:
 *
 * - {@link fastCanonicalize}: RFC 8785 for values `validateEvent` has already vetted (plain objects,
 *   arrays, strings, finite numbers, booleans, null): no path bookkeeping; anything else is handed to
 *   `canonicalize`, which throws the precise error.
 * - {@link RecordSealer}: the hashed text is `bodyJson` (record.ts); the hash is one-shot SHA-256 of
 *   `HASH_DOMAIN || body`; the MAC is HMAC-SHA256 with precomputed key blocks ({@link FastMac}); the line is the body with the `hash` (and `mac`) members spliced in before the
 *   top-level `prev_hash` member, which is where RFC 8785 key order puts them. The top-level
 *   `,"prev_hash":"` is the last occurrence in the body: nothing after it (numbers and strings, whose
 *   quotes are escaped) can contain it.
 */
import * as crypto from 'node:crypto';
import { canonicalize } from './canonical.js';
import { bodyJson, HASH_DOMAIN, MAC_DOMAIN, macOf, sealRecord } from './record.js';

type OneShot = (alg: string, data: string | Uint8Array, enc: 'hex' | 'latin1') => string;
const oneShot: OneShot =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? ((crypto as unknown as { hash: OneShot }).hash as OneShot)
    : (alg, data, enc) =>
        crypto
          .createHash(alg)
          .update(data)
          .digest(enc === 'hex' ? 'hex' : 'binary');

/**
 * HMAC-SHA256 (RFC 2104) of `MAC_DOMAIN || hash` with the key's ipad/opad blocks precomputed, as two
 * one-shot SHA-256 calls; the inner digest travels as a latin1 string, which is much cheaper in Node
 * than a Buffer result. Checked against `macOf` (createHmac) at construction.
 */
class FastMac {
  readonly #inner: Buffer;
  readonly #outer: Buffer;
  readonly #at: number;
  constructor(key: Uint8Array) {
    // RFC 2104 §2: keys longer than the block size (64 bytes) are hashed first.
    const k = key.length > 64 ? crypto.createHash('sha256').update(key).digest() : Buffer.from(key);
    const dom = Buffer.from(MAC_DOMAIN, 'latin1');
    this.#inner = Buffer.alloc(64 + dom.length + 64, 0x36);
    this.#outer = Buffer.alloc(64 + 32, 0x5c);
    for (let i = 0; i < k.length; i++) {
      this.#inner[i] = 0x36 ^ (k[i] as number);
      this.#outer[i] = 0x5c ^ (k[i] as number);
    }
    k.fill(0);
    dom.copy(this.#inner, 64);
    this.#at = 64 + dom.length;
    const probe = 'cd'.repeat(32);
    if (this.macOf(probe) !== macOf(key, probe)) throw new Error('FastMac self-test failed');
  }
  /** Lowercase hex HMAC-SHA256(key, MAC_DOMAIN || hash); `hash` is 64 hex characters. */
  macOf(hash: string): string {
    this.#inner.write(hash, this.#at, 64, 'latin1');
    this.#outer.write(oneShot('sha256', this.#inner, 'latin1'), 64, 32, 'latin1');
    return oneShot('sha256', this.#outer, 'hex');
  }
}

/** RFC 8785 canonical JSON (same output as `canonicalize`), fast path for validated events. */
export function fastCanonicalize(v: unknown): string {
  try {
    return jcs(v);
  } catch {
    return canonicalize(v); // throws CanonicalizationError naming the path
  }
}

/** `"key":` for keys seen before (bounded: free-form objects may bring arbitrary keys). */
const KEY_PREFIX = new Map<string, string>();
const KEY_PREFIX_MAX = 4096;

function keyPrefix(k: string): string {
  let p = KEY_PREFIX.get(k);
  if (p === undefined) {
    p = `${JSON.stringify(k)}:`;
    if (KEY_PREFIX.size < KEY_PREFIX_MAX) KEY_PREFIX.set(k, p);
  }
  return p;
}

function jcs(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new Error('non-finite');
      return JSON.stringify(v); // ECMAScript Number::toString (RFC 8785 §3.2.2.3)
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let s = '[';
        for (let i = 0; i < v.length; i++) s += i === 0 ? jcs(v[i]) : `,${jcs(v[i])}`;
        return `${s}]`;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new Error('not plain');
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length > 1) keys.sort(); // UTF-16 code unit order (RFC 8785 §3.2.3)
      let s = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        const x = o[k];
        if (x === undefined) continue;
        const p = s.length === 1 ? keyPrefix(k) : `,${keyPrefix(k)}`;
        s += typeof x === 'string' ? p + JSON.stringify(x) : p + jcs(x);
      }
      return `${s}}`;
    }
    default:
      throw new Error('unsupported');
  }
}

const PREV_MEMBER = ',"prev_hash":"';
const D = Buffer.byteLength(HASH_DOMAIN);

/**
 * A queued record as {@link RecordSealer.sealInto} reads and fills it: the event's canonical JSON as
 * UTF-8 bytes in, the sealed line's bytes (in an arena) and hash out.
 */
export interface SealableRecord {
  readonly seq: number;
  readonly auditId: string;
  readonly time: string;
  /** UTF-8 byte length of the event's canonical JSON. */
  readonly eventBytes: number;
  copyEventTo(dst: Buffer, at: number): void;
  releaseEvent(): void;
  hash: string;
  buf: Buffer | null;
  off: number;
  len: number;
}

/** Printable ASCII without `"` and `\`: JSON.stringify would only add the quotes. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Where sealed lines are appended (see queue.ts EventArena). */
export interface LineArena {
  slab: Buffer;
  off: number;
  reserve(maxBytes: number): void;
}

/** Seals records of one trail (one service id, one optional MAC key). */
export class RecordSealer {
  readonly #serviceId: string;
  readonly #mac: FastMac | null;
  /** `,"service_id":<json>` (RFC 8785 order puts it right after `seq`). */
  readonly #svcMember: string;
  /** The last `time` found {@link PLAIN} (times repeat: the writer's clock has millisecond precision). */
  #plainTime = '';
  /** Hash of the record sealed last (lowercase hex, or '' before the first). */
  hash = '';

  constructor(serviceId: string, macKey?: Uint8Array) {
    this.#serviceId = serviceId;
    this.#mac = macKey ? new FastMac(macKey) : null;
    this.#svcMember = `,"service_id":${JSON.stringify(serviceId)}`;
    // Self-test against the reference implementation.
    const b = {
      seq: 7,
      audit_id: '00000000-0000-4000-8000-000000000007',
      time: '2026-01-01T00:00:00.000Z',
      service_id: serviceId,
      eventJson: '{"changes":{"prev_hash":"x"},"type":"t"}',
      prev_hash: 'ab'.repeat(32),
    };
    const ref = sealRecord(b, macKey);
    if (
      this.seal(b.seq, b.audit_id, b.time, b.eventJson, b.prev_hash) !== ref.line ||
      this.hash !== ref.hash
    ) {
      throw new Error('RecordSealer self-test failed');
    }
    const ev = Buffer.from(b.eventJson);
    const rec: SealableRecord = {
      seq: b.seq,
      auditId: b.audit_id,
      time: b.time,
      eventBytes: ev.length,
      copyEventTo: (dst, at) => {
        ev.copy(dst, at);
      },
      releaseEvent: () => {},
      hash: '',
      buf: null,
      off: 0,
      len: 0,
    };
    const arena: LineArena = {
      slab: Buffer.alloc(0),
      off: 0,
      reserve(n) {
        if (this.off + n > this.slab.length) {
          this.slab = Buffer.alloc(n);
          this.off = 0;
        }
      },
    };
    this.sealInto(rec, b.prev_hash, arena);
    if (
      rec.hash !== ref.hash ||
      rec.buf === null ||
      rec.buf.toString('utf8', rec.off, rec.off + rec.len) !== `${ref.line}\n`
    ) {
      throw new Error('RecordSealer self-test failed (bytes)');
    }
  }

  /**
   * Seals `r` after `prevHash` working on bytes, straight into `arena`: with G the length of the
   * `"hash":"…",` (and `"mac":"…",`) members, `HASH_DOMAIN || body` (FORMAT.md §Record) is assembled as
   * UTF-8 at `start + G - |HASH_DOMAIN|`, the event's JSON bytes copied in as queued (no string round
   * trip); its one-shot SHA-256 is the hash. The body's head (up to and including the `,` that starts the
   * `prev_hash` member, which the body has right after the event) is then moved left by G onto the domain
   * prefix, and the members are written into the gap: the line, in place, with `\n`. Sets `r.hash`,
   * `r.buf`, `r.off`, `r.len` and {@link hash}; releases the record's event bytes. Same bytes as
   * {@link seal} (checked at construction).
   */
  sealInto(r: SealableRecord, prevHash: string, arena: LineArena): void {
    // Strings that need no JSON escaping are spliced in as they are (JSON.stringify costs more than the
    // rest of the line building); the chain's own hash and a repeated time are known to be plain.
    const id = r.auditId;
    const time = r.time;
    const head = PLAIN.test(id)
      ? `${HASH_DOMAIN}{"audit_id":"${id}","event":`
      : `${HASH_DOMAIN}{"audit_id":${JSON.stringify(id)},"event":`;
    if (time !== this.#plainTime) {
      if (PLAIN.test(time)) this.#plainTime = time;
    }
    const tail =
      (prevHash === this.hash || PLAIN.test(prevHash)) && time === this.#plainTime
        ? `,"prev_hash":"${prevHash}","seq":${r.seq}${this.#svcMember},"time":"${time}","v":1}\n`
        : `,"prev_hash":${JSON.stringify(prevHash)},"seq":${r.seq}${this.#svcMember},"time":${JSON.stringify(time)},"v":1}\n`;
    const evLen = r.eventBytes;
    const mac = this.#mac;
    const g = mac === null ? 74 : 147; // `"hash":"<64 hex>",` is 74 bytes, `"mac":"<64 hex>",` 73
    arena.reserve(g + 3 * (head.length + tail.length) + evLen);
    const b = arena.slab;
    const start = arena.off;
    const at = start + g - D; // where HASH_DOMAIN starts
    let p = at + b.write(head, at);
    r.copyEventTo(b, p);
    p += evLen;
    const mid = p + 1; // just after the `,` that starts the prev_hash member
    const end = p + b.write(tail, p); // tail ends with \n, which the hash does not cover
    const hash = oneShot('sha256', b.subarray(at, end - 1), 'hex');
    b.copyWithin(start, at + D, mid);
    const gap = start + (mid - at - D);
    if (mac === null) b.write(`"hash":"${hash}",`, gap, 'latin1');
    else b.write(`"hash":"${hash}","mac":"${mac.macOf(hash)}",`, gap, 'latin1');
    arena.off = end;
    r.buf = b;
    r.off = start;
    r.len = end - start;
    r.hash = hash;
    this.hash = hash;
    r.releaseEvent();
  }

  /** Returns the record's line (no newline); its hash is then in {@link hash}. */
  seal(seq: number, auditId: string, time: string, eventJson: string, prevHash: string): string {
    const body = bodyJson({
      seq,
      audit_id: auditId,
      time,
      service_id: this.#serviceId,
      eventJson,
      prev_hash: prevHash,
    });
    const hash = oneShot('sha256', HASH_DOMAIN + body, 'hex');
    this.hash = hash;
    const i = body.lastIndexOf(PREV_MEMBER) + 1;
    const mac = this.#mac ? `"mac":"${this.#mac.macOf(hash)}",` : '';
    return `${body.slice(0, i)}"hash":"${hash}",${mac}${body.slice(i)}`;
  }

  toJSON(): string {
    return '[RecordSealer]';
  }
}
