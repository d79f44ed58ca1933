// Unit tests of the daemon's building blocks: token file, path confinement, rate limiter, parsers.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { SimulatedBackend } from '@vramseal/residency';
import { formatBytes, parseBytes, parseDuration, UsageError } from '../src/output.js';
import { ProgressBar } from '../src/progress.js';
import { confineModelPath, pinModel, resolveModelsDir } from '../src/serve/paths.js';
import { RateLimiter } from '../src/serve/ratelimit.js';
import { ManagerResidency } from '../src/serve/residency.js';
import { buildServer, type Daemon } from '../src/serve/server.js';
import { fingerprint, roleAllows, TokenFileError, TokenStore } from '../src/serve/tokens.js';
import { openManager, openTrail, verifyTrailDir } from '../src/serve/worker.js';

const tmp = mkdtempSync(join(tmpdir(), 'vramseal-units-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const ADMIN = 'adm-0123456789abcdef';
const READER = 'rdr-0123456789abcdef';

test('token file: parses roles, authenticates, ignores comments', () => {
  const store = TokenStore.parse(`# tokens\n\n${ADMIN} admin\n${READER}\treader\n`);
  assert.equal(store.size, 2);
  assert.deepEqual(store.authenticate(ADMIN), { role: 'admin', fingerprint: fingerprint(ADMIN) });
  assert.equal(store.authenticate(READER)?.role, 'reader');
  assert.equal(store.authenticate(`${ADMIN}x`), undefined);
  assert.equal(store.authenticate(''), undefined);
  assert.match(fingerprint(ADMIN), /^token:[0-9a-f]{6}$/);
  // never the plain token in any rendering
  const rendered = JSON.stringify(store) + String(store.describe().map((d) => d.fingerprint));
  assert.ok(!rendered.includes(ADMIN) && !rendered.includes(READER));
});

test('token file: errors name the line and rule, never the token', () => {
  const cases: Array<[string, RegExp]> = [
    [`${ADMIN}`, /:1: expected "<token> <role>"/],
    [`short admin`, /:1: token must be 16-512/],
    [`# c\n${ADMIN} root`, /:2: role must be one of reader, operator, admin/],
    [`${ADMIN} admin\n${ADMIN} reader`, /:2: duplicate token/],
    [`# only comments`, /no tokens defined/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => TokenStore.parse(text, 'tokens.txt'),
      (e: unknown) => e instanceof TokenFileError && re.test(e.message) && !e.message.includes(ADMIN),
    );
  }
});

test('token file: refuses a group/world-readable file', async () => {
  const f = join(tmp, 'tokens-open');
  writeFileSync(f, `${ADMIN} admin\n`, { mode: 0o644 });
  await assert.rejects(TokenStore.fromFile(f), /too open/);
  const g = join(tmp, 'tokens-ok');
  writeFileSync(g, `${ADMIN} admin\n`, { mode: 0o600 });
  assert.equal((await TokenStore.fromFile(g)).size, 1);
});

test('roles are ordered reader < operator < admin', () => {
  assert.ok(
    roleAllows('admin', 'operator') && roleAllows('operator', 'operator') && roleAllows('operator', 'reader'),
  );
  assert.ok(!roleAllows('reader', 'operator') && !roleAllows('operator', 'admin'));
});

test('path confinement: inside ok; .., absolute, symlink out, NUL refused', async () => {
  const models = join(tmp, 'models');
  const outside = join(tmp, 'outside');
  mkdirSync(join(models, 'sub'), { recursive: true });
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(models, 'sub', 'm.bin'), 'abc');
  writeFileSync(join(outside, 'secret.bin'), 'secret');
  symlinkSync(join(outside, 'secret.bin'), join(models, 'link-out.bin'));
  symlinkSync(outside, join(models, 'dir-out'));
  symlinkSync(join(models, 'sub', 'm.bin'), join(models, 'link-in.bin'));
  const root = await resolveModelsDir(models);

  const ok = await confineModelPath(root, 'sub/m.bin');
  assert.equal(ok.ok, true);
  assert.equal(ok.ok && ok.bytes, 3);
  assert.equal((await confineModelPath(root, 'sub/../sub/m.bin')).ok, true);
  assert.equal((await confineModelPath(root, 'link-in.bin')).ok, true);
  assert.equal((await confineModelPath(root, join(root, 'sub', 'm.bin'))).ok, true);

  for (const p of [
    '../outside/secret.bin',
    'sub/../../outside/secret.bin',
    join(outside, 'secret.bin'),
    'link-out.bin',
    'dir-out/secret.bin',
    '/etc/passwd',
    '..',
    '.',
  ]) {
    const r = await confineModelPath(root, p);
    assert.equal(r.ok, false, p);
    assert.equal(!r.ok && r.kind, 'traversal', p);
  }
  const nul = await confineModelPath(root, 'sub/m.bin\u0000.txt');
  assert.equal(!nul.ok && nul.kind, 'invalid');
  const missing = await confineModelPath(root, 'nope.bin');
  assert.equal(!missing.ok && missing.kind, 'not_found');
  const dir = await confineModelPath(root, 'sub');
  assert.equal(!dir.ok && dir.kind, 'not_file');
});

test('pinModel: reads the checked file; a symlink swapped in after the check is refused', async () => {
  const models = join(tmp, 'pin-models');
  mkdirSync(models, { recursive: true });
  writeFileSync(join(models, 'm.bin'), 'model bytes');
  writeFileSync(join(tmp, 'pin-secret.bin'), 'secret');
  const root = await resolveModelsDir(models);
  const checked = await confineModelPath(root, 'm.bin');
  assert.ok(checked.ok);
  const pinned = await pinModel(root, checked.path);
  assert.ok(!('ok' in pinned));
  assert.equal(pinned.bytes, 11);
  assert.equal(readFileSync(pinned.path, 'utf8'), 'model bytes');
  await pinned.close();
  // the check passed, then the file is swapped for a symlink to a file outside
  rmSync(join(models, 'm.bin'));
  symlinkSync(join(tmp, 'pin-secret.bin'), join(models, 'm.bin'));
  const swapped = await pinModel(root, checked.path);
  assert.ok('ok' in swapped && !swapped.ok && swapped.kind === 'traversal');
  // ...or for a FIFO: refused at once, the open does not block
  rmSync(join(models, 'm.bin'));
  assert.equal(spawnSync('mkfifo', [join(models, 'm.bin')]).status, 0);
  const fifo = await pinModel(root, checked.path);
  assert.ok('ok' in fifo && !fifo.ok && fifo.kind === 'not_file');
});

test('rate limiter: fixed window, reports first excess and powers of two', () => {
  let now = 0;
  const rl = new RateLimiter({ max: 3, windowMs: 1000, now: () => now });
  const d = Array.from({ length: 13 }, () => rl.hit('a'));
  assert.deepEqual(
    d.map((x) => x.allowed),
    [true, true, true, false, false, false, false, false, false, false, false, false, false],
  );
  assert.deepEqual(
    d.filter((x) => x.report).map((x) => x.count),
    [4, 6, 12],
  );
  assert.equal(rl.hit('b').allowed, true, 'keys are independent');
  now = 1000;
  assert.equal(rl.hit('a').allowed, true, 'a new window starts');
});

test('rate limiter: bounded key table', () => {
  const rl = new RateLimiter({ max: 1, windowMs: 60_000, maxKeys: 10, now: () => 0 });
  for (let i = 0; i < 100; i++) rl.hit(`k${i}`);
  assert.equal(rl.hit('k99').allowed, false);
});

test('parsers and formatting', () => {
  assert.equal(parseBytes('--size', '256MiB'), 256 * 1024 * 1024);
  assert.equal(parseBytes('--size', '1000'), 1000);
  assert.equal(parseBytes('--size', '1.5k'), 1500);
  assert.throws(
    () => parseBytes('--size', '12 bananas'),
    (e: unknown) => e instanceof UsageError && /--size/.test((e as Error).message),
  );
  assert.equal(parseDuration('--verify-interval', '5m'), 300_000);
  assert.equal(parseDuration('--verify-interval', '250ms'), 250);
  assert.equal(parseDuration('--verify-interval', '0'), 0);
  assert.throws(() => parseDuration('--verify-interval', '-1s'), /--verify-interval/);
  assert.equal(formatBytes(256 * 1024 * 1024), '256.0 MiB');
  assert.equal(formatBytes(512), '512 B');
});

test('progress bar: quarter lines when not a TTY, one final line', () => {
  const out: string[] = [];
  let t = 0;
  const bar = new ProgressBar({
    label: 'copy',
    total: 100,
    stream: { isTTY: false, write: (s) => out.push(s) > 0 },
    now: () => t,
  });
  for (let i = 0; i <= 100; i += 5) {
    t += 10;
    bar.update(i);
  }
  bar.done();
  assert.equal(out.length, 4, out.join(''));
  assert.match(out[3] ?? '', /100%/);
  const quiet: string[] = [];
  const off = new ProgressBar({
    label: 'x',
    total: 10,
    enabled: false,
    stream: { isTTY: true, write: (s) => quiet.push(s) > 0 },
  });
  off.update(5);
  off.done();
  assert.equal(quiet.length, 0);
});

// ---------------------------------------------------------------------------------------------
// HTTP API: an in-process daemon on a real listening socket (ephemeral port), real VramManager on
// the simulated backend, real audit trail.

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies and audit events are inspected dynamically in assertions
type Json = any;

const OPERATOR = 'opr-0123456789abcdef';
const TOKENS = TokenStore.parse(`${ADMIN} admin\n${OPERATOR} operator\n${READER} reader\n`);

interface Harness {
  base: string;
  daemon: Daemon;
  res: ManagerResidency;
  auditDir: string;
  flush(): Promise<void>;
  events(): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

let harnessN = 0;
async function startHarness(
  opts: { executeCheck?: 'sample' | 'full'; rateLimit?: { max: number; windowMs: number } } = {},
): Promise<Harness> {
  const root = join(tmp, `h${harnessN++}`);
  const models = join(root, 'models');
  mkdirSync(join(models, 'org'), { recursive: true });
  mkdirSync(join(root, 'outside'), { recursive: true });
  writeFileSync(join(root, 'outside', 'secret.bin'), 'not a model');
  symlinkSync(join(root, 'outside', 'secret.bin'), join(models, 'escape.bin'));
  const auditDir = join(root, 'audit');
  const trail = await openTrail({
    dir: auditDir,
    serviceId: 'test-worker',
    flush: 'hybrid',
    failClosed: true,
  });
  const manager = await openManager({
    workerToken: 'worker-token-0123456789',
    workerId: 'test-worker',
    audit: trail.logger,
    backend: new SimulatedBackend({ devices: 1, vramBytes: 64 * 1024 * 1024, workers: 1 }),
  });
  const res = new ManagerResidency(manager);
  const daemon = await buildServer({
    residency: res,
    audit: trail.logger,
    tokens: TOKENS,
    modelsDir: await resolveModelsDir(models),
    serviceId: 'test-worker',
    executeCheck: opts.executeCheck ?? 'sample',
    rateLimit: opts.rateLimit ?? { max: 10_000, windowMs: 60_000 },
    defaultMetrics: false,
  });
  const base = await daemon.app.listen({ host: '127.0.0.1', port: 0 });
  return {
    base,
    daemon,
    res,
    auditDir,
    flush: () => trail.logger.flush(),
    events: () =>
      readdirSync(auditDir)
        .filter((f) => f.endsWith('.audit'))
        .flatMap((f) => readFileSync(join(auditDir, f), 'utf8').split('\n').filter(Boolean))
        .map((l) => (JSON.parse(l) as { event: Record<string, unknown> }).event),
    close: async () => {
      await daemon.app.close();
      await res.close();
      await trail.logger.close();
    },
  };
}

function writeModel(h: Harness, rel: string, bytes: number): { path: string; sha256: string } {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + 7) & 0xff;
  const path = join(h.auditDir, '..', 'models', rel);
  writeFileSync(path, data);
  return { path, sha256: createHash('sha256').update(data).digest('hex') };
}

async function call(
  h: Harness,
  method: string,
  path: string,
  opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Json; text: string; headers: Headers }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  const token = opts.token === undefined ? ADMIN : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${h.base}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await r.text();
  let body: Json = null;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: r.status, body, text, headers: r.headers };
}

