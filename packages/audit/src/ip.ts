/**
 * IP address parsing and normalization for audit events (the `ip` fields).
 *
 * Accepted input:
 * - IPv4 dotted-quad (RFC 791 / RFC 4001 §3 "dotted decimal"): exactly four decimal parts 0–255,
 *   no leading zeros (`010.0.0.1` is ambiguous — octal in some parsers — and is rejected).
 * - IPv6 text (RFC 4291 §2.2): eight groups of 1–4 hex digits, at most one `::`, optionally with a
 *   trailing dotted-quad (`::ffff:192.0.2.1`). Zone identifiers (`%eth0`) and brackets are rejected.
 *
 * Normalized output (what the trail stores):
 * - IPv4: the dotted quad as given (it is already canonical once leading zeros are refused).
 * - IPv6: RFC 5952 §4 canonical text — lower-case hex, leading zeros dropped, the longest run of two or
 *   more zero groups compressed to `::` (the first such run on a tie), a single zero group not compressed.
 * - IPv4-mapped IPv6 (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) becomes the plain IPv4 address, so the same
 *   client has the same `ip` whether it connected over an IPv4 or a dual-stack socket.
 */
import { InvalidIpError } from './errors.js';

/** A parsed, normalized IP address. */
export interface ParsedIp {
  version: 4 | 6;
  /** Canonical text (see module doc). */
  address: string;
  /** Network-order bytes: 4 for IPv4 (also for IPv4-mapped input), 16 for IPv6. */
  bytes: Uint8Array;
}

/** Longest accepted input (an IPv6 address with an embedded IPv4 part is at most 45 characters). */
export const MAX_IP_INPUT_LENGTH = 45;

/**
 * Parses a dotted quad from `s[from..]` to the end of `s` into out[at..at+4].
 * Returns an error reason, or undefined on success. Allocation-free.
 */
function parseV4(
  s: string,
  from: number,
  out: Uint8Array | Uint16Array,
  at: number,
  pack: boolean,
): string | undefined {
  let part = 0;
  let value = 0;
  let digits = 0;
  const n = s.length;
  for (let i = from; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 0x2e; // a virtual '.' terminates the last part
    if (c === 0x2e) {
      if (digits === 0) return 'empty IPv4 part';
      if (part > 3) return 'IPv4 address has more than four parts';
      if (pack) {
        // two IPv4 bytes per 16-bit IPv6 group
        const idx = at + (part >> 1);
        out[idx] = part & 1 ? (out[idx] as number) | value : value << 8;
      } else {
        out[at + part] = value;
      }
      part++;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return 'IPv4 part has a leading zero';
      value = value * 10 + (c - 0x30);
      digits++;
      if (value > 255) return 'IPv4 part greater than 255';
    } else {
      return 'unexpected character in IPv4 address';
    }
  }
  if (part !== 4) return 'IPv4 address needs four parts';
  return undefined;
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/**
 * Parses IPv6 text (RFC 4291 §2.2) into eight 16-bit groups. Single pass, allocation-free.
 * Returns an error reason, or undefined on success.
 */
function parseV6(s: string, g: Uint16Array): string | undefined {
  const n = s.length;
  let count = 0; // groups written
  let dbl = -1; // group index where "::" stands
  let i = 0;
  if (s.charCodeAt(0) === 0x3a) {
    if (s.charCodeAt(1) !== 0x3a) return 'IPv6 address starts with a single ":"';
    dbl = 0;
    i = 2;
  }
  while (i < n) {
    const start = i;
    let v = 0;
    let h = hexVal(s.charCodeAt(i));
    while (h >= 0 && i - start < 5) {
      v = (v << 4) | h;
      i++;
      h = i < n ? hexVal(s.charCodeAt(i)) : -1;
    }
    if (i < n && s.charCodeAt(i) === 0x2e) {
      // trailing dotted quad (RFC 4291 §2.2 form 3): takes the last two groups
      if (count > 6) return 'IPv6 address has too many groups';
      const err = parseV4(s, start, g, count, true);
      if (err) return err;
      count += 2;
      i = n;
      break;
    }
    const len = i - start;
    if (len === 0) return i < n ? 'unexpected character in IPv6 address' : 'IPv6 address ends with ":"';
    if (len > 4) return 'IPv6 group longer than four hex digits';
    if (count === 8) return 'IPv6 address has more than eight groups';
    g[count++] = v;
    if (i === n) break;
    if (s.charCodeAt(i) !== 0x3a) return 'unexpected character in IPv6 address';
    i++;
    if (i < n && s.charCodeAt(i) === 0x3a) {
      if (dbl !== -1) return 'more than one "::" in IPv6 address';
      dbl = count;
      i++;
    } else if (i === n) {
      return 'IPv6 address ends with a single ":"';
    }
  }
  if (dbl === -1) {
    if (count !== 8) return 'IPv6 address needs eight groups (or "::")';
    return undefined;
  }
  if (count > 7) return 'IPv6 address has too many groups for "::"';
  // move the groups after "::" to the end and zero the gap
  const tail = count - dbl;
  for (let k = 0; k < tail; k++) g[7 - k] = g[count - 1 - k] as number;
  for (let k = dbl; k < 8 - tail; k++) g[k] = 0;
  return undefined;
}

/** RFC 5952 §4 text of an IPv6 address given as eight 16-bit groups. */
export function formatIpv6(g: ArrayLike<number>): string {
  // §4.2.3: compress the longest run of zero groups (length >= 2, §4.2.2); first one on a tie.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestAt) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += (g[i] as number).toString(16); // §4.1 leading zeros dropped, §4.3 lower case
  }
  return out;
}

