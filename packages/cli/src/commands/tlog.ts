/**
 * Transparency commands of the `vramseal audit` group (issue 8):
 *
 *   vramseal audit keygen [--name N] [--out PREFIX]                   Ed25519 key pair (PREFIX.key 0600, PREFIX.pub)
 *   vramseal audit prove <dir> --seq N [--checkpoint F] [--out F]     inclusion proof (JSON) of record N
 *   vramseal audit consistency <dir> --from CP1 --to CP2 [--out F]    consistency proof (JSON) CP1 -> CP2
 *   vramseal audit verify-proof <proof.json> --public-key F [--checkpoint F] [--origin O] [--json]
 *   vramseal audit check-checkpoint <dir> --checkpoint F --public-key F [--origin O] [--json]
 *
 * A checkpoint argument F is a file with one signed note, or a `checkpoints` file (the note with the
 * largest tree size is used unless `--from-size` / `--to-size` / `--size` picks one).
 * Exit codes: 0 ok / valid, 1 proof or check failed, 2 usage or I/O error.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import {
  buildConsistencyProof,
  buildInclusionProof,
  checkAgainstCheckpoint,
  latestTrailCheckpoint,
  loadCheckpointFile,
  loadSignerKey,
  loadVerifierKey,
  TlogError,
  Transparency,
  type TransparencySource,
  verifyProofBundle,
  writeKeyPair,
} from '@vramseal/audit';
import type { Command } from 'commander';

const EXIT_OK = 0;
const EXIT_CHECK_FAILED = 1;
const EXIT_USAGE = 2;

function usage(cmd: string, msg: string): void {
  process.stderr.write(`vramseal audit ${cmd}: ${msg}\n`);
  process.exitCode = EXIT_USAGE;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A checkpoint note from a file; with `size`, the note of that tree size from a multi-note file. */
function checkpointArg(file: string, size?: string): string {
  if (size === undefined) return loadCheckpointFile(file);
  const want = Number(size);
  if (!/^[0-9]{1,16}$/.test(size) || !Number.isSafeInteger(want))
    throw new TlogError('TLOG_BAD_INPUT', `size: must be an integer >= 0, got ${size}`);
  return loadCheckpointFile(file, want);
}

function output(json: unknown, out?: string): void {
  const text = `${JSON.stringify(json, null, 2)}\n`;
  if (out) writeFileSync(out, text, { mode: 0o644 });
  else process.stdout.write(text);
}

function parseSeq(s: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(s) || !Number.isSafeInteger(Number(s))) {
    throw new TlogError('TLOG_BAD_INPUT', `--seq: must be an integer >= 1, got ${JSON.stringify(s)}`);
  }
  return Number(s);
}

