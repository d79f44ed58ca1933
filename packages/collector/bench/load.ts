/**
 * Collector load benchmark (`npm run bench:collector`): N providers ship M events each, concurrently,
 * as signed batches over HTTP to a collector process backed by PostgreSQL (default) or PGlite.
 * Reports events/s and batch latency percentiles; then, outside the timing, asserts that every event
 * is stored exactly once (per provider: count = M, seqs 1..M distinct, last hash = the trail's head;
 * globally: audit_ids distinct, batches' record counts sum to N·M).
 *
 *   npm run bench:collector -- [--providers 8] [--events 100000] [--batch 500]
 *                              [--database-url URL | --pglite] [--pool 16] [--json] [--keep]
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  canonicalize,
  GENESIS_HASH,
  generateSigningKey,
  parsePrivateKey,
  sealRecord,
  signBatch,
} from '@vramseal/audit';
import pg from 'pg';
import { PgliteClient } from '../src/db/pglite.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : def;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const PROVIDERS = Number(arg('providers', '8'));
const EVENTS = Number(arg('events', '100000'));
const BATCH = Number(arg('batch', '500'));
const POOL = Number(arg('pool', '16'));
const USE_PGLITE = flag('pglite');
const DB_URL = arg(
  'database-url',
  process.env.VRAMSEAL_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
);
const JSON_OUT = flag('json');
const say = (s: string) => {
  if (!JSON_OUT) process.stderr.write(`${s}\n`);
};

interface Provider {
  id: string;
  key: ReturnType<typeof generateSigningKey>;
  bodies: string[];
  lastHash: string;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  say(`generating ${PROVIDERS} × ${EVENTS} records in ${BATCH}-record signed batches …`);
  const providers: Provider[] = [];
  const base = Date.parse('2026-11-27T00:00:00.000Z');
  for (let p = 0; p < PROVIDERS; p++) {
    const key = generateSigningKey();
    const priv = parsePrivateKey(key.privateKeyPem);
    const id = `bench-provider-${p}`;
    const bodies: string[] = [];
    let prev = GENESIS_HASH;
    for (let first = 1; first <= EVENTS; first += BATCH) {
      const last = Math.min(EVENTS, first + BATCH - 1);
      const lines: string[] = [];
      const batchPrev = prev;
      for (let seq = first; seq <= last; seq++) {
        const ev = {
          type: 'data.inference_executed',
          timestamp: new Date(base + seq).toISOString(),
          customer_id: `cust-${seq % 50}`,
          job_id: `job-${p}-${seq}`,
          model_ref: 'llama-3-8b@sha256:0f1e2d',
          tokens_processed: seq % 4096,
          provider_id: id,
          result: { status: 'success' },
        };
        const { line, hash } = sealRecord({
          seq,
          audit_id: randomUUID(),
          time: new Date(base + seq).toISOString(),
          service_id: `worker-${p}`,
          eventJson: canonicalize(ev),
          prev_hash: prev,
        });
        lines.push(line);
        prev = hash;
      }
      const b = signBatch(
        {
          v: 1,
          provider_id: id,
          first_seq: first,
          last_seq: last,
          prev_hash: batchPrev,
          last_hash: prev,
          sent_at: new Date().toISOString(),
          key_id: key.keyId,
        },
        lines,
        priv,
      );
      bodies.push(JSON.stringify(b));
    }
    providers.push({ id, key, bodies, lastHash: prev });
  }
  say(`generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const schema = `vs_bench_${process.pid}_${randomUUID().slice(0, 6)}`;
  const dataDir = USE_PGLITE ? mkdtempSync(join(tmpdir(), 'vramseal-bench-pglite-')) : undefined;
  const collectorKey = generateSigningKey();
  const cfg = {
    ...(USE_PGLITE ? { dataDir } : { databaseUrl: DB_URL, schema }),
    poolSize: POOL,
    keys: { providers: Object.fromEntries(providers.map((p) => [p.id, { public_keys: [p.key.publicKey] }])) },
    signingKeyPem: collectorKey.privateKeyPem,
  };
  const child = spawn(
    process.execPath,
    [
      '--conditions=vramseal-source',
      '--import',
      'tsx',
      fileURLToPath(new URL('./collector-child.ts', import.meta.url)),
      JSON.stringify(cfg),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const started: { url: string; engine: string; privileges: string } = await new Promise(
    (resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)));
      });
      child.on('exit', (c) => reject(new Error(`collector exited with ${c}`)));
    },
  );
  say(`collector at ${started.url} on ${started.engine} (append-only: ${started.privileges}); shipping …`);

  const latencies: number[] = [];
  let failures = 0;
  const tStart = performance.now();
  await Promise.all(
    providers.map(async (p) => {
      for (const body of p.bodies) {
        for (let attempt = 0; ; attempt++) {
          const t = performance.now();
          const res = await fetch(`${started.url}/v1/batches`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          });
          const text = await res.text();
          if (res.status === 200) {
            latencies.push(performance.now() - t);
            break;
          }
          failures++;
          if (attempt > 5) throw new Error(`batch failed: ${res.status} ${text.slice(0, 200)}`);
        }
      }
    }),
  );
  const elapsed = (performance.now() - tStart) / 1000;
  const total = PROVIDERS * EVENTS;
  latencies.sort((a, b) => a - b);

  // ---- exactly-once check (outside the timing), straight from the database ----
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  let q: (sql: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>;
  let close: () => Promise<void>;
  let s: string;
  if (USE_PGLITE) {
    const c = await PgliteClient.open(join(dataDir as string, 'pglite'));
    q = async (sql, params) => (await c.query<Record<string, unknown>>(sql, params)).rows;
    close = () => c.close();
    s = '"vramseal_collector"';
  } else {
    const c = new pg.Client({ connectionString: DB_URL });
    await c.connect();
    q = async (sql, params) => (await c.query(sql, params as unknown[])).rows;
    close = async () => {
      if (!flag('keep')) await c.query(`DROP SCHEMA "${schema}" CASCADE`);
      await c.end();
    };
    s = `"${schema}"`;
  }
  const problems: string[] = [];
  for (const p of providers) {
    const [r] = await q(
      `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS d, min(seq)::int AS lo, max(seq)::int AS hi FROM ${s}.records WHERE provider_id = $1`,
      [p.id],
    );
    if (r?.n !== EVENTS || r?.d !== EVENTS || r?.lo !== 1 || r?.hi !== EVENTS)
      problems.push(`${p.id}: ${JSON.stringify(r)} (want ${EVENTS} distinct seqs 1..${EVENTS})`);
    const [h] = await q(`SELECT hash FROM ${s}.records WHERE provider_id = $1 AND seq = $2`, [p.id, EVENTS]);
    if (h?.hash !== p.lastHash) problems.push(`${p.id}: stored head hash differs from the trail's`);
  }
  const [g] = await q(`SELECT count(*)::int AS n, count(DISTINCT audit_id)::int AS a FROM ${s}.records`);
  if (g?.n !== total || g?.a !== total)
    problems.push(`records ${JSON.stringify(g)}, want ${total} with distinct audit_ids`);
  const [bsum] = await q(`SELECT sum(record_count)::int AS n, count(*)::int AS b FROM ${s}.batches`);
  if (bsum?.n !== total) problems.push(`batches carry ${bsum?.n} records, want ${total}`);
  const [size] = await q(`SELECT pg_total_relation_size('${s}.records')::int8 AS bytes`);
  await close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });

  const result = {
    engine: started.engine,
    providers: PROVIDERS,
    events_per_provider: EVENTS,
    batch: BATCH,
    events: total,
    seconds: Number(elapsed.toFixed(2)),
    events_per_s: Math.round(total / elapsed),
    batches: latencies.length,
    batch_latency_ms: {
      p50: Number(pct(latencies, 50).toFixed(1)),
      p90: Number(pct(latencies, 90).toFixed(1)),
      p99: Number(pct(latencies, 99).toFixed(1)),
      max: Number((latencies[latencies.length - 1] as number).toFixed(1)),
    },
    retried_batches: failures,
    records_table_bytes: Number(size?.bytes ?? 0),
    exactly_once: problems.length === 0,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? '?',
      loadavg_1m: Number(loadavg()[0]?.toFixed(2)),
    },
  };
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      [
        `collector load: ${PROVIDERS} providers × ${EVENTS} events, ${BATCH}-record batches, ${started.engine}`,
        `  events/s            ${result.events_per_s}  (${total} events in ${result.seconds} s)`,
        `  batch latency (ms)  p50 ${result.batch_latency_ms.p50}  p90 ${result.batch_latency_ms.p90}  p99 ${result.batch_latency_ms.p99}  max ${result.batch_latency_ms.max}`,
        `  retried batches     ${failures}`,
        `  records table       ${(result.records_table_bytes / 2 ** 20).toFixed(0)} MiB`,
        `  exactly once        ${problems.length === 0 ? 'yes' : 'NO'}`,
        `  machine             ${result.machine.cpus} × ${result.machine.model}, load ${result.machine.loadavg_1m}`,
        '',
      ].join('\n'),
    );
  }
  if (problems.length > 0) {
    for (const p of problems) process.stderr.write(`exactly-once check failed: ${p}\n`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  process.stderr.write(`bench:collector failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
