/**
 * Crash-consistent states found by the reliability suite (issue 9), pinned as regular tests.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AuditLogger, newFileEntry, verifyTrail } from '@vramseal/audit';
import { pino } from 'pino';
import { cleanupTemp, readRecords, tempDir } from './trail-io.js';

after(cleanupTemp);
const KEY = Buffer.alloc(32, 0x11);

test('records written to a new file before its manifest entry was updated (disk full, or a crash in between) verify, and recover', async () => {
  const base = tempDir('crash-state');
  const live = join(base, 'live');
  const log = await AuditLogger.open({
    mode: 'local',
    dir: live,
    serviceId: 'svc',
    macKey: KEY,
    flush: { mode: 'immediate' },
    logger: pino({ level: 'silent' }),
  });
  for (let i = 0; i < 3; i++)
    await log.emit({
      type: 'seal.verified',
      timestamp: new Date().toISOString(),
      shard_id: `s${i}`,
      worker_id: 'w',
    }).durable;
  // The state on disk if the manifest write after the first record failed (ENOSPC) or the process
  // died right before it: the open entry still says "empty", as written when the file was created.
  const dir = join(base, 'copy');
  cpSync(live, dir, { recursive: true });
  await log.close();
  rmSync(join(dir, 'LOCK'), { force: true });
  const mPath = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(mPath, 'utf8'));
  const open = m.files.at(-1);
  assert.equal(open.state, 'open');
  m.files[m.files.length - 1] = newFileEntry(open.name, open.created);
  writeFileSync(mPath, JSON.stringify(m));

  const report = await verifyTrail(dir, { macKey: KEY, concurrency: 0 });
  assert.deepEqual(report.failures, [], 'the records are intact and continue the chain');
  assert.equal(report.records, 3);

  const again = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    macKey: KEY,
    flush: { mode: 'immediate' },
    logger: pino({ level: 'silent' }),
  });
  assert.equal(again.lastSeq, 3);
  await again.close();
  assert.equal((await verifyTrail(dir, { macKey: KEY, concurrency: 0 })).ok, true);
  assert.deepEqual(
    readRecords(dir).map((r) => r.event.shard_id),
    ['s0', 's1', 's2'],
  );
});