/** Adds the transparency subcommands to the `audit` command group. */
export function registerTlogCommands(audit: Command): void {
  audit
    .command('keygen')
    .description(
      'write an Ed25519 checkpoint-signing key pair: PREFIX.key (0600) and PREFIX.pub (C2SP note key formats)',
    )
    .option('--name <name>', 'key name, a schema-less URL without spaces (default vramseal/<hostname>)')
    .option('--out <prefix>', 'output path prefix', 'vramseal-tlog')
    .option('--json', 'print JSON')
    .action((o: { name?: string; out: string; json?: boolean }) => {
      const name = o.name ?? `vramseal/${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}`;
      try {
        const { signer, keyFile, pubFile } = writeKeyPair(o.out, name);
        if (o.json) {
          output({
            ok: true,
            name,
            key_id: signer.keyId.toString('hex'),
            private_key_file: keyFile,
            public_key_file: pubFile,
            public_key: signer.verifier.toString(),
          });
        } else {
          process.stdout.write(
            `private key: ${keyFile} (mode 0600; keep it secret)\npublic key:  ${pubFile}\n${signer.verifier.toString()}\n`,
          );
        }
        process.exitCode = EXIT_OK;
      } catch (err) {
        usage('keygen', errText(err));
      }
    });

  audit
    .command('prove')
    .description('inclusion proof (JSON) of record SEQ in a signed checkpoint of the trail')
    .argument('<dir>', 'trail directory')
    .requiredOption('--seq <n>', 'record seq')
    .option('--checkpoint <file>', 'checkpoint note or checkpoints file (default: <dir>/checkpoints, latest)')
    .option('--size <n>', 'pick the checkpoint of this tree size from a checkpoints file')
    .option('--out <file>', 'write the proof here instead of stdout')
    .action(async (dir: string, o: { seq: string; checkpoint?: string; size?: string; out?: string }) => {
      try {
        const seq = parseSeq(o.seq);
        const note = o.checkpoint
          ? checkpointArg(o.checkpoint, o.size)
          : o.size !== undefined
            ? checkpointArg(`${dir}/checkpoints`, o.size)
            : latestTrailCheckpoint(dir);
        output(await buildInclusionProof(dir, seq, note), o.out);
        process.exitCode = EXIT_OK;
      } catch (err) {
        const mismatch =
          err instanceof TlogError && (err.code === 'TLOG_TRAIL_MISMATCH' || err.code === 'TLOG_CORRUPT');
        process.stderr.write(`vramseal audit prove: ${errText(err)}\n`);
        process.exitCode = mismatch ? EXIT_CHECK_FAILED : EXIT_USAGE;
      }
    });

  audit
    .command('consistency')
    .description('consistency proof (JSON) that checkpoint CP1 is a prefix of checkpoint CP2')
    .argument('<dir>', 'trail directory')
    .requiredOption('--from <file>', 'older checkpoint (note or checkpoints file)')
    .requiredOption('--to <file>', 'newer checkpoint (note or checkpoints file)')
    .option('--from-size <n>', 'pick the --from checkpoint of this tree size')
    .option('--to-size <n>', 'pick the --to checkpoint of this tree size')
    .option('--out <file>', 'write the proof here instead of stdout')
    .action(
      async (
        dir: string,
        o: { from: string; to: string; fromSize?: string; toSize?: string; out?: string },
      ) => {
        try {
          const n1 = checkpointArg(o.from, o.fromSize);
          const n2 = checkpointArg(o.to, o.toSize);
          output(await buildConsistencyProof(dir, n1, n2), o.out);
          process.exitCode = EXIT_OK;
        } catch (err) {
          const mismatch =
            err instanceof TlogError &&
            (err.code === 'TLOG_TRAIL_MISMATCH' ||
              err.code === 'TLOG_CORRUPT' ||
              err.code === 'TLOG_PROOF_INVALID');
          process.stderr.write(`vramseal audit consistency: ${errText(err)}\n`);
          process.exitCode = mismatch ? EXIT_CHECK_FAILED : EXIT_USAGE;
        }
      },
    );

  audit
    .command('verify-proof')
    .description('verify an inclusion or consistency proof offline with the public key')
    .argument('<proof>', 'proof JSON file (from prove or consistency), or - for stdin')
    .requiredOption('--public-key <file>', 'verifier key (from keygen: PREFIX.pub)')
    .option('--key-name <name>', 'key name, when the public key is a PEM file')
    .option(
      '--checkpoint <file>',
      "verify against this checkpoint (e.g. the witness's copy) instead of the proof's own",
    )
    .option('--size <n>', 'pick the checkpoint of this tree size from a checkpoints file')
    .option('--origin <origin>', 'require this checkpoint origin (e.g. vramseal/<service id>)')
    .option('--json', 'print JSON')
    .action(
      (
        file: string,
        o: {
          publicKey: string;
          keyName?: string;
          checkpoint?: string;
          size?: string;
          origin?: string;
          json?: boolean;
        },
      ) => {
        let bundle: unknown;
        let key: ReturnType<typeof loadVerifierKey>;
        let checkpointNote: string | undefined;
        try {
          key = loadVerifierKey(o.publicKey, o.keyName);
          const text = readFileSync(file === '-' ? 0 : file, 'utf8');
          try {
            bundle = JSON.parse(text);
          } catch {
            throw new TlogError('TLOG_BAD_INPUT', `${file}: not valid JSON`);
          }
          if (o.checkpoint) {
            checkpointNote = o.size !== undefined ? checkpointArg(o.checkpoint, o.size) : undefined;
            if (checkpointNote === undefined) {
              // Pick the note whose size the proof is for, else the latest.
              const want =
                (bundle as { tree_size?: unknown; size2?: unknown }).tree_size ??
                (bundle as { size2?: unknown }).size2;
              try {
                checkpointNote =
                  typeof want === 'number'
                    ? checkpointArg(o.checkpoint, String(want))
                    : loadCheckpointFile(o.checkpoint);
              } catch {
                checkpointNote = loadCheckpointFile(o.checkpoint);
              }
            }
          }
        } catch (err) {
          usage('verify-proof', errText(err));
          return;
        }
        const v = verifyProofBundle(bundle, key, {
          ...(checkpointNote ? { checkpointNote } : {}),
          ...(o.origin ? { origin: o.origin } : {}),
        });
        if (o.json) {
          output({
            ok: v.ok,
            type: v.type,
            ...(v.reason ? { reason: v.reason } : {}),
            ...(v.seq !== undefined ? { seq: v.seq } : {}),
            ...(v.checkpoint
              ? {
                  origin: v.checkpoint.origin,
                  tree_size: v.checkpoint.size,
                  checkpoint_time: v.checkpoint.time ?? null,
                }
              : {}),
            ...(v.checkpoint2 ? { tree_size2: v.checkpoint2.size } : {}),
          });
        } else if (v.ok && v.seq !== undefined) {
          process.stdout.write(
            `OK: record ${v.seq} is included in ${v.checkpoint?.origin} at tree size ${v.checkpoint?.size} (checkpoint signed by ${key.name})\n`,
          );
        } else if (v.ok) {
          process.stdout.write(
            `OK: ${v.checkpoint?.origin} at tree size ${v.checkpoint?.size} is a prefix of tree size ${v.checkpoint2?.size} (both signed by ${key.name})\n`,
          );
        } else {
          process.stdout.write(`INVALID: ${v.reason}\n`);
        }
        process.exitCode = v.ok ? EXIT_OK : EXIT_CHECK_FAILED;
      },
    );

  audit
    .command('check-checkpoint')
    .description(
      'check the trail against a signed (witnessed) checkpoint: detects tail truncation and history rewrites',
    )
    .argument('<dir>', 'trail directory')
    .requiredOption('--checkpoint <file>', 'checkpoint note or checkpoints file (e.g. the witness copy)')
    .requiredOption('--public-key <file>', 'verifier key')
    .option('--key-name <name>', 'key name, when the public key is a PEM file')
    .option('--size <n>', 'pick the checkpoint of this tree size from a checkpoints file')
    .option('--origin <origin>', 'require this checkpoint origin')
    .option('--json', 'print JSON')
    .action(
      async (
        dir: string,
        o: {
          checkpoint: string;
          publicKey: string;
          keyName?: string;
          size?: string;
          origin?: string;
          json?: boolean;
        },
      ) => {
        let note: string;
        let key: ReturnType<typeof loadVerifierKey>;
        try {
          key = loadVerifierKey(o.publicKey, o.keyName);
          note = checkpointArg(o.checkpoint, o.size);
        } catch (err) {
          usage('check-checkpoint', errText(err));
          return;
        }
        const r = await checkAgainstCheckpoint(dir, note, key, o.origin ? { origin: o.origin } : {});
        if (o.json) {
          output({
            ok: r.ok,
            checkpoint: r.checkpoint,
            records: r.records,
            stored_tree_matches: r.storedTreeMatches,
            failures: r.failures,
          });
        } else {
          const cp = r.checkpoint;
          process.stdout.write(
            r.ok
              ? `OK: the trail holds the ${cp?.size} records checkpoint ${cp?.origin}${cp?.time ? ` (${cp.time})` : ''} commits to (${r.records} records read)\n`
              : `FAILED: ${r.failures.length} problem(s) against the checkpoint\n`,
          );
          for (const f of r.failures) {
            const where = [
              f.file,
              f.line !== null ? `line ${f.line}` : null,
              f.seq !== null ? `seq ${f.seq}` : null,
            ]
              .filter(Boolean)
              .join(' ');
            process.stdout.write(`  ${f.kind}${where ? ` (${where})` : ''}: ${f.message}\n`);
          }
        }
        process.exitCode = r.ok ? EXIT_OK : EXIT_CHECK_FAILED;
      },
    );
}

