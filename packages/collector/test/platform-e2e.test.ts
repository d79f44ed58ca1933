/**
 * Platform mode end to end: a real AuditLogger in mode 'platform' ships to a real collector (HTTP on
 * loopback) backed by PostgreSQL and by PGlite: restart + resume, collector down then up, lost
 * responses, and comparison of the local trail with the collector's copy.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AuditLogger,
  type AuditLoggerOptions,
  compareWithCollector,
  Shipper,
  shipperOf,
  verifyTrail,
} from '@vramseal/audit';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildCollectorServer } from '../src/server.js';
import {
  ENGINES,
  type EngineFixture,
  MemoryAudit,
  makeKeys,
  newProvider,
  openEngine,
  type ProviderKey,
  register,
  TrailBuilder,
} from './helpers.js';

const quiet = pino({ level: 'silent' });

function event(i: number) {
  return {
    type: 'data.inference_executed' as const,
    timestamp: new Date(Date.UTC(2026, 10, 27, 10, 0, 0, i)).toISOString(),
    customer_id: i % 2 ? 'cust-acme' : 'cust-globex',
    job_id: `job-${i}`,
    model_ref: 'llama-3-8b',
    tokens_processed: i,
    result: { status: 'success' as const },
  };
}

for (const engine of ENGINES) {
  describe(`platform mode end to end on ${engine}`, () => {
    let f: EngineFixture;
    let app: FastifyInstance | undefined;
    let port = 0;
    const audit = new MemoryAudit();
    const keys = makeKeys([]);
    const collector = generateKeyPairSync('ed25519');
    const collectorPublicKey = collector.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const dirs: string[] = [];

    async function up(): Promise<string> {
      app = await buildCollectorServer({ store: f.store, keys, signingKey: collector.privateKey, audit });
      await app.listen({ port, host: '127.0.0.1' });
      const a = app.server.address();
      port = typeof a === 'object' && a ? a.port : port;
      return `http://127.0.0.1:${port}`;
    }
    async function down(): Promise<void> {
      await app?.close();
      app = undefined;
    }
    function trailDir(): string {
      const d = mkdtempSync(join(tmpdir(), 'vramseal-platform-'));
      dirs.push(d);
      return join(d, 'trail');
    }
    function open(
      dir: string,
      p: ProviderKey,
      url: string,
      extra: Partial<AuditLoggerOptions['platform']> = {},
    ) {
      return AuditLogger.open({
        mode: 'platform',
        dir,
        serviceId: 'worker-e2e',
        flush: { mode: 'batched', maxEvents: 16, maxDelayMs: 5 },
        logger: quiet,
        platform: {
          providerId: p.id,
          url,
          privateKey: p.privateKey,
          collectorPublicKey,
          batch: { maxRecords: 25, maxDelayMs: 10 },
          backoff: { initialMs: 20, maxMs: 150 },
          requestTimeoutMs: 5000,
          ...extra,
        },
      });
    }
    async function emitN(log: AuditLogger, from: number, n: number): Promise<void> {
      const rs = [];
      for (let i = from; i < from + n; i++) rs.push(log.emit(event(i)).durable);
      await Promise.all(rs);
    }
    async function batchesOf(
      p: ProviderKey,
    ): Promise<Array<{ first_seq: number; last_seq: number; new_first_seq: number }>> {
      return (await f.ownerQuery(
        'SELECT first_seq::int AS first_seq, last_seq::int AS last_seq, new_first_seq::int AS new_first_seq FROM {s}.batches WHERE provider_id = $1 ORDER BY batch_id',
        [p.id],
      )) as Array<{ first_seq: number; last_seq: number; new_first_seq: number }>;
    }
    async function assertExactlyOnce(p: ProviderKey, dir: string, n: number): Promise<void> {
      assert.equal(await f.store.count(p.id), n);
      const rows = (await f.ownerQuery(
        'SELECT count(DISTINCT seq)::int AS s, count(DISTINCT audit_id)::int AS a, min(seq)::int AS lo, max(seq)::int AS hi FROM {s}.records WHERE provider_id = $1',
        [p.id],
      )) as Array<{ s: number; a: number; lo: number; hi: number }>;
      assert.deepEqual(rows[0], { s: n, a: n, lo: 1, hi: n });
      const cmp = await compareWithCollector(dir, `http://127.0.0.1:${port}`, p.id, { collectorPublicKey });
      assert.equal(cmp.ok, true, cmp.message);
      assert.equal(cmp.agreeUpTo, n);
      assert.equal(cmp.receiptVerified, true);
    }

    before(async () => {
      f = await openEngine(engine);
      await up();
    });
    after(async () => {
      await down();
      await f?.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    test('ships durable records; restart resumes from the acknowledged seq (state file, then head only)', async () => {
      const p = newProvider();
      register(keys, p);
      const dir = trailDir();
      const url = `http://127.0.0.1:${port}`;
      let log = await open(dir, p, url);
      await emitN(log, 1, 60);
      const sh = shipperOf(log) as Shipper;
      await sh.flush(10_000);
      assert.equal(sh.status().ackedSeq, 60);
      assert.equal(sh.status().backlog, 0);
      await log.close();
      const state = JSON.parse(readFileSync(join(dir, 'platform-state.json'), 'utf8'));
      assert.equal(state.acked_seq, 60);
      assert.equal(state.receipt.last_seq, 60);

      log = await open(dir, p, url);
      await emitN(log, 61, 40);
      await (shipperOf(log) as Shipper).flush(10_000);
      await log.close();
      // Lost state file: the collector's head tells where to resume.
      unlinkSync(join(dir, 'platform-state.json'));
      log = await open(dir, p, url);
      await emitN(log, 101, 5);
      await (shipperOf(log) as Shipper).flush(10_000);
      await log.close();

      await assertExactlyOnce(p, dir, 105);
      // Nothing was re-sent after a restart: batches tile 1..105 without overlap.
      const bs = await batchesOf(p);
      let next = 1;
      for (const b of bs) {
        assert.equal(b.first_seq, next, JSON.stringify(bs));
        next = b.last_seq + 1;
      }
      assert.equal(next, 106);
      const v = await verifyTrail(dir);
      assert.equal(v.ok, true, JSON.stringify(v.failures?.slice(0, 3)));
    });

    test('collector down, provider restarts while it is down, collector up: no loss, no duplicates', async () => {
      const p = newProvider();
      register(keys, p);
      const dir = trailDir();
      const url = `http://127.0.0.1:${port}`;
      let log = await open(dir, p, url);
      await emitN(log, 1, 30);
      await (shipperOf(log) as Shipper).flush(10_000);
      await down();
      await emitN(log, 31, 70);
      await new Promise((r) => setTimeout(r, 150));
      const st = (shipperOf(log) as Shipper).status();
      assert.equal(st.ackedSeq, 30);
      assert.equal(st.backlog, 70);
      assert.ok(st.lastError && /ECONNREFUSED|fetch failed|aborted/.test(st.lastError), st.lastError);
      assert.ok(st.failures >= 1);
      await log.close();
      // Restart while the collector is still down, and keep writing.
      log = await open(dir, p, url);
      await emitN(log, 101, 20);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal((shipperOf(log) as Shipper).status().ackedSeq, 30);
      await up();
      await (shipperOf(log) as Shipper).flush(15_000);
      assert.equal((shipperOf(log) as Shipper).status().ackedSeq, 120);
      await log.close();
      await assertExactlyOnce(p, dir, 120);
    });

    test('a lost response (stored, but never acknowledged) is re-sent and acknowledged as a duplicate', async () => {
      const p = newProvider();
      register(keys, p);
      const dir = trailDir();
      let dropped = 0;
      const lossy: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (init?.method === 'POST' && dropped < 2) {
          dropped++;
          await res.text();
          throw new TypeError('fetch failed (response lost)');
        }
        return res;
      };
      const log = await open(dir, p, `http://127.0.0.1:${port}`, { fetch: lossy });
      await emitN(log, 1, 50);
      await (shipperOf(log) as Shipper).flush(15_000);
      await log.close();
      assert.equal(dropped, 2);
      await assertExactlyOnce(p, dir, 50);
    });

    test('compareWithCollector finds the first divergent seq; the shipper stops as diverged on a fork', async () => {
      const p = newProvider();
      register(keys, p);
      const url = `http://127.0.0.1:${port}`;
      // The collector holds history A (40 records); a local trail shares A's first 25 records, then differs.
      const a = new TrailBuilder('worker-x');
      a.add(40);
      const b = new TrailBuilder('worker-x');
      b.recs = a.recs.slice(0, 25);
      b.add(20);
      const dirA = trailDir();
      const dirB = trailDir();
      for (const [d, t] of [
        [dirA, a],
        [dirB, b],
      ] as const) {
        mkdirSync(d, { recursive: true, mode: 0o700 });
        // Two rotated files, to cross a file boundary.
        writeFileSync(
          join(d, '2026-11-27.audit'),
          t.recs
            .slice(0, 10)
            .map((r) => `${r.line}\n`)
            .join(''),
        );
        writeFileSync(
          join(d, '2026-11-27.1.audit'),
          `${t.recs
            .slice(10)
            .map((r) => r.line)
            .join('\n')}\n`,
        );
      }
      const shipA = new Shipper({
        dir: dirA,
        providerId: p.id,
        url,
        privateKey: p.privateKey,
        batch: { maxRecords: 7 },
      });
      await shipA.start();
      await shipA.flush(10_000);
      await shipA.stop();
      assert.equal(shipA.status().ackedSeq, 40);

      const same = await compareWithCollector(dirA, url, p.id, { collectorPublicKey });
      assert.equal(same.ok, true);
      assert.equal(same.agreeUpTo, 40);
      const diff = await compareWithCollector(dirB, url, p.id, { collectorPublicKey });
      assert.equal(diff.ok, false);
      assert.equal(diff.firstDivergentSeq, 26);
      assert.equal(diff.agreeUpTo, 25);
      assert.match(diff.message, /diverge at seq 26/);
      // A local trail that is only shorter: the collector holds records it lacks.
      const short = new TrailBuilder('worker-x');
      short.recs = a.recs.slice(0, 33);
      const dirC = trailDir();
      mkdirSync(dirC, { recursive: true });
      writeFileSync(join(dirC, '2026-11-27.audit'), short.recs.map((r) => `${r.line}\n`).join(''));
      const c = await compareWithCollector(dirC, url, p.id);
      assert.equal(c.ok, false);
      assert.equal(c.firstDivergentSeq, 34);
      assert.equal(c.receiptVerified, null);
      // A wrong collector key is reported.
      const wrong = generateKeyPairSync('ed25519')
        .publicKey.export({ format: 'pem', type: 'spki' })
        .toString();
      const w = await compareWithCollector(dirA, url, p.id, { collectorPublicKey: wrong });
      assert.equal(w.receiptVerified, false);
      assert.equal(w.ok, false);

      const shipB = new Shipper({
        dir: dirB,
        providerId: p.id,
        url,
        privateKey: p.privateKey,
        backoff: { initialMs: 10, maxMs: 50 },
      });
      const errors: Error[] = [];
      shipB.on('error', (e) => errors.push(e));
      await shipB.start();
      await new Promise((r) => setTimeout(r, 200));
      await shipB.stop();
      assert.equal(
        errors[0]?.message.includes('fork') || errors[0]?.message.includes('local trail'),
        true,
        errors[0]?.message,
      );
      assert.equal(await f.store.count(p.id), 40);
    });
  });
}
