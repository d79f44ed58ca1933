/**
 * Micro-benchmark of validateEvent (not a test; prints ns/op).
 *   node --conditions=vramseal-source --import tsx packages/audit/bench/validate.ts [--json]
 */
import { validateEvent } from '@vramseal/audit';

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

function bench(name: string, ev: object, iterations: number): { name: string; nsPerOp: number } {
  for (let i = 0; i < 20_000; i++) validateEvent(ev); // warm-up (JIT)
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) validateEvent(ev);
    const ns = Number(process.hrtime.bigint() - t0) / iterations;
    if (ns < best) best = ns;
  }
  return { name, nsPerOp: best };
}

const results = [
  bench('vram.sealed', sealed, 200_000),
  bench('authz.denied (actor + ipv6)', authz, 200_000),
  bench('pool.modified (free-form changes)', modified, 200_000),
];
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ node: process.version, results }));
} else {
  console.log(`validateEvent, Node ${process.version}, best of 5 rounds`);
  for (const r of results) console.log(`${r.name.padEnd(36)} ${r.nsPerOp.toFixed(0).padStart(6)} ns/op`);
}
