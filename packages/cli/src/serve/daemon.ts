/**
 * `vramseal serve` wiring: opens the audit trail, the VRAM manager and the token store, builds the
 * HTTP server, listens, installs graceful shutdown. Resolves with the exit code once the daemon
 * has stopped (never, while it runs normally — the signal handler exits the process).
 */

import { platformOptionsFromEnv } from '@vramseal/audit';
import type { Logger } from 'pino';
import { errorText } from '../output.js';
import { createLogger } from './log.js';
import { resolveModelsDir } from './paths.js';
import { ManagerResidency } from './residency.js';
import { buildServer } from './server.js';
import { installShutdown } from './shutdown.js';
import { TokenStore } from './tokens.js';
import {
  attachDaemonTransparency,
  type DaemonTransparency,
  type DaemonTransparencyConfig,
  loadDaemonSigner,
  transparencyStartHint,
} from './transparency.js';
import { defaultWorkerId, openManager, openTrail, resolveWorkerToken } from './worker.js';

export interface DaemonConfig {
  modelsDir: string;
  tokenFile: string;
  auditDir: string;
  auditKeyFile?: string | undefined;
  workerTokenFile?: string | undefined;
  workerId?: string | undefined;
  device: number;
  host: string;
  port: number;
  verifyIntervalMs: number;
  executeCheck: 'sample' | 'full';
  sampleChunks: number;
  backend?: 'auto' | 'cuda' | 'simulated' | undefined;
  reserveBytes?: number | undefined;
  maxModelBytes?: number | undefined;
  rateLimit: { max: number; windowMs: number };
  logLevel: string;
  /** Signed checkpoints for the trail (`--tlog-key`, `$VRAMSEAL_TLOG_KEY_FILE`); off when absent. */
  transparency?: DaemonTransparencyConfig | undefined;
}

export async function runDaemon(
  cfg: DaemonConfig,
  logger: Logger = createLogger(cfg.logLevel),
): Promise<number> {
  let modelsDir: string;
  let tokens: TokenStore;
  let signer: ReturnType<typeof loadDaemonSigner> | undefined;
  try {
    modelsDir = await resolveModelsDir(cfg.modelsDir);
    tokens = await TokenStore.fromFile(cfg.tokenFile);
    if (cfg.transparency) signer = loadDaemonSigner(cfg.transparency);
  } catch (err) {
    logger.fatal({ err: { message: errorText(err) } }, 'cannot start');
    process.stderr.write(`vramseal serve: ${errorText(err)}\n`);
    return 2;
  }
  const workerId = cfg.workerId ?? defaultWorkerId();
  const workerToken = await resolveWorkerToken({ file: cfg.workerTokenFile, allowEphemeral: true });
  if (workerToken.source === 'ephemeral')
    logger.warn('no --worker-token-file or VRAMSEAL_WORKER_TOKEN: using a random per-process seal key');

  let trail: Awaited<ReturnType<typeof openTrail>>;
  let platform: ReturnType<typeof platformOptionsFromEnv>;
  try {
    platform = platformOptionsFromEnv();
    trail = await openTrail({
      dir: cfg.auditDir,
      serviceId: workerId,
      keyFile: cfg.auditKeyFile,
      flush: 'hybrid',
      failClosed: true,
      logger,
      // VRAMSEAL_PLATFORM_URL (+ VRAMSEAL_PROVIDER_ID, VRAMSEAL_PROVIDER_KEY_FILE, …) turns on platform mode.
      platform,
    });
  } catch (err) {
    logger.fatal({ err: { message: errorText(err) } }, 'cannot open the audit trail');
    process.stderr.write(`vramseal serve: ${errorText(err)}\n`);
    return 2;
  }

  // Transparency (issue 8): signed checkpoints of the trail; witnessed by the collector in platform mode.
  let tlog: DaemonTransparency | undefined;
  if (cfg.transparency && signer) {
    try {
      tlog = await attachDaemonTransparency(trail.logger, signer, cfg.transparency, { platform, logger });
    } catch (err) {
      logger.fatal({ err: { message: errorText(err) } }, 'cannot attach transparency to the audit trail');
      const hint = transparencyStartHint(err);
      process.stderr.write(`vramseal serve: ${errorText(err)}${hint ? `\n  hint: ${hint}` : ''}\n`);
      await trail.logger.close().catch(() => {});
      return 2;
    }
  }

  let residency: ManagerResidency;
  try {
    const manager = await openManager({
      workerToken: workerToken.token,
      tokenFile: workerToken.tokenFile,
      workerId,
      audit: trail.logger,
      backend: cfg.backend,
      reserveBytes: cfg.reserveBytes,
      maxModelBytes: cfg.maxModelBytes,
      failClosed: true,
      onFallback: (reason) => logger.warn({ reason }, 'no usable GPU: using the simulated backend'),
    });
    residency = new ManagerResidency(manager, { logger });
    const count = (await manager.devices()).length;
    if (cfg.device >= count) {
      await residency.close();
      throw new Error(
        `--device ${cfg.device}: the ${manager.backendKind} backend has ${count} device(s) (0..${count - 1})`,
      );
    }
  } catch (err) {
    logger.fatal({ err: { message: errorText(err) } }, 'cannot open the VRAM manager');
    process.stderr.write(`vramseal serve: ${errorText(err)}\n`);
    await trail.logger.close().catch(() => {});
    await tlog?.stop().catch(() => {});
    return 2;
  }

  const daemon = await buildServer({
    residency,
    audit: trail.logger,
    tokens,
    modelsDir,
    serviceId: workerId,
    executeCheck: cfg.executeCheck,
    sampleChunks: cfg.sampleChunks,
    defaultDevice: cfg.device,
    rateLimit: cfg.rateLimit,
    logger,
  });
  if (cfg.verifyIntervalMs > 0)
    residency.startPeriodic(cfg.verifyIntervalMs, (ok, ms) => {
      daemon.metrics.verifications.inc({ mode: 'full', result: ok ? 'ok' : 'failed' });
      daemon.metrics.verificationSeconds.observe({ mode: 'full' }, ms / 1000);
    });

  installShutdown({
    logger,
    steps: [
      {
        name: 'stop accepting, finish in-flight requests',
        run: () => daemon.close(),
      },
      { name: 'release every shard', run: () => residency.close() },
      // Closing the trail writes the final signed checkpoint (Transparency follows the logger's 'close').
      { name: 'flush and close the audit trail', run: () => trail.logger.close() },
      ...(tlog
        ? [{ name: 'stop the checkpoint witness', run: () => (tlog as DaemonTransparency).stop() }]
        : []),
    ],
  });

  try {
    const address = await daemon.app.listen({ host: cfg.host, port: cfg.port });
    logger.info(
      {
        address,
        backend: residency.backend,
        worker_id: workerId,
        audit_dir: trail.logger.dir,
        models_dir: modelsDir,
        execute_check: cfg.executeCheck,
        verify_interval_ms: cfg.verifyIntervalMs,
        tokens: tokens.describe(),
      },
      'vramseal daemon ready',
    );
  } catch (err) {
    logger.fatal({ err: { message: errorText(err) } }, 'cannot listen');
    process.stderr.write(`vramseal serve: cannot listen on ${cfg.host}:${cfg.port}: ${errorText(err)}\n`);
    await residency.close().catch(() => {});
    await trail.logger.close().catch(() => {});
    await tlog?.stop().catch(() => {});
    return 2;
  }
  // Keep running; the shutdown handler exits the process.
  return new Promise<number>(() => {});
}