test('HTTP: every route, happy path, with schemas and audit records', async () => {
  const h = await startHarness();
  try {
    const health = await call(h, 'GET', '/health', { token: null });
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ready');
    assert.equal(health.body.backend, 'simulated');

    const cap = await call(h, 'GET', '/v1/capacity?bytes=1048576', { token: READER });
    assert.equal(cap.status, 200, cap.text);
    assert.equal(cap.body.fits, true);
    assert.equal(cap.body.total_bytes, 64 * 1024 * 1024);
    const big = await call(h, 'GET', '/v1/capacity?bytes=1073741824', { token: READER });
    assert.equal(big.body.fits, false);
    assert.match(big.body.reason, /needs 1073741824 bytes/);
    const bad = await call(h, 'GET', '/v1/capacity?bytes=-5', { token: READER });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_REQUEST');
    assert.match(bad.body.error.message, /bytes/);

    const m = writeModel(h, 'org/model-a.bin', 300_000);
    const sealed = await call(h, 'POST', '/v1/shards', {
      body: { model: 'org/model-a.bin', expect_sha256: m.sha256, shard_id: 'model-a' },
    });
    assert.equal(sealed.status, 201, sealed.text);
    assert.equal(sealed.body.shard.shard_id, 'model-a');
    assert.equal(sealed.body.shard.vram_bytes, 300_000);
    assert.equal(sealed.body.shard.backend, 'simulated');
    assert.equal(sealed.body.shard.model_ref, 'org/model-a.bin');
    assert.match(sealed.body.shard.digest, /^sha256-merkle-v1:16384:[0-9a-f]{64}$/);
    assert.ok(!('seal' in sealed.body.shard) && !('signature' in sealed.body.shard));

    const dup = await call(h, 'POST', '/v1/shards', {
      body: { model: 'org/model-a.bin', shard_id: 'model-a' },
    });
    assert.equal(dup.status, 409, dup.text);
    assert.equal(dup.body.error.code, 'SHARD_EXISTS');

    const list = await call(h, 'GET', '/v1/shards', { token: READER });
    assert.deepEqual(
      list.body.shards.map((s: { shard_id: string }) => s.shard_id),
      ['model-a'],
    );
    const one = await call(h, 'GET', '/v1/shards/model-a', { token: READER });
    assert.equal(one.status, 200);
    assert.equal(one.body.last_verification, null);

    const ex = await call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'model-a' } });
    assert.equal(ex.status, 200, ex.text);
    assert.equal(ex.body.attested, true);
    assert.equal(ex.body.verification.mode, 'sample');
    assert.equal(ex.body.verification.chunks_checked, 8);
    assert.equal(ex.body.shard.digest, sealed.body.shard.digest);
    const again = await call(h, 'GET', '/v1/shards/model-a', { token: READER });
    assert.equal(again.body.last_verification.mode, 'sample');

    const unknown = await call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'nope' } });
    assert.equal(unknown.status, 404);
    assert.equal(
      (await call(h, 'GET', '/health', { token: null })).body.status,
      'ready',
      'an unknown id does not stop',
    );
    assert.equal((await call(h, 'GET', '/v1/shards/bad.id', { token: READER })).status, 400);
    assert.equal((await call(h, 'GET', '/v1/shards/missing', { token: READER })).status, 404);

    const wrongSha = writeModel(h, 'org/model-b.bin', 5000);
    const integrity = await call(h, 'POST', '/v1/shards', {
      body: { model: 'org/model-b.bin', expect_sha256: 'ab'.repeat(32) },
    });
    assert.equal(integrity.status, 422, integrity.text);
    assert.equal(integrity.body.error.code, 'INTEGRITY_VIOLATION');
    assert.ok(wrongSha.sha256);
    const missing = await call(h, 'POST', '/v1/shards', { body: { model: 'org/none.bin' } });
    assert.equal(missing.status, 404);
    const extra = await call(h, 'POST', '/v1/shards', { body: { model: 'org/model-b.bin', foo: 1 } });
    assert.equal(extra.status, 400);
    const tooBig = writeModel(h, 'org/big.bin', 65 * 1024 * 1024);
    const refused = await call(h, 'POST', '/v1/shards', { body: { model: 'org/big.bin' } });
    assert.equal(refused.status, 507, refused.text);
    assert.equal(refused.body.error.code, 'INSUFFICIENT_VRAM');
    rmSync(tooBig.path);

    const del = await call(h, 'DELETE', '/v1/shards/model-a');
    assert.equal(del.status, 200);
    assert.deepEqual(del.body, { shard_id: 'model-a', released: true, freed_bytes: 300_000 });
    assert.equal((await call(h, 'DELETE', '/v1/shards/model-a')).status, 404);
    assert.equal((await call(h, 'GET', '/v1/shards', { token: READER })).body.shards.length, 0);

    await h.flush();
    const types = h.events().map((e) => e.type);
    for (const t of [
      'auth.success',
      'vram.allocated',
      'vram.sealed',
      'seal.verified',
      'vram.deallocated',
      'security.integrity_violation',
    ])
      assert.ok(types.includes(t), `trail has ${t}`);
    const success = h.events().filter((e) => e.type === 'auth.success') as Json[];
    assert.equal(success[0].actor.user_id, fingerprint(READER));
    const post = success.find((e) => e.method === 'POST' && e.path === '/v1/shards');
    assert.equal(post.actor.user_id, fingerprint(ADMIN));
    assert.equal(post.service_id, 'test-worker');
    assert.equal(post.actor.auth_method, 'bearer_token');
    assert.equal(post.actor.ip, '127.0.0.1');
  } finally {
    await h.close();
  }
});

