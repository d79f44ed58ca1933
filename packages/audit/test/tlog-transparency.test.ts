import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { canonicalize } from '../src/canonical.js';
import { AuditLogger } from '../src/logger.js';
import { sealRecord } from '../src/record.js';
import { checkAgainstCheckpoint } from '../src/tlog/check-checkpoint.js';
import { splitNotes, verifyCheckpoint } from '../src/tlog/checkpoint.js';
import { SignerKey } from '../src/tlog/keys.js';
import { recordLeafHash, rootOfLeafHashes } from '../src/tlog/merkle.js';
import {
  buildConsistencyProof,
  buildInclusionProof,
  latestTrailCheckpoint,
  verifyProofBundle,
} from '../src/tlog/proof-bundle.js';
import { readTlogState } from '../src/tlog/store.js';
import { Transparency, witnessFileName } from '../src/tlog/transparency.js';

const quiet = pino({ level: 'silent' });
const signer = SignerKey.generate('vramseal.test/trail');

function event(i: number) {
  return {
    type: 'data.model_accessed' as const,
    timestamp: new Date(Date.UTC(2026, 10, 27, 4, 0, i)).toISOString(),
    customer_id: `cust-${i}`,
    model_ref: 'llama-3-8b@sha256:abc',
    access_type: 'inference',
  };
}

async function openLogger(dir: string): Promise<AuditLogger> {
  return AuditLogger.open({
    mode: 'local',
    dir,
    serviceId: 'worker-1',
    flush: { mode: 'batched', maxEvents: 8, maxDelayMs: 5 },
    logger: quiet,
  });
}

function trailLines(dir: string): { file: string; lines: string[] }[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.audit'))
    .sort()
    .map((file) => ({ file, lines: fs.readFileSync(join(dir, file), 'utf8').split('\n').filter(Boolean) }));
}

function allRecords(dir: string): Record<string, unknown>[] {
  return trailLines(dir).flatMap((f) => f.lines.map((l) => JSON.parse(l) as Record<string, unknown>));
}

async function writeTrail(
  dir: string,
  n: number,
  opts: { everyRecords?: number; witnessDir?: string; worker?: boolean } = {},
) {
  const log = await openLogger(dir);
  const tl = await Transparency.attach(log, {
    signer,
    worker: opts.worker ?? false,
    everyRecords: opts.everyRecords ?? 10,
    everyMs: 0,
    ...(opts.witnessDir ? { witnessDir: opts.witnessDir } : {}),
  });
  const seen: number[] = [];
  tl.on('checkpoint', (c) => seen.push(c.size));
  for (let i = 0; i < n; i++) {
    log.emit(event(i));
    if (i % 7 === 6) await log.flush();
  }
  await log.flush();
  await tl.checkpoint(); // let periodic ones settle
  await log.close();
  return { seen, tl };
}

