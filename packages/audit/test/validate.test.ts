import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalize } from '../src/canonical.js';
import { AuditError, AuditValidationError, type ValidationRule } from '../src/errors.js';
import { AUDIT_EVENT_TYPES, type AuditEventType, LIMITS } from '../src/events.js';
import { isRfc3339 } from '../src/rfc3339.js';
import { escapeForAudit, isSafeString, renderPath, stringViolation, validateEvent } from '../src/validate.js';
import { validEvent } from './fixtures/event-arbitrary.js';
import { sample, TS } from './fixtures/sample-events.js';

const RUNS = Number(process.env.FC_RUNS ?? 150);

// ---------------------------------------------------------------------------------------------
// Helpers: an independent oracle for the string rules, and leaf enumeration
// ---------------------------------------------------------------------------------------------

/** Oracle (code-point iteration, written independently of validate.ts): the rule `s` breaks, if any. */
function oracle(s: string): ValidationRule | undefined {
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    if ((cp < 0x20 && cp !== 0x09 && cp !== 0x0a) || (cp >= 0x7f && cp <= 0x9f)) return 'control-char';
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) return 'bidi-override';
    if (cp === 0xfeff) return 'bom';
    if (cp >= 0xd800 && cp <= 0xdfff) return 'lone-surrogate';
  }
  return undefined;
}

type Seg = string | number;
/** Every string leaf of `v` with its path. */
function stringLeaves(v: unknown, path: Seg[] = []): { path: Seg[]; value: string }[] {
  if (typeof v === 'string') return [{ path, value: v }];
  if (Array.isArray(v)) return v.flatMap((x, i) => stringLeaves(x, [...path, i]));
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v).flatMap(([k, x]) =>
      path.length === 0 && k === 'type' ? [] : stringLeaves(x, [...path, k]),
    );
  }
  return [];
}

function setAt(root: Record<string, unknown>, path: Seg[], value: unknown): void {
  let cur = root as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) cur = cur[seg] as Record<string | number, unknown>;
  cur[path[path.length - 1] as Seg] = value;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

function rejects(input: unknown, expect: { path?: string; rule?: ValidationRule; eventType?: string }) {
  try {
    validateEvent(input);
  } catch (e) {
    assert.ok(e instanceof AuditValidationError, `not an AuditValidationError: ${e}`);
    assert.ok(e instanceof AuditError);
    assert.equal(e.code, 'INVALID_EVENT');
    for (const [k, v] of Object.entries(expect)) assert.equal((e as never)[k], v, `${k} in: ${e.message}`);
    // The message names type, path and rule, and is itself safe to log.
    assert.ok(e.message.includes(e.eventType) && e.message.includes(e.rule));
    if (e.path) assert.ok(e.message.includes(e.path));
    assert.equal(oracle(e.message), undefined, 'error message must not carry hostile characters');
    assert.ok(!e.message.includes('\n'));
    return e;
  }
  assert.fail(`accepted: ${JSON.stringify(input)}`);
}

/** Characters the string rules refuse, one per class, plus random picks from each forbidden range. */
const forbiddenChar = fc.oneof(
  fc.constantFrom(
    '\u0000',
    '\u001b',
    '\r',
    '\u0008',
    '\u007f',
    '\u0085',
    '\u009b',
    '\u202e',
    '\u2066',
    '\ufeff',
  ),
  fc
    .integer({ min: 0, max: 0x1f })
    .filter((c) => c !== 9 && c !== 10)
    .map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0x7f, max: 0x9f }).map((c) => String.fromCharCode(c)),
  fc
    .constantFrom(0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069)
    .map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), // lone surrogate (ASCII around it)
);
/** Printable ASCII without tab/newline, so that it is valid in every field. */
const asciiSafe = fc.string({
  maxLength: 8,
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
});
const hostile = fc.tuple(asciiSafe, forbiddenChar, asciiSafe).map(([a, b, c]) => a + b + c);

// ---------------------------------------------------------------------------------------------
// Hostile strings in every field (property tests)
// ---------------------------------------------------------------------------------------------

