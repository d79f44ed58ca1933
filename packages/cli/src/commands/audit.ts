/**
 * The `vramseal audit` command group (issue 3):
 *
 *   vramseal audit verify <dir> [--key-file F] [--json] [--progress|--no-progress]
 *   vramseal audit query <dir> [--type T]... [--actor A] [--resource R] [--shard S] [--customer C]
 *                              [--since ISO] [--until ISO] [--limit N] [--verify] [--key-file F] [--json]
 *   vramseal audit emit <dir> --service-id ID [--key-file F] [--flush immediate|batched|hybrid] [--json]
 *   vramseal audit tail <dir> [-n N] [-f] [--json]
 *   vramseal audit stats <dir> [--json]
 *
 * Exit codes: 0 ok / intact, 1 integrity failure(s) (verify) or rejected input lines (emit), 2 usage or
 * I/O error. Results go to stdout (`--json`: one JSON document, or NDJSON for query/tail/emit);
 * messages and progress go to stderr.
 */
import {
  AuditLogger,
  type AuditRecord,
  followTrail,
  LineSplitter,
  type QueryOptions,
  queryTrail,
  TrailIntegrityError,
  TrailReadError,
  tailTrail,
  trailStats,
  type VerifyFailure,
  type VerifyReport,
  verifyTrail,
} from '@vramseal/audit';
import type { Command } from 'commander';
import { errorText, formatBytes, formatMs, parseIntOption, styleFor, UsageError } from '../output.js';
import { EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE } from '../program.js';
import { ProgressBar } from '../progress.js';
import {
  type CollectorCheckOptions,
  collectorCheck,
  collectorJson,
  collectorLine,
  type WitnessCheck,
  witnessCheck,
  witnessJson,
  witnessLine,
} from './audit/collector-check.js';
import { readKeyFile } from './audit/key-file.js';
import {
  addCheckpointOptions,
  attachTransparencyFromFlags,
  type CheckpointVerifyFlags,
  registerTlogCommands,
  TLOG_KEY_HELP,
  verifyAgainstCheckpoint,
  WITNESS_DIR_HELP,
} from './tlog.js';

function fail(cmd: string, err: unknown): void {
  process.stderr.write(`vramseal audit ${cmd}: ${errorText(err)}\n`);
  process.exitCode = EXIT_USAGE;
}

/** The audit group: found or created (other command sets, e.g. transparency, share it). */
function auditGroup(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'audit') ??
    program.command('audit').description('audit trail tools: verify, query, emit, tail, stats')
  );
}

export function register(program: Command): void {
  const audit = auditGroup(program);
  registerVerify(audit);
  registerQuery(audit);
  registerEmit(audit);
  registerTail(audit);
  registerStats(audit);
  registerTlogCommands(audit); // transparency (issue 8): keygen, prove, consistency, verify-proof, check-checkpoint
}

// ─── verify ────────────────────────────────────────────────────────────────────────────────────────

/** The `--json` document of `audit verify`: the issue's shape, plus totals. */
export function verifyJson(r: VerifyReport): Record<string, unknown> {
  return {
    ok: r.ok,
    files: r.files,
    records: r.records,
    failures: r.failures.map((f) => ({
      kind: f.kind,
      file: f.file,
      line: f.line,
      seq: f.seq,
      message: f.message,
      ...(f.lastSeq !== undefined ? { last_seq: f.lastSeq } : {}),
      ...(f.lastLine !== undefined ? { last_line: f.lastLine } : {}),
    })),
    failures_omitted: r.failuresOmitted,
    mac_checked: r.macChecked,
    first_seq: r.firstSeq,
    last_seq: r.lastSeq,
    first_time: r.firstTime,
    last_time: r.lastTime,
    bytes: r.bytes,
    duration_ms: Math.round(r.durationMs),
  };
}

function where(f: VerifyFailure): string {
  const parts: string[] = [];
  if (f.file)
    parts.push(f.line !== null ? `${f.file}:${f.line}${f.lastLine ? `-${f.lastLine}` : ''}` : f.file);
  if (f.seq !== null)
    parts.push(`seq ${f.seq}${f.lastSeq !== undefined && f.lastSeq !== f.seq ? `..${f.lastSeq}` : ''}`);
  return parts.join(' ');
}

/** `--collector`, `--provider`, `--collector-key`: see audit/collector-check.ts. */
type VerifyFlags = { keyFile?: string; json?: boolean; progress?: boolean } & CollectorCheckOptions &
  CheckpointVerifyFlags;

