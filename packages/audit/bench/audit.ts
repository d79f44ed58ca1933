/**
 * Audit writer benchmark (npm run bench:audit [-- --json] [--events N] [--dir DIR]).
 *
 * In one run on the same machine and disk:
 *   - pino writing the same events to a file (sonic-boom, async and sync), as the baseline;
 *   - AuditLogger batched mode (hash chain + HMAC), emit N events then flush();
 *   - AuditLogger immediate mode with 1 and with 64 concurrent emitters (each awaits its receipt);
 *   - caller-side emit() cost (p50/p99), batched mode and disabled mode;
 *   - raw fdatasync latency of the disk, for context.
 * Numbers are events/s; nothing here is asserted.
 */

import { randomUUID } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { type AuditEvent, AuditLogger } from '../src/index.js';
import { EventArena, PendingRecord } from '../src/queue.js';
import { RecordSealer } from '../src/sealer.js';
import { validateEventJson } from '../src/validate.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? (args[i + 1] as string) : def;
};
const JSON_OUT = args.includes('--json');
const N = Number(opt('--events', '100000'));
const IMM_SECONDS = Number(opt('--immediate-seconds', '3'));
const root = mkdtempSync(join(opt('--dir', tmpdir()), 'vramseal-bench-'));
const quiet = pino({ level: 'silent' });
const KEY = Buffer.alloc(32, 0x42);

const event = (i: number): AuditEvent =>
  ({
    type: 'vram.sealed',
    timestamp: '2026-11-27T04:00:00.000Z',
    shard_id: `shard-${i}`,
    gpu_device: 0,
    vram_bytes: 268435456,
    digest: 'sha256-merkle-v1:16384:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    worker_id: 'worker-7',
    backend: 'simulated',
    model_ref: 'llama-3-8b@sha256:1234',
  }) as AuditEvent;

interface Row {
  name: string;
  events: number;
  seconds: number;
  eventsPerSec: number;
  /** Process CPU time (user + system, all threads) per event: less sensitive to a busy machine. */
  cpuUsPerEvent: number;
  note?: string;
}
const rows: Row[] = [];
let cpu0 = process.cpuUsage();
/** Marks the start of a measured section (for the CPU column). */
const startCpu = () => {
  cpu0 = process.cpuUsage();
};
const row = (name: string, events: number, seconds: number, note?: string) => {
  const c = process.cpuUsage(cpu0);
  rows.push({
    name,
    events,
    seconds,
    eventsPerSec: events / seconds,
    cpuUsPerEvent: (c.user + c.system) / events,
    ...(note ? { note } : {}),
  });
};

const now = () => performance.now() / 1000;
const tick = () => new Promise<void>((r) => setImmediate(r));

async function benchPino(sync: boolean): Promise<void> {
  const file = join(root, `pino-${sync ? 'sync' : 'async'}.log`);
  const dest = pino.destination({ dest: file, sync, minLength: sync ? 0 : 4096 });
  const log = pino({ base: undefined }, dest);
  startCpu();
  const t0 = now();
  for (let i = 0; i < N; i++) {
    log.info(event(i));
    if ((i & 4095) === 4095) await tick();
  }
  await new Promise<void>((resolve) => {
    dest.flush(() => resolve());
  });
  dest.flushSync();
  const fd = openSync(file, 'r');
  fdatasyncSync(fd); // pino itself never syncs; count one final sync so both sides end on disk
  closeSync(fd);
  row(`pino → file (${sync ? 'sync' : 'async'}), + 1 final fdatasync`, N, now() - t0);
  dest.end();
}

async function benchBatched(sealer: 'main' | 'worker'): Promise<void> {
  const dir = join(root, `batched-${sealer}`);
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'bench',
    macKey: KEY,
    logger: quiet,
    sealer,
    flush: { mode: 'batched', maxEvents: 4096, maxDelayMs: 100 },
    queue: { maxEvents: 1_000_000, maxBytes: 1 << 30 },
  });
  await log.emit(event(-1)).durable; // warm-up: creates the first record file (open is lazy), like pino's open
  startCpu();
  const t0 = now();
  for (let i = 0; i < N; i++) {
    log.emit(event(i));
    if ((i & 4095) === 4095) await tick();
  }
  await log.flush();
  const dt = now() - t0;
  const s = log.stats();
  row(
    `vramseal batched (chain + HMAC, fdatasync per 4096)${sealer === 'worker' ? ', sealer: worker' : ''}`,
    N,
    dt,
    `${s.fsyncs} fdatasyncs, avg ${s.fsyncAvgMs.toFixed(2)} ms`,
  );
  await log.close();
}