test('property: a hostile string in ANY string field of ANY event type is rejected, naming type, path and rule', () => {
  const cases = AUDIT_EVENT_TYPES.flatMap((t) => stringLeaves(sample(t)).map((l) => ({ t, path: l.path })));
  assert.ok(cases.length > 150, `only ${cases.length} string fields`);
  fc.assert(
    fc.property(fc.constantFrom(...cases), hostile, ({ t, path }, bad) => {
      const e = sample(t);
      setAt(e, path, bad);
      rejects(e, { eventType: t, path: renderPath(path), rule: oracle(bad) as ValidationRule });
    }),
    { numRuns: RUNS * 4 },
  );
});

test('every string field of every event type is covered: each rejects ESC, NUL, DEL, C1, bidi, BOM, lone surrogates', () => {
  const bads: [string, ValidationRule][] = [
    ['\u001b[31mred', 'control-char'],
    ['a\u0000b', 'control-char'],
    ['a\u007f', 'control-char'],
    ['\u009b2J', 'control-char'],
    ['abc\u202edcba', 'bidi-override'],
    ['\u2067x', 'bidi-override'],
    ['\ufeffx', 'bom'],
    ['x\ud800', 'lone-surrogate'],
    ['\udc00x', 'lone-surrogate'],
  ];
  for (const t of AUDIT_EVENT_TYPES) {
    for (const { path } of stringLeaves(sample(t))) {
      for (const [bad, rule] of bads) {
        const e = sample(t);
        setAt(e, path, bad);
        rejects(e, { eventType: t, path: renderPath(path), rule });
      }
    }
  }
});

test('property: hostile object keys are rejected at any depth (fixed and free-form objects)', () => {
  fc.assert(
    fc.property(
      hostile,
      fc.constantFrom<AuditEventType>('pool.modified', 'audit.admin_query', 'authz.denied'),
      (key, t) => {
        const e = sample(t);
        const target = (
          t === 'pool.modified' ? e.changes : t === 'audit.admin_query' ? e.query : e.actor
        ) as Record<string, unknown>;
        target[key] = 1;
        const parent = t === 'pool.modified' ? 'changes' : t === 'audit.admin_query' ? 'query' : 'actor';
        rejects(e, { eventType: t, path: renderPath([parent, key]), rule: oracle(key) as ValidationRule });
      },
    ),
    { numRuns: RUNS },
  );
  const e = sample('pool.modified');
  (e.changes as Record<string, unknown>).replicas = { 'to\u001b': 4 };
  rejects(e, { path: 'changes.replicas["to\\u001b"]', rule: 'control-char' });
  const top = { ...sample('vram.sealed'), 'x\u202e': 1 };
  rejects(top, { path: '["x\\u202e"]', rule: 'bidi-override' });
});

test('property: the string rules agree with an independent oracle on arbitrary Unicode (free text field)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
      const e = sample('security.path_traversal_attempt');
      e.attempted_path = s;
      const rule = oracle(s);
      assert.equal(isSafeString(s), rule === undefined);
      assert.equal(stringViolation(s)?.rule, rule);
      if (rule === undefined)
        assert.equal((validateEvent(e) as { attempted_path: string }).attempted_path, s);
      else rejects(e, { path: 'attempted_path', rule });
    }),
    { numRuns: RUNS * 2 },
  );
});

test('property: escapeForAudit makes any string acceptable as free text, and is injective on safe input', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), (s) => {
      const x = escapeForAudit(s);
      assert.ok(x.length <= LIMITS.text);
      assert.equal(oracle(x), undefined);
      const e = sample('security.path_traversal_attempt');
      e.attempted_path = x;
      validateEvent(e);
      if (oracle(s) === undefined && !s.includes('\\') && s.length <= LIMITS.text) assert.equal(x, s);
    }),
    { numRuns: RUNS },
  );
  assert.equal(escapeForAudit('../\u0000etc\u001b[0m\\x'), '../\\u{0000}etc\\u{001B}[0m\\\\x');
  assert.equal(escapeForAudit('abcdef', 4), 'abc…');
  assert.equal(escapeForAudit('abc\u{1F600}', 4), 'abc…');
  assert.equal(escapeForAudit('a\u{1F600}bc', 3), 'a…'); // never splits a surrogate pair
});

