/**
 * The checkpoint witness client against a scripted collector (fake fetch): waits for the shipper's
 * ack, retries 5xx and network errors with backoff, treats a refusal as final, checks the
 * cosignature with the witness key, bounds its pending list, never posts after stop().
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import {
  CheckpointWitnessClient,
  emptyRoot,
  parseNote,
  SignerKey,
  signCheckpoint,
  signNote,
  TlogError,
} from '../src/index.js';

/** The collector's cosignature: one more signed-note line over the same text. */
function cosign(n: string, key: SignerKey): string {
  const text = parseNote(n).text;
  return n + signNote(text, [key]).slice(text.length + 1);
}

const prov = SignerKey.generate('prov');
const wit = SignerKey.generate('vramseal-collector');
const note = (size: number) =>
  signCheckpoint({ origin: 'vramseal/w', size, root: emptyRoot(), time: '2026-11-27T06:00:00.000Z' }, prov);

class FakeShipper extends EventEmitter {
  readonly url = 'http://127.0.0.1:9';
  readonly providerId = 'p1';
  acked = 0;
  status() {
    return { ackedSeq: this.acked };
  }
  ack(n: number) {
    this.acked = n;
    this.emit('ack');
  }
}

type Answer = number | 'throw' | { status: number; body: Record<string, unknown> };

function scripted(answers: Answer[]) {
  const posted: number[] = [];
  const f: typeof fetch = async (_url, init) => {
    const size = Number(parseNote(JSON.parse(String(init?.body)).checkpoint).text.split('\n')[1]);
    posted.push(size);
    const a = answers.shift() ?? 200;
    if (a === 'throw') throw Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const n = JSON.parse(String(init?.body)).checkpoint as string;
    const body =
      typeof a === 'object'
        ? a.body
        : a === 200
          ? { status: 'accepted', tree_size: size, cosigned_note: cosign(n, wit) }
          : { error: 'X', message: 'm' };
    return new Response(JSON.stringify(body), { status: typeof a === 'object' ? a.status : a });
  };
  return { f, posted };
}

const backoff = { initialMs: 5, maxMs: 10 };

test('waits until the shipper acknowledged the records, then posts; cosignature checked', async () => {
  const s = new FakeShipper();
  const { f, posted } = scripted([]);
  const c = new CheckpointWitnessClient({ shipper: s, fetch: f, backoff, witnessKey: wit.verifier });
  c.submit(note(5));
  c.submit(note(9));
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(posted, []);
  assert.equal(c.status().state, 'waiting');
  s.ack(6);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(posted, [5]);
  s.ack(9);
  await c.flush(2000);
  assert.deepEqual(posted, [5, 9]);
  assert.equal(c.status().witnessedSize, 9);
  assert.ok(c.status().cosignedNote?.includes('\u2014 vramseal-collector '));
  await c.stop();
});

test('5xx and network errors are retried with backoff; a 4xx refusal is final and reported', async () => {
  const { f, posted } = scripted([
    503,
    'throw',
    200,
    { status: 409, body: { error: 'ROOT_MISMATCH', message: 'rewritten' } },
  ]);
  const c = new CheckpointWitnessClient({ url: 'http://127.0.0.1:9/', providerId: 'p1', fetch: f, backoff });
  const errors: TlogError[] = [];
  c.on('error', (e: TlogError) => errors.push(e));
  c.submit(note(3));
  await c.flush(2000);
  assert.deepEqual(posted, [3, 3, 3]);
  assert.equal(c.status().failures, 2);
  assert.equal(c.status().witnessedSize, 3);
  c.submit(note(4));
  await c.flush(2000);
  assert.deepEqual(posted, [3, 3, 3, 4]);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof TlogError && errors[0].code === 'TLOG_WITNESS');
  assert.match(errors[0].message, /409 ROOT_MISMATCH: rewritten/);
  assert.equal(c.status().rejected, 1);
  await c.stop();
});

test('a cosignature by another key is refused; pending list bounded; nothing posted after stop', async () => {
  const other = SignerKey.generate('vramseal-collector');
  const { f } = scripted([
    { status: 200, body: { status: 'accepted', tree_size: 2, cosigned_note: cosign(note(2), other) } },
  ]);
  const c = new CheckpointWitnessClient({
    url: 'http://127.0.0.1:9',
    providerId: 'p1',
    fetch: f,
    backoff,
    witnessKey: wit.verifier.toString(),
  });
  c.on('error', () => {});
  assert.throws(
    () => c.submit('junk'),
    (e: TlogError) => e.code === 'TLOG_CHECKPOINT_INVALID',
  );
  c.submit(note(2));
  await c.flush(2000);
  assert.equal(c.status().rejected, 1);
  assert.match(c.status().lastError ?? '', /BAD_COSIGNATURE/);
  await c.stop();

  const s = new FakeShipper();
  const r = scripted([]);
  const d = new CheckpointWitnessClient({ shipper: s, fetch: r.f, backoff, maxPending: 2 });
  for (const n of [1, 2, 3, 4]) d.submit(note(n));
  assert.equal(d.status().pending, 2);
  await d.stop();
  s.ack(10);
  d.submit(note(11));
  await new Promise((x) => setTimeout(x, 20));
  assert.deepEqual(r.posted, []);
  assert.throws(() => new CheckpointWitnessClient({ providerId: 'p' }), /url and providerId are required/);
});
