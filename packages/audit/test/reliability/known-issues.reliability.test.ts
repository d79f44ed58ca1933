/**
 * Behaviour the reliability suite found (and that was then fixed): kept as regression tests.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type AuditEvent, AuditLogger } from '@vramseal/audit';
import { pino } from 'pino';
import { FaultyDisk } from './fault-fs.js';
import { cleanupTemp, tempDir } from './trail-io.js';

after(cleanupTemp);

test('after an outage, health() is ok as soon as flush() resolves (fail-closed callers can act at once)', async () => {
  const disk = new FaultyDisk({ seed: 1 });
  const log = await AuditLogger.open({
    mode: 'local',
    dir: join(tempDir('known'), 'trail'),
    serviceId: 'svc',
    fs: disk.fs,
    failClosed: true,
    flush: { mode: 'immediate' },
    retry: { initialMs: 2, maxMs: 5 },
    logger: pino({ level: 'silent' }),
  });
  const ev = { type: 'seal.verified', timestamp: new Date().toISOString(), shard_id: 's', worker_id: 'w' };
  await log.emit(ev as AuditEvent).durable;
  disk.spaceLeft = 0;
  void log.emit(ev as AuditEvent).durable.catch(() => {});
  while (log.health().state !== 'unavailable') await new Promise((r) => setTimeout(r, 1));
  disk.heal();
  await log.flush();
  const state = log.health().state;
  await log.close();
  assert.equal(state, 'ok');
});
