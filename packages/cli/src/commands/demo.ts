/**
 * `vramseal demo [--dir D] [--size BYTES] [--json]` — the one-command tour (`npm start`).
 *
 * On any machine (GPU when present, else the simulated device): opens an audit trail, writes a
 * random model file, seals it, verifies it fully, spot-checks it, corrupts one chunk through the
 * backend's test hook, shows that verification fails with the corrupt byte range and that the
 * manager is then stopped, releases everything, verifies the audit trail and lists its critical
 * events. Every step is checked against what must happen; the exit code is 0 only if all did (a
 * corruption that went undetected is a failure: exit 1).
 */
import { createHash, randomBytes, randomFillSync, randomInt } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  errorText,
  formatBytes,
  formatMs,
  formatRate,
  gbPerSecond,
  parseBytes,
  printJson,
  StepPrinter,
} from '../output.js';
import { EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE } from '../program.js';
import { ProgressBar } from '../progress.js';
import { ManagerResidency } from '../serve/residency.js';
import { openManager, openTrail, verifyTrailDir } from '../serve/worker.js';

export const DEFAULT_DEMO_BYTES = 256 * 1024 * 1024;

export interface DemoStep {
  name: string;
  ok: boolean;
  detail: string;
  ms?: number;
}

export interface DemoOptions {
  dir?: string | undefined;
  size: number;
  json: boolean;
  keepModel?: boolean;
  /** Where the report goes (default stdout; progress always goes to stderr). */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Tests only: sabotage a step to prove the demo notices (e.g. skip the corruption → exit 1). */
  testHooks?: { skipCorruption?: boolean };
}

/** Writes `size` random bytes to `path` (8 MiB at a time); returns their SHA-256. */
async function writeRandomModel(
  path: string,
  size: number,
  onProgress: (done: number) => void,
): Promise<string> {
  const sha = createHash('sha256');
  const out = createWriteStream(path, { mode: 0o600 });
  const chunk = Buffer.allocUnsafe(Math.min(size, 8 * 1024 * 1024) || 1);
  let done = 0;
  try {
    while (done < size) {
      const n = Math.min(chunk.length, size - done);
      const piece = Buffer.from(randomFillSync(chunk, 0, n).subarray(0, n));
      sha.update(piece);
      if (!out.write(piece)) await new Promise<void>((r) => out.once('drain', r));
      done += n;
      onProgress(done);
    }
  } finally {
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
  }
  return sha.digest('hex');
}

