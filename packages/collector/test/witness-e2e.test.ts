/**
 * Checkpoint witnessing end to end: a real AuditLogger in platform mode with Transparency attached
 * ships its records to a real collector (loopback HTTP) and the witness client posts each checkpoint
 * once the collector acknowledged its records; the collector recomputes and cosigns it. A restart
 * submits the checkpoint written at close. A trail with another history is refused (final, recorded).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AuditLogger,
  attachCheckpointWitness,
  CheckpointWitnessClient,
  checkAgainstCheckpoint,
  fetchWitnessedCheckpoint,
  publicKeyToBase64,
  recordLeafHash,
  rootOfLeafHashes,
  SignerKey,
  shipperOf,
  signCheckpoint,
  type TlogError,
  Transparency,
  VerifierKey,
  verifyCheckpoint,
} from '@vramseal/audit';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildCollectorServer } from '../src/server.js';
import {
  batchOf,
  ENGINES,
  type EngineFixture,
  MemoryAudit,
  makeKeys,
  newProvider,
  openEngine,
  register,
  TrailBuilder,
} from './helpers.js';

const quiet = pino({ level: 'silent' });
const ORIGIN = 'vramseal/worker-w';

for (const engine of ENGINES) {
  describe(`checkpoint witness end to end on ${engine}`, () => {
    let f: EngineFixture;
    let app: FastifyInstance;
    let url: string;
    let witnessKey: VerifierKey;
    const audit = new MemoryAudit();
    const keys = makeKeys([]);
    const collector = generateKeyPairSync('ed25519');
    const tmp = mkdtempSync(join(tmpdir(), 'vramseal-witness-e2e-'));
    let beyond = 0;
    const countingFetch: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (res.status === 409 && String(input).endsWith('/checkpoints')) {
        const body = (await res.clone().json()) as { error?: string };
        if (body.error === 'SIZE_BEYOND_RECORDS') beyond++;
      }
      return res;
    };

    before(async () => {
      f = await openEngine(engine);
      app = await buildCollectorServer({ store: f.store, keys, signingKey: collector.privateKey, audit });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const a = app.server.address();
      url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
      const info = (await (await fetch(`${url}/v1/collector`)).json()) as { witness_key: string };
      witnessKey = VerifierKey.parse(info.witness_key);
    });
    after(async () => {
      await app?.close();
      await f?.close();
      rmSync(tmp, { recursive: true, force: true });
    });

    test('each checkpoint is witnessed after its records are acknowledged; a restart submits the close checkpoint', async () => {
      const p = newProvider();
      register(keys, p);
      const signer = SignerKey.generate('worker-w');
      keys.checkpoints?.set(p.id, { origin: ORIGIN, keys: [signer.verifier] });
      const dir = join(tmp, `trail-${engine}`);
      const open = () =>
        AuditLogger.open({
          mode: 'platform',
          dir,
          serviceId: 'worker-w',
          flush: { mode: 'batched', maxEvents: 16, maxDelayMs: 5 },
          logger: quiet,
          platform: {
            providerId: p.id,
            url,
            privateKey: p.privateKey,
            collectorPublicKey: publicKeyToBase64(collector.publicKey),
            batch: { maxRecords: 7, maxDelayMs: 5 },
            backoff: { initialMs: 10, maxMs: 50 },
          },
        });
      const emitN = async (log: AuditLogger, from: number, n: number) => {
        const rs = [];
        for (let i = from; i < from + n; i++)
          rs.push(
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
        await Promise.all(rs);
      };

      let log = await open();
      let tl = await Transparency.attach(log, {
        signer,
        origin: ORIGIN,
        everyRecords: 10,
        everyMs: 0,
        worker: false,
      });
      let w = attachCheckpointWitness(tl, {
        shipper: shipperOf(log),
        witnessKey,
        fetch: countingFetch,
        backoff: { initialMs: 10, maxMs: 50 },
      });
      const witnessed: number[] = [];
      w.on('witnessed', (x: { size: number }) => witnessed.push(x.size));
      const signed = new Set<number>();
      tl.on('checkpoint', (x: { size: number }) => signed.add(x.size));
      await emitN(log, 0, 12);
      await emitN(log, 12, 13);
      const cp = await tl.checkpoint();
      assert.ok(cp && cp.size >= 25);
      await shipperOf(log)?.flush(10_000);
      await w.flush(10_000);
      assert.equal(w.status().witnessedSize, cp.size, JSON.stringify(w.status()));
      assert.ok(signed.size >= 2, `periodic checkpoints too: ${[...signed]}`);
      assert.deepEqual(new Set(witnessed), signed, 'every signed checkpoint was witnessed');
      assert.equal(beyond, 0, 'never posted before the collector stored the records');
      const latest = (await (await fetch(`${url}/v1/providers/${p.id}/checkpoints/latest`)).json()) as {
        tree_size: number;
        cosigned_note: string;
      };
      assert.equal(latest.tree_size, cp.size);
      const v = verifyCheckpoint(latest.cosigned_note, witnessKey, { origin: ORIGIN });
      assert.ok(v.root.equals(cp.root));
      verifyCheckpoint(latest.cosigned_note, signer.verifier, { origin: ORIGIN });

      // Close: the logger's close writes a final checkpoint (size grew by the audit.checkpoint records).
      await emitN(log, 25, 3);
      await w.stop();
      await log.close();
      log = await open();
      tl = await Transparency.attach(log, {
        signer,
        origin: ORIGIN,
        everyRecords: 1000,
        everyMs: 0,
        worker: false,
      });
      w = attachCheckpointWitness(tl, {
        shipper: shipperOf(log),
        witnessKey,
        backoff: { initialMs: 10, maxMs: 50 },
      });
      await shipperOf(log)?.flush(10_000);
      await w.flush(10_000);
      assert.ok(w.status().witnessedSize > cp.size, JSON.stringify(w.status()));
      assert.equal(w.status().witnessedSize, tl.size);
      await w.stop();
      await log.close();

      // An auditor fetches the witnessed checkpoint (both signatures checked) and checks the trail.
      const witnessedCp = await fetchWitnessedCheckpoint(url, p.id, {
        providerKey: signer.verifier,
        witnessKey,
        origin: ORIGIN,
      });
      assert.ok(witnessedCp);
      assert.equal(witnessedCp.size, w.status().witnessedSize);
      assert.equal((await checkAgainstCheckpoint(dir, witnessedCp.note, signer.verifier)).ok, true);
      // The provider cuts the tail of its trail: the witnessed checkpoint exposes it.
      const files = readdirSync(dir)
        .filter((n) => n.endsWith('.audit'))
        .sort();
      const last = join(dir, files[files.length - 1] as string);
      const lines = readFileSync(last, 'utf8').split('\n');
      writeFileSync(last, `${lines.slice(0, -3).join('\n')}\n`);
      const cut = await checkAgainstCheckpoint(dir, witnessedCp.note, signer.verifier);
      assert.equal(cut.ok, false);
      assert.ok(
        cut.failures.some((x) => x.kind === 'truncated_trail'),
        JSON.stringify(cut.failures),
      );
      const none = newProvider();
      register(keys, none);
      assert.equal(
        await fetchWitnessedCheckpoint(url, none.id, { providerKey: signer.verifier, witnessKey }),
        undefined,
      );
      await assert.rejects(
        fetchWitnessedCheckpoint(url, p.id, {
          providerKey: signer.verifier,
          witnessKey: SignerKey.generate('vramseal-collector').verifier,
        }),
        /not signed by the trusted key vramseal-collector/,
      );
    });

    test('a checkpoint of another history is refused once (final), reported and recorded', async () => {
      const p = newProvider();
      register(keys, p);
      const signer = SignerKey.generate('worker-w');
      keys.checkpoints?.set(p.id, { origin: ORIGIN, keys: [signer.verifier] });
      // The collector stores trail A; the provider signs a checkpoint over trail B.
      const a = new TrailBuilder();
      a.add(12);
      const r = await app.inject({ method: 'POST', url: '/v1/batches', payload: batchOf(p, a.range(1, 12)) });
      assert.equal(r.statusCode, 200);
      const b = new TrailBuilder('worker-1', Date.parse('2026-11-27T12:00:00.000Z'));
      b.add(12);
      const note = signCheckpoint(
        {
          origin: ORIGIN,
          size: 12,
          root: rootOfLeafHashes(b.recs.map((x) => recordLeafHash(x.hash))),
          time: new Date().toISOString(),
        },
        signer,
      );
      const before = audit.ofType('security.integrity_violation').length;
      const client = new CheckpointWitnessClient({
        url,
        providerId: p.id,
        backoff: { initialMs: 10, maxMs: 50 },
      });
      const errors: TlogError[] = [];
      client.on('error', (e: TlogError) => errors.push(e));
      client.submit(note);
      await client.flush(10_000);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.code, 'TLOG_WITNESS');
      assert.match(errors[0]?.message ?? '', /409 ROOT_MISMATCH/);
      const st = client.status();
      assert.equal(st.rejected, 1);
      assert.equal(st.failures, 0, 'a refusal is not retried');
      assert.equal(st.pending, 0);
      assert.equal(audit.ofType('security.integrity_violation').length, before + 1);
      await client.stop();
    });
  });
}
