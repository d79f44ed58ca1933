/**
 * VRAM benchmark (issue 5): `npm run bench:vram [-- --json] [-- --max-gib 32]`, on a GPU host.
 *
 * In one run, on device 0:
 *   - pinned H2D bandwidth (cuMemcpyHtoDAsync from one pinned buffer, the limit for seals);
 *   - seal GB/s from memory and from a file in page cache (VramManager.seal: copy through the pinned
 *     double-buffered staging pool + digest from device memory), and the backend copy alone;
 *   - GPU verify GB/s for 1, 8 and 32 GiB (VramManager.verify wall time, and the kernels' GPU time);
 *   - the old method on the same 8 GiB: device → host copy + CPU SHA-256;
 *   - the simulated backend's digest (worker threads) of the same 8 GiB, same root.
 * Every number is measured here; medians of repeated runs where cheap.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { loadDriver } from '../src/cuda/driver.js';
import { openCudaBackend } from '../src/cuda/index.js';
import type { ResidencyEvent } from '../src/events.js';
import { VramManager } from '../src/manager.js';
import { DEFAULT_LEAF_SIZE } from '../src/merkle.js';
import { SimulatedBackend } from '../src/simulated/index.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const args = process.argv.slice(2);
const json = args.includes('--json');
const maxGiB = Number(args[args.indexOf('--max-gib') + 1] ?? 32) || 32;
const log = (s: string) => {
  if (!json) console.log(s);
  else console.error(s);
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const gbps = (bytes: number, ms: number) => Number((bytes / ms / 1e6).toFixed(2));
const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');

/** An audit sink that records nothing (the bench measures VRAM work, not the trail). */
const audit = {
  emit: (_e: ResidencyEvent) => ({ durable: Promise.resolve() }),
  health: () => ({ state: 'ok' as const }),
};