test('HTTP: authentication and authorization failures', async () => {
  const h = await startHarness();
  try {
    const none = await call(h, 'GET', '/v1/shards', { token: null });
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const basic = await call(h, 'GET', '/v1/shards', {
      token: null,
      headers: { authorization: 'Basic YWxhZGRpbjpvcGVuc2VzYW1l' },
    });
    assert.equal(basic.status, 401);
    const wrong = 'wrong-token-0123456789';
    const bad = await call(h, 'GET', '/v1/shards', { token: wrong });
    assert.equal(bad.status, 401);
    assert.ok(!bad.text.includes(wrong));
    const reader = await call(h, 'POST', '/v1/shards', { token: READER, body: { model: 'x.bin' } });
    assert.equal(reader.status, 403);
    const readerExec = await call(h, 'POST', '/v1/execute', { token: READER, body: { shard_id: 'x' } });
    assert.equal(readerExec.status, 403);
    const opDelete = await call(h, 'DELETE', '/v1/shards/x', { token: OPERATOR });
    assert.equal(opDelete.status, 403);
    // /health and /metrics need no token
    assert.equal((await call(h, 'GET', '/metrics', { token: null })).status, 200);

    await h.flush();
    const ev = h.events();
    const failures = ev.filter((e) => e.type === 'auth.failure');
    assert.deepEqual(
      failures.map((e) => e.reason),
      ['missing', 'malformed', 'invalid_token'],
    );
    assert.equal(failures[2]?.attempted_user, fingerprint(wrong));
    const invalid = ev.filter((e) => e.type === 'security.invalid_token_used');
    assert.equal(invalid.length, 1);
    assert.equal(invalid[0]?.token_prefix, fingerprint(wrong));
    assert.equal(invalid[0]?.endpoint, '/v1/shards');
    assert.equal(ev.filter((e) => e.type === 'authz.denied').length, 3);
    const raw = readdirSync(h.auditDir)
      .filter((f) => f.endsWith('.audit'))
      .map((f) => readFileSync(join(h.auditDir, f), 'utf8'))
      .join('');
    for (const secret of [wrong, ADMIN, READER, OPERATOR, 'worker-token-0123456789'])
      assert.ok(!raw.includes(secret), 'no token in the trail');
  } finally {
    await h.close();
  }
});

