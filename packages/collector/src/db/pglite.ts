/**
 * {@link SqlClient} over PGlite: PostgreSQL (WASM) embedded in this process, persisted in a data
 * directory (or in memory when none is given). One connection, so statements are serialized;
 * PGlite's own transaction() holds it exclusively for the transaction's duration.
 */
import { PGlite } from '@electric-sql/pglite';
import { quoteIdent, type SqlClient, type SqlExecutor, type SqlResult } from './client.js';

export class PgliteClient implements SqlClient {
  readonly engine = 'pglite' as const;
  #db: PGlite;

  private constructor(db: PGlite) {
    this.#db = db;
  }

  /** Opens (creating if needed) a PGlite database in `dataDir`, or in memory when omitted. */
  static async open(dataDir?: string): Promise<PgliteClient> {
    const db = dataDir === undefined ? await PGlite.create() : await PGlite.create({ dataDir });
    return new PgliteClient(db);
  }

  async query<T>(sql: string, params?: unknown[]): Promise<SqlResult<T>> {
    const r = await this.#db.query<T>(sql, params);
    return { rows: r.rows };
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.#db.transaction(async (t) =>
      fn({
        query: async <R>(sql: string, params?: unknown[]) => ({ rows: (await t.query<R>(sql, params)).rows }),
        exec: async (sql: string) => {
          await t.exec(sql);
        },
      }),
    );
  }

  async exec(sql: string): Promise<void> {
    await this.#db.exec(sql);
  }

  async useRole(role: string): Promise<void> {
    await this.#db.exec(`SET ROLE ${quoteIdent(role)}`);
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}
