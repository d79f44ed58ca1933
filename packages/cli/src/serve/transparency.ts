/**
 * Signed checkpoints for the daemon's trail (issue 8 wired into `vramseal serve`): with `--tlog-key F`
 * (or `$VRAMSEAL_TLOG_KEY_FILE`) the daemon attaches {@link Transparency} to its AuditLogger right after
 * the trail opens, so an Ed25519-signed C2SP checkpoint is appended to `<audit-dir>/checkpoints` every N
 * records, every T ms (when the trail grew) and when the trail closes (SIGTERM). In platform mode
 * (`$VRAMSEAL_PLATFORM_URL`) each checkpoint is also posted to the collector's witness
 * (`attachCheckpointWitness`), once the collector acknowledged the records it commits to.
 *
 * Shutdown order (serve/daemon.ts): close the trail (Transparency writes the final checkpoint
 * synchronously on the logger's 'close'), then stop the witness client. A checkpoint not witnessed by
 * then (its records not yet acknowledged) is submitted again at the next start: the witness client
 * resubmits the trail's latest checkpoint on attach.
 */
import {
  type AckSource,
  type AuditLogger,
  attachCheckpointWitness,
  type CheckpointWitnessClient,
  loadSignerKey,
  type PlatformOptions,
  parsePublicKey,
  publicKeyToBase64,
  type SignerKey,
  shipperOf,
  Transparency,
  VerifierKey,
} from '@vramseal/audit';
import type { Logger } from 'pino';

/** The collector's witness key name when it runs from `vramseal collector` (packages/collector/src/server.ts). */
export const COLLECTOR_WITNESS_NAME = 'vramseal-collector';

/** C2SP verifier key: `<name>+<8 hex key id>+<base64>`. */
const C2SP_KEY = /^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/;

/**
 * The collector's checkpoint-witness key from what an operator has at hand: the C2SP verifier key the
 * collector prints (`witness_key`), or its receipt public key (base64 raw / PEM) — the same Ed25519 key,
 * named `vramseal-collector` as `vramseal collector` does.
 */
export function parseCollectorWitnessKey(text: string): VerifierKey {
  const s = text.trim();
  if (C2SP_KEY.test(s)) return VerifierKey.parse(s);
  const raw = Buffer.from(publicKeyToBase64(parsePublicKey(s)), 'base64');
  return new VerifierKey(COLLECTOR_WITNESS_NAME, raw);
}

/** The receipt public key (base64 raw) of a collector key given in any form {@link parseCollectorWitnessKey} takes. */
export function collectorReceiptKey(text: string): string {
  const s = text.trim();
  return C2SP_KEY.test(s) ? VerifierKey.parse(s).publicKey.toString('base64') : s;
}

export interface DaemonTransparencyConfig {
  /** Signer key file written by `vramseal audit keygen` (mode 0600). */
  keyFile: string;
  /** Also append each checkpoint to `<witnessDir>/<origin>.checkpoints`. */
  witnessDir?: string | undefined;
  /** Checkpoint after this many records (Transparency default 10 000). */
  everyRecords?: number | undefined;
  /** Checkpoint this often when the trail grew (ms; Transparency default 30 000; 0 = only by count/close). */
  everyMs?: number | undefined;
  /** Collector witness key (C2SP, base64 or PEM); default the platform options' collector public key. */
  collectorWitnessKey?: string | undefined;
  /** Discard the stored tree (`<audit-dir>/tlog/`) and rebuild it from the trail (`--tlog-rebuild`). */
  rebuild?: boolean | undefined;
}

/**
 * What to tell the operator when the stored tree cannot be used: a damaged `tlog/` (TLOG_CORRUPT) or a
 * trail that no longer matches it (TLOG_TRAIL_MISMATCH — possibly a changed trail: check it first).
 */
