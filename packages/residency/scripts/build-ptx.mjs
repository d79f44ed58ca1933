#!/usr/bin/env node
// Compiles cuda/merkle.cu to the shipped PTX (ptx/merkle.ptx) with nvcc.
//   node scripts/build-ptx.mjs [--out <file>]      (npm run build:ptx)
// compute_75 is the lowest virtual architecture nvcc 13 accepts, so the PTX JIT-compiles on every
// GPU of compute capability ≥ 7.5 (Turing, Ampere, Ada, Hopper, Blackwell). The kernels themselves
// only need funnel shifts and byte permutes (sm_32+); CC 6.x–7.0 devices pass the VRAM-only policy
// but need a PTX built by an older nvcc (CUDA ≤ 12.x: -arch=compute_60).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const NVCC_ARGS = ['-arch=compute_75', '-ptx', '-std=c++17'];

const here = fileURLToPath(new URL('..', import.meta.url));
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? process.argv[i + 1] : `${here}ptx/merkle.ptx`;
  const r = spawnSync('nvcc', [...NVCC_ARGS, '-o', out, `${here}cuda/merkle.cu`], { stdio: 'inherit' });
  if (r.error) {
    console.error(
      `build:ptx: nvcc not found (${r.error.message}); install the CUDA toolkit to rebuild the PTX`,
    );
    process.exit(1);
  }
  process.exit(r.status ?? 1);
}
