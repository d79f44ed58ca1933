/**
 * `vramseal bench [names...] [--json] [--list]` — runs the repository's benchmark scripts (they live in
 * each package's bench/ folder, separate from the tests) one after another, each in its own Node
 * process with the TypeScript loader, and reports what each printed. A benchmark that is not present
 * in this checkout is skipped with a notice; one that fails makes the exit code 1.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { printJson } from '../output.js';
import { EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE } from '../program.js';

export interface BenchSpec {
  name: string;
  /** Path relative to the repository root; a directory means every *.ts in it. */
  path: string;
  what: string;
}

export const BENCHES: readonly BenchSpec[] = [
  {
    name: 'audit',
    path: 'packages/audit/bench/audit.ts',
    what: 'audit trail: emit, batched/immediate writes, verify, query',
  },
  {
    name: 'vram',
    path: 'packages/residency/bench/vram.ts',
    what: 'residency: seal, digest and verification throughput',
  },
  {
    name: 'collector',
    path: 'packages/collector/bench/load.ts',
    what: 'central collector: signed batch ingest over HTTP into PostgreSQL',
  },
];

/** The repository root (this file is packages/cli/{src,dist}/commands/bench.{ts,js}). */
export function repoRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
}

/**
 * The known benchmarks, plus every root package.json script `bench:<name>` that runs a TypeScript
 * file (`npm run bench:<name>` and `vramseal bench <name>` run the same file).
 */
export function listBenches(root: string): BenchSpec[] {
  const out = BENCHES.map((b) => ({ ...b }));
  let scripts: Record<string, string> = {};
  try {
    scripts =
      (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> })
        .scripts ?? {};
  } catch {
    // no root package.json (installed elsewhere): the known list only
  }
  for (const [key, cmd] of Object.entries(scripts)) {
    if (!key.startsWith('bench:')) continue;
    const file = /(packages\/\S+\.ts)\b/.exec(cmd)?.[1];
    if (!file) continue;
    const name = key.slice('bench:'.length);
    const known = out.find((b) => b.name === name);
    if (known) known.path = file;
    else out.push({ name, path: file, what: `npm run ${key}` });
  }
  return out;
}

/** Script files of a benchmark, or [] when absent. */
export function benchScripts(root: string, spec: BenchSpec): string[] {
  const p = join(root, spec.path);
  if (spec.path.endsWith('.ts')) return existsSync(p) ? [p] : [];
  if (!existsSync(p)) return [];
  return readdirSync(p)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .sort()
    .map((f) => join(p, f));
}

interface RunResult {
  script: string;
  code: number;
  stdout: string;
  ms: number;
}

function runScript(root: string, script: string, args: string[], capture: boolean): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--conditions=vramseal-source', '--import', 'tsx', script, ...args],
      { cwd: root, stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] },
    );
    let stdout = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.on('error', () => resolve({ script, code: 127, stdout, ms: performance.now() - t0 }));
    child.on('close', (code, signal) =>
      resolve({ script, code: code ?? (signal ? 128 : 1), stdout, ms: performance.now() - t0 }),
    );
  });
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('run the repository benchmarks (audit, vram, collector); separate from the tests')
    .argument(
      '[names...]',
      `benchmarks to run: ${BENCHES.map((b) => b.name).join(', ')}, and any root "bench:<name>" script (default: all)`,
    )
    .option('--json', 'collect each benchmark’s --json output into one JSON document')
    .option('--list', 'list the benchmarks and whether each is present')
    .option(
      '--bench-args <args>',
      'extra arguments for each benchmark, space-separated (e.g. "--events 100000")',
    )
    .action(async (names: string[], opts: { json?: boolean; list?: boolean; benchArgs?: string }) => {
      const root = repoRoot();
      const benches = listBenches(root);
      const unknown = names.filter((n) => !benches.some((b) => b.name === n));
      if (unknown.length) {
        process.stderr.write(
          `vramseal bench: unknown benchmark ${unknown.join(', ')} (known: ${benches.map((b) => b.name).join(', ')})\n`,
        );
        process.exitCode = EXIT_USAGE;
        return;
      }
      const selected = names.length ? benches.filter((b) => names.includes(b.name)) : benches;
      if (opts.list) {
        const rows = selected.map((b) => ({ ...b, present: benchScripts(root, b).length > 0 }));
        if (opts.json) printJson(rows);
        else
          for (const r of rows)
            process.stdout.write(
              `${r.name.padEnd(Math.max(...rows.map((x) => x.name.length)) + 1)} ${r.present ? 'present' : 'absent '}  ${r.path}  — ${r.what}\n`,
            );
        process.exitCode = EXIT_OK;
        return;
      }
      const extra = (opts.benchArgs ?? '').split(/\s+/).filter(Boolean);
      const args = [...(opts.json ? ['--json'] : []), ...extra];
      const report: Array<Record<string, unknown>> = [];
      let failed = 0;
      let ran = 0;
      for (const b of selected) {
        const scripts = benchScripts(root, b);
        if (scripts.length === 0) {
          const msg = `benchmark "${b.name}" is not present in this checkout (${b.path}); skipped`;
          if (!opts.json) process.stdout.write(`-- ${msg}\n`);
          else process.stderr.write(`vramseal bench: ${msg}\n`);
          report.push({ name: b.name, status: 'absent', path: b.path });
          continue;
        }
        for (const s of scripts) {
          const rel = relative(root, s);
          if (!opts.json) process.stdout.write(`== ${b.name}: ${rel}\n`);
          const r = await runScript(root, s, args, opts.json === true);
          ran++;
          if (r.code !== 0) failed++;
          let result: unknown = r.stdout.trim() || null;
          if (opts.json && typeof result === 'string') {
            try {
              result = JSON.parse(result);
            } catch {
              // keep the raw text
            }
          }
          report.push({
            name: b.name,
            script: rel,
            status: r.code === 0 ? 'ok' : 'failed',
            exit_code: r.code,
            seconds: Math.round(r.ms) / 1000,
            ...(opts.json ? { result } : {}),
          });
          if (!opts.json)
            process.stdout.write(
              `== ${b.name}: ${r.code === 0 ? 'done' : `FAILED (exit ${r.code})`} in ${(r.ms / 1000).toFixed(1)} s\n`,
            );
        }
      }
      if (opts.json) printJson({ ran, failed, benches: report });
      else if (ran === 0) process.stdout.write('no benchmark present in this checkout\n');
      process.exitCode = failed > 0 ? EXIT_CHECK_FAILED : EXIT_OK;
    });
}
