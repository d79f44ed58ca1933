/**
 * Event validation: the gate every event passes before it is sealed into the trail.
 *
 * {@link validateEvent} is pure. It never mutates its input and never returns it: it returns a FRESH
 * object (a deep copy made of plain objects, arrays and primitives) that
 * 1. was read from the input exactly once per property (getters/proxies cannot show the validator one
 *    value and the writer another),
 * 2. passed the string rules below for every string, object key included, at any depth,
 * 3. passed the event type's compiled TypeBox schema (dispatch by `type`, no union scan), and
 * 4. is normalized: properties whose value is `undefined` are left out (as JSON would) and `ip` fields
 *    hold the canonical address text of {@link parseIp} (IPv4-mapped IPv6 becomes IPv4).
 * The caller (the trail writer) owns the copy. On any violation it throws {@link AuditValidationError}
 * naming the event type, the field path and the rule; nothing is written.
 *
 * String rules (all strings, keys included): no NUL, ESC or other C0 control character except tab (U+0009)
 * and newline (U+000A); no DEL (U+007F) or C1 control (U+0080–U+009F, which includes the 8-bit CSI U+009B);
 * no bidi embedding/override/isolate U+202A–U+202E, U+2066–U+2069; no U+FEFF; no unpaired surrogate.
 * Structure rules: plain objects only, no `__proto__`/`constructor`/`prototype` keys, finite numbers,
 * nesting ≤ LIMITS.depth, arrays ≤ LIMITS.array items, objects ≤ 256 keys, ≤ 4096 values and
 * ≤ LIMITS.totalChars string characters per event. Only own enumerable string-keyed properties are part of
 * an event (as for JSON.stringify); symbol-keyed and non-enumerable properties are not copied.
 */
import type { TObject, TSchema } from '@sinclair/typebox';
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';
import { type ValueError, ValueErrorType } from '@sinclair/typebox/errors';
import { canonicalize } from './canonical.js';
import { AuditValidationError, safeLabel, type ValidationRule } from './errors.js';
import {
  type AuditEvent,
  DIGEST_FORMAT,
  EVENT_SCHEMAS,
  HASH_PATTERN,
  IP_FORMAT,
  KEY_PATTERN,
  LIMITS,
  METHOD_PATTERN,
  SHA256_PATTERN,
  SINGLE_LINE_PATTERN,
  TIMESTAMP_FORMAT,
  TOKEN_PREFIX_PATTERN,
} from './events.js';
import { TOKEN_FINGERPRINT_PATTERN } from './fingerprint.js';
import { tryNormalizeIp, tryParseIp } from './ip.js';

const MAX_KEYS_PER_OBJECT = 256;
const MAX_VALUES = 4096;
// Module-local copies of the limits (no property loads on the hot path).
const MAX_DEPTH: number = LIMITS.depth;
const MAX_ARRAY: number = LIMITS.array;
const MAX_CHARS: number = LIMITS.totalChars;

// ---------------------------------------------------------------------------------------------
// Compilation (once, at import)
// ---------------------------------------------------------------------------------------------
//
// Work is split so that nothing is checked twice:
// - the walk owns string characters, single-line fields, object keys (unknown fields, forbidden keys),
//   plain-object/JSON-ness, depth and size. For every fixed-field object of a schema it runs a copy
//   function generated from the schema (a `switch` over the known keys with constant property names,
//   which V8 turns into fast named loads/stores); free-form objects and arrays use a generic walk.
//   It also holds scanned strings to their maximum length in characters (code points) and checks and
//   normalizes IP fields;
// - the compiled TypeBox check owns JSON types, required fields, minimum lengths, the lengths of ASCII-only
//   fields, enums, numbers and formats. It is compiled from a copy of the schema without what the walk has
//   already enforced (see `relaxed`).
// The full schema is compiled too, for error explanations only (slow path).

enum K {
  Object = 0,
  Array = 1,
  String = 2,
  Any = 3,
  Free = 4,
}
type CopyFn = (o: Record<string, unknown>, ctx: Ctx, depth: number) => Record<string, unknown>;
interface ObjShape {
  k: K.Object;
  keys: Map<string, Shape>;
  copy: CopyFn;
}
/**
 * `line`: single-line field (tab/newline refused). `scan`: false when the compiled check already limits the
 * field to a few printable ASCII characters (enum literals, timestamp, ip, digest, hex, fingerprint, method,
 * token prefix); the fast path then skips the character scan, and the slow path (explain) runs it first so
 * the error still names the character rule.
 */
