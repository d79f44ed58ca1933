#!/usr/bin/env node
// libuv's threadpool backs file reads and the CUDA backend's staging copies; its default of 4 threads
// halves seal throughput on GPU hosts (measured: 17.7 vs 30.7 GB/s on an H200 host). It is created
// lazily, so setting the size here, before any pool work, takes effect. An explicit setting wins.
process.env.UV_THREADPOOL_SIZE ??= '16';

const { main } = await import('./program.js');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`vramseal: ${(err as Error).message}\n`);
    process.exitCode = 2;
  },
);
