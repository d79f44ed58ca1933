/**
 * The SQL layer under the store: one small interface, two implementations that run the SAME SQL —
 * PostgreSQL through `pg` (a pool) and PGlite (PostgreSQL compiled to WASM, one in-process
 * connection). Everything above this file is engine-agnostic.
 */
export interface SqlResult<T> {
  rows: T[];
}

export interface SqlExecutor {
  /** One statement with `$n` parameters. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<SqlResult<T>>;
  /** A script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface SqlClient extends SqlExecutor {
  readonly engine: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction (BEGIN … COMMIT, ROLLBACK on throw) on one connection. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /**
   * From now on, run application statements as `role` (SET ROLE on each connection): the role that
   * holds only SELECT/INSERT, so UPDATE/DELETE/TRUNCATE fail by privilege as well as by trigger.
   */
  useRole(role: string): Promise<void>;
  close(): Promise<void>;
}

/** Quotes an SQL identifier (PostgreSQL rules: double quotes, "" escapes). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