interface StrShape {
  k: K.String;
  line: boolean;
  scan: boolean;
  /** an IP field: the walk checks and normalizes it (one parse), the fast check skips the format */
  ip?: boolean;
  /** maximum length in characters (Unicode code points), enforced by the walk for scanned fields */
  max: number;
}
/** A value of no fixed shape; when it is a string, `str` (if any) applies (e.g. query{} values). */
interface AnyShape {
  k: K.Any;
  str?: StrShape;
}
/** A free-form object (changes{}, query{}): any allowed keys, values of shape `values`. */
interface FreeShape {
  k: K.Free;
  values: Shape;
}
type Shape = ObjShape | { k: K.Array; items: Shape } | StrShape | AnyShape | FreeShape;

/** Formats and patterns whose accepted strings are printable ASCII without tab/newline. */
const ASCII_ONLY: ReadonlySet<string> = new Set([
  TIMESTAMP_FORMAT,
  IP_FORMAT,
  DIGEST_FORMAT,
  SHA256_PATTERN,
  TOKEN_FINGERPRINT_PATTERN,
  METHOD_PATTERN,
  TOKEN_PREFIX_PATTERN,
]);

const ANY: AnyShape = { k: K.Any };
const SCHEMA_KEY = /^[a-z_][a-z0-9_]*$/;

function objShape(keys: Map<string, Shape>): ObjShape {
  const subs: Shape[] = [];
  let cases = '';
  // Each known key's value is read (once, in the input's key order) into a local; the copy is then built
  // in RFC 8785 key order (UTF-16 code units; schema keys are never array indices), so that
  // JSON.stringify of a validated event is its canonical JSON (see validateEventJson).
  const locals = new Map<string, string>();
  for (const key of keys.keys()) {
    if (!SCHEMA_KEY.test(key)) throw new Error(`validate: unexpected schema key ${key}`);
    locals.set(key, `v${locals.size}`);
  }
  for (const [key, sub] of keys) {
    const q = JSON.stringify(key);
    const l = locals.get(key) as string;
    const ss = sub.k === K.String ? sub : sub.k === K.Any ? sub.str : undefined;
    const line = ss?.line ?? false;
    const scan = ss?.scan ?? true;
    const max = ss?.max ?? Number.POSITIVE_INFINITY;
    subs.push(sub);
    const onString = ss?.ip
      ? `${l} = ip(ctx, x, ${q});`
      : scan
        ? `str(ctx, x, ${line}, ${q}, ${max === Number.POSITIVE_INFINITY ? 'Infinity' : max}); ${l} = x;`
        : `${l} = x;`;
    cases +=
      `case ${q}: { const x = o[${q}]; if (typeof x === 'string') { ${onString} }` +
      ` else if (x !== undefined) ${l} = val(ctx, x, subs[${subs.length - 1}], depth, ${q}); break; }\n`;
  }
  let build = '';
  for (const key of [...keys.keys()].sort()) {
    const l = locals.get(key) as string;
    build += `if (${l} !== undefined) out[${JSON.stringify(key)}] = ${l};\n`;
  }
  const body =
    `let ${[...locals.values()].join(', ')};\n` +
    'const names = Object.keys(o);\nfor (let i = 0; i < names.length; i++) {\n' +
    `const k = names[i];\nswitch (k) {\n${cases}default: unknownKey(ctx, k);\n}\n}\nconst out = {};\n${build}return out;`;
  // Generated from our own schemas only (keys checked above); never from input.
  const make = new Function(
    'str',
    'val',
    'unknownKey',
    'ip',
    'subs',
    `return function copy(o, ctx, depth) {\n${body}\n}`,
  );
  return { k: K.Object, keys, copy: make(str, val, unknownKey, ipField, subs) as CopyFn };
}

