import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { InvalidIpError } from '../src/errors.js';
import { formatIpv6, isIp, normalizeIp, parseIp, tryNormalizeIp, tryParseIp } from '../src/ip.js';

const RUNS = Number(process.env.FC_RUNS ?? 150);

test('IPv4 and IPv6 normalization (RFC 5952 §4), IPv4-mapped becomes IPv4', () => {
  const cases: [string, string][] = [
    ['192.0.2.1', '192.0.2.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:DB8::7', '2001:db8::7'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3 first of equal runs
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // §4.2.3 longest run
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2 single 0 not compressed
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::FFFF:c000:0201', '192.0.2.1'],
    ['::192.0.2.1', '::c000:201'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
  ];
  for (const [input, want] of cases) {
    assert.equal(normalizeIp(input), want, input);
    assert.equal(tryNormalizeIp(input), want, input);
    assert.equal(normalizeIp(want), want, `${want} is a fixed point`);
  }
  assert.equal(parseIp('::ffff:1.2.3.4').version, 4);
  assert.deepEqual([...parseIp('::ffff:1.2.3.4').bytes], [1, 2, 3, 4]);
  assert.equal(parseIp('::1').bytes.length, 16);
});

test('garbage is refused with a clear reason that never echoes the input', () => {
  const bad: [unknown, RegExp][] = [
    ['', /empty/],
    ['1.2.3', /four parts/],
    ['1.2.3.4.5', /more than four/],
    ['01.2.3.4', /leading zero/],
    ['256.0.0.1', /greater than 255/],
    ['1.2.3.-4', /unexpected character/],
    ['1..3.4', /empty IPv4 part/],
    ['localhost', /unexpected character/],
    ['1:2:3:4:5:6:7:8:9', /more than eight/],
    ['1:2:3:4:5:6:7', /eight groups/],
    ['1::2::3', /more than one "::"/],
    ['12345::', /longer than four/],
    [':1', /single ":"/],
    ['1:', /single ":"/],
    ['1:::2', /unexpected character/],
    ['fe80::1%eth0', /zone/],
    ['[::1]', /unexpected character/],
    ['g::1', /unexpected character/],
    ['1:2:3:4:5:6:7:1.2.3.4', /too many groups/],
    ['::ffff:1.2.3', /four parts/],
    [`1.2.3.4${' '.repeat(50)}`, /longer than 45/],
    [42, /not a string/],
  ];
  for (const [input, why] of bad) {
    assert.equal(isIp(input), false, String(input));
    assert.throws(
      () => parseIp(input as string),
      (e: unknown) => {
        assert.ok(e instanceof InvalidIpError);
        assert.equal(e.code, 'INVALID_IP');
        assert.match(e.message, why);
        if (typeof input === 'string' && input.length > 3) assert.ok(!e.message.includes(input));
        return true;
      },
    );
  }
});

test('property: any 128-bit address round-trips through its RFC 5952 text; text matches the WHATWG URL serializer', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
      (groups) => {
        const text = formatIpv6(groups);
        const p = tryParseIp(text);
        assert.ok(typeof p !== 'string', `${text}: ${p}`);
        const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
        if (mapped) {
          assert.equal(p.version, 4);
          const [g6, g7] = [groups[6] as number, groups[7] as number];
          assert.equal(p.address, `${g6 >> 8}.${g6 & 255}.${g7 >> 8}.${g7 & 255}`);
        } else {
          assert.equal(p.address, text);
          const bytes = groups.flatMap((g) => [g >> 8, g & 255]);
          assert.deepEqual([...p.bytes], bytes);
          // WHATWG URL host serializer (compress the first longest run of >= 2 zero pieces) = RFC 5952 §4.
          assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`);
          // the expanded, upper-case form normalizes to the same text
          const long = groups.map((g) => g.toString(16).toUpperCase().padStart(4, '0')).join(':');
          assert.equal(normalizeIp(long), text);
        }
      },
    ),
    { numRuns: RUNS },
  );
});

test('property: agrees with node:net on which strings are addresses', () => {
  const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF:.'.split(''), '::', '255', 'ffff');
  fc.assert(
    fc.property(
      fc.array(alphabet, { maxLength: 16 }).map((a) => a.join('')),
      (s) => {
        assert.equal(isIp(s), isIPv4(s) || isIPv6(s), s);
        const p = tryParseIp(s);
        assert.equal(tryNormalizeIp(s), typeof p === 'string' ? undefined : p.address, s);
      },
    ),
    { numRuns: RUNS * 4 },
  );
  fc.assert(
    fc.property(fc.ipV4(), (s) => assert.equal(normalizeIp(s), s)),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.ipV6(), (s) => {
      const n = normalizeIp(s);
      assert.ok(isIPv4(n) || isIPv6(n), `${s} -> ${n}`);
      assert.equal(normalizeIp(n), n);
    }),
    { numRuns: RUNS },
  );
});
