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

const RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(Z|([+-])(\d{2}):(\d{2}))$/;

/** Longest accepted timestamp: `YYYY-MM-DDTHH:MM:SS.fffffffff+HH:MM`. */
export const MAX_TIMESTAMP_LENGTH = 35;

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** True when `s` is a strict RFC 3339 date-time (see module doc). */
export function isRfc3339(s: unknown): boolean {
  if (typeof s !== 'string' || s.length > MAX_TIMESTAMP_LENGTH) return false;
  const m = RE.exec(s);
  if (m === null) return false;
  const year = +(m[1] as string);
  const month = +(m[2] as string);
  const day = +(m[3] as string);
  const hour = +(m[4] as string);
  const minute = +(m[5] as string);
  const second = +(m[6] as string);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return false;
  if (hour > 23 || minute > 59 || second > 60) return false;
  let offsetMinutes = 0;
  if (m[7] !== 'Z') {
    const oh = +(m[9] as string);
    const om = +(m[10] as string);
    if (oh > 23 || om > 59) return false;
    offsetMinutes = (m[8] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  if (second === 60) {
    // §5.7: a leap second is only ever inserted at 23:59:60 UTC.
    const utcMinute = (((hour * 60 + minute - offsetMinutes) % 1440) + 1440) % 1440;
    if (utcMinute !== 23 * 60 + 59) return false;
  }
  return true;
}