function smi(): string | undefined {
  const r = spawnSync(
    'nvidia-smi',
    ['--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit', '--format=csv,noheader'],
    { encoding: 'utf8' },
  );
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The bench's 1 GiB host pattern; larger shards repeat it. */
function hostPattern(bytes: number): Buffer {
  const b = Buffer.allocUnsafeSlow(bytes);
  const w = new Uint32Array(b.buffer, b.byteOffset, bytes / 4);
  let x = 0x9e3779b9;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
  return b;
}

async function* repeat(buf: Uint8Array, times: number, chunk = 8 * MiB) {
  for (let t = 0; t < times; t++) {
    for (let off = 0; off < buf.length; off += chunk) yield buf.subarray(off, off + chunk);
  }
}

async function main() {
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
    host: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / GiB) },
    nvidiaSmi: smi(),
  };
  const backend = await openCudaBackend();
  const dev = (await backend.devices())[0];
  if (!dev) throw new Error('no device');
  results.device = dev;
  log(
    `device 0: ${dev.name}, cc ${dev.computeCapability}, driver ${dev.driverVersion}, ${(dev.totalBytes / GiB).toFixed(1)} GiB`,
  );
  const big = Math.min(maxGiB, Math.floor((dev.freeBytes - 6 * GiB) / GiB));
  const P = hostPattern(GiB);

  // 1. Pinned H2D bandwidth: raw cuMemcpyHtoDAsync from one 256 MiB pinned buffer, 4 GiB per run.
  {
    const drv = loadDriver();
    const cu = drv.device(0);
    const ctx = drv.primaryCtxRetain(cu);
    drv.setCurrent(ctx);
    const host = drv.hostAlloc(256 * MiB);
    host.view.set(P.subarray(0, 256 * MiB));
    const { res, ptr } = drv.memAlloc(4 * GiB);
    drv.check(res, 'cuMemAlloc');
    const stream = drv.streamCreate();
    const e0 = drv.eventCreate(true);
    const e1 = drv.eventCreate(true);
    const runs: number[] = [];
    for (let r = 0; r < 4; r++) {
      drv.eventRecord(e0, stream);
      for (let i = 0; i < 16; i++)
        drv.memcpyHtoDAsync(ptr + BigInt(i * 256 * MiB), host.addr, 256 * MiB, stream);
      drv.eventRecord(e1, stream);
      while (!drv.eventQuery(e1)) await new Promise((r) => setImmediate(r));
      if (r > 0) runs.push(gbps(4 * GiB, drv.eventElapsedMs(e0, e1)));
    }
    results.pinnedH2D_GBps = median(runs);
    log(`pinned H2D: ${results.pinnedH2D_GBps} GB/s (median of ${runs.join(', ')})`);
    drv.memFree(ptr);
    drv.hostFree(host.handle);
    drv.eventDestroy(e0);
    drv.eventDestroy(e1);
    drv.streamDestroy(stream);
    drv.primaryCtxRelease(cu);
  }

  const m = await VramManager.open({
    workerToken: 'bench-token-0123456789',
    workerId: 'bench',
    audit,
    backend,
  });

  // 2. Seal from memory (8 MiB views of a 1 GiB buffer, repeated): VramManager.seal.
  {
    const runs: number[] = [];
    for (let r = 0; r < 3; r++) {
      const src = Buffer.from(P.buffer, P.byteOffset, P.length);
      const t0 = performance.now();
      const s = await m.seal(src);
      runs.push(gbps(GiB, performance.now() - t0));
      await m.release(s);
    }
    results.sealFromMemory_1GiB_GBps = median(runs);
    log(`seal from memory (1 GiB Buffer, VramManager.seal): ${median(runs)} GB/s (${runs.join(', ')})`);
    // Backend copy alone (writeFrom of 8 GiB in 8 MiB chunks) and copy + GPU digest.
    const a = await backend.allocate(0, 8 * GiB);
    const t0 = performance.now();
    await backend.writeFrom(a, repeat(P, 8));
    const t1 = performance.now();
    await backend.merkle(a, { leafSize: DEFAULT_LEAF_SIZE, wantLeaves: true });
    const t2 = performance.now();
    results.copyFromMemory_8GiB_GBps = gbps(8 * GiB, t1 - t0);
    results.copyPlusDigest_8GiB_GBps = gbps(8 * GiB, t2 - t0);
    log(
      `backend copy 8 GiB from memory: ${results.copyFromMemory_8GiB_GBps} GB/s; copy + digest: ${results.copyPlusDigest_8GiB_GBps} GB/s`,
    );
    await backend.free(a);
  }

  // 3. Seal from a file in page cache (4 GiB file, read once before timing).
  {
    const path = join(process.env.VRAMSEAL_BENCH_DIR ?? tmpdir(), `vramseal-bench-${process.pid}.bin`);
    const fileBytes = 4 * GiB;
    try {
      const fh = await open(path, 'w');
      for (let i = 0; i < 4; i++) await fh.write(P, 0, P.length, i * GiB);
      await fh.close();
      const warm = await open(path, 'r');
      const buf = Buffer.allocUnsafe(64 * MiB);
      for (let off = 0; off < fileBytes; off += buf.length) await warm.read(buf, 0, buf.length, off);
      await warm.close();
      const runs: number[] = [];
      for (let r = 0; r < 2; r++) {
        const t0 = performance.now();
        const s = await m.seal(path);
        runs.push(gbps(fileBytes, performance.now() - t0));
        await m.release(s);
      }
      results.sealFromFile_4GiB_GBps = median(runs);
      log(
        `seal from file in page cache (4 GiB, VramManager.seal): ${median(runs)} GB/s (${runs.join(', ')})`,
      );
      // The CUDA fast path: file → pinned staging → device (no JS buffers), then the GPU digest.
      const direct: number[] = [];
      const copyOnly: number[] = [];
      const a = await backend.allocate(0, fileBytes);
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        await backend.writeFromFile(a, path);
        const t1 = performance.now();
        await backend.merkle(a, { leafSize: DEFAULT_LEAF_SIZE, wantLeaves: true });
        copyOnly.push(gbps(fileBytes, t1 - t0));
        direct.push(gbps(fileBytes, performance.now() - t0));
      }
      await backend.free(a);
      results.fileDirectCopy_4GiB_GBps = median(copyOnly);
      results.fileDirectCopyPlusDigest_4GiB_GBps = median(direct);
      log(
        `backend writeFromFile 4 GiB (page cache → pinned → device): ${median(copyOnly)} GB/s; + digest: ${median(direct)} GB/s`,
      );
    } finally {
      await rm(path, { force: true });
    }
  }

  // 4. GPU verify at 1, 8, 32 GiB (one 32 GiB shard sealed from memory; prefixes digested directly).
  {
    const sizes = [1, 8, 32].filter((g) => g <= big);
    const a = await backend.allocate(0, big * GiB);
    const tc = performance.now();
    await backend.writeFrom(a, repeat(P, big));
    results[`copyFromMemory_${big}GiB_GBps`] = gbps(big * GiB, performance.now() - tc);
    log(`backend copy ${big} GiB from memory: ${results[`copyFromMemory_${big}GiB_GBps`]} GB/s`);
    const verify: Record<string, unknown> = {};
    for (const g of sizes) {
      const len = g * GiB;
      const wall: number[] = [];
      const gpu: number[] = [];
      let root = '';
      for (let r = 0; r < 6; r++) {
        const t = performance.now();
        const res = await backend.merkle(a, { leafSize: DEFAULT_LEAF_SIZE, length: len });
        const ms = performance.now() - t;
        if (r > 0) {
          wall.push(ms);
          gpu.push(backend.lastDigestTiming()?.gpuMs ?? Number.NaN);
        }
        root = hex(res.root);
      }
      verify[`${g}GiB`] = {
        wallMs: Number(median(wall).toFixed(3)),
        gpuMs: Number(median(gpu).toFixed(3)),
        wallGBps: gbps(len, median(wall)),
        gpuGBps: gbps(len, median(gpu)),
        root,
      };
      log(
        `GPU digest ${g} GiB: ${median(wall).toFixed(3)} ms wall (${gbps(len, median(wall))} GB/s), kernels ${median(gpu).toFixed(3)} ms (${gbps(len, median(gpu))} GB/s)`,
      );
    }
    results.gpuDigest = verify;

    // 5. Old method and simulated backend on the same 8 GiB (or the largest that fits).
    const g = Math.min(8, big);
    const len = g * GiB;
    const to = performance.now();
    const sha = await backend.hostSha256(a, len);
    const oldMs = performance.now() - to;
    results.oldMethod = { bytes: len, ms: Math.round(oldMs), GBps: gbps(len, oldMs), sha256: hex(sha) };
    log(`old method (D2H + CPU SHA-256) ${g} GiB: ${(oldMs / 1000).toFixed(2)} s = ${gbps(len, oldMs)} GB/s`);
    const want = createHash('sha256');
    for (let i = 0; i < g; i++) want.update(P);
    if (want.digest('hex') !== hex(sha)) throw new Error('old method: SHA-256 mismatch');

    await backend.free(a);
    const sim = new SimulatedBackend({ vramBytes: len + GiB });
    const sa = await sim.allocate(0, len);
    await sim.writeFrom(sa, repeat(P, g));
    const ts = performance.now();
    const simRes = await sim.merkle(sa, { leafSize: DEFAULT_LEAF_SIZE });
    const simMs = performance.now() - ts;
    await sim.close();
    const gpuRoot = (verify[`${g}GiB`] as { root: string } | undefined)?.root;
    results.simulatedDigest = {
      bytes: len,
      ms: Math.round(simMs),
      GBps: gbps(len, simMs),
      sameRootAsGpu: gpuRoot === hex(simRes.root),
    };
    log(
      `simulated backend digest ${g} GiB (${cpus().length} cores): ${(simMs / 1000).toFixed(2)} s = ${gbps(len, simMs)} GB/s; same root as GPU: ${gpuRoot === hex(simRes.root)}`,
    );
    const gpu8 = verify[`${g}GiB`] as { wallMs: number } | undefined;
    if (gpu8) {
      results.speedupVsOld = Math.round(oldMs / gpu8.wallMs);
      results.speedupVsSimulated = Math.round(simMs / gpu8.wallMs);
      log(`GPU verify vs old method: ${results.speedupVsOld}×; vs simulated: ${results.speedupVsSimulated}×`);
    }
  }

  // 6. VramManager.verify wall time on a 1 GiB shard (seal check + digest + compare).
  {
    const s = await m.seal(Buffer.from(P.buffer, P.byteOffset, P.length));
    const runs: number[] = [];
    for (let r = 0; r < 6; r++) {
      const t = performance.now();
      await m.verify(s);
      if (r > 0) runs.push(performance.now() - t);
    }
    results.managerVerify_1GiB_ms = Number(median(runs).toFixed(3));
    log(`VramManager.verify 1 GiB: ${median(runs).toFixed(3)} ms`);
    await m.release(s);
  }
  await m.close();
  await backend.close();
  if (json) console.log(JSON.stringify(results, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
