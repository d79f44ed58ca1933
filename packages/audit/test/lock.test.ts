import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AuditLockedError } from '../src/errors.js';
import { nodeFs } from '../src/fs.js';
import { acquireLock, bootId, holderState, processStartTicks } from '../src/lock.js';
import { AuditLogger } from '../src/logger.js';
import { quiet, readTrail, routine, tmpTrail } from './writer-helpers.js';

const open = (dir: string) =>
  AuditLogger.open({ mode: 'local', dir, serviceId: 'svc', logger: quiet, flush: { mode: 'immediate' } });

test('a second writer in another process gets AuditLockedError naming the holder pid; a killed holder is detected as stale', async () => {
  const dir = tmpTrail();
  const child = spawn(
    process.execPath,
    [
      '--conditions=vramseal-source',
      '--import',
      'tsx',
      fileURLToPath(new URL('./fixtures/writer-lock-holder.ts', import.meta.url)),
      dir,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('ready')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    await assert.rejects(
      open(dir),
      (e: unknown) =>
        e instanceof AuditLockedError &&
        e.code === 'AUDIT_LOCKED' &&
        e.holderPid === child.pid &&
        e.message.includes(`pid ${child.pid}`),
    );
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((r) => child.once('exit', r));
  // The holder died without releasing: its lock is stale and is broken.
  const log = await open(dir);
  assert.equal(log.lastSeq, 1);
  await log.emit(routine()).durable;
  await log.close();
  const recs = await readTrail(dir);
  assert.deepEqual(
    recs.map((r) => r.event.shard_id),
    ['child', 'shard-0'],
  );
});

test('in one process, a second open of the same trail is refused too', async () => {
  const dir = tmpTrail();
  const a = await open(dir);
  await assert.rejects(
    open(dir),
    (e: unknown) => e instanceof AuditLockedError && e.holderPid === process.pid,
  );
  await a.close();
  const b = await open(dir);
  await b.close();
});

function lockText(o: Record<string, unknown>): string {
  return `${JSON.stringify({ pid: process.pid, hostname: hostname(), boot_id: bootId(), start_ticks: processStartTicks(process.pid), created: '', ...o })}\n`;
}

test('stale-lock rules: dead pid, reused pid, other boot → broken; other host, live pid, fresh unreadable → held', async () => {
  const me = { hostname: hostname(), bootId: 'boot-a' };
  const base = {
    pid: process.pid,
    hostname: hostname(),
    boot_id: 'boot-a',
    start_ticks: processStartTicks(process.pid),
    created: '',
  };
  assert.equal(holderState(base, me).alive, true);
  assert.equal(holderState({ ...base, hostname: 'elsewhere' }, me).alive, true);
  assert.equal(holderState({ ...base, boot_id: 'boot-b' }, me).alive, false);
  assert.equal(holderState({ ...base, pid: 2 ** 22 + 12345 }, me).alive, false);
  if (base.start_ticks !== null) assert.equal(holderState({ ...base, start_ticks: '1' }, me).alive, false);

  const dir = tmpTrail();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, 'LOCK');
  // dead pid → broken
  writeFileSync(lock, lockText({ pid: 2 ** 22 + 12345, start_ticks: null }));
  const l1 = await acquireLock(nodeFs, dir);
  assert.ok(l1.brokeStale);
  assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pid, process.pid);
  await l1.release();
  // another host → held
  writeFileSync(lock, lockText({ hostname: 'some-other-host', pid: 4242 }));
  await assert.rejects(
    acquireLock(nodeFs, dir),
    (e: unknown) => e instanceof AuditLockedError && e.holderPid === 4242,
  );
  // unreadable and fresh → held; unreadable and old → broken
  writeFileSync(lock, '');
  await assert.rejects(acquireLock(nodeFs, dir), AuditLockedError);
  utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  const l2 = await acquireLock(nodeFs, dir);
  assert.ok(l2.brokeStale);
  await l2.release();
});
