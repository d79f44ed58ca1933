import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { AuditUnavailableError, AuditValidationError } from '../src/errors.js';
import { AuditLogger } from '../src/logger.js';
import { loadMacKey, MacKey, parseMacKey } from '../src/mac-key.js';
import { readManifest } from '../src/manifest.js';
import { GENESIS_HASH } from '../src/record.js';
import { AuditConfigError } from '../src/writer-errors.js';
import { critical, quiet, readTrail, recordFiles, routine, tmpTrail, turn } from './writer-helpers.js';

const KEY = Buffer.alloc(32, 7);

test('disabled mode: emit is a no-op receipt, nothing is created', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({ mode: 'disabled', dir, logger: quiet });
  const r = log.emit(routine());
  assert.equal(r.seq, 0);
  assert.equal(r.auditId, '');
  await r.durable;
  await log.flush();
  await log.close();
  assert.equal(existsSync(dir), false);
});

test('emit returns seq/auditId synchronously and does no I/O on the caller turn', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    flush: { mode: 'immediate' },
  });
  const r1 = log.emit(routine(1));
  const r2 = log.emit(routine(2));
  assert.deepEqual([r1.seq, r2.seq], [1, 2]);
  assert.match(r1.auditId, /^[0-9a-f-]{36}$/);
  assert.notEqual(r1.auditId, r2.auditId);
  // Still on the caller's turn: no record file exists yet.
  assert.deepEqual(recordFiles(dir), []);
  await Promise.all([r1.durable, r2.durable]);
  const recs = await readTrail(dir);
  assert.equal(recs.length, 2);
  assert.equal(recs[0]?.prev_hash, GENESIS_HASH);
  assert.equal(recs[1]?.event.shard_id, 'shard-2');
  assert.equal(log.lastSeq, 2);
  assert.equal(log.lastHash, recs[1]?.hash);
  await log.close();
});

test('records are canonical, chained and MACed; durable listeners see them in seq order', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    macKey: KEY,
    logger: quiet,
    flush: { mode: 'batched', maxEvents: 7, maxDelayMs: 5 },
  });
  const seen: { seq: number; hash: string; line: string }[] = [];
  log.on('durable', (recs) => seen.push(...recs));
  for (let i = 0; i < 50; i++) log.emit(i % 10 === 0 ? critical(i) : routine(i));
  await log.flush();
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.equal(recs.length, 50);
  assert.deepEqual(
    seen.map((s) => s.seq),
    recs.map((r) => r.seq),
  );
  assert.deepEqual(
    seen.map((s) => s.line),
    recs.map((r) => r.line),
  );
  assert.equal(new Set(recs.map((r) => r.audit_id)).size, 50);
});

test('an invalid event throws AuditValidationError, writes nothing and consumes no seq', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    flush: { mode: 'immediate' },
  });
  assert.throws(
    () => log.emit({ ...routine(), shard_id: 'bad\u001b[31m' } as never),
    (e: unknown) => e instanceof AuditValidationError && e.path === 'shard_id' && e.rule === 'control-char',
  );
  const r = log.emit(routine());
  assert.equal(r.seq, 1);
  await r.durable;
  await log.close();
  assert.equal((await readTrail(dir)).length, 1);
});

test('emit after close throws AuditUnavailableError; close is idempotent and emits "close"', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({ mode: 'local', dir, serviceId: 'svc', logger: quiet });
  let closed = 0;
  log.on('close', () => closed++);
  log.emit(routine());
  await Promise.all([log.close(), log.close()]);
  assert.equal(closed, 1);
  assert.throws(() => log.emit(routine()), AuditUnavailableError);
  assert.equal(log.health().state, 'unavailable');
  assert.equal(existsSync(join(dir, 'LOCK')), false, 'lock released');
  assert.equal((await readTrail(dir)).length, 1);
});

