import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalize } from '@vramseal/audit';
import fc from 'fast-check';
import { isCanonicalLine } from '../src/ingest.js';

test('isCanonicalLine accepts exactly the RFC 8785 text of a value', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const c = canonicalize(v);
      assert.equal(isCanonicalLine(JSON.parse(c), c), true);
      const spaced = JSON.stringify(v, null, 1);
      if (spaced !== c) assert.equal(isCanonicalLine(JSON.parse(spaced), spaced), false);
    }),
    { numRuns: 300 },
  );
  const no = [
    '{"b":1,"a":2}',
    '{"a":1.0}',
    '{"a":"\\u0041"}',
    '{"a": 1}',
    '{"a":1e2}',
    '{"10":1,"9":2,"a":{"y":1,"x":2}}',
  ];
  for (const l of no) assert.equal(isCanonicalLine(JSON.parse(l), l), false, l);
  const yes = ['{"10":1,"9":2}', '{"a":[{"b":1,"c":2}],"b":"é\\n"}', '{"a":100,"b":-0.5}'];
  for (const l of yes) assert.equal(isCanonicalLine(JSON.parse(l), l), true, l);
});