function registerVerify(audit: Command): void {
  const verify = audit
    .command('verify')
    .description(
      'verify a trail offline: hashes, chain, seq, MACs, checksums, manifest (exit 0 intact, 1 damaged)',
    )
    .argument('<dir>', 'trail directory')
    .option('--key-file <file>', 'MAC key (64 hex digits, hex:/base64: text, or 32 raw bytes; mode 0600)')
    .option('--json', 'print a JSON report')
    .option('--progress', 'show progress on stderr even when it is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--collector <url>', 'also compare with the platform collector at URL (needs --provider)')
    .option('--provider <id>', 'provider id of this trail at the collector')
    .option(
      '--collector-key <key>',
      'collector public key (base64, PEM, its C2SP witness_key, or a file) to check its signed head and checkpoint cosignature',
    );
  addCheckpointOptions(verify) // transparency (issue 8): --checkpoint F --public-key K
    .action(async (dir: string, o: VerifyFlags) => {
      guardStdout();
      let report: VerifyReport;
      let remote: Awaited<ReturnType<typeof collectorCheck>>;
      let witness: WitnessCheck | undefined;
      let bar: ProgressBar | null = null;
      try {
        const macKey = o.keyFile ? readKeyFile(o.keyFile) : undefined;
        const showBar = o.progress === true || (o.progress !== false && process.stderr.isTTY === true);
        report = await verifyTrail(dir, {
          macKey,
          onProgress: showBar
            ? (p) => {
                bar ??= new ProgressBar({ label: 'verify', total: p.bytesTotal, stream: process.stderr });
                bar.update(p.bytesDone);
              }
            : undefined,
        });
        (bar as ProgressBar | null)?.done();
        remote = await collectorCheck(dir, o);
        // ── the trail against the collector's latest witnessed checkpoint (--public-key: provider key) ──
        witness = await witnessCheck(dir, o);
        if (witness) {
          report.failures.push(...(witness.failures as unknown as VerifyFailure[]));
          report.ok &&= witness.ok;
        }
        // ── transparency (issue 8): the trail against a signed checkpoint (truncation, rewrites) ──
        // (with --collector and no --checkpoint, --public-key is the witnessed checkpoint's key only)
        const cp = await verifyAgainstCheckpoint(
          dir,
          o.collector && !o.checkpoint ? { ...o, publicKey: undefined } : o,
        );
        if (cp) {
          report.failures.push(...(cp.failures as unknown as VerifyFailure[]));
          report.ok &&= cp.ok;
        }
      } catch (e) {
        (bar as ProgressBar | null)?.done();
        fail('verify', e instanceof TrailReadError ? e.message : e);
        return;
      }
      const integrity = report.failures.filter((f) => f.kind !== 'io_error').length + report.failuresOmitted;
      const io = report.failures.length - report.failures.filter((f) => f.kind !== 'io_error').length;
      process.exitCode = report.ok
        ? EXIT_OK
        : integrity > 0
          ? EXIT_CHECK_FAILED
          : io > 0
            ? EXIT_USAGE
            : EXIT_OK;
      if (remote && !remote.ok && process.exitCode === EXIT_OK) process.exitCode = EXIT_CHECK_FAILED;
      if (o.json) {
        const doc = verifyJson(report);
        if (remote) doc.collector = collectorJson(remote);
        if (remote && witness) (doc.collector as Record<string, unknown>).witness = witnessJson(witness);
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        return;
      }
      if (remote) process.stdout.write(`${collectorLine(remote)}\n`);
      if (witness) process.stdout.write(`${witnessLine(witness)}\n`);
      const s = styleFor(process.stdout);
      const span =
        report.firstSeq !== null
          ? `seq ${report.firstSeq}..${report.lastSeq}, ${report.firstTime} .. ${report.lastTime}`
          : 'no records';
      const mac = report.macChecked ? 'MACs checked' : 'MACs not checked (no --key-file)';
      const totals = `${report.files} file${report.files === 1 ? '' : 's'}, ${report.records} records (${span}); ${mac}; ${formatBytes(report.bytes)} in ${formatMs(report.durationMs)}`;
      if (report.ok) {
        process.stdout.write(`${s.ok('✔')} ${dir}: intact — ${totals}\n`);
        return;
      }
      const n = report.failures.length + report.failuresOmitted;
      process.stdout.write(`${s.bad('✘')} ${dir}: ${n} integrity failure${n === 1 ? '' : 's'} — ${totals}\n`);
      for (const f of report.failures) {
        process.stdout.write(`  ${s.bad(f.kind)}  ${where(f)}  ${f.message}\n`);
      }
      if (report.failuresOmitted > 0) {
        process.stdout.write(`  … and ${report.failuresOmitted} more failures not listed\n`);
      }
    });
}

