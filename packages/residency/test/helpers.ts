/**
 * Shared test helpers for @vramseal/residency (not a test file itself).
 */
import { validateEvent } from '@vramseal/audit';
import type { AuditSink, ResidencyEvent } from '../src/events.js';

/**
 * An audit sink that records every event after validating it with the real `validateEvent` (so a
 * field the trail would refuse fails the test, exactly as the AuditLogger would refuse it).
 */
export class RecordingAudit implements AuditSink {
  readonly events: ResidencyEvent[] = [];
  readonly rejected: { event: unknown; error: Error }[] = [];
  state: 'ok' | 'degraded' | 'unavailable' = 'ok';
  /** When set, emit throws it synchronously (like AuditUnavailableError). */
  throwOnEmit: Error | undefined;
  /** When set, durable promises reject with it. */
  failDurable: Error | undefined;

  emit(event: ResidencyEvent): { durable: Promise<void> } {
    if (this.throwOnEmit) throw this.throwOnEmit;
    try {
      validateEvent(event);
    } catch (e) {
      this.rejected.push({ event, error: e as Error });
      throw e;
    }
    this.events.push(structuredClone(event));
    return { durable: this.failDurable ? Promise.reject(this.failDurable) : Promise.resolve() };
  }

  health(): { state: 'ok' | 'degraded' | 'unavailable' } {
    return { state: this.state };
  }

  of<T extends ResidencyEvent['type']>(type: T): Extract<ResidencyEvent, { type: T }>[] {
    return this.events.filter((e) => e.type === type) as Extract<ResidencyEvent, { type: T }>[];
  }

  types(): string[] {
    return this.events.map((e) => e.type);
  }
}

/** Deterministic bytes: byte i = (i·mul + add) mod 251 (FORMAT.md's P(n) for mul = 1, add = 0). */
export function pattern(n: number, mul = 1, add = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * mul + add) % 251;
  return b;
}

/** Small seeded PRNG (xorshift32) so random offsets are reproducible from the seed in the test name. */
export function prng(seed: number): (maxExclusive: number) => number {
  let s = seed >>> 0 || 1;
  return (max) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % max;
  };
}

export const TOKEN = 'test-worker-token-6b1d0c4e9a7f';
export const OTHER_TOKEN = 'another-worker-token-0f3e2d1c';
