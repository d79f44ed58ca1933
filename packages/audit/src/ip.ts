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

function parseV4(s: string, out: Uint8Array, at: number): string | undefined {
  // Returns an error reason, or undefined on success (bytes written to out[at..at+4]).
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e; // a virtual '.' terminates the last part
    if (c === 0x2e) {
      if (digits === 0) return 'empty IPv4 part';
      if (part > 3) return 'IPv4 address has more than four parts';
      out[at + part] = value;
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

function parseV6(s: string): Uint8Array | string {
  const bytes = new Uint8Array(16);
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return 'more than one "::" in IPv6 address';
  const head = dbl === -1 ? s : s.slice(0, dbl);
  const tail = dbl === -1 ? '' : s.slice(dbl + 2);
  const groups = (text: string, allowV4: boolean): number[] | string => {
    if (text === '') return [];
    const parts = text.split(':');
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as string;
      if (allowV4 && i === parts.length - 1 && p.includes('.')) {
        const v4 = new Uint8Array(4);
        const err = parseV4(p, v4, 0);
        if (err) return err;
        out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
        continue;
      }
      if (p.length === 0) return 'empty IPv6 group';
      if (p.length > 4) return 'IPv6 group longer than four hex digits';
      let v = 0;
      for (let j = 0; j < p.length; j++) {
        const h = hexVal(p.charCodeAt(j));
        if (h < 0) return 'unexpected character in IPv6 address';
        v = (v << 4) | h;
      }
      out.push(v);
    }
    return out;
  };
  const h = groups(head, dbl === -1);
  if (typeof h === 'string') return h;
  const t = groups(tail, true);
  if (typeof t === 'string') return t;
  if (dbl === -1) {
    if (h.length !== 8) return 'IPv6 address needs eight groups (or "::")';
  } else if (h.length + t.length > 7) {
    return 'IPv6 address has too many groups for "::"';
  }
  const all = dbl === -1 ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = (all[i] as number) >> 8;
    bytes[2 * i + 1] = (all[i] as number) & 0xff;
  }
  return bytes;
}

/** RFC 5952 §4 text of 16 address bytes. */
export function formatIpv6(bytes: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((bytes[2 * i] as number) << 8) | (bytes[2 * i + 1] as number));
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
  const hex = (from: number, to: number) =>
    g
      .slice(from, to)
      .map((x) => x.toString(16)) // §4.1 leading zeros dropped, §4.3 lower case
      .join(':');
  if (bestAt === -1) return hex(0, 8);
  return `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
}

/** Non-throwing core of {@link parseIp}: the parsed address, or the reason it is not one. */
export function tryParseIp(input: unknown): ParsedIp | string {
  if (typeof input !== 'string') return 'not a string';
  if (input.length === 0) return 'empty string';
  if (input.length > MAX_IP_INPUT_LENGTH) return `longer than ${MAX_IP_INPUT_LENGTH} characters`;
  if (input.includes('%')) return 'zone identifiers (%...) are not accepted';
  if (input.includes(':')) {
    const r = parseV6(input);
    if (typeof r === 'string') return r;
    let mapped = true;
    for (let i = 0; i < 10; i++) if (r[i] !== 0) mapped = false;
    if (mapped && r[10] === 0xff && r[11] === 0xff) {
      const v4 = r.slice(12);
      return { version: 4, address: v4.join('.'), bytes: v4 };
    }
    return { version: 6, address: formatIpv6(r), bytes: r };
  }
  const b = new Uint8Array(4);
  const err = parseV4(input, b, 0);
  if (err) return err;
  return { version: 4, address: input, bytes: b };
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
  return typeof tryParseIp(input) !== 'string';
}