/** Reads every record of a trail directory (small trails only), in seq order. */
async function readRecords(dir: string): Promise<Array<{ seq: number; event: Record<string, unknown> }>> {
  const recs: Array<{ seq: number; event: Record<string, unknown> }> = [];
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.audit')) continue;
    for (const line of (await readFile(join(dir, name), 'utf8')).split('\n')) {
      if (!line) continue;
      try {
        const r = JSON.parse(line) as { seq: number; event: Record<string, unknown> };
        recs.push({ seq: r.seq, event: r.event });
      } catch {
        // an unparsable line is the verifier's business; it fails that step
      }
    }
  }
  return recs.sort((a, b) => a.seq - b.seq);
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const human = !opts.json;
  const out = opts.out ?? process.stdout;
  const p = new StepPrinter({ quiet: !human, out });
  const steps: DemoStep[] = [];
  const step = (name: string, ok: boolean, detail: string, ms?: number) => {
    steps.push({ name, ok, detail, ...(ms === undefined ? {} : { ms: Math.round(ms * 10) / 10 }) });
    p.step(ok, name, detail);
    return ok;
  };
  const t0 = performance.now();
  const base = opts.dir ?? (await mkdtemp(join(tmpdir(), 'vramseal-demo-')));
  await mkdir(base, { recursive: true, mode: 0o700 });
  // Each run gets a fresh trail: its MAC key lives only in this process, so a trail from an earlier
  // run in the same --dir cannot (and must not) be continued.
  const auditDir = opts.dir ? await mkdtemp(join(base, 'audit-')) : join(base, 'audit');
  const modelPath = join(base, 'model.bin');
  const macKey = randomBytes(32);
  const workerToken = randomBytes(32).toString('base64url');
  const workerId = 'vramseal-demo';
  let fallback: string | undefined;
  const json: Record<string, unknown> = { dir: base, audit_dir: auditDir, size: opts.size };

  p.line(p.style.bold('vramseal demo — seal a model in device memory, prove it, catch tampering'));

  // 1. audit trail
  let trail: Awaited<ReturnType<typeof openTrail>>;
  try {
    trail = await openTrail({
      dir: auditDir,
      serviceId: workerId,
      macKey,
      flush: 'hybrid',
      failClosed: false,
    });
  } catch (err) {
    step('open audit trail', false, errorText(err));
    return finish();
  }
  step('open audit trail', true, `${auditDir} (hash chain + HMAC-SHA256, random in-memory key)`);

  // 2. manager + backend
  let res: ManagerResidency;
  try {
    const manager = await openManager({
      workerToken,
      workerId,
      audit: trail.logger,
      backend: 'auto',
      onFallback: (reason) => {
        fallback = reason;
      },
    });
    res = new ManagerResidency(manager, {});
  } catch (err) {
    step('open VRAM manager', false, errorText(err));
    await trail.logger.close().catch(() => {});
    return finish();
  }
  const devs = await res.devices();
  const dev0 = devs[0];
  json.backend = res.backend;
  json.devices = devs;
  step(
    'open VRAM manager',
    dev0 !== undefined,
    `backend ${res.backend}${dev0 ? `, device 0: ${dev0.name}, ${formatBytes(dev0.total_bytes)}` : ', no device'}`,
  );
  if (fallback) {
    json.fallback_reason = fallback;
    p.detail(
      p.style.dim(`no GPU used: ${fallback.replace(/^backend cuda unavailable: /, '').split(': ')[0]}`),
    );
  }
  if (res.backend === 'simulated')
    p.detail(p.style.dim('simulated = host memory standing in for VRAM; every handle and event says so'));

  try {
    // 3. model file
    const tw = performance.now();
    const bar = new ProgressBar({ label: 'writing model', total: opts.size, enabled: human });
    const sha256 = await writeRandomModel(modelPath, opts.size, (d) => bar.update(d));
    bar.done();
    step(
      'write model file',
      true,
      `${modelPath}, ${formatBytes(opts.size)} random bytes, sha256 ${sha256.slice(0, 16)}…`,
      performance.now() - tw,
    );

    // 4. seal
    const ts = performance.now();
    const sbar = new ProgressBar({ label: 'sealing     ', total: opts.size, enabled: human });
    const shard = await res.seal(modelPath, {
      device: 0,
      shardId: 'demo-model-0',
      modelRef: 'demo/model.bin',
      expectSha256: sha256,
      onProgress: (d) => sbar.update(d),
    });
    sbar.done();
    const sealMs = performance.now() - ts;
    json.shard = shard;
    json.seal = { ms: Math.round(sealMs), gb_per_s: gbPerSecond(shard.vram_bytes, sealMs) };
    step(
      'seal',
      shard.vram_bytes === opts.size,
      `shard ${shard.shard_id} on ${shard.backend} device ${shard.gpu_device}: ${formatBytes(shard.vram_bytes)} in ${formatMs(sealMs)} — ${formatRate(shard.vram_bytes, sealMs)} (read + copy + on-device digest + SHA-256 check)`,
      sealMs,
    );
    p.detail(`handle ${JSON.stringify(shard)}`);
    p.detail(
      p.style.dim(
        '(public fields only: the HMAC-SHA256 seal and the device pointer never leave the manager)',
      ),
    );

    // 5. full verification
    const full = await res.verify(shard.shard_id, 'full', 0);
    step(
      'verify (full)',
      full.ok,
      `every chunk re-hashed from device memory in ${formatMs(full.duration_ms)} — ${formatRate(shard.vram_bytes, full.duration_ms)}`,
      full.duration_ms,
    );

    // 6. spot check
    const sample = await res.verify(shard.shard_id, 'sample', 8);
    step(
      'spot check',
      sample.ok,
      `${sample.chunks_checked ?? 8} random chunks in ${formatMs(sample.duration_ms)} (the per-request check)`,
      sample.duration_ms,
    );

    // 7. corrupt
    const offset = randomInt(0, Math.max(1, opts.size));
    if (!opts.testHooks?.skipCorruption) await res.corruptForTest(shard.shard_id, offset, 1);
    step('corrupt one byte', true, `XOR 0xff at offset ${offset} through the backend's test hook`);

    // 8. verification must fail, naming the range
    let detected = false;
    let ranges: Array<{ offset: number; length: number }> = [];
    try {
      await res.verify(shard.shard_id, 'full', 0);
    } catch (err) {
      const e = err as { code?: string; corruptRanges?: Array<{ offset: number; length: number }> };
      detected = e.code === 'SEAL_VERIFICATION_FAILED';
      ranges = [...(e.corruptRanges ?? [])];
      json.failure = { code: e.code, message: errorText(err), corrupt_ranges: ranges };
    }
    const covers = ranges.some((r) => offset >= r.offset && offset < r.offset + r.length);
    step(
      'verification fails',
      detected && covers,
      detected
        ? `SEAL_VERIFICATION_FAILED, corrupt range${ranges.length === 1 ? '' : 's'} ${ranges.map((r) => `[${r.offset}, ${r.offset + r.length})`).join(', ')}${covers ? ' — contains the corrupted byte' : ' — does NOT contain the corrupted byte'}`
        : 'corruption was NOT detected',
    );

    // 9. stopped state
    const st = res.status();
    let refused = '';
    try {
      await res.verify(shard.shard_id, 'sample', 1);
    } catch (err) {
      refused = (err as { code?: string }).code ?? 'error';
    }
    step(
      'manager stopped',
      st.state === 'stopped' && refused === 'STOPPED',
      `state ${st.state}${st.reason ? ` (${st.reason})` : ''}; next verify refused with ${refused || 'nothing'}`,
    );
  } catch (err) {
    step('unexpected error', false, errorText(err));
  }

  // 10. release everything
  try {
    const held = res.list();
    await res.close();
    const bytes = held.reduce((a, s) => a + s.vram_bytes, 0);
    step(
      'release everything',
      true,
      `${held.length} shard${held.length === 1 ? '' : 's'}, ${formatBytes(bytes)} freed; backend closed`,
    );
  } catch (err) {
    step('release everything', false, errorText(err));
  }
  try {
    await trail.logger.close();
  } catch (err) {
    step('close audit trail', false, errorText(err));
  }
  if (!opts.keepModel) await rm(modelPath, { force: true });

  // 11. verify the trail, list critical events
  try {
    const v = await verifyTrailDir(auditDir, macKey);
    json.trail = v;
    step(
      'audit trail verifies',
      v.ok,
      v.ok
        ? `${v.records} records in ${v.files} file${v.files === 1 ? '' : 's'}: hash chain and MAC intact`
        : `${v.failures.length} failure(s): ${v.failures
            .slice(0, 3)
            .map((f) => f.message)
            .join('; ')}`,
    );
    const recs = await readRecords(auditDir);
    const dealloc = recs.filter(
      (r) => r.event.type === 'vram.deallocated' && r.event.shard_id === 'demo-model-0',
    );
    step(
      'release recorded',
      dealloc.length === 1 && dealloc[0]?.event.freed_bytes === opts.size,
      dealloc.length === 1
        ? `vram.deallocated seq ${dealloc[0]?.seq}, freed_bytes ${dealloc[0]?.event.freed_bytes}`
        : `${dealloc.length} vram.deallocated records for the shard`,
    );
    const critical = recs.filter((r) => trail.isCritical(String(r.event.type)));
    const types = recs.map((r) => String(r.event.type));
    json.critical_events = critical;
    const vf = critical.filter((r) => r.event.type === 'seal.verification_failed');
    const unexpected = critical.filter((r) => r.event.type !== 'seal.verification_failed');
    step(
      'critical event recorded',
      vf.length === 1 && unexpected.length === 0,
      `${critical.length} critical event${critical.length === 1 ? '' : 's'} in ${recs.length} records`,
    );
    for (const r of critical) {
      const e = r.event;
      const cr = (e.corrupt_ranges as Array<{ offset: number; length: number }> | undefined) ?? [];
      p.detail(
        `seq ${r.seq}  ${e.type}  shard ${e.shard_id ?? '-'}  ${e.reason ?? ''}${cr.length ? `  ranges ${cr.map((x) => `[${x.offset}, ${x.offset + x.length})`).join(', ')}` : ''}`,
      );
    }
    p.detail(p.style.dim(`events: ${[...new Set(types)].join(', ')}`));
  } catch (err) {
    step('audit trail verifies', false, errorText(err));
  }
  return finish();

  function finish(): number {
    const failed = steps.filter((s) => !s.ok);
    const ok = failed.length === 0;
    const ms = performance.now() - t0;
    if (opts.json) printJson({ ok, ...json, steps, seconds: Math.round(ms) / 1000 }, out);
    else {
      p.line();
      if (ok)
        p.line(
          p.style.ok(
            `All ${steps.length} steps behaved as expected (${(ms / 1000).toFixed(1)} s). Trail kept in ${auditDir}`,
          ),
        );
      else
        p.line(
          p.style.bad(
            `${failed.length} of ${steps.length} steps did NOT behave as expected: ${failed.map((s) => s.name).join(', ')}`,
          ),
        );
    }
    return ok ? EXIT_OK : EXIT_CHECK_FAILED;
  }
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'seal a model, verify it, corrupt it, watch the seal catch it, verify the audit trail (npm start)',
    )
    .option('--dir <dir>', 'where to put the audit trail and the model file (default: a new temp dir)')
    .option('--size <bytes>', 'model size, e.g. 268435456, 256MiB, 1GiB', String(DEFAULT_DEMO_BYTES))
    .option('--keep-model', 'keep the model file (deleted by default)')
    .option('--json', 'print one JSON document instead of text')
    .action(async (o: { dir?: string; size: string; json?: boolean; keepModel?: boolean }) => {
      let size: number;
      try {
        size = parseBytes('--size', o.size);
        if (size < 1) throw new Error('--size: must be at least 1 byte');
      } catch (err) {
        process.stderr.write(`vramseal demo: ${errorText(err)}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      process.exitCode = await runDemo({
        dir: o.dir,
        size,
        json: o.json === true,
        keepModel: o.keepModel === true,
      });
    });
}