test('HTTP: path traversal is refused and recorded', async () => {
  const h = await startHarness();
  try {
    const attempts = [
      '../outside/secret.bin',
      'org/../../outside/secret.bin',
      '/etc/passwd',
      'escape.bin',
      '..',
      'org/\u202e.bin/../../../x',
    ];
    for (const model of attempts) {
      const r = await call(h, 'POST', '/v1/shards', { body: { model } });
      assert.equal(r.status, 400, `${model}: ${r.text}`);
      assert.equal(r.body.error.code, 'PATH_TRAVERSAL', model);
    }
    assert.equal((await call(h, 'GET', '/v1/shards', { token: READER })).body.shards.length, 0);
    await h.flush();
    const ev = h.events().filter((e) => e.type === 'security.path_traversal_attempt') as Json[];
    assert.equal(ev.length, attempts.length);
    assert.equal(ev[0].attempted_path, '../outside/secret.bin');
    assert.equal(ev[0].endpoint, '/v1/shards');
    assert.equal(ev[0].actor.user_id, fingerprint(ADMIN));
    assert.match(ev[5].attempted_path, /\\u202e/, 'bidi override escaped, not stored raw');
  } finally {
    await h.close();
  }
});

test('HTTP: failed verification → 409 with the corrupt range, then stopped (503) until restart', async () => {
  const h = await startHarness({ executeCheck: 'full' });
  try {
    writeModel(h, 'org/m.bin', 100_000);
    assert.equal(
      (await call(h, 'POST', '/v1/shards', { body: { model: 'org/m.bin', shard_id: 'm' } })).status,
      201,
    );
    const ok = await call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'm' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.verification.mode, 'full');
    assert.equal(ok.body.verification.chunks_checked, 7);

    await h.res.corruptForTest('m', 50_000, 1);
    const fail = await call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'm' } });
    assert.equal(fail.status, 409, fail.text);
    assert.equal(fail.body.error.code, 'SEAL_VERIFICATION_FAILED');
    assert.deepEqual(fail.body.error.corrupt_ranges, [{ offset: 49152, length: 16384 }]);

    const health = await call(h, 'GET', '/health', { token: null });
    assert.equal(health.status, 503);
    assert.equal(health.body.status, 'stopped');
    assert.match(health.body.reason, /m/);
    const after = await call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'm' } });
    assert.equal(after.status, 503);
    assert.equal(after.body.error.code, 'STOPPED');
    const seal = await call(h, 'POST', '/v1/shards', { body: { model: 'org/m.bin', shard_id: 'm2' } });
    assert.equal(seal.status, 503);
    const metrics = await call(h, 'GET', '/metrics', { token: null });
    assert.match(metrics.text, /^vramseal_state 0$/m);
    assert.match(metrics.text, /^vramseal_verifications_total\{mode="full",result="failed"\} 1$/m);
    assert.match(metrics.text, /^vramseal_verifications_total\{mode="full",result="ok"\} 1$/m);
    await h.flush();
    const vf = h.events().filter((e) => e.type === 'seal.verification_failed') as Json[];
    assert.equal(vf.length, 1);
    assert.deepEqual(vf[0].corrupt_ranges, [{ offset: 49152, length: 16384 }]);
  } finally {
    await h.close();
  }
});

