import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AuditLogger, loadSignerKey, Transparency } from '@vramseal/audit';
import { buildProgram } from '../src/program.js';

/** Runs `vramseal audit ...` in-process (the real command tree); captures stdout/stderr. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const program = await buildProgram();
  program.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  let out = '';
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof process.stderr.write;
  process.exitCode = undefined;
  let code: number;
  try {
    await program.parseAsync(['audit', ...args], { from: 'user' });
    code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    code = (e as { code?: string }).code?.startsWith('commander.') ? 2 : 99;
    err += String((e as Error).message);
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    process.exitCode = undefined;
  }
  return { code, out, err };
}

test('vramseal audit keygen / prove / consistency / verify-proof / check-checkpoint', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'tlog-cli-'));
  try {
    const prefix = join(root, 'log');
    const kg = await cli(['keygen', '--name', 'vramseal.test/cli', '--out', prefix, '--json']);
    assert.equal(kg.code, 0, kg.err);
    const kgj = JSON.parse(kg.out) as { public_key: string; key_id: string };
    assert.match(kgj.public_key, /^vramseal\.test\/cli\+[0-9a-f]{8}\+/);
    assert.equal((fs.statSync(`${prefix}.key`).mode & 0o777).toString(8), '600');
    assert.equal((await cli(['keygen', '--out', prefix])).code, 2, 'refuses to overwrite');

    // A real trail with checkpoints.
    const dir = join(root, 'trail');
    const witness = join(root, 'witness');
    const log = await AuditLogger.open({
      mode: 'local',
      dir,
      serviceId: 'w1',
      flush: { mode: 'batched', maxEvents: 4, maxDelayMs: 5 },
    });
    const tl = await Transparency.attach(log, {
      signer: loadSignerKey(`${prefix}.key`),
      everyRecords: 5,
      worker: false,
      everyMs: 0,
      witnessDir: witness,
    });
    for (let i = 0; i < 12; i++) {
      log.emit({
        type: 'data.model_accessed',
        timestamp: new Date().toISOString(),
        customer_id: `c${i}`,
        model_ref: 'm',
        access_type: 'read',
      });
      if (i % 4 === 3) await log.flush();
    }
    await log.flush();
    await tl.checkpoint();
    await log.close();

    const pr = await cli(['prove', dir, '--seq', '3', '--out', join(root, 'p3.json')]);
    assert.equal(pr.code, 0, pr.err);
    const ok = await cli([
      'verify-proof',
      join(root, 'p3.json'),
      '--public-key',
      `${prefix}.pub`,
      '--origin',
      'vramseal/w1',
    ]);
    assert.equal(ok.code, 0, ok.out + ok.err);
    assert.match(ok.out, /^OK: record 3 is included/);
    // Against the witness's copy of the checkpoints.
    const wfile = join(witness, fs.readdirSync(witness)[0] as string);
    const okw = await cli([
      'verify-proof',
      join(root, 'p3.json'),
      '--public-key',
      `${prefix}.pub`,
      '--checkpoint',
      wfile,
      '--json',
    ]);
    assert.equal(okw.code, 0, okw.out);
    assert.equal((JSON.parse(okw.out) as { ok: boolean }).ok, true);
    // Tampered proof: exit 1.
    const bundle = JSON.parse(fs.readFileSync(join(root, 'p3.json'), 'utf8')) as { record: string };
    fs.writeFileSync(
      join(root, 'bad.json'),
      JSON.stringify({ ...bundle, record: bundle.record.replace('"c2"', '"cX"') }),
    );
    const bad = await cli(['verify-proof', join(root, 'bad.json'), '--public-key', `${prefix}.pub`]);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /^INVALID/);
    // Wrong key: exit 1.
    const other = join(root, 'other');
    await cli(['keygen', '--name', 'vramseal.test/cli', '--out', other]);
    assert.equal(
      (await cli(['verify-proof', join(root, 'p3.json'), '--public-key', `${other}.pub`])).code,
      1,
    );
    // Usage errors: exit 2.
    assert.equal(
      (await cli(['verify-proof', join(root, 'missing.json'), '--public-key', `${prefix}.pub`])).code,
      2,
    );
    assert.equal((await cli(['prove', dir, '--seq', 'x'])).code, 2);

    // Consistency between the first and the latest checkpoint.
    const sizes = fs
      .readFileSync(join(dir, 'checkpoints'), 'utf8')
      .split('\n')
      .filter((l) => /^\d+$/.test(l));
    const c = await cli([
      'consistency',
      dir,
      '--from',
      join(dir, 'checkpoints'),
      '--from-size',
      sizes[0] as string,
      '--to',
      join(dir, 'checkpoints'),
    ]);
    assert.equal(c.code, 0, c.err);
    fs.writeFileSync(join(root, 'c.json'), c.out);
    const cv = await cli(['verify-proof', join(root, 'c.json'), '--public-key', `${prefix}.pub`]);
    assert.equal(cv.code, 0, cv.out);
    assert.match(cv.out, /is a prefix of/);

    // check-checkpoint and audit verify --checkpoint: ok, then truncated.
    const v0 = await cli([
      'verify',
      dir,
      '--checkpoint',
      wfile,
      '--public-key',
      `${prefix}.pub`,
      '--no-progress',
    ]);
    assert.equal(v0.code, 0, v0.out + v0.err);
    const cc = await cli(['check-checkpoint', dir, '--checkpoint', wfile, '--public-key', `${prefix}.pub`]);
    assert.equal(cc.code, 0, cc.out);
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.audit')) as string;
    const lines = fs.readFileSync(join(dir, file), 'utf8').split('\n').filter(Boolean);
    fs.chmodSync(join(dir, file), 0o600);
    fs.writeFileSync(join(dir, file), `${lines.slice(0, -2).join('\n')}\n`);
    // `audit verify` with the witnessed checkpoint: the chain of the cut trail still verifies, the
    // checkpoint catches the truncation (exit 1, its own failure kind).
    const vf = await cli([
      'verify',
      dir,
      '--checkpoint',
      wfile,
      '--public-key',
      `${prefix}.pub`,
      '--json',
      '--no-progress',
    ]);
    assert.equal(vf.code, 1, vf.out + vf.err);
    const vj = JSON.parse(vf.out) as { ok: boolean; failures: { kind: string }[] };
    assert.equal(vj.ok, false);
    assert.ok(
      vj.failures.some((f) => f.kind === 'truncated_trail'),
      JSON.stringify(vj.failures),
    );
    assert.equal((await cli(['verify', dir, '--checkpoint', wfile])).code, 2, '--public-key is required');
    const tr = await cli([
      'check-checkpoint',
      dir,
      '--checkpoint',
      wfile,
      '--public-key',
      `${prefix}.pub`,
      '--json',
    ]);
    assert.equal(tr.code, 1);
    assert.deepEqual(
      (JSON.parse(tr.out) as { failures: { kind: string }[] }).failures.map((f) => f.kind),
      ['truncated_trail'],
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