for (const worker of [true, false])
  test(`live trail (${worker ? 'worker thread' : 'in-thread'}): periodic + close checkpoints, tree equals the RFC 9162 root over the record hashes`, async () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-live-'));
    const witness = fs.mkdtempSync(join(tmpdir(), 'tlog-witness-'));
    try {
      const { seen } = await writeTrail(dir, 40, { everyRecords: 10, witnessDir: witness, worker });
      const recs = allRecords(dir);
      assert.ok(recs.length >= 40, 'the trail holds the events and the checkpoint records');
      assert.deepEqual(
        recs.map((r) => r.seq),
        recs.map((_, i) => i + 1),
      );
      // audit.checkpoint events were recorded in the trail itself.
      const cpEvents = recs.filter((r) => (r.event as { type: string }).type === 'audit.checkpoint');
      assert.ok(cpEvents.length >= 2, `checkpoint events: ${cpEvents.length}`);
      const notes = splitNotes(fs.readFileSync(join(dir, 'checkpoints'), 'utf8'));
      assert.ok(notes.length >= 3, `checkpoints written: ${notes.length} (${seen.join(',')})`);
      const cps = notes.map((n) => verifyCheckpoint(n, signer.verifier, { origin: 'vramseal/worker-1' }));
      for (let i = 1; i < cps.length; i++)
        assert.ok((cps[i] as { size: number }).size >= (cps[i - 1] as { size: number }).size);
      const last = cps.at(-1) as { size: number; root: Buffer };
      assert.equal(last.size, recs.length, 'the close checkpoint covers every record');
      const leaves = recs.map((r) => recordLeafHash(r.hash as string));
      assert.deepEqual(last.root, rootOfLeafHashes(leaves));
      for (const c of cps) assert.deepEqual(c.root, rootOfLeafHashes(leaves.slice(0, c.size)));
      // Each recorded audit.checkpoint names a checkpoint that exists, by root and note hash.
      for (const e of cpEvents) {
        const ev = e.event as { tree_size: number; root_hash: string; checkpoint_hash: string };
        const match = cps.find((c) => c.size === ev.tree_size && c.noteHash === ev.checkpoint_hash);
        assert.ok(match, `checkpoint of size ${ev.tree_size}`);
        assert.equal(match.root.toString('hex'), ev.root_hash);
        assert.equal(match.noteHash, ev.checkpoint_hash);
      }
      assert.equal(readTlogState(dir)?.size, recs.length);
      // Witness copy.
      const w = splitNotes(fs.readFileSync(join(witness, witnessFileName('vramseal/worker-1')), 'utf8'));
      assert.deepEqual(w, notes);
      assert.equal((fs.statSync(join(dir, 'checkpoints')).mode & 0o777).toString(8), '600');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(witness, { recursive: true, force: true });
    }
  });

