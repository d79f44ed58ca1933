/**
 * Wiring: open storage (PostgreSQL when a URL is given, else PGlite in a data directory), run
 * migrations, load the collector's signing key, build the HTTP server and listen.
 */
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, loadPrivateKeyFile } from '@vramseal/audit';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { CollectorAuditSink } from './audit-sink.js';
import type { CollectorKeys } from './config.js';
import type { SqlClient } from './db/client.js';
import { PgClient } from './db/pg.js';
import { PgliteClient } from './db/pglite.js';
import { CollectorError } from './errors.js';
import { buildCollectorServer } from './server.js';
import { AuditStore, type MigrateReport, type StoreOptions } from './store.js';

export interface StorageOptions extends StoreOptions {
  /** PostgreSQL connection URL; when absent, PGlite is used. */
  databaseUrl?: string;
  /** PGlite data directory (created if missing); in memory when absent too. */
  dataDir?: string;
  /** pg pool size (default 10). */
  poolSize?: number;
}

/** Opens the storage and runs migrations. */
export async function openStore(o: StorageOptions): Promise<{ store: AuditStore; migration: MigrateReport }> {
  let client: SqlClient;
  if (o.databaseUrl) client = new PgClient({ connectionString: o.databaseUrl, max: o.poolSize ?? 10 });
  else {
    if (o.dataDir) mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
    client = await PgliteClient.open(o.dataDir ? join(o.dataDir, 'pglite') : undefined);
  }
  const store = new AuditStore(client, o);
  try {
    const migration = await store.migrate();
    return { store, migration };
  } catch (err) {
    await client.close().catch(() => {});
    throw err;
  }
}

/**
 * Loads the collector's Ed25519 signing key from `file`, creating it (mode 0600) when it does not
 * exist yet. Receipts stay verifiable across restarts only if this file is kept.
 */
export function loadOrCreateSigningKey(file: string): { key: KeyObject; created: boolean } {
  if (!existsSync(file)) {
    const k = generateSigningKey();
    writeFileSync(file, k.privateKeyPem, { mode: 0o600, flag: 'wx' });
    return { key: loadPrivateKeyFile(file), created: true };
  }
  return { key: loadPrivateKeyFile(file), created: false };
}

export interface StartCollectorOptions extends StorageOptions {
  keys: CollectorKeys;
  signingKey: KeyObject;
  audit: CollectorAuditSink;
  port?: number;
  host?: string;
  logger?: FastifyBaseLogger;
  serviceId?: string;
}

export interface RunningCollector {
  app: FastifyInstance;
  store: AuditStore;
  migration: MigrateReport;
  /** Base URL it listens on, e.g. http://127.0.0.1:8787 */
  url: string;
  close(): Promise<void>;
}

export async function startCollector(o: StartCollectorOptions): Promise<RunningCollector> {
  if (o.port !== undefined && (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535))
    throw new CollectorError('COLLECTOR_CONFIG', '--port must be an integer 0..65535');
  const { store, migration } = await openStore(o);
  const app = await buildCollectorServer({
    store,
    keys: o.keys,
    signingKey: o.signingKey,
    audit: o.audit,
    migration,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.serviceId ? { serviceId: o.serviceId } : {}),
  });
  try {
    await app.listen({ port: o.port ?? 0, host: o.host ?? '127.0.0.1' });
  } catch (err) {
    await store.client.close().catch(() => {});
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const host = (o.host ?? '127.0.0.1').includes(':') ? `[${o.host}]` : (o.host ?? '127.0.0.1');
  return {
    app,
    store,
    migration,
    url: `http://${host}:${port}`,
    close: async () => {
      await app.close();
      await store.client.close();
    },
  };
}
