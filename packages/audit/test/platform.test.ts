/**
 * Platform mode, provider side, without a collector: batch and receipt signatures, keys, backoff,
 * the spool reader over a real rotated trail, and the shipper against a scripted fake collector
 * (retries with backoff, status, state file). End-to-end tests against the real collector on
 * PostgreSQL and PGlite live in packages/collector/test/platform-e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import pino from 'pino';
import { AuditLogger } from '../src/logger.js';
import { backoffDelay } from '../src/platform/backoff.js';
import {
  type BatchHeader,
  type SignedBatch,
  signBatch,
  verifyBatchSignature,
} from '../src/platform/batch.js';
import type { PlatformError } from '../src/platform/errors.js';
import {
  generateSigningKey,
  keyId,
  loadPrivateKeyFile,
  parsePrivateKey,
  parsePublicKey,
  publicKeyToBase64,
} from '../src/platform/keys.js';
import { signReceipt, verifyReceipt } from '../src/platform/receipt.js';
import { Shipper } from '../src/platform/shipper.js';
import { SpoolReader } from '../src/platform/spool.js';
import { GENESIS_HASH } from '../src/record.js';

const quiet = pino({ level: 'silent' });
const tmp: string[] = [];
after(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});
function tmpDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'vramseal-platform-unit-'));
  tmp.push(d);
  return d;
}

function ev(i: number) {
  return {
    type: 'task.completed' as const,
    timestamp: '2026-11-27T10:00:00.000Z',
    task_id: `task-${i}`,
    worker_id: 'w-1',
    tokens_generated: i,
    duration_ms: 5,
    result: { status: 'success' as const },
  };
}

/** A local trail with `n` records over several rotated files (real AuditLogger, local mode). */
async function makeTrail(n: number, maxBytes = 4096): Promise<{ dir: string; lines: string[] }> {
  const dir = join(tmpDir(), 'trail');
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc-unit',
    flush: { mode: 'batched', maxEvents: 64, maxDelayMs: 5 },
    rotation: { maxBytes },
    logger: quiet,
  });
  const lines: string[] = [];
  log.on('durable', (recs) => {
    for (const r of recs) lines.push(r.line);
  });
  const ds = [];
  for (let i = 1; i <= n; i++) ds.push(log.emit(ev(i)).durable);
  await Promise.all(ds);
  await log.close();
  return { dir, lines };
}

test('batch signature covers header and every byte of every line; wrong key fails', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const h: BatchHeader = {
    v: 1,
    provider_id: 'p1',
    first_seq: 1,
    last_seq: 2,
    prev_hash: GENESIS_HASH,
    last_hash: 'b'.repeat(64),
    sent_at: '2026-11-27T10:00:00.000Z',
    key_id: keyId(publicKey),
  };
  const b = signBatch(h, ['{"a":1}', '{"b":2}'], privateKey);
  assert.equal(verifyBatchSignature(b, publicKey), true);
  const variants: SignedBatch[] = [
    { ...b, records: ['{"a":1}', '{"b":3}'] },
    { ...b, records: ['{"a":1}{"b":2}', ''] },
    { ...b, records: ['{"a":1}'] },
    { ...b, last_seq: 3 },
    { ...b, provider_id: 'p2' },
    { ...b, prev_hash: 'c'.repeat(64) },
    { ...b, sent_at: '2026-11-27T10:00:00.001Z' },
    { ...b, signature: 'AAAA' },
  ];
  for (const v of variants)
    assert.equal(verifyBatchSignature(v, publicKey), false, JSON.stringify(v).slice(0, 80));
  const other = generateKeyPairSync('ed25519').publicKey;
  assert.equal(verifyBatchSignature(b, other), false);
});

test('receipts verify with the collector key only, and any changed field breaks them', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const r = signReceipt(
    {
      v: 1,
      provider_id: 'p',
      last_seq: 7,
      head_hash: 'a'.repeat(64),
      time: '2026-11-27T10:00:00.000Z',
      key_id: keyId(publicKey),
    },
    privateKey,
  );
  assert.equal(verifyReceipt(r, publicKey), true);
  assert.equal(verifyReceipt(JSON.parse(JSON.stringify(r)), publicKey), true);
  assert.equal(verifyReceipt({ ...r, last_seq: 8 }, publicKey), false);
  assert.equal(verifyReceipt({ ...r, head_hash: 'b'.repeat(64) }, publicKey), false);
  assert.equal(verifyReceipt({ ...r, signature: undefined }, publicKey), false);
  assert.equal(verifyReceipt(null, publicKey), false);
  assert.equal(verifyReceipt(r, generateKeyPairSync('ed25519').publicKey), false);
});

