/**
 * `vramseal audit verify <dir> --collector URL --provider ID [--public-key F] [--collector-key K]`
 * against a real collector (PostgreSQL at 127.0.0.1:5432, a unique schema dropped afterwards) that
 * witnessed the provider's checkpoints: the intact trail passes; a trail cut short below the witnessed
 * size fails with `truncated_trail`, an edited one with `history_rewritten`, a wrongly pinned collector
 * key with `checkpoint_invalid` (exit 1 each). The CLI runs as a process from the TypeScript sources.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AuditLogger,
  attachCheckpointWitness,
  publicKeyToBase64,
  shipperOf,
  Transparency,
  writeKeyPair,
} from '@vramseal/audit';
import { buildCollectorServer, openStore, parseKeys } from '@vramseal/collector';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import pino from 'pino';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const NODE_ARGS = ['--conditions=vramseal-source', '--import', 'tsx', join(REPO, 'packages/cli/src/bin.ts')];
const PG_URL = process.env.VRAMSEAL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ORIGIN = 'vramseal/witness-w';
const quiet = pino({ level: 'silent' });

const tmp = mkdtempSync(join(tmpdir(), 'vramseal-verify-witness-'));
const schema = `vs_cli_witness_${process.pid}_${randomUUID().slice(0, 8)}`;
const providerId = `prov-${randomUUID().slice(0, 8)}`;
const provider = generateKeyPairSync('ed25519');
const collector = generateKeyPairSync('ed25519');
const collectorKey = publicKeyToBase64(collector.publicKey);
const { signer, pubFile } = writeKeyPair(join(tmp, 'tlog'), 'worker-w');
const trail = join(tmp, 'trail');
let app: FastifyInstance;
let closeStore: () => Promise<void>;
let url: string;
let witnessedSize = 0;

before(async () => {
  const { store } = await openStore({ databaseUrl: PG_URL, schema, poolSize: 4 });
  closeStore = () => store.client.close();
  const keys = parseKeys({
    providers: {
      [providerId]: {
        public_keys: [publicKeyToBase64(provider.publicKey)],
        checkpoint_keys: [signer.verifier.toString()],
        checkpoint_origin: ORIGIN,
      },
    },
  });
  app = await buildCollectorServer({
    store,
    keys,
    signingKey: collector.privateKey,
    audit: { emit: () => ({ durable: Promise.resolve() }) },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const a = app.server.address();
  url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;

  // The provider: a platform-mode trail with checkpoints, witnessed by the collector.
  const log = await AuditLogger.open({
    mode: 'platform',
    dir: trail,
    serviceId: 'witness-w',
    flush: { mode: 'batched', maxEvents: 16, maxDelayMs: 5 },
    logger: quiet,
    platform: {
      providerId,
      url,
      privateKey: provider.privateKey,
      collectorPublicKey: collectorKey,
      batch: { maxRecords: 8, maxDelayMs: 5 },
      backoff: { initialMs: 10, maxMs: 50 },
    },
  });
  const tl = await Transparency.attach(log, {
    signer,
    origin: ORIGIN,
    everyRecords: 8,
    everyMs: 0,
    worker: false,
  });
  const w = attachCheckpointWitness(tl, {
    shipper: shipperOf(log),
    backoff: { initialMs: 10, maxMs: 50 },
  });
  const durable = [];
  for (let i = 0; i < 20; i++)
    durable.push(
      log.emit({
        type: 'data.inference_executed',
        timestamp: new Date(Date.UTC(2026, 10, 27, 6, 0, 0, i)).toISOString(),
        customer_id: 'cust-a',
        job_id: `job-${i}`,
        model_ref: 'm',
        tokens_processed: i,
        result: { status: 'success' },
      }).durable,
    );
  await Promise.all(durable);
  const cp = await tl.checkpoint();
  assert.ok(cp && cp.size >= 20);
  await shipperOf(log)?.flush(10_000);
  await w.flush(10_000);
  witnessedSize = w.status().witnessedSize;
  assert.equal(witnessedSize, cp.size, JSON.stringify(w.status()));
  await w.stop();
  await log.close();
});

after(async () => {
  await app?.close();
  await closeStore?.();
  const owner = new pg.Client({ connectionString: PG_URL });
  await owner.connect();
  await owner.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await owner.end();
  rmSync(tmp, { recursive: true, force: true });
});

/** The CLI as a child process; asynchronous, since the collector runs in this process's event loop. */
async function verify(dir: string, extra: string[], json = true) {
  const child = spawn(
    process.execPath,
    [
      ...NODE_ARGS,
      'audit',
      'verify',
      dir,
      '--collector',
      url,
      '--provider',
      providerId,
      ...(json ? ['--json'] : []),
      ...extra,
    ],
    { cwd: REPO, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const r = { status, stdout, stderr };
  if (!json) return { status, doc: undefined as never, kinds: [], text: stdout + stderr };
  let doc: {
    ok: boolean;
    failures: { kind: string; message: string }[];
    collector: { ok: boolean; witness?: Record<string, unknown> };
  };
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`no JSON (exit ${r.status}): ${r.stdout}${r.stderr}`);
  }
  return { status: r.status, doc, kinds: doc.failures.map((f) => f.kind), text: r.stdout + r.stderr };
}

