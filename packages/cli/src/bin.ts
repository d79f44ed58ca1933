#!/usr/bin/env node
import { main } from './program.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`vramseal: ${(err as Error).message}\n`);
    process.exitCode = 2;
  },
);