test('HTTP: DELETE racing executes never stops the worker', async () => {
  const h = await startHarness({ executeCheck: 'full' });
  try {
    writeModel(h, 'org/r.bin', 2 * 1024 * 1024);
    assert.equal(
      (await call(h, 'POST', '/v1/shards', { body: { model: 'org/r.bin', shard_id: 'r' } })).status,
      201,
    );
    const execs = Array.from({ length: 6 }, () =>
      call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'r' } }),
    );
    const del = call(h, 'DELETE', '/v1/shards/r');
    const more = Array.from({ length: 4 }, () =>
      call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'r' } }),
    );
    const results = await Promise.all([...execs, ...more]);
    assert.equal((await del).status, 200);
    for (const r of results) assert.ok(r.status === 200 || r.status === 404, `${r.status} ${r.text}`);
    const health = await call(h, 'GET', '/health', { token: null });
    assert.equal(health.body.status, 'ready');
    await h.flush();
    assert.equal(h.events().filter((e) => e.type === 'seal.verification_failed').length, 0);
  } finally {
    await h.close();
  }
});

test('HTTP: the background full verification (--verify-interval) catches corruption and stops the worker', async () => {
  const h = await startHarness();
  try {
    writeModel(h, 'org/p.bin', 64 * 1024);
    assert.equal(
      (await call(h, 'POST', '/v1/shards', { body: { model: 'org/p.bin', shard_id: 'p' } })).status,
      201,
    );
    const runs: boolean[] = [];
    h.res.startPeriodic(20, (ok) => runs.push(ok));
    const deadline = Date.now() + 10_000;
    while (!runs.includes(true) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(runs.includes(true), 'a clean run happened');
    await h.res.corruptForTest('p', 100, 1);
    while ((await call(h, 'GET', '/health', { token: null })).status === 200 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const health = await call(h, 'GET', '/health', { token: null });
    assert.equal(health.status, 503);
    assert.equal(health.body.status, 'stopped');
    const ex = await call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'p' } });
    assert.equal(ex.status, 503);
    await h.flush();
    const vf = h.events().filter((e) => e.type === 'seal.verification_failed') as Json[];
    assert.equal(vf.length, 1);
    assert.deepEqual(vf[0].corrupt_ranges, [{ offset: 0, length: 16384 }]);
  } finally {
    await h.close();
  }
});

