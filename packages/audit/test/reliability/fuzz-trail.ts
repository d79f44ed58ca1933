/**
 * Trail-file fuzzing (issue 9): random byte mutations, truncations, splices, insertions, deletions
 * and line moves applied to the files of a real, cleanly closed trail (several rotated files, MAC'd);
 * after each, `verifyTrail` must return (never throw, never hang) and must report a failure.
 *
 * "Reports a failure" precisely: when the mutated file's bytes differ from the original, the report
 * has `ok: false`. A mutation that leaves the bytes unchanged (XOR of a byte with itself, a splice of
 * identical bytes, a swap of identical lines) is a no-op: counted as such and not a fault. For
 * `manifest.json`, a change that parses to the same JSON value (whitespace) is also a no-op.
 */
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { type AuditEvent, AuditLogger, verifyTrail } from '@vramseal/audit';
import { pino } from 'pino';
import { reportRow, rng } from './summary.js';
import { tempDir } from './trail-io.js';

const KEY = Buffer.alloc(32, 0x77);

async function buildTrail(dir: string, records: number): Promise<void> {
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'fuzz-trail',
    macKey: KEY,
    flush: { mode: 'batched', maxEvents: 8, maxDelayMs: 5 },
    rotation: { maxBytes: 4096 },
    logger: pino({ level: 'silent' }),
  });
  for (let i = 0; i < records; i++) {
    const ev =
      i % 3 === 0
        ? {
            type: 'vram.sealed',
            timestamp: new Date().toISOString(),
            shard_id: `s${i}`,
            gpu_device: 0,
            vram_bytes: 4096 + i,
            digest: 'c'.repeat(64),
            worker_id: 'w',
          }
        : {
            type: 'seal.verified',
            timestamp: new Date().toISOString(),
            shard_id: `s${i}`,
            worker_id: 'w',
            mode: 'full',
          };
    log.emit(ev as AuditEvent);
  }
  await log.close();
}

type Op = 'flip' | 'set' | 'truncate' | 'splice' | 'insert' | 'delete' | 'dup-line' | 'swap-lines' | 'append';
const OPS: Op[] = [
  'flip',
  'set',
  'truncate',
  'splice',
  'insert',
  'delete',
  'dup-line',
  'swap-lines',
  'append',
];

function mutate(r: ReturnType<typeof rng>, buf: Buffer, other: Buffer, op: Op): Buffer {
  const n = buf.length;
  const pos = () => r.int(n + 1);
  switch (op) {
    case 'flip': {
      const b = Buffer.from(buf);
      const k = 1 + r.int(8);
      for (let i = 0; i < k && n > 0; i++) {
        const at = r.int(n);
        b[at] = (b[at] as number) ^ (r.int(8) < 4 ? 1 << r.int(8) : 1 + r.int(255));
      }
      return b;
    }
    case 'set': {
      const b = Buffer.from(buf);
      for (let i = 0, k = 1 + r.int(4); i < k && n > 0; i++) b[r.int(n)] = r.int(256);
      return b;
    }
    case 'truncate':
      return buf.subarray(0, r.int(Math.max(1, n)));
    case 'splice': {
      const b = Buffer.from(buf);
      const from = r.int(other.length);
      const len = Math.min(1 + r.int(200), other.length - from);
      other.copy(b, r.int(Math.max(1, n)), from, from + len);
      return b;
    }
    case 'insert': {
      const p = pos();
      const ins = r.chance(0.5)
        ? Buffer.from(Array.from({ length: 1 + r.int(64) }, () => r.int(256)))
        : other.subarray(r.int(other.length), r.int(other.length) + 1 + r.int(300));
      return Buffer.concat([buf.subarray(0, p), ins, buf.subarray(p)]);
    }
    case 'delete': {
      const p = r.int(Math.max(1, n));
      return Buffer.concat([buf.subarray(0, p), buf.subarray(p + 1 + r.int(200))]);
    }
    case 'dup-line':
    case 'swap-lines': {
      const lines = buf.toString('latin1').split('\n');
      const i = r.int(lines.length);
      const j = r.int(lines.length);
      if (op === 'dup-line') lines.splice(j, 0, lines[i] as string);
      else [lines[i], lines[j]] = [lines[j] as string, lines[i] as string];
      return Buffer.from(lines.join('\n'), 'latin1');
    }
    case 'append':
      return Buffer.concat([buf, Buffer.from(Array.from({ length: 1 + r.int(100) }, () => r.int(256)))]);
  }
}

/** For a report: which JSON paths differ (manifest), or the first differing byte offset. */
function describe(a: Buffer, b: Buffer): string {
  try {
    const x = JSON.parse(a.toString('utf8'));
    const y = JSON.parse(b.toString('utf8'));
    const out: string[] = [];
    const walk = (u: unknown, v: unknown, path: string) => {
      if (u && v && typeof u === 'object' && typeof v === 'object') {
        for (const k of new Set([...Object.keys(u), ...Object.keys(v)]))
          walk((u as Record<string, unknown>)[k], (v as Record<string, unknown>)[k], `${path}.${k}`);
      } else if (!isDeepStrictEqual(u, v)) out.push(`${path}: ${JSON.stringify(u)} → ${JSON.stringify(v)}`);
    };
    walk(x, y, '$');
    return out.join('; ').slice(0, 400);
  } catch {
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    return `bytes differ from offset ${i} (${a.length} → ${b.length} bytes)`;
  }
}

/**
 * Manifest fields no verifier can check, by design (FORMAT.md): `created`/`closed` times of an entry
 * (nothing else records them), and an open entry's `last_time` (the entry is a lower bound). A
 * mutation that changes only these is counted apart, not as an undetected fault.
 */
