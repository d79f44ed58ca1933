// RecordSealer.sealInto (the writer's byte-level sealing) must produce exactly sealRecord's line (+ '\n')
// and hash, for any strings (plain or needing JSON escapes, non-ASCII), with and without a MAC key, across
// arena slab boundaries, and chained.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalize } from '../src/canonical.js';
import { EventArena, PendingRecord } from '../src/queue.js';
import { GENESIS_HASH, sealRecord } from '../src/record.js';
import { RecordSealer } from '../src/sealer.js';

const tracker = { waiting: 0, changed() {} };

test('property: sealInto ≡ sealRecord (line bytes + newline, hash), chained, MAC and no MAC', () => {
  const key = Buffer.alloc(32, 0x5a);
  for (const svc of ['svc "q" €', 'bench']) {
    for (const k of [key, undefined]) {
      const sealer = new RecordSealer(svc, k);
      const events = new EventArena();
      const lines = new EventArena();
      let prev = GENESIS_HASH;
      let seq = 0;
      fc.assert(
        fc.property(
          fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })),
          fc.oneof(fc.uuid(), fc.string()),
          fc.oneof(fc.constant('2026-11-27T04:00:00.000Z'), fc.string()),
          fc.oneof(fc.constant(''), fc.string(), fc.stringMatching(/^[0-9a-f]{64}$/)),
          (event, auditId, time, otherPrev) => {
            const j = canonicalize(event);
            // mostly the chain's own previous hash; sometimes an arbitrary one (as after a restart)
            const p = otherPrev !== '' && seq % 3 === 0 ? otherPrev : prev;
            seq++;
            const r = new PendingRecord(
              seq,
              auditId,
              time,
              j,
              false,
              300,
              tracker,
              seq % 2 ? events : undefined,
            );
            sealer.sealInto(r, p, lines);
            const ref = sealRecord(
              { seq, audit_id: auditId, time, service_id: svc, eventJson: j, prev_hash: p },
              k,
            );
            assert.equal(r.hash, ref.hash);
            assert.equal(sealer.hash, ref.hash);
            assert.ok(r.buf);
            assert.equal(r.buf.toString('utf8', r.off, r.off + r.len), `${ref.line}\n`);
            assert.equal(r.len, Buffer.byteLength(ref.line) + 1);
            prev = r.hash;
          },
        ),
        { numRuns: 150 },
      );
    }
  }
});

test('sealInto: lines stay intact when the arena moves to a new slab (large events)', () => {
  const sealer = new RecordSealer('bench', Buffer.alloc(32, 1));
  const lines = new EventArena();
  const recs: { r: PendingRecord; line: string }[] = [];
  let prev = GENESIS_HASH;
  for (let i = 1; i <= 40; i++) {
    const j = canonicalize({ type: 'x', blob: 'é'.repeat(30_000 * (i % 3)), i });
    const r = new PendingRecord(i, `id-${i}`, '2026-11-27T04:00:00.000Z', j, false, 300, tracker);
    sealer.sealInto(r, prev, lines);
    const ref = sealRecord(
      {
        seq: i,
        audit_id: `id-${i}`,
        time: '2026-11-27T04:00:00.000Z',
        service_id: 'bench',
        eventJson: j,
        prev_hash: prev,
      },
      Buffer.alloc(32, 1),
    );
    recs.push({ r, line: ref.line });
    prev = r.hash;
  }
  for (const { r, line } of recs) assert.equal(r.line, line);
});
