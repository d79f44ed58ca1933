/**
 * `vramseal serve` — the residency daemon (HTTP API + metrics). See serve/daemon.ts for the wiring
 * and the README section "cli" for the API.
 */
import type { Command } from 'commander';
import { errorText, parseBytes, parseDuration, parseIntOption, UsageError } from '../output.js';
import { EXIT_USAGE } from '../program.js';
import { type DaemonConfig, runDaemon } from '../serve/daemon.js';

interface ServeFlags {
  modelsDir?: string;
  device: string;
  host: string;
  port: string;
  tokenFile?: string;
  auditDir?: string;
  auditKeyFile?: string;
  workerTokenFile?: string;
  workerId?: string;
  verifyInterval: string;
  executeCheck: string;
  sampleChunks: string;
  backend?: string;
  reserve?: string;
  maxModelBytes?: string;
  rateLimit: string;
  rateWindow: string;
  logLevel: string;
  tlogKey?: string;
  tlogWitnessDir?: string;
  checkpointEvery?: string;
  checkpointInterval?: string;
  collectorWitnessKey?: string;
  tlogRebuild?: boolean;
}

export const DEFAULT_PORT = 8477;

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the residency daemon: seal models from --models-dir, gate inference with /v1/execute')
    .requiredOption('--models-dir <dir>', 'only model files under this directory can be sealed')
    .requiredOption(
      '--token-file <file>',
      'bearer tokens, one "<token> <role>" per line (roles: reader, operator, admin; mode 0600)',
    )
    .requiredOption('--audit-dir <dir>', 'audit trail directory (created 0700 when missing)')
    .option(
      '--audit-key-file <file>',
      'MAC key for the audit trail (hex or base64:, mode 0600); default: $VRAMSEAL_AUDIT_KEY if set, else no MAC',
    )
    .option(
      '--worker-token-file <file>',
      'worker token the seal key is derived from; default: $VRAMSEAL_WORKER_TOKEN, else a random per-process token',
    )
    .option('--worker-id <id>', 'worker id / audit service id (default: vramseal-<hostname>)')
    .option('--device <n>', 'default device for seals', '0')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'listen port (0: pick a free one)', String(DEFAULT_PORT))
    .option(
      '--verify-interval <duration>',
      'full background verification of every shard (e.g. 30s, 5m; 0 = off)',
      '5m',
    )
    .option('--execute-check <mode>', 'what POST /v1/execute verifies: sample | full', 'sample')
    .option('--sample-chunks <n>', 'chunks spot-checked per sample verification', '8')
    .option('--backend <kind>', 'auto | cuda | simulated (default: $VRAMSEAL_BACKEND or auto)')
    .option('--reserve <bytes>', 'device memory never handed to shards (e.g. 1GiB)')
    .option('--max-model-bytes <bytes>', 'largest shard accepted (default 100GiB)')
    .option('--rate-limit <n>', 'requests per client IP per window', '600')
    .option('--rate-window <duration>', 'rate-limit window', '60s')
    .option('--log-level <level>', 'pino level: fatal, error, warn, info, debug', 'info')
    // transparency (issue 8): signed checkpoints of the daemon's trail
    .option(
      '--tlog-key <file>',
      'sign transparency checkpoints of the trail with this key (from audit keygen, mode 0600); default: $VRAMSEAL_TLOG_KEY_FILE',
    )
    .option(
      '--tlog-witness-dir <dir>',
      'also append each checkpoint to <dir>/<origin>.checkpoints (with --tlog-key)',
    )
    .option(
      '--checkpoint-every <n>',
      'checkpoint after this many new records (with --tlog-key; default 10000)',
    )
    .option(
      '--checkpoint-interval <duration>',
      'checkpoint this often when the trail grew (with --tlog-key; default 30s; 0 = only by count and on exit)',
    )
    .option(
      '--tlog-rebuild',
      'discard the stored Merkle tree (<audit-dir>/tlog) and rebuild it from the trail (after TLOG_CORRUPT)',
    )
    .option(
      '--collector-witness-key <key>',
      "platform mode: the collector's witness key (C2SP, base64 or PEM) to check cosignatures; default: $VRAMSEAL_COLLECTOR_WITNESS_KEY, else $VRAMSEAL_COLLECTOR_PUBLIC_KEY",
    )
    .action(async (f: ServeFlags) => {
      let cfg: DaemonConfig;
      try {
        cfg = toConfig(f);
      } catch (err) {
        process.stderr.write(`vramseal serve: ${errorText(err)}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      process.exitCode = await runDaemon(cfg);
    });
}

function toConfig(f: ServeFlags): DaemonConfig {
  const executeCheck = f.executeCheck;
  if (executeCheck !== 'sample' && executeCheck !== 'full')
    throw new UsageError(`--execute-check: must be sample or full, got ${JSON.stringify(executeCheck)}`);
  const backend = f.backend;
  if (backend !== undefined && backend !== 'auto' && backend !== 'cuda' && backend !== 'simulated')
    throw new UsageError(`--backend: must be auto, cuda or simulated, got ${JSON.stringify(backend)}`);
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(f.logLevel))
    throw new UsageError(`--log-level: unknown level ${JSON.stringify(f.logLevel)}`);
  const windowMs = parseDuration('--rate-window', f.rateWindow);
  if (windowMs <= 0) throw new UsageError('--rate-window: must be > 0');
  const tlogKey = f.tlogKey ?? (process.env.VRAMSEAL_TLOG_KEY_FILE || undefined);
  if (!tlogKey) {
    for (const [flag, v] of [
      ['--tlog-witness-dir', f.tlogWitnessDir],
      ['--checkpoint-every', f.checkpointEvery],
      ['--checkpoint-interval', f.checkpointInterval],
      ['--collector-witness-key', f.collectorWitnessKey],
      ['--tlog-rebuild', f.tlogRebuild],
    ] as const)
      if (v !== undefined) throw new UsageError(`${flag}: needs --tlog-key F (or VRAMSEAL_TLOG_KEY_FILE)`);
  }
  return {
    modelsDir: f.modelsDir as string,
    tokenFile: f.tokenFile as string,
    auditDir: f.auditDir as string,
    auditKeyFile: f.auditKeyFile,
    workerTokenFile: f.workerTokenFile,
    workerId: f.workerId,
    device: parseIntOption('--device', f.device, 0, 65535),
    host: f.host,
    port: parseIntOption('--port', f.port, 0, 65535),
    verifyIntervalMs: parseDuration('--verify-interval', f.verifyInterval),
    executeCheck,
    sampleChunks: parseIntOption('--sample-chunks', f.sampleChunks, 1, 1_000_000),
    backend: backend as DaemonConfig['backend'],
    reserveBytes: f.reserve === undefined ? undefined : parseBytes('--reserve', f.reserve),
    maxModelBytes:
      f.maxModelBytes === undefined ? undefined : parseBytes('--max-model-bytes', f.maxModelBytes),
    rateLimit: { max: parseIntOption('--rate-limit', f.rateLimit, 1), windowMs },
    logLevel: f.logLevel,
    transparency: tlogKey
      ? {
          keyFile: tlogKey,
          witnessDir: f.tlogWitnessDir,
          everyRecords:
            f.checkpointEvery === undefined
              ? undefined
              : parseIntOption('--checkpoint-every', f.checkpointEvery, 1, 1_000_000_000),
          everyMs:
            f.checkpointInterval === undefined
              ? undefined
              : parseDuration('--checkpoint-interval', f.checkpointInterval),
          collectorWitnessKey:
            f.collectorWitnessKey ?? (process.env.VRAMSEAL_COLLECTOR_WITNESS_KEY || undefined),
          rebuild: f.tlogRebuild === true,
        }
      : undefined,
  };
}
