import { after, test } from 'node:test';
import { mountTmpfs, runDiskFaults, runRealFullDisk } from './disk.js';
import { FULL, seedFor } from './summary.js';
import { cleanupTemp } from './trail-io.js';

after(cleanupTemp);
const ATTEMPTS = FULL ? 15_000 : 3_000;

test(`disk faults: ${ATTEMPTS} emits under injected ENOSPC/EIO, fail-closed`, async () => {
  await runDiskFaults({ seed: seedFor('disk faults', 903), attempts: ATTEMPTS });
});

test('disk full: a real tmpfs fills up, then grows', async (t) => {
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
