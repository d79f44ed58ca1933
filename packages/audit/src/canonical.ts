/**
 * JSON canonicalization per RFC 8785 (JCS) for the values an audit event may hold:
 * objects (keys sorted by UTF-16 code units, RFC 8785 §3.2.3), arrays, strings
 * (ECMAScript JSON.stringify escaping, §3.2.2.2), finite numbers (ECMAScript
 * Number-to-String, §3.2.2.3), booleans and null.
 *
 * Non-finite numbers, `undefined`, functions, symbols, bigints and cycles are rejected
 * with {@link CanonicalizationError}: a record must never hash differently from what is stored.
 */

export class CanonicalizationError extends Error {
  readonly code = 'CANONICALIZATION' as const;
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${message} at ${path || '<root>'}`);
    this.name = 'CanonicalizationError';
  }
}

const MAX_DEPTH = 64;

/** Returns the RFC 8785 canonical JSON text of `value`. */
export function canonicalize(value: unknown): string {
  return enc(value, '', 0);
}

function enc(v: unknown, path: string, depth: number): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalizationError('non-finite number', path);
      // JSON.stringify implements ECMAScript Number::toString, which RFC 8785 §3.2.2.3 mandates (-0 → "0").
      return JSON.stringify(v);
    case 'object': {
      if (depth >= MAX_DEPTH) throw new CanonicalizationError(`nesting deeper than ${MAX_DEPTH}`, path);
      if (Array.isArray(v)) {
        let s = '[';
        for (let i = 0; i < v.length; i++) {
          if (i > 0) s += ',';
          s += enc(v[i], `${path}[${i}]`, depth + 1);
        }
        return `${s}]`;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalizationError('only plain objects can be canonicalized', path);
      }
      const keys = Object.keys(v).sort();
      let s = '{';
      let first = true;
      for (const k of keys) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue; // JCS: absent, like JSON.stringify
        if (!first) s += ',';
        first = false;
        s += `${JSON.stringify(k)}:${enc(x, path ? `${path}.${k}` : k, depth + 1)}`;
      }
      return `${s}}`;
    }
    default:
      throw new CanonicalizationError(`unsupported type ${typeof v}`, path);
  }
}
