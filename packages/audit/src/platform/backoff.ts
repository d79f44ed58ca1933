/**
 * Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * delay(n) = random(0, min(maxMs, initialMs · 2^n)), never below `minMs`.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  minMs?: number;
  /** Injectable for tests; returns [0, 1). */
  random?: () => number;
}

export function backoffDelay(attempt: number, o: BackoffOptions = {}): number {
  const initial = o.initialMs ?? 500;
  const max = o.maxMs ?? 60_000;
  const min = o.minMs ?? Math.min(50, initial);
  const cap = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.max(min, Math.floor((o.random ?? Math.random)() * cap));
}
