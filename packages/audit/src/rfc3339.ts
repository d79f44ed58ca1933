/**
 * Strict RFC 3339 §5.6 `date-time` check for event timestamps.
 *
 *   date-time = full-date "T" full-time ; YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
 *
 * Stricter than `Date.parse`: the `T` and `Z` must be upper case (the profile every producer uses; RFC 3339
 * §5.6 NOTE allows lower case but a trail should have one spelling), no space separator, 1–9 fraction digits,
 * day valid for the month and year (§5.7, leap years per the Gregorian rules of Appendix C), hour 00–23,
 * minute 00–59, second 00–59, or 60 only as a leap second at 23:59:60 UTC (§5.7), offsets ±00:00–±23:59.
 */

/** Longest accepted timestamp: `YYYY-MM-DDTHH:MM:SS.fffffffff+HH:MM`. */
export const MAX_TIMESTAMP_LENGTH = 35;

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Value of `n` ASCII digits at `at`, or -1 if any is not a digit. */
function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** True when `s` is a strict RFC 3339 date-time (see module doc). Allocation-free. */
export function isRfc3339(s: unknown): boolean {
  if (typeof s !== 'string') return false;
  const n = s.length;
  if (n < 20 || n > MAX_TIMESTAMP_LENGTH) return false;
  // YYYY-MM-DDTHH:MM:SS
  if (s.charCodeAt(4) !== 0x2d || s.charCodeAt(7) !== 0x2d || s.charCodeAt(10) !== 0x54) return false;
  if (s.charCodeAt(13) !== 0x3a || s.charCodeAt(16) !== 0x3a) return false;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  const second = digits(s, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return false;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60) return false;
  let i = 19;
  if (s.charCodeAt(i) === 0x2e) {
    // time-secfrac = "." 1*DIGIT (we allow up to 9 digits: nanoseconds)
    const from = ++i;
    while (i < n && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
    if (i === from || i - from > 9) return false;
  }
  let offsetMinutes = 0;
  const z = s.charCodeAt(i);
  if (z === 0x5a) {
    if (i + 1 !== n) return false;
  } else if (z === 0x2b || z === 0x2d) {
    if (i + 6 !== n || s.charCodeAt(i + 3) !== 0x3a) return false;
    const oh = digits(s, i + 1, 2);
    const om = digits(s, i + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return false;
    offsetMinutes = (z === 0x2d ? -1 : 1) * (oh * 60 + om);
  } else {
    return false;
  }
  if (second === 60) {
    // §5.7: a leap second is only ever inserted at 23:59:60 UTC.
    const utcMinute = (((hour * 60 + minute - offsetMinutes) % 1440) + 1440) % 1440;
    if (utcMinute !== 23 * 60 + 59) return false;
  }
  return true;
}
