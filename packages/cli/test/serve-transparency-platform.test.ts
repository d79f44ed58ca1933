/**
 * `vramseal serve --tlog-key` in platform mode: the real daemon (TypeScript sources through tsx) ships
 * its trail to a real collector (PostgreSQL at 127.0.0.1:5432, unique schema) and each checkpoint is
 * witnessed by the collector (cosignature checked with the collector key from
 * VRAMSEAL_COLLECTOR_PUBLIC_KEY). After SIGTERM, `vramseal audit verify <dir> --collector URL --provider
 * ID --public-key F --collector-key K` finds the trail in agreement with the witnessed checkpoint.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { publicKeyToBase64, writeKeyPair } from '@vramseal/audit';
import { buildCollectorServer, openStore, parseKeys } from '@vramseal/collector';
import pg from 'pg';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const NODE_ARGS = ['--conditions=vramseal-source', '--import', 'tsx', join(REPO, 'packages/cli/src/bin.ts')];
const PG_URL = process.env.VRAMSEAL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ADMIN = 'adm-tlogp-0123456789abcdef';

const tmp = mkdtempSync(join(tmpdir(), 'vramseal-serve-tlog-platform-'));
const schema = `vs_cli_serve_tlog_${process.pid}_${randomUUID().slice(0, 8)}`;
after(async () => {
  const owner = new pg.Client({ connectionString: PG_URL });
  await owner.connect();
  await owner.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await owner.end();
  rmSync(tmp, { recursive: true, force: true });
});

test('serve --tlog-key in platform mode: checkpoints witnessed by the collector; audit verify --collector agrees', async () => {
  const providerId = `prov-${randomUUID().slice(0, 8)}`;
  const workerId = 'tlogp-w1';
  const provider = generateKeyPairSync('ed25519');
  const collector = generateKeyPairSync('ed25519');
  const collectorKey = publicKeyToBase64(collector.publicKey);
  const { signer, keyFile, pubFile } = writeKeyPair(join(tmp, 'tlog'), 'worker-tlogp');
  const providerKeyFile = join(tmp, 'provider.pem');
  writeFileSync(providerKeyFile, provider.privateKey.export({ format: 'pem', type: 'pkcs8' }), {
    mode: 0o600,
  });

  const { store } = await openStore({ databaseUrl: PG_URL, schema, poolSize: 4 });
  const app = await buildCollectorServer({
    store,
    keys: parseKeys({
      providers: {
        [providerId]: {
          public_keys: [publicKeyToBase64(provider.publicKey)],
          checkpoint_keys: [signer.verifier.toString()],
          checkpoint_origin: `vramseal/${workerId}`,
        },
      },
    }),
    signingKey: collector.privateKey,
    audit: { emit: () => ({ durable: Promise.resolve() }) },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const a = app.server.address();
  const url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;

  const models = join(tmp, 'models');
  mkdirSync(models, { recursive: true });
  writeFileSync(join(models, 'a.bin'), Buffer.alloc(50_000, 3));
  const tokenFile = join(tmp, 'tokens');
  writeFileSync(tokenFile, `${ADMIN} admin\n`, { mode: 0o600 });
  const auditDir = join(tmp, 'audit');
  const env = {
    ...process.env,
    NO_COLOR: '1',
    VRAMSEAL_BACKEND: 'simulated',
    VRAMSEAL_SIM_VRAM_BYTES: '64MiB',
    VRAMSEAL_WORKER_TOKEN: 'tlogp-worker-token-0123456789',
    VRAMSEAL_PLATFORM_URL: url,
    VRAMSEAL_PROVIDER_ID: providerId,
    VRAMSEAL_PROVIDER_KEY_FILE: providerKeyFile,
    VRAMSEAL_COLLECTOR_PUBLIC_KEY: collectorKey,
    VRAMSEAL_PLATFORM_DELAY_MS: '20',
    VRAMSEAL_TLOG_KEY_FILE: keyFile,
  };
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
      workerId,
      '--checkpoint-every',
      '4',
      '--checkpoint-interval',
      '0',
    ],
    { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const seen: Array<Record<string, unknown>> = [];
  let buf = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      try {
        seen.push(JSON.parse(l));
      } catch {}
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const wait = async (pred: (l: Record<string, unknown>) => boolean, what: string) => {
    const t0 = Date.now();
    for (;;) {
      const hit = seen.find(pred);
      if (hit) return hit;
      if (child.exitCode !== null) throw new Error(`daemon exited before ${what}; stderr: ${err}`);
      if (Date.now() - t0 > 15_000) throw new Error(`timed out waiting for ${what}; stderr: ${err}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  try {
    const attached = await wait((l) => l.msg === 'transparency attached', 'transparency attached');
    assert.equal(attached.collector_witness, url);
    const ready = await wait((l) => l.msg === 'vramseal daemon ready', 'ready');
    const base = String(ready.address);
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, text: await res.text() };
    };
    const sealed = await post('/v1/shards', { model: 'a.bin', shard_id: 'a' });
    assert.equal(sealed.status, 201, sealed.text);
    for (let i = 0; i < 3; i++) assert.equal((await post('/v1/execute', { shard_id: 'a' })).status, 200);
    const witnessed = await wait(
      (l) => l.msg === 'checkpoint witnessed by the collector',
      'a checkpoint witnessed by the collector',
    );
    assert.ok(Number(witnessed.tree_size) >= 4, JSON.stringify(witnessed));
    assert.ok(!seen.some((l) => l.msg === 'collector refused a checkpoint'), JSON.stringify(seen));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, `exit 0; stderr: ${err}`);
    assert.ok(seen.some((l) => String(l.msg).startsWith('checkpoint witness stopped')));

    const v = spawn(
      process.execPath,
      [
        ...NODE_ARGS,
        'audit',
        'verify',
        auditDir,
        '--collector',
        url,
        '--provider',
        providerId,
        '--public-key',
        pubFile,
        '--collector-key',
        collectorKey,
        '--json',
      ],
      { cwd: REPO, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let verr = '';
    v.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    v.stderr.setEncoding('utf8').on('data', (d: string) => {
      verr += d;
    });
    const code = await new Promise<number | null>((r) => v.on('close', (c) => r(c)));
    assert.equal(code, 0, out + verr);
    const doc = JSON.parse(out) as { collector: { witness: Record<string, unknown> } };
    assert.equal(doc.collector.witness.status, 'checked');
    assert.equal(doc.collector.witness.ok, true);
    assert.ok(Number(doc.collector.witness.tree_size) >= Number(witnessed.tree_size));
    assert.equal(doc.collector.witness.witness_key_pinned, true);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await app.close();
    await store.client.close();
  }
});