function shapeOf(s: TSchema): Shape {
  if (s.type === 'object' && s.patternProperties !== undefined) {
    const values = Object.values(s.patternProperties as Record<string, TSchema>);
    return { k: K.Free, values: values.length === 1 ? shapeOf(values[0] as TSchema) : ANY };
  }
  if (s.type === 'object' && s.properties !== undefined) {
    const keys = new Map<string, Shape>();
    for (const [k, v] of Object.entries(s.properties as Record<string, TSchema>)) keys.set(k, shapeOf(v));
    return objShape(keys);
  }
  if (s.type === 'array' && s.items !== undefined) return { k: K.Array, items: shapeOf(s.items as TSchema) };
  if (s.type === 'string') {
    const max = (s.maxLength as number | undefined) ?? Number.POSITIVE_INFINITY;
    if (s.const !== undefined) return { k: K.String, line: true, scan: false, max };
    const restricted = ASCII_ONLY.has(s.format as string) || ASCII_ONLY.has(s.pattern as string);
    const ip = s.format === IP_FORMAT;
    return { k: K.String, line: s.pattern === SINGLE_LINE_PATTERN || restricted, scan: !restricted, ip, max };
  }
  if (Array.isArray(s.anyOf)) {
    const variants = (s.anyOf as TSchema[]).map(shapeOf);
    if (variants.every((v) => v.k === K.Object)) {
      // A union of fixed-field objects (e.g. `result`): allow the union of their keys here; the compiled
      // check then holds the value to exactly one variant.
      const keys = new Map<string, Shape>();
      for (const v of variants as ObjShape[]) {
        for (const [k, sub] of v.keys) {
          const had = keys.get(k);
          keys.set(k, had !== undefined && had !== sub ? mergeShape(had, sub) : sub);
        }
      }
      return objShape(keys);
    }
    const strs = variants.filter((v): v is StrShape => v.k === K.String);
    if (strs.length === variants.length) {
      return {
        k: K.String,
        line: strs.every((v) => v.line),
        scan: strs.some((v) => v.scan),
        max: Math.max(...strs.map((v) => v.max)),
      };
    }
    if (strs.length === 1 && variants.every((v) => v.k === K.String || v.k === K.Any)) {
      return { k: K.Any, str: strs[0] as StrShape }; // e.g. string | number | boolean
    }
    return ANY;
  }
  if (s.const !== undefined && typeof s.const === 'string') {
    return { k: K.String, line: true, scan: false, max: Number.POSITIVE_INFINITY };
  }
  return ANY;
}

function mergeShape(a: Shape, b: Shape): Shape {
  if (a.k === K.String && b.k === K.String) {
    return { k: K.String, line: a.line && b.line, scan: a.scan || b.scan, max: Math.max(a.max, b.max) };
  }
  return a.k === b.k && a.k !== K.Object && a.k !== K.Array ? a : ANY;
}

/**
 * A copy of `s` for the fast check: no additionalProperties on fixed-field objects (unless `closed`), no
 * single-line pattern, no ip format, and — for strings the walk scans, which it also holds to their length in
 * code points — maxLength doubled to the UTF-16 bound of that many code points.
 */
function relaxed(s: TSchema, closed = false): TSchema {
  const out: TSchema = { ...s };
  if (s.properties !== undefined && s.patternProperties === undefined) {
    if (!closed) delete out.additionalProperties;
    out.properties = Object.fromEntries(
      Object.entries(s.properties as Record<string, TSchema>).map(([k, v]) => [k, relaxed(v)]),
    );
  }
  if (s.patternProperties !== undefined) {
    out.patternProperties = Object.fromEntries(
      Object.entries(s.patternProperties as Record<string, TSchema>).map(([k, v]) => [k, relaxed(v)]),
    );
  }
  if (s.items !== undefined) out.items = relaxed(s.items as TSchema);
  // Union variants stay closed: the walk allowed the union of their keys, the check picks one variant.
  if (Array.isArray(s.anyOf))
    out.anyOf = (s.anyOf as TSchema[]).map((v) => relaxed(v, v.properties !== undefined));
  if (s.type === 'string' && s.const === undefined && typeof s.maxLength === 'number') {
    const restricted = ASCII_ONLY.has(s.format as string) || ASCII_ONLY.has(s.pattern as string);
    if (!restricted) out.maxLength = 2 * s.maxLength;
  }
  if (s.type === 'string' && s.pattern === SINGLE_LINE_PATTERN) delete out.pattern;
  if (s.type === 'string' && s.format === IP_FORMAT) delete out.format; // checked and normalized by the walk
  return out;
}

interface Compiled {
  shape: ObjShape;
  fast: TypeCheck<TSchema>;
  strict: TypeCheck<TObject>;
}

// Any character a string may not hold. With the `u` flag a well-formed surrogate pair is one code point
// (>= U+10000) and does not match \uD800-\uDFFF, so that range only catches lone surrogates.
// biome-ignore lint/suspicious/noControlCharactersInRegex: this regex exists to find control characters
const FORBIDDEN = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\uFEFF\uD800-\uDFFF]/u;
// The same, plus tab and newline: for single-line fields (identifiers, paths, enums).
// biome-ignore lint/suspicious/noControlCharactersInRegex: this regex exists to find control characters
const FORBIDDEN_LINE = /[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\uFEFF\uD800-\uDFFF]/u;