function metadataOnly(a: Buffer, b: Buffer): boolean {
  let x: { files?: Record<string, unknown>[] };
  let y: { files?: Record<string, unknown>[] };
  try {
    x = JSON.parse(a.toString('utf8'));
    y = JSON.parse(b.toString('utf8'));
  } catch {
    return false;
  }
  const strip = (m: typeof x) =>
    JSON.stringify({
      ...m,
      files: m.files?.map((f) => {
        const { created: _c, closed: _d, ...rest } = f;
        if (rest.state === 'open') delete rest.last_time;
        return rest;
      }),
    });
  return Array.isArray(x.files) && Array.isArray(y.files) && strip(x) === strip(y);
}

interface Tally {
  injected: number;
  detected: number;
  noop: number;
  undetected: string[];
}

export async function runTrailFuzz(opts: { seed: number; trials: number }): Promise<void> {
  const r = rng(opts.seed);
  const dir = join(tempDir('fuzz-trail'), 'trail');
  await buildTrail(dir, 120);
  const files = readdirSync(dir).filter(
    (f) => f.endsWith('.audit') || f.endsWith('.sha256') || f === 'manifest.json',
  );
  for (const f of files) chmodSync(join(dir, f), 0o600); // so a non-root run can write the mutations
  const base = await verifyTrail(dir, { macKey: KEY, concurrency: 0 });
  assert.equal(base.ok, true, 'the unmutated trail verifies');
  assert.ok(files.filter((f) => f.endsWith('.audit')).length >= 3, 'several rotated files');
  const original = new Map(files.map((f) => [f, readFileSync(join(dir, f))]));
  const tallies: Record<'records' | 'sidecars' | 'manifest', Tally> = {
    records: { injected: 0, detected: 0, noop: 0, undetected: [] },
    sidecars: { injected: 0, detected: 0, noop: 0, undetected: [] },
    manifest: { injected: 0, detected: 0, noop: 0, undetected: [] },
  };
  const crashes: string[] = [];
  let metadata = 0;
  let slowest = 0;
  try {
    for (let t = 0; t < opts.trials; t++) {
      const pickClass = r.next();
      const cls = pickClass < 0.7 ? 'records' : pickClass < 0.85 ? 'manifest' : 'sidecars';
      const pool = files.filter((f) =>
        cls === 'records'
          ? f.endsWith('.audit')
          : cls === 'sidecars'
            ? f.endsWith('.sha256')
            : f === 'manifest.json',
      );
      const file = pool[r.int(pool.length)] as string;
      const orig = original.get(file) as Buffer;
      const other = original.get(files[r.int(files.length)] as string) as Buffer;
      const op = OPS[r.int(OPS.length)] as Op;
      const mutated = mutate(r, orig, other, op);
      const tally = tallies[cls];
      let noop = mutated.equals(orig);
      // sha256sum accepts a last line without its newline: the same sidecar.
      if (!noop && cls === 'sidecars') noop = Buffer.concat([mutated, Buffer.from('\n')]).equals(orig);
      if (!noop && cls === 'manifest') {
        try {
          noop = isDeepStrictEqual(JSON.parse(mutated.toString('utf8')), JSON.parse(orig.toString('utf8')));
        } catch {}
      }
      if (noop) {
        tally.noop++;
        continue;
      }
      if (cls === 'manifest' && metadataOnly(orig, mutated)) {
        metadata++;
        continue;
      }
      tally.injected++;
      const p = join(dir, file);
      writeFileSync(p, mutated);
      try {
        const t0 = performance.now();
        const rep = await verifyTrail(dir, { macKey: KEY, concurrency: 0 });
        slowest = Math.max(slowest, performance.now() - t0);
        if (!rep.ok) tally.detected++;
        else tally.undetected.push(`${op} on ${file} (trial ${t}): ${describe(orig, mutated)}`);
      } catch (e) {
        crashes.push(`${op} on ${file} (trial ${t}): verifyTrail threw ${String(e)}`);
      } finally {
        writeFileSync(p, orig);
      }
    }
  } finally {
    for (const [cls, t] of Object.entries(tallies)) {
      reportRow({
        category: `fuzz: trail ${cls === 'records' ? 'record files' : cls === 'sidecars' ? '.sha256 sidecars' : 'manifest.json'} mutated`,
        injected: t.injected,
        detected: t.detected,
        undetected: t.undetected.length,
        lost: 0,
        note: `seed ${opts.seed}; ${t.noop} no-op mutations excluded${cls === 'manifest' ? `, ${metadata} changing only unverified metadata (created/closed times, an open entry's last_time) excluded` : ''}; verifier never threw or hung (slowest ${Math.round(slowest)} ms)${crashes.length ? `; ${crashes.length} CRASHES` : ''}`,
      });
    }
  }
  assert.deepEqual(crashes, [], 'the verifier never throws');
  assert.deepEqual(
    [...tallies.records.undetected, ...tallies.sidecars.undetected].slice(0, 20),
    [],
    'every mutation that changes the bytes of a record file or a sidecar is reported',
  );
  // manifest.json: measured and listed, not asserted. What the verifier does not flag (found by this
  // fuzzer, reported): unknown keys, a missing last_seq/last_hash, an open entry whose last_seq lies
  // outside its file. The records themselves stay fully checked by hash, chain, MAC and sidecars.
  for (const u of tallies.manifest.undetected.slice(0, 10))
    console.log(`[reliability] manifest change not reported: ${u}`);
}
