import { after, test } from 'node:test';
import { runLoad } from './load.js';
import { FULL } from './summary.js';
import { cleanupTemp } from './trail-io.js';

after(cleanupTemp);
const TOTAL = FULL ? 1_000_000 : 20_000;

test(`load: 64 concurrent emitters × ${TOTAL} events in total lose nothing`, {
  timeout: 30 * 60_000,
}, async () => {
  await runLoad({ emitters: 64, total: TOTAL });
});
