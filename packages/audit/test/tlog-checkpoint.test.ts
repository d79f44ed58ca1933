import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import {
  formatCheckpoint,
  openNote,
  parseCheckpoint,
  signCheckpoint,
  signNote,
  splitNotes,
  verifyCheckpoint,
} from '../src/tlog/checkpoint.js';
import { loadSignerKey, loadVerifierKey, SignerKey, VerifierKey, writeKeyPair } from '../src/tlog/keys.js';
import { verifyProofBundle } from '../src/tlog/proof-bundle.js';

// golang.org/x/mod/sumdb/note (note_test.go / package doc) known-answer vector.
const GO_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_TEXT =
  "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE = `${GO_TEXT}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;

test('C2SP signed-note: reproduces the Go sumdb/note known answer byte for byte', () => {
  const signer = SignerKey.parse(GO_SKEY);
  assert.equal(signer.keyId.toString('hex'), 'c74f20a3');
  assert.equal(signer.verifier.toString(), GO_VKEY);
  assert.equal(signNote(GO_TEXT, [signer]), GO_NOTE);
  const v = VerifierKey.parse(GO_VKEY);
  assert.equal(openNote(GO_NOTE, v), GO_TEXT);
  assert.throws(() => openNote(GO_NOTE.replace('cryptography', 'cryptographY'), v), {
    code: 'TLOG_SIGNATURE_INVALID',
  });
  assert.equal(signer.exportSignerKey(), GO_SKEY);
});

test('keys: verifier/signer key strings are checked (id, type byte, name rules)', () => {
  assert.throws(() => VerifierKey.parse(GO_VKEY.replace('c74f20a3', 'c74f20a4')), {
    code: 'TLOG_KEY_INVALID',
  });
  assert.throws(() => VerifierKey.parse(GO_VKEY.replace('PeterNeumann', 'PeterNeumanN')), {
    code: 'TLOG_KEY_INVALID',
  });
  assert.throws(() => VerifierKey.parse('nobody'), { code: 'TLOG_KEY_INVALID' });
  assert.throws(() => SignerKey.generate('has space'), { code: 'TLOG_KEY_INVALID' });
  assert.throws(() => SignerKey.generate('a+b'), { code: 'TLOG_KEY_INVALID' });
  assert.throws(() => SignerKey.generate(''), { code: 'TLOG_KEY_INVALID' });
});

test('keys: secrets never reach toJSON, inspect or errors', () => {
  const s = SignerKey.parse(GO_SKEY);
  const seedB64 = GO_SKEY.split('+').slice(4).join('+');
  const seen = `${JSON.stringify(s)} ${inspect(s)} ${inspect(s, { showHidden: true, depth: 5 })} ${String(s)}`;
  assert.ok(!seen.includes(seedB64.slice(4, 30)), 'no seed material');
  assert.ok(!seen.includes(Buffer.from(seedB64, 'base64').subarray(1).toString('hex').slice(0, 16)));
  assert.match(JSON.stringify(s), /c74f20a3/);
  try {
    SignerKey.parse(GO_SKEY.replace('c74f20a3', '00000000'));
    assert.fail('should throw');
  } catch (err) {
    assert.ok(!(err as Error).message.includes(seedB64.slice(4, 30)));
  }
});

