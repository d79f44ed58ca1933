/**
 * The writer's notion of time, injectable so tests can drive daily rotation and record times.
 *
 * `now()` returns milliseconds since the Unix epoch (like `Date.now()`).
 */
export interface Clock {
  now(): number;
}

/** The real wall clock. */
export const systemClock: Clock = { now: Date.now };

/** A clock tests set by hand (`set`, `advance`). */
export class ManualClock implements Clock {
  #ms: number;
  constructor(start: number | string | Date = 0) {
    this.#ms = typeof start === 'number' ? start : new Date(start).getTime();
  }
  now(): number {
    return this.#ms;
  }
  set(t: number | string | Date): void {
    this.#ms = typeof t === 'number' ? t : new Date(t).getTime();
  }
  advance(ms: number): void {
    this.#ms += ms;
  }
}

/**
 * RFC 3339 UTC timestamp with millisecond precision and `Z` suffix (FORMAT.md §Record `time`),
 * memoized for the last millisecond seen: consecutive records in the same millisecond reuse the string.
 */
export class Rfc3339Cache {
  #ms = Number.NaN;
  #s = '';
  format(ms: number): string {
    if (ms !== this.#ms) {
      this.#ms = ms;
      this.#s = new Date(ms).toISOString();
    }
    return this.#s;
  }
}

/** `YYYY-MM-DD` (UTC) of an RFC 3339 UTC timestamp or of epoch milliseconds. */
export function utcDay(t: string | number): string {
  return typeof t === 'string' ? t.slice(0, 10) : new Date(t).toISOString().slice(0, 10);
}
