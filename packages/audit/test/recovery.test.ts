import assert from 'node:assert/strict';
import {
  appendFileSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AuditFs, nodeFs } from '../src/fs.js';
import { AuditLogger } from '../src/logger.js';
import { readManifest } from '../src/manifest.js';
import { AuditConfigError, AuditCorruptError } from '../src/writer-errors.js';
import { critical, quiet, readTrail, recordFiles, routine, tmpTrail } from './writer-helpers.js';

const KEY = Buffer.alloc(32, 9);
const open = (dir: string, extra: Partial<Parameters<typeof AuditLogger.open>[0]> = {}) =>
  AuditLogger.open({ mode: 'local', dir, serviceId: 'svc', macKey: KEY, logger: quiet, ...extra });

async function trailWith(n: number): Promise<{ dir: string; file: string }> {
  const dir = tmpTrail();
  const log = await open(dir);
  for (let i = 0; i < n; i++) log.emit(i % 3 === 0 ? critical(i) : routine(i));
  await log.close();
  return { dir, file: join(dir, recordFiles(dir)[0] as string) };
}

test('a torn last line is quarantined byte-for-byte and recorded as audit.recovered; the chain continues', async () => {
  const { dir, file } = await trailWith(5);
  const torn = '{"audit_id":"0000","event":{"type":"seal.verif';
  appendFileSync(file, torn);
  const log = await open(dir);
  assert.equal(log.lastSeq, 5);
  await log.flush(); // the audit.recovered record
  const r = log.emit(routine(99));
  assert.equal(r.seq, 7);
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.equal(recs.length, 7);
  const rec = recs[5]?.event as Record<string, unknown>;
  assert.equal(rec.type, 'audit.recovered');
  assert.equal(rec.file, recordFiles(dir)[0]);
  assert.equal(rec.bytes, Buffer.byteLength(torn));
  assert.equal(rec.reason, 'torn_tail');
  const q = join(dir, rec.quarantine_file as string);
  assert.equal(readFileSync(q, 'utf8'), torn);
  assert.equal(statSync(q).mode & 0o777, 0o400);
  assert.equal(statSync(join(dir, 'quarantine')).mode & 0o777, 0o700);
});

test('a tail of NUL bytes and a corrupted last complete line are quarantined too (invalid_tail)', async () => {
  const { dir, file } = await trailWith(4);
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  // Corrupt the last record (flip a character of its event) and add a NUL tail.
  lines[3] = (lines[3] as string).replace('shard-3', 'shard-X');
  writeFileSync(file, `${lines.join('\n')}\u0000\u0000\u0000`);
  // As after a crash: the manifest's open entry only knew the first 3 records (its bounds are lower bounds).
  const mf = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const r3 = JSON.parse(lines[2] as string);
  Object.assign(mf.files[0], { last_seq: 3, count: 3, last_hash: r3.hash, last_time: r3.time });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(mf));
  const log = await open(dir);
  assert.equal(log.lastSeq, 3);
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.equal(recs.length, 4);
  const ev = recs[3]?.event as Record<string, unknown>;
  assert.equal(ev.type, 'audit.recovered');
  assert.equal(ev.reason, 'invalid_tail');
  const q = readFileSync(join(dir, ev.quarantine_file as string), 'utf8');
  assert.ok(q.startsWith(`${lines[3]}\n`));
  assert.ok(q.endsWith('\u0000\u0000\u0000'));
});

test('a file holding only a torn first line is emptied into quarantine; seq continues from the previous file', async () => {
  const dir = tmpTrail();
  let log = await open(dir, { rotation: { maxBytes: 1 } });
  log.emit(routine(1));
  log.emit(routine(2));
  await log.close();
  const files = readdirSync(dir).filter((n) => n.endsWith('.audit'));
  assert.equal(files.length, 2);
  const m = await readManifest(dir);
  const lastName = m?.files[1]?.name as string;
  // Simulate: the second file's only record was torn by a crash and the manifest never saw it.
  const p = join(dir, lastName);
  const { chmodSync } = await import('node:fs');
  chmodSync(p, 0o600);
  writeFileSync(p, '{"audit_id":"x"');
  const mf = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  Object.assign(mf.files[1], {
    first_seq: null,
    last_seq: null,
    count: 0,
    first_hash: null,
    last_hash: null,
    first_time: null,
    last_time: null,
    bytes: 0,
  });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(mf));
  log = await open(dir, { rotation: { maxBytes: 1 } });
  assert.equal(log.lastSeq, 1);
  await log.close();
  const recs = await readTrail(dir, KEY);
  assert.deepEqual(
    recs.map((r) => r.event.type),
    ['seal.verified', 'audit.recovered'],
  );
});

