/**
 * `vramseal serve --tlog-key`: the real daemon (TypeScript sources through tsx, so no stale dist) on an
 * ephemeral port signs checkpoints of its trail into `<audit-dir>/checkpoints` (and the witness dir)
 * while it runs, and after SIGTERM a final checkpoint covers every record: `vramseal audit verify <dir>
 * --checkpoint <dir>/checkpoints --public-key <pub>` exits 0, and exits 1 (truncated_trail) once the
 * trail's last record is cut off. Bad transparency options are usage errors (exit 2) before anything opens.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  checkAgainstCheckpoint,
  loadCheckpointFile,
  loadVerifierKey,
  splitNotes,
  verifyCheckpoint,
  witnessFileName,
  writeKeyPair,
} from '@vramseal/audit';
import { verifyTrailDir } from '../src/serve/worker.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const SRC_BIN = join(REPO, 'packages/cli/src/bin.ts');
const NODE_ARGS = ['--conditions=vramseal-source', '--import', 'tsx', SRC_BIN];
const ADMIN = 'adm-tlog-0123456789abcdef';

const tmp = mkdtempSync(join(tmpdir(), 'vramseal-serve-tlog-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const ENV = {
  ...process.env,
  NO_COLOR: '1',
  VRAMSEAL_BACKEND: 'simulated',
  VRAMSEAL_SIM_VRAM_BYTES: '64MiB',
  VRAMSEAL_WORKER_TOKEN: 'tlog-worker-token-0123456789',
  VRAMSEAL_TLOG_KEY_FILE: '',
  VRAMSEAL_PLATFORM_URL: '',
};

function cli(args: string[]) {
  return spawnSync(process.execPath, [...NODE_ARGS, ...args], {
    cwd: REPO,
    env: ENV,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

/** The daemon's pino lines, with waiting for one. */
function follow(child: ChildProcess) {
  const seen: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: () => void }> = [];
  let buf = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const line of lines) {
      try {
        seen.push(JSON.parse(line));
      } catch {
        continue;
      }
      for (const w of [...waiters])
        if (seen.some(w.pred)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const wait = (pred: (l: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const found = () => seen.find(pred) as Record<string, unknown>;
      if (seen.some(pred)) return resolve(found());
      waiters.push({ pred, resolve: () => resolve(found()) });
      exited.then((c) =>
        reject(new Error(`daemon exited (${c}) before the expected log line; stderr: ${err}`)),
      );
    });
  return { seen, wait, exited, stderr: () => err };
}

test('serve --tlog-key: checkpoints while running, a final one on SIGTERM covers every record', async () => {
  const root = join(tmp, 'run');
  const models = join(root, 'models');
  mkdirSync(models, { recursive: true });
  writeFileSync(join(models, 'a.bin'), Buffer.alloc(50_000, 7));
  const tokenFile = join(root, 'tokens');
  writeFileSync(tokenFile, `${ADMIN} admin\n`, { mode: 0o600 });
  const auditDir = join(root, 'audit');
  const witnessDir = join(root, 'witness');
  const { pubFile, keyFile } = writeKeyPair(join(root, 'tlog'), 'vramseal.test/serve');
  const pub = loadVerifierKey(pubFile);

  const child = spawn(
    process.execPath,
    [
      ...NODE_ARGS,
      'serve',
      '--models-dir',
      models,
      '--token-file',
      tokenFile,
      '--audit-dir',
      auditDir,
      '--port',
      '0',
      '--verify-interval',
      '0',
      '--worker-id',
      'tlog-w1',
      '--tlog-key',
      keyFile,
      '--tlog-witness-dir',
      witnessDir,
      '--checkpoint-every',
      '4',
      '--checkpoint-interval',
      '0',
    ],
    { cwd: REPO, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const d = follow(child);
  try {
    const attached = await d.wait((l) => l.msg === 'transparency attached');
    assert.equal(attached.origin, 'vramseal/tlog-w1');
    assert.equal(
      attached.verifier_key,
      pub.toString(),
      'the daemon signs with the key whose public half we hold',
    );
    const ready = await d.wait((l) => l.msg === 'vramseal daemon ready');
    const base = String(ready.address);
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, text: await res.text() };
    };
    const sealed = await call('POST', '/v1/shards', { model: 'a.bin', shard_id: 'a' });
    assert.equal(sealed.status, 201, sealed.text);
    for (let i = 0; i < 3; i++) {
      const ex = await call('POST', '/v1/execute', { shard_id: 'a' });
      assert.equal(ex.status, 200, ex.text);
    }
    // A periodic checkpoint (every 4 records) while the daemon runs.
    const cpLine = await d.wait((l) => l.msg === 'transparency checkpoint signed');
    assert.ok(Number(cpLine.tree_size) >= 4, JSON.stringify(cpLine));
    const running = loadCheckpointFile(join(auditDir, 'checkpoints'));
    assert.ok(verifyCheckpoint(running, pub, { origin: 'vramseal/tlog-w1' }).size >= 4);

    child.kill('SIGTERM');
    assert.equal(await d.exited, 0, `exit 0; stderr: ${d.stderr()}`);
    assert.ok(d.seen.some((l) => l.msg === 'shutdown complete' && l.code === 0));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }

  // Every checkpoint verifies; the last one covers the whole closed trail (releases included).
  const v = await verifyTrailDir(auditDir);
  assert.equal(v.ok, true, JSON.stringify(v.failures));
  const notes = splitNotes(readFileSync(join(auditDir, 'checkpoints'), 'utf8'));
  assert.ok(notes.length >= 2, `periodic + final checkpoints, got ${notes.length}`);
  const sizes = notes.map((n) => verifyCheckpoint(n, pub).size);
  assert.deepEqual(
    sizes,
    [...sizes].sort((a, b) => a - b),
    'sizes only grow',
  );
  assert.equal(sizes.at(-1), v.lastSeq, 'the final checkpoint covers every record');
  assert.equal(
    readFileSync(join(witnessDir, witnessFileName('vramseal/tlog-w1')), 'utf8'),
    readFileSync(join(auditDir, 'checkpoints'), 'utf8'),
    'the witness dir holds the same checkpoints',
  );

  const ok = cli([
    'audit',
    'verify',
    auditDir,
    '--checkpoint',
    join(auditDir, 'checkpoints'),
    '--public-key',
    pubFile,
  ]);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);

  // (a copy of the intact, closed trail for the --tlog-rebuild test below)
  cpSync(root, join(tmp, 'rebuild'), { recursive: true });
  rebuildReady = { keyFile, pubFile };

  // Cut the trail's last record: the final checkpoint exposes it.
  const files = readdirSync(auditDir)
    .filter((f) => f.endsWith('.audit'))
    .sort();
  const last = join(auditDir, files.at(-1) as string);
  const lines = readFileSync(last, 'utf8').split('\n').filter(Boolean);
  chmodSync(last, 0o600);
  writeFileSync(last, `${lines.slice(0, -1).join('\n')}\n`);
  const cut = cli([
    'audit',
    'verify',
    auditDir,
    '--checkpoint',
    join(auditDir, 'checkpoints'),
    '--public-key',
    pubFile,
    '--json',
  ]);
  assert.equal(cut.status, 1, cut.stdout + cut.stderr);
  const kinds = (JSON.parse(cut.stdout) as { failures: { kind: string }[] }).failures.map((f) => f.kind);
  assert.ok(kinds.includes('truncated_trail'), kinds.join(','));
});