const scratch = new Uint16Array(8);

function check(input: unknown): string | undefined {
  if (typeof input !== 'string') return 'not a string';
  if (input.length === 0) return 'empty string';
  if (input.length > MAX_IP_INPUT_LENGTH) return `longer than ${MAX_IP_INPUT_LENGTH} characters`;
  if (input.includes('%')) return 'zone identifiers (%...) are not accepted';
  if (input.includes(':')) return parseV6(input, scratch);
  return parseV4(input, 0, scratch, 0, false);
}

/** Non-throwing core of {@link parseIp}: the parsed address, or the reason it is not one. */
export function tryParseIp(input: unknown): ParsedIp | string {
  const err = check(input);
  if (err !== undefined) return err;
  const s = input as string;
  if (!s.includes(':')) {
    return { version: 4, address: s, bytes: Uint8Array.from(scratch.subarray(0, 4)) };
  }
  const g = scratch;
  // IPv4-mapped (RFC 4291 §2.5.5.2): ::ffff:a.b.c.d -> a.b.c.d
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    const b = Uint8Array.of(
      (g[6] as number) >> 8,
      (g[6] as number) & 0xff,
      (g[7] as number) >> 8,
      (g[7] as number) & 0xff,
    );
    return { version: 4, address: b.join('.'), bytes: b };
  }
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = (g[i] as number) >> 8;
    bytes[2 * i + 1] = (g[i] as number) & 0xff;
  }
  return { version: 6, address: formatIpv6(g), bytes };
}

/**
 * The canonical text of `input` (see module doc), or undefined when it is not an IP address.
 * Allocation-free except for the returned IPv6 text: the hot path of event validation.
 */
export function tryNormalizeIp(input: unknown): string | undefined {
  if (check(input) !== undefined) return undefined;
  const s = input as string;
  if (!s.includes(':')) return s;
  const g = scratch;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    const a = g[6] as number;
    const b = g[7] as number;
    return `${a >> 8}.${a & 0xff}.${b >> 8}.${b & 0xff}`;
  }
  return formatIpv6(g);
}

/**
 * Parses and normalizes an IPv4 or IPv6 address (see module doc).
 * @throws {InvalidIpError} naming what is wrong (never echoing the input).
 */
export function parseIp(input: string): ParsedIp {
  const r = tryParseIp(input);
  if (typeof r === 'string') throw new InvalidIpError(r);
  return r;
}

/** {@link parseIp}'s canonical text. @throws {InvalidIpError} */
export function normalizeIp(input: string): string {
  return parseIp(input).address;
}

/** True when {@link parseIp} would accept `input`. */
export function isIp(input: unknown): boolean {
  return check(input) === undefined;
}
