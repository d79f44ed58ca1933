/** {@link SqlClient} over a real PostgreSQL server through a `pg` connection pool. */
import pg from 'pg';
import { quoteIdent, type SqlClient, type SqlExecutor, type SqlResult } from './client.js';

/** bigint (int8, OID 20) columns come back as JS numbers, as PGlite returns them: seqs and ids stay below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export interface PgClientOptions {
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
}

export class PgClient implements SqlClient {
  readonly engine = 'postgres' as const;
  #pool: pg.Pool;
  #role: string | undefined;
  #initialized = new WeakSet<pg.PoolClient>();

  constructor(opts: PgClientOptions) {
    this.#pool = new pg.Pool({ connectionString: opts.connectionString, max: opts.max ?? 10, types });
    // An idle client's error (server restart) must not crash the process; the next query reconnects.
    this.#pool.on('error', () => {});
  }

  async #checkout(): Promise<pg.PoolClient> {
    const c = await this.#pool.connect();
    if (this.#role !== undefined && !this.#initialized.has(c)) {
      try {
        await c.query(`SET ROLE ${quoteIdent(this.#role)}`);
      } catch (err) {
        c.release(true);
        throw err;
      }
      this.#initialized.add(c);
    }
    return c;
  }

  async query<T>(sql: string, params?: unknown[]): Promise<SqlResult<T>> {
    const c = await this.#checkout();
    try {
      const r = await c.query(sql, params as unknown[]);
      return { rows: r.rows as T[] };
    } finally {
      c.release();
    }
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const c = await this.#checkout();
    let broken = false;
    try {
      await c.query('BEGIN');
      const tx: SqlExecutor = {
        query: async <R>(sql: string, params?: unknown[]) => ({
          rows: (await c.query(sql, params as unknown[])).rows as R[],
        }),
        exec: async (sql: string) => {
          await c.query(sql);
        },
      };
      const out = await fn(tx);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      try {
        await c.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      c.release(broken);
    }
  }

  async exec(sql: string): Promise<void> {
    const c = await this.#pool.connect();
    try {
      await c.query(sql);
    } finally {
      c.release();
    }
  }

  async useRole(role: string): Promise<void> {
    this.#role = role;
    // Connections opened before (migrations) run as the owner: drop them.
    this.#initialized = new WeakSet();
    const idle: pg.PoolClient[] = [];
    for (let i = 0; i < this.#pool.idleCount; i++) idle.push(await this.#pool.connect());
    for (const c of idle) c.release(true);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