/** A copy of the trail whose single .audit file is rewritten by `edit`. */
function copyWith(name: string, edit: (lines: string[]) => string[]): string {
  const dir = join(tmp, name);
  cpSync(trail, dir, { recursive: true });
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.audit'))
    .sort();
  assert.equal(files.length, 1, 'a small trail: one file');
  const file = join(dir, files[0] as string);
  chmodSync(file, 0o600);
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  writeFileSync(file, `${edit(lines).join('\n')}\n`);
  return dir;
}

test('intact trail: agrees with the witnessed checkpoint (both signatures checked, collector key pinned)', async () => {
  const r = await verify(trail, ['--public-key', pubFile, '--collector-key', collectorKey]);
  assert.equal(r.status, 0, r.text);
  const w = r.doc.collector.witness;
  assert.ok(w, r.text);
  assert.equal(w.status, 'checked');
  assert.equal(w.ok, true);
  assert.equal(w.tree_size, witnessedSize);
  assert.equal(w.witness_key_pinned, true);
  assert.equal(w.provider_signature_checked, true);
  // The C2SP witness_key the collector prints pins the same key (and checks the receipt as well).
  const info = (await (await fetch(`${url}/v1/collector`)).json()) as { witness_key: string };
  const c2sp = await verify(trail, ['--public-key', pubFile, '--collector-key', info.witness_key]);
  assert.equal(c2sp.status, 0, c2sp.text);
  assert.equal(c2sp.doc.collector.witness?.witness_key_pinned, true);
  assert.equal((c2sp.doc.collector as { receipt_verified?: unknown }).receipt_verified, true);
  // Without keys the collector's announced witness key is used (and reported as not pinned).
  const loose = await verify(trail, []);
  assert.equal(loose.status, 0, loose.text);
  assert.equal(loose.doc.collector.witness?.witness_key_pinned, false);
  assert.equal(loose.doc.collector.witness?.provider_signature_checked, false);
});

test('a trail cut short below the witnessed size: truncated_trail, exit 1', async () => {
  const dir = copyWith('cut', (lines) => lines.slice(0, witnessedSize - 5));
  const r = await verify(dir, ['--public-key', pubFile, '--collector-key', collectorKey]);
  assert.equal(r.status, 1, r.text);
  assert.ok(r.kinds.includes('truncated_trail'), r.kinds.join(','));
  assert.equal(r.doc.collector.witness?.ok, false);
  // The human report names the failure and the witness line.
  const human = await verify(dir, ['--public-key', pubFile], false);
  assert.equal(human.status, 1, human.text);
  assert.match(human.text, /witnessed checkpoint: FAILS/);
  assert.match(human.text, /truncated_trail/);
});

test('a record rewritten after witnessing: history_rewritten, exit 1', async () => {
  const dir = copyWith('rewritten', (lines) =>
    lines.map((l, i) => (i === 3 ? l.replace('"job_id":"job-3"', '"job_id":"job-X"') : l)),
  );
  const r = await verify(dir, ['--public-key', pubFile]);
  assert.equal(r.status, 1, r.text);
  assert.ok(r.kinds.includes('history_rewritten'), r.kinds.join(','));
});

test('a wrongly pinned collector key: the witnessed checkpoint is rejected (checkpoint_invalid)', async () => {
  const other = publicKeyToBase64(generateKeyPairSync('ed25519').publicKey);
  const r = await verify(trail, ['--public-key', pubFile, '--collector-key', other]);
  assert.equal(r.status, 1, r.text);
  assert.ok(r.kinds.includes('checkpoint_invalid'), r.kinds.join(','));
});
