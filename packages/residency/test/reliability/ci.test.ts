/**
 * The CI subset of the residency reliability scenarios (runs in `npm test`): small sizes, fixed seeds.
 * The full run is `npm run test:reliability`.
 */
import { after, test } from 'node:test';
import { seedFor } from '../../../audit/test/reliability/summary.js';
import { cleanupTemp } from '../../../audit/test/reliability/trail-io.js';
import {
  runConcurrency,
  runCorruption,
  runFailClosedSeal,
  runForgeries,
  runLifecycleMisuse,
} from './faults.js';

after(cleanupTemp);

test('reliability (CI): 40 random VRAM corruptions detected and localized', async () => {
  await runCorruption({ seed: seedFor('ci residency corruption', 21), trials: 40, maxBytes: 128 << 10 });
});

test('reliability (CI): forged and replayed handles rejected', async () => {
  await runForgeries();
});

test('reliability (CI): lifecycle misuse gets clear typed errors', async () => {
  await runLifecycleMisuse();
});

test('reliability (CI): 1000 concurrent seal/verify/release keep accounting exact', async () => {
  await runConcurrency({ seed: seedFor('ci residency concurrency', 22), ops: 1000 });
});

test('reliability (CI): fail-closed seal on a full disk', async () => {
  await runFailClosedSeal({ seed: 23 });
});
