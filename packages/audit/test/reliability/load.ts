/**
 * Load (issue 9): `emitters` concurrent emitters write `total` events in `immediate` mode (group
 * commit), each awaiting every receipt. Nothing may be lost: every receipt resolves, seqs are unique
 * and gap-free, the trail holds exactly the events emitted (each once, by its unique id), and it verifies.
 */
import assert from 'node:assert/strict';
import { createReadStream, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  type AuditEvent,
  AuditLogger,
  compareRecordFileNames,
  RECORD_FILE_RE,
  verifyTrail,
} from '@vramseal/audit';
import { pino } from 'pino';
import { reportRow } from './summary.js';
import { tempDir } from './trail-io.js';

export async function runLoad(opts: { emitters: number; total: number }): Promise<{ rate: number }> {
  const dir = join(tempDir('load'), 'trail');
  const key = Buffer.alloc(32, 0x64);
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'load',
    macKey: key,
    flush: { mode: 'immediate' },
    rotation: { maxBytes: 16 * 1024 * 1024 },
    logger: pino({ level: 'silent' }),
  });
  const per = Math.ceil(opts.total / opts.emitters);
  const seqs = new Uint8Array(opts.total + 1);
  let acked = 0;
  let dupSeq = 0;
  const ts = new Date().toISOString();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: opts.emitters }, async (_, w) => {
      for (let i = 0; i < per; i++) {
        const n = w * per + i;
        if (n >= opts.total) break;
        const r = log.emit({
          type: 'seal.verified',
          timestamp: ts,
          shard_id: `e${n}`,
          worker_id: `w${w}`,
        } as AuditEvent);
        await r.durable;
        if (r.seq > opts.total || seqs[r.seq]) dupSeq++;
        else seqs[r.seq] = 1;
        acked++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  await log.close();
  // Read back: each event id exactly once.
  const seen = new Uint8Array(opts.total);
  let records = 0;
  let missing = 0;
  let duplicated = 0;
  let foreign = 0;
  const files = readdirSync(dir)
    .filter((f) => RECORD_FILE_RE.test(f))
    .sort(compareRecordFileNames);
  for (const f of files) {
    for await (const line of createInterface({ input: createReadStream(join(dir, f)) })) {
      if (line === '') continue;
      records++;
      const id = /"shard_id":"e(\d+)"/.exec(line)?.[1];
      if (id === undefined) {
        foreign++;
        continue;
      }
      const n = Number(id);
      if (seen[n]) duplicated++;
      seen[n] = 1;
    }
  }
  for (let n = 0; n < opts.total; n++) if (!seen[n]) missing++;
  const report = await verifyTrail(dir, { macKey: key });
  reportRow({
    category: `load: ${opts.emitters} concurrent emitters (immediate)`,
    injected: opts.total,
    detected: acked,
    undetected: 0,
    lost: missing,
    note: `${opts.total} events, all acknowledged durable, ${records} records in ${files.length} file(s), verified ${report.ok ? 'ok' : 'FAILED'}; ${Math.round(opts.total / secs)} events/s on this machine`,
  });
  assert.equal(acked, opts.total, 'every receipt resolved');
  assert.equal(dupSeq, 0, 'seqs unique');
  assert.equal(missing, 0, 'no event lost');
  assert.equal(duplicated, 0, 'no event written twice');
  assert.equal(foreign, 0, 'no other record (no drops, no I/O errors)');
  assert.equal(records, opts.total);
  assert.deepEqual(report.failures, []);
  assert.equal(report.lastSeq, opts.total);
  return { rate: opts.total / secs };
}
