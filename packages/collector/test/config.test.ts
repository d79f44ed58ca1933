import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateSigningKey } from '@vramseal/audit';
import { parseKeys, tokenHash } from '../src/config.js';

test('keys file: providers with several keys (rotation), tokens by hash, errors name field and rule', () => {
  const a = generateSigningKey();
  const b = generateSigningKey();
  const k = parseKeys({
    providers: { 'gpu-1': { public_keys: [a.publicKey, b.publicKey] } },
    tokens: [{ name: 'acme', sha256: tokenHash('t'), role: 'customer', customer_id: 'cust-acme' }],
  });
  assert.deepEqual([...(k.providers.get('gpu-1')?.keys() ?? [])].sort(), [a.keyId, b.keyId].sort());
  assert.deepEqual(k.tokens.get(tokenHash('t')), { name: 'acme', role: 'customer', customerId: 'cust-acme' });
  const bad: Array<[unknown, RegExp]> = [
    [[], /<root> must be an object/],
    [{ providers: { 'bad id!': { public_keys: [a.publicKey] } } }, /providers\["bad id!"\] id must match/],
    [{ providers: { p: {} } }, /providers\.p\.public_keys must be a non-empty array/],
    [{ providers: { p: { public_keys: ['nope'] } } }, /providers\.p\.public_keys\[0\] invalid Ed25519/],
    [
      { tokens: [{ name: 'x', sha256: 'abc', role: 'admin' }] },
      /tokens\[0\]\.sha256 must be the 64 lowercase hex/,
    ],
    [{ tokens: [{ name: 'x', sha256: tokenHash('a'), role: 'root' }] }, /tokens\[0\]\.role must be one of/],
    [
      { tokens: [{ name: 'x', sha256: tokenHash('a'), role: 'customer' }] },
      /tokens\[0\]\.customer_id is required/,
    ],
    [
      {
        tokens: [
          { name: 'x', sha256: tokenHash('a'), role: 'admin' },
          { name: 'y', sha256: tokenHash('a'), role: 'admin' },
        ],
      },
      /tokens\[1\]\.sha256 duplicates another token/,
    ],
  ];
  for (const [doc, re] of bad) assert.throws(() => parseKeys(doc), re);
});
