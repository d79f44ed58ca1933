/**
 * Typed errors of @vramseal/audit. Every error has a string `code` callers can switch on.
 * Messages never contain event values (they may be hostile or secret): only the event type,
 * the field path and the rule, each rendered safely (see {@link safeLabel}).
 */

export type AuditErrorCode =
  | 'INVALID_EVENT'
  | 'INVALID_IP'
  | 'AUDIT_UNAVAILABLE'
  | 'AUDIT_LOCKED'
  | 'AUDIT_CONFIG'
  | 'AUDIT_CORRUPT'
  | 'AUDIT_DROPPED'
  | 'AUDIT_IO';

/** Base class of every error this package throws on purpose. */
export class AuditError extends Error {
  readonly code: AuditErrorCode;
  constructor(code: AuditErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The validation rule an event broke. Stable strings: tests, metrics and callers may switch on them.
 *
 * - `not-object`: the event (or a nested value that must be an object) is not a plain object
 * - `unknown-event-type`: `type` missing or not one of {@link AUDIT_EVENT_TYPES}
 * - `required` / `unknown-field`: a field is missing / not part of the event type's schema
 * - `type`: wrong JSON type (e.g. a number where a string is required)
 * - `enum`: a string outside its allowed set (auth_method, severity, ...)
 * - `min-length` / `max-length`: string length in characters (Unicode code points)
 * - `pattern`: the string does not have the required shape (hash, fingerprint, single-line id, ...)
 * - `timestamp`: not a strict RFC 3339 date-time; `ip`: not an IPv4/IPv6 address
 * - `integer`, `minimum`, `maximum`, `finite`: number rules (counts are non-negative safe integers)
 * - `min-items` / `max-items`: array length; `max-properties`: keys in a free-form object
 * - `control-char`: NUL, ESC, other C0/C1 control characters or DEL (tab and newline are allowed)
 * - `bidi-override`: U+202A–U+202E or U+2066–U+2069; `bom`: U+FEFF; `lone-surrogate`: unpaired UTF-16 surrogate
 * - `forbidden-key`: `__proto__`, `constructor` or `prototype` used as an object key
 * - `max-depth`: nesting too deep; `too-large`: the event's strings add up to more than the size budget
 * - `json-value`: a value JSON cannot represent (undefined in an array, function, bigint, symbol, Date, Map, ...)
 * - `shape`: a value matches none of the allowed variants (e.g. `result`)
 */
export type ValidationRule =
  | 'not-object'
  | 'unknown-event-type'
  | 'required'
  | 'unknown-field'
  | 'type'
  | 'enum'
  | 'min-length'
  | 'max-length'
  | 'pattern'
  | 'timestamp'
  | 'ip'
  | 'integer'
  | 'minimum'
  | 'maximum'
  | 'finite'
  | 'min-items'
  | 'max-items'
  | 'max-properties'
  | 'control-char'
  | 'bidi-override'
  | 'bom'
  | 'lone-surrogate'
  | 'forbidden-key'
  | 'max-depth'
  | 'too-large'
  | 'json-value'
  | 'shape';

/**
 * An event was rejected by {@link validateEvent}. Nothing of it was written anywhere.
 * `eventType` is the event's `type` when it is a known type, else a safe rendering of it
 * (or `<missing>`); `path` is the field (`actor.user_id`, `scope[2]`, `changes["a b"]`, or `` for the
 * event itself); `rule` is a {@link ValidationRule}. The message names all three.
 */
export class AuditValidationError extends AuditError {
  declare readonly code: 'INVALID_EVENT';
  constructor(
    readonly eventType: string,
    readonly path: string,
    readonly rule: ValidationRule,
    detail: string,
    opts: { cause?: unknown } = {},
  ) {
    super(
      'INVALID_EVENT',
      `invalid audit event ${eventType}: ${path || '<event>'} violates rule ${rule}: ${detail}`,
      opts,
    );
  }
}

/** {@link parseIp} was given something that is not an IPv4 or IPv6 address. */
export class InvalidIpError extends AuditError {
  declare readonly code: 'INVALID_IP';
  constructor(readonly reason: string) {
    super('INVALID_IP', `invalid IP address: ${reason}`);
  }
}

/** The trail cannot accept events now (fail-closed after an I/O error, or closed). */
export class AuditUnavailableError extends AuditError {
  declare readonly code: 'AUDIT_UNAVAILABLE';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('AUDIT_UNAVAILABLE', message, opts);
  }
}

/** Another process holds the trail's writer lock. */
export class AuditLockedError extends AuditError {
  declare readonly code: 'AUDIT_LOCKED';
  constructor(
    readonly dir: string,
    readonly holderPid: number | undefined,
    message?: string,
  ) {
    super(
      'AUDIT_LOCKED',
      message ??
        `audit trail ${dir} is locked by another writer${holderPid === undefined ? ' (pid unknown)' : ` (pid ${holderPid})`}`,
    );
  }
}

/**
 * Renders an untrusted string for an error message: at most `max` characters, JSON-quoted with every
 * character outside printable ASCII escaped as \uXXXX, so it cannot inject control sequences into logs.
 */
export function safeLabel(s: string, max = 64): string {
  const cut = s.length > max ? s.slice(0, max) : s;
  let out = '"';
  for (let i = 0; i < cut.length; i++) {
    const c = cut.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += `\\${cut[i]}`;
    else if (c >= 0x20 && c < 0x7f) out += cut[i];
    else out += `\\u${c.toString(16).padStart(4, '0')}`;
  }
  return `${out}"${s.length > max ? `…(${s.length} chars)` : ''}`;
}