export function transparencyStartHint(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  if (code !== 'TLOG_CORRUPT' && code !== 'TLOG_TRAIL_MISMATCH') return undefined;
  return 'check the trail against its last checkpoint (vramseal audit verify <audit-dir> --checkpoint <audit-dir>/checkpoints --public-key <pub>), then restart with --tlog-rebuild to rebuild the tree from the trail';
}

/** Loads the signer key (fail fast, before the trail opens). Throws a TlogError naming the file. */
export function loadDaemonSigner(cfg: DaemonTransparencyConfig): SignerKey {
  return loadSignerKey(cfg.keyFile);
}

export interface DaemonTransparency {
  readonly transparency: Transparency;
  readonly witness: CheckpointWitnessClient | undefined;
  /** After the trail closed: stops the witness client and logs what it witnessed. */
  stop(): Promise<void>;
}

/** Attaches checkpoints (and, in platform mode, the collector witness) to the daemon's open trail. */
export async function attachDaemonTransparency(
  trail: AuditLogger,
  signer: SignerKey,
  cfg: DaemonTransparencyConfig,
  ctx: { platform?: PlatformOptions | undefined; logger: Logger },
): Promise<DaemonTransparency> {
  const { logger } = ctx;
  const tl = await Transparency.attach(trail, {
    signer,
    ...(cfg.witnessDir !== undefined ? { witnessDir: cfg.witnessDir } : {}),
    ...(cfg.everyRecords !== undefined ? { everyRecords: cfg.everyRecords } : {}),
    ...(cfg.everyMs !== undefined ? { everyMs: cfg.everyMs } : {}),
    ...(cfg.rebuild ? { rebuild: true } : {}),
    logger,
  });
  tl.on('error', (err: unknown) =>
    logger.error({ err: { message: (err as Error)?.message } }, 'transparency checkpoint failed'),
  );
  tl.on('checkpoint', (info: { size: number; time: string }) =>
    logger.info({ tree_size: info.size, time: info.time }, 'transparency checkpoint signed'),
  );

  let witness: CheckpointWitnessClient | undefined;
  const shipper = shipperOf(trail);
  if (shipper) {
    const keyText =
      cfg.collectorWitnessKey ??
      (typeof ctx.platform?.collectorPublicKey === 'string' ? ctx.platform.collectorPublicKey : undefined);
    const witnessKey = keyText === undefined ? undefined : parseCollectorWitnessKey(keyText);
    // The Shipper emits 'ack' (an EventEmitter, typed loosely): it is the AckSource the client waits on.
    const acks: AckSource = shipper;
    witness = attachCheckpointWitness(tl, { shipper: acks, ...(witnessKey ? { witnessKey } : {}) });
    witness.on('witnessed', (x: { size: number }) =>
      logger.info({ tree_size: x.size }, 'checkpoint witnessed by the collector'),
    );
    // A refusal is final for that checkpoint: the collector holds another history, or a key is wrong.
    witness.on('error', (err: unknown) =>
      logger.error({ err: { message: (err as Error)?.message } }, 'collector refused a checkpoint'),
    );
    if (!witnessKey)
      logger.warn(
        'checkpoint witness: no collector key (VRAMSEAL_COLLECTOR_PUBLIC_KEY): cosignatures are not checked',
      );
  }
  logger.info(
    {
      origin: tl.origin,
      verifier_key: signer.verifier.toString(), // public (C2SP verifier key), safe to log
      tree_size: tl.size,
      caught_up: tl.caughtUp,
      witness_dir: cfg.witnessDir ?? null,
      collector_witness: witness ? witness.url : null,
    },
    'transparency attached',
  );
  return {
    transparency: tl,
    witness,
    async stop() {
      if (!witness) return;
      const s = witness.status();
      await witness.stop();
      logger.info(
        { witnessed_size: s.witnessedSize, pending: s.pending, rejected: s.rejected },
        'checkpoint witness stopped (a pending checkpoint is resubmitted at the next start)',
      );
    },
  };
}
