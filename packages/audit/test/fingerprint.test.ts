import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { tokenFingerprint } from '../src/fingerprint.js';

test('tokenFingerprint = "token:" + first 6 hex of SHA-256 (FIPS 180-2 "abc" vector)', () => {
  // SHA-256("abc") = ba7816bf 8f01cfea ...
  assert.equal(tokenFingerprint('abc'), 'token:ba7816');
  assert.equal(
    tokenFingerprint('€'),
    `token:${createHash('sha256').update('\u20ac', 'utf8').digest('hex').slice(0, 6)}`,
  );
});

test('property: fingerprints have the fixed shape and never contain the token', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 8, maxLength: 64 }), (t) => {
      const f = tokenFingerprint(t);
      assert.match(f, /^token:[0-9a-f]{6}$/);
      assert.ok(!f.slice(6).includes(t));
      assert.equal(tokenFingerprint(t), f);
    }),
    { numRuns: 100 },
  );
});

test('refuses empty or non-string tokens without echoing them', () => {
  assert.throws(() => tokenFingerprint(''), TypeError);
  assert.throws(() => tokenFingerprint(undefined as unknown as string), /non-empty string/);
});
