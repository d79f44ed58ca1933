// validateEventJson: the canonical JSON it returns (JSON.stringify of a copy built in RFC 8785 key order)
// must be exactly canonicalize() of the validated event, for every valid event and every free-form key set.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalize } from '../src/canonical.js';
import { AUDIT_EVENT_TYPES } from '../src/events.js';
import { validateEvent, validateEventJson } from '../src/validate.js';
import { validEvent } from './fixtures/event-arbitrary.js';
import { sample } from './fixtures/sample-events.js';

test('property: validateEventJson(e).json ≡ canonicalize(validateEvent(e)) for valid events', () => {
  fc.assert(
    fc.property(validEvent(), (e) => {
      const v = validateEventJson(e);
      assert.deepEqual(v.event, validateEvent(e));
      assert.equal(v.json, canonicalize(v.event));
      assert.equal(v.json, canonicalize(e));
    }),
    { numRuns: 300 },
  );
});

test('every sample event type: canonical JSON and key order of the copy', () => {
  for (const t of AUDIT_EVENT_TYPES) {
    const e = sample(t);
    const v = validateEventJson(e);
    assert.equal(v.json, canonicalize(e), t);
    assert.equal(JSON.stringify(v.event), v.json, `${t}: copy is in RFC 8785 key order`);
  }
});

test('free-form keys: unsorted, digit-leading (array-index-like), non-ASCII and nested', () => {
  const changes: Record<string, unknown> = {
    zeta: 1,
    alpha: { b: 2, a: [{ y: 1, x: 2 }], _u: null },
    Beta: 'B',
    _under: true,
    'a.b-c': -0,
  };
  const e = { ...sample('pool.modified'), changes };
  const v = validateEventJson(e);
  assert.equal(v.json, canonicalize(e));
  assert.ok(
    v.json.includes(
      '"changes":{"Beta":"B","_under":true,"a.b-c":0,"alpha":{"_u":null,"a":[{"x":2,"y":1}],"b":2},"zeta":1}',
    ),
  );
  // Keys that JavaScript enumerates as array indices first: the canonical order must still be UTF-16 order.
  const q = { ...sample('pool.modified'), changes: { x: { 10: 'ten', 9: 'nine', a: 'a' }, y: 1 } };
  const vq = validateEventJson(q);
  assert.equal(vq.json, canonicalize(q));
  assert.ok(vq.json.includes('{"10":"ten","9":"nine","a":"a"}'));
});

test('property: arbitrary free-form values (any keys, nested) canonicalize exactly', () => {
  const key = fc.oneof(
    fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,8}$/),
    fc.string({ maxLength: 6 }).filter((s) => !['__proto__', 'constructor', 'prototype'].includes(s)),
    fc.nat(30).map(String),
  );
  const json = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.stringMatching(/^[ -~]{0,8}$/),
      fc.array(tie('v'), { maxLength: 3 }),
      fc.dictionary(key, tie('v'), { maxKeys: 5 }),
    ),
  })).v;
  fc.assert(
    fc.property(
      fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}$/), json, { maxKeys: 6 }),
      (changes) => {
        const e = { ...sample('pool.modified'), changes };
        let v: ReturnType<typeof validateEventJson>;
        try {
          v = validateEventJson(e);
        } catch {
          return; // rejected (e.g. a key the rules refuse): nothing to compare
        }
        assert.equal(v.json, canonicalize(validateEvent(e)));
      },
    ),
    { numRuns: 300 },
  );
});