// ─── query / tail ──────────────────────────────────────────────────────────────────────────────────

/** One short cell describing who/what an event is about. */
function subject(e: Record<string, unknown>): string {
  const a = e.actor;
  const who =
    typeof a === 'string'
      ? a
      : typeof a === 'object' && a !== null && typeof (a as { user_id?: unknown }).user_id === 'string'
        ? ((a as { user_id: string }).user_id as string)
        : '';
  const what: string[] = [];
  const res = e.resource as { resource_type?: unknown; resource_id?: unknown } | undefined;
  if (res && typeof res === 'object' && typeof res.resource_id === 'string') {
    what.push(`${String(res.resource_type ?? 'resource')}=${res.resource_id}`);
  }
  for (const k of [
    'shard_id',
    'pool_id',
    'node_id',
    'task_id',
    'job_id',
    'customer_id',
    'model_ref',
    'file',
  ]) {
    const v = e[k];
    if (typeof v === 'string' || typeof v === 'number') what.push(`${k}=${v}`);
  }
  for (const k of ['reason', 'severity']) {
    const v = e[k];
    if (typeof v === 'string') what.push(`${k}=${v}`);
  }
  return [who ? `actor=${who}` : '', ...what].filter(Boolean).join(' ');
}

/** Strips control characters so a hostile record cannot drive the terminal. */
function printable(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '?');
}

const COLS = { seq: 8, time: 24, type: 34 };
function tableHeader(): string {
  return `${'SEQ'.padStart(COLS.seq)}  ${'TIME'.padEnd(COLS.time)}  ${'TYPE'.padEnd(COLS.type)}  DETAILS\n`;
}
function tableRow(r: AuditRecord): string {
  const e = (r.event ?? {}) as Record<string, unknown>;
  const type = typeof e.type === 'string' ? e.type : '?';
  return printable(
    `${String(r.seq).padStart(COLS.seq)}  ${String(r.time).padEnd(COLS.time)}  ${type.padEnd(COLS.type)}  ${subject(e)}`,
  ).concat('\n');
}

let stdoutGone = false;
let stdoutGuarded = false;
/** A reader that went away (`| head`) ends the output quietly instead of crashing on EPIPE. */
function guardStdout(): void {
  if (stdoutGuarded) return;
  stdoutGuarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    stdoutGone = true;
    if (e.code !== 'EPIPE') process.stderr.write(`vramseal audit: stdout: ${e.message}\n`);
  });
}

