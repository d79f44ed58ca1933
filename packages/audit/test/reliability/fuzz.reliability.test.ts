import { after, test } from 'node:test';
import { runEventFuzz } from './fuzz-events.js';
import { runTrailFuzz } from './fuzz-trail.js';
import { FULL, seedFor } from './summary.js';
import { cleanupTemp } from './trail-io.js';

after(cleanupTemp);
const EVENTS = FULL ? 100_000 : 2_000;

test(`fuzz: ${EVENTS} hostile events are rejected with a clear error or stored inert`, async () => {
  await runEventFuzz({ seed: seedFor('fuzz events', 904), runs: EVENTS });
});

const TRIALS = FULL ? 10_000 : 300;
test(`fuzz: ${TRIALS} random mutations of trail files are all reported; the verifier never crashes or hangs`, {
  timeout: 30 * 60_000,
}, async () => {
  await runTrailFuzz({ seed: seedFor('fuzz trail', 905), trials: TRIALS });
});