test('permissions: dir 0700, open file 0600; a symlinked dir or record file is refused', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    flush: { mode: 'immediate' },
  });
  await log.emit(routine()).durable;
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const [f] = recordFiles(dir);
  assert.equal(statSync(join(dir, f as string)).mode & 0o777, 0o600);
  await log.close();

  const link = `${dir}-link`;
  symlinkSync(dir, link);
  await assert.rejects(
    AuditLogger.open({ mode: 'local', dir: link, serviceId: 'svc', logger: quiet }),
    (e: unknown) => e instanceof AuditConfigError && /symlink/.test(e.message),
  );

  // Replace the open record file with a symlink to a copy: refused, not followed.
  const p = join(dir, f as string);
  const copy = `${dir}-copy.audit`;
  writeFileSync(copy, readFileSync(p));
  unlinkSync(p);
  symlinkSync(copy, p);
  assert.ok(lstatSync(p).isSymbolicLink());
  await assert.rejects(AuditLogger.open({ mode: 'local', dir, serviceId: 'svc', logger: quiet }), /symlink/);
});

test('a trail belongs to one service id; options are checked and name the option', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({ mode: 'local', dir, serviceId: 'svc-a', logger: quiet });
  await log.close();
  await assert.rejects(
    AuditLogger.open({ mode: 'local', dir, serviceId: 'svc-b', logger: quiet }),
    (e: unknown) => e instanceof AuditConfigError && e.option === 'serviceId',
  );
  await assert.rejects(
    AuditLogger.open({ mode: 'local', serviceId: 'x', logger: quiet }),
    (e: unknown) => e instanceof AuditConfigError && e.option === 'dir',
  );
  await assert.rejects(
    AuditLogger.open({ mode: 'local', dir, serviceId: 'svc-a', macKey: Buffer.alloc(4), logger: quiet }),
    (e: unknown) => e instanceof AuditConfigError && e.option === 'macKey',
  );
  await assert.rejects(
    AuditLogger.open({ mode: 'platform', dir, serviceId: 'svc-a', logger: quiet }),
    (e: unknown) => e instanceof AuditConfigError && e.option === 'platform',
  );
  await assert.rejects(
    AuditLogger.open({ mode: 'local', dir, serviceId: 'svc-a', queue: { maxEvents: 0 }, logger: quiet }),
    (e: unknown) => e instanceof AuditConfigError && e.option === 'queue.maxEvents',
  );
  // A failed open releases the lock.
  const ok = await AuditLogger.open({ mode: 'local', dir, serviceId: 'svc-a', logger: quiet });
  await ok.close();
});

test('the MAC key never leaks through toJSON, inspect or errors', async () => {
  const dir = tmpTrail();
  const hex = 'ab'.repeat(32);
  const key = parseMacKey(hex, 'test');
  assert.ok(key instanceof MacKey);
  assert.equal(JSON.stringify({ key }), '{"key":"[redacted]"}');
  assert.ok(!inspect(key).includes('171'));
  const log = await AuditLogger.open({ mode: 'local', dir, serviceId: 'svc', macKey: key, logger: quiet });
  assert.ok(!JSON.stringify(log).includes('ab'.repeat(4)));
  assert.ok(!inspect(log, { depth: 5 }).includes('ab'.repeat(4)));
  await log.close();
});

test('loadMacKey: file must be 0600 (not a symlink), env works, bad keys are refused without echoing them', () => {
  const d = tmpTrail();
  mkdirSync(d, { recursive: true });
  const f = join(d, 'mac.key');
  writeFileSync(f, `${'cd'.repeat(32)}\n`, { mode: 0o644 });
  assert.throws(
    () => loadMacKey({ file: f }),
    (e: unknown) =>
      e instanceof AuditConfigError && /chmod 600/.test(e.message) && !e.message.includes('cdcd'),
  );
  chmodSync(f, 0o600);
  assert.deepEqual(Buffer.from(loadMacKey({ file: f })), Buffer.alloc(32, 0xcd));
  const l = join(d, 'link.key');
  symlinkSync(f, l);
  assert.throws(() => loadMacKey({ file: l }), /symlink/);
  assert.deepEqual(
    Buffer.from(
      loadMacKey({ env: 'K', environment: { K: `base64:${Buffer.alloc(16, 1).toString('base64')}` } }),
    ),
    Buffer.alloc(16, 1),
  );
  assert.throws(() => loadMacKey({ env: 'K', environment: {} }), /not set/);
  // A key file may hold exactly 32 raw bytes (the verifier's --key-file reads files with this function).
  const raw = join(d, 'raw.key');
  const rawKey = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 200) & 0xff));
  writeFileSync(raw, rawKey, { mode: 0o600 });
  assert.deepEqual(Buffer.from(loadMacKey({ file: raw })), rawKey);
  writeFileSync(raw, rawKey.subarray(0, 31), { mode: 0o600 });
  assert.throws(() => loadMacKey({ file: raw }), /exactly 32 raw bytes/);
  assert.throws(() => parseMacKey('abcd', 'k'), /at least 16 bytes/);
  assert.throws(
    () => parseMacKey('secret-not-hex-zz', 'k'),
    (e: unknown) => e instanceof Error && !e.message.includes('secret'),
  );
});

