/**
 * The `vramseal` command tree. Each command group lives in `commands/<name>.ts` and exports
 * `register(program)`; list it in {@link COMMAND_GROUPS}. Exit codes: 0 ok, 1 failed check, 2 usage or I/O error.
 *
 * Command modules are imported lazily: `vramseal audit verify …` loads only `commands/audit.js`, so a
 * command does not pay for the start-up of libraries it does not use (schemas, fastify, koffi, pg).
 */
import { Command } from 'commander';

export const EXIT_OK = 0;
export const EXIT_CHECK_FAILED = 1;
export const EXIT_USAGE = 2;

interface CommandModule {
  register(program: Command): void;
}

/** Top-level command name → its module, in help order. */
export const COMMAND_GROUPS: ReadonlyArray<readonly [string, () => Promise<CommandModule>]> = [
  ['demo', () => import('./commands/demo.js')],
  ['devices', () => import('./commands/devices.js')],
  ['seal', () => import('./commands/seal.js')],
  ['serve', () => import('./commands/serve.js')],
  ['bench', () => import('./commands/bench.js')],
  ['audit', () => import('./commands/audit.js')],
  ['collector', () => import('./commands/collector.js')],
];

/**
 * Builds the command tree. With `argv`, only the group its first word names is loaded (all groups when
 * the first word is not a known command, e.g. `--help` or a typo, so help and suggestions stay complete).
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('vramseal')
    .description('Seal ML model weights in GPU memory, prove it, and keep a tamper-evident audit trail')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  const first = argv?.[0];
  const named = COMMAND_GROUPS.filter(([name]) => name === first);
  const groups = named.length > 0 ? named : COMMAND_GROUPS;
  const modules = await Promise.all(groups.map(([, load]) => load()));
  for (const m of modules) m.register(program);
  return program;
}

/** Runs the CLI; resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv);
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