test('HTTP: metrics exposition', async () => {
  const h = await startHarness();
  try {
    writeModel(h, 'org/m.bin', 40_000);
    await call(h, 'POST', '/v1/shards', { body: { model: 'org/m.bin', shard_id: 'm' } });
    await call(h, 'POST', '/v1/execute', { token: OPERATOR, body: { shard_id: 'm' } });
    const r = await call(h, 'GET', '/metrics', { token: null });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const lines = [
      /^# TYPE vramseal_vram_bytes_total gauge$/m,
      /^vramseal_vram_bytes_total\{device="0",backend="simulated"\} 67108864$/m,
      /^vramseal_vram_bytes_used\{device="0",backend="simulated"\} 40000$/m,
      /^vramseal_shards 1$/m,
      /^vramseal_state 1$/m,
      /^vramseal_seals_total\{result="ok"\} 1$/m,
      /^vramseal_verifications_total\{mode="sample",result="ok"\} 1$/m,
      /^# TYPE vramseal_verification_duration_seconds histogram$/m,
      /^vramseal_verification_duration_seconds_count\{mode="sample"\} 1$/m,
      /^vramseal_audit_queue_depth \d+$/m,
      /^vramseal_audit_dropped_records_total 0$/m,
      /^vramseal_audit_fsyncs_total \d+$/m,
      /^vramseal_audit_fsync_avg_seconds [0-9.e-]+$/m,
      /^vramseal_http_requests_total\{route="\/v1\/execute",status="200"\} 1$/m,
    ];
    for (const re of lines) assert.match(r.text, re);
  } finally {
    await h.close();
  }
});

