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

/** Seals records of one trail (one service id, one optional MAC key). */
export class RecordSealer {
  readonly #serviceId: string;
  readonly #mac: FastMac | null;
  /** Hash of the record sealed last. */
  hash = '';

  constructor(serviceId: string, macKey?: Uint8Array) {
    this.#serviceId = serviceId;
    this.#mac = macKey ? new FastMac(macKey) : null;
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
