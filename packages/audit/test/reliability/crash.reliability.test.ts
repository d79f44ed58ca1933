import { after, test } from 'node:test';
import { runCrashScenario } from './crash.js';
import { FULL, seedFor } from './summary.js';
import { cleanupTemp } from './trail-io.js';

after(cleanupTemp);
const ROUNDS = FULL ? 50 : 4;

test(`crash: ${ROUNDS} SIGKILL rounds, immediate mode: every acknowledged record survives, the trail verifies`, async () => {
  await runCrashScenario({ mode: 'immediate', rounds: ROUNDS, seed: seedFor('crash immediate', 901) });
});

test(`crash: ${ROUNDS} SIGKILL rounds, hybrid mode with critical events`, async () => {
  await runCrashScenario({ mode: 'hybrid', rounds: ROUNDS, seed: seedFor('crash hybrid', 902) });
});