test('tab and newline: allowed in free text, refused in identifiers, paths and enums', () => {
  const e = sample('security.policy_violation');
  e.details = 'line 1\n\tline 2';
  assert.equal((validateEvent(e) as { details: string }).details, 'line 1\n\tline 2');
  for (const [t, path] of [
    ['security.policy_violation', ['worker_id']],
    ['auth.success', ['path']],
    ['auth.success', ['actor', 'user_id']],
    ['token.created', ['scope', 1]],
  ] as [AuditEventType, Seg[]][]) {
    for (const ws of ['\t', '\n']) {
      const x = sample(t);
      setAt(x, path, `a${ws}b`);
      rejects(x, { path: renderPath(path), rule: 'pattern' });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Lengths, numbers, timestamps
// ---------------------------------------------------------------------------------------------

test('length limits in characters (code points): ids 256, free text 1024, paths 1024; empty ids refused', () => {
  const emoji = '\u{1F600}'; // one character, two UTF-16 code units
  const e = sample('vram.sealed');
  e.shard_id = 'x'.repeat(256);
  validateEvent(e);
  e.shard_id = 'x'.repeat(257);
  rejects(e, { path: 'shard_id', rule: 'max-length' });
  e.shard_id = emoji.repeat(256); // 256 characters, 512 code units
  validateEvent(e);
  e.shard_id = emoji.repeat(257);
  rejects(e, { path: 'shard_id', rule: 'max-length' });
  e.shard_id = `${'x'.repeat(255)}${emoji}`;
  validateEvent(e);
  e.shard_id = '';
  rejects(e, { path: 'shard_id', rule: 'min-length' });
  const f = sample('seal.verification_failed');
  f.reason = 'r'.repeat(1024);
  validateEvent(f);
  f.reason = emoji.repeat(1024);
  validateEvent(f);
  f.reason = 'r'.repeat(1025);
  rejects(f, { path: 'reason', rule: 'max-length' });
  f.reason = emoji.repeat(1025);
  rejects(f, { path: 'reason', rule: 'max-length' });
  const p = sample('auth.success');
  p.path = `/${'p'.repeat(1023)}`;
  validateEvent(p);
  p.path = `/${'p'.repeat(1024)}`;
  rejects(p, { path: 'path', rule: 'max-length' });
  // inside arrays, free-form values and union variants the same rule holds
  const t = sample('token.created');
  t.scope = ['a', emoji.repeat(256)];
  validateEvent(t);
  t.scope = ['a', emoji.repeat(257)];
  rejects(t, { path: 'scope[1]', rule: 'max-length' });
  const q = sample('audit.admin_query');
  (q.query as Record<string, unknown>).filter = emoji.repeat(1024);
  validateEvent(q);
  (q.query as Record<string, unknown>).filter = 'q'.repeat(1025);
  rejects(q, { path: 'query.filter', rule: 'max-length' });
  (q.query as Record<string, unknown>).filter = emoji.repeat(1025);
  rejects(q, { path: 'query.filter', rule: 'max-length' });
  const r = sample('task.completed');
  r.result = { status: 'failure', reason: emoji.repeat(1000) };
  validateEvent(r);
  r.result = { status: 'failure', reason: emoji.repeat(1025) };
  rejects(r, { path: 'result.reason', rule: 'max-length' });
  // a long-but-valid astral string elsewhere does not mask (or fake) the real error
  r.result = { status: 'failure', reason: emoji.repeat(1000) };
  r.worker_id = emoji.repeat(200);
  r.tokens_generated = -1;
  rejects(r, { path: 'tokens_generated', rule: 'minimum' });
  // hashes and other ASCII-only fields: exact lengths
  const a = sample('audit.file_deleted');
  a.sha256 = 'a'.repeat(65);
  rejects(a, { path: 'sha256', rule: 'max-length' });
});

test('numbers: finite everywhere; counts are non-negative safe integers', () => {
  const cases: [unknown, ValidationRule][] = [
    [Number.NaN, 'finite'],
    [Number.POSITIVE_INFINITY, 'finite'],
    [Number.NEGATIVE_INFINITY, 'finite'],
    [-1, 'minimum'],
    [1.5, 'integer'],
    [2 ** 53, 'maximum'],
    ['5', 'type'],
    [null, 'type'],
    [5n, 'json-value'],
  ];
  for (const [v, rule] of cases) {
    const e = sample('vram.sealed');
    e.vram_bytes = v;
    rejects(e, { path: 'vram_bytes', rule });
  }
  const d = sample('task.completed');
  d.duration_ms = -0.5;
  rejects(d, { path: 'duration_ms', rule: 'minimum' });
  d.duration_ms = 0.5;
  validateEvent(d);
  const m = sample('pool.modified');
  (m.changes as Record<string, unknown>).x = [1, Number.NaN];
  rejects(m, { path: 'changes.x[1]', rule: 'finite' });
  const r = sample('security.suspicious_activity');
  r.risk_score = 101;
  rejects(r, { path: 'risk_score', rule: 'maximum' });
  const g = sample('pool.created');
  g.gpu_devices = [0, -1];
  rejects(g, { path: 'gpu_devices[1]', rule: 'minimum' });
});

test('timestamps: strict RFC 3339', () => {
  const good = [
    '2026-11-27T04:36:42Z',
    '2026-11-27T04:36:42.1Z',
    '2026-11-27T04:36:42.123456789Z',
    '2026-11-27T04:36:42+05:30',
    '2026-11-27T04:36:42.5-08:00',
    '2024-02-29T00:00:00Z',
    '2000-02-29T00:00:00Z',
    '2016-12-31T23:59:60Z',
    '2016-12-31T15:59:60-08:00',
    '0001-01-01T00:00:00Z',
  ];
  const bad = [
    '2026-11-27 04:36:42Z',
    '2026-11-27t04:36:42z',
    '2026-11-27T04:36:42',
    '2026-11-27T04:36Z',
    '2026-11-27',
    '2026-13-01T00:00:00Z',
    '2026-00-01T00:00:00Z',
    '2026-04-31T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '1900-02-29T00:00:00Z',
    '2026-11-27T24:00:00Z',
    '2026-11-27T23:60:00Z',
    '2026-11-27T12:00:60Z',
    '2026-11-27T04:36:42.Z',
    '2026-11-27T04:36:42.1234567890Z',
    '2026-11-27T04:36:42+24:00',
    '2026-11-27T04:36:42+05:60',
    '2026-11-27T04:36:42+0530',
    '2026-11-27T04:36:42Z ',
    ' 2026-11-27T04:36:42Z',
    '+2026-11-27T04:36:42Z',
    '2026-11-27T04:36:42.123Zjunk',
    '２026-11-27T04:36:42Z',
    '1764218202',
    '',
  ];
  for (const s of good) assert.ok(isRfc3339(s), s);
  for (const s of bad) assert.equal(isRfc3339(s), false, s);
  for (const s of bad.filter((x) => oracle(x) === undefined)) {
    rejects({ ...sample('vram.sealed'), timestamp: s }, { path: 'timestamp', rule: 'timestamp' });
    rejects({ ...sample('compliance.gdpr_right_to_erasure'), completed_at: s }, { path: 'completed_at' });
  }
  rejects({ ...sample('vram.sealed'), timestamp: 1764218202000 }, { path: 'timestamp', rule: 'type' });
  // agrees with Date for every valid non-leap-second stamp
  fc.assert(
    fc.property(
      fc.date({
        min: new Date('0001-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59Z'),
        noInvalidDate: true,
      }),
      (d) => {
        assert.ok(isRfc3339(d.toISOString()), d.toISOString());
      },
    ),
    { numRuns: RUNS },
  );
});

// ---------------------------------------------------------------------------------------------
// Structure: free-form objects, prototype pollution, depth, sizes, JSON-ness
// ---------------------------------------------------------------------------------------------

test('__proto__, constructor and prototype keys are refused in free-form objects (also from JSON.parse)', () => {
  for (const k of ['__proto__', 'constructor', 'prototype']) {
    const m = sample('pool.modified');
    m.changes = JSON.parse(`{"${k}": {"polluted": true}}`);
    rejects(m, { path: renderPath(['changes', k]), rule: 'forbidden-key' });
    const nested = sample('pool.modified');
    nested.changes = JSON.parse(`{"a": {"b": [{"${k}": 1}]}}`);
    rejects(nested, { path: renderPath(['changes', 'a', 'b', 0, k]), rule: 'forbidden-key' });
    const q = sample('audit.admin_query');
    q.query = JSON.parse(`{"${k}": "x"}`);
    rejects(q, { path: renderPath(['query', k]), rule: 'forbidden-key' });
    const top = JSON.parse(JSON.stringify(sample('vram.sealed')).replace('{', `{"${k}":1,`));
    rejects(top, { path: k, rule: 'unknown-field' });
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // An object whose prototype was set by a literal __proto__ is not a plain object.
  const m = sample('pool.modified');
  m.changes = { __proto__: { evil: 1 }, a: 1 };
  rejects(m, { path: 'changes', rule: 'json-value' });
});

test('free-form keys must match the key pattern; free-form sizes and depth are bounded', () => {
  const m = sample('pool.modified');
  m.changes = { 'a b': 1 };
  rejects(m, { path: 'changes["a b"]', rule: 'pattern' });
  m.changes = { ['k'.repeat(65)]: 1 };
  rejects(m, { rule: 'pattern' });
  m.changes = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i]));
  rejects(m, { path: 'changes', rule: 'max-properties' });
  m.changes = { deep: { a: { b: { c: { d: 1 } } } } };
  validateEvent(m); // objects nested 6 deep below the event: changes=1, deep=2, a=3, b=4, c=5, d's object=6
  m.changes = { deep: { a: { b: { c: { d: { e: 1 } } } } } };
  validateEvent(m);
  m.changes = { deep: { a: { b: { c: { d: { e: [1] } } } } } };
  rejects(m, { path: 'changes.deep.a.b.c.d.e', rule: 'max-depth' });
  m.changes = { list: Array.from({ length: 257 }, () => 1) };
  rejects(m, { path: 'changes.list', rule: 'max-items' });
  m.changes = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'x'.repeat(1100)]));
  rejects(m, { rule: 'too-large' });
  const cyc: Record<string, unknown> = {};
  cyc.self = cyc;
  m.changes = { cyc };
  rejects(m, { rule: 'max-depth' });
  const q = sample('audit.admin_query');
  q.query = { nested: { a: 1 } };
  rejects(q, { path: 'query.nested', rule: 'shape' });
  q.query = { list: [1] };
  rejects(q, { path: 'query.list', rule: 'shape' });
  const g = sample('pool.created');
  g.gpu_devices = Array.from({ length: 65 }, (_, i) => i);
  rejects(g, { path: 'gpu_devices', rule: 'max-items' });
  const s = sample('token.created');
  s.scope = Array.from({ length: 257 }, (_, i) => `s${i}`);
  rejects(s, { path: 'scope', rule: 'max-items' });
  const f = sample('seal.verification_failed');
  f.corrupt_ranges = Array.from({ length: 65 }, (_, i) => ({ offset: i, length: 1 }));
  rejects(f, { path: 'corrupt_ranges', rule: 'max-items' });
  f.corrupt_ranges = [{ offset: 0, length: 1, extra: 2 }];
  rejects(f, { path: 'corrupt_ranges[0].extra', rule: 'unknown-field' });
});

