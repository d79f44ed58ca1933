/**
 * Schema migrations (SCHEMA.md is the prose version). Run at start, in one transaction under an
 * advisory lock, so several collectors starting at once apply each migration exactly once.
 * `{s}` is replaced by the quoted schema name. The same SQL runs on PostgreSQL and PGlite.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'append-only records and batches',
    sql: `
CREATE TABLE {s}.batches (
  batch_id        bigserial PRIMARY KEY,
  provider_id     text        NOT NULL,
  first_seq       bigint      NOT NULL CHECK (first_seq >= 1),
  last_seq        bigint      NOT NULL CHECK (last_seq >= first_seq),
  new_first_seq   bigint      NOT NULL,
  prev_hash       text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  last_hash       text        NOT NULL CHECK (last_hash ~ '^[0-9a-f]{64}$'),
  record_count    integer     NOT NULL,
  sent_at         text        NOT NULL,
  key_id          text        NOT NULL,
  signature       text        NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT now(),
  receipt         jsonb       NOT NULL,
  UNIQUE (provider_id, last_seq)
);

CREATE TABLE {s}.records (
  id           bigserial   NOT NULL,
  provider_id  text        NOT NULL,
  seq          bigint      NOT NULL CHECK (seq >= 1),
  hash         text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  prev_hash    text        NOT NULL,
  audit_id     text        NOT NULL,
  service_id   text        NOT NULL,
  time         timestamptz NOT NULL,
  event_type   text        NOT NULL,
  actor        text,
  customer_id  text,
  shard_id     text,
  batch_id     bigint      NOT NULL,
  line         text        NOT NULL,
  PRIMARY KEY (provider_id, seq)
);

CREATE UNIQUE INDEX records_id_idx        ON {s}.records (id);
CREATE INDEX records_provider_id_idx      ON {s}.records (provider_id, id);
CREATE INDEX records_type_id_idx          ON {s}.records (event_type, id);
CREATE INDEX records_customer_id_idx      ON {s}.records (customer_id, id) WHERE customer_id IS NOT NULL;
CREATE INDEX records_actor_id_idx         ON {s}.records (actor, id) WHERE actor IS NOT NULL;
CREATE INDEX records_shard_id_idx         ON {s}.records (shard_id, id) WHERE shard_id IS NOT NULL;
-- BRIN: time grows with ingest order, so a block-range index serves time ranges at almost no insert cost.
CREATE INDEX records_time_brin           ON {s}.records USING brin (time);

-- Record ids for cursor pagination. An appending transaction allocates its ids through this function,
-- which first takes a SHARED transaction-scoped advisory lock keyed by the sequence's current value
-- (a lower bound of every id it will draw). Readers compute a horizon below every such in-flight
-- allocation (see store.ts #horizon), so no row can ever commit below a cursor already handed out.
CREATE FUNCTION {s}.allocate_record_ids(n integer) RETURNS bigint[] LANGUAGE plpgsql AS $fn$
DECLARE
  lo  bigint;
  ids bigint[];
BEGIN
  SELECT last_value INTO lo FROM {s}.records_id_seq;
  PERFORM pg_advisory_xact_lock_shared(lo);
  SELECT array_agg(v ORDER BY v) INTO ids
    FROM (SELECT nextval('{s}.records_id_seq') AS v FROM generate_series(1, n)) q;
  RETURN ids;
END
$fn$;

-- Append-only: every UPDATE, DELETE and TRUNCATE is refused by a statement-level trigger,
-- whatever the role (privileges below are the second line of defence).
CREATE FUNCTION {s}.reject_modification() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'vramseal collector: % on %.% is not allowed: the table is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.records
  FOR EACH STATEMENT EXECUTE FUNCTION {s}.reject_modification();
CREATE TRIGGER batches_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.batches
  FOR EACH STATEMENT EXECUTE FUNCTION {s}.reject_modification();
CREATE TRIGGER schema_migrations_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.schema_migrations
  FOR EACH STATEMENT EXECUTE FUNCTION {s}.reject_modification();
`,
  },
  {
    version: 2,
    name: 'witnessed checkpoints',
    sql: `
-- Checkpoints the collector witnessed (POST /v1/providers/:id/checkpoints): each one's root was
-- recomputed by the collector over the provider's stored records 1..tree_size before it was stored.
CREATE TABLE {s}.checkpoints (
  checkpoint_id  bigserial   PRIMARY KEY,
  provider_id    text        NOT NULL,
  origin         text        NOT NULL,
  tree_size      bigint      NOT NULL CHECK (tree_size >= 0),
  root_hash      text        NOT NULL CHECK (root_hash ~ '^[0-9a-f]{64}$'),
  note           text        NOT NULL,
  note_sha256    text        NOT NULL CHECK (note_sha256 ~ '^[0-9a-f]{64}$'),
  signer_key     text        NOT NULL,
  cosigned_note  text        NOT NULL,
  frontier       text[]      NOT NULL,
  witnessed_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider_id, tree_size)
);

CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}.checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION {s}.reject_modification();
`,
  },
];

/** Privileges of the application role, re-applied at every start (idempotent). `{r}` = quoted role. */
export const GRANTS_SQL = `
REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM PUBLIC;
REVOKE ALL ON {s}.records, {s}.batches, {s}.checkpoints, {s}.schema_migrations FROM {r};
GRANT USAGE ON SCHEMA {s} TO {r};
GRANT SELECT, INSERT ON {s}.records, {s}.batches, {s}.checkpoints TO {r};
GRANT SELECT ON {s}.schema_migrations TO {r};
GRANT SELECT, USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {r};
GRANT EXECUTE ON FUNCTION {s}.allocate_record_ids(integer) TO {r};
`;