test('HTTP: rate limiting answers 429 and records security.rate_limit_exceeded', async () => {
  const h = await startHarness({ rateLimit: { max: 3, windowMs: 60_000 } });
  try {
    const codes: number[] = [];
    for (let i = 0; i < 6; i++) codes.push((await call(h, 'GET', '/v1/shards', { token: READER })).status);
    assert.deepEqual(codes, [200, 200, 200, 429, 429, 429]);
    const r = await call(h, 'GET', '/v1/shards', { token: READER });
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.equal(r.body.error.code, 'RATE_LIMITED');
    await h.flush();
    const ev = h.events().filter((e) => e.type === 'security.rate_limit_exceeded') as Json[];
    assert.deepEqual(
      ev.map((e) => e.actual),
      [4, 6],
    );
    assert.equal(ev[0].limit, 3);
    assert.equal(ev[0].window_seconds, 60);
    assert.equal(ev[0].endpoint, '/v1/shards');
    assert.equal(
      h.events().filter((e) => e.type === 'auth.success').length,
      3,
      'refused requests never reach auth',
    );
  } finally {
    await h.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The real binary: `vramseal serve` on an ephemeral port, then SIGTERM.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const BIN = join(REPO, 'packages/cli/dist/bin.js');

function ensureBuilt(): void {
  if (existsSync(BIN)) return;
  const r = spawnSync('npx', ['tsc', '-b', 'packages/cli'], { cwd: REPO, stdio: 'inherit' });
  assert.equal(r.status, 0, 'build failed');
}

test('binary: serve drains in-flight requests on SIGTERM, releases every shard, flushes a verifiable trail', async () => {
  ensureBuilt();
  const root = join(tmp, 'daemon');
  const models = join(root, 'models');
  mkdirSync(models, { recursive: true });
  writeFileSync(join(models, 'a.bin'), Buffer.alloc(100_000, 1));
  writeFileSync(join(models, 'b.bin'), Buffer.alloc(32 * 1024 * 1024, 2));
  const tokenFile = join(root, 'tokens');
  writeFileSync(tokenFile, `# test tokens\n${ADMIN} admin\n${READER} reader\n`, { mode: 0o600 });
  const auditDir = join(root, 'audit');
  const workerToken = 'daemon-worker-token-0123456789';
  const child = spawn(
    process.execPath,
    [
      BIN,
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
      '1s',
    ],
    {
      cwd: root,
      env: {
        ...process.env,
        VRAMSEAL_BACKEND: 'simulated',
        VRAMSEAL_SIM_VRAM_BYTES: '256MiB',
        VRAMSEAL_WORKER_TOKEN: workerToken,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  const waiters: Array<{
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }> = [];
  const seen: Array<Record<string, unknown>> = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    const lines = out.split('\n');
    out = lines.pop() ?? '';
    for (const line of lines) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        continue;
      }
      seen.push(rec);
      for (const w of [...waiters])
        if (w.pred(rec)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(rec);
        }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const waitLog = (pred: (l: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const hit = seen.find(pred);
      if (hit) return resolve(hit);
      waiters.push({ pred, resolve });
      exited.then((c) =>
        reject(new Error(`daemon exited (${c}) before the expected log line; stderr: ${err}`)),
      );
    });
  try {
    const ready = await waitLog((l) => l.msg === 'vramseal daemon ready');
    const base = String(ready.address);
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    const h = { base } as Harness;
    const a = await call(h, 'POST', '/v1/shards', { body: { model: 'a.bin', shard_id: 'a' } });
    assert.equal(a.status, 201, a.text);
    const health = await call(h, 'GET', '/health', { token: null });
    assert.equal(health.body.status, 'ready');
    // b: a 32 MiB seal still in flight when SIGTERM arrives
    const inflight = call(h, 'POST', '/v1/shards', { body: { model: 'b.bin', shard_id: 'b' } });
    await waitLog(
      (l) =>
        l.msg === 'incoming request' &&
        (l.req as { url?: string })?.url === '/v1/shards' &&
        seen.filter((x) => x.msg === 'incoming request' && (x.req as { url?: string })?.url === '/v1/shards')
          .length >= 2,
    );
    child.kill('SIGTERM');
    const b = await inflight;
    assert.equal(b.status, 201, `in-flight request finished: ${b.text}`);
    assert.equal(await exited, 0, `exit 0; stderr: ${err}`);
    await assert.rejects(fetch(`${base}/health`), 'no longer listening');

    const v = await verifyTrailDir(auditDir);
    assert.equal(v.ok, true, JSON.stringify(v.failures));
    const events = readdirSync(auditDir)
      .filter((f) => f.endsWith('.audit'))
      .flatMap((f) => readFileSync(join(auditDir, f), 'utf8').split('\n').filter(Boolean))
      .map((l) => (JSON.parse(l) as { event: Record<string, unknown> }).event);
    const dealloc = events.filter((e) => e.type === 'vram.deallocated');
    assert.deepEqual(dealloc.map((e) => [e.shard_id, e.reason]).sort(), [
      ['a', 'close'],
      ['b', 'close'],
    ]);
    assert.equal(events.filter((e) => e.type === 'vram.sealed').length, 2);
    assert.ok(seen.some((l) => l.msg === 'shutdown complete' && l.code === 0));
    const logs = JSON.stringify(seen) + err;
    for (const secret of [ADMIN, READER, workerToken])
      assert.ok(!logs.includes(secret), 'no secret in the logs');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
