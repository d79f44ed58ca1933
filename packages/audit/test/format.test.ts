// Checks the test vectors of FORMAT.md against the implementation AND against an independent
// computation (node:crypto directly, with the domain strings spelled out here), and checks that the
// writer produces lines of exactly that shape.
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalize } from '../src/canonical.js';
import { ManualClock } from '../src/clock.js';
import { AuditLogger } from '../src/logger.js';
import { bodyJson, GENESIS_HASH, hashBody, macOf, recomputeHash, sealRecord } from '../src/record.js';
import { fastCanonicalize, RecordSealer } from '../src/sealer.js';
import { validateEvent } from '../src/validate.js';
import { quiet, recordFiles, tmpTrail } from './writer-helpers.js';

interface Vec {
  seq: number;
  audit_id: string;
  time: string;
  service_id: string;
  event: Record<string, unknown>;
  prev_hash: string;
  mac_key_hex: string | null;
  event_jcs: string;
  hashed_text: string;
  hash: string;
  mac: string | null;
  line: string;
}

const md = readFileSync(new URL('../FORMAT.md', import.meta.url), 'utf8');
const block = /```json vectors\n([\s\S]*?)\n```/.exec(md);
assert.ok(block, 'FORMAT.md has a ```json vectors block');
const vectors = JSON.parse(block[1] as string) as {
  records: Vec[];
  file: { name: string; sha256: string; bytes: number };
};

test('FORMAT.md vectors: the implementation reproduces event JCS, hashed text, hash, mac and line', () => {
  assert.equal(vectors.records.length, 2);
  assert.equal(vectors.records[0]?.prev_hash, GENESIS_HASH);
  let prev = GENESIS_HASH;
  for (const v of vectors.records) {
    const key = v.mac_key_hex ? Buffer.from(v.mac_key_hex, 'hex') : undefined;
    assert.equal(v.prev_hash, prev, 'vectors chain');
    // The writer's path: validate, then canonicalize the validated copy.
    assert.equal(canonicalize(validateEvent(v.event)), v.event_jcs);
    const b = {
      seq: v.seq,
      audit_id: v.audit_id,
      time: v.time,
      service_id: v.service_id,
      eventJson: v.event_jcs,
      prev_hash: v.prev_hash,
    };
    assert.equal(bodyJson(b), v.hashed_text);
    assert.equal(hashBody(v.hashed_text), v.hash);
    const sealed = sealRecord(b, key);
    assert.equal(sealed.hash, v.hash);
    assert.equal(sealed.line, v.line);
    if (key) assert.equal(macOf(key, v.hash), v.mac);
    else assert.equal(v.mac, null);
    assert.equal(recomputeHash(JSON.parse(v.line)), v.hash);
    prev = v.hash;
  }
});

test('FORMAT.md vectors: independent computation (node:crypto, literal domain strings, JSON key order)', () => {
  let file = '';
  for (const v of vectors.records) {
    const h = createHash('sha256')
      .update('vramseal-audit-v1\n', 'utf8')
      .update(v.hashed_text, 'utf8')
      .digest('hex');
    assert.equal(h, v.hash);
    if (v.mac_key_hex) {
      const m = createHmac('sha256', Buffer.from(v.mac_key_hex, 'hex'))
        .update(`vramseal-audit-mac-v1\n${h}`)
        .digest('hex');
      assert.equal(m, v.mac);
    }
    // The line is the record object with hash (and mac) added, keys in sorted order, no whitespace.
    const rec = JSON.parse(v.line);
    assert.deepEqual(Object.keys(rec), [...Object.keys(rec)].sort());
    assert.equal(JSON.stringify(rec), v.line);
    const { hash, mac, ...rest } = rec;
    assert.equal(hash, v.hash);
    assert.equal(mac ?? null, v.mac);
    assert.equal(canonicalize(rest), v.hashed_text);
    assert.deepEqual(rec.event, v.event);
    file += `${v.line}\n`;
  }
  assert.equal(Buffer.byteLength(file), vectors.file.bytes);
  assert.equal(createHash('sha256').update(file).digest('hex'), vectors.file.sha256);
});