test('only JSON values: no Date, Map, class instances, functions, symbols, bigint, undefined in arrays', () => {
  class Thing {
    a = 1;
  }
  for (const v of [new Date(), new Map(), new Thing(), Buffer.from('x'), () => 1, Symbol('s'), 1n]) {
    const m = sample('pool.modified');
    m.changes = { v };
    rejects(m, { path: 'changes.v', rule: 'json-value' });
  }
  const m = sample('pool.modified');
  m.changes = { v: [1, undefined] };
  rejects(m, { path: 'changes.v[1]', rule: 'json-value' });
  // biome-ignore lint/suspicious/noSparseArray: a hole is the point
  m.changes = { v: [1, , 3] };
  rejects(m, { path: 'changes.v[1]', rule: 'json-value' });
  const n = Object.assign(Object.create(null), sample('vram.sealed'));
  validateEvent(n); // null-prototype objects are fine
});

test('not an event: non-objects, unknown, missing or non-string type', () => {
  for (const v of [null, undefined, 42, 'vram.sealed', [], [sample('vram.sealed')]]) {
    rejects(v, { rule: 'not-object', eventType: '<not-an-object>' });
  }
  rejects({ timestamp: TS }, { rule: 'unknown-event-type', eventType: '<missing>', path: 'type' });
  rejects({ type: 7 }, { rule: 'unknown-event-type', eventType: '<number>' });
  rejects({ type: 'vram.melted' }, { rule: 'unknown-event-type', eventType: '"vram.melted"' });
  rejects({ type: '__proto__' }, { rule: 'unknown-event-type' });
  const e = rejects({ type: `x\u001b[2J${'y'.repeat(500)}` }, { rule: 'unknown-event-type' });
  assert.ok(e.eventType.length < 100, 'long hostile type names are cut in messages');
});