/** Options `audit verify` gains for the transparency check (see {@link verifyAgainstCheckpoint}). */
export interface CheckpointVerifyFlags {
  checkpoint?: string;
  publicKey?: string;
  keyName?: string;
  origin?: string;
}

/** Adds `--checkpoint F --public-key F [--key-name N] [--origin O]` to `audit verify`. */
export function addCheckpointOptions(verify: Command): Command {
  return verify
    .option(
      '--checkpoint <file>',
      'also check against this signed (witnessed) checkpoint: detects truncation and rewrites',
    )
    .option('--public-key <file>', 'verifier key of the checkpoint signer (with --checkpoint)')
    .option('--key-name <name>', 'key name, when --public-key is a PEM file')
    .option('--origin <origin>', 'require this checkpoint origin (e.g. vramseal/<service id>)');
}

/**
 * The transparency part of `audit verify`: null without --checkpoint; throws a usage error when the
 * flags are incomplete or the files unreadable. Failures have the verifier's shape
 * (kinds `truncated_trail`, `history_rewritten`, `checkpoint_invalid`).
 */
export async function verifyAgainstCheckpoint(
  dir: string,
  o: CheckpointVerifyFlags,
): Promise<{
  ok: boolean;
  failures: {
    kind: string;
    file: string | null;
    line: number | null;
    seq: number | null;
    message: string;
    lastSeq?: number;
  }[];
} | null> {
  if (!o.checkpoint && !o.publicKey) return null;
  if (!o.checkpoint || !o.publicKey)
    throw new TlogError('TLOG_BAD_INPUT', '--checkpoint and --public-key go together');
  const key = loadVerifierKey(o.publicKey, o.keyName);
  const note = loadCheckpointFile(o.checkpoint);
  const r = await checkAgainstCheckpoint(dir, note, key, o.origin ? { origin: o.origin } : {});
  return { ok: r.ok, failures: r.failures };
}

/** Help texts of the `audit emit` options that turn on transparency for the written records. */
export const TLOG_KEY_HELP =
  'sign transparency checkpoints (every 10 000 records and on exit) with this key (from audit keygen)';
export const WITNESS_DIR_HELP = 'also append each checkpoint to <dir>/<origin>.checkpoints (with --tlog-key)';

/** Attaches {@link Transparency} to a logger a command opened, when `--tlog-key` was given. */
export async function attachTransparencyFromFlags(
  log: TransparencySource,
  o: { tlogKey?: string; witnessDir?: string },
): Promise<Transparency | undefined> {
  if (!o.tlogKey) {
    if (o.witnessDir) throw new TlogError('TLOG_BAD_INPUT', '--witness-dir needs --tlog-key');
    return undefined;
  }
  return Transparency.attach(log, {
    signer: loadSignerKey(o.tlogKey),
    worker: false, // a short-lived command: no worker start-up
    ...(o.witnessDir ? { witnessDir: o.witnessDir } : {}),
  });
}
