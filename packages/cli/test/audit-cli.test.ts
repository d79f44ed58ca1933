/**
 * `vramseal audit ...` end to end: spawns the real built binary (packages/cli/dist/bin.js). `npm test`
 * builds first; run alone, this file builds the CLI when its dist is missing or older than the source.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  buildTrail,
  readLines,
  removeDir,
  TEST_KEY,
  writeLines,
} from '../../audit/test/fixtures/trail-builder.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const bin = join(root, 'packages/cli/dist/bin.js');
const dirs: string[] = [];
let keyHex: string;
let keyRaw: string;

before(() => {
  const src = join(root, 'packages/cli/src/commands/audit.ts');
  const out = join(root, 'packages/cli/dist/commands/audit.js');
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    const r = spawnSync(
      process.execPath,
      [join(root, 'node_modules/typescript/bin/tsc'), '-b', 'packages/cli'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, `build failed: ${r.stdout}${r.stderr}`);
  }
  const kd = mkdtempSync(join(tmpdir(), 'vramseal-keys-'));
  dirs.push(kd);
  keyHex = join(kd, 'key.hex');
  writeFileSync(keyHex, `${TEST_KEY.toString('hex')}\n`, { mode: 0o600 });
  keyRaw = join(kd, 'key.bin');
  writeFileSync(keyRaw, TEST_KEY, { mode: 0o600 });
});
after(() => {
  for (const d of dirs) removeDir(d);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function run(args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(input ?? '');
  });
}
/** Runs the CLI and closes its stdout after the first chunk, like `| head -1`. */
function runClosingEarly(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: root });
    let stdout = '';
    let stderr = '';
    p.stdout.once('data', (d) => {
      stdout += d;
      p.stdout.destroy();
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
function trail(files: number[]) {
  const t = buildTrail({ files });
  dirs.push(t.dir);
  return t;
}

test('verify: intact trail → exit 0, one-line verdict; --json has the documented shape', async () => {
  const t = trail([4, 4]);
  const [r, j] = await Promise.all([
    run(['audit', 'verify', t.dir, '--key-file', keyHex]),
    run(['audit', 'verify', t.dir, '--key-file', keyRaw, '--json']),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /intact — 2 files, 8 records .*MACs checked/);
  assert.equal(r.stdout.trim().split('\n').length, 1);
  assert.equal(j.code, 0, j.stderr);
  const doc = JSON.parse(j.stdout);
  assert.equal(doc.ok, true);
  assert.equal(doc.files, 2);
  assert.equal(doc.records, 8);
  assert.deepEqual(doc.failures, []);
});

test('verify: damaged trail → exit 1, each failure with kind, file, line, seq, message', async () => {
  const t = trail([4, 4]);
  const name = t.names[1] as string;
  const ls = readLines(t.dir, name);
  ls.splice(1, 1);
  writeLines(t.dir, name, ls);
  const [r, j, prog] = await Promise.all([
    run(['audit', 'verify', t.dir]),
    run(['audit', 'verify', t.dir, '--json']),
    run(['audit', 'verify', t.dir, '--progress', '--json']),
  ]);
  // --progress on a non-terminal: plain progress lines on stderr, stdout stays one JSON document.
  assert.match(prog.stderr, /^verify .*100%/m);
  assert.equal(JSON.parse(prog.stdout).ok, false);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /✘ .*1 integrity failure/);
  assert.match(r.stdout, /deleted_records {2}2026-03-01\.1\.audit:2 seq 6 {2}1 record missing/);
  assert.equal(j.code, 1);
  const doc = JSON.parse(j.stdout);
  assert.equal(doc.ok, false);
  assert.deepEqual(
    doc.failures.map((f: Record<string, unknown>) => [f.kind, f.file, f.line, f.seq]),
    [['deleted_records', name, 2, 6]],
  );
  assert.equal(typeof doc.failures[0].message, 'string');
});

test('verify: usage and I/O errors → exit 2 with a clear message', async () => {
  const t = trail([2]);
  const loose = join(dirs[0] as string, 'loose.hex');
  writeFileSync(loose, TEST_KEY.toString('hex'));
  chmodSync(loose, 0o644);
  const [r, k, u] = await Promise.all([
    run(['audit', 'verify', '/nonexistent/trail']),
    run(['audit', 'verify', t.dir, '--key-file', loose]),
    run(['audit', 'verify']),
  ]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot read trail \/nonexistent\/trail: ENOENT/);
  assert.equal(k.code, 2);
  assert.match(k.stderr, /mode 0644 .*chmod 600/);
  assert.doesNotMatch(k.stderr, new RegExp(TEST_KEY.toString('hex')));
  assert.equal(u.code, 2);
});

test('emit: NDJSON on stdin is appended; invalid lines are reported with line number and field/rule, not written; exit 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vramseal-emit-'));
  dirs.push(dir);
  const input = [
    JSON.stringify({ type: 'seal.verified', shard_id: 's1', worker_id: 'w1' }),
    '',
    JSON.stringify({ type: 'seal.verified', shard_id: 'bad\u001b[31m', worker_id: 'w1' }),
    '{not json',
    JSON.stringify({
      type: 'auth.success',
      actor: { user_id: 'alice', auth_method: 'bearer_token' },
      method: 'GET',
      path: '/v1',
      service_id: 'svc',
    }),
    JSON.stringify({ type: 'no.such.type' }),
  ].join('\n');
  const [r, bad] = await Promise.all([
    run(['audit', 'emit', dir, '--service-id', 'svc', '--key-file', keyHex, '--flush', 'immediate'], input),
    run(['audit', 'emit', dir, '--service-id', 'svc', '--flush', 'sometimes'], ''),
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--flush: must be immediate, batched or hybrid/);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /line 3: .*shard_id.*rule/);
  assert.match(r.stderr, /line 4: not JSON/);
  assert.match(r.stderr, /line 6: /);
  assert.match(r.stderr, /2 events written \(seq 1\.\.2\), 3 lines rejected/);
  // All valid → exit 0; the chain continues across runs.
  const ok = await run(
    ['audit', 'emit', dir, '--service-id', 'svc', '--key-file', keyHex, '--json'],
    `${JSON.stringify({ type: 'seal.verified', shard_id: 's2', worker_id: 'w1' })}\n`,
  );
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout.trim()).seq, 3);
  const v = await run(['audit', 'verify', dir, '--key-file', keyHex, '--json']);
  assert.equal(v.code, 0, v.stdout);
  assert.equal(JSON.parse(v.stdout).records, 3);
});

