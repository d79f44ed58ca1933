/**
 * Benchmark: trail verification and query rates (issue 3). Standalone:
 *
 *   node --conditions=vramseal-source --import tsx packages/audit/bench/verify.ts [--records N] [--json]
 *        [--dir D (reuse/keep a generated trail)] [--file-mb M]
 *
 * Generates a MAC'd trail of N records (default 1 000 000) in files of about M MB (default 100, the
 * writer's default rotation size), written per FORMAT.md with sealRecord, then measures:
 *  - verifyTrail with the key (hash + MAC + chain + checksums + manifest) and without it;
 *  - queryTrail over all N records: a selective filter (type + actor), a time window the manifest
 *    lets it skip most files for, and a full scan returning every record.
 * Reports wall time and records/s, plus CPU time (process.cpuUsage, all threads of the process): the
 * machine may be shared, so records per CPU-second is the steadier number. Verification runs twice:
 * on one thread and with two worker threads (forced; by default workers are used only when a CPU is idle).
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalize } from '../src/canonical.js';
import { queryTrail } from '../src/query.js';
import { GENESIS_HASH, sealRecord } from '../src/record.js';
import { verifyTrail } from '../src/verify.js';

const args = process.argv.slice(2);
const arg = (name: string, def?: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const N = Number(arg('--records', '1000000'));
const JSON_OUT = args.includes('--json');
const FILE_BYTES = Number(arg('--file-mb', '100')) * 1e6;
const KEY = Buffer.alloc(32, 0x42);
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const STEP_MS = 50; // 1M records span ~14 hours

function log(s: string) {
  if (!JSON_OUT) process.stderr.write(`${s}\n`);
}

const TYPES = ['seal.verified', 'vram.sealed', 'auth.success', 'data.inference_executed'];
function event(seq: number, time: string): string {
  const type = TYPES[seq % 4] as string;
  const e: Record<string, unknown> = { type, timestamp: time };
  if (type === 'auth.success') {
    e.actor = { user_id: `user-${seq % 100}`, auth_method: 'bearer_token' };
    e.method = 'POST';
    e.path = '/v1/inference';
    e.service_id = 'bench';
  } else if (type === 'data.inference_executed') {
    e.customer_id = `cust-${seq % 1000}`;
    e.job_id = `job-${seq}`;
    e.model_ref = 'llama-3-8b@sha256:abc';
    e.tokens_processed = seq % 4096;
    e.result = { status: 'success' };
  } else {
    e.shard_id = `shard-${seq % 64}`;
    e.worker_id = 'worker-1';
    if (type === 'vram.sealed') {
      e.gpu_device = 0;
      e.vram_bytes = 268435456;
      e.digest = 'ab'.repeat(32);
    }
  }
  return canonicalize(e);
}

function generate(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, unknown>[] = [];
  let prev = GENESIS_HASH;
  let seq = 0;
  let n = 0;
  while (seq < N) {
    const first = seq + 1;
    const day = new Date(T0 + first * STEP_MS).toISOString().slice(0, 10);
    const name = n === 0 ? `${day}.audit` : `${day}.${n}.audit`;
    n++;
    const fd = openSync(join(dir, name), 'w');
    const h = createHash('sha256');
    let bytes = 0;
    let firstHash = '';
    let firstTime = '';
    let lastTime = '';
    let chunk: string[] = [];
    let chunkLen = 0;
    const flush = () => {
      const b = Buffer.from(chunk.join(''));
      writeSync(fd, b);
      h.update(b);
      chunk = [];
      chunkLen = 0;
    };
    while (seq < N && bytes < FILE_BYTES) {
      seq++;
      const time = new Date(T0 + seq * STEP_MS).toISOString();
      const { line, hash } = sealRecord(
        {
          seq,
          audit_id: randomUUID(),
          time,
          service_id: 'bench',
          eventJson: event(seq, time),
          prev_hash: prev,
        },
        KEY,
      );
      prev = hash;
      if (!firstHash) {
        firstHash = hash;
        firstTime = time;
      }
      lastTime = time;
      chunk.push(`${line}\n`);
      chunkLen += line.length + 1;
      bytes += line.length + 1;
      if (chunkLen > 4e6) flush();
    }
    flush();
    closeSync(fd);
    const isLast = seq >= N;
    const sha = h.digest('hex');
    if (!isLast) writeFileSync(join(dir, `${name}.sha256`), `${sha}  ${name}\n`);
    files.push({
      name,
      state: isLast ? 'open' : 'closed',
      first_seq: first,
      last_seq: seq,
      count: seq - first + 1,
      first_hash: firstHash,
      last_hash: prev,
      first_time: firstTime,
      last_time: lastTime,
      created: firstTime,
      closed: isLast ? null : lastTime,
      bytes,
      sha256: isLast ? null : sha,
    });
  }
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ v: 1, service_id: 'bench', files }, null, 2));
}

async function measure<T>(fn: () => Promise<T>): Promise<{ value: T; wallMs: number; cpuMs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { value, wallMs, cpuMs: (c.user + c.system) / 1000 };
}

async function count(dir: string, q: Parameters<typeof queryTrail>[1]): Promise<number> {
  let n = 0;
  for await (const _ of queryTrail(dir, q)) n++;
  return n;
}

async function main() {
  const keep = arg('--dir');
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'vramseal-bench-verify-'));
  try {
    if (!existsSync(join(dir, 'manifest.json'))) {
      log(`generating ${N.toLocaleString()} records in ${dir} ...`);
      const g = await measure(async () => generate(dir));
      log(`  generated in ${(g.wallMs / 1000).toFixed(1)} s`);
    }
    const results: Record<string, unknown>[] = [];
    const row = (name: string, records: number, m: { wallMs: number; cpuMs: number }, extra = {}) => {
      const r = {
        name,
        records,
        wall_ms: Math.round(m.wallMs),
        cpu_ms: Math.round(m.cpuMs),
        records_per_s: Math.round(records / (m.wallMs / 1000)),
        records_per_cpu_s: Math.round(records / (m.cpuMs / 1000)),
        ...extra,
      };
      results.push(r);
      log(
        `${name.padEnd(44)} ${String(records).padStart(9)} rec  ${(m.wallMs / 1000).toFixed(2).padStart(6)} s wall  ${(m.cpuMs / 1000).toFixed(2).padStart(6)} s cpu  ${String(r.records_per_s).padStart(8)} rec/s  ${String(r.records_per_cpu_s).padStart(8)} rec/cpu-s`,
      );
    };
    const v1 = await measure(() => verifyTrail(dir, { macKey: KEY, concurrency: 0 }));
    if (!v1.value.ok)
      throw new Error(`bench trail does not verify: ${JSON.stringify(v1.value.failures.slice(0, 3))}`);
    row('verify, one thread (hash + MAC + chain + checksums)', v1.value.records, v1, {
      mb_per_s: Math.round(v1.value.bytes / 1e6 / (v1.wallMs / 1000)),
    });
    const v1b = await measure(() => verifyTrail(dir, { macKey: KEY, concurrency: 2 }));
    row('verify, two worker threads (concurrency 2)', v1b.value.records, v1b);
    const v2 = await measure(() => verifyTrail(dir));
    row('verify without key (hash + chain + checksums)', v2.value.records, v2);
    const q1 = await measure(() => count(dir, { types: ['auth.success'], actor: 'user-42' }));
    row(`query type+actor over ${N} (→ ${q1.value})`, N, q1, { matched: q1.value });
    const since = new Date(T0 + Math.floor(N * 0.9) * STEP_MS).toISOString();
    const q2 = await measure(() => count(dir, { since }));
    row(`query last 10% by time (→ ${q2.value})`, N, q2, { matched: q2.value });
    const q3 = await measure(() => count(dir, {}));
    row(`query everything (→ ${q3.value})`, N, q3, { matched: q3.value });
    const q4 = await measure(() => count(dir, { verify: true, macKey: KEY, customerId: 'cust-7' }));
    row(`query customer, verifying (→ ${q4.value})`, N, q4, { matched: q4.value });
    const env = {
      node: process.version,
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      loadavg_1m: Number(loadavg()[0]?.toFixed(2)),
      records: N,
      bytes: v1.value.bytes,
      files: v1.value.files,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    };
    if (JSON_OUT)
      process.stdout.write(`${JSON.stringify({ bench: 'audit-verify', env, results }, null, 2)}\n`);
    else
      log(
        `node ${env.node}, ${env.cpus} × ${env.cpu_model}, load average ${env.loadavg_1m}, ${env.files} files, ${(env.bytes / 1e6).toFixed(0)} MB`,
      );
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exitCode = 1;
});