/** Writes, waiting for the pipe to drain; resolves false when stdout is closed (e.g. `| head`). */
function out(s: string): Promise<boolean> {
  guardStdout();
  return new Promise((resolve) => {
    if (stdoutGone || process.stdout.destroyed) return resolve(false);
    if (process.stdout.write(s)) return resolve(true);
    const done = (ok: boolean) => {
      process.stdout.off('drain', onDrain);
      process.stdout.off('error', onError);
      process.stdout.off('close', onError);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onError = () => done(false);
    process.stdout.once('drain', onDrain);
    process.stdout.once('error', onError);
    process.stdout.once('close', onError);
  });
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

function registerQuery(audit: Command): void {
  audit
    .command('query')
    .description('list records in seq order, filtered (a table, or NDJSON with --json)')
    .argument('<dir>', 'trail directory')
    .option('--type <type>', 'event type (repeatable; "auth.*" matches a prefix)', collect)
    .option('--actor <user>', 'actor user_id')
    .option(
      '--resource <id>',
      'resource id (resource.resource_id, shard/pool/node/task/job id, model_ref, file)',
    )
    .option('--shard <id>', 'shard_id')
    .option('--customer <id>', 'customer_id')
    .option('--since <iso>', 'records at or after this time (RFC 3339)')
    .option('--until <iso>', 'records before this time (RFC 3339)')
    .option('--limit <n>', 'at most n records')
    .option(
      '--verify',
      'check hash, links (and MAC with --key-file) of every record read; stop at the first problem',
    )
    .option('--key-file <file>', 'MAC key for --verify')
    .option('--json', 'NDJSON: one stored record per line')
    .action(
      async (
        dir: string,
        o: {
          type?: string[];
          actor?: string;
          resource?: string;
          shard?: string;
          customer?: string;
          since?: string;
          until?: string;
          limit?: string;
          verify?: boolean;
          keyFile?: string;
          json?: boolean;
        },
      ) => {
        try {
          for (const [opt, v] of [
            ['--since', o.since],
            ['--until', o.until],
          ] as const) {
            if (v !== undefined && !Number.isFinite(Date.parse(v))) {
              throw new UsageError(
                `${opt}: expected an RFC 3339 time such as 2026-11-27T00:00:00Z, got ${JSON.stringify(v)}`,
              );
            }
          }
          const q: QueryOptions = {
            types: o.type,
            actor: o.actor,
            resourceId: o.resource,
            shardId: o.shard,
            customerId: o.customer,
            since: o.since,
            until: o.until,
            limit: o.limit !== undefined ? parseIntOption('--limit', o.limit) : undefined,
            verify: o.verify,
            macKey: o.keyFile ? readKeyFile(o.keyFile) : undefined,
          };
          let n = 0;
          if (!o.json) await out(tableHeader());
          for await (const r of queryTrail(dir, q)) {
            n++;
            if (!(await out(o.json ? `${JSON.stringify(r)}\n` : tableRow(r)))) break;
          }
          if (!o.json) process.stderr.write(`${n} record${n === 1 ? '' : 's'}\n`);
        } catch (e) {
          if (e instanceof TrailIntegrityError) {
            process.stderr.write(`vramseal audit query: integrity failure: ${e.message}\n`);
            process.exitCode = EXIT_CHECK_FAILED;
            return;
          }
          fail('query', e);
        }
      },
    );
}

function registerTail(audit: Command): void {
  audit
    .command('tail')
    .description(
      'print the last records; with -f keep printing new ones (follows rotation) until interrupted',
    )
    .argument('<dir>', 'trail directory')
    .option('-n, --lines <n>', 'how many records', '10')
    .option('-f, --follow', 'wait for and print new records')
    .option('--json', 'NDJSON: one stored record per line')
    .action(async (dir: string, o: { lines: string; follow?: boolean; json?: boolean }) => {
      const ac = new AbortController();
      const stop = () => ac.abort();
      try {
        const n = parseIntOption('--lines', o.lines);
        const fmt = (r: AuditRecord) => (o.json ? `${JSON.stringify(r)}\n` : tableRow(r));
        const last = await tailTrail(dir, n);
        if (!o.json) await out(tableHeader());
        for (const r of last) await out(fmt(r));
        if (!o.follow) return;
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        process.stdout.once('error', stop);
        const after =
          last.length > 0 ? (last[last.length - 1] as AuditRecord).seq : (await tailTrail(dir, 1))[0]?.seq;
        for await (const r of followTrail(dir, { afterSeq: after ?? 0, signal: ac.signal })) {
          if (!(await out(fmt(r)))) break;
        }
      } catch (e) {
        fail('tail', e);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}

// ─── stats ─────────────────────────────────────────────────────────────────────────────────────────

function registerStats(audit: Command): void {
  audit
    .command('stats')
    .description('counts by event type and severity, files by state, seq and time span, size')
    .argument('<dir>', 'trail directory')
    .option('--json', 'print JSON')
    .action(async (dir: string, o: { json?: boolean }) => {
      guardStdout();
      try {
        const s = await trailStats(dir);
        if (o.json) {
          process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
          return;
        }
        const f = s.files;
        const lines = [
          `trail        ${dir}`,
          `files        ${f.total} (open ${f.open}, closed ${f.closed}, archived ${f.archived}, deleted ${f.deleted}${f.missing ? `, MISSING ${f.missing}` : ''})`,
          `size         ${formatBytes(s.bytesOnDisk)} on disk, ${formatBytes(s.bytesContent)} of records`,
          `records      ${s.records}${s.unparsableLines ? ` (+${s.unparsableLines} unparsable lines)` : ''}`,
          `seq          ${s.firstSeq ?? '-'} .. ${s.lastSeq ?? '-'}`,
          `time span    ${s.firstTime ?? '-'} .. ${s.lastTime ?? '-'} (${formatSpan(s.spanMs)})`,
          '',
          'by severity',
          ...Object.entries(s.bySeverity)
            .sort((a, b) => b[1] - a[1])
            .map(([k, v]) => `  ${k.padEnd(40)} ${String(v).padStart(10)}`),
          '',
          'by type',
          ...Object.entries(s.byType)
            .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
            .map(([k, v]) => `  ${printable(k).padEnd(40)} ${String(v).padStart(10)}`),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      } catch (e) {
        fail('stats', e);
      }
    });
}

function formatSpan(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(0)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} days`;
}

// ─── emit ──────────────────────────────────────────────────────────────────────────────────────────

const MAX_EMIT_LINE = 256 * 1024;

function registerEmit(audit: Command): void {
  audit
    .command('emit')
    .description(
      'append NDJSON events read from stdin to the trail (like logger(1) for syslog); invalid lines are reported and skipped',
    )
    .argument('<dir>', 'trail directory (created if absent)')
    .requiredOption('--service-id <id>', 'the emitting service')
    .option('--key-file <file>', 'MAC key (64 hex digits, hex:/base64: text, or 32 raw bytes; mode 0600)')
    .option('--flush <mode>', 'immediate | batched | hybrid', 'hybrid')
    .option('--json', 'print one JSON result per input line ({line, seq, audit_id} or {line, error})')
    .option('--tlog-key <file>', TLOG_KEY_HELP) // transparency (issue 8)
    .option('--witness-dir <dir>', WITNESS_DIR_HELP)
    .action(
      async (
        dir: string,
        o: {
          serviceId: string;
          keyFile?: string;
          flush: string;
          json?: boolean;
          tlogKey?: string;
          witnessDir?: string;
        },
      ) => {
        if (!['immediate', 'batched', 'hybrid'].includes(o.flush)) {
          fail(
            'emit',
            new UsageError(`--flush: must be immediate, batched or hybrid, got ${JSON.stringify(o.flush)}`),
          );
          return;
        }
        let log: AuditLogger;
        try {
          const macKey = o.keyFile ? readKeyFile(o.keyFile) : undefined;
          log = await AuditLogger.open({
            mode: 'local',
            dir,
            serviceId: o.serviceId,
            macKey,
            flush: { mode: o.flush as 'immediate' | 'batched' | 'hybrid' },
          });
          try {
            await attachTransparencyFromFlags(log, o); // checkpoints; the final one is written on close
          } catch (e) {
            await log.close().catch(() => {});
            throw e;
          }
        } catch (e) {
          fail('emit', e);
          return;
        }
        let accepted = 0;
        let rejected = 0;
        let firstSeq: number | null = null;
        let lastSeq: number | null = null;
        const durables: Promise<void>[] = [];
        let ioError: unknown = null;
        log.on('error', (e: unknown) => {
          ioError ??= e;
        });
        const reject = (line: number, msg: string) => {
          rejected++;
          process.stderr.write(`vramseal audit emit: line ${line}: ${msg}\n`);
          if (o.json) process.stdout.write(`${JSON.stringify({ line, error: msg })}\n`);
        };
        const handle = (bytes: Buffer, line: number) => {
          const text = bytes.toString('utf8').trim();
          if (text === '') return;
          let ev: unknown;
          try {
            ev = JSON.parse(text);
          } catch (e) {
            reject(line, `not JSON (${(e as Error).message.slice(0, 100)})`);
            return;
          }
          if (typeof ev !== 'object' || ev === null || Array.isArray(ev)) {
            reject(line, 'an event must be a JSON object');
            return;
          }
          const obj = ev as Record<string, unknown>;
          // Like logger(1): an event without a timestamp gets the time it was read.
          if (obj.timestamp === undefined) obj.timestamp = new Date().toISOString();
          try {
            const r = log.emit(obj as never);
            accepted++;
            firstSeq ??= r.seq;
            lastSeq = r.seq;
            const p = r.durable.catch(() => {});
            if (o.flush === 'immediate') durables.push(p);
            if (o.json)
              process.stdout.write(`${JSON.stringify({ line, seq: r.seq, audit_id: r.auditId })}\n`);
          } catch (e) {
            reject(line, errorText(e));
          }
        };
        const splitter = new LineSplitter(
          {
            line: (b, n) => handle(b, n),
            oversize: (n, len) => reject(n, `line is ${len} bytes, over the ${MAX_EMIT_LINE}-byte limit`),
          },
          MAX_EMIT_LINE,
        );
        try {
          for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
            splitter.push(chunk);
            if (durables.length > 4096) await Promise.all(durables.splice(0));
          }
          splitter.end();
          await Promise.all(durables);
          await log.close();
        } catch (e) {
          await log.close().catch(() => {});
          fail('emit', e);
          return;
        }
        if (ioError) {
          fail('emit', ioError);
          return;
        }
        if (rejected > 0) {
          process.stderr.write(
            `vramseal audit emit: ${accepted} event${accepted === 1 ? '' : 's'} written${firstSeq !== null ? ` (seq ${firstSeq}..${lastSeq})` : ''}, ${rejected} line${rejected === 1 ? '' : 's'} rejected\n`,
          );
          process.exitCode = EXIT_CHECK_FAILED;
        } else {
          process.exitCode = EXIT_OK;
        }
      },
    );
}