const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

interface Ctx {
  type: string;
  path: (string | number)[];
  chars: number;
  values: number;
  /**
   * False once a free-form object had a key that may be an array index (starts with a digit): JavaScript
   * enumerates such keys first, so JSON.stringify would not give RFC 8785 key order.
   */
  jsonOrder: boolean;
}

function fail(ctx: Ctx, rule: ValidationRule, detail: string, path = ctx.path): never {
  throw new AuditValidationError(ctx.type, renderPath(path), rule, detail);
}

const C0_NAMES: Record<number, string> = { 0: 'NUL', 27: 'ESC', 13: 'CR', 8: 'BS', 7: 'BEL', 127: 'DEL' };

/** Finds why `s` is refused by the string rules; undefined when it is not. */
export function stringViolation(
  s: string,
): { rule: ValidationRule; index: number; detail: string } | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const u = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a) || (c >= 0x7f && c <= 0x9f)) {
      const name = C0_NAMES[c] ?? (c >= 0x80 ? 'C1 control' : 'C0 control');
      return { rule: 'control-char', index: i, detail: `contains ${u} (${name}) at index ${i}` };
    }
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) {
      return { rule: 'bidi-override', index: i, detail: `contains bidi control ${u} at index ${i}` };
    }
    if (c === 0xfeff) return { rule: 'bom', index: i, detail: `contains U+FEFF at index ${i}` };
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      return { rule: 'lone-surrogate', index: i, detail: `contains unpaired surrogate ${u} at index ${i}` };
    }
    if (c >= 0xdc00 && c <= 0xdfff) {
      return { rule: 'lone-surrogate', index: i, detail: `contains unpaired surrogate ${u} at index ${i}` };
    }
  }
  return undefined;
}

/** True when `s` passes the string rules (see module doc). */
export function isSafeString(s: string): boolean {
  return !FORBIDDEN.test(s);
}

/** Slow path: says why `s` was refused (size budget, a forbidden character, or tab/newline in a single-line field). */
function failString(ctx: Ctx, s: string, what: string): never {
  if (ctx.chars > MAX_CHARS) fail(ctx, 'too-large', `strings add up to more than ${MAX_CHARS} characters`);
  const v = stringViolation(s);
  if (v !== undefined) fail(ctx, v.rule, `${what} ${v.detail}`);
  return fail(ctx, 'pattern', `${what} must be a single line (no tab or newline)`);
}

function checkString(ctx: Ctx, s: string, line: boolean, what: string): void {
  ctx.chars += s.length;
  if (ctx.chars > MAX_CHARS || (line ? FORBIDDEN_LINE : FORBIDDEN).test(s)) failString(ctx, s, what);
}

/** A string field of a fixed-field object (called by generated code). */
function str(ctx: Ctx, s: string, line: boolean, key: string, max: number): void {
  ctx.chars += s.length;
  if (ctx.chars > MAX_CHARS || (line ? FORBIDDEN_LINE : FORBIDDEN).test(s)) {
    ctx.path.push(key);
    failString(ctx, s, 'string');
  }
  if (s.length > max && codePointLength(s) > max) {
    ctx.path.push(key);
    fail(ctx, 'max-length', `longer than ${max} characters`);
  }
}

/** Length in Unicode code points of a string without lone surrogates. */
export function codePointLength(s: string): number {
  let pairs = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) pairs++;
  }
  return s.length - pairs;
}

/** An IP field (called by generated code): returns the canonical address text, or fails with rule `ip`. */
function ipField(ctx: Ctx, s: string, key: string): string {
  const n = tryNormalizeIp(s);
  if (n !== undefined) return n;
  ctx.path.push(key);
  if (FORBIDDEN.test(s)) failString(ctx, s, 'string');
  const why = tryParseIp(s);
  return fail(ctx, 'ip', `not an IPv4/IPv6 address (${typeof why === 'string' ? why : 'invalid'})`);
}

/** A non-string field of a fixed-field object (called by generated code). */
function val(ctx: Ctx, x: unknown, shape: Shape, depth: number, key: string): unknown {
  ctx.path.push(key);
  const r = copyValue(ctx, x, shape, depth);
  ctx.path.pop();
  return r;
}

/** A key that is not part of a fixed-field object (called by generated code). */
function unknownKey(ctx: Ctx, k: string): never {
  ctx.path.push(k);
  checkString(ctx, k, true, 'key');
  return fail(ctx, 'unknown-field', 'field is not part of this event type');
}