test('query: filters, table and NDJSON output', async () => {
  const t = trail([8, 8]);
  const [tbl, nd, v, badTime] = await Promise.all([
    run(['audit', 'query', t.dir, '--type', 'seal.verified', '--limit', '3']),
    run(['audit', 'query', t.dir, '--json', '--actor', 'bob', '--since', '2026-03-01T00:05:00Z']),
    run(['audit', 'query', t.dir, '--verify', '--key-file', keyHex, '--json', '--limit', '1']),
    run(['audit', 'query', t.dir, '--since', 'last tuesday']),
  ]);
  assert.equal(tbl.code, 0, tbl.stderr);
  const rows = tbl.stdout.trim().split('\n');
  assert.match(rows[0] as string, /SEQ\s+TIME\s+TYPE\s+DETAILS/);
  assert.deepEqual(
    rows.slice(1).map((l) => Number(l.trim().split(/\s+/)[0])),
    [4, 8, 12],
  );
  assert.deepEqual(
    nd.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).seq),
    [6, 10, 14],
  );
  assert.equal(v.code, 0, v.stderr);
  assert.equal(JSON.parse(v.stdout).seq, 1);
  assert.equal(badTime.code, 2);
  assert.match(badTime.stderr, /--since: expected an RFC 3339 time/);
});

test('a reader that goes away (| head) ends query output quietly with exit 0, no EPIPE crash', async () => {
  const t = trail([3000]);
  const r = await runClosingEarly(['audit', 'query', t.dir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /EPIPE|Unhandled/);
  assert.ok(r.stdout.length > 0);
});

test('tail -n and stats --json', async () => {
  const t = trail([5, 5]);
  const [r, s, h] = await Promise.all([
    run(['audit', 'tail', t.dir, '-n', '3', '--json']),
    run(['audit', 'stats', t.dir, '--json']),
    run(['audit', 'stats', t.dir]),
  ]);
  assert.deepEqual(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).seq),
    [8, 9, 10],
  );
  const doc = JSON.parse(s.stdout);
  assert.equal(doc.records, 10);
  assert.equal(doc.files.total, 2);
  assert.equal(doc.byType['seal.verified'], 2);
  assert.match(h.stdout, /records\s+10/);
});

test('tail -f prints records appended by `audit emit` and stops on SIGINT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vramseal-tailf-'));
  dirs.push(dir);
  const ev = (n: number) =>
    `${JSON.stringify({ type: 'seal.verified', shard_id: `s${n}`, worker_id: 'w' })}\n`;
  assert.equal((await run(['audit', 'emit', dir, '--service-id', 'svc'], ev(1))).code, 0);
  const p: ChildProcess = spawn(process.execPath, [bin, 'audit', 'tail', dir, '-f', '--json'], { cwd: root });
  let out = '';
  p.stdout?.on('data', (d) => {
    out += d;
  });
  const waitFor = async (pred: () => boolean) => {
    for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(pred(), `timed out; output so far: ${out}`);
  };
  await waitFor(() => out.includes('"seq":1'));
  assert.equal((await run(['audit', 'emit', dir, '--service-id', 'svc'], ev(2) + ev(3))).code, 0);
  await waitFor(() => out.includes('"seq":3'));
  const closed = new Promise((r) => p.on('close', r));
  p.kill('SIGINT');
  await closed;
  assert.deepEqual(
    out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).seq),
    [1, 2, 3],
  );
});
