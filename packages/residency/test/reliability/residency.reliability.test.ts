import { after, test } from 'node:test';
import { FULL, seedFor } from '../../../audit/test/reliability/summary.js';
import { cleanupTemp } from '../../../audit/test/reliability/trail-io.js';
import {
  runConcurrency,
  runCorruption,
  runFailClosedSeal,
  runForgeries,
  runLifecycleMisuse,
} from './faults.js';

after(cleanupTemp);

const TRIALS = FULL ? 2_000 : 60;

test(`residency: ${TRIALS} random corruptions are all detected and localized`, {
  timeout: 30 * 60_000,
}, async () => {
  await runCorruption({
    seed: seedFor('residency corruption', 906),
    trials: TRIALS,
    maxBytes: FULL ? 4 << 20 : 256 << 10,
  });
});

test('residency: forged and replayed handles are rejected', async () => {
  await runForgeries();
});

test('residency: lifecycle misuse gets clear typed errors', async () => {
  await runLifecycleMisuse();
});

test('residency: 1000 concurrent seal/verify/release keep accounting exact', async () => {
  await runConcurrency({ seed: seedFor('residency concurrency', 907), ops: 1000 });
});

test('residency: fail-closed seal refuses while the audit trail cannot write, resumes after', async () => {
  await runFailClosedSeal({ seed: 908 });
});