test('restart reads only the tail of the last file, not the whole trail', async () => {
  const dir = tmpTrail();
  let log = await open(dir, { flush: { mode: 'batched', maxEvents: 500, maxDelayMs: 1 } });
  for (let i = 0; i < 3000; i++) log.emit(routine(i));
  await log.close();
  const size = statSync(join(dir, recordFiles(dir)[0] as string)).size;
  assert.ok(size > 1_000_000);
  let readBytes = 0;
  const counting: AuditFs = {
    ...nodeFs,
    read: async (...a) => {
      const n = await nodeFs.read(...a);
      readBytes += n;
      return n;
    },
    readFile: async (p) => {
      const b = await nodeFs.readFile(p);
      readBytes += b.length;
      return b;
    },
  };
  log = await open(dir, { fs: counting });
  assert.equal(log.lastSeq, 3000);
  await log.close();
  assert.ok(readBytes < 200_000, `read ${readBytes} of ${size} bytes`);
});

test('missing records are refused: a file shorter than the manifest, a missing file, files without a manifest', async () => {
  {
    const { dir, file } = await trailWith(6);
    const lines = readFileSync(file, 'utf8').split('\n');
    truncateSync(file, Buffer.byteLength(`${lines.slice(0, 3).join('\n')}\n`));
    await assert.rejects(
      open(dir),
      (e: unknown) => e instanceof AuditCorruptError && /records are missing/.test(e.message),
    );
  }
  {
    const { dir, file } = await trailWith(2);
    unlinkSync(file);
    await assert.rejects(
      open(dir),
      (e: unknown) => e instanceof AuditCorruptError && /missing/.test(e.message),
    );
  }
  {
    const { dir } = await trailWith(2);
    unlinkSync(join(dir, 'manifest.json'));
    await assert.rejects(
      open(dir),
      (e: unknown) => e instanceof AuditCorruptError && /manifest.json/.test(e.message),
    );
  }
  {
    const { dir } = await trailWith(2);
    writeFileSync(join(dir, '2020-01-01.audit'), 'stray\n');
    await assert.rejects(open(dir), /not listed in the manifest/);
    unlinkSync(join(dir, '2020-01-01.audit'));
    writeFileSync(join(dir, '2020-01-01.audit'), ''); // empty leftover: removed
    const log = await open(dir);
    await log.close();
    assert.ok(!readdirSync(dir).includes('2020-01-01.audit'));
  }
});

test('a MACed trail is not continued without its key, nor with a different one', async () => {
  const { dir } = await trailWith(2);
  await assert.rejects(
    open(dir, { macKey: undefined }),
    (e: unknown) => e instanceof AuditConfigError && e.option === 'macKey',
  );
  await assert.rejects(
    open(dir, { macKey: Buffer.alloc(32, 1) }),
    (e: unknown) => e instanceof AuditConfigError && /wrong key/.test(e.message),
  );
  const log = await open(dir);
  await log.close();
});

test('a writer killed with SIGKILL mid-stream: every acknowledged record survives and the chain resumes', async () => {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const dir = tmpTrail();
  const child = spawn(
    process.execPath,
    [
      '--conditions=vramseal-source',
      '--import',
      'tsx',
      fileURLToPath(new URL('./fixtures/writer-crash.ts', import.meta.url)),
      dir,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (out.split('\n').length > 300) {
        clearInterval(t);
        resolve();
      }
    }, 20);
    child.once('exit', (c) => {
      clearInterval(t);
      reject(new Error(`child exited (${c})`));
    });
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const acked = out.split('\n').filter(Boolean).map(Number);
  const maxAcked = Math.max(...acked);
  const log = await open(dir, { rotation: { maxBytes: 20_000 } });
  assert.ok(log.lastSeq >= maxAcked, `resumed at ${log.lastSeq}, acknowledged up to ${maxAcked}`);
  await log.emit(routine()).durable;
  await log.close();
  const recs = await readTrail(dir, KEY); // whole chain verifies across rotated files
  const seqs = new Set(recs.map((r) => r.seq));
  for (const s of acked) assert.ok(seqs.has(s), `acknowledged seq ${s} is in the trail`);
  assert.equal(recs.at(-1)?.event.shard_id, 'shard-0');
});
