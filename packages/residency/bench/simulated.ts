/**
 * Simulated-backend benchmark (no GPU needed): digest throughput on one thread and on the worker
 * pool, host → "device" copy, and end-to-end VramManager seal of a file (plain and with
 * expectedSha256) plus full verify. Prints a table, or JSON with --json.
 *
 *   node --conditions=vramseal-source --import tsx packages/residency/bench/simulated.ts [--gib 1] [--json]
 */
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { VramManager } from '../src/manager.js';
import { merkleRoot } from '../src/merkle.js';
import { SimulatedBackend } from '../src/simulated/index.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const gibArg = args.indexOf('--gib');
const size = Math.round(Number(gibArg >= 0 ? args[gibArg + 1] : 1) * 1024 ** 3);
if (!Number.isSafeInteger(size) || size < 64 * 1024 * 1024) throw new Error('--gib must be ≥ 0.0625');
const LEAF = 16384;
const gbs = (bytes: number, ms: number) => +(bytes / ms / 1e6).toFixed(2);
const best = (xs: number[]) => Math.max(...xs);

const chunk = Buffer.alloc(64 * 1024 * 1024);
for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) % 251;
async function* stream(total: number) {
  for (let o = 0; o < total; o += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, total - o));
}

const result: Record<string, unknown> = {
  cpu: cpus()[0]?.model,
  cores: availableParallelism(),
  node: process.version,
  shardBytes: size,
  leafSize: LEAF,
};

// 1. digest: one thread (CPU reference on the main thread) vs the worker pool, over the same bytes.
{
  const b = new SimulatedBackend({ vramBytes: size });
  const a = await b.allocate(0, size);
  let t = performance.now();
  await b.writeFrom(a, stream(size));
  result.copyGBs = gbs(size, performance.now() - t);
  const sample = await b.read(a, 0, Math.min(size, 256 * 1024 * 1024));
  t = performance.now();
  merkleRoot(sample, LEAF);
  result.digestOneThreadGBs = gbs(sample.length, performance.now() - t);
  await b.merkle(a, { leafSize: LEAF }); // start the workers
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    t = performance.now();
    await b.merkle(a, { leafSize: LEAF });
    runs.push(gbs(size, performance.now() - t));
  }
  result.digestPoolGBs = best(runs);
  await b.close();
}

// 2. end to end: seal a file (page cache) through the manager, plain and with expectedSha256; verify.
{
  const file = join(tmpdir(), `vramseal-bench-${process.pid}.bin`);
  rmSync(file, { force: true });
  const h = createHash('sha256');
  for await (const c of stream(size)) {
    writeFileSync(file, c, { flag: 'a' });
    h.update(c);
  }
  const sha = h.digest('hex');
  const audit = { emit: () => ({ durable: Promise.resolve() }), health: () => ({ state: 'ok' as const }) };
  const m = await VramManager.open({
    workerToken: 'bench-token-0123456789',
    workerId: 'bench',
    audit,
    backend: 'simulated',
    backendOptions: { simulated: { vramBytes: size } },
  });
  const seal: number[] = [];
  const sealSha: number[] = [];
  const verify: number[] = [];
  try {
    for (let k = 0; k < 2; k++) {
      for (const [out, opts] of [
        [seal, {}],
        [sealSha, { expectedSha256: sha }],
      ] as const) {
        let t = performance.now();
        const s = await m.seal(file, opts);
        out.push(gbs(size, performance.now() - t));
        t = performance.now();
        await m.verify(s);
        verify.push(gbs(size, performance.now() - t));
        await m.release(s);
      }
    }
  } finally {
    await m.close();
    rmSync(file, { force: true });
  }
  result.sealFileGBs = best(seal);
  result.sealFileExpectedSha256GBs = best(sealSha);
  result.verifyGBs = best(verify);
}

if (json) console.log(JSON.stringify(result));
else {
  console.log(
    `simulated backend — ${result.cpu}, ${result.cores} cores, Node ${result.node}, ${size} B shard, 16 KiB leaves`,
  );
  for (const [k, v] of Object.entries(result))
    if (k.endsWith('GBs')) console.log(`  ${k.padEnd(28)} ${v} GB/s`);
}