// ---------------------------------------------------------------------------------------------
// Purity and normalization
// ---------------------------------------------------------------------------------------------

test('validation is pure: input never mutated (frozen input works), result is a fresh deep copy', () => {
  for (const t of AUDIT_EVENT_TYPES) {
    const input = deepFreeze(sample(t));
    const before = JSON.stringify(input);
    const out = validateEvent(input) as unknown as Record<string, unknown>;
    assert.notEqual(out, input);
    assert.equal(JSON.stringify(input), before);
    for (const [k, v] of Object.entries(out)) {
      if (typeof v === 'object' && v !== null) assert.notEqual(v, input[k], `${t}.${k} must be copied`);
    }
    out.type = 'mutated'; // the copy belongs to the caller
    assert.equal(input.type, t);
  }
  const bad = deepFreeze({ ...sample('authz.denied'), reason: 'x\u0000' });
  rejects(bad, { path: 'reason' });
});

test('each property is read once: a getter or proxy cannot show the validator one value and the writer another', () => {
  let reads = 0;
  const e = sample('vram.sealed');
  Object.defineProperty(e, 'shard_id', {
    enumerable: true,
    get() {
      reads++;
      return reads === 1 ? 'shard-ok' : 'shard\u001b[2J';
    },
  });
  const out = validateEvent(e);
  assert.equal(reads, 1);
  assert.equal((out as { shard_id: string }).shard_id, 'shard-ok');
  let typeReads = 0;
  const p = new Proxy(sample('vram.sealed'), {
    get(target, key, recv) {
      if (key === 'type') return ++typeReads === 1 ? 'vram.sealed' : 'audit.io_error';
      return Reflect.get(target, key, recv);
    },
  });
  rejects(p, { rule: 'unknown-event-type', path: 'type' });
  const throwing = sample('authz.denied');
  Object.defineProperty(throwing.actor, 'user_id', {
    enumerable: true,
    get() {
      throw new Error('secret-token-in-getter');
    },
  });
  const err = rejects(throwing, { rule: 'json-value', path: 'actor' }); // the object whose read failed
  assert.ok(!err.message.includes('secret-token'), 'the thrown message is not copied into ours');
});