test('keygen writes a 0600 signer and a public verifier key; loading refuses looser modes and symlinks', () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'tlog-keys-'));
  try {
    const prefix = join(dir, 'trail');
    const { signer, keyFile, pubFile } = writeKeyPair(prefix, 'example.com/trail');
    assert.equal((fs.statSync(keyFile).mode & 0o777).toString(8), '600');
    assert.equal(loadSignerKey(keyFile).keyId.toString('hex'), signer.keyId.toString('hex'));
    assert.equal(loadVerifierKey(pubFile).toString(), signer.verifier.toString());
    assert.throws(() => writeKeyPair(prefix, 'example.com/trail'), { code: 'TLOG_IO' });
    fs.chmodSync(keyFile, 0o640);
    assert.throws(() => loadSignerKey(keyFile), { code: 'TLOG_KEY_PERMISSIONS', message: /0600/ });
    fs.chmodSync(keyFile, 0o604);
    assert.throws(() => loadSignerKey(keyFile), { code: 'TLOG_KEY_PERMISSIONS' });
    fs.chmodSync(keyFile, 0o600);
    fs.symlinkSync(keyFile, join(dir, 'link.key'));
    assert.throws(() => loadSignerKey(join(dir, 'link.key')), { code: 'TLOG_KEY_PERMISSIONS' });
    // PEM keys work with an explicit name.
    const pemKey = join(dir, 'pem.key');
    const { privateKey, publicKey } = pemKeyPair();
    fs.writeFileSync(pemKey, privateKey, { mode: 0o600 });
    const pemSigner = loadSignerKey(pemKey, 'pem.example/log');
    fs.writeFileSync(join(dir, 'pem.pub'), publicKey);
    assert.equal(
      loadVerifierKey(join(dir, 'pem.pub'), 'pem.example/log').toString(),
      pemSigner.verifier.toString(),
    );
    assert.throws(() => loadSignerKey(pemKey), { code: 'TLOG_KEY_INVALID' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function pemKeyPair(): { privateKey: string; publicKey: string } {
  const k = generateKeyPairSync('ed25519');
  return {
    privateKey: k.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    publicKey: k.publicKey.export({ format: 'pem', type: 'spki' }) as string,
  };
}

test('checkpoint: C2SP tlog-checkpoint body, signed, verified, parsed', () => {
  const signer = SignerKey.generate('vramseal.test/log');
  const root = Buffer.alloc(32, 7);
  const body = formatCheckpoint({
    origin: 'vramseal/worker-1',
    size: 42,
    root,
    time: '2026-11-27T04:00:00.000Z',
  });
  assert.equal(body, `vramseal/worker-1\n42\n${root.toString('base64')}\ntime 2026-11-27T04:00:00.000Z\n`);
  const note = signCheckpoint(
    { origin: 'vramseal/worker-1', size: 42, root, time: '2026-11-27T04:00:00.000Z' },
    signer,
  );
  assert.ok(note.startsWith(`${body}\n\u2014 vramseal.test/log `));
  const cp = verifyCheckpoint(note, signer.verifier, { origin: 'vramseal/worker-1' });
  assert.equal(cp.size, 42);
  assert.deepEqual(cp.root, root);
  assert.equal(cp.time, '2026-11-27T04:00:00.000Z');
  assert.match(cp.noteHash, /^[0-9a-f]{64}$/);
  assert.throws(() => verifyCheckpoint(note, signer.verifier, { origin: 'vramseal/other' }), {
    code: 'TLOG_CHECKPOINT_INVALID',
  });
});

test('checkpoint: wrong key, tampered size/root/signature, unknown-key-only and malformed notes are rejected', () => {
  const signer = SignerKey.generate('vramseal.test/log');
  const other = SignerKey.generate('vramseal.test/log');
  const note = signCheckpoint({ origin: 'o', size: 5, root: Buffer.alloc(32, 1) }, signer);
  // Same name, different key: its key id differs, so the signature is "unknown" and nothing verifies.
  assert.throws(() => verifyCheckpoint(note, other.verifier), { code: 'TLOG_SIGNATURE_INVALID' });
  assert.throws(() => verifyCheckpoint(note.replace('\n5\n', '\n6\n'), signer.verifier), {
    code: 'TLOG_SIGNATURE_INVALID',
  });
  const b64 = Buffer.alloc(32, 1).toString('base64');
  assert.throws(
    () => verifyCheckpoint(note.replace(b64, Buffer.alloc(32, 2).toString('base64')), signer.verifier),
    {
      code: 'TLOG_SIGNATURE_INVALID',
    },
  );
  // Flip one signature byte (same key id): a known key's bad signature rejects the note.
  const sigLine = note.split('\n').find((l) => l.startsWith('\u2014')) as string;
  const raw = Buffer.from(sigLine.split(' ').pop() as string, 'base64');
  raw[10] = (raw[10] as number) ^ 1;
  const badSig = note.replace(sigLine, `\u2014 vramseal.test/log ${raw.toString('base64')}`);
  assert.throws(() => verifyCheckpoint(badSig, signer.verifier), { code: 'TLOG_SIGNATURE_INVALID' });
  // A second signature by an unknown key is ignored; a note signed by both still verifies.
  const both = signNote(formatCheckpoint({ origin: 'o', size: 5, root: Buffer.alloc(32, 1) }), [
    SignerKey.generate('someone.else/w'),
    signer,
  ]);
  assert.equal(verifyCheckpoint(both, signer.verifier).size, 5);
  for (const bad of [
    '',
    'x\n',
    `${note.slice(0, -1)}`,
    note.replace('\n\n', '\n'),
    note.replace('o\n', 'o\u0001\n'),
  ]) {
    assert.throws(() => verifyCheckpoint(bad, signer.verifier), /TLOG_|note|checkpoint/);
  }
  for (const body of [
    'o\n05\nAAAA\n',
    `o\n5\n${b64.slice(0, -2)}\n`,
    'o\n-1\nx\n',
    `\n5\n${b64}\n`,
    `o\n5\n${b64}`,
  ]) {
    assert.throws(() => parseCheckpoint(body), { code: 'TLOG_CHECKPOINT_INVALID' });
  }
});

test('checkpoints file: notes split back in order', () => {
  const signer = SignerKey.generate('k');
  const notes = [1, 2, 3].map((n) =>
    signCheckpoint({ origin: 'o', size: n, root: Buffer.alloc(32, n) }, signer),
  );
  const file = notes.map((n) => `${n}\n`).join('');
  assert.deepEqual(splitNotes(file), notes);
  assert.deepEqual(splitNotes(notes[0] as string), [notes[0]]);
  assert.deepEqual(
    splitNotes(file).map((n) => verifyCheckpoint(n, signer.verifier).size),
    [1, 2, 3],
  );
});

test('hostile input: random notes, checkpoints and proof bundles are rejected with typed errors, never crash', () => {
  const signer = SignerKey.generate('vramseal.test/fuzz');
  const good = signCheckpoint({ origin: 'o', size: 3, root: Buffer.alloc(32, 3), time: 't' }, signer);
  const typed = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      assert.match(String((err as { code?: string }).code), /^TLOG_/, String(err));
    }
  };
  fc.assert(
    fc.property(
      fc.string({ maxLength: 400 }),
      fc.nat(good.length),
      fc.string({ maxLength: 8 }),
      (s, at, ins) => {
        typed(() => verifyCheckpoint(s, signer.verifier));
        const mutated = good.slice(0, at) + ins + good.slice(at + ins.length);
        if (mutated !== good)
          assert.throws(() => verifyCheckpoint(mutated, signer.verifier), /TLOG_|note|checkpoint/);
        typed(() => {
          for (const n of splitNotes(s + good + s)) verifyCheckpoint(n, signer.verifier);
        });
        typed(() => VerifierKey.parse(s));
        typed(() => SignerKey.parse(`PRIVATE+KEY+${s}`));
        const v = verifyProofBundle(
          {
            type: 'vramseal.inclusion-proof.v1',
            seq: 1,
            tree_size: 3,
            record: s,
            proof: [s],
            checkpoint: good,
          },
          signer.verifier,
        );
        assert.equal(v.ok, false);
        assert.equal(
          verifyProofBundle(JSON.parse(JSON.stringify({ type: s, x: ins })), signer.verifier).ok,
          false,
        );
      },
    ),
    { numRuns: 300 },
  );
});