test('restart resumes seq and chain; a restarted trail appends to the same day file', async () => {
  const dir = tmpTrail();
  let log = await AuditLogger.open({ mode: 'local', dir, serviceId: 'svc', logger: quiet, macKey: KEY });
  for (let i = 0; i < 5; i++) log.emit(routine(i));
  await log.close();
  log = await AuditLogger.open({ mode: 'local', dir, serviceId: 'svc', logger: quiet, macKey: KEY });
  assert.equal(log.lastSeq, 5);
  const r = log.emit(routine(9));
  assert.equal(r.seq, 6);
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.equal(recs.length, 6);
  assert.equal(recordFiles(dir).length, 1);
  const m = await readManifest(dir);
  assert.equal(m?.files[0]?.state, 'open');
  assert.equal(m?.files[0]?.last_seq, 6);
  assert.equal(m?.files[0]?.count, 6);
});

test('un-awaited receipts never cause unhandled rejections', async () => {
  const dir = tmpTrail();
  const seen: unknown[] = [];
  const onUnhandled = (e: unknown) => seen.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const log = await AuditLogger.open({
      mode: 'local',
      dir,
      serviceId: 'svc',
      logger: quiet,
      queue: { maxEvents: 1, onFull: 'drop' },
      flush: { mode: 'batched', maxDelayMs: 1000 },
    });
    for (let i = 0; i < 5; i++) {
      const r = log.emit(routine(i));
      void r.durable; // touched, not awaited
    }
    await log.close();
    await turn(10);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(seen, []);
});

test("mode 'platform' attaches the platform shipper to the local trail and stops it on close", async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const { shipperOf } = await import('../src/platform/attach.js');
  const dir = tmpTrail();
  const { privateKey } = generateKeyPairSync('ed25519');
  const fetchStub = (async () => {
    return new Response('unavailable', { status: 503 });
  }) as typeof fetch;
  const log = await AuditLogger.open({
    mode: 'platform',
    dir,
    serviceId: 'svc',
    logger: quiet,
    flush: { mode: 'immediate' },
    platform: {
      providerId: 'p1',
      url: 'http://127.0.0.1:9',
      privateKey,
      fetch: fetchStub,
      backoff: { initialMs: 5, maxMs: 10 },
    },
  });
  const shipper = shipperOf(log);
  assert.ok(shipper, 'shipper attached');
  await log.emit(routine()).durable;
  // health() carries the shipper's status: the record is durable locally, not yet acknowledged.
  const h = log.health();
  assert.equal(h.platform?.ackedSeq, 0);
  assert.equal(h.platform?.durableSeq, 1);
  assert.equal(h.platform?.backlog, 1);
  await log.close();
  // close() stops the shipper before it releases the lock.
  assert.equal(shipper.status().state, 'stopped');
  assert.equal((await readTrail(dir)).length, 1, 'records are written locally first');
});

test('a receipt serializes and inspects as { seq, auditId } only (never the queue buffers)', async () => {
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    logger: quiet,
    flush: { mode: 'immediate' },
  });
  const r = log.emit(routine());
  await r.durable;
  assert.deepEqual(JSON.parse(JSON.stringify(r)), { seq: 1, auditId: r.auditId, dropped: false });
  assert.ok(!inspect(r).includes('shard'));
  await log.close();
});