test('keys: base64 and PEM public keys, stable key id, private key file must be 0600, no secret in errors', () => {
  const k = generateSigningKey();
  const priv = parsePrivateKey(k.privateKeyPem);
  const fromB64 = parsePublicKey(k.publicKey);
  const pem = fromB64.export({ format: 'pem', type: 'spki' }).toString();
  assert.equal(publicKeyToBase64(parsePublicKey(pem)), k.publicKey);
  assert.equal(keyId(fromB64), k.keyId);
  assert.equal(keyId(priv), k.keyId);
  assert.throws(
    () => parsePublicKey('AAAA'),
    (e: PlatformError) => e.code === 'PLATFORM_KEY' && /32 bytes/.test(e.message),
  );
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
    format: 'pem',
    type: 'spki',
  });
  assert.throws(() => parsePublicKey(rsa.toString()), /expected ed25519/);
  const secret = '-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----';
  assert.throws(
    () => parsePrivateKey(secret),
    (e: Error) => !e.message.includes('TOPSECRET'),
  );
  const f = join(tmpDir(), 'provider.pem');
  writeFileSync(f, k.privateKeyPem, { mode: 0o644 });
  chmodSync(f, 0o644);
  assert.throws(() => loadPrivateKeyFile(f), /must not be accessible by group or others/);
  chmodSync(f, 0o600);
  assert.equal(keyId(loadPrivateKeyFile(f)), k.keyId);
});

test('backoff: full jitter within [min, min(max, initial·2^n)]', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 60 }),
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      (n, r) => {
        const d = backoffDelay(n, { initialMs: 100, maxMs: 10_000, random: () => r });
        assert.ok(d >= 50 && d <= Math.min(10_000, 100 * 2 ** n), `${n} ${r} ${d}`);
      },
    ),
    { numRuns: 200 },
  );
  assert.equal(backoffDelay(3, { initialMs: 100, maxMs: 10_000, random: () => 0.5 }), 400);
});

test('spool reader: reads any seq range across rotated and archived files, only complete lines', async () => {
  const { dir, lines } = await makeTrail(300, 4096);
  const files = readdirSync(dir).filter((n) => n.endsWith('.audit'));
  assert.ok(files.length >= 5, `rotation produced ${files.length} files`);
  const sp = new SpoolReader(dir);
  // Everything in chunks, continuing from the cursor.
  const got: string[] = [];
  for (let seq = 1; seq <= 300; ) {
    const rs = await sp.read(seq, { maxRecords: 37 });
    assert.ok(rs.length > 0);
    for (const r of rs) got.push(r.line);
    seq += rs.length;
  }
  assert.deepEqual(got, lines);
  // Random access, limits.
  assert.equal((await sp.get(123))?.line, lines[122]);
  assert.equal((await sp.get(1))?.prev_hash, GENESIS_HASH);
  assert.equal(await sp.get(301), undefined);
  assert.deepEqual(
    (await sp.read(250, { untilSeq: 252 })).map((r) => r.seq),
    [250, 251, 252],
  );
  const small = await sp.read(10, { maxBytes: 1 });
  assert.equal(small.length, 1, 'at least one record even above maxBytes');
  assert.equal((await sp.last())?.seq, 300);
  assert.equal((await sp.first())?.seq, 1);
  // An archived (gzip) closed file reads the same.
  const first = files.sort()[0] as string;
  const content = readFileSync(join(dir, first));
  writeFileSync(join(dir, `${first}.gz`), gzipSync(content));
  rmSync(join(dir, first));
  const sp2 = new SpoolReader(dir);
  assert.deepEqual(
    (await sp2.read(1, { maxRecords: 1000 })).map((r) => r.line),
    lines,
  );
});

test('spool reader: a torn last line is not returned until it is complete', async () => {
  const { dir, lines } = await makeTrail(5, 1 << 20);
  const file = readdirSync(dir).find((n) => n.endsWith('.audit')) as string;
  const full = readFileSync(join(dir, file), 'utf8');
  const extra = lines[4] as string; // any text: the reader must not parse it before its newline
  writeFileSync(join(dir, file), full + extra.slice(0, 20));
  const sp = new SpoolReader(dir);
  assert.equal((await sp.read(1, { maxRecords: 100 })).length, 5);
  assert.deepEqual(await sp.read(6), []);
});

/** A scripted collector: answers 503 for the first `failures` POSTs, then acknowledges like the real one. */
async function fakeCollector(failures: number) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const kid = keyId(publicKey);
  const state = { head: 0, hash: GENESIS_HASH, posts: 0, failures, batches: [] as SignedBatch[] };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const reply = (status: number, obj: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const receipt = () =>
        signReceipt(
          {
            v: 1,
            provider_id: 'p-unit',
            last_seq: state.head,
            head_hash: state.hash,
            time: new Date().toISOString(),
            key_id: kid,
          },
          privateKey,
        );
      if (req.method === 'GET')
        return reply(200, {
          provider_id: 'p-unit',
          last_seq: state.head,
          head_hash: state.hash,
          receipt: receipt(),
        });
      state.posts++;
      if (state.failures > 0) {
        state.failures--;
        return reply(503, { error: 'UNAVAILABLE', message: 'try later' });
      }
      const b = JSON.parse(body) as SignedBatch;
      if (b.first_seq !== state.head + 1 || b.prev_hash !== state.hash)
        return reply(409, {
          error: 'GAP',
          message: 'gap',
          expected_seq: state.head + 1,
          expected_hash: state.hash,
        });
      state.batches.push(b);
      state.head = b.last_seq;
      state.hash = b.last_hash;
      return reply(200, { status: 'accepted', stored: b.records.length, duplicates: 0, receipt: receipt() });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  const url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  return {
    url,
    state,
    publicKey: publicKeyToBase64(publicKey),
    close: () => new Promise((r) => server.close(r)),
  };
}

