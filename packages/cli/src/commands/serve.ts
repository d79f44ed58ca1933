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
  };
}
