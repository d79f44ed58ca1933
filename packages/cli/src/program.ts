/**
 * The `vramseal` command tree. Each command group lives in `commands/<name>.ts` and exports
 * `register(program)`; add yours below. Exit codes: 0 ok, 1 failed check, 2 usage or I/O error.
 */
import { Command } from 'commander';
import { register as registerAudit } from './commands/audit.js';
import { register as registerBench } from './commands/bench.js';
import { register as registerCollector } from './commands/collector.js';
import { register as registerDemo } from './commands/demo.js';
import { register as registerDevices } from './commands/devices.js';
import { register as registerSeal } from './commands/seal.js';
import { register as registerServe } from './commands/serve.js';

export const EXIT_OK = 0;
export const EXIT_CHECK_FAILED = 1;
export const EXIT_USAGE = 2;

export function buildProgram(): Command {
  const program = new Command('vramseal')
    .description('Seal ML model weights in GPU memory, prove it, and keep a tamper-evident audit trail')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerDemo(program);
  registerDevices(program);
  registerSeal(program);
  registerServe(program);
  registerBench(program);
  registerAudit(program);
  registerCollector(program);
  return program;
}

/** Runs the CLI; resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
      return EXIT_OK;
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return EXIT_USAGE;
    process.stderr.write(`vramseal: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
}
