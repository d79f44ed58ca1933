/**
 * Fixed-window request limiter keyed by client IP.
 *
 * Kept in-process (one daemon per worker) with bounded memory: at most `maxKeys` windows are
 * tracked; expired windows are pruned lazily, and when the table is full the oldest window is
 * evicted. `hit()` tells whether the request is allowed and whether this excess should be reported
 * to the audit trail: the first excess of a window and then at 2×, 4×, 8×… the limit, so a flood
 * cannot flood the trail (log₂ records per window, each with the count reached).
 */

export interface RateLimitOptions {
  /** Requests allowed per key per window. */
  max: number;
  windowMs: number;
  maxKeys?: number;
  now?: () => number;
}

export interface RateDecision {
  allowed: boolean;
  /** Requests seen in this window, this one included. */
  count: number;
  limit: number;
  /** Milliseconds until the window resets. */
  resetMs: number;
  /** True when this excess should be recorded (`security.rate_limit_exceeded`). */
  report: boolean;
}

interface Window {
  start: number;
  count: number;
}

export class RateLimiter {
  readonly max: number;
  readonly windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, Window>();

  constructor(opts: RateLimitOptions) {
    if (!Number.isInteger(opts.max) || opts.max < 1)
      throw new RangeError('rate limit max must be an integer >= 1');
    if (!(opts.windowMs > 0)) throw new RangeError('rate limit window must be > 0 ms');
    this.max = opts.max;
    this.windowMs = opts.windowMs;
    this.#maxKeys = opts.maxKeys ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  hit(key: string): RateDecision {
    const now = this.#now();
    let w = this.#windows.get(key);
    if (w === undefined || now - w.start >= this.windowMs) {
      if (w !== undefined) this.#windows.delete(key);
      else if (this.#windows.size >= this.#maxKeys) this.#prune(now);
      w = { start: now, count: 0 };
      this.#windows.set(key, w);
    }
    w.count++;
    const allowed = w.count <= this.max;
    let report = false;
    if (!allowed) {
      const ratio = w.count / this.max;
      report = w.count === this.max + 1 || (Number.isInteger(ratio) && (ratio & (ratio - 1)) === 0);
    }
    return { allowed, count: w.count, limit: this.max, resetMs: w.start + this.windowMs - now, report };
  }

  #prune(now: number): void {
    for (const [k, w] of this.#windows) if (now - w.start >= this.windowMs) this.#windows.delete(k);
    // Still full: evict the oldest (Map iteration order is insertion order).
    while (this.#windows.size >= this.#maxKeys) {
      const first = this.#windows.keys().next();
      if (first.done) break;
      this.#windows.delete(first.value);
    }
  }
}
