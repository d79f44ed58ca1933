/**
 * Micro-benchmark of validateEvent (not a test; prints ns/op).
 *   node --conditions=vramseal-source --import tsx packages/audit/bench/validate.ts [--json]
 */
import { validateEvent } from '../src/validate.js';

const sealed = {
  type: 'vram.sealed',
  timestamp: '2026-11-27T04:36:42.123Z',
  shard_id: 'llama-3-8b/shard-00003-of-00008',
  gpu_device: 0,
  vram_bytes: 1_073_741_824,
  digest: `sha256-merkle-v1:16384:${'3f'.repeat(32)}`,
  worker_id: 'worker-7f3a',
  backend: 'cuda',
  model_ref: 'meta-llama/Meta-Llama-3-8B@5f0b02c',
  shard_index: 3,
  total_shards: 8,
};
const authz = {
  type: 'authz.denied',
  timestamp: '2026-11-27T04:36:42.123Z',
  actor: {
    user_id: 'user:alice@example.com',
    ip: '2001:db8::7',
    auth_method: 'bearer_token',
    session_id: 'sess-1',
  },
  resource: { resource_type: 'pool', resource_id: 'pool-42', parent_id: 'node-3' },
  action: 'pool.delete',
  reason: 'role viewer lacks pool:delete',
};
const modified = {
  type: 'pool.modified',
  timestamp: '2026-11-27T04:36:42.123Z',
  actor: { user_id: 'user:bob', auth_method: 'mtls' },
  pool_id: 'pool-42',
  changes: { replicas: { from: 2, to: 4 }, gpu_devices: [0, 1, 2, 3], note: 'scale-up for load test' },
};

interface Row {
  name: string;
  /** wall-clock ns per call, best round */
  nsPerOp: number;
  /** process CPU ns per call, best round (less sensitive to other processes on a shared machine) */
  cpuNsPerOp: number;
}

function bench(name: string, fn: () => unknown, iterations: number): Row {
  for (let i = 0; i < 20_000; i++) fn(); // warm-up (JIT)
  let best = Number.POSITIVE_INFINITY;
  let bestCpu = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 7; round++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    const ns = Number(process.hrtime.bigint() - t0) / iterations;
    const c = process.cpuUsage(c0);
    best = Math.min(best, ns);
    bestCpu = Math.min(bestCpu, ((c.user + c.system) * 1000) / iterations);
  }
  return { name, nsPerOp: best, cpuNsPerOp: bestCpu };
}

const N = Number(process.env.BENCH_ITERATIONS ?? 200_000);
const results = [
  bench('validateEvent vram.sealed', () => validateEvent(sealed), N),
  bench('validateEvent authz.denied (actor, IPv6)', () => validateEvent(authz), N),
  bench('validateEvent pool.modified (free-form)', () => validateEvent(modified), N),
  bench('reference: JSON.stringify(vram.sealed)', () => JSON.stringify(sealed), N),
];
const loadavg = (await import('node:os')).loadavg()[0] as number;
const cpus = (await import('node:os')).cpus();
if (process.argv.includes('--json')) {
  console.log(
    JSON.stringify({ node: process.version, cpu: cpus[0]?.model, cores: cpus.length, loadavg, results }),
  );
} else {
  console.log(
    `validate bench: Node ${process.version}, ${cpus[0]?.model} x${cpus.length}, load average ${loadavg.toFixed(2)}, best of 7 rounds x ${N}`,
  );
  console.log(`${'case'.padEnd(44)} ${'wall ns/op'.padStart(10)} ${'cpu ns/op'.padStart(10)}`);
  for (const r of results) {
    console.log(
      `${r.name.padEnd(44)} ${r.nsPerOp.toFixed(0).padStart(10)} ${r.cpuNsPerOp.toFixed(0).padStart(10)}`,
    );
  }
}
