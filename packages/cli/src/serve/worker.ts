/**
 * What `demo`, `seal` and `serve` share: the worker token (seal-key input), the audit trail, the
 * VRAM manager, and offline verification of a trail.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  AuditLogger,
  isCriticalEvent,
  loadMacKey,
  type PlatformOptions,
  type VerifyReport,
  verifyTrail,
} from '@vramseal/audit';
import { type DeviceBackend, VramManager } from '@vramseal/residency';
import type { Logger } from 'pino';

export type WorkerTokenSource = 'file' | 'env' | 'ephemeral';

/**
 * The worker token: `--token-file`/`--worker-token-file` (read by the manager itself, which enforces
 * mode 0600), else `$VRAMSEAL_WORKER_TOKEN`, else — only where allowed — a random per-process one.
 */
export async function resolveWorkerToken(opts: {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  allowEphemeral: boolean;
}): Promise<{ source: WorkerTokenSource; tokenFile?: string; token?: string }> {
  if (opts.file) return { source: 'file', tokenFile: opts.file };
  const fromEnv = (opts.env ?? process.env).VRAMSEAL_WORKER_TOKEN;
  if (fromEnv) return { source: 'env', token: fromEnv };
  if (!opts.allowEphemeral)
    throw new Error('no worker token: pass --token-file F (mode 0600) or set VRAMSEAL_WORKER_TOKEN');
  return { source: 'ephemeral', token: randomBytes(32).toString('base64url') };
}

/** `vramseal-<hostname>`, reduced to the worker-id alphabet. */
export function defaultWorkerId(): string {
  const h =
    hostname()
      .replace(/[^A-Za-z0-9._:-]/g, '-')
      .slice(0, 200) || 'host';
  return `vramseal-${h}`;
}

export interface OpenTrailOptions {
  dir: string;
  serviceId: string;
  macKey?: Uint8Array | undefined;
  /** MAC key file (hex or base64:, mode 0600). Else `$VRAMSEAL_AUDIT_KEY` when set. */
  keyFile?: string | undefined;
  flush: 'immediate' | 'batched' | 'hybrid';
  failClosed: boolean;
  logger?: Logger | undefined;
  /**
   * Platform mode: ship the trail to a collector (see `platformOptionsFromEnv`). The local trail stays
   * the spool: records are durable here before they are shipped.
   */
  platform?: PlatformOptions | undefined;
}

export interface OpenedTrail {
  logger: AuditLogger;
  macKey: Uint8Array | undefined;
  isCritical(type: string): boolean;
}

export async function openTrail(o: OpenTrailOptions): Promise<OpenedTrail> {
  let macKey = o.macKey;
  if (macKey === undefined && o.keyFile) macKey = loadMacKey({ file: o.keyFile });
  else if (macKey === undefined && process.env.VRAMSEAL_AUDIT_KEY)
    macKey = loadMacKey({ env: 'VRAMSEAL_AUDIT_KEY' });
  const logger = await AuditLogger.open({
    ...(o.platform ? { mode: 'platform' as const, platform: o.platform } : { mode: 'local' as const }),
    dir: o.dir,
    serviceId: o.serviceId,
    flush:
      o.flush === 'immediate' ? { mode: 'immediate' } : { mode: o.flush, maxEvents: 256, maxDelayMs: 100 },
    ...(macKey ? { macKey } : {}),
    failClosed: o.failClosed,
    ...(o.logger ? { logger: o.logger } : {}),
  });
  logger.on('error', (err: unknown) =>
    o.logger?.error({ err: { message: (err as Error)?.message } }, 'audit trail error'),
  );
  return { logger, macKey, isCritical: (t) => isCriticalEvent(t) };
}

export interface OpenManagerOptions {
  workerToken?: string | undefined;
  tokenFile?: string | undefined;
  workerId: string;
  audit: AuditLogger;
  backend?: 'auto' | 'cuda' | 'simulated' | DeviceBackend | undefined;
  reserveBytes?: number | undefined;
  maxModelBytes?: number | undefined;
  failClosed?: boolean | undefined;
  onFallback?: (reason: string) => void;
}

export async function openManager(o: OpenManagerOptions): Promise<VramManager> {
  return VramManager.open({
    ...(o.tokenFile !== undefined ? { tokenFile: o.tokenFile } : { workerToken: o.workerToken as string }),
    workerId: o.workerId,
    audit: o.audit,
    ...(o.backend !== undefined ? { backend: o.backend } : {}),
    ...(o.onFallback ? { backendOptions: { onFallback: o.onFallback } } : {}),
    ...(o.reserveBytes !== undefined ? { reserveBytes: o.reserveBytes } : {}),
    ...(o.maxModelBytes !== undefined ? { maxModelBytes: o.maxModelBytes } : {}),
    ...(o.failClosed !== undefined ? { failClosed: o.failClosed } : {}),
  });
}

/** Offline verification of a (closed) trail directory. */
export function verifyTrailDir(dir: string, macKey?: Uint8Array): Promise<VerifyReport> {
  return verifyTrail(dir, macKey ? { macKey } : {});
}
