import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { LineSplitter, readTrailLines, scanTrailFile } from '../src/trail-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'vramseal-reader-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Got = { n: number; text: string | null; len: number; term: boolean };

function collect(chunks: Buffer[], max: number): Got[] {
  const out: Got[] = [];
  const s = new LineSplitter(
    {
      line: (b, n, term) => out.push({ n, text: b.toString('latin1'), len: b.length, term }),
      oversize: (n, len, term) => out.push({ n, text: null, len, term }),
    },
    max,
  );
  for (const c of chunks) s.push(c);
  s.end();
  return out;
}

/** Reference: split the whole text at once. */
function reference(text: string, max: number): Got[] {
  const parts = text.split('\n');
  const last = parts.pop() as string;
  const out: Got[] = parts.map((p, i) => ({
    n: i + 1,
    text: p.length > max ? null : p,
    len: p.length,
    term: true,
  }));
  if (last.length > 0)
    out.push({ n: parts.length + 1, text: last.length > max ? null : last, len: last.length, term: false });
  return out;
}

test('LineSplitter: any chunking gives the same lines as splitting the whole text (incl. oversize, torn tail)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('a', 'b', '\n', 'xyz', '\n\n', 'long-line-'), { maxLength: 60 }),
      fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 20 }),
      fc.integer({ min: 3, max: 12 }),
      (pieces, cuts, max) => {
        const text = pieces.join('');
        const buf = Buffer.from(text, 'latin1');
        const chunks: Buffer[] = [];
        let at = 0;
        let i = 0;
        while (at < buf.length) {
          const n = cuts[i++ % cuts.length] as number;
          chunks.push(buf.subarray(at, at + n));
          at += n;
        }
        assert.deepEqual(collect(chunks, max), reference(text, max));
      },
    ),
    { numRuns: 200 },
  );
});

test('LineSplitter never buffers an oversize line: 8 MiB without a newline is reported with its length', () => {
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  const out: Got[] = [];
  const s = new LineSplitter(
    {
      line: (b, n, t) => out.push({ n, text: b.toString('latin1'), len: b.length, term: t }),
      oversize: (n, len, t) => out.push({ n, text: null, len, term: t }),
    },
    1024,
  );
  for (let i = 0; i < 128; i++) s.push(chunk);
  s.push(Buffer.from('\nok\n'));
  s.end();
  assert.deepEqual(out, [
    { n: 1, text: null, len: 128 * 64 * 1024, term: true },
    { n: 2, text: 'ok', len: 2, term: true },
  ]);
});

test('scanTrailFile: lines, byte count and SHA-256 of the content, plain and gzip (uncompressed checksum)', async () => {
  const content = Buffer.from('{"a":1}\n\xff\xfe invalid utf8\n{"b":2}', 'latin1');
  const sha = createHash('sha256').update(content).digest('hex');
  writeFileSync(join(dir, 'x.audit'), content);
  writeFileSync(join(dir, 'x.audit.gz'), gzipSync(content));
  for (const name of ['x.audit', 'x.audit.gz']) {
    const lines: [number, string, boolean][] = [];
    const scan = await scanTrailFile(
      join(dir, name),
      {
        line: (b, n, t) => lines.push([n, b.toString('latin1'), t]),
        oversize: () => assert.fail('no oversize'),
      },
      { chunkBytes: 5 },
    );
    assert.deepEqual(scan, { bytes: content.length, lines: 3, sha256: sha, endsWithNewline: false });
    assert.deepEqual(lines, [
      [1, '{"a":1}', true],
      [2, '\xff\xfe invalid utf8', true],
      [3, '{"b":2}', false],
    ]);
  }
});

test('scanTrailFile rejects a corrupt gzip stream (it does not hang or crash)', async () => {
  const gz = gzipSync(Buffer.from('hello\n'.repeat(1000)));
  gz[gz.length - 20] = (gz[gz.length - 20] as number) ^ 0xff;
  writeFileSync(join(dir, 'bad.audit.gz'), gz.subarray(0, gz.length - 5));
  await assert.rejects(scanTrailFile(join(dir, 'bad.audit.gz'), { line() {}, oversize() {} }));
});

test('readTrailLines yields copies-safe lines in order with line numbers', async () => {
  writeFileSync(join(dir, 'y.audit'), 'one\ntwo\n\nfour');
  const got: [number, string | null, boolean][] = [];
  for await (const l of readTrailLines(join(dir, 'y.audit'), { chunkBytes: 3 })) {
    got.push([l.lineNo, l.bytes?.toString() ?? null, l.terminated]);
  }
  assert.deepEqual(got, [
    [1, 'one', true],
    [2, 'two', true],
    [3, '', true],
    [4, 'four', false],
  ]);
});
