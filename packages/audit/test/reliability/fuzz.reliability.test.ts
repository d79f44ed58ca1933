import { after, test } from 'node:test';
import { runEventFuzz } from './fuzz-events.js';
import { FULL, seedFor } from './summary.js';
import { cleanupTemp } from './trail-io.js';

after(cleanupTemp);
const EVENTS = FULL ? 100_000 : 2_000;

test(`fuzz: ${EVENTS} hostile events are rejected with a clear error or stored inert`, async () => {
  await runEventFuzz({ seed: seedFor('fuzz events', 904), runs: EVENTS });
});