test('normalization: undefined fields are dropped; ip fields hold the canonical address', () => {
  const e = { ...sample('security.integrity_violation'), worker_id: undefined };
  const out = validateEvent(e) as unknown as Record<string, unknown>;
  assert.equal('worker_id' in out, false);
  const a = sample('authz.granted');
  (a.actor as Record<string, unknown>).ip = '2001:DB8:0:0:0:0:0:1';
  assert.equal((validateEvent(a) as { actor: { ip: string } }).actor.ip, '2001:db8::1');
  const f = sample('auth.failure');
  f.ip = '::ffff:10.0.0.1';
  assert.equal((validateEvent(f) as { ip: string }).ip, '10.0.0.1');
  for (const bad of ['10.0.0', '010.0.0.1', '1:2:3', 'fe80::1%eth0', 'localhost', '[::1]']) {
    f.ip = bad;
    rejects(f, { path: 'ip', rule: 'ip' });
    (a.actor as Record<string, unknown>).ip = bad;
    rejects(a, { path: 'actor.ip', rule: 'ip' });
  }
});

test('renderPath: dotted names, indices, and escaped untrusted keys', () => {
  assert.equal(renderPath([]), '');
  assert.equal(renderPath(['actor', 'user_id']), 'actor.user_id');
  assert.equal(renderPath(['scope', 2]), 'scope[2]');
  assert.equal(renderPath(['changes', 'a.b', 0, 'x y']), 'changes["a.b"][0]["x y"]');
  assert.equal(renderPath(['k\u001b\n"']), '["k\\u001b\\u000a\\""]');
});

