/**
 * `vramseal seal <model-file> [--device N] [--expect-sha256 H] [--audit-dir D] [--token-file F] [--json]`
 *
 * Seals one model file in device memory, verifies it from device memory, prints the handle and the
 * timings, and releases it. Exit 0 when sealed and verified; 1 when the seal or the verification was
 * refused (wrong SHA-256, not enough memory, …); 2 on usage or I/O errors (unreadable file or token).
 * The worker token (seal-key input) comes from --token-file or $VRAMSEAL_WORKER_TOKEN; without an
 * --audit-dir the events go to a fresh trail in a temporary directory (printed).
 */
import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import {
  errorText,
  formatBytes,
  formatMs,
  formatRate,
  gbPerSecond,
  parseIntOption,
  printJson,
  StepPrinter,
} from '../output.js';
import { EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE } from '../program.js';
import { ProgressBar } from '../progress.js';
import { ManagerResidency } from '../serve/residency.js';
import { defaultWorkerId, openManager, openTrail, resolveWorkerToken } from '../serve/worker.js';

interface SealFlags {
  device: string;
  expectSha256?: string;
  auditDir?: string;
  auditKeyFile?: string;
  tokenFile?: string;
  backend?: string;
  shardId?: string;
  modelRef?: string;
  json?: boolean;
}

/** Residency error codes that are a refused check (exit 1), not an I/O or usage problem. */
const CHECK_CODES = new Set([
  'INTEGRITY_VIOLATION',
  'INSUFFICIENT_VRAM',
  'ALLOCATION_FAILED',
  'POLICY_VIOLATION',
  'SEAL_VERIFICATION_FAILED',
  'STOPPED',
  'AUDIT_UNAVAILABLE',
]);

export function register(program: Command): void {
  program
    .command('seal')
    .description('seal a model file in device memory, verify it, print the handle and timings, release it')
    .argument('<model-file>', 'the model (shard) file')
    .option('--device <n>', 'device index', '0')
    .option('--expect-sha256 <hex>', 'refuse unless the file has this SHA-256')
    .option('--audit-dir <dir>', 'audit trail directory (default: a new temp dir)')
    .option('--audit-key-file <file>', 'MAC key of the trail (default: $VRAMSEAL_AUDIT_KEY when set)')
    .option('--token-file <file>', 'worker token file, mode 0600 (default: $VRAMSEAL_WORKER_TOKEN)')
    .option('--backend <kind>', 'auto | cuda | simulated (default: $VRAMSEAL_BACKEND or auto)')
    .option('--shard-id <id>', 'shard id [A-Za-z0-9_-]{1,256} (default: random)')
    .option('--model-ref <ref>', 'model reference recorded in the handle (default: the file name)')
    .option('--json', 'print JSON')
    .action(async (file: string, f: SealFlags) => {
      process.exitCode = await runSeal(file, f);
    });
}