async function benchImmediate(emitters: number, sealer: 'main' | 'worker' = 'main'): Promise<void> {
  const dir = join(root, `immediate-${emitters}-${sealer}`);
  const log = await AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'bench',
    macKey: KEY,
    logger: quiet,
    sealer,
    flush: { mode: 'immediate' },
  });
  await log.emit(event(-1)).durable; // warm-up: creates the first record file
  let count = 0;
  startCpu();
  const t0 = now();
  const end = t0 + IMM_SECONDS;
  await Promise.all(
    Array.from({ length: emitters }, async () => {
      while (now() < end) {
        await log.emit(event(count++)).durable;
      }
    }),
  );
  const dt = now() - t0;
  const s = log.stats();
  row(
    `vramseal immediate, ${emitters} concurrent emitter${emitters > 1 ? 's' : ''}${sealer === 'worker' ? ', sealer: worker' : ''}`,
    count,
    dt,
    `${s.fsyncs} fdatasyncs (${(count / s.fsyncs).toFixed(1)} records each), avg ${s.fsyncAvgMs.toFixed(2)} ms`,
  );
  await log.close();
}

const pct = (a: Float64Array, p: number) => a[Math.min(a.length - 1, Math.floor(a.length * p))] as number;

async function benchEmitCost(
  mode: 'local' | 'disabled',
): Promise<{ p50: number; p99: number; mean: number; cpuMean: number }> {
  const dir = join(root, `emit-${mode}`);
  const log = await AuditLogger.open({
    mode,
    dir,
    serviceId: 'bench',
    macKey: KEY,
    logger: quiet,
    flush: { mode: 'batched', maxEvents: 4096, maxDelayMs: 100 },
    queue: { maxEvents: 1_000_000, maxBytes: 1 << 30 },
  });
  const M = Math.min(N, 50_000);
  const evs = Array.from({ length: 1024 }, (_, i) => event(i));
  const ns = new Float64Array(M);
  for (let i = 0; i < M; i++) {
    const e = evs[i & 1023] as AuditEvent;
    const t = process.hrtime.bigint();
    log.emit(e);
    ns[i] = Number(process.hrtime.bigint() - t);
    if ((i & 1023) === 1023) await tick(); // let the writer run between bursts
  }
  // Same again without timers around each call: CPU time of the bursts only (writer excluded).
  let cpuUs = 0;
  for (let b = 0; b < M; b += 1024) {
    const c0 = process.cpuUsage();
    for (let i = b; i < b + 1024 && i < M; i++) log.emit(evs[i & 1023] as AuditEvent);
    const c = process.cpuUsage(c0);
    cpuUs += c.user + c.system;
    await tick();
  }
  await log.close();
  // hrtime's own cost, to subtract
  const base = new Float64Array(10_000);
  for (let i = 0; i < base.length; i++) {
    const t = process.hrtime.bigint();
    base[i] = Number(process.hrtime.bigint() - t);
  }
  base.sort();
  const overhead = pct(base, 0.5);
  ns.sort();
  let sum = 0;
  for (const x of ns) sum += x;
  return {
    p50: Math.max(0, pct(ns, 0.5) - overhead) / 1000,
    p99: Math.max(0, pct(ns, 0.99) - overhead) / 1000,
    mean: Math.max(0, sum / ns.length - overhead) / 1000,
    cpuMean: cpuUs / M,
  };
}

function rawFsync(): number {
  const f = join(root, 'fsync-probe');
  const fd = openSync(f, 'w');
  const buf = Buffer.alloc(512, 97);
  const K = 50;
  const t0 = performance.now();
  for (let i = 0; i < K; i++) {
    writeSync(fd, buf);
    fdatasyncSync(fd);
  }
  const ms = (performance.now() - t0) / K;
  closeSync(fd);
  return ms;
}

/** Per-event CPU time of each step of the writer's hot path (µs), to show where the time goes. */
function breakdown(): Record<string, number> {
  const K = 20_000;
  const ev = event(1);
  const j = validateEventJson(ev).json;
  const sealer = new RecordSealer('bench', KEY);
  const id = randomUUID();
  const tracker = { waiting: 0, changed() {} };
  const events = new EventArena();
  const lines = new EventArena();
  const time = '2026-11-27T04:00:00.000Z';
  let prev = 'ab'.repeat(32);
  const steps: Record<string, () => unknown> = {
    'JSON.stringify (what pino does per event)': () => JSON.stringify(ev),
    'validateEventJson (validate + RFC 8785 JSON)': () => validateEventJson(ev),
    randomUUID: () => randomUUID(),
    'queue entry (PendingRecord, event bytes)': () =>
      new PendingRecord(1, id, time, j, false, 376, tracker, events),
    'seal: queue entry + hash + HMAC + line bytes': () => {
      const r = new PendingRecord(1, id, time, j, false, 376, tracker, events);
      sealer.sealInto(r, prev, lines);
      prev = r.hash;
    },
  };
  const out: Record<string, number> = {};
  for (const [name, f] of Object.entries(steps)) {
    for (let i = 0; i < 2000; i++) f();
    const c0 = process.cpuUsage();
    for (let i = 0; i < K; i++) f();
    const c = process.cpuUsage(c0);
    out[name] = (c.user + c.system) / K; // CPU time: steadier than wall clock on a shared machine
  }
  return out;
}