let rebuildReady: { keyFile: string; pubFile: string } | undefined;

test('serve --tlog-key: a damaged stored tree stops the start with a hint; --tlog-rebuild rebuilds it', async () => {
  assert.ok(rebuildReady, 'needs the trail of the first test');
  const { keyFile, pubFile } = rebuildReady;
  const root = join(tmp, 'rebuild');
  const auditDir = join(root, 'audit');
  const args = [
    'serve',
    '--models-dir',
    join(root, 'models'),
    '--token-file',
    join(root, 'tokens'),
    '--audit-dir',
    auditDir,
    '--port',
    '0',
    '--worker-id',
    'tlog-w1',
    '--tlog-key',
    keyFile,
  ];
  writeFileSync(join(auditDir, 'tlog', 'state.json'), '{"v":1,"size":');
  const refused = cli(args);
  assert.equal(refused.status, 2, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /state\.json is not valid JSON/);
  assert.match(refused.stderr, /hint: .*--tlog-rebuild/);

  const child = spawn(process.execPath, [...NODE_ARGS, ...args, '--tlog-rebuild'], {
    cwd: REPO,
    env: ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d = follow(child);
  try {
    await d.wait((l) => l.msg === 'vramseal daemon ready');
    child.kill('SIGTERM');
    assert.equal(await d.exited, 0, `exit 0; stderr: ${d.stderr()}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  // The rebuilt tree extends the old one: the checkpoints signed before the rebuild still check the
  // trail, and so does the one signed at this shutdown (audit verify takes the latest).
  const pub = loadVerifierKey(pubFile);
  for (const note of splitNotes(readFileSync(join(auditDir, 'checkpoints'), 'utf8'))) {
    const r = await checkAgainstCheckpoint(auditDir, note, pub);
    assert.equal(r.ok, true, JSON.stringify(r.failures));
  }
  const ok = cli([
    'audit',
    'verify',
    auditDir,
    '--checkpoint',
    join(auditDir, 'checkpoints'),
    '--public-key',
    pubFile,
  ]);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
});

test('serve: transparency options are checked before anything opens (exit 2)', () => {
  const root = join(tmp, 'bad');
  mkdirSync(join(root, 'models'), { recursive: true });
  const tokenFile = join(root, 'tokens');
  writeFileSync(tokenFile, `${ADMIN} admin\n`, { mode: 0o600 });
  const { keyFile } = writeKeyPair(join(root, 'tlog'), 'vramseal.test/bad');
  chmodSync(keyFile, 0o644);
  const base = ['serve', '--models-dir', join(root, 'models'), '--token-file', tokenFile, '--port', '0'];
  const open = cli([...base, '--audit-dir', join(root, 'audit-a'), '--tlog-key', keyFile]);
  assert.equal(open.status, 2, open.stdout + open.stderr);
  assert.match(open.stderr, /signer key file .*tlog\.key: mode 644 is too open/);
  assert.ok(!readdirSync(root).includes('audit-a'), 'the trail was not opened');
  const orphan = cli([...base, '--audit-dir', join(root, 'audit-b'), '--tlog-witness-dir', join(root, 'w')]);
  assert.equal(orphan.status, 2, orphan.stdout + orphan.stderr);
  assert.match(orphan.stderr, /--tlog-witness-dir: needs --tlog-key/);
});
