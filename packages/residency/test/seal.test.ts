/**
 * Seal keys (RFC 5869 HKDF-SHA256, checked against a by-hand extract/expand) and the canonical
 * encoding (unambiguous: different fields never encode alike).
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkToken } from '../src/policy.js';
import { computeSeal, deriveSealKey, encodeSealFields, type SealFields, sealMatches } from '../src/seal.js';

function hkdfByHand(ikm: string, salt: string, info: string): Buffer {
  // RFC 5869 §2.2 extract, §2.3 expand (L = 32 → one block T(1)).
  const prk = createHmac('sha256', Buffer.from(salt)).update(Buffer.from(ikm)).digest();
  return createHmac('sha256', prk)
    .update(Buffer.concat([Buffer.from(info), Buffer.of(1)]))
    .digest();
}

test('seal key = HKDF-SHA256(token, salt "vramseal-seal-salt-v1:" + workerId, info "vramseal-seal-v1", 32)', () => {
  const k = deriveSealKey('some-long-worker-token-1', 'w-1');
  assert.equal(k.symmetricKeySize, 32);
  assert.deepEqual(
    k.export(),
    hkdfByHand('some-long-worker-token-1', 'vramseal-seal-salt-v1:w-1', 'vramseal-seal-v1'),
  );
  assert.notDeepEqual(k.export(), deriveSealKey('some-long-worker-token-1', 'w-2').export());
  assert.notDeepEqual(k.export(), deriveSealKey('some-long-worker-token-2', 'w-1').export());
});

const fieldsArb: fc.Arbitrary<SealFields> = fc.record(
  {
    shard_id: fc.string({ minLength: 1, maxLength: 8 }),
    digest: fc.string({ maxLength: 8 }),
    sealed_at: fc.string({ maxLength: 8 }),
    gpu_device: fc.nat(4),
    vram_bytes: fc.nat(1000),
    model_ref: fc.option(fc.string({ maxLength: 6 }), { nil: undefined }),
    shard_index: fc.option(fc.nat(3), { nil: undefined }),
    total_shards: fc.option(fc.nat(3), { nil: undefined }),
    backend: fc.constantFrom('cuda' as const, 'simulated' as const),
  },
  { requiredKeys: ['shard_id', 'digest', 'sealed_at', 'gpu_device', 'vram_bytes', 'backend'] },
);

const norm = (f: SealFields) =>
  JSON.stringify(
    Object.entries(f)
      .filter(([, v]) => v !== undefined)
      .sort(),
  );

test('canonical encoding is injective (property): different fields, different bytes, different seal', () => {
  const key = deriveSealKey('some-long-worker-token-1', 'w-1');
  fc.assert(
    fc.property(fieldsArb, fieldsArb, (a, b) => {
      const same = norm(a) === norm(b);
      assert.equal(encodeSealFields(a).equals(encodeSealFields(b)), same);
      assert.equal(sealMatches(key, b, computeSeal(key, a)), same);
    }),
    { numRuns: 400 },
  );
  // Classic ambiguity traps of naive concatenation.
  const base: SealFields = {
    shard_id: 'ab',
    digest: 'c',
    sealed_at: 't',
    gpu_device: 0,
    vram_bytes: 1,
    backend: 'cuda',
  };
  assert.notDeepEqual(encodeSealFields(base), encodeSealFields({ ...base, shard_id: 'a', digest: 'bc' }));
  assert.notDeepEqual(encodeSealFields(base), encodeSealFields({ ...base, model_ref: '' }));
  assert.equal(sealMatches(key, base, undefined), false);
  assert.equal(sealMatches(key, base, new Uint8Array(31)), false);
  assert.equal(sealMatches(key, { ...base, vram_bytes: -1 }, new Uint8Array(32)), false);
});

test('token rules: length and no surrounding whitespace; the message never echoes the token', () => {
  for (const bad of ['short', ' padded-token-123456 ', 'x'.repeat(4097), 'has\u0007bell-0123456789']) {
    assert.throws(
      () => checkToken(bad),
      (e: Error) => {
        assert.match(e.message, /workerToken/);
        assert.equal(e.message.includes(bad), false);
        return true;
      },
    );
  }
  assert.equal(checkToken('x'.repeat(16)), 'x'.repeat(16));
});
