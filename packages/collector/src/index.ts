/** @vramseal/collector — the central audit collector of platform mode (see SCHEMA.md). */
export const COLLECTOR_SCHEMA_VERSION = 2;
export type { CollectorAuditSink } from './audit-sink.js';
export * from './collector.js';
export * from './compact-range.js';
export * from './config.js';
export type { SqlClient, SqlExecutor, SqlResult } from './db/client.js';
export { PgClient } from './db/pg.js';
export { PgliteClient } from './db/pglite.js';
export * from './errors.js';
export * from './event-limiter.js';
export * from './ingest.js';
export * from './server.js';
export * from './store.js';
export * from './witness.js';
