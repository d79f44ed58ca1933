/**
 * The collector as a checkpoint witness, on real PostgreSQL and on PGlite: accepted checkpoints
 * (recomputed root over the stored records), bad signature, wrong origin, size beyond the stored
 * records, rewritten history (root mismatch, recorded), idempotent resubmission, consistency proofs,
 * append-only table, and the cosigned latest checkpoint verifiable with both keys.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  consistencyProof,
  MemoryNodeStore,
  MerkleTree,
  openNote,
  recordLeafHash,
  rootOfLeafHashes,
  SignerKey,
  signCheckpoint,
  VerifierKey,
  verifyCheckpoint,
} from '@vramseal/audit';
import { CompactRange } from '../src/compact-range.js';
import { parseKeys } from '../src/config.js';
import { CheckpointWitness, cosignNote } from '../src/witness.js';
import {
  batchOf,
  ENGINES,
  get,
  newProvider,
  openServer,
  type ProviderKey,
  post,
  register,
  type ServerFixture,
  TrailBuilder,
} from './helpers.js';

const ORIGIN = 'vramseal/worker-1';

function rootOf(t: TrailBuilder, size: number): Buffer {
  return rootOfLeafHashes(t.recs.slice(0, size).map((r) => recordLeafHash(r.hash)));
}

function checkpointOf(t: TrailBuilder, size: number, signer: SignerKey, origin = ORIGIN): string {
  return signCheckpoint(
    { origin, size, root: rootOf(t, size), time: new Date(Date.UTC(2026, 10, 27, 6, 0, size)).toISOString() },
    signer,
  );
}

test('compact range: root equals the RFC 9162 reference for every size 0..70; frontier round-trips', () => {
  const t = new TrailBuilder();
  t.add(70);
  const r = CompactRange.empty();
  for (let n = 0; n <= 70; n++) {
    assert.ok(r.root().equals(rootOf(t, n)), `size ${n}`);
    const back = CompactRange.fromHex(n, r.toHex());
    assert.ok(back.root().equals(r.root()), `restored size ${n}`);
    if (n < 70) r.appendRecordHash((t.recs[n] as { hash: string }).hash);
  }
  assert.throws(
    () => CompactRange.fromHex(2, ['00'.repeat(32), '11'.repeat(32)]),
    /has 1 frontier hashes, got 2/,
  );
  assert.throws(() => CompactRange.fromHex(3, ['00'.repeat(32)]), /frontier hash 1 is not 64 hex/);
});

test('keys file: checkpoint_keys need checkpoint_origin; a file without them stays valid', () => {
  const p = newProvider();
  const signer = SignerKey.generate('w1');
  assert.equal(parseKeys({ providers: { [p.id]: { public_keys: [p.publicKey] } } }).checkpoints?.size, 0);
  const k = parseKeys({
    providers: {
      [p.id]: {
        public_keys: [p.publicKey],
        checkpoint_keys: [signer.verifier.toString()],
        checkpoint_origin: ORIGIN,
      },
    },
  });
  assert.equal(k.checkpoints?.get(p.id)?.origin, ORIGIN);
  assert.throws(
    () =>
      parseKeys({
        providers: { [p.id]: { public_keys: [p.publicKey], checkpoint_keys: [signer.verifier.toString()] } },
      }),
    new RegExp(`providers\\.${p.id}\\.checkpoint_origin is required`),
  );
  assert.throws(
    () =>
      parseKeys({
        providers: {
          [p.id]: { public_keys: [p.publicKey], checkpoint_keys: ['nope'], checkpoint_origin: ORIGIN },
        },
      }),
    new RegExp(`providers\\.${p.id}\\.checkpoint_keys\\[0\\]`),
  );
});

test('cosignNote adds one line verifiable with the witness key and keeps the provider signature', () => {
  const prov = SignerKey.generate('prov');
  const wit = SignerKey.generate('wit');
  const t = new TrailBuilder();
  t.add(3);
  const note = checkpointOf(t, 3, prov);
  const co = cosignNote(note, wit);
  assert.ok(co.startsWith(note));
  assert.equal(co.split('\n').filter((l) => l.startsWith('\u2014 ')).length, 2);
  assert.equal(openNote(co, prov.verifier), openNote(co, wit.verifier));
  assert.equal(cosignNote(co, wit), co, 'idempotent');
});

for (const engine of ENGINES) {
  describe(`checkpoint witness on ${engine}`, () => {
    let f: ServerFixture;
    let p: ProviderKey;
    let signer: SignerKey;
    let witnessKey: VerifierKey;
    const t = new TrailBuilder();

    before(async () => {
      f = await openServer(engine);
      p = newProvider();
      register(f.keys, p);
      signer = SignerKey.generate('vramseal-worker-1');
      f.keys.checkpoints?.set(p.id, { origin: ORIGIN, keys: [signer.verifier] });
      t.add(20);
      assert.equal((await post(f.app, batchOf(p, t.range(1, 20)))).status, 200);
      const c = await get(f.app, '/v1/collector');
      witnessKey = VerifierKey.parse(c.body.witness_key as string);
    });
    after(async () => {
      await f?.close();
    });

    const submit = async (checkpoint: string, extra: Record<string, unknown> = {}, id = p.id) => {
      const r = await f.app.inject({
        method: 'POST',
        url: `/v1/providers/${id}/checkpoints`,
        payload: { checkpoint, ...extra },
      });
      return { status: r.statusCode, body: r.json() as Record<string, unknown> };
    };

    test('migration 2 created the checkpoints table', () => {
      assert.equal(f.migration.schemaVersion, 2);
    });

    test('accepts checkpoints whose root the collector recomputes; cosigned; idempotent', async () => {
      const r10 = await submit(checkpointOf(t, 10, signer));
      assert.equal(r10.status, 200, JSON.stringify(r10.body));
      assert.equal(r10.body.status, 'accepted');
      assert.equal(r10.body.tree_size, 10);
      assert.equal(r10.body.root_hash, rootOf(t, 10).toString('hex'));
      const co = r10.body.cosigned_note as string;
      assert.equal(openNote(co, witnessKey), openNote(co, signer.verifier));
      // The next one extends from the stored frontier (records 11..20 only).
      const r20 = await submit(checkpointOf(t, 20, signer));
      assert.equal(r20.status, 200, JSON.stringify(r20.body));
      assert.equal(r20.body.status, 'accepted');
      // Same checkpoint again, and a re-signed one of the same tree (other time line): duplicates.
      const again = await submit(checkpointOf(t, 10, signer));
      assert.equal(again.status, 200);
      assert.equal(again.body.status, 'duplicate');
      assert.equal(again.body.cosigned_note, co);
      // An older checkpoint that arrives late, consistent with the stored records: accepted.
      const r5 = await submit(checkpointOf(t, 5, signer));
      assert.equal(r5.status, 200);
      assert.equal(r5.body.status, 'accepted');
      const rows = (await f.ownerQuery(
        'SELECT tree_size::int AS n FROM {s}.checkpoints WHERE provider_id = $1 ORDER BY tree_size',
        [p.id],
      )) as Array<{ n: number }>;
      assert.deepEqual(
        rows.map((x) => x.n),
        [5, 10, 20],
      );
    });

    test('latest: the largest witnessed checkpoint, cosigned, verifiable with only the two public keys', async () => {
      const r = await get(f.app, `/v1/providers/${p.id}/checkpoints/latest`);
      assert.equal(r.status, 200);
      assert.equal(r.body.tree_size, 20);
      assert.equal(r.body.witness_key, witnessKey.toString());
      const co = r.body.cosigned_note as string;
      const cp = verifyCheckpoint(co, witnessKey, { origin: ORIGIN });
      assert.equal(cp.size, 20);
      assert.ok(cp.root.equals(rootOf(t, 20)));
      verifyCheckpoint(co, signer.verifier, { origin: ORIGIN });
      // Tampering with the cosigned note breaks the witness signature.
      assert.throws(() => openNote(co.replace('\n20\n', '\n21\n'), witnessKey), /does not verify/);
    });

    test('bad signature: 401, recorded as auth.failure', async () => {
      const before = f.audit.ofType('auth.failure').length;
      const other = SignerKey.generate('vramseal-worker-1'); // same name, other key
      const r = await submit(checkpointOf(t, 20, other));
      assert.equal(r.status, 401);
      assert.equal(r.body.error, 'BAD_SIGNATURE');
      const forged = checkpointOf(t, 20, signer).replace(
        rootOf(t, 20).toString('base64'),
        rootOf(t, 19).toString('base64'),
      );
      const r2 = await submit(forged);
      assert.equal(r2.status, 401);
      assert.equal(f.audit.ofType('auth.failure').length, before + 2);
      const junk = await submit('not a note');
      assert.equal(junk.status, 400);
      assert.equal(junk.body.error, 'INVALID_CHECKPOINT');
    });

    test('wrong origin: 400 naming both origins', async () => {
      const r = await submit(checkpointOf(t, 20, signer, 'vramseal/other'));
      assert.equal(r.status, 400);
      assert.equal(r.body.error, 'ORIGIN_MISMATCH');
      assert.match(r.body.message as string, /vramseal\/other.*vramseal\/worker-1/);
    });

    test('tree size beyond the stored records: 409 with the stored size; accepted once shipped', async () => {
      const t2 = new TrailBuilder();
      const q = newProvider();
      register(f.keys, q);
      f.keys.checkpoints?.set(q.id, { origin: ORIGIN, keys: [signer.verifier] });
      t2.add(12);
      assert.equal((await post(f.app, batchOf(q, t2.range(1, 8)))).status, 200);
      const r = await submit(checkpointOf(t2, 12, signer), {}, q.id);
      assert.equal(r.status, 409);
      assert.equal(r.body.error, 'SIZE_BEYOND_RECORDS');
      assert.equal(r.body.stored_size, 8);
      assert.equal((await post(f.app, batchOf(q, t2.range(9, 12)))).status, 200);
      assert.equal((await submit(checkpointOf(t2, 12, signer), {}, q.id)).status, 200);
    });

    test('rewritten history: root mismatch → 409 + security.integrity_violation, nothing stored', async () => {
      const before = f.audit.ofType('security.integrity_violation').length;
      // The provider rewrote its trail (same length, other records) and signed a checkpoint of it.
      const fake = new TrailBuilder('worker-1', Date.parse('2026-11-27T11:00:00.000Z'));
      fake.add(20);
      for (const size of [15, 10, 3]) {
        const r = await submit(checkpointOf(fake, size, signer));
        assert.equal(r.status, 409, `size ${size}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error, 'ROOT_MISMATCH');
        assert.equal(r.body.computed_root, rootOf(t, size).toString('hex'));
      }
      const ev = f.audit.ofType('security.integrity_violation').slice(before) as unknown as Array<
        Record<string, unknown>
      >;
      assert.equal(ev.length, 3);
      assert.equal(ev[0]?.resource_type, 'transparency_checkpoint');
      assert.equal(ev[0]?.resource_id, `${p.id}@15`);
      assert.equal(ev[0]?.expected_hash, rootOf(t, 15).toString('hex'));
      assert.equal(ev[0]?.actual_hash, rootOf(fake, 15).toString('hex'));
      const rows = (await f.ownerQuery(
        'SELECT count(*)::int AS n FROM {s}.checkpoints WHERE provider_id = $1 AND tree_size IN (3, 15)',
        [p.id],
      )) as Array<{ n: number }>;
      assert.equal(rows[0]?.n, 0);
      const latest = await get(f.app, `/v1/providers/${p.id}/checkpoints/latest`);
      assert.equal(latest.body.tree_size, 20);
    });

    test('consistency proof: a valid one is accepted, a wrong one refused', async () => {
      const q = newProvider();
      register(f.keys, q);
      f.keys.checkpoints?.set(q.id, { origin: ORIGIN, keys: [signer.verifier] });
      const t3 = new TrailBuilder();
      t3.add(30);
      assert.equal((await post(f.app, batchOf(q, t3.range(1, 30)))).status, 200);
      assert.equal((await submit(checkpointOf(t3, 7, signer), {}, q.id)).status, 200);
      const tree = new MerkleTree(new MemoryNodeStore());
      for (const r of t3.recs) tree.appendRecordHash(r.hash);
      const good = consistencyProof(tree, 7, 30).map((b) => b.toString('base64'));
      const bad = consistencyProof(tree, 8, 30).map((b) => b.toString('base64'));
      const rb = await submit(checkpointOf(t3, 30, signer), { consistency_proof: bad }, q.id);
      assert.equal(rb.status, 400);
      assert.equal(rb.body.error, 'BAD_CONSISTENCY_PROOF');
      const rg = await submit(checkpointOf(t3, 30, signer), { consistency_proof: good }, q.id);
      assert.equal(rg.status, 200, JSON.stringify(rg.body));
    });

    test('providers without checkpoint keys, unknown providers, no checkpoint yet', async () => {
      const q = newProvider();
      register(f.keys, q);
      const r = await submit(checkpointOf(t, 1, signer), {}, q.id);
      assert.equal(r.status, 403);
      assert.equal(r.body.error, 'NOT_WITNESSED');
      assert.equal(
        (await get(f.app, `/v1/providers/${q.id}/checkpoints/latest`)).body.error,
        'NO_CHECKPOINT',
      );
      assert.equal((await submit(checkpointOf(t, 1, signer), {}, 'nobody-here')).status, 401);
      assert.equal((await get(f.app, '/v1/providers/nobody-here/checkpoints/latest')).status, 404);
    });

    test('concurrent submissions of one checkpoint: one accepted, the others duplicates, one row', async () => {
      const q = newProvider();
      register(f.keys, q);
      f.keys.checkpoints?.set(q.id, { origin: ORIGIN, keys: [signer.verifier] });
      const t5 = new TrailBuilder();
      t5.add(9);
      assert.equal((await post(f.app, batchOf(q, t5.range(1, 9)))).status, 200);
      const note = checkpointOf(t5, 9, signer);
      const rs = await Promise.all([1, 2, 3, 4].map(() => submit(note, {}, q.id)));
      assert.deepEqual(
        rs.map((r) => r.status),
        [200, 200, 200, 200],
      );
      assert.deepEqual(rs.map((r) => r.body.status).sort(), [
        'accepted',
        'duplicate',
        'duplicate',
        'duplicate',
      ]);
      const rows = (await f.ownerQuery(
        'SELECT count(*)::int AS n FROM {s}.checkpoints WHERE provider_id = $1',
        [q.id],
      )) as Array<{ n: number }>;
      assert.equal(rows[0]?.n, 1);
    });

    test('append-only: UPDATE and DELETE on checkpoints fail', async () => {
      await assert.rejects(
        f.ownerQuery(`UPDATE {s}.checkpoints SET root_hash = $1`, ['00'.repeat(32)]),
        /append-only/,
      );
      await assert.rejects(f.ownerQuery('DELETE FROM {s}.checkpoints'), /append-only/);
    });

    test('root computed in small chunks from the stored frontier equals the reference', async () => {
      const w = new CheckpointWitness(f.store, { signer: SignerKey.generate('w-chunk'), chunk: 3 });
      const q = newProvider();
      register(f.keys, q);
      const t4 = new TrailBuilder();
      t4.add(25);
      assert.equal((await post(f.app, batchOf(q, t4.range(1, 25)))).status, 200);
      for (const size of [4, 11, 25]) {
        const cp = verifyCheckpoint(checkpointOf(t4, size, signer), signer.verifier);
        const out = await w.witness(q.id, cp, signer.verifier.toString());
        assert.equal(out.kind, 'accepted', `size ${size}`);
      }
      assert.equal((await w.latest(q.id))?.treeSize, 25);
    });
  });
}