function checkPlain(ctx: Ctx, o: object): void {
  const proto = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) notPlain(ctx, o);
}

function notPlain(ctx: Ctx, o: object): never {
  const hint = o instanceof Date ? ' (use date.toISOString() for timestamps)' : '';
  const name = (o as { constructor?: { name?: unknown } }).constructor?.name;
  const what = typeof name === 'string' && /^[A-Za-z_$][\w$]{0,63}$/.test(name) ? `a ${name}` : 'this object';
  return fail(ctx, 'json-value', `${what} is not a JSON value; use a plain object${hint}`);
}

function copyValue(ctx: Ctx, v: unknown, shape: Shape, depth: number): unknown {
  if (++ctx.values > MAX_VALUES) fail(ctx, 'too-large', `more than ${MAX_VALUES} values`);
  switch (typeof v) {
    case 'string': {
      const ss = shape.k === K.String ? shape : shape.k === K.Any ? shape.str : undefined;
      checkString(ctx, v, ss?.line ?? false, 'string');
      if (ss !== undefined && v.length > ss.max && codePointLength(v) > ss.max) {
        fail(ctx, 'max-length', `longer than ${ss.max} characters`);
      }
      return v;
    }
    case 'number':
      if (!Number.isFinite(v)) fail(ctx, 'finite', 'number must be finite (no NaN or Infinity)');
      return v;
    case 'boolean':
      return v;
    case 'object':
      if (v === null) return v;
      if (depth >= MAX_DEPTH) fail(ctx, 'max-depth', `nested deeper than ${MAX_DEPTH} levels`);
      if (Array.isArray(v)) return copyArray(ctx, v, shape.k === K.Array ? shape.items : ANY, depth + 1);
      checkPlain(ctx, v);
      if (shape.k === K.Object) return shape.copy(v as Record<string, unknown>, ctx, depth + 1);
      return copyFreeForm(ctx, v, shape.k === K.Free ? shape.values : ANY, depth + 1);
    default:
      return fail(ctx, 'json-value', `${typeof v} is not a JSON value`);
  }
}

function copyArray(ctx: Ctx, a: unknown[], items: Shape, depth: number): unknown[] {
  const n = a.length;
  if (n > MAX_ARRAY) fail(ctx, 'max-items', `array longer than ${MAX_ARRAY} items`);
  const out = new Array<unknown>(n);
  for (let i = 0; i < n; i++) {
    ctx.path.push(i);
    const x = a[i];
    if (x === undefined) fail(ctx, 'json-value', 'undefined (or a hole) in an array');
    out[i] = copyValue(ctx, x, items, depth);
    ctx.path.pop();
  }
  return out;
}

/**
 * Copies a free-form object (changes{}, query{}, or a value inside one): any keys but the forbidden ones.
 * Keys are checked in the input's order; the copy holds them in RFC 8785 order (UTF-16 code units).
 */
function copyFreeForm(ctx: Ctx, o: object, values: Shape, depth: number): Record<string, unknown> {
  const names = Object.keys(o);
  const n = names.length;
  if (n > MAX_KEYS_PER_OBJECT) fail(ctx, 'max-properties', `more than ${MAX_KEYS_PER_OBJECT} keys`);
  let sorted = true;
  for (let i = 1; i < n; i++) {
    if ((names[i - 1] as string) > (names[i] as string)) {
      sorted = false;
      break;
    }
  }
  const out: Record<string, unknown> = {};
  const vals: unknown[] | null = sorted ? null : new Array<unknown>(n);
  for (let i = 0; i < n; i++) {
    const k = names[i] as string;
    ctx.path.push(k);
    if (FORBIDDEN_KEYS.has(k)) fail(ctx, 'forbidden-key', `key ${k} is not allowed (prototype pollution)`);
    checkString(ctx, k, true, 'key');
    const c = k.charCodeAt(0);
    if (c >= 0x30 && c <= 0x39) ctx.jsonOrder = false;
    const x = (o as Record<string, unknown>)[k];
    const y = x === undefined ? undefined : copyValue(ctx, x, values, depth);
    if (vals !== null) vals[i] = y;
    else if (y !== undefined) out[k] = y;
    ctx.path.pop();
  }
  if (vals !== null) {
    const order = new Array<number>(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => ((names[a] as string) < (names[b] as string) ? -1 : 1)); // keys are distinct
    for (let j = 0; j < n; j++) {
      const i = order[j] as number;
      const y = vals[i];
      if (y !== undefined) out[names[i] as string] = y;
    }
  }
  return out;
}

