/**
 * `vramseal collector` — run the central audit collector (platform mode):
 *
 *   vramseal collector (--database-url URL | --data-dir D) --port P --keys providers.json
 *   vramseal collector keygen --out provider.pem      # an Ed25519 key pair for a provider (or the collector)
 *
 * Storage: PostgreSQL at --database-url, else PGlite in --data-dir. The collector signs receipts with
 * --signing-key (default <data-dir>/collector-ed25519.pem, created 0600 when missing) and records
 * admin queries and rejected batches in its own audit trail (--trail-dir, default <data-dir>/trail).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AuditLogger,
  generateSigningKey,
  keyId,
  loadMacKey,
  publicKeyToBase64,
  SignerKey,
} from '@vramseal/audit';
import { loadKeysFile, loadOrCreateSigningKey, startCollector } from '@vramseal/collector';
import type { Command } from 'commander';
import pino from 'pino';
import { errorText, parseIntOption, UsageError } from '../output.js';
import { EXIT_OK, EXIT_USAGE } from '../program.js';

interface CollectorFlags {
  databaseUrl?: string;
  dataDir?: string;
  host: string;
  port: string;
  keys?: string;
  signingKey?: string;
  trailDir?: string;
  trailKeyFile?: string;
  schema?: string;
  logLevel: string;
}

export const DEFAULT_COLLECTOR_PORT = 8787;

export function register(program: Command): void {
  const cmd = program
    .command('collector')
    .description(
      'run the central audit collector: stores providers’ signed trail batches in PostgreSQL (or PGlite)',
    )
    .option('--database-url <url>', 'PostgreSQL connection URL (e.g. postgres://user@host:5432/db)')
    .option(
      '--data-dir <dir>',
      'PGlite database (when no --database-url), default signing key and trail location',
    )
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'listen port (0: pick a free one)', String(DEFAULT_COLLECTOR_PORT))
    .option('--keys <file>', 'providers.json: provider public keys and query-API token hashes (required)')
    .option('--signing-key <file>', 'collector Ed25519 key (PKCS#8 PEM, 0600; created when missing)')
    .option('--trail-dir <dir>', "the collector's own audit trail (default <data-dir>/trail)")
    .option(
      '--trail-key-file <file>',
      "MAC key for the collector's own trail (0600); default: $VRAMSEAL_AUDIT_KEY if set",
    )
    .option('--schema <name>', 'PostgreSQL schema for the tables', 'vramseal_collector')
    .option('--log-level <level>', 'pino level: fatal, error, warn, info, debug', 'info')
    .action(async (f: CollectorFlags) => {
      process.exitCode = await runCollector(f);
    });
  cmd
    .command('keygen')
    .description('generate an Ed25519 key pair: private key to --out (0600), public key (base64) to stdout')
    .requiredOption('--out <file>', 'where to write the private key (must not exist)')
    .action((o: { out: string }) => {
      const k = generateSigningKey();
      try {
        writeFileSync(o.out, k.privateKeyPem, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        process.stderr.write(`vramseal collector keygen: cannot create ${o.out}: ${errorText(err)}\n`);
        process.exitCode = EXIT_USAGE;
        return;
      }
      process.stdout.write(`${JSON.stringify({ public_key: k.publicKey, key_id: k.keyId })}\n`);
      process.exitCode = EXIT_OK;
    });
}

async function runCollector(f: CollectorFlags): Promise<number> {
  let port: number;
  let signingKeyFile: string;
  let trailDir: string;
  try {
    if (!f.keys) throw new UsageError('--keys providers.json is required');
    if (!f.databaseUrl && !f.dataDir) throw new UsageError('give --database-url URL or --data-dir DIR');
    port = parseIntOption('--port', f.port, 0, 65535);
    const sk = f.signingKey ?? (f.dataDir ? join(f.dataDir, 'collector-ed25519.pem') : undefined);
    if (!sk)
      throw new UsageError('--signing-key FILE is required with --database-url unless --data-dir is given');
    signingKeyFile = sk;
    const td = f.trailDir ?? (f.dataDir ? join(f.dataDir, 'trail') : undefined);
    if (!td)
      throw new UsageError('--trail-dir DIR is required with --database-url unless --data-dir is given');
    trailDir = td;
  } catch (err) {
    process.stderr.write(`vramseal collector: ${errorText(err)}\n`);
    return EXIT_USAGE;
  }
  const log = pino({ level: f.logLevel, base: { svc: 'vramseal-collector' } }, pino.destination(2));
  let audit: AuditLogger | undefined;
  try {
    if (f.dataDir) {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(f.dataDir, { recursive: true, mode: 0o700 });
    }
    const keys = loadKeysFile(f.keys as string);
    const { key, created } = loadOrCreateSigningKey(signingKeyFile);
    const macKey = f.trailKeyFile
      ? loadMacKey({ file: f.trailKeyFile })
      : process.env.VRAMSEAL_AUDIT_KEY
        ? loadMacKey({ env: 'VRAMSEAL_AUDIT_KEY' })
        : undefined;
    audit = await AuditLogger.open({
      mode: 'local',
      dir: trailDir,
      serviceId: 'vramseal-collector',
      flush: { mode: 'hybrid', maxEvents: 256, maxDelayMs: 100 },
      failClosed: true,
      logger: log,
      ...(macKey ? { macKey } : {}),
    });
    const c = await startCollector({
      keys,
      signingKey: key,
      audit,
      port,
      host: f.host,
      logger: log,
      ...(f.databaseUrl ? { databaseUrl: f.databaseUrl } : { dataDir: f.dataDir as string }),
      ...(f.schema ? { schema: f.schema } : {}),
    });
    const info = {
      url: c.url,
      engine: c.store.client.engine,
      schema_version: c.migration.schemaVersion,
      migrations_applied: c.migration.applied,
      append_only: c.migration.privileges === 'enforced' ? 'triggers + privileges' : 'triggers only',
      ...(c.migration.privilegesNote ? { note: c.migration.privilegesNote } : {}),
      providers: keys.providers.size,
      tokens: keys.tokens.size,
      key_id: keyId(key),
      public_key: publicKeyToBase64(key),
      // C2SP verifier key of its checkpoint cosignatures (GET /v1/providers/:id/checkpoints/latest)
      witness_key: new SignerKey('vramseal-collector', key).verifier.toString(),
      witnessed_providers: keys.checkpoints?.size ?? 0,
      signing_key_created: created,
      trail: trailDir,
    };
    process.stdout.write(`${JSON.stringify(info)}\n`);
    // SIGHUP: reload providers.json (new providers, rotated keys, tokens) without a restart.
    const reload = () => {
      try {
        const k = loadKeysFile(f.keys as string);
        keys.providers = k.providers;
        keys.tokens = k.tokens;
        keys.checkpoints = k.checkpoints;
        log.warn({ providers: k.providers.size, tokens: k.tokens.size }, 'keys file reloaded');
      } catch (err) {
        log.error({ err: errorText(err) }, 'keys file reload failed; keeping the previous keys');
      }
    };
    process.on('SIGHUP', reload);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    process.off('SIGHUP', reload);
    log.info('shutting down');
    await c.close();
    await audit.close();
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`vramseal collector: ${errorText(err)}\n`);
    await audit?.close().catch(() => {});
    return EXIT_USAGE;
  }
}
