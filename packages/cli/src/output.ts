/**
 * Human and machine output of the CLI. Human text goes to stdout (errors and progress to stderr);
 * `--json` prints exactly one JSON document on stdout. Colour only when stdout is a TTY and
 * `NO_COLOR` is unset.
 */

const KIB = 1024;
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 268435456 → "256.0 MiB" (binary units). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  let v = Math.abs(n);
  let u = 0;
  while (v >= KIB && u < UNITS.length - 1) {
    v /= KIB;
    u++;
  }
  const s = u === 0 ? String(v) : v.toFixed(1);
  return `${n < 0 ? '-' : ''}${s} ${UNITS[u]}`;
}

/** Throughput in decimal GB/s (10⁹ bytes per second), as storage and GPU vendors quote it. */
export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0) return 'n/a';
  const gbps = bytes / 1e9 / (ms / 1000);
  if (gbps >= 0.1) return `${gbps.toFixed(2)} GB/s`;
  return `${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`;
}

/** GB/s as a number (for --json). */
export function gbPerSecond(bytes: number, ms: number): number {
  return ms > 0 ? Number((bytes / 1e9 / (ms / 1000)).toFixed(3)) : 0;
}

export function formatMs(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export interface Style {
  ok(s: string): string;
  bad(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

export function styleFor(stream: { isTTY?: boolean } = process.stdout): Style {
  const on = stream.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
  const wrap = (a: number, b: number) => (s: string) => (on ? `\u001b[${a}m${s}\u001b[${b}m` : s);
  return { ok: wrap(32, 39), bad: wrap(31, 39), dim: wrap(2, 22), bold: wrap(1, 22) };
}

/** Left-aligned text table with a header row. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function printJson(value: unknown, out: NodeJS.WritableStream = process.stdout): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One line per step: `✔ label  detail` or `✘ label  detail`. */
export class StepPrinter {
  readonly #out: NodeJS.WritableStream;
  readonly #style: Style;
  readonly #quiet: boolean;
  constructor(opts: { out?: NodeJS.WritableStream & { isTTY?: boolean }; quiet?: boolean } = {}) {
    this.#out = opts.out ?? process.stdout;
    this.#style = styleFor(opts.out ?? process.stdout);
    this.#quiet = opts.quiet ?? false;
  }
  get style(): Style {
    return this.#style;
  }
  line(s = ''): void {
    if (!this.#quiet) this.#out.write(`${s}\n`);
  }
  step(ok: boolean, label: string, detail = ''): void {
    const mark = ok ? this.#style.ok('✔') : this.#style.bad('✘');
    this.line(`${mark} ${label}${detail ? `  ${this.#style.dim(detail)}` : ''}`);
  }
  detail(s: string): void {
    this.line(`    ${s}`);
  }
}

/** Message of an unknown thrown value, with its typed `code` when it has one. */
export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} [${code}]` : err.message;
  }
  return String(err);
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Parses a byte count: `268435456`, `256MiB`, `1.5GiB`, `100MB` (decimal), `4k`. Throws naming `field`. */
export function parseBytes(field: string, s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(s);
  const mult = m ? BYTE_UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || mult === undefined)
    throw new UsageError(
      `${field}: expected a byte count such as 268435456, 256MiB or 1GiB, got ${JSON.stringify(s)}`,
    );
  const v = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(v)) throw new UsageError(`${field}: ${JSON.stringify(s)} is too large`);
  return v;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, '': 1000, m: 60_000, h: 3_600_000 };

/** Parses a duration: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds; `0` means off. */
export function parseDuration(field: string, s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|)\s*$/.exec(s);
  const mult = m ? DURATION_UNITS[m[2] ?? ''] : undefined;
  if (!m || mult === undefined)
    throw new UsageError(
      `${field}: expected a duration such as 500ms, 30s, 5m or 1h, got ${JSON.stringify(s)}`,
    );
  return Math.round(Number(m[1]) * mult);
}

/** Parses a non-negative integer option. */
export function parseIntOption(field: string, s: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(s.trim()))
    throw new UsageError(`${field}: expected an integer, got ${JSON.stringify(s)}`);
  const v = Number(s);
  if (v < min || v > max) throw new UsageError(`${field}: must be between ${min} and ${max}, got ${v}`);
  return v;
}

/** A usage error: exit code 2, message printed as is. */
export class UsageError extends Error {
  readonly code = 'USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
