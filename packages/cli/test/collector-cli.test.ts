/**
 * `vramseal collector` and `vramseal audit verify --collector` end to end: spawns the real built
 * binary as the collector (on PostgreSQL, in a schema of its own), ships a trail to it from an
 * AuditLogger in platform mode, then compares local trails with the collector's copy via the CLI.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AuditLogger, generateSigningKey, type Shipper, shipperOf } from '@vramseal/audit';
import pg from 'pg';
import pino from 'pino';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const bin = join(root, 'packages/cli/dist/bin.js');
const PG_URL = process.env.VRAMSEAL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `vs_cli_${process.pid}_${randomUUID().slice(0, 8)}`;
const work = mkdtempSync(join(tmpdir(), 'vramseal-collector-cli-'));
const provider = generateSigningKey();
const collectorKeyFile = join(work, 'collector.pem');
let collector: ChildProcess | undefined;
let info: { url: string; public_key: string; engine: string; append_only: string };

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
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
  });
}

/** True when some source this test runs through the built binary is newer than its build output. */
function stale(): boolean {
  const pairs: Array<[string, string]> = [];
  const add = (srcDir: string, outDir: string) => {
    for (const n of readdirSync(join(root, srcDir)))
      if (n.endsWith('.ts')) pairs.push([join(srcDir, n), join(outDir, n.replace(/\.ts$/, '.js'))]);
  };
  add('packages/cli/src/commands', 'packages/cli/dist/commands');
  add('packages/cli/src/commands/audit', 'packages/cli/dist/commands/audit');
  add('packages/collector/src', 'packages/collector/dist');
  add('packages/collector/src/db', 'packages/collector/dist/db');
  add('packages/audit/src/platform', 'packages/audit/dist/platform');
  return pairs.some(
    ([src, out]) =>
      !existsSync(join(root, out)) || statSync(join(root, out)).mtimeMs < statSync(join(root, src)).mtimeMs,
  );
}

before(async () => {
  if (stale()) {
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
  writeFileSync(join(work, 'provider.pem'), provider.privateKeyPem, { mode: 0o600 });
  writeFileSync(
    join(work, 'providers.json'),
    JSON.stringify({
      providers: { 'gpu-1': { public_keys: [provider.publicKey] } },
      tokens: [
        { name: 'alice', role: 'admin', sha256: createHash('sha256').update('admin-token').digest('hex') },
      ],
    }),
  );
  collector = spawn(
    process.execPath,
    [
      bin,
      'collector',
      '--database-url',
      PG_URL,
      '--schema',
      schema,
      '--port',
      '0',
      '--keys',
      join(work, 'providers.json'),
      '--signing-key',
      collectorKeyFile,
      '--trail-dir',
      join(work, 'collector-trail'),
      '--log-level',
      'warn',
    ],
    { cwd: root },
  );
  let out = '';
  let err = '';
  collector.stderr?.on('data', (d) => {
    err += d;
  });
  info = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`collector did not start: ${err}`)), 30_000);
    collector?.stdout?.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve(JSON.parse(out.slice(0, nl)));
      }
    });
    collector?.on('exit', (code) => reject(new Error(`collector exited ${code}: ${err}`)));
  });
});

after(async () => {
  if (collector && collector.exitCode === null) {
    collector.kill('SIGTERM');
    await new Promise((r) => collector?.once('exit', r));
  }
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await c.end();
  rmSync(work, { recursive: true, force: true });
});

test('vramseal collector starts on PostgreSQL with the app role, and audit verify --collector agrees / finds divergence', async () => {
  assert.equal(info.engine, 'postgres');
  assert.equal(info.append_only, 'triggers + privileges');
  // The cosignature key it prints is the one the witness API reports.
  const about = (await (await fetch(`${info.url}/v1/collector`)).json()) as { witness_key: string };
  assert.equal((info as unknown as { witness_key: string }).witness_key, about.witness_key);
  const dir = join(work, 'trail');
  const log = await AuditLogger.open({
    mode: 'platform',
    dir,
    serviceId: 'worker-cli',
    flush: { mode: 'batched', maxEvents: 8, maxDelayMs: 5 },
    logger: pino({ level: 'silent' }),
    platform: {
      providerId: 'gpu-1',
      url: info.url,
      privateKey: { file: join(work, 'provider.pem') },
      collectorPublicKey: info.public_key,
      batch: { maxRecords: 10, maxDelayMs: 10 },
    },
  });
  const ds = [];
  for (let i = 0; i < 30; i++)
    ds.push(
      log.emit({
        type: 'task.completed',
        timestamp: new Date().toISOString(),
        task_id: `t-${i}`,
        worker_id: 'w',
        tokens_generated: i,
        duration_ms: 1,
        result: { status: 'success' },
      }).durable,
    );
  await Promise.all(ds);
  await (shipperOf(log) as Shipper).flush(15_000);
  await log.close();

  const ok = await run([
    'audit',
    'verify',
    dir,
    '--collector',
    info.url,
    '--provider',
    'gpu-1',
    '--collector-key',
    info.public_key,
    '--json',
  ]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const doc = JSON.parse(ok.stdout);
  assert.equal(doc.ok, true);
  assert.equal(doc.collector.ok, true);
  assert.equal(doc.collector.agree_up_to, 30);
  assert.equal(doc.collector.receipt_verified, true);

  // A copy of the trail that lost its last 12 records: the comparison names the first one missing locally.
  const short = join(work, 'short');
  mkdirSync(short, { mode: 0o700 });
  const file = readFileSync(join(dir, `${new Date().toISOString().slice(0, 10)}.audit`), 'utf8').split('\n');
  writeFileSync(join(short, '2026-01-01.audit'), `${file.slice(0, 18).join('\n')}\n`);
  const bad = await run(['audit', 'verify', short, '--collector', info.url, '--provider', 'gpu-1', '--json']);
  assert.equal(bad.code, 1, bad.stdout + bad.stderr);
  const d2 = JSON.parse(bad.stdout);
  assert.equal(d2.collector.ok, false);
  assert.equal(d2.collector.first_divergent_seq, 19);

  // SIGHUP reloads providers.json: a newly registered provider becomes known without a restart.
  assert.equal((await fetch(`${info.url}/v1/providers/gpu-2/head`)).status, 404);
  const doc2 = JSON.parse(readFileSync(join(work, 'providers.json'), 'utf8'));
  doc2.providers['gpu-2'] = { public_keys: [generateSigningKey().publicKey] };
  writeFileSync(join(work, 'providers.json'), JSON.stringify(doc2));
  collector?.kill('SIGHUP');
  let status = 0;
  for (let i = 0; i < 50 && status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = (await fetch(`${info.url}/v1/providers/gpu-2/head`)).status;
  }
  assert.equal(status, 200);

  const usage = await run(['audit', 'verify', dir, '--collector', info.url]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--provider/);
});

test('vramseal collector: bad options give exit 2 and name the option', async () => {
  const r = await run(['collector', '--port', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--keys/);
  writeFileSync(join(work, 'bad.json'), JSON.stringify({ providers: { p: { public_keys: ['xx'] } } }));
  const r3 = await run([
    'collector',
    '--keys',
    join(work, 'bad.json'),
    '--data-dir',
    join(work, 'dd'),
    '--port',
    '0',
  ]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /providers\.p\.public_keys\[0\]/);
});
