/**
 * The CI subset of the reliability suite (runs in `npm test`): every audit scenario of the full run
 * (`npm run test:reliability`), with small sizes and fixed seeds. Override a seed with
 * VRAMSEAL_RELIABILITY_SEED to reproduce a full-run failure here.
 */
import { after, test } from 'node:test';
import { runCrashScenario } from './crash.js';
import { mountTmpfs, runDiskFaults, runRealFullDisk } from './disk.js';
import { runEventFuzz } from './fuzz-events.js';
import { runTrailFuzz } from './fuzz-trail.js';
import { runLoad } from './load.js';
import { seedFor } from './summary.js';
import { cleanupTemp } from './trail-io.js';

after(cleanupTemp);

test('reliability (CI): 3 SIGKILL rounds, immediate mode', async () => {
  await runCrashScenario({ mode: 'immediate', rounds: 3, seed: seedFor('ci crash immediate', 3) });
});

test('reliability (CI): 3 SIGKILL rounds, hybrid mode', async () => {
  await runCrashScenario({ mode: 'hybrid', rounds: 3, seed: seedFor('ci crash hybrid', 3) });
});

test('reliability (CI): 1500 emits under injected ENOSPC/EIO, fail-closed', async () => {
  await runDiskFaults({ seed: seedFor('ci disk faults', 11), attempts: 1500 });
});

test('reliability (CI): a real tmpfs fills up, then grows', async (t) => {
  const m = mountTmpfs('192k');
  if (typeof m === 'string') {
    console.log(`[reliability] NOTICE: real full-disk test skipped: ${m}`);
    t.skip(`real full-disk test skipped: ${m}`);
    return;
  }
  try {
    await runRealFullDisk(m);
  } finally {
    m.unmount();
  }
});

test('reliability (CI): 1000 hostile events', async () => {
  await runEventFuzz({ seed: seedFor('ci fuzz events', 12), runs: 1000 });
});

test('reliability (CI): 150 trail-file mutations', async () => {
  await runTrailFuzz({ seed: seedFor('ci fuzz trail', 13), trials: 150 });
});

test('reliability (CI): 64 concurrent emitters × 10 000 events', async () => {
  await runLoad({ emitters: 64, total: 10_000 });
});