const load0 = loadavg()[0];
const fsyncMs = rawFsync();
await benchPino(false);
await benchPino(true);
await benchBatched('main');
await benchBatched('worker');
await benchImmediate(1);
await benchImmediate(64);
await benchImmediate(64, 'worker');
const emitLocal = await benchEmitCost('local');
const emitDisabled = await benchEmitCost('disabled');
const costs = breakdown();
rmSync(root, { recursive: true, force: true });

const pinoBest = Math.max(...rows.filter((r) => r.name.startsWith('pino')).map((r) => r.eventsPerSec));
const best = (pred: (r: Row) => boolean) =>
  rows.filter(pred).reduce((a, b) => (b.eventsPerSec > a.eventsPerSec ? b : a));
const batched = best((r) => r.name.startsWith('vramseal batched'));
const imm64 = best((r) => r.name.includes('64 concurrent'));
const result = {
  machine: {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    node: process.version,
    loadavg1mBefore: load0,
    loadavg1mAfter: loadavg()[0],
  },
  events: N,
  rawFdatasyncMs: fsyncMs,
  rows,
  emitCostUs: { batched: emitLocal, disabled: emitDisabled },
  stepCostUs: costs,
  targets: {
    batchedVsPino: {
      best: batched.name,
      ratio: batched.eventsPerSec / pinoBest,
      cpuRatio:
        Math.min(...rows.filter((r) => r.name.startsWith('pino')).map((r) => r.cpuUsPerEvent)) /
        batched.cpuUsPerEvent,
      target: 1.0,
    },
    immediate64: { best: imm64.name, eventsPerSec: imm64.eventsPerSec, target: 100_000 },
    emitP50Us: { value: emitLocal.p50, target: 3 },
  },
};

if (JSON_OUT) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(
    `audit writer bench — ${result.machine.cpu} ×${result.machine.cores}, Node ${process.version}, load ${load0?.toFixed(2)} → ${result.machine.loadavg1mAfter?.toFixed(2)}`,
  );
  console.log(`disk: raw write+fdatasync ${fsyncMs.toFixed(2)} ms\n`);
  console.log(
    `${'benchmark'.padEnd(58)} ${'events'.padStart(9)} ${'events/s'.padStart(11)} ${'CPU µs/ev'.padStart(10)}  note`,
  );
  for (const r of rows)
    console.log(
      `${r.name.padEnd(58)} ${f(r.events).padStart(9)} ${f(r.eventsPerSec).padStart(11)} ${r.cpuUsPerEvent.toFixed(1).padStart(10)}  ${r.note ?? ''}`,
    );
  console.log('');
  console.log(
    `emit() caller cost, batched: p50 ${emitLocal.p50.toFixed(2)} µs  p99 ${emitLocal.p99.toFixed(2)} µs  mean ${emitLocal.mean.toFixed(2)} µs (CPU time: mean ${emitLocal.cpuMean.toFixed(2)} µs)`,
  );
  console.log(
    `emit() caller cost, disabled: p50 ${emitDisabled.p50.toFixed(3)} µs  p99 ${emitDisabled.p99.toFixed(3)} µs`,
  );
  console.log('');
  console.log('CPU time per event, by step:');
  for (const [k, us] of Object.entries(costs))
    console.log(`  ${k.padEnd(44)} ${us.toFixed(2).padStart(7)} µs`);
  console.log('');
  const t = result.targets;
  const ok = (b: boolean) => (b ? 'met' : 'MISSED');
  console.log(
    `target batched/pino ≥ 1.0: ${t.batchedVsPino.ratio.toFixed(2)} by wall clock, ${t.batchedVsPino.cpuRatio.toFixed(2)} by CPU time (${ok(t.batchedVsPino.ratio >= 1)})`,
  );
  console.log(
    `target immediate×64 ≥ 100,000/s: ${f(t.immediate64.eventsPerSec)} (${ok(t.immediate64.eventsPerSec >= 100_000)})`,
  );
  console.log(`target emit p50 ≤ 3 µs: ${t.emitP50Us.value.toFixed(2)} (${ok(t.emitP50Us.value <= 3)})`);
}
