/**
 * Checkpoint witness cost (`npm run bench:witness`): how long the collector takes to witness a
 * checkpoint when it recomputes the root itself over the provider's stored record hashes.
 *
 *   1. first checkpoint of a provider with N stored records (root over all N: the worst case)
 *   2. the next checkpoint after K more records (from the stored frontier: only K are read)
 *   3. a resubmission of the same checkpoint (duplicate: no recomputation)
 *
 * Records are inserted with SQL (hash = SHA-256 of the seq, no record content: the witness reads only
 * `hash`), in a schema of their own that is dropped afterwards. The roots are checked against
 * @vramseal/audit's MerkleTree outside the timing.
 *
 *   npm run bench:witness -- [--records 1000000] [--more 10000] [--database-url URL | --pglite] [--json]
 */
import { createHash, randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { FrontierOnlyStore, MerkleTree, SignerKey, signCheckpoint, verifyCheckpoint } from '@vramseal/audit';
import { openStore } from '../src/collector.js';
import { CheckpointWitness } from '../src/witness.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : def;
}
const RECORDS = Number(arg('records', '1000000'));
const MORE = Number(arg('more', '10000'));
const PGLITE = process.argv.includes('--pglite');
const DB_URL = arg(
  'database-url',
  process.env.VRAMSEAL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
);

const schema = `vs_bench_witness_${process.pid}`;
const { store } = await openStore(
  PGLITE ? { schema, appRole: false } : { databaseUrl: DB_URL, schema, appRole: false, poolSize: 2 },
);
const providerId = `bench-${randomUUID().slice(0, 8)}`;
const s = `"${schema}"`;

async function insert(from: number, to: number): Promise<void> {
  for (let lo = from; lo <= to; lo += 100_000) {
    const hi = Math.min(to, lo + 99_999);
    await store.client.query(
      `INSERT INTO ${s}.records (provider_id, seq, hash, prev_hash, audit_id, service_id, time, event_type, batch_id, line)
       SELECT $1, g, encode(sha256(g::text::bytea), 'hex'), '', g::text, 'bench', now(), 'bench', 0, ''
         FROM generate_series($2::bigint, $3::bigint) g`,
      [providerId, lo, hi],
    );
  }
}

const tree = new MerkleTree(new FrontierOnlyStore());
function grow(to: number): Buffer {
  for (let i = tree.size + 1; i <= to; i++)
    tree.appendRecordHash(createHash('sha256').update(String(i)).digest('hex'));
  return tree.root();
}

const signer = SignerKey.generate('bench-provider');
const witness = new CheckpointWitness(store, { signer: SignerKey.generate('bench-collector') });
const note = (size: number, root: Buffer) =>
  verifyCheckpoint(
    signCheckpoint({ origin: 'vramseal/bench', size, root, time: new Date().toISOString() }, signer),
    signer.verifier,
  );

async function timed(size: number, root: Buffer): Promise<{ ms: number; kind: string }> {
  const cp = note(size, root);
  const t0 = performance.now();
  const out = await witness.witness(providerId, cp, signer.verifier.toString());
  return { ms: performance.now() - t0, kind: out.kind };
}

try {
  await insert(1, RECORDS);
  const first = await timed(RECORDS, grow(RECORDS));
  await insert(RECORDS + 1, RECORDS + MORE);
  const next = await timed(RECORDS + MORE, grow(RECORDS + MORE));
  const dup = await timed(RECORDS + MORE, tree.root());
  const result = {
    engine: store.client.engine,
    records: RECORDS,
    more: MORE,
    first_checkpoint_ms: Math.round(first.ms),
    first_kind: first.kind,
    first_records_per_s: Math.round(RECORDS / (first.ms / 1000)),
    next_checkpoint_ms: Math.round(next.ms * 10) / 10,
    next_kind: next.kind,
    duplicate_ms: Math.round(dup.ms * 10) / 10,
    duplicate_kind: dup.kind,
    cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    loadavg: loadavg().map((x) => Math.round(x * 10) / 10),
  };
  if (first.kind !== 'accepted' || next.kind !== 'accepted' || dup.kind !== 'duplicate')
    throw new Error(`unexpected outcome: ${JSON.stringify(result)}`);
  if (process.argv.includes('--json')) console.log(JSON.stringify(result));
  else
    console.log(
      `witness on ${result.engine}: first checkpoint over ${RECORDS} records ${result.first_checkpoint_ms} ms ` +
        `(${result.first_records_per_s} records/s); next after ${MORE} more ${result.next_checkpoint_ms} ms; ` +
        `duplicate ${result.duplicate_ms} ms [${result.cpus}, load ${result.loadavg.join(' ')}]`,
    );
} finally {
  await store.client.exec(`DROP SCHEMA ${s} CASCADE`);
  await store.client.close();
}
