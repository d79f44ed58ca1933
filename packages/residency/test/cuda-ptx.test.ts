/**
 * CUDA backend pieces that need no GPU: the shipped PTX matches cuda/merkle.cu (rebuilt with nvcc
 * when present), the VRAM-only device policy, the kernel parameter block layout, and the exact
 * reason given when libcuda cannot be used.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadDriver } from '../src/cuda/driver.js';
import { openCudaBackend } from '../src/cuda/index.js';
import { ParamBlock } from '../src/cuda/kernels.js';
import { checkDevicePolicy, type DeviceFacts } from '../src/cuda/policy.js';
import { BackendUnavailableError, PolicyViolationError } from '../src/errors.js';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const shippedPath = join(pkg, 'ptx', 'merkle.ptx');

/** PTX without its `//` comment lines (compiler banner, demotion notes). */
const code = (ptx: string) =>
  ptx
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('//'))
    .join('\n');
const banner = (ptx: string) => /Cuda compilation tools, release [^\n]*/.exec(ptx)?.[0] ?? 'unknown';

test('shipped PTX declares both kernels for compute_75', async () => {
  const ptx = await readFile(shippedPath, 'utf8');
  assert.match(ptx, /^\.target sm_75$/m);
  assert.match(ptx, /\.visible \.entry vs_merkle_leaves\(/);
  assert.match(ptx, /\.visible \.entry vs_merkle_reduce\(/);
});

const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
const nvccVersion = nvcc.status === 0 ? (/release [^\n]*/.exec(nvcc.stdout)?.[0] ?? '') : '';

test('shipped PTX is exactly what nvcc builds from cuda/merkle.cu (npm run build:ptx)', {
  skip: nvcc.status === 0 ? false : 'nvcc not found: cannot rebuild the PTX here',
}, async (t) => {
  const shipped = await readFile(shippedPath, 'utf8');
  if (!banner(shipped).includes(nvccVersion)) {
    t.skip(`nvcc ${nvccVersion} differs from the one that built the shipped PTX (${banner(shipped)})`);
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'vramseal-ptx-'));
  try {
    const out = join(dir, 'merkle.ptx');
    const r = spawnSync(process.execPath, [join(pkg, 'scripts', 'build-ptx.mjs'), '--out', out], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `build-ptx failed: ${r.stderr}`);
    const rebuilt = await readFile(out, 'utf8');
    assert.ok(
      code(rebuilt) === code(shipped),
      'ptx/merkle.ptx is stale: run `npm run build:ptx` and commit the result',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const facts = (over: Partial<DeviceFacts> = {}): DeviceFacts => ({
  index: 0,
  name: 'Test GPU',
  integrated: false,
  ccMajor: 9,
  ccMinor: 0,
  totalBytes: 80 * 1024 ** 3,
  ...over,
});

test('VRAM-only device policy: discrete, CC ≥ 6.0, ≥ 1 GiB', () => {
  checkDevicePolicy(facts());
  checkDevicePolicy(facts({ ccMajor: 6, ccMinor: 0, totalBytes: 1024 ** 3 }));
  const violation = (f: DeviceFacts, re: RegExp) =>
    assert.throws(
      () => checkDevicePolicy(f),
      (e: unknown) =>
        e instanceof PolicyViolationError && e.code === 'POLICY_VIOLATION' && re.test(e.message),
    );
  violation(facts({ integrated: true }), /integrated GPU.*UMA/);
  violation(facts({ ccMajor: 5, ccMinor: 2 }), /compute capability 5\.2, at least 6\.0/);
  violation(facts({ totalBytes: 1024 ** 3 - 1 }), /memory too small.*1073741823 bytes/);
});

test('kernel parameter block: 8-byte slots, then a table of their addresses', () => {
  const mem = new Uint8Array(ParamBlock.BYTES);
  const base = 0x7f0000001000n;
  const p = new ParamBlock({ addr: base, view: mem }).reset().u64(0x1122334455667788n).u32(14).mul();
  const table = p.table();
  const dv = new DataView(mem.buffer);
  assert.equal(dv.getBigUint64(0, true), 0x1122334455667788n);
  assert.equal(dv.getUint32(8, true), 14);
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((i) => dv.getUint32(16 + 4 * i, true)),
    [1, 2 ** 29, 2 ** 22, 2 ** 7, 2 ** 14],
  );
  const at = Number(table - base);
  assert.equal(at, 40);
  assert.deepEqual(
    [0, 1, 2].map((i) => dv.getBigUint64(at + 8 * i, true)),
    [base, base + 8n, base + 16n],
  );
});

test('an unloadable driver library is a BackendUnavailableError naming it', async () => {
  assert.throws(
    () => loadDriver('/nonexistent/libcuda-vramseal-test.so'),
    (e: unknown) =>
      e instanceof BackendUnavailableError &&
      e.code === 'BACKEND_UNAVAILABLE' &&
      /libcuda-vramseal-test\.so could not be loaded/.test(e.message),
  );
  await assert.rejects(
    openCudaBackend({ library: '/nonexistent/libcuda-vramseal-test.so' }),
    BackendUnavailableError,
  );
});