test('shipper (standalone): retries 503s with backoff, reports status, persists the acknowledged seq', async () => {
  const { dir, lines } = await makeTrail(120, 1 << 20);
  const c = await fakeCollector(3);
  const provider = generateKeyPairSync('ed25519');
  const sh = new Shipper({
    dir,
    providerId: 'p-unit',
    url: c.url,
    privateKey: provider.privateKey,
    collectorPublicKey: c.publicKey,
    batch: { maxRecords: 50 },
    backoff: { initialMs: 5, maxMs: 20 },
    pollIntervalMs: 20,
  });
  const errors: string[] = [];
  sh.on('error', (e: Error) => errors.push(e.message));
  await sh.start();
  await sh.flush(10_000);
  const st = sh.status();
  assert.equal(st.ackedSeq, 120);
  assert.equal(st.backlog, 0);
  assert.equal(st.failures, 3);
  assert.equal(st.consecutiveFailures, 0);
  assert.match(st.lastError ?? '', /503 UNAVAILABLE/);
  assert.equal(errors.length, 3);
  assert.deepEqual(
    c.state.batches.flatMap((b) => b.records),
    lines,
  );
  assert.deepEqual(
    c.state.batches.map((b) => b.records.length),
    [50, 50, 20],
  );
  const saved = JSON.parse(readFileSync(join(dir, 'platform-state.json'), 'utf8'));
  assert.equal(saved.acked_seq, 120);
  assert.equal(saved.provider_id, 'p-unit');
  assert.ok(!JSON.stringify(saved).includes('PRIVATE'));
  await sh.stop();
  assert.equal(sh.status().state, 'stopped');
  await c.close();
});

test('shipper refuses receipts that do not verify with the configured collector key', async () => {
  const { dir } = await makeTrail(10, 1 << 20);
  const c = await fakeCollector(0);
  const sh = new Shipper({
    dir,
    providerId: 'p-unit',
    url: c.url,
    privateKey: generateKeyPairSync('ed25519').privateKey,
    collectorPublicKey: publicKeyToBase64(generateKeyPairSync('ed25519').publicKey),
    backoff: { initialMs: 5, maxMs: 10 },
  });
  await sh.start();
  await assert.rejects(sh.flush(300), /flush timed out .*receipt signature does not verify/);
  assert.equal(sh.status().ackedSeq, 0);
  await sh.stop();
  await c.close();
});

test('shipper options are validated with clear errors', () => {
  const k = generateKeyPairSync('ed25519').privateKey;
  assert.throws(
    () => new Shipper({ dir: '/x', providerId: '', url: 'http://a', privateKey: k }),
    /providerId is required/,
  );
  assert.throws(
    () => new Shipper({ dir: '/x', providerId: 'p', url: 'ftp://a', privateKey: k }),
    /http\(s\) URL/,
  );
  assert.throws(
    () => new Shipper({ dir: '/x', providerId: 'p', url: 'nope', privateKey: k }),
    /absolute http\(s\) URL/,
  );
});

test('platformOptionsFromEnv: off without a URL, required variables named, integers checked', async () => {
  const { platformOptionsFromEnv } = await import('../src/platform/env.js');
  assert.equal(platformOptionsFromEnv({}), undefined);
  assert.throws(
    () => platformOptionsFromEnv({ VRAMSEAL_PLATFORM_URL: 'https://c' }),
    /VRAMSEAL_PROVIDER_ID is required/,
  );
  assert.throws(
    () => platformOptionsFromEnv({ VRAMSEAL_PLATFORM_URL: 'https://c', VRAMSEAL_PROVIDER_ID: 'p' }),
    /VRAMSEAL_PROVIDER_KEY_FILE is required/,
  );
  const base = {
    VRAMSEAL_PLATFORM_URL: 'https://c',
    VRAMSEAL_PROVIDER_ID: 'p',
    VRAMSEAL_PROVIDER_KEY_FILE: '/k.pem',
  };
  assert.deepEqual(platformOptionsFromEnv(base), {
    url: 'https://c',
    providerId: 'p',
    privateKey: { file: '/k.pem' },
  });
  assert.deepEqual(platformOptionsFromEnv({ ...base, VRAMSEAL_PLATFORM_BATCH: '100' })?.batch, {
    maxRecords: 100,
  });
  assert.throws(
    () => platformOptionsFromEnv({ ...base, VRAMSEAL_PLATFORM_BATCH: '0' }),
    /between 1 and 10000/,
  );
});
