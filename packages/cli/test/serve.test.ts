// Unit tests of the daemon's building blocks: token file, path confinement, rate limiter, parsers.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { formatBytes, parseBytes, parseDuration, UsageError } from '../src/output.js';
import { ProgressBar } from '../src/progress.js';
import { confineModelPath, resolveModelsDir } from '../src/serve/paths.js';
import { RateLimiter } from '../src/serve/ratelimit.js';
import { fingerprint, roleAllows, TokenFileError, TokenStore } from '../src/serve/tokens.js';

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
