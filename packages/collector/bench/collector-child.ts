/**
 * The collector process of the load benchmark (run by load.ts): starts a collector from the JSON
 * config in argv[2], prints `{"url": ...}` on stdout, runs until SIGTERM.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLogger, parsePrivateKey } from '@vramseal/audit';
import pino from 'pino';
import { parseKeys } from '../src/config.js';
import { startCollector } from '../src/index.js';

const cfg = JSON.parse(process.argv[2] as string) as {
  databaseUrl?: string;
  dataDir?: string;
  schema?: string;
  poolSize: number;
  keys: unknown;
  signingKeyPem: string;
};
const trail = mkdtempSync(join(tmpdir(), 'vramseal-bench-collector-trail-'));
const log = pino({ level: 'warn' }, pino.destination(2));
const audit = await AuditLogger.open({
  mode: 'local',
  dir: join(trail, 't'),
  serviceId: 'bench-collector',
  logger: log,
});
const c = await startCollector({
  ...(cfg.databaseUrl ? { databaseUrl: cfg.databaseUrl } : { dataDir: cfg.dataDir as string }),
  ...(cfg.schema ? { schema: cfg.schema } : {}),
  poolSize: cfg.poolSize,
  keys: parseKeys(cfg.keys),
  signingKey: parsePrivateKey(cfg.signingKeyPem),
  audit,
  port: 0,
});
process.stdout.write(
  `${JSON.stringify({ url: c.url, engine: c.store.client.engine, privileges: c.migration.privileges })}\n`,
);
process.on('SIGTERM', () => {
  void (async () => {
    await c.close();
    await audit.close();
    rmSync(trail, { recursive: true, force: true });
    process.exit(0);
  })();
});
