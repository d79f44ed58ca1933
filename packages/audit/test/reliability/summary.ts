/**
 * Reliability summary rows (issue 9). Each scenario reports one row per fault category:
 * how many faults it injected, how many were detected (surfaced, rejected or reported), how many went
 * undetected, and how many acknowledged records were lost. Rows are printed at once and, when
 * `VRAMSEAL_RELIABILITY_OUT` names a file, appended to it as NDJSON so `scripts/reliability.mjs`
 * can print the table of a whole run (test files run in separate processes).
 */
import { appendFileSync } from 'node:fs';

export interface ReliabilityRow {
  /** e.g. `crash (immediate)`, `trail mutation`. */
  category: string;
  injected: number;
  detected: number;
  undetected: number;
  /** Acknowledged (durable) records or accepted events missing afterwards. */
  lost: number;
  /** Seed, rounds, exclusions (no-op mutations), anything needed to read the row. */
  note?: string;
  /** Set by the CI subset (small rounds); the full run leaves it false. */
  ci?: boolean;
}

/** True for `npm run test:reliability` (full sizes); the CI subset uses small fixed sizes. */
export const FULL = process.env.VRAMSEAL_RELIABILITY === 'full';

/**
 * The seed of a scenario: `VRAMSEAL_RELIABILITY_SEED` when set (to reproduce a run), else the fixed
 * `ciSeed` in the CI subset, else a fresh random one in the full run. Always printed.
 */
export function seedFor(name: string, ciSeed: number): number {
  const env = process.env.VRAMSEAL_RELIABILITY_SEED;
  const seed =
    env !== undefined && env !== '' ? Number(env) >>> 0 : FULL ? (Math.random() * 2 ** 31) >>> 0 : ciSeed;
  console.log(`[reliability] ${name}: seed ${seed} (reproduce with VRAMSEAL_RELIABILITY_SEED=${seed})`);
  return seed;
}

/** Prints the row and appends it to `VRAMSEAL_RELIABILITY_OUT` when set. */
export function reportRow(row: ReliabilityRow): void {
  const r = { ...row, ci: !FULL };
  console.log(
    `[reliability] ${r.category}: injected ${r.injected}, detected ${r.detected}, undetected ${r.undetected}, lost ${r.lost}${r.note ? ` (${r.note})` : ''}`,
  );
  const out = process.env.VRAMSEAL_RELIABILITY_OUT;
  if (out) appendFileSync(out, `${JSON.stringify(r)}\n`);
}

/** Small seeded PRNG (mulberry32): reproducible fault schedules from the printed seed. */
export function rng(seed: number): {
  next(): number;
  int(maxExclusive: number): number;
  chance(p: number): boolean;
} {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n), chance: (p) => next() < p };
}
