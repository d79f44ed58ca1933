/**
 * The collector's storage layer: append-only tables of provider records and batches (SCHEMA.md),
 * on any {@link SqlClient} — the same SQL on PostgreSQL and PGlite.
 *
 * Appends for one provider are serialized by a transaction-scoped advisory lock on the provider id
 * (and, as a backstop, the primary key (provider_id, seq) refuses a second row at the same seq):
 * two concurrent batches can never both be accepted at the same position.
 */
import { GENESIS_HASH, type Receipt } from '@vramseal/audit';
import { quoteIdent, type SqlClient, type SqlExecutor } from './db/client.js';
import { GRANTS_SQL, MIGRATIONS } from './db/migrations.js';
import { CollectorError } from './errors.js';
import type { ParsedRecord } from './ingest.js';

export const DEFAULT_SCHEMA = 'vramseal_collector';
export const DEFAULT_APP_ROLE = 'vramseal_collector_app';
const IDENT_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export interface StoreOptions {
  /** PostgreSQL schema holding the tables (default `vramseal_collector`). */
  schema?: string;
  /**
   * Role the application runs as after migrations (SELECT + INSERT only). Created if missing when the
   * connecting user may; `false` to skip (then only the triggers enforce append-only).
   */
  appRole?: string | false;
}

export interface MigrateReport {
  applied: number[];
  schemaVersion: number;
  /** `enforced`: the app runs as a role without UPDATE/DELETE/TRUNCATE; `triggers-only` otherwise. */
  privileges: 'enforced' | 'triggers-only';
  privilegesNote?: string;
}

export interface Head {
  lastSeq: number;
  headHash: string;
  receipt: Receipt | undefined;
}

export interface AppendInput {
  providerId: string;
  firstSeq: number;
  lastSeq: number;
  prevHash: string;
  lastHash: string;
  sentAt: string;
  keyId: string;
  signature: string;
  records: ParsedRecord[];
}

export type AppendOutcome =
  | { kind: 'accepted'; stored: number; duplicates: number; receipt: Receipt }
  | {
      kind: 'duplicate';
      duplicates: number;
      receipt: Receipt | undefined;
      head: { lastSeq: number; headHash: string };
    }
  | { kind: 'gap'; expectedSeq: number; expectedHash: string }
  | {
      kind: 'fork';
      seq: number;
      storedHash: string;
      batchHash: string;
      expectedSeq: number;
      expectedHash: string;
    };

export interface EventQuery {
  providerId?: string;
  types?: string[];
  actor?: string;
  customerId?: string;
  shardId?: string;
  /** RFC 3339; inclusive. */
  since?: string;
  /** RFC 3339; exclusive. */
  until?: string;
  /** Return rows with id > afterId (cursor). */
  afterId?: number;
  limit: number;
}

export interface StoredEvent {
  id: number;
  provider_id: string;
  seq: number;
  line: string;
}

export class AuditStore {
  readonly client: SqlClient;
  readonly schema: string;
  #s: string;
  #appRole: string | false;

  constructor(client: SqlClient, opts: StoreOptions = {}) {
    const schema = opts.schema ?? DEFAULT_SCHEMA;
    if (!IDENT_RE.test(schema))
      throw new CollectorError('COLLECTOR_CONFIG', `schema name must match ${IDENT_RE.source}`);
    const role = opts.appRole ?? DEFAULT_APP_ROLE;
    if (role !== false && !IDENT_RE.test(role))
      throw new CollectorError('COLLECTOR_CONFIG', `app role name must match ${IDENT_RE.source}`);
    this.client = client;
    this.schema = schema;
    this.#s = quoteIdent(schema);
    this.#appRole = role;
  }

