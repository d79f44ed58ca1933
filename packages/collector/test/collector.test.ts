import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { GENESIS_HASH, parsePublicKey, sealRecord, verifyReceipt } from '@vramseal/audit';
import pg from 'pg';
import { openStore } from '../src/collector.js';
import { tokenHash } from '../src/config.js';
import { buildCollectorServer } from '../src/server.js';
import {
  batchOf,
  ENGINES,
  get,
  MemoryAudit,
  newProvider,
  openServer,
  PG_URL,
  post,
  register,
  type ServerFixture,
  TOKENS,
  TrailBuilder,
} from './helpers.js';

for (const engine of ENGINES) {
  describe(`collector on ${engine}`, () => {
    let f: ServerFixture;
    before(async () => {
      f = await openServer(engine);
    });
    after(async () => {
      await f?.close();
    });

    test('migrations ran and the app role is in force', () => {
      assert.equal(f.migration.schemaVersion, 2);
      assert.equal(f.migration.privileges, 'enforced', f.migration.privilegesNote);
    });

    test('accepts a signed batch, stores it, answers with a receipt the collector key verifies', async () => {
      const p = newProvider();
      register(f.keys, p);
      const t = new TrailBuilder();
      t.add(10);
      const r = await post(f.app, batchOf(p, t.range(1, 10)));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.status, 'accepted');
      assert.equal(r.body.stored, 10);
      const receipt = r.body.receipt as { last_seq: number; head_hash: string; provider_id: string };
      assert.equal(receipt.last_seq, 10);
      assert.equal(receipt.head_hash, t.lastHash);
      assert.equal(receipt.provider_id, p.id);
      assert.ok(verifyReceipt(receipt, parsePublicKey(f.collectorPublicKey)));
      assert.equal(await f.store.count(p.id), 10);
      const head = await get(f.app, `/v1/providers/${p.id}/head`);
      assert.equal(head.status, 200);
      assert.equal(head.body.last_seq, 10);
      assert.equal(head.body.head_hash, t.lastHash);
      assert.deepEqual(head.body.receipt, receipt);
      // Continue the chain.
      t.add(5);
      const r2 = await post(f.app, batchOf(p, t.range(11, 15)));
      assert.equal(r2.status, 200);
      assert.equal(await f.store.count(p.id), 15);
      // The stored line is byte-identical to the trail's.
      const rows = await f.store.query({ providerId: p.id, limit: 100 });
      assert.deepEqual(
        rows.map((x) => x.line),
        t.recs.map((x) => x.line),
      );
    });

    test('without the right to create/grant the app role the collector still starts: triggers only', {
      skip: engine !== 'postgres',
    }, async () => {
      const user = `vs_nopriv_${process.pid}`;
      const schema = `vs_nopriv_${process.pid}`;
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      let db = 'test';
      try {
        db = (await admin.query('SELECT current_database() AS d')).rows[0].d as string;
        await admin.query(`DROP ROLE IF EXISTS ${user}`);
        await admin.query(`CREATE ROLE ${user} LOGIN`);
        await admin.query(`GRANT CREATE ON DATABASE "${db}" TO ${user}`);
        const url = new URL(PG_URL);
        url.username = user;
        const { store, migration } = await openStore({ databaseUrl: url.toString(), schema });
        try {
          assert.equal(migration.privileges, 'triggers-only');
          assert.match(migration.privilegesNote ?? '', /append-only is enforced by triggers only/);
          // The triggers still refuse changes, even to the owner.
          await assert.rejects(store.client.query(`DELETE FROM "${schema}".records`), /append-only/);
        } finally {
          await store.client.close();
        }
      } finally {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await admin.query(`REVOKE CREATE ON DATABASE "${db}" FROM ${user}`);
        await admin.query(`DROP OWNED BY ${user}`);
        await admin.query(`DROP ROLE IF EXISTS ${user}`);
        await admin.end();
      }
    });

    test('head of a registered provider with nothing stored is seq 0 / genesis; unknown provider is 404', async () => {
      const p = newProvider();
      register(f.keys, p);
      const h = await get(f.app, `/v1/providers/${p.id}/head`);
      assert.equal(h.body.last_seq, 0);
      assert.equal(h.body.head_hash, GENESIS_HASH);
      assert.ok(verifyReceipt(h.body.receipt, parsePublicKey(f.collectorPublicKey)));
      const u = await get(f.app, '/v1/providers/nobody-here/head');
      assert.equal(u.status, 404);
      assert.equal(u.body.error, 'UNKNOWN_PROVIDER');
    });

    test('wrong key: 401, nothing stored, auth.failure recorded in the collector trail', async () => {
      const p = newProvider();
      register(f.keys, p);
      const t = new TrailBuilder();
      t.add(3);
      const other = generateKeyPairSync('ed25519').privateKey;
      const before = f.audit.ofType('auth.failure').length;
      // Signed by another key but claiming the registered key id.
      const r = await post(f.app, batchOf(p, t.range(1, 3), other, p.keyId));
      assert.equal(r.status, 401);
      assert.equal(r.body.error, 'BAD_SIGNATURE');
      // Unknown key id.
      const r2 = await post(f.app, batchOf(p, t.range(1, 3), other, '0123456789abcdef'));
      assert.equal(r2.status, 401);
      assert.equal(r2.body.error, 'UNKNOWN_KEY');
      // Unregistered provider.
      const stranger = newProvider();
      const r3 = await post(f.app, batchOf(stranger, t.range(1, 3)));
      assert.equal(r3.status, 401);
      assert.equal(r3.body.error, 'UNKNOWN_PROVIDER');
      assert.equal(await f.store.count(p.id), 0);
      assert.equal(f.audit.ofType('auth.failure').length, before + 3);
    });

    test('tampered batch: a changed line breaks the signature; a re-signed changed record fails its hash', async () => {
      const p = newProvider();
      register(f.keys, p);
      const t = new TrailBuilder();
      t.add(4);
      const b = batchOf(p, t.range(1, 4));
      b.records[2] = (b.records[2] as string).replace('"tokens_processed":3', '"tokens_processed":4');
      const r = await post(f.app, b);
      assert.equal(r.status, 401);
      assert.equal(r.body.error, 'BAD_SIGNATURE');
      // A provider (or a thief of its key) signing a record whose content no longer matches its hash.
      const recs = t.range(1, 4).map((x) => ({ ...x }));
      (recs[2] as { line: string }).line = (recs[2] as { line: string }).line.replace(
        '"tokens_processed":3',
        '"tokens_processed":4',
      );
      const iv = f.audit.ofType('security.integrity_violation').length;
      const r2 = await post(f.app, batchOf(p, recs));
      assert.equal(r2.status, 400);
      assert.equal(r2.body.error, 'RECORD_INVALID');
      assert.equal(r2.body.seq, 3);
      assert.match(String(r2.body.message), /hash does not match/);
      assert.equal(f.audit.ofType('security.integrity_violation').length, iv + 1);
      // A record with an extra (unhashed) member, or not in canonical form, is refused too.
      const extra = t
        .range(1, 1)
        .map((x) => ({ ...x, line: x.line.replace('{"audit_id"', '{"x":1,"audit_id"') }));
      const r3 = await post(f.app, batchOf(p, extra));
      assert.equal(r3.status, 400);
      assert.match(String(r3.body.message), /unknown field "x"/);
      assert.equal(await f.store.count(p.id), 0);
    });

    test('schema validation names the field and the rule', async () => {
      const p = newProvider();
      register(f.keys, p);
      const t = new TrailBuilder();
      t.add(1);
      const b = { ...batchOf(p, t.range(1, 1)), first_seq: 0 };
      const r = await post(f.app, b);
      assert.equal(r.status, 400);
      assert.equal(r.body.error, 'INVALID_REQUEST');
      assert.match(String(r.body.message), /first_seq/);
      assert.match(String(r.body.message), />= 1/);
    });

    test('duplicates are acknowledged idempotently; an overlapping batch stores only the new records', async () => {
      const p = newProvider();
      register(f.keys, p);
      const t = new TrailBuilder();
      t.add(20);
      const b = batchOf(p, t.range(1, 10));
      assert.equal((await post(f.app, b)).status, 200);
      const dup = await post(f.app, b);
      assert.equal(dup.status, 200);
      assert.equal(dup.body.status, 'duplicate');
      assert.equal(dup.body.duplicates, 10);
      assert.equal((dup.body.receipt as { last_seq: number }).last_seq, 10);
      const overlap = await post(f.app, batchOf(p, t.range(6, 20)));
      assert.equal(overlap.status, 200);
      assert.equal(overlap.body.status, 'accepted');
      assert.equal(overlap.body.stored, 10);
      assert.equal(overlap.body.duplicates, 5);
      assert.equal(await f.store.count(p.id), 20);
      // An old sub-range is a duplicate too; its receipt names the current head.
      const old = await post(f.app, batchOf(p, t.range(3, 4)));
      assert.equal(old.body.status, 'duplicate');
      assert.equal((old.body.receipt as { last_seq: number }).last_seq, 20);
    });

    test('a gap is refused with 409 and the expected seq/hash, and recorded', async () => {
      const p = newProvider();
      register(f.keys, p);
      const t = new TrailBuilder();
      t.add(10);
      await post(f.app, batchOf(p, t.range(1, 4)));
      const iv = f.audit.ofType('security.integrity_violation').length;
      const r = await post(f.app, batchOf(p, t.range(7, 10)));
      assert.equal(r.status, 409);
      assert.equal(r.body.error, 'GAP');
      assert.equal(r.body.expected_seq, 5);
      assert.equal(r.body.expected_hash, t.recs[3]?.hash);
      const ev = f.audit.ofType('security.integrity_violation');
      assert.equal(ev.length, iv + 1);
      assert.equal((ev[ev.length - 1] as { resource_id: string }).resource_id, p.id);
      // A first batch that does not start at seq 1 is a gap as well.
      const q = newProvider();
      register(f.keys, q);
      const r2 = await post(f.app, batchOf(q, t.range(2, 3)));
      assert.equal(r2.status, 409);
      assert.equal(r2.body.expected_seq, 1);
      assert.equal(r2.body.expected_hash, GENESIS_HASH);
      assert.equal(await f.store.count(p.id), 4);
    });

    test('a fork (different record at a stored seq, or a chain not continuing the head) is refused and recorded', async () => {
      const p = newProvider();
      register(f.keys, p);
      const a = new TrailBuilder();
      a.add(6);
      const b = new TrailBuilder('worker-1'); // another history of the same provider
      b.add(8);
      await post(f.app, batchOf(p, a.range(1, 6)));
      const iv = f.audit.ofType('security.integrity_violation').length;
      // Overlaps stored seqs with different records.
      const r = await post(f.app, batchOf(p, b.range(5, 8)));
      assert.equal(r.status, 409);
      assert.equal(r.body.error, 'FORK');
      assert.equal(r.body.conflict_seq, 5);
      assert.equal(r.body.expected_seq, 7);
      assert.equal(r.body.expected_hash, a.lastHash);
      // Continues at the right seq but not from the stored head.
      const r2 = await post(f.app, batchOf(p, b.range(7, 8)));
      assert.equal(r2.status, 409);
      assert.equal(r2.body.error, 'FORK');
      assert.equal(r2.body.conflict_seq, 7);
      assert.equal(f.audit.ofType('security.integrity_violation').length, iv + 2);
      const last = f.audit.ofType('security.integrity_violation').at(-1) as { severity: string };
      assert.equal(last.severity, 'critical');
      assert.equal(await f.store.count(p.id), 6);
    });

    test('concurrent batches at the same position: exactly one is accepted', async () => {
      const p = newProvider();
      register(f.keys, p);
      const base = new TrailBuilder();
      base.add(2);
      await post(f.app, batchOf(p, base.range(1, 2)));
      // Eight different continuations of seq 3..5 (each a valid chain from the head), sent at once.
      const forks = Array.from({ length: 8 }, () => {
        const t = new TrailBuilder();
        t.recs = base.recs.slice();
        t.add(3);
        return batchOf(p, t.range(3, 5));
      });
      const res = await Promise.all(forks.map((b) => post(f.app, b)));
      const ok = res.filter((r) => r.status === 200);
      assert.equal(ok.length, 1, JSON.stringify(res.map((r) => r.status)));
      assert.ok(
        res.filter((r) => r.status !== 200).every((r) => r.status === 409 && r.body.error === 'FORK'),
      );
      assert.equal(await f.store.count(p.id), 5);
      // The same batch sent eight times at once: one accepted, the rest acknowledged as duplicates.
      const t2 = new TrailBuilder();
      const q = newProvider();
      register(f.keys, q);
      t2.add(50);
      const same = batchOf(q, t2.range(1, 50));
      const res2 = await Promise.all(Array.from({ length: 8 }, () => post(f.app, same)));
      assert.deepEqual(res2.map((r) => r.status).sort(), Array(8).fill(200));
      assert.equal(res2.filter((r) => r.body.status === 'accepted').length, 1);
      assert.equal(await f.store.count(q.id), 50);
    });

    test('append-only: UPDATE, DELETE and TRUNCATE fail for the app role (privileges) and the owner (triggers)', async () => {
      const p = newProvider();
      register(f.keys, p);
      const t = new TrailBuilder();
      t.add(3);
      await post(f.app, batchOf(p, t.range(1, 3)));
      const s = `"${f.store.schema}"`;
      for (const sql of [
        `UPDATE ${s}.records SET line = 'x' WHERE provider_id = $1`,
        `DELETE FROM ${s}.records WHERE provider_id = $1`,
        `UPDATE ${s}.batches SET signature = 'x' WHERE provider_id = $1`,
        `DELETE FROM ${s}.batches WHERE provider_id = $1`,
      ]) {
        await assert.rejects(f.store.client.query(sql, [p.id]), /permission denied/, `app role: ${sql}`);
        await assert.rejects(f.ownerQuery(sql, [p.id]), /append-only/, `owner: ${sql}`);
      }
      await assert.rejects(f.store.client.query(`TRUNCATE ${s}.records`), /permission denied/);
      await assert.rejects(f.ownerQuery(`TRUNCATE {s}.records`), /append-only/);
      await assert.rejects(f.ownerQuery(`TRUNCATE {s}.batches CASCADE`), /append-only/);
      assert.equal(await f.store.count(p.id), 3);
      const rows = await f.store.query({ providerId: p.id, limit: 10 });
      assert.deepEqual(
        rows.map((r) => r.line),
        t.recs.map((r) => r.line),
      );
    });

    test('cursor pagination never skips a row that commits after a page was read', {
      skip: engine !== 'postgres',
    }, async () => {
      // An append that has drawn its ids but not committed yet (a second connection, same protocol).
      const c1 = new pg.Client({ connectionString: PG_URL });
      await c1.connect();
      const h = { authorization: `Bearer ${TOKENS.admin}`, 'x-admin-reason': 'test' };
      try {
        await c1.query('BEGIN');
        const r = await c1.query(`SELECT "${f.store.schema}".allocate_record_ids(3) AS ids`);
        const inflight = (r.rows[0] as { ids: string[] }).ids.map(Number);
        // Meanwhile another provider's batch commits with higher ids.
        const p = newProvider();
        register(f.keys, p);
        const t = new TrailBuilder();
        t.add(4);
        assert.equal((await post(f.app, batchOf(p, t.range(1, 4)))).status, 200);
        const page = await get(f.app, `/v1/events?provider=${p.id}`, h);
        assert.deepEqual(page.body.events, [], 'rows above an in-flight allocation are held back');
        const all = await get(f.app, '/v1/events?limit=1000', h);
        assert.ok((all.body.events as Array<{ id: number }>).every((e) => e.id < (inflight[0] as number)));
        await c1.query('ROLLBACK');
        const after = await get(f.app, `/v1/events?provider=${p.id}`, h);
        assert.equal((after.body.events as unknown[]).length, 4);
      } finally {
        await c1.end();
      }
    });

    test('security events from one client are rate limited and the excess is summarized, not lost', async () => {
      const audit = new MemoryAudit();
      const app = await buildCollectorServer({
        store: f.store,
        keys: f.keys,
        signingKey: f.collectorKey,
        audit,
        securityEvents: { perWindow: 3 },
      });
      try {
        for (let i = 0; i < 10; i++) {
          const r = await get(app, '/v1/events', { authorization: `Bearer wrong-${i}` });
          assert.equal(r.status, 401);
        }
        assert.equal(audit.ofType('auth.failure').length, 3);
        assert.equal(audit.ofType('audit.events_dropped').length, 0);
      } finally {
        await app.close();
      }
      const d = audit.ofType('audit.events_dropped') as Array<{ count: number; reason: string }>;
      assert.equal(d.length, 1);
      assert.equal(d[0]?.count, 7);
      assert.match(d[0]?.reason ?? '', /auth\.failure .*127\.0\.0\.1/);
    });

    describe('query API', () => {
      const p = newProvider('q');
      const t = new TrailBuilder();
      before(async () => {
        register(f.keys, p);
        t.add(40, (seq) => ({
          type: seq % 5 === 0 ? 'vram.sealed' : 'data.inference_executed',
          timestamp: '2026-11-27T10:00:00.000Z',
          ...(seq % 5 === 0
            ? {
                shard_id: `shard-${seq}`,
                gpu_device: 0,
                vram_bytes: 1024,
                digest: 'a'.repeat(64),
                worker_id: 'w1',
              }
            : {
                customer_id: seq % 2 === 0 ? 'cust-acme' : 'cust-globex',
                job_id: `job-${seq}`,
                model_ref: 'm',
                tokens_processed: 1,
                result: { status: 'success' },
              }),
        }));
        assert.equal((await post(f.app, batchOf(p, t.range(1, 40)))).status, 200);
      });

      test('no or bad token: 401, recorded as auth.failure', async () => {
        const n = f.audit.ofType('auth.failure').length;
        assert.equal((await get(f.app, '/v1/events')).status, 401);
        const r = await get(f.app, '/v1/events', { authorization: 'Bearer nope-not-a-token' });
        assert.equal(r.status, 401);
        assert.equal(r.body.error, 'UNAUTHORIZED');
        assert.equal(f.audit.ofType('auth.failure').length, n + 2);
        assert.ok(!JSON.stringify(f.audit.events).includes('nope-not-a-token'), 'token never recorded');
      });

      test('a customer token sees only its customer_id', async () => {
        const r = await get(f.app, `/v1/events?provider=${p.id}&limit=1000`, {
          authorization: `Bearer ${TOKENS.acme}`,
        });
        assert.equal(r.status, 200);
        const evs = r.body.events as Array<{ record: { event: { customer_id?: string } } }>;
        assert.equal(evs.length, t.recs.filter((_, i) => (i + 1) % 5 !== 0 && (i + 1) % 2 === 0).length);
        assert.ok(evs.every((e) => e.record.event.customer_id === 'cust-acme'));
        const other = await get(f.app, '/v1/events?customer_id=cust-globex', {
          authorization: `Bearer ${TOKENS.acme}`,
        });
        assert.equal(other.status, 403);
        // No customer sees events without a customer_id (vram.sealed here).
        const sealed = await get(f.app, `/v1/events?type=vram.sealed&provider=${p.id}`, {
          authorization: `Bearer ${TOKENS.globex}`,
        });
        assert.deepEqual(sealed.body.events, []);
      });

      test('a provider token sees only its own provider', async () => {
        f.keys.tokens.set(tokenHash('tok-provider-ops-123'), {
          name: 'p-ops',
          role: 'provider',
          providerId: p.id,
        });
        const h = { authorization: 'Bearer tok-provider-ops-123' };
        const r = await get(f.app, '/v1/events?limit=1000', h);
        assert.equal(r.status, 200);
        const evs = r.body.events as Array<{ provider_id: string }>;
        assert.equal(evs.length, 40);
        assert.ok(evs.every((e) => e.provider_id === p.id));
        assert.equal((await get(f.app, '/v1/events?provider=someone-else', h)).status, 403);
      });

      test('an admin query needs X-Admin-Reason and is recorded before it is answered', async () => {
        const n = f.audit.ofType('audit.admin_query').length;
        const r = await get(f.app, `/v1/events?provider=${p.id}`, {
          authorization: `Bearer ${TOKENS.admin}`,
        });
        assert.equal(r.status, 403);
        assert.equal(r.body.error, 'ADMIN_REASON_REQUIRED');
        assert.equal(f.audit.ofType('audit.admin_query').length, n);
        const ok = await get(f.app, `/v1/events?provider=${p.id}&type=vram.sealed`, {
          authorization: `Bearer ${TOKENS.admin}`,
          'x-admin-reason': 'SOC2 evidence request #42',
        });
        assert.equal(ok.status, 200);
        assert.equal((ok.body.events as unknown[]).length, 8);
        const q = f.audit.ofType('audit.admin_query');
        assert.equal(q.length, n + 1);
        const last = q[q.length - 1] as {
          actor: { user_id: string };
          reason: string;
          query: Record<string, unknown>;
        };
        assert.equal(last.actor.user_id, 'alice-admin');
        assert.equal(last.reason, 'SOC2 evidence request #42');
        assert.equal(last.query.provider, p.id);
        assert.equal(last.query.type, 'vram.sealed');
        // When the collector's trail cannot record it, the admin query is refused.
        f.audit.failing = true;
        try {
          const refused = await get(f.app, `/v1/events?provider=${p.id}`, {
            authorization: `Bearer ${TOKENS.admin}`,
            'x-admin-reason': 'x',
          });
          assert.equal(refused.status, 503);
        } finally {
          f.audit.failing = false;
        }
      });

      test('filters (type, shard_id, actor, time range) and cursor pagination', async () => {
        const h = { authorization: `Bearer ${TOKENS.admin}`, 'x-admin-reason': 'test' };
        const shard = await get(f.app, `/v1/events?shard_id=shard-10`, h);
        assert.deepEqual(
          (shard.body.events as Array<{ seq: number }>).map((e) => e.seq),
          [10],
        );
        const range = await get(
          f.app,
          `/v1/events?provider=${p.id}&since=2026-11-27T10:00:05.000Z&until=2026-11-27T10:00:08.000Z`,
          h,
        );
        assert.deepEqual(
          (range.body.events as Array<{ seq: number }>).map((e) => e.seq),
          [5, 6, 7],
        );
        const seen: number[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const url: string = `/v1/events?provider=${p.id}&limit=7${cursor ? `&cursor=${cursor}` : ''}`;
          const r = await get(f.app, url, h);
          assert.equal(r.status, 200);
          for (const e of r.body.events as Array<{ seq: number }>) seen.push(e.seq);
          cursor = r.body.next_cursor as string | null;
          pages++;
        } while (cursor && pages < 20);
        assert.deepEqual(
          seen,
          t.recs.map((r) => r.seq),
        );
        assert.equal(pages, 6);
        const bad = await get(f.app, '/v1/events?cursor=Zm9v', h);
        assert.equal(bad.status, 400);
      });

      test('hashes endpoint serves seq/hash for comparison', async () => {
        const r = await get(f.app, `/v1/providers/${p.id}/hashes?from_seq=39&limit=5`);
        assert.deepEqual(r.body.hashes, [
          { seq: 39, hash: t.recs[38]?.hash },
          { seq: 40, hash: t.recs[39]?.hash },
        ]);
      });
    });
  });
}

test('sealRecord-built lines are what the collector expects (sanity of the fixture)', () => {
  const { line } = sealRecord({
    seq: 1,
    audit_id: 'a',
    time: '2026-11-27T10:00:00.000Z',
    service_id: 's',
    eventJson: '{"type":"x"}',
    prev_hash: GENESIS_HASH,
  });
  assert.ok(line.startsWith('{"audit_id":"a"'));
});
