/**
 * Keeps unauthenticated clients from flooding the collector's own trail: security events caused by
 * rejected requests (`auth.failure`, `security.integrity_violation`) are recorded at most `perWindow`
 * times per client IP per window; the rest are counted and summarized once per window and IP as one
 * `audit.events_dropped` event (count, reason naming the IP and event type, first/last time) — so the
 * evidence stays complete in number while the trail stays bounded.
 */
export interface EventLimiterOptions {
  /** Events recorded per IP per window (default 20). */
  perWindow?: number;
  /** Window length (default 60 s). */
  windowMs?: number;
  /** Most IPs tracked at once (default 10,000; the oldest window is summarized and evicted first). */
  maxKeys?: number;
  now?: () => number;
}

interface Slot {
  start: number;
  n: number;
  dropped: Map<string, { count: number; first: number; last: number }>;
}

export interface DropSummary {
  key: string;
  type: string;
  count: number;
  first: number;
  last: number;
}

export class EventLimiter {
  #per: number;
  #window: number;
  #max: number;
  #now: () => number;
  #slots = new Map<string, Slot>();

  constructor(o: EventLimiterOptions = {}) {
    this.#per = o.perWindow ?? 20;
    this.#window = o.windowMs ?? 60_000;
    this.#max = o.maxKeys ?? 10_000;
    this.#now = o.now ?? Date.now;
  }

  /**
   * Whether an event of `type` caused by `key` (an IP) may be recorded now. Returns the summaries of
   * windows that ended (to be recorded by the caller) along with the verdict.
   */
  admit(key: string, type: string): { allowed: boolean; summaries: DropSummary[] } {
    const now = this.#now();
    const summaries = this.#expire(now);
    let s = this.#slots.get(key);
    if (!s) {
      if (this.#slots.size >= this.#max) {
        const oldest = this.#slots.keys().next().value as string;
        summaries.push(...this.#summarize(oldest, this.#slots.get(oldest) as Slot));
        this.#slots.delete(oldest);
      }
      s = { start: now, n: 0, dropped: new Map() };
      this.#slots.set(key, s);
    }
    if (s.n < this.#per) {
      s.n++;
      return { allowed: true, summaries };
    }
    const d = s.dropped.get(type);
    if (d) {
      d.count++;
      d.last = now;
    } else s.dropped.set(type, { count: 1, first: now, last: now });
    return { allowed: false, summaries };
  }

  /** Summaries of every window that ended by now (call periodically, and at shutdown with `Infinity`). */
  drain(now = this.#now()): DropSummary[] {
    return this.#expire(now);
  }

  #expire(now: number): DropSummary[] {
    const out: DropSummary[] = [];
    for (const [k, s] of this.#slots) {
      if (now - s.start < this.#window) continue;
      out.push(...this.#summarize(k, s));
      this.#slots.delete(k);
    }
    return out;
  }

  #summarize(key: string, s: Slot): DropSummary[] {
    return [...s.dropped].map(([type, d]) => ({ key, type, count: d.count, first: d.first, last: d.last }));
  }
}