test('the writer emits lines of the specified shape: sorted keys, hash/mac verify, time from the clock', async () => {
  const dir = tmpTrail();
  const v = vectors.records[1] as Vec;
  const key = Buffer.from(v.mac_key_hex as string, 'hex');
  const clock = new ManualClock(v.time);
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: v.service_id,
    macKey: key,
    clock,
    logger: quiet,
    rotation: { daily: true },
  });
  await log.emit(v.event as never).durable;
  await log.close();
  const [name] = recordFiles(dir);
  assert.equal(name, `${v.time.slice(0, 10)}.audit`);
  const line = readFileSync(join(dir, name as string), 'utf8').trimEnd();
  const rec = JSON.parse(line);
  assert.equal(canonicalize(rec), line);
  assert.equal(rec.v, 1);
  assert.equal(rec.seq, 1);
  assert.equal(rec.time, v.time);
  assert.equal(rec.prev_hash, GENESIS_HASH);
  assert.equal(JSON.stringify(rec.event), v.event_jcs);
  // Same fields as vector 2 except seq/audit_id/prev_hash: recompute via the independent path.
  const { hash, mac, ...rest } = rec;
  assert.equal(
    createHash('sha256')
      .update(`vramseal-audit-v1\n${canonicalize(rest)}`)
      .digest('hex'),
    hash,
  );
  assert.equal(createHmac('sha256', key).update(`vramseal-audit-mac-v1\n${hash}`).digest('hex'), mac);
});

test('fast path = reference: fastCanonicalize ≡ canonicalize and RecordSealer ≡ sealRecord (property)', () => {
  const key = Buffer.alloc(32, 0xa5);
  const sealers = [new RecordSealer('svc "q" €', key), new RecordSealer('svc "q" €')];
  fc.assert(
    fc.property(
      fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })),
      fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      fc.string(),
      fc.string(),
      fc.stringMatching(/^[0-9a-f]{64}$/),
      (event, seq, auditId, time, prev) => {
        const j = fastCanonicalize(event);
        assert.equal(j, canonicalize(event));
        for (const [i, s] of sealers.entries()) {
          const line = s.seal(seq, auditId, time, j, prev);
          const ref = sealRecord(
            { seq, audit_id: auditId, time, service_id: 'svc "q" €', eventJson: j, prev_hash: prev },
            i === 0 ? key : undefined,
          );
          assert.equal(line, ref.line);
          assert.equal(s.hash, ref.hash);
        }
      },
    ),
    { numRuns: 200 },
  );
  assert.throws(() => fastCanonicalize({ a: Number.NaN }), /non-finite number at a/);
  assert.throws(
    () => fastCanonicalize({ a: [1, new Date()] }),
    /plain objects can be canonicalized at a\[1\]/,
  );
});

test("sealer 'worker' produces exactly RecordSealer's lines and hashes (property), and the chain verifies", async () => {
  const { WorkerSealer } = await import('../src/seal-worker.js');
  const { PendingRecord } = await import('../src/queue.js');
  const key = Buffer.alloc(32, 0x3c);
  const tracker = { waiting: 0, changed() {} };
  for (const k of [key, undefined]) {
    const w = new WorkerSealer('svc "w" é', k, GENESIS_HASH);
    const ref = new RecordSealer('svc "w" é', k);
    let prev = GENESIS_HASH;
    let seq = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 })), { minLength: 1, maxLength: 5 }),
        async (events) => {
          const recs = events.map(
            (e, i) =>
              new PendingRecord(
                ++seq,
                `id-${seq}-${i}`,
                '2026-01-01T00:00:00.000Z',
                fastCanonicalize(e),
                false,
                0,
                tracker,
              ),
          );
          const expected = recs.map((r, i) => {
            const line = ref.seal(r.seq, r.auditId, r.time, fastCanonicalize(events[i]), prev);
            prev = ref.hash;
            return { line, hash: ref.hash };
          });
          await w.seal(recs);
          assert.deepEqual(
            recs.map((r) => ({ line: r.line, hash: r.hash })),
            expected,
          );
          assert.equal(w.hash, prev);
        },
      ),
      { numRuns: 25 },
    );
    await w.close();
    assert.ok(w.failed);
  }
  // Through the logger, across rotations; and if the worker fails, the logger seals on the main thread.
  const dir = tmpTrail();
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'svc',
    macKey: key,
    logger: quiet,
    sealer: 'worker',
    rotation: { maxBytes: 3000 },
    flush: { mode: 'batched', maxEvents: 16, maxDelayMs: 1 },
  });
  for (let i = 0; i < 100; i++)
    log.emit({
      type: 'seal.verified',
      timestamp: '2026-01-01T00:00:00.000Z',
      shard_id: `w-${i}`,
      worker_id: 'w',
    });
  await log.flush();
  const orig = WorkerSealer.prototype.seal;
  WorkerSealer.prototype.seal = async () => {
    throw new Error('injected worker failure');
  };
  try {
    for (let i = 100; i < 150; i++)
      log.emit({
        type: 'seal.verified',
        timestamp: '2026-01-01T00:00:00.000Z',
        shard_id: `w-${i}`,
        worker_id: 'w',
      });
    await log.flush();
  } finally {
    WorkerSealer.prototype.seal = orig;
  }
  await log.close();
  const { readTrail } = await import('./writer-helpers.js');
  const recs = await readTrail(dir, key);
  assert.equal(recs.length, 150);
  assert.ok(recordFiles(dir).length > 2);
});