test('restart resumes the stored tree without rehashing; a lost tail since the last sync is re-read', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-restart-'));
  try {
    await writeTrail(dir, 15);
    const n1 = allRecords(dir).length;
    // Restart: the tree is already at the trail's size, nothing to re-read.
    let log = await openLogger(dir);
    let tl = await Transparency.attach(log, { signer, everyRecords: 1000, everyMs: 0, worker: false });
    assert.equal(tl.caughtUp, 0);
    assert.equal(tl.size, n1);
    for (let i = 0; i < 9; i++) log.emit(event(100 + i));
    await log.flush();
    assert.equal(tl.size, n1 + 9);
    // Simulate a crash: the tree's state.json is from before these 9 records.
    const stateBefore = readTlogState(dir);
    assert.equal(stateBefore?.size, n1);
    await tl.detach(); // detach syncs; write the old state back to simulate the lost sync
    fs.writeFileSync(
      join(dir, 'tlog', 'state.json'),
      `${JSON.stringify({ v: 1, size: n1, root: (stateBefore as { root: Buffer }).root.toString('hex') })}\n`,
    );
    await log.close();
    log = await openLogger(dir);
    tl = await Transparency.attach(log, { signer, everyRecords: 1000, everyMs: 0, worker: false });
    assert.equal(tl.caughtUp, 9, 'only the records after the durable size were re-read');
    const recs = allRecords(dir);
    assert.deepEqual(
      (await tl.head()).root,
      rootOfLeafHashes(recs.map((r) => recordLeafHash(r.hash as string))),
    );
    await log.close();
    const last = verifyCheckpoint(latestTrailCheckpoint(dir), signer.verifier);
    assert.equal(last.size, allRecords(dir).length);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('proofs from a real trail: inclusion of every record, consistency between checkpoints, offline verification', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-proofs-'));
  try {
    await writeTrail(dir, 30, { everyRecords: 8 });
    const notes = splitNotes(fs.readFileSync(join(dir, 'checkpoints'), 'utf8'));
    const latest = latestTrailCheckpoint(dir);
    const size = verifyCheckpoint(latest, signer.verifier).size;
    for (let seq = 1; seq <= size; seq++) {
      const b = await buildInclusionProof(dir, seq);
      const v = verifyProofBundle(JSON.parse(JSON.stringify(b)), signer.verifier, {
        origin: 'vramseal/worker-1',
      });
      assert.ok(v.ok, `seq ${seq}: ${v.reason}`);
    }
    // Against an older checkpoint too.
    const older = notes[1] as string;
    const olderSize = verifyCheckpoint(older, signer.verifier).size;
    const b = await buildInclusionProof(dir, 3, older);
    assert.equal(b.tree_size, olderSize);
    assert.ok(verifyProofBundle(b, signer.verifier).ok);
    await assert.rejects(buildInclusionProof(dir, olderSize + 1, older), { code: 'TLOG_BAD_INPUT' });
    // Tampering: record content, proof element, seq, wrong key, another checkpoint.
    const rec = JSON.parse(b.record) as { event: { customer_id: string } };
    rec.event.customer_id = 'someone-else';
    assert.match(
      verifyProofBundle({ ...b, record: canonicalize(rec) }, signer.verifier).reason ?? '',
      /hash/,
    );
    const p0 = Buffer.from(b.proof[0] as string, 'base64');
    p0[0] = (p0[0] as number) ^ 1;
    assert.equal(
      verifyProofBundle({ ...b, proof: [p0.toString('base64'), ...b.proof.slice(1)] }, signer.verifier).ok,
      false,
    );
    assert.equal(verifyProofBundle({ ...b, seq: 4 }, signer.verifier).ok, false);
    assert.match(
      verifyProofBundle(b, SignerKey.generate('vramseal.test/trail').verifier).reason ?? '',
      /not signed/,
    );
    assert.equal(
      verifyProofBundle(b, signer.verifier, { checkpointNote: latest }).ok,
      false,
      'size mismatch',
    );
    assert.equal(verifyProofBundle(b, signer.verifier, { origin: 'vramseal/other' }).ok, false);
    assert.equal(verifyProofBundle(null, signer.verifier).ok, false);
    assert.equal(verifyProofBundle({ type: 'nope' }, signer.verifier).ok, false);
    // Consistency between every pair of checkpoints.
    for (let i = 0; i < notes.length; i++) {
      for (let j = i; j < notes.length; j++) {
        const c = await buildConsistencyProof(dir, notes[i] as string, notes[j] as string);
        const v = verifyProofBundle(JSON.parse(JSON.stringify(c)), signer.verifier);
        assert.ok(v.ok, `${i}->${j}: ${v.reason}`);
      }
    }
    const c = await buildConsistencyProof(dir, notes[0] as string, latest);
    if (c.proof.length > 0) {
      const bad = Buffer.from(c.proof.at(-1) as string, 'base64');
      bad[5] = (bad[5] as number) ^ 0x80;
      assert.equal(
        verifyProofBundle({ ...c, proof: [...c.proof.slice(0, -1), bad.toString('base64')] }, signer.verifier)
          .ok,
        false,
      );
    }
    await assert.rejects(buildConsistencyProof(dir, latest, notes[0] as string), { code: 'TLOG_BAD_INPUT' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Rewrites the trail from record `fromSeq` on with a changed event, re-chaining every later record. */
function rewriteHistory(dir: string, fromSeq: number): void {
  let prev: string | undefined;
  for (const { file, lines } of trailLines(dir)) {
    const out = lines.map((line) => {
      const r = JSON.parse(line) as Record<string, unknown>;
      const seq = r.seq as number;
      if (seq < fromSeq) {
        prev = r.hash as string;
        return line;
      }
      const ev = r.event as Record<string, unknown>;
      if (seq === fromSeq) ev.customer_id = 'forged';
      const { line: l, hash } = sealRecord({
        seq,
        audit_id: r.audit_id as string,
        time: r.time as string,
        service_id: r.service_id as string,
        eventJson: canonicalize(ev),
        prev_hash: prev as string,
      });
      prev = hash;
      return l;
    });
    const p = join(dir, file);
    fs.chmodSync(p, 0o600);
    fs.writeFileSync(p, `${out.join('\n')}\n`);
  }
}

test('checkAgainstCheckpoint: clean trail ok; truncated trail vs older checkpoint; rewritten trail vs checkpoint', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-check-'));
  const work = fs.mkdtempSync(join(tmpdir(), 'tlog-check-work-'));
  try {
    await writeTrail(dir, 30, { everyRecords: 10 });
    const latest = latestTrailCheckpoint(dir);
    const size = verifyCheckpoint(latest, signer.verifier).size;
    const clean = await checkAgainstCheckpoint(dir, latest, signer.verifier, { origin: 'vramseal/worker-1' });
    assert.ok(clean.ok, JSON.stringify(clean.failures));
    assert.equal(clean.records, size);
    assert.ok(clean.storedTreeMatches);

    // Wrong key / wrong origin: the checkpoint itself is rejected.
    const wrongKey = await checkAgainstCheckpoint(dir, latest, SignerKey.generate('x').verifier);
    assert.deepEqual(
      wrongKey.failures.map((f) => f.kind),
      ['checkpoint_invalid'],
    );

    // Tail truncation: the chain still verifies, the checkpoint catches it.
    const cut = join(work, 'cut');
    fs.cpSync(dir, cut, { recursive: true });
    const files = trailLines(cut);
    const lastFile = files.at(-1) as { file: string; lines: string[] };
    fs.chmodSync(join(cut, lastFile.file), 0o600);
    fs.writeFileSync(join(cut, lastFile.file), `${lastFile.lines.slice(0, -5).join('\n')}\n`);
    const t = await checkAgainstCheckpoint(cut, latest, signer.verifier);
    assert.deepEqual(
      t.failures.map((f) => f.kind),
      ['truncated_trail'],
    );
    assert.equal(t.failures[0]?.seq, size - 4);
    assert.equal(t.failures[0]?.lastSeq, size);
    assert.match(t.failures[0]?.message ?? '', /intact prefix/);
    // An older checkpoint that the truncated trail still satisfies passes.
    const first = splitNotes(fs.readFileSync(join(dir, 'checkpoints'), 'utf8'))[0] as string;
    assert.ok((await checkAgainstCheckpoint(cut, first, signer.verifier)).ok);

    // History rewrite: record 7 changed, every later record re-chained (the chain verifies).
    const rw = join(work, 'rewritten');
    fs.cpSync(dir, rw, { recursive: true });
    rewriteHistory(rw, 7);
    const r = await checkAgainstCheckpoint(rw, latest, signer.verifier);
    assert.deepEqual(
      r.failures.map((f) => f.kind),
      ['history_rewritten'],
    );
    assert.equal(r.failures[0]?.seq, 7, 'located through the stored tree');
    // Without the stored tree (the attacker removed or rebuilt it): still detected, not located.
    fs.rmSync(join(rw, 'tlog'), { recursive: true });
    const r2 = await checkAgainstCheckpoint(rw, latest, signer.verifier);
    assert.deepEqual(
      r2.failures.map((f) => f.kind),
      ['history_rewritten'],
    );
    // Proof generation refuses a rewritten trail instead of producing a proof that cannot verify.
    await assert.rejects(buildInclusionProof(rw, 3, latest), { code: 'TLOG_TRAIL_MISMATCH' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test('timer checkpoints: taken when the trail grew, not for our own audit.checkpoint record', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-timer-'));
  try {
    const log = await openLogger(dir);
    const tl = await Transparency.attach(log, { signer, everyRecords: 1000, everyMs: 40, worker: false });
    const sizes: number[] = [];
    tl.on('checkpoint', (c) => sizes.push(c.size));
    for (let i = 0; i < 3; i++) log.emit(event(i));
    await log.flush();
    const until = Date.now() + 5000;
    while (sizes.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(sizes, [3]);
    // The checkpoint's own audit.checkpoint record (seq 4) must not trigger checkpoint after checkpoint.
    await log.flush();
    await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(sizes, [3]);
    log.emit(event(9));
    await log.flush();
    const until2 = Date.now() + 5000;
    while (sizes.length === 1 && Date.now() < until2) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(sizes, [3, 5]);
    await log.close();
    const recs = allRecords(dir);
    assert.equal(verifyCheckpoint(latestTrailCheckpoint(dir), signer.verifier).size, recs.length);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('files deleted by retention: their leaves come from the stored tree; without it the check says so', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-retention-'));
  try {
    const log = await AuditLogger.open({
      mode: 'local',
      dir,
      serviceId: 'worker-1',
      flush: { mode: 'batched', maxEvents: 4, maxDelayMs: 5 },
      rotation: { maxBytes: 1500 },
      logger: quiet,
    });
    const tl = await Transparency.attach(log, { signer, everyRecords: 1000, everyMs: 0, worker: false });
    for (let i = 0; i < 20; i++) log.emit(event(i));
    await log.flush();
    await tl.checkpoint();
    await log.close();
    const note = latestTrailCheckpoint(dir);
    const manifest = JSON.parse(fs.readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
      files: { name: string; state: string }[];
    };
    assert.ok(manifest.files.length >= 3, `rotated into ${manifest.files.length} files`);
    // Retention deleted the first file: entry kept as `deleted`, content gone.
    const first = manifest.files[0] as { name: string; state: string };
    first.state = 'deleted';
    fs.writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
    fs.rmSync(join(dir, first.name), { force: true });
    const r = await checkAgainstCheckpoint(dir, note, signer.verifier);
    assert.ok(r.ok, JSON.stringify(r.failures));
    assert.ok(r.leavesFromStoredTree > 0);
    fs.rmSync(join(dir, 'tlog'), { recursive: true });
    const r2 = await checkAgainstCheckpoint(dir, note, signer.verifier);
    assert.equal(r2.ok, false);
    assert.match(r2.failures[0]?.message ?? '', /deleted by retention/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Loggers to close even when an assertion fails (an open logger keeps the test process alive). */
const closers: (() => Promise<void>)[] = [];

for (const worker of [false, true])
  test(`attach to a logger that is writing (${worker ? 'worker' : 'in-thread'}): catch-up and live records join without gaps`, async () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-live-attach-'));
    try {
      const log = await openLogger(dir);
      closers.push(() => log.close());
      for (let i = 0; i < 300; i++) log.emit(event(i));
      const flushing = log.flush();
      // recordEvents off: a checkpoint record landing after head() would make the sizes differ.
      const tl = await Transparency.attach(log, {
        signer,
        everyRecords: 64,
        everyMs: 0,
        worker,
        recordEvents: false,
      });
      for (let i = 300; i < 600; i++) {
        log.emit(event(i));
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      await flushing;
      await log.flush();
      const head = await tl.head();
      const recs = allRecords(dir);
      assert.equal(head.size, recs.length);
      assert.deepEqual(head.root, rootOfLeafHashes(recs.map((r) => recordLeafHash(r.hash as string))));
      await log.close();
      const note = latestTrailCheckpoint(dir);
      assert.ok((await checkAgainstCheckpoint(dir, note, signer.verifier)).ok);
    } finally {
      for (const c of closers.splice(0)) await c().catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

test('a damaged stored tree refuses to attach (TLOG_CORRUPT); rebuild: true re-reads the trail', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-rebuild-'));
  try {
    await writeTrail(dir, 12);
    const state = readTlogState(dir) as { size: number };
    // Damage the last leaf (it is on the frontier when the size is odd; else damage its level's last node).
    let h = 0;
    while (Math.floor(state.size / 2 ** h) % 2 === 0) h++;
    const f = join(dir, 'tlog', `level-${String(h).padStart(2, '0')}.bin`);
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, Buffer.alloc(32, 0xee), 0, 32, (Math.floor(state.size / 2 ** h) - 1) * 32);
    fs.closeSync(fd);
    const log = await openLogger(dir);
    closers.push(() => log.close());
    await assert.rejects(Transparency.attach(log, { signer, everyMs: 0 }), { code: 'TLOG_CORRUPT' });
    const tl = await Transparency.attach(log, { signer, everyMs: 0, rebuild: true });
    assert.equal(tl.caughtUp, state.size);
    const recs = allRecords(dir);
    assert.deepEqual(
      (await tl.head()).root,
      rootOfLeafHashes(recs.map((r) => recordLeafHash(r.hash as string))),
    );
    await log.close();
    assert.ok((await checkAgainstCheckpoint(dir, latestTrailCheckpoint(dir), signer.verifier)).ok);
  } finally {
    for (const c of closers.splice(0)) await c().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('never sign a fork: after a rewrite or truncation behind its back, attach refuses (even with rebuild)', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-fork-'));
  try {
    await writeTrail(dir, 20, { everyRecords: 8 });
    // Rewritten and re-chained trail, tree rebuilt from it: the old checkpoints no longer hold.
    const rw = `${dir}-rw`;
    fs.cpSync(dir, rw, { recursive: true });
    rewriteHistory(rw, 3);
    let log = await openLogger(rw);
    closers.push(() => log.close());
    await assert.rejects(Transparency.attach(log, { signer, everyMs: 0, rebuild: true }), {
      code: 'TLOG_TRAIL_MISMATCH',
      message: /rewritten/,
    });
    await log.close();
    fs.rmSync(rw, { recursive: true, force: true });
    // Truncated trail (last records removed) with the tree discarded: a checkpoint covers more.
    const files = trailLines(dir);
    const last = files.at(-1) as { file: string; lines: string[] };
    fs.chmodSync(join(dir, last.file), 0o600);
    fs.writeFileSync(join(dir, last.file), `${last.lines.slice(0, -3).join('\n')}\n`);
    const m = JSON.parse(fs.readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
      files: Record<string, unknown>[];
    };
    const entry = m.files.at(-1) as Record<string, unknown>;
    const kept = JSON.parse(last.lines.at(-4) as string) as { seq: number; hash: string; time: string };
    Object.assign(entry, {
      last_seq: kept.seq,
      last_hash: kept.hash,
      last_time: kept.time,
      count: (entry.count as number) - 3,
    });
    entry.bytes = fs.statSync(join(dir, last.file)).size;
    fs.writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    log = await openLogger(dir);
    closers.push(() => log.close());
    await assert.rejects(Transparency.attach(log, { signer, everyMs: 0, rebuild: true }), {
      code: 'TLOG_TRAIL_MISMATCH',
      message: /truncated/,
    });
  } finally {
    for (const c of closers.splice(0)) await c().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('checkAgainstCheckpoint on hostile trail files (random bytes, huge line, invalid UTF-8) reports, never throws', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-hostile-'));
  try {
    await writeTrail(dir, 6);
    const note = latestTrailCheckpoint(dir);
    const file = trailLines(dir)[0]?.file as string;
    const p = join(dir, file);
    fs.chmodSync(p, 0o600);
    const original = fs.readFileSync(p);
    const cases: [Buffer, boolean][] = [
      [randomBytes(4096), false],
      [
        Buffer.concat([original.subarray(0, 200), Buffer.from([0xff, 0xfe, 0x0a]), original.subarray(200)]),
        false,
      ],
      [Buffer.from('{"seq":1}\n[]\nnull\n{"a":'.repeat(50)), false],
      // Junk after the committed records does not contradict the checkpoint (verifyTrail reports it).
      [Buffer.concat([original, Buffer.alloc(2 * 1024 * 1024, 0x7b), Buffer.from('\n\xff\n')]), true],
    ];
    for (const [junk, ok] of cases) {
      fs.writeFileSync(p, junk);
      const r = await checkAgainstCheckpoint(dir, note, signer.verifier);
      assert.equal(r.ok, ok, JSON.stringify(r.failures));
      assert.ok(r.failures.every((f) => ['truncated_trail', 'history_rewritten'].includes(f.kind)));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
