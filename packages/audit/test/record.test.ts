import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CanonicalizationError, canonicalize } from '../src/canonical.js';
import { GENESIS_HASH, macMatches, recomputeHash, sealRecord } from '../src/record.js';

test('canonicalize sorts keys by UTF-16 code units and drops undefined (RFC 8785 §3.2.3)', () => {
  assert.equal(
    canonicalize({ b: 1, a: [true, null, 'x'], c: undefined, '\u20ac': 1, '\r': 2 }),
    '{"\\r":2,"a":[true,null,"x"],"b":1,"€":1}',
  );
  assert.equal(canonicalize({ n: -0, f: 1e21, s: 0.000001 }), '{"f":1e+21,"n":0,"s":0.000001}');
});

test('canonicalize rejects non-finite numbers and non-plain objects', () => {
  assert.throws(() => canonicalize({ a: Number.NaN }), CanonicalizationError);
  assert.throws(() => canonicalize({ a: new Date() }), /plain objects/);
});

test('canonicalize round-trips: parse(canonicalize(x)) canonicalizes to the same text', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const c = canonicalize(v);
      assert.equal(canonicalize(JSON.parse(c)), c);
    }),
  );
});

test('sealRecord line is canonical JSON whose hash recomputes and whose MAC checks', () => {
  const key = Buffer.alloc(32, 7);
  const body = {
    seq: 1,
    audit_id: '00000000-0000-4000-8000-000000000000',
    time: '2026-01-01T00:00:00.000Z',
    service_id: 'svc',
    eventJson: canonicalize({
      type: 'seal.verified',
      timestamp: '2026-01-01T00:00:00.000Z',
      shard_id: 's',
      worker_id: 'w',
    }),
    prev_hash: GENESIS_HASH,
  };
  const { line, hash } = sealRecord(body, key);
  const rec = JSON.parse(line);
  assert.equal(canonicalize(rec), line);
  assert.equal(rec.hash, hash);
  assert.equal(recomputeHash(rec), hash);
  assert.ok(macMatches(key, hash, rec.mac));
  assert.ok(!macMatches(Buffer.alloc(32, 8), hash, rec.mac));
  rec.event.shard_id = 't';
  assert.notEqual(recomputeHash(rec), hash);
});