async function runSeal(file: string, f: SealFlags): Promise<number> {
  const usage = (msg: string) => {
    process.stderr.write(`vramseal seal: ${msg}\n`);
    return EXIT_USAGE;
  };
  let device: number;
  try {
    device = parseIntOption('--device', f.device, 0, 65535);
  } catch (err) {
    return usage(errorText(err));
  }
  if (f.expectSha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(f.expectSha256))
    return usage('--expect-sha256: must be 64 hex digits');
  if (f.backend !== undefined && !['auto', 'cuda', 'simulated'].includes(f.backend))
    return usage('--backend: must be auto, cuda or simulated');
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) return usage(`${file}: not a regular file`);
    size = st.size;
  } catch (err) {
    return usage(`${file}: ${(err as NodeJS.ErrnoException).code ?? errorText(err)}`);
  }
  let token: Awaited<ReturnType<typeof resolveWorkerToken>>;
  try {
    token = await resolveWorkerToken({ file: f.tokenFile, allowEphemeral: false });
  } catch (err) {
    return usage(errorText(err));
  }

  const human = !f.json;
  const p = new StepPrinter({ quiet: !human });
  const auditDir = f.auditDir ?? join(await mkdtemp(join(tmpdir(), 'vramseal-seal-')), 'audit');
  const workerId = defaultWorkerId();
  let trail: Awaited<ReturnType<typeof openTrail>>;
  try {
    trail = await openTrail({
      dir: auditDir,
      serviceId: workerId,
      keyFile: f.auditKeyFile,
      flush: 'hybrid',
      failClosed: true,
    });
  } catch (err) {
    return usage(`audit trail ${auditDir}: ${errorText(err)}`);
  }
  let fallback: string | undefined;
  let res: ManagerResidency;
  try {
    res = new ManagerResidency(
      await openManager({
        workerToken: token.token,
        tokenFile: token.tokenFile,
        workerId,
        audit: trail.logger,
        backend: f.backend as 'auto' | 'cuda' | 'simulated' | undefined,
        failClosed: true,
        onFallback: (r) => {
          fallback = r;
        },
      }),
    );
  } catch (err) {
    await trail.logger.close().catch(() => {});
    const code = (err as { code?: string }).code;
    if (code === 'POLICY_VIOLATION' || code === 'AUDIT_UNAVAILABLE') {
      process.stderr.write(`vramseal seal: ${errorText(err)}\n`);
      return EXIT_CHECK_FAILED;
    }
    return usage(errorText(err));
  }

  let code = EXIT_OK;
  const out: Record<string, unknown> = { file, audit_dir: auditDir, backend: res.backend };
  if (fallback) out.fallback_reason = fallback;
  p.line(`backend ${res.backend}${fallback ? ` (no GPU used: ${fallback})` : ''}; audit trail ${auditDir}`);
  try {
    const t0 = performance.now();
    const bar = new ProgressBar({
      label: 'sealing',
      total: size,
      enabled: human && size >= 64 * 1024 * 1024,
    });
    const shard = await res.seal(file, {
      device,
      expectSha256: f.expectSha256?.toLowerCase(),
      shardId: f.shardId,
      modelRef: f.modelRef ?? basename(file).slice(0, 256),
      onProgress: (d) => bar.update(d),
    });
    bar.done();
    const sealMs = performance.now() - t0;
    out.shard = shard;
    out.seal = { ms: round(sealMs), gb_per_s: gbPerSecond(shard.vram_bytes, sealMs) };
    p.step(
      true,
      'sealed',
      `${formatBytes(shard.vram_bytes)} in ${formatMs(sealMs)} — ${formatRate(shard.vram_bytes, sealMs)}`,
    );
    p.detail(`shard_id   ${shard.shard_id}`);
    p.detail(`device     ${shard.gpu_device} (${shard.backend})`);
    p.detail(`digest     ${shard.digest}`);
    p.detail(`sealed_at  ${shard.sealed_at}`);
    if (shard.model_ref) p.detail(`model_ref  ${shard.model_ref}`);
    const v = await res.verify(shard.shard_id, 'full', 0);
    out.verify = {
      ms: round(v.duration_ms),
      chunks: v.chunks_checked,
      gb_per_s: gbPerSecond(shard.vram_bytes, v.duration_ms),
    };
    p.step(
      true,
      'verified',
      `${v.chunks_checked} chunks re-hashed from device memory in ${formatMs(v.duration_ms)} — ${formatRate(shard.vram_bytes, v.duration_ms)}`,
    );
  } catch (err) {
    const c = (err as { code?: string }).code;
    code =
      c !== undefined && CHECK_CODES.has(c)
        ? EXIT_CHECK_FAILED
        : c === 'INVALID_INPUT'
          ? EXIT_USAGE
          : EXIT_CHECK_FAILED;
    out.error = { code: c ?? 'ERROR', message: errorText(err) };
    p.step(false, 'seal refused', errorText(err));
  }
  try {
    await res.close();
    p.step(true, 'released', 'device memory freed (vram.deallocated recorded)');
  } catch (err) {
    code = EXIT_CHECK_FAILED;
    p.step(false, 'release failed', errorText(err));
  }
  await trail.logger.close();
  out.ok = code === EXIT_OK;
  if (f.json) printJson(out);
  return code;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