const COMPILED: ReadonlyMap<string, Compiled> = new Map(
  Object.entries(EVENT_SCHEMAS).map(([type, schema]) => [
    type,
    {
      shape: shapeOf(schema) as ObjShape,
      fast: TypeCompiler.Compile(relaxed(schema)),
      strict: TypeCompiler.Compile(schema as TObject),
    },
  ]),
);

/**
 * Validates an audit event and returns a fresh, normalized copy of it (see module doc).
 * @throws {AuditValidationError} naming the event type, the field path and the rule.
 */
export function validateEvent(input: unknown): AuditEvent {
  return validate(input, null);
}

/** A validated event and its RFC 8785 canonical JSON. */
export interface ValidatedEvent {
  event: AuditEvent;
  /** `canonicalize(event)`, computed without a second walk where possible. */
  json: string;
}

/**
 * {@link validateEvent}, also returning the event's RFC 8785 canonical JSON. The copy is built with its
 * keys in RFC 8785 order, so its canonical JSON is `JSON.stringify(copy)` (same string escaping and
 * number formatting as RFC 8785 §3.2.2) unless a free-form key may be an array index, which JavaScript
 * would enumerate first; then {@link canonicalize} is used.
 * @throws {AuditValidationError} naming the event type, the field path and the rule.
 */
export function validateEventJson(input: unknown): ValidatedEvent {
  const out: ValidatedEvent = { event: undefined as unknown as AuditEvent, json: '' };
  out.event = validate(input, out);
  return out;
}

function validate(input: unknown, withJson: ValidatedEvent | null): AuditEvent {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new AuditValidationError(
      '<not-an-object>',
      '',
      'not-object',
      'an audit event must be a plain object',
    );
  }
  let type: unknown;
  try {
    type = (input as { type?: unknown }).type;
  } catch (e) {
    // A getter or proxy trap threw: not a JSON value (same rule as inside the walk below).
    throw new AuditValidationError(
      '<unreadable>',
      'type',
      'json-value',
      `reading the value failed (${e instanceof Error ? e.name : typeof e})`,
      { cause: e },
    );
  }
  const c = typeof type === 'string' ? COMPILED.get(type) : undefined;
  if (c === undefined) {
    const label =
      type === undefined ? '<missing>' : typeof type === 'string' ? safeLabel(type) : `<${typeof type}>`;
    throw new AuditValidationError(label, 'type', 'unknown-event-type', 'not a known audit event type');
  }
  const ctx: Ctx = { type: type as string, path: [], chars: 0, values: 0, jsonOrder: true };
  let copy: Record<string, unknown>;
  try {
    checkPlain(ctx, input);
    copy = c.shape.copy(input as Record<string, unknown>, ctx, 0);
  } catch (e) {
    if (e instanceof AuditValidationError) throw e;
    // A getter or proxy trap threw (or a cycle overflowed the stack): not a JSON value.
    throw new AuditValidationError(
      ctx.type,
      renderPath(ctx.path),
      'json-value',
      `reading the value failed (${e instanceof Error ? e.name : typeof e})`,
      { cause: e },
    );
  }
  // The copy's `type` was read again by the walk; make sure it is the one we dispatched on.
  if (copy.type !== type) fail(ctx, 'unknown-event-type', '`type` changed while being read', ['type']);
  if (!c.fast.Check(copy)) explain(ctx, c, copy);
  if (withJson !== null) withJson.json = ctx.jsonOrder ? JSON.stringify(copy) : canonicalize(copy);
  return copy as unknown as AuditEvent;
}

// ---------------------------------------------------------------------------------------------
// Error explanation (slow path only)
// ---------------------------------------------------------------------------------------------

const PATTERN_TEXT: Record<string, string> = {
  [SINGLE_LINE_PATTERN]: 'must be a single line (no tab or newline)',
  [KEY_PATTERN]: 'key must match [A-Za-z_][A-Za-z0-9_.-]{0,63}',
  [HASH_PATTERN]: 'must be 64 or 128 lower-case hex digits',
  [TOKEN_FINGERPRINT_PATTERN]:
    'must be a token fingerprint "token:" + 6 lower-case hex digits (use tokenFingerprint())',
  [TOKEN_PREFIX_PATTERN]: 'must be a token fingerprint or at most 8 visible ASCII characters',
  [SHA256_PATTERN]: 'must be 64 lower-case hex digits (SHA-256)',
};