  /** Applies pending migrations, then (re)applies the app role's privileges and switches to it. */
  async migrate(): Promise<MigrateReport> {
    const s = this.#s;
    let applied: number[];
    try {
      applied = await this.client.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(hashtext('vramseal-collector'), hashtext('migrate'))`);
        await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (
  version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());`);
        const done = new Set(
          (await tx.query<{ version: number }>(`SELECT version FROM ${s}.schema_migrations`)).rows.map(
            (r) => r.version,
          ),
        );
        const now: number[] = [];
        for (const m of MIGRATIONS) {
          if (done.has(m.version)) continue;
          await tx.exec(m.sql.replaceAll('{s}', s));
          await tx.query(`INSERT INTO ${s}.schema_migrations (version, name) VALUES ($1, $2)`, [
            m.version,
            m.name,
          ]);
          now.push(m.version);
        }
        return now;
      });
    } catch (err) {
      throw new CollectorError('COLLECTOR_MIGRATION', `migration failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const report: MigrateReport = {
      applied,
      schemaVersion: MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0,
      privileges: 'triggers-only',
    };
    if (this.#appRole === false) {
      report.privilegesNote = 'app role disabled by configuration';
      return report;
    }
    const r = quoteIdent(this.#appRole);
    const roleName = this.#appRole;
    const setup = () =>
      this.client.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(hashtext('vramseal-collector'), hashtext('migrate'))`);
        const exists = await tx.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [roleName]);
        if (exists.rows.length === 0) await tx.exec(`CREATE ROLE ${r} NOLOGIN`);
        await tx.exec(GRANTS_SQL.replaceAll('{s}', s).replaceAll('{r}', r));
        const member = await tx.query(`SELECT pg_has_role(current_user, $1, 'MEMBER') AS m`, [roleName]);
        if (!(member.rows[0] as { m: boolean }).m) await tx.exec(`GRANT ${r} TO CURRENT_USER`);
      });
    // Roles are cluster-wide while the advisory lock is per database: a collector of another database
    // may create or grant the role at the same moment ("duplicate", "tuple concurrently updated").
    // Such a race resolves on a second attempt; a lack of privilege does not.
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await setup();
        await this.client.useRole(this.#appRole);
        report.privileges = 'enforced';
        return report;
      } catch (err) {
        lastErr = err;
        const code = (err as { code?: string }).code;
        if (code === '42501') break; // insufficient_privilege: no point retrying
        await new Promise((res) => setTimeout(res, 50 * (attempt + 1)));
      }
    }
    report.privilegesNote = `could not set up role ${this.#appRole}: ${(lastErr as Error).message}; append-only is enforced by triggers only`;
    return report;
  }

  async #head(q: SqlExecutor, providerId: string): Promise<{ lastSeq: number; headHash: string }> {
    const r = await q.query<{ seq: number; hash: string }>(
      `SELECT seq, hash FROM ${this.#s}.records WHERE provider_id = $1 ORDER BY seq DESC LIMIT 1`,
      [providerId],
    );
    const row = r.rows[0];
    return row ? { lastSeq: Number(row.seq), headHash: row.hash } : { lastSeq: 0, headHash: GENESIS_HASH };
  }

  /** The provider's last stored seq and hash and the receipt issued for it. */
  async head(providerId: string): Promise<Head> {
    const h = await this.#head(this.client, providerId);
    const r = await this.client.query<{ receipt: Receipt }>(
      `SELECT receipt FROM ${this.#s}.batches WHERE provider_id = $1 ORDER BY last_seq DESC LIMIT 1`,
      [providerId],
    );
    const receipt = r.rows[0]?.receipt;
    return { ...h, receipt: receipt && receipt.last_seq === h.lastSeq ? receipt : undefined };
  }

  /**
   * Appends a verified batch in one transaction, or explains why not (duplicate / gap / fork).
   * `makeReceipt` is called inside the transaction for the new head; its receipt is stored with the batch.
   */
  async append(
    b: AppendInput,
    makeReceipt: (lastSeq: number, headHash: string) => Receipt,
  ): Promise<AppendOutcome> {
    const s = this.#s;
    return this.client.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext('vramseal-provider'), hashtext($1))`, [
        b.providerId,
      ]);
      const head = await this.#head(tx, b.providerId);
      if (b.firstSeq > head.lastSeq + 1)
        return { kind: 'gap', expectedSeq: head.lastSeq + 1, expectedHash: head.headHash } as const;
      // Records the collector already holds must be identical (same hash ⇒ same chain up to there).
      let duplicates = 0;
      if (b.firstSeq <= head.lastSeq) {
        const upTo = Math.min(b.lastSeq, head.lastSeq);
        const stored = await tx.query<{ seq: number; hash: string }>(
          `SELECT seq, hash FROM ${s}.records WHERE provider_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq`,
          [b.providerId, b.firstSeq, upTo],
        );
        for (const row of stored.rows) {
          const rec = b.records[Number(row.seq) - b.firstSeq] as ParsedRecord;
          if (rec.hash !== row.hash)
            return {
              kind: 'fork',
              seq: rec.seq,
              storedHash: row.hash,
              batchHash: rec.hash,
              expectedSeq: head.lastSeq + 1,
              expectedHash: head.headHash,
            } as const;
          duplicates++;
        }
        if (duplicates !== upTo - b.firstSeq + 1)
          throw new CollectorError(
            'COLLECTOR_STORAGE',
            `provider ${b.providerId}: stored records are not contiguous`,
          );
      }
      const fresh = b.records.slice(duplicates);
      const first = fresh[0];
      if (!first) {
        const r = await tx.query<{ receipt: Receipt }>(
          `SELECT receipt FROM ${s}.batches WHERE provider_id = $1 ORDER BY last_seq DESC LIMIT 1`,
          [b.providerId],
        );
        return { kind: 'duplicate', duplicates, receipt: r.rows[0]?.receipt, head } as const;
      }
      if (first.prevHash !== head.headHash)
        return {
          kind: 'fork',
          seq: first.seq,
          storedHash: head.headHash,
          batchHash: first.prevHash,
          expectedSeq: head.lastSeq + 1,
          expectedHash: head.headHash,
        } as const;
      const last = fresh[fresh.length - 1] as ParsedRecord;
      const receipt = makeReceipt(last.seq, last.hash);
      const ins = await tx.query<{ batch_id: number }>(
        `INSERT INTO ${s}.batches (provider_id, first_seq, last_seq, new_first_seq, prev_hash, last_hash, record_count,
           sent_at, key_id, signature, receipt)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb) RETURNING batch_id`,
        [
          b.providerId,
          b.firstSeq,
          b.lastSeq,
          first.seq,
          b.prevHash,
          b.lastHash,
          b.records.length,
          b.sentAt,
          b.keyId,
          b.signature,
          JSON.stringify(receipt),
        ],
      );
      const batchId = Number((ins.rows[0] as { batch_id: number }).batch_id);
      const n = fresh.length;
      const alloc = await tx.query<{ ids: Array<number | string> }>(
        `SELECT ${s}.allocate_record_ids($1) AS ids`,
        [n],
      );
      const rowIds = ((alloc.rows[0] as { ids: Array<number | string> }).ids ?? []).map(Number);
      const seqs = new Array<number>(n);
      const hashes = new Array<string>(n);
      const prevs = new Array<string>(n);
      const ids = new Array<string>(n);
      const services = new Array<string>(n);
      const times = new Array<string>(n);
      const types = new Array<string>(n);
      const actors = new Array<string | null>(n);
      const customers = new Array<string | null>(n);
      const shards = new Array<string | null>(n);
      const lines = new Array<string>(n);
      for (let i = 0; i < n; i++) {
        const r = fresh[i] as ParsedRecord;
        seqs[i] = r.seq;
        hashes[i] = r.hash;
        prevs[i] = r.prevHash;
        ids[i] = r.auditId;
        services[i] = r.serviceId;
        times[i] = r.time;
        types[i] = r.eventType;
        actors[i] = r.actor;
        customers[i] = r.customerId;
        shards[i] = r.shardId;
        lines[i] = r.line;
      }
      await tx.query(
        `INSERT INTO ${s}.records (provider_id, batch_id, seq, hash, prev_hash, audit_id, service_id, time, event_type,
           actor, customer_id, shard_id, line, id)
         SELECT $1::text, $2::bigint, * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
           $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[])`,
        [
          b.providerId,
          batchId,
          seqs,
          hashes,
          prevs,
          ids,
          services,
          times,
          types,
          actors,
          customers,
          shards,
          lines,
          rowIds,
        ],
      );
      return { kind: 'accepted', stored: n, duplicates, receipt } as const;
    });
  }

  /** seq + hash of stored records from `fromSeq` (for comparing trails). */
  async hashes(
    providerId: string,
    fromSeq: number,
    limit: number,
  ): Promise<Array<{ seq: number; hash: string }>> {
    const r = await this.client.query<{ seq: number; hash: string }>(
      `SELECT seq, hash FROM ${this.#s}.records WHERE provider_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3`,
      [providerId, fromSeq, limit],
    );
    return r.rows.map((x) => ({ seq: Number(x.seq), hash: x.hash }));
  }

  /** Records matching every given filter, in ingest (id) order after the cursor. */
  async query(q: EventQuery): Promise<StoredEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (cond: string, v: unknown) => {
      params.push(v);
      where.push(cond.replace('?', `$${params.length}`));
    };
    if (q.providerId !== undefined) add('provider_id = ?', q.providerId);
    if (q.types !== undefined && q.types.length > 0) add('event_type = ANY(?::text[])', q.types);
    if (q.actor !== undefined) add('actor = ?', q.actor);
    if (q.customerId !== undefined) add('customer_id = ?', q.customerId);
    if (q.shardId !== undefined) add('shard_id = ?', q.shardId);
    if (q.since !== undefined) add('time >= ?::timestamptz', q.since);
    if (q.until !== undefined) add('time < ?::timestamptz', q.until);
    if (q.afterId !== undefined) add('id > ?', q.afterId);
    // First statement: the horizon; second (a new snapshot, READ COMMITTED): rows below it.
    add('id < ?', await this.#horizon());
    params.push(q.limit);
    const r = await this.client.query<StoredEvent>(
      `SELECT id, provider_id, seq, line FROM ${this.#s}.records${
        where.length ? ` WHERE ${where.join(' AND ')}` : ''
      } ORDER BY id LIMIT $${params.length}`,
      params,
    );
    return r.rows.map((x) => ({
      id: Number(x.id),
      provider_id: x.provider_id,
      seq: Number(x.seq),
      line: x.line,
    }));
  }

  /**
   * Exclusive upper bound of the ids a reader may return now: below every id an in-flight append has
   * drawn or may still draw (they hold a shared advisory lock keyed ≤ their first id, see
   * allocate_record_ids in migrations.ts) and below the sequence's next value. Rows below it that
   * are not visible yet cannot exist, so a cursor never skips a row that commits later. Advisory
   * locks of other applications in the same database can only lower the horizon (delay, never skip);
   * keys outside [1, last_value] are ignored.
   */
  async #horizon(): Promise<number> {
    const r = await this.client.query<{ h: number }>(
      `SELECT LEAST(
         s.last_value + CASE WHEN s.is_called THEN 1 ELSE 0 END,
         (SELECT min(k) FROM (
            SELECT (l.classid::bigint << 32) | l.objid::bigint AS k
              FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())) m
           WHERE m.k BETWEEN 1 AND s.last_value)
       )::int8 AS h
       FROM ${this.#s}.records_id_seq s`,
    );
    return Number((r.rows[0] as { h: number }).h);
  }

  /** Number of stored records (of one provider when given). */
  async count(providerId?: string): Promise<number> {
    const r =
      providerId === undefined
        ? await this.client.query<{ n: number }>(`SELECT count(*)::int8 AS n FROM ${this.#s}.records`)
        : await this.client.query<{ n: number }>(
            `SELECT count(*)::int8 AS n FROM ${this.#s}.records WHERE provider_id = $1`,
            [providerId],
          );
    return Number((r.rows[0] as { n: number }).n);
  }
}