test('property: every valid event (random, generated from the schemas) is accepted unchanged and is stable', () => {
  const seen = new Set<string>();
  fc.assert(
    fc.property(validEvent(), (e) => {
      seen.add(e.type as string);
      const out = validateEvent(e);
      assert.deepEqual(out, e);
      // idempotent, and stable across a JSON round trip (what a reader of the trail gets back)
      const text = canonicalize(out);
      assert.equal(canonicalize(validateEvent(out)), text);
      assert.equal(canonicalize(validateEvent(JSON.parse(text))), text);
    }),
    { numRuns: RUNS * 3 },
  );
  assert.ok(seen.size > 30, `only ${seen.size} event types generated`);
});

test('property: a valid event with one hostile string spliced into any string leaf is rejected', () => {
  fc.assert(
    fc.property(validEvent(), hostile, fc.nat(), (e, bad, pick) => {
      const leaves = stringLeaves(e).filter((l) => l.path[0] !== 'timestamp');
      fc.pre(leaves.length > 0);
      const leaf = leaves[pick % leaves.length] as { path: Seg[]; value: string };
      const x = structuredClone(e);
      setAt(x, leaf.path, bad);
      rejects(x, { eventType: e.type as string, path: renderPath(leaf.path) });
    }),
    { numRuns: RUNS * 2 },
  );
});

test('property: arbitrary junk (Maps, Sets, Dates, typed arrays, boxed values, sparse arrays, null prototypes) never crashes or leaks another error type', () => {
  const junk = fc.anything({
    maxDepth: 4,
    withBigInt: true,
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withObjectString: true,
    withSparseArray: true,
    withTypedArray: true,
    withUnicodeString: true,
  });
  const shaped = fc
    .tuple(
      fc.constantFrom(...AUDIT_EVENT_TYPES),
      fc.dictionary(fc.string(), junk, { maxKeys: 6 }),
      fc.boolean(),
    )
    .map(([t, extra, withSample]) => ({ ...(withSample ? sample(t) : {}), ...extra, type: t }));
  fc.assert(
    fc.property(fc.oneof(junk, shaped), (input) => {
      const before = fc.stringify(input);
      try {
        validateEvent(input);
      } catch (e) {
        assert.ok(e instanceof AuditValidationError, `unexpected ${String(e)}`);
        assert.equal(oracle(e.message), undefined);
      }
      assert.equal(fc.stringify(input), before, 'input must not be modified');
    }),
    { numRuns: RUNS * 2 },
  );
});