function describeSchema(s: TSchema): string {
  const anyOf = (s.anyOf ?? []) as TSchema[];
  if (anyOf.every((x) => x.const !== undefined)) {
    return `must be one of ${anyOf.map((x) => JSON.stringify(x.const)).join(', ')}`;
  }
  if (anyOf.every((x) => x.properties?.status?.const !== undefined)) {
    return `must be one of ${anyOf
      .map(
        (x) =>
          `{status:${JSON.stringify(x.properties.status.const)}${Object.keys(x.properties)
            .filter((k) => k !== 'status')
            .map((k) => `, ${k}`)
            .join('')}}`,
      )
      .join(' | ')}`;
  }
  if (anyOf.every((x) => typeof x.type === 'string' && x.properties === undefined)) {
    return `must be a ${anyOf.map((x) => x.type).join(' or a ')}`;
  }
  return 'matches none of the allowed shapes';
}

function ruleOf(e: ValueError): { rule: ValidationRule; detail: string } {
  const s = e.schema;
  switch (e.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return { rule: 'required', detail: 'required field is missing' };
    case ValueErrorType.ObjectAdditionalProperties:
      // In a free-form object (changes{}, query{}) an "additional" key is one that breaks the key pattern.
      return s.patternProperties !== undefined
        ? { rule: 'pattern', detail: PATTERN_TEXT[KEY_PATTERN] as string }
        : { rule: 'unknown-field', detail: 'field is not part of this event type' };
    case ValueErrorType.ObjectMaxProperties:
      return { rule: 'max-properties', detail: `more than ${s.maxProperties} keys` };
    case ValueErrorType.StringMaxLength:
      return { rule: 'max-length', detail: `longer than ${s.maxLength} characters` };
    case ValueErrorType.StringMinLength:
      return {
        rule: 'min-length',
        detail: s.minLength === 1 ? 'must not be empty' : `shorter than ${s.minLength}`,
      };
    case ValueErrorType.StringPattern:
      return { rule: 'pattern', detail: PATTERN_TEXT[s.pattern as string] ?? `must match ${s.pattern}` };
    case ValueErrorType.StringFormat:
      if (s.format === TIMESTAMP_FORMAT) {
        return { rule: 'timestamp', detail: 'must be an RFC 3339 date-time like 2026-01-31T12:00:00.000Z' };
      }
      if (s.format === IP_FORMAT) {
        const why = tryParseIp(e.value);
        return {
          rule: 'ip',
          detail: `not an IPv4/IPv6 address (${typeof why === 'string' ? why : 'invalid'})`,
        };
      }
      return { rule: 'pattern', detail: `must have format ${s.format}` };
    case ValueErrorType.Integer:
      return typeof e.value === 'number'
        ? { rule: 'integer', detail: 'must be an integer' }
        : { rule: 'type', detail: `must be an integer, got ${jsonType(e.value)}` };
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return { rule: 'minimum', detail: `must be >= ${s.minimum}` };
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return { rule: 'maximum', detail: `must be <= ${s.maximum}` };
    case ValueErrorType.ArrayMaxItems:
      return { rule: 'max-items', detail: `more than ${s.maxItems} items` };
    case ValueErrorType.ArrayMinItems:
      return { rule: 'min-items', detail: `fewer than ${s.minItems} items` };
    case ValueErrorType.Union:
      return Array.isArray(s.anyOf) && s.anyOf.every((x: TSchema) => x.const !== undefined)
        ? { rule: 'enum', detail: describeSchema(s) }
        : { rule: 'shape', detail: describeSchema(s) };
    case ValueErrorType.Literal:
      return { rule: 'enum', detail: `must be ${JSON.stringify(s.const)}` };
    default:
      return { rule: 'type', detail: `must be ${s.type ?? 'a different type'}, got ${jsonType(e.value)}` };
  }
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * False for a maxLength complaint of the strict schema that only counts UTF-16 code units: our limits count
 * characters (code points), which the walk has already enforced.
 */
function real(e: ValueError): boolean {
  return !(
    e.type === ValueErrorType.StringMaxLength &&
    typeof e.value === 'string' &&
    codePointLength(e.value) <= (e.schema.maxLength as number)
  );
}

/**
 * Picks the most specific real error: inside a union, the variant whose discriminant matched (or, for a
 * primitive, the variant of its JSON type). Undefined when `e` is not a real error.
 */
function specific(e: ValueError): ValueError | undefined {
  if (e.type !== ValueErrorType.Union || !Array.isArray(e.schema.anyOf)) return real(e) ? e : undefined;
  const variants = e.schema.anyOf as TSchema[];
  const v = e.value as Record<string, unknown> | null;
  if (typeof v !== 'object' || v === null) {
    // A primitive: report against the variant of its own JSON type (e.g. a too-long string in query{}).
    const t = jsonType(v);
    const i = variants.findIndex((x) => x.type === t || (t === 'number' && x.type === 'integer'));
    if (i < 0) return e;
    for (const x of e.errors[i] as Iterable<ValueError>) {
      const r = specific(x);
      if (r !== undefined) return r;
    }
    return undefined; // the value does match that variant
  }
  for (let i = 0; i < e.errors.length; i++) {
    if (variants[i]?.properties === undefined) continue; // not an object variant
    const errs = [...(e.errors[i] as Iterable<ValueError>)];
    // A variant that complains about the discriminant is not the one the value meant; skip it.
    if (errs.length === 0 || errs.some((x) => x.path === `${e.path}/status` || x.path === `${e.path}/type`)) {
      continue;
    }
    for (const x of errs) {
      const r = specific(x);
      if (r !== undefined) return r;
    }
    return undefined; // the value does match that variant
  }
  return e;
}

/** Slow path: applies the string rules to every string of the copy, the unscanned ones included. */
function diagnoseStrings(ctx: Ctx, v: unknown, shape: Shape): void {
  if (typeof v === 'string') {
    const line = shape.k === K.String && shape.line;
    if ((line ? FORBIDDEN_LINE : FORBIDDEN).test(v)) failString(ctx, v, 'string');
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      ctx.path.push(i);
      diagnoseStrings(ctx, v[i], shape.k === K.Array ? shape.items : ANY);
      ctx.path.pop();
    }
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      ctx.path.push(k);
      diagnoseStrings(ctx, x, shape.k === K.Object ? (shape.keys.get(k) ?? ANY) : ANY);
      ctx.path.pop();
    }
  }
}

function explain(ctx: Ctx, c: Compiled, copy: Record<string, unknown>): never {
  ctx.path.length = 0;
  ctx.chars = 0;
  diagnoseStrings(ctx, copy, c.shape);
  for (const x of c.strict.Errors(copy)) {
    const e = specific(x);
    if (e === undefined) continue;
    const { rule, detail } = ruleOf(e);
    fail(ctx, rule, detail, pointerToPath(e.path, copy));
  }
  return fail(ctx, 'type', 'schema check failed', []);
}

/** JSON Pointer (RFC 6901) -> our path segments; numeric segments become indices where the parent is an array. */
function pointerToPath(pointer: string, root: unknown): (string | number)[] {
  if (pointer === '') return [];
  const out: (string | number)[] = [];
  let cur: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur) && /^\d+$/.test(seg)) {
      out.push(Number(seg));
      cur = cur[Number(seg)];
    } else {
      out.push(seg);
      cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Renders path segments as `actor.user_id`, `scope[2]`, `changes["bad key"]` (untrusted keys escaped). */
export function renderPath(path: readonly (string | number)[]): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else if (PLAIN_KEY.test(p) && p.length <= 64) s += s === '' ? p : `.${p}`;
    else s += `[${safeLabel(p)}]`;
  }
  return s;
}

/**
 * Makes an untrusted string (an attacker's path, a client's error text) safe to put in an event:
 * every character the string rules refuse becomes a visible `\u{XXXX}` escape (backslashes are doubled
 * first, so the result is unambiguous), and the result is cut to `max` characters with a `…` marker.
 */
export function escapeForAudit(s: string, max: number = LIMITS.text): string {
  let out = s.includes('\\') ? s.replace(/\\/g, '\\\\') : s;
  if (FORBIDDEN.test(out)) {
    let r = '';
    for (let i = 0; i < out.length; i++) {
      const c = out.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < out.length) {
        const d = out.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          r += out[i] + (out[i + 1] as string);
          i++;
          continue;
        }
      }
      const ch = out[i] as string;
      r += stringViolation(ch) === undefined ? ch : `\\u{${c.toString(16).toUpperCase().padStart(4, '0')}}`;
    }
    out = r;
  }
  if (out.length > max) {
    let cut = max - 1;
    const c = out.charCodeAt(cut - 1);
    if (c >= 0xd800 && c <= 0xdbff) cut--; // do not split a surrogate pair
    out = `${out.slice(0, cut)}…`;
  }
  return out;
}
