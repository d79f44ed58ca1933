/**
 * Offline verification of a trail directory (FORMAT.md): every record's hash, the `prev_hash` chain
 * across files, gap-free `seq`, the MAC when a key is given, each closed file against its `.sha256`
 * sidecar and its manifest entry, missing and extra files, archives (`.audit.gz`, checksum of the
 * uncompressed content) and deleted entries (the chain continues from their `last_hash`).
 *
 * Every failure is reported — not only the first — and classified; one damage gives one failure: after
 * a break the chain resynchronizes on the next good record (see {@link ChainChecker}). Files are
 * streamed ({@link scanTrailFile}), so memory stays constant whatever the trail's size, and hostile
 * input (random bytes, huge lines, deep nesting, invalid UTF-8, device files) becomes a failure.
 */
import { constants as C } from 'node:fs';
import { type FileHandle, lstat, open, readdir } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { GENESIS_HASH } from './record.js';
import { checkRecordLine, countRecordEnds, MacChecker } from './record-check.js';
import { checkAgainstCheckpoint } from './tlog/check-checkpoint.js';
import { CHECKPOINTS_FILE } from './tlog/checkpoint.js';
import type { VerifierKey } from './tlog/keys.js';
import { latestTrailCheckpoint } from './tlog/proof-bundle.js';
import { DEFAULT_MAX_LINE_BYTES, type FileScan, scanTrailFile } from './trail-reader.js';
import { type RecordLite, type ScanJob, VerifyPool } from './verify-pool.js';

/** What kind of damage a {@link VerifyFailure} reports. */
export type VerifyFailureKind =
  /** A record's content does not match its hash, or a record was altered and rehashed (link broken). */
  | 'modified_record'
  /** One or more `seq` values are missing and the chain link is broken where they were. */
  | 'deleted_records'
  /** A record that does not belong to the chain (duplicate `seq`, replayed line, forged sibling). */
  | 'inserted_record'
  /** Records present but out of order (a gap later filled by the missing records). */
  | 'reordered_records'
  /** A file ends before the last record its manifest entry lists (whole lines cut off). */
  | 'truncated_file'
  /** A last line without its `\n` (a write cut short). */
  | 'torn_line'
  /** A file the manifest lists is not on disk. */
  | 'missing_file'
  /** A record file on disk that the manifest does not list. */
  | 'extra_file'
  /** The manifest disagrees with intact files, is unreadable, or is inconsistent. */
  | 'manifest_mismatch'
  /** A closed file's content does not match its `.sha256` sidecar (or the sidecar is missing/bad). */
  | 'checksum_mismatch'
  /** A record whose hash is right but whose MAC is wrong (or missing), alone. */
  | 'bad_mac'
  /** A run of records with self-consistent hashes and links but failing MACs: recomputed without the key. */
  | 'chain_recomputed'
  /** A line that is not a record (not UTF-8, not JSON, wrong field types, over the line cap). */
  | 'unparsable_line'
  /** A file could not be read (permission, I/O error, not a regular file, corrupt gzip stream). */
  | 'io_error'
  /** With `publicKey`: the trail holds fewer records than a signed checkpoint commits to. */
  | 'truncated_trail'
  /** With `publicKey`: the records no longer hash to a signed checkpoint's root (chain recomputed end to end). */
  | 'history_rewritten'
  /** With `publicKey`: no checkpoint, or one that does not parse or whose signature does not verify. */
  | 'checkpoint_invalid';

/** One failure. `file`, `line` and `seq` are null where they do not apply. */
export interface VerifyFailure {
  kind: VerifyFailureKind;
  /** File name within the trail directory (e.g. `2026-11-27.1.audit`, `manifest.json`). */
  file: string | null;
  /** 1-based line number in the (uncompressed) file. */
  line: number | null;
  /** The (first) seq concerned. */
  seq: number | null;
  /** A plain sentence saying what is wrong. */
  message: string;
  /** Last seq of a range (deleted/reordered/truncated records, a run of bad MACs). */
  lastSeq?: number;
  /** Last line of a run of consecutive unparsable lines. */
  lastLine?: number;
}

export interface VerifyProgress {
  file: string;
  filesDone: number;
  filesTotal: number;
  /** Bytes read from disk so far (compressed bytes for archives) and in total. */
  bytesDone: number;
  bytesTotal: number;
  records: number;
}

export interface VerifyOptions {
  /** The trail's MAC key: every record's `mac` is checked (records without one fail). */
  macKey?: Uint8Array;
  /** Lines longer than this are reported, never buffered whole. Default 1 MiB. */
  maxLineBytes?: number;
  /** Failures kept in the report (the rest are counted in `failuresOmitted`). Default 10 000. */
  maxFailures?: number;
  /** Called after each chunk read (about every MiB) and once per file. */
  onProgress?: (p: VerifyProgress) => void;
  /**
   * Worker threads that read and hash files in parallel (0 = all on the calling thread). Default:
   * min(CPUs, 4) when the trail holds at least 64 MiB, there is more than one CPU and at least one is
   * idle (1-minute load average ≤ CPUs − 1), else 0.
   */
  concurrency?: number;
  /**
   * Transparency (TRANSPARENCY.md): the checkpoint signer's public key. The trail is then also checked
   * against a signed checkpoint — `checkpoint` when given (e.g. a witnessed copy kept elsewhere), else
   * the latest one in the trail's own `checkpoints` file — which catches what a hash chain alone cannot:
   * a tail cut off (`truncated_trail`) and a history rewritten end to end (`history_rewritten`).
   */
  publicKey?: VerifierKey;
  /** A signed checkpoint note (C2SP tlog-checkpoint) to check against; needs `publicKey`. */
  checkpoint?: string;
  /** Expected checkpoint origin line; any origin when absent. */
  checkpointOrigin?: string;
}

export interface VerifyReport {
  ok: boolean;
  dir: string;
  /** Record files read. */
  files: number;
  /** Well-formed records read. */
  records: number;
  /** Bytes read from disk. */
  bytes: number;
  firstSeq: number | null;
  lastSeq: number | null;
  firstTime: string | null;
  lastTime: string | null;
  /** True when a key was given and MACs were checked. */
  macChecked: boolean;
  failures: VerifyFailure[];
  failuresOmitted: number;
  durationMs: number;
}

/** The trail directory itself cannot be read (does not exist, not a directory, permission). */
export class TrailReadError extends Error {
  readonly code = 'TRAIL_UNREADABLE' as const;
  constructor(
    readonly dir: string,
    reason: string,
  ) {
    super(`cannot read trail ${dir}: ${reason}`);
    this.name = 'TrailReadError';
  }
}

/** `YYYY-MM-DD.audit` or `YYYY-MM-DD.N.audit` (FORMAT.md §Directory). */
export const RECORD_FILE_RE = /^(\d{4}-\d{2}-\d{2})(?:\.([1-9]\d{0,8}))?\.audit$/;
const HEX64 = /^[0-9a-f]{64}$/;
const MAX_MANIFEST_BYTES = 64 << 20;
const MAX_SIDECAR_BYTES = 4096;
const MAX_GAPS = 16;
/** Trails at least this large are verified with worker threads by default. */
const AUTO_PARALLEL_BYTES = 64 << 20;

/** Sort key for record files: by UTC date, then rotation index (none = 0). */
export function compareRecordFileNames(a: string, b: string): number {
  const ma = RECORD_FILE_RE.exec(a);
  const mb = RECORD_FILE_RE.exec(b);
  if (!ma || !mb) return a < b ? -1 : a > b ? 1 : 0;
  if (ma[1] !== mb[1]) return (ma[1] as string) < (mb[1] as string) ? -1 : 1;
  return Number(ma[2] ?? 0) - Number(mb[2] ?? 0);
}

/** A manifest entry as read (fields checked for type; invalid ones are null). */
export interface ManifestEntryView {
  name: string;
  state: 'open' | 'closed' | 'archived' | 'deleted';
  first_seq: number | null;
  last_seq: number | null;
  count: number | null;
  first_hash: string | null;
  last_hash: string | null;
  first_time: string | null;
  last_time: string | null;
  bytes: number | null;
  sha256: string | null;
  deleted_by_seq: number | null;
}

const STATES = new Set(['open', 'closed', 'archived', 'deleted']);
const int = (v: unknown): number | null =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
const hex = (v: unknown): string | null => (typeof v === 'string' && HEX64.test(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/**
 * The keys of a manifest entry (FORMAT.md §Manifest) and what each may hold; `optional` keys may be
 * absent, the others must be present (with `null` where the spec allows it). Anything else is reported:
 * a manifest that was edited by hand does not pass silently.
 */
const ENTRY_KEYS: Record<string, { kind: 'int' | 'hex' | 'str'; nullable: boolean; optional?: true }> = {
  first_seq: { kind: 'int', nullable: true },
  last_seq: { kind: 'int', nullable: true },
  count: { kind: 'int', nullable: false },
  first_hash: { kind: 'hex', nullable: true },
  last_hash: { kind: 'hex', nullable: true },
  first_time: { kind: 'str', nullable: true },
  last_time: { kind: 'str', nullable: true },
  created: { kind: 'str', nullable: false },
  closed: { kind: 'str', nullable: true },
  bytes: { kind: 'int', nullable: false },
  sha256: { kind: 'hex', nullable: true },
  archive: { kind: 'str', nullable: false, optional: true },
  deleted_at: { kind: 'str', nullable: false, optional: true },
  deleted_by_seq: { kind: 'int', nullable: false, optional: true },
};
const CHECK = { int, hex, str };

function entryKeyProblems(o: Record<string, unknown>, where: string): string[] {
  const out: string[] = [];
  for (const k of Object.keys(o)) {
    if (k !== 'name' && k !== 'state' && !Object.hasOwn(ENTRY_KEYS, k))
      out.push(`${where} has an unknown field ${JSON.stringify(k.slice(0, 64))}`);
  }
  for (const [k, rule] of Object.entries(ENTRY_KEYS)) {
    if (!Object.hasOwn(o, k)) {
      if (!rule.optional) out.push(`${where}.${k} is missing`);
      continue;
    }
    const v = o[k];
    if (v === null ? !rule.nullable : CHECK[rule.kind](v) === null)
      out.push(
        `${where}.${k} must be ${rule.kind === 'int' ? 'an integer >= 0' : rule.kind === 'hex' ? '64 lowercase hex' : 'a string'}${rule.nullable ? ' or null' : ''}`,
      );
  }
  return out;
}

/**
 * Parses manifest text tolerantly. Returns the entries it could read and, per problem, a message.
 */
export function parseManifestText(text: string): { entries: ManifestEntryView[]; problems: string[] } {
  const problems: string[] = [];
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (e) {
    return { entries: [], problems: [`manifest.json is not JSON (${(e as Error).message.slice(0, 100)})`] };
  }
  if (typeof m !== 'object' || m === null || !Array.isArray((m as { files?: unknown }).files)) {
    return { entries: [], problems: ['manifest.json: field files must be an array'] };
  }
  if ((m as { v?: unknown }).v !== 1) problems.push('manifest.json: field v must be 1');
  const top = m as Record<string, unknown>;
  if (typeof top.service_id !== 'string' || top.service_id.length === 0)
    problems.push('manifest.json: field service_id must be a non-empty string');
  for (const k of Object.keys(top)) {
    if (k !== 'v' && k !== 'service_id' && k !== 'files')
      problems.push(`manifest.json has an unknown field ${JSON.stringify(k.slice(0, 64))}`);
  }
  const entries: ManifestEntryView[] = [];
  const seen = new Set<string>();
  (m as { files: unknown[] }).files.forEach((f, i) => {
    if (typeof f !== 'object' || f === null) {
      problems.push(`manifest.json: files[${i}] is not an object`);
      return;
    }
    const o = f as Record<string, unknown>;
    if (typeof o.name !== 'string' || !RECORD_FILE_RE.test(o.name)) {
      problems.push(`manifest.json: files[${i}].name is not a record file name`);
      return;
    }
    if (seen.has(o.name)) {
      problems.push(`manifest.json: files[${i}].name ${o.name} is listed twice`);
      return;
    }
    seen.add(o.name);
    if (typeof o.state !== 'string' || !STATES.has(o.state)) {
      problems.push(`manifest.json: files[${i}].state must be open, closed, archived or deleted`);
      return;
    }
    problems.push(...entryKeyProblems(o, `manifest.json: files[${i}] (${o.name})`));
    entries.push({
      name: o.name,
      state: o.state as ManifestEntryView['state'],
      first_seq: int(o.first_seq),
      last_seq: int(o.last_seq),
      count: int(o.count),
      first_hash: hex(o.first_hash),
      last_hash: hex(o.last_hash),
      first_time: str(o.first_time),
      last_time: str(o.last_time),
      bytes: int(o.bytes),
      sha256: hex(o.sha256),
      deleted_by_seq: int(o.deleted_by_seq),
    });
  });
  return { entries, problems };
}

/** Reads a small file with a size cap, refusing anything that is not a regular file. */
async function readSmall(path: string, cap: number): Promise<Buffer | 'missing' | string> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile()) return 'not a regular file';
    if (st.size > cap) return `larger than ${cap} bytes`;
    return await fh.readFile();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ELOOP') return 'is a symlink (refused)';
    return `unreadable (${code ?? (e as Error).message})`;
  } finally {
    await fh?.close();
  }
}

/** Collects failures with a cap; keeps them sortable by (file order, line). */
class FailureLog {
  readonly list: (VerifyFailure & { order: number; idx: number })[] = [];
  omitted = 0;
  total = 0;
  fileOrder = new Map<string, number>();
  constructor(readonly max: number) {}
  add(f: VerifyFailure): VerifyFailure {
    this.total++;
    const order = f.file === null ? -1 : (this.fileOrder.get(f.file) ?? 1e9);
    const x = { ...f, order, idx: this.total };
    if (this.list.length < this.max) this.list.push(x);
    else this.omitted++;
    return x;
  }
  remove(f: VerifyFailure): void {
    const i = this.list.indexOf(f as VerifyFailure & { order: number; idx: number });
    if (i >= 0) {
      this.list.splice(i, 1);
      this.total--;
    }
  }
  last(): VerifyFailure | undefined {
    return this.list[this.list.length - 1];
  }
  sorted(): VerifyFailure[] {
    return [...this.list]
      .sort((a, b) => a.order - b.order || (a.line ?? 2 ** 52) - (b.line ?? 2 ** 52) || a.idx - b.idx)
      .map(({ order: _o, idx: _i, ...f }) => f);
  }
}

interface Head {
  seq: number;
  hash: string;
  /** A second hash the successor may link to (the computed one of a record whose hash field was hit). */
  altHash?: string | undefined;
  prev: string;
  file: string;
  line: number;
  macOk: boolean;
}
interface Gap {
  failure: VerifyFailure;
  from: number;
  to: number;
  nextFill: number;
  nextPrev: string | null;
  afterSeq: number;
}
interface MacRun {
  file: string;
  line: number;
  firstSeq: number;
  lastSeq: number;
  count: number;
}

/**
 * The chain across all files: classifies breaks and resynchronizes so one damage is one failure.
 *
 * - content ≠ hash → `modified_record` (the stored hash still serves as the link to the next record);
 * - seq = expected but `prev_hash` ≠ previous hash → `modified_record` at the previous record (it, or
 *   this one, was altered and rehashed);
 * - seq jumps ahead with a broken link → `deleted_records` for the missing range — turned into
 *   `reordered_records` if the missing records show up later in order;
 * - seq lower than expected → `inserted_record` (duplicate/replay), or a deferred decision when two
 *   records claim the same seq and predecessor: the one the next record links to is the real one;
 * - hash and link fine but MAC wrong → `bad_mac` for a lone record, `chain_recomputed` for a run of
 *   two or more (or one reaching the end of the trail);
 * - unparsable lines stand for up to as many missing records as they may hold (no extra failure).
 */
class ChainChecker {
  head: Head | null = null;
  alt: (Head & { line: number }) | null = null;
  resync = 0;
  gaps: Gap[] = [];
  run: MacRun | null = null;
  fileDamaged = false;
  currentFile = '';
  readonly #firstReason = new WeakMap<VerifyFailure, string>();
  /** seq → deleted manifest entry that names it as its `audit.file_deleted` record. */
  deletionWitness = new Map<number, { entry: ManifestEntryView; seen: boolean }>();

  constructor(
    readonly log: FailureLog,
    readonly mac: MacChecker | null,
  ) {}

  fail(f: VerifyFailure): VerifyFailure {
    if (f.file === this.currentFile) this.fileDamaged = true;
    return this.log.add(f);
  }

  #expSeq(): number {
    return this.head ? this.head.seq + 1 : 1;
  }
  #links(prev: string): boolean {
    const h = this.head;
    if (!h) return prev === GENESIS_HASH;
    return prev === h.hash || (h.altHash !== undefined && prev === h.altHash);
  }

  /** A line that is not a record. `records` = how many records it may stand for. */
  badLine(file: string, line: number, reason: string, terminated: boolean, records: number): void {
    this.resync += Math.max(1, records);
    if (!terminated) {
      this.fail({
        kind: 'torn_line',
        file,
        line,
        seq: null,
        message: `last line has no newline and is not a whole record (a write cut short): ${reason}`,
      });
      return;
    }
    const prev = this.log.last();
    const first = prev && this.#firstReason.get(prev);
    if (
      first &&
      prev.kind === 'unparsable_line' &&
      prev.file === file &&
      (prev.lastLine ?? prev.line) === line - 1
    ) {
      prev.lastLine = line;
      prev.message = `lines ${prev.line}-${line} are not records (${line - (prev.line ?? 0) + 1} lines; first: ${first})`;
      return;
    }
    const f = this.fail({
      kind: 'unparsable_line',
      file,
      line,
      seq: null,
      message: `line ${line} is not a record: ${reason}`,
    });
    this.#firstReason.set(f, reason);
  }

  /** A well-formed record; `macKnown` is its MAC check when already done (by a worker). */
  record(file: string, line: number, r: RecordLite, macKnown?: boolean): void {
    const w = this.deletionWitness.get(r.seq);
    if (w && r.hashOk) {
      const e = r.event ?? {};
      const d = w.entry;
      w.seen =
        e.type === 'audit.file_deleted' &&
        e.file === d.name &&
        e.first_seq === d.first_seq &&
        e.last_seq === d.last_seq &&
        e.sha256 === d.sha256;
    }
    if (!r.hashOk) {
      this.fail({
        kind: 'modified_record',
        file,
        line,
        seq: r.seq,
        message: `seq ${r.seq}: content does not match its hash (record altered)`,
      });
      this.#closeRun(false);
      if (r.seq === this.#expSeq()) {
        this.#settleAlt(r.prevHash);
        this.head = {
          seq: r.seq,
          hash: r.hash,
          altHash: r.computedHash,
          prev: r.prevHash,
          file,
          line,
          macOk: true,
        };
        this.resync = 0;
      } else {
        this.resync++;
      }
      return;
    }
    const macOk = this.mac ? (macKnown ?? this.mac.matches(r.hash, r.mac)) : true;
    let exp = this.#expSeq();
    if (r.seq >= exp) {
      this.#settleAlt(r.prevHash);
      exp = this.#expSeq();
    }
    if (r.seq === exp) {
      if (!this.#links(r.prevHash)) {
        const h = this.head;
        if (h) {
          this.fail({
            kind: 'modified_record',
            file: h.file,
            line: h.line,
            seq: h.seq,
            message: `the hash of seq ${h.seq} is not the prev_hash of seq ${r.seq} (${file} line ${line}): one of them was altered and rehashed`,
          });
          this.#dropFromRun(h.seq);
        } else {
          this.fail({
            kind: 'modified_record',
            file,
            line,
            seq: r.seq,
            message: `seq ${r.seq}: prev_hash is not the genesis value`,
          });
        }
      }
    } else if (r.seq > exp) {
      const missing = r.seq - exp;
      if (this.resync >= missing) {
        // The unparsable lines before this record stand for the missing seqs: already reported.
      } else if (this.#links(r.prevHash) && this.resync === 0) {
        this.fail({
          kind: 'modified_record',
          file,
          line,
          seq: r.seq,
          message: `seq jumps from ${exp - 1} to ${r.seq} but prev_hash links to seq ${exp - 1}: seq altered and rehashed`,
        });
      } else {
        const from = exp + this.resync;
        const to = r.seq - 1;
        const n = to - from + 1;
        const failure = this.fail({
          kind: 'deleted_records',
          file,
          line,
          seq: from,
          lastSeq: to,
          message: `${n} record${n === 1 ? '' : 's'} missing before line ${line}: seq ${from === to ? from : `${from}..${to}`}`,
        });
        this.gaps.push({
          failure,
          from,
          to,
          nextFill: from,
          nextPrev: this.resync === 0 ? (this.head?.hash ?? GENESIS_HASH) : null,
          afterSeq: exp - 1,
        });
        if (this.gaps.length > MAX_GAPS) this.gaps.shift();
      }
    } else {
      // Lower than expected: a missing record arriving late, a forged sibling, or an insertion.
      for (let i = 0; i < this.gaps.length; i++) {
        const g = this.gaps[i] as Gap;
        if (r.seq === g.nextFill && (g.nextPrev === null || r.prevHash === g.nextPrev)) {
          g.failure.kind = 'reordered_records';
          g.failure.message = `records out of order: seq ${g.from === g.to ? g.from : `${g.from}..${g.to}`} should follow seq ${g.afterSeq} here but appear later`;
          g.nextFill++;
          g.nextPrev = r.hash;
          if (g.nextFill > g.to) this.gaps.splice(i, 1);
          if (!macOk) this.#lone('bad_mac', file, line, r.seq);
          return;
        }
      }
      const h = this.head;
      if (h && !this.alt && r.seq === h.seq && r.prevHash === h.prev && r.hash !== h.hash) {
        this.alt = { seq: r.seq, hash: r.hash, prev: r.prevHash, file, line, macOk };
        return;
      }
      this.fail({
        kind: 'inserted_record',
        file,
        line,
        seq: r.seq,
        message:
          h && r.seq === h.seq && r.hash === h.hash
            ? `seq ${r.seq} repeated (duplicate of ${h.file} line ${h.line})`
            : `seq ${r.seq} does not belong here (expected seq ${exp})`,
      });
      return;
    }
    this.head = { seq: r.seq, hash: r.hash, prev: r.prevHash, file, line, macOk };
    this.resync = 0;
    if (this.mac) {
      if (macOk) this.#closeRun(false);
      else this.#macBad(this.head);
    }
  }

  /** Two records claimed the same seq and predecessor; `nextPrev` (the next record's link) decides. */
  #settleAlt(nextPrev: string): void {
    const a = this.alt;
    const h = this.head;
    if (!a || !h) return;
    this.alt = null;
    let headIsReal = true; // undecided: report the later one
    if (nextPrev === h.hash) headIsReal = true;
    else if (nextPrev === a.hash) headIsReal = false;
    else if (this.mac && h.macOk !== a.macOk) headIsReal = h.macOk;
    const fake = headIsReal ? a : h;
    const real = headIsReal ? h : a;
    this.fail({
      kind: 'inserted_record',
      file: fake.file,
      line: fake.line,
      seq: fake.seq,
      message: `seq ${fake.seq} appears twice; the chain continues from ${real.file} line ${real.line}, so this one was inserted`,
    });
    if (!headIsReal) {
      this.#dropFromRun(h.seq);
      this.head = a;
      if (this.mac && !a.macOk) this.#macBad(a);
    }
  }

  #lone(kind: 'bad_mac', file: string, line: number, seq: number): void {
    this.fail({ kind, file, line, seq, message: `seq ${seq}: MAC does not match (hash is intact)` });
  }

  #macBad(h: Head): void {
    const run = this.run;
    if (h.file === this.currentFile) this.fileDamaged = true;
    if (run && run.lastSeq + 1 === h.seq) {
      run.lastSeq = h.seq;
      run.count++;
      return;
    }
    this.#closeRun(false);
    this.run = { file: h.file, line: h.line, firstSeq: h.seq, lastSeq: h.seq, count: 1 };
  }

  #dropFromRun(seq: number): void {
    const run = this.run;
    if (!run || run.lastSeq !== seq) return;
    if (run.count === 1) this.run = null;
    else {
      run.count--;
      run.lastSeq--;
    }
  }

  #closeRun(atEnd: boolean): void {
    const run = this.run;
    if (!run) return;
    this.run = null;
    if (run.count >= 2 || atEnd) {
      this.log.add({
        kind: 'chain_recomputed',
        file: run.file,
        line: run.line,
        seq: run.firstSeq,
        lastSeq: run.lastSeq,
        message: `seq ${run.firstSeq}..${run.lastSeq}: hashes and links are consistent but the MACs fail — the chain was recomputed without the key`,
      });
    } else {
      this.log.add({
        kind: 'bad_mac',
        file: run.file,
        line: run.line,
        seq: run.firstSeq,
        message: `seq ${run.firstSeq}: MAC does not match (hash is intact)`,
      });
    }
  }

  /** Continue the chain from a manifest-stated point (missing, deleted or truncated file). */
  resyncTo(seq: number | null, hash: string | null): void {
    if (seq === null || hash === null) return;
    if (this.head && this.head.seq >= seq) return;
    this.#settleAlt('');
    this.#closeRun(false);
    this.head = { seq, hash, prev: '', file: this.currentFile, line: 0, macOk: true };
    this.resync = 0;
  }

  finish(): void {
    // No successor decides: with a key, the one with a bad MAC is the forgery; else the later one.
    this.#settleAlt('');
    this.#closeRun(true);
  }
}

interface PlanItem {
  name: string;
  state: ManifestEntryView['state'];
  entry: ManifestEntryView | null;
}

/** Per-file facts gathered while scanning. */
interface FileFacts {
  records: number;
  first: RecordLite | null;
  last: RecordLite | null;
  hashAtManifestLast: string | null;
  /** Highest seq among records whose hash checks. */
  maxSeq: number | null;
  /** The last line was torn and is not a whole record. */
  tornUnparsed: boolean;
}

/**
 * Verifies the trail in `dir`. Resolves with a report listing every failure; rejects only with
 * {@link TrailReadError} when the directory itself cannot be read.
 */
export async function verifyTrail(dir: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const log = new FailureLog(opts.maxFailures ?? 10_000);
  const chain = new ChainChecker(log, opts.macKey ? new MacChecker(opts.macKey) : null);
  const maxLine = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;

  let names: string[];
  try {
    const st = await lstat(dir);
    if (!st.isDirectory())
      throw new TrailReadError(dir, st.isSymbolicLink() ? 'is a symlink' : 'not a directory');
    names = await readdir(dir);
  } catch (e) {
    if (e instanceof TrailReadError) throw e;
    throw new TrailReadError(dir, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
  }
  const present = new Set(names);
  const diskFiles = names
    .filter((n) => RECORD_FILE_RE.test(n) || (n.endsWith('.gz') && RECORD_FILE_RE.test(n.slice(0, -3))))
    .map((n) => (n.endsWith('.gz') ? n.slice(0, -3) : n));
  const diskNames = [...new Set(diskFiles)].sort(compareRecordFileNames);

  // Manifest (or, without one, the directory listing).
  let plan: PlanItem[];
  const m = await readSmall(join(dir, 'manifest.json'), MAX_MANIFEST_BYTES);
  let entries: ManifestEntryView[] | null = null;
  if (typeof m === 'string') {
    log.add({
      kind: 'manifest_mismatch',
      file: 'manifest.json',
      line: null,
      seq: null,
      message: `manifest.json is ${m}; verifying the files found in the directory`,
    });
  } else {
    const parsed = parseManifestText(m.toString('utf8'));
    for (const p of parsed.problems) {
      log.add({ kind: 'manifest_mismatch', file: 'manifest.json', line: null, seq: null, message: p });
    }
    if (parsed.entries.length > 0 || parsed.problems.length === 0) entries = parsed.entries;
  }
  if (entries) {
    plan = entries.map((e) => ({ name: e.name, state: e.state, entry: e }));
    const listed = new Set(entries.map((e) => e.name));
    entries.forEach((e, i) => {
      if (e.state === 'open' && i !== entries.length - 1) {
        log.add({
          kind: 'manifest_mismatch',
          file: 'manifest.json',
          line: null,
          seq: e.first_seq,
          message: `manifest lists ${e.name} as open but it is not the last file`,
        });
      }
    });
    for (const n of diskNames) {
      if (!listed.has(n)) {
        const shown = present.has(n) ? n : `${n}.gz`;
        log.fileOrder.set(shown, 1e8);
        log.add({
          kind: 'extra_file',
          file: shown,
          line: null,
          seq: null,
          message: `${shown} is not listed in the manifest`,
        });
      }
    }
  } else {
    plan = diskNames.map((n, i) => ({
      name: n,
      state: present.has(n)
        ? present.has(`${n}.sha256`) || i < diskNames.length - 1
          ? 'closed'
          : 'open'
        : 'archived',
      entry: null,
    }));
  }
  plan.forEach((p, i) => {
    log.fileOrder.set(p.name, i);
    log.fileOrder.set(`${p.name}.gz`, i);
  });
  for (const p of plan) {
    if (p.state === 'deleted' && p.entry?.deleted_by_seq != null) {
      chain.deletionWitness.set(p.entry.deleted_by_seq, { entry: p.entry, seen: false });
    }
  }

  // Sizes for progress.
  let bytesTotal = 0;
  const sizes = new Map<string, number>();
  for (const p of plan) {
    for (const n of [p.name, `${p.name}.gz`]) {
      if (!present.has(n)) continue;
      try {
        const s = (await lstat(join(dir, n))).size;
        sizes.set(n, s);
        bytesTotal += s;
      } catch {}
    }
  }

  const diskNameOf = (p: PlanItem): string | null => {
    if (p.state === 'deleted') return null;
    const primary = p.state === 'archived' ? `${p.name}.gz` : p.name;
    const secondary = p.state === 'archived' ? p.name : `${p.name}.gz`;
    return present.has(primary) ? primary : present.has(secondary) ? secondary : null;
  };
  // Workers only pay off when CPUs are free: on a machine already saturated (load average ≥ CPUs − 1)
  // they add messaging cost without adding CPU time.
  const cpuCount = availableParallelism();
  const workers =
    opts.concurrency ??
    (bytesTotal >= AUTO_PARALLEL_BYTES && cpuCount > 1 && cpuCount - (loadavg()[0] ?? 0) >= 1
      ? Math.min(cpuCount, 4)
      : 0);
  const pool = workers > 0 ? new VerifyPool(workers, opts.macKey) : null;
  const jobs = new Map<number, ScanJob>();
  let prefetched = 0;
  /** Keeps the workers busy on the next files while the main thread consumes file `from`. */
  const prefetch = (from: number): void => {
    if (!pool) return;
    const until = Math.min(plan.length, from + workers + 1);
    for (let i = Math.max(prefetched, from); i < until; i++) {
      prefetched = i + 1;
      const dn = diskNameOf(plan[i] as PlanItem);
      if (dn) jobs.set(i, pool.scan(join(dir, dn), dn.endsWith('.gz'), maxLine));
    }
  };

  let filesRead = 0;
  let records = 0;
  let bytesDone = 0;
  let firstSeq: number | null = null;
  let lastSeq: number | null = null;
  let firstTime: string | null = null;
  let lastTime: string | null = null;
  const progress = (file: string, extra: number): void =>
    opts.onProgress?.({
      file,
      filesDone: filesRead,
      filesTotal: plan.length,
      bytesDone: bytesDone + extra,
      bytesTotal,
      records,
    });

  try {
    for (const [idx, p] of plan.entries()) {
      const e = p.entry;
      chain.currentFile = p.name;
      chain.fileDamaged = false;
      if (p.state === 'deleted') {
        if (present.has(p.name) || present.has(`${p.name}.gz`)) {
          log.add({
            kind: 'manifest_mismatch',
            file: p.name,
            line: null,
            seq: e?.first_seq ?? null,
            message: `manifest says ${p.name} was deleted but it is still present`,
          });
        }
        if (e && e.first_seq !== null && chain.head && e.first_seq !== chain.head.seq + 1) {
          log.add({
            kind: 'manifest_mismatch',
            file: p.name,
            line: null,
            seq: e.first_seq,
            message: `deleted entry ${p.name} starts at seq ${e.first_seq}, expected ${chain.head.seq + 1}`,
          });
        }
        if (e && e.deleted_by_seq === null) {
          log.add({
            kind: 'manifest_mismatch',
            file: p.name,
            line: null,
            seq: e.first_seq,
            message: `deleted entry ${p.name} does not name the audit.file_deleted record (deleted_by_seq)`,
          });
        }
        chain.resyncTo(e?.last_seq ?? null, e?.last_hash ?? null);
        continue;
      }
      // Which file on disk holds the content.
      let diskName: string | null = null;
      const wantGz = p.state === 'archived';
      const primary = wantGz ? `${p.name}.gz` : p.name;
      const secondary = wantGz ? p.name : `${p.name}.gz`;
      if (present.has(primary)) diskName = primary;
      else if (present.has(secondary)) {
        diskName = secondary;
        if (e) {
          log.add({
            kind: 'manifest_mismatch',
            file: secondary,
            line: null,
            seq: e.first_seq,
            message: `manifest says ${p.name} is ${p.state} but only ${secondary} is present`,
          });
        }
      }
      if (diskName && present.has(primary) && present.has(secondary)) {
        log.add({
          kind: 'extra_file',
          file: secondary,
          line: null,
          seq: null,
          message: `${secondary} is a leftover copy (the manifest says ${p.name} is ${p.state})`,
        });
      }
      if (!diskName) {
        const range =
          e?.first_seq != null && e.last_seq != null
            ? `seq ${e.first_seq}..${e.last_seq}${p.state === 'open' ? '+' : ''} (${e.last_seq - e.first_seq + 1} records)`
            : 'its records';
        log.add({
          kind: 'missing_file',
          file: p.name,
          line: null,
          seq: e?.first_seq ?? null,
          lastSeq: e?.last_seq ?? undefined,
          message: `${primary} is listed in the manifest but missing: ${range} cannot be checked`,
        });
        chain.resyncTo(e?.last_seq ?? null, e?.last_hash ?? null);
        continue;
      }

      const facts: FileFacts = {
        records: 0,
        first: null,
        last: null,
        hashAtManifestLast: null,
        tornUnparsed: false,
        maxSeq: null,
      };
      const fileName = diskName;
      chain.currentFile = diskName;
      const wantLast = e?.last_seq ?? null;
      let scan: FileScan | null = null;
      let ioProblem: string | null = null;
      const onRecord = (lineNo: number, terminated: boolean, r: RecordLite, macOk?: boolean): void => {
        facts.records++;
        records++;
        if (!facts.first) facts.first = r;
        facts.last = r;
        if (r.hashOk && (facts.maxSeq === null || r.seq > facts.maxSeq)) facts.maxSeq = r.seq;
        if (r.seq === wantLast) facts.hashAtManifestLast = r.hash;
        if (firstSeq === null) {
          firstSeq = r.seq;
          firstTime = r.time;
        }
        lastSeq = r.seq;
        lastTime = r.time;
        chain.record(fileName, lineNo, r, macOk);
        if (!terminated) {
          chain.fail({
            kind: 'torn_line',
            file: fileName,
            line: lineNo,
            seq: r.seq,
            message: `last line (seq ${r.seq}) has no newline: the write was cut short`,
          });
        }
      };
      const onBad = (lineNo: number, reason: string, terminated: boolean, count: number): void => {
        if (!terminated) facts.tornUnparsed = true;
        chain.badLine(fileName, lineNo, reason, terminated, count);
      };
      const onOversize = (lineNo: number, len: number, terminated: boolean): void =>
        onBad(lineNo, `line is ${len} bytes, over the ${maxLine}-byte cap`, terminated, 1);
      let fh: FileHandle | undefined;
      try {
        if (pool) {
          prefetch(idx);
          const job = jobs.get(idx) as ScanJob;
          jobs.delete(idx);
          scan = await job.consume({ record: onRecord, bad: onBad, oversize: onOversize }, (n) =>
            progress(fileName, n),
          );
        } else {
          fh = await open(join(dir, diskName), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
          const st = await fh.stat();
          if (!st.isFile())
            throw Object.assign(new Error('not a regular file (refused)'), { code: 'NOTFILE' });
          scan = await scanTrailFile(
            join(dir, diskName),
            {
              line(bytes, lineNo, terminated) {
                const r = checkRecordLine(bytes);
                if ('reason' in r) onBad(lineNo, r.reason, terminated, countRecordEnds(bytes));
                else onRecord(lineNo, terminated, r);
              },
              oversize: onOversize,
            },
            {
              gzip: diskName.endsWith('.gz'),
              handle: fh,
              maxLineBytes: maxLine,
              onDiskBytes: (n) => progress(fileName, n),
            },
          );
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        ioProblem =
          code === 'ELOOP'
            ? 'is a symlink (refused)'
            : code === 'NOTFILE'
              ? 'is not a regular file (refused)'
              : code === 'Z_BUF_ERROR' || code === 'Z_DATA_ERROR'
                ? `gzip stream is corrupt (${(err as Error).message})`
                : `could not be read (${code ?? (err as Error).message})`;
      } finally {
        await fh?.close().catch(() => {});
      }
      filesRead++;
      bytesDone += sizes.get(diskName) ?? 0;
      progress(fileName, 0);
      if (ioProblem !== null) {
        chain.fail({
          kind: code2kind(ioProblem),
          file: diskName,
          line: null,
          seq: e?.first_seq ?? null,
          message: `${diskName} ${ioProblem}`,
        });
        chain.resyncTo(e?.last_seq ?? null, e?.last_hash ?? null);
        continue;
      }
      if (!scan) continue;
      await checkAgainstManifest(dir, p, diskName, scan, facts, chain, present);
    }
  } finally {
    await pool?.close();
  }
  chain.currentFile = '';
  chain.finish();
  for (const [seq, w] of chain.deletionWitness) {
    if (w.seen) continue;
    // The witness itself may sit in a file that retention deleted later: then it cannot be checked.
    const inDeleted = plan.some(
      (p) =>
        p.state === 'deleted' &&
        p.entry?.first_seq != null &&
        p.entry.last_seq != null &&
        seq >= p.entry.first_seq &&
        seq <= p.entry.last_seq,
    );
    if (inDeleted) continue;
    log.add({
      kind: 'manifest_mismatch',
      file: w.entry.name,
      line: null,
      seq: w.entry.first_seq,
      message: `deleted entry ${w.entry.name} is not backed by an audit.file_deleted record at seq ${seq} naming it (file, seq range, sha256)`,
    });
  }

  if (opts.publicKey) await checkCheckpoint(dir, opts, log);
  else if (opts.checkpoint !== undefined) throw new TypeError('verifyTrail: checkpoint needs publicKey');

  const failures = log.sorted();
  return {
    ok: log.total === 0,
    dir,
    files: filesRead,
    records,
    bytes: bytesDone,
    firstSeq,
    lastSeq,
    firstTime,
    lastTime,
    macChecked: opts.macKey !== undefined,
    failures,
    failuresOmitted: log.omitted,
    durationMs: performance.now() - t0,
  };
}

/** Adds the failures of the trail against its (given or latest own) signed checkpoint. */
async function checkCheckpoint(dir: string, opts: VerifyOptions, log: FailureLog): Promise<void> {
  let note = opts.checkpoint;
  if (note === undefined) {
    try {
      note = latestTrailCheckpoint(dir);
    } catch (e) {
      log.add({
        kind: 'checkpoint_invalid',
        file: CHECKPOINTS_FILE,
        line: null,
        seq: null,
        message: `no usable signed checkpoint in the trail: ${(e as Error).message}`,
      });
      return;
    }
  }
  const r = await checkAgainstCheckpoint(dir, note, opts.publicKey as VerifierKey, {
    ...(opts.checkpointOrigin !== undefined ? { origin: opts.checkpointOrigin } : {}),
  });
  for (const f of r.failures) log.add(f);
}

function code2kind(problem: string): VerifyFailureKind {
  return problem.startsWith('gzip') ? 'checksum_mismatch' : 'io_error';
}

/** End-of-file checks: truncation, the `.sha256` sidecar, and the manifest entry's fields. */
async function checkAgainstManifest(
  dir: string,
  p: PlanItem,
  diskName: string,
  scan: FileScan,
  facts: FileFacts,
  chain: ChainChecker,
  present: Set<string>,
): Promise<void> {
  const e = p.entry;
  const closed = p.state === 'closed' || p.state === 'archived';
  let checksumBad = false;
  // Sidecar: `<hex>  <name>\n` (sha256sum format) for closed and archived files.
  if (closed) {
    const sidecarName = `${p.name}.sha256`;
    let sidecarHex: string | null = null;
    let problem: string | null = null;
    if (!present.has(sidecarName)) problem = `${sidecarName} is missing`;
    else {
      const s = await readSmall(join(dir, sidecarName), MAX_SIDECAR_BYTES);
      if (typeof s === 'string') problem = `${sidecarName} is ${s}`;
      else {
        const mm = /^([0-9a-f]{64}) [ *](\S+)\n?$/.exec(s.toString('latin1'));
        if (!mm) problem = `${sidecarName} is not in sha256sum format`;
        else if (mm[2] !== p.name) problem = `${sidecarName} names ${mm[2]}, not ${p.name}`;
        else sidecarHex = mm[1] as string;
      }
    }
    if (problem !== null) {
      checksumBad = true;
      chain.fail({ kind: 'checksum_mismatch', file: diskName, line: null, seq: null, message: problem });
    } else if (sidecarHex !== scan.sha256) {
      checksumBad = true;
      chain.fail({
        kind: 'checksum_mismatch',
        file: diskName,
        line: null,
        seq: null,
        message: `content SHA-256 ${scan.sha256} does not match ${sidecarName} (${sidecarHex})`,
      });
    }
  }
  if (!e) return;
  const damaged = chain.fileDamaged || checksumBad;
  const actualLast = facts.maxSeq ?? (e.first_seq !== null ? e.first_seq - 1 : 0);
  // Truncation: fewer records than the manifest promises (a torn last line accounts for one).
  if (e.last_seq !== null && actualLast < e.last_seq) {
    const from = actualLast + 1 + (facts.tornUnparsed ? 1 : 0);
    if (from <= e.last_seq) {
      const n = e.last_seq - from + 1;
      chain.fail({
        kind: 'truncated_file',
        file: diskName,
        line: scan.lines + 1,
        seq: from,
        lastSeq: e.last_seq,
        message: `${diskName} ends at seq ${actualLast} but the manifest lists records up to seq ${e.last_seq}: ${n} record${n === 1 ? '' : 's'} cut off`,
      });
    }
    chain.resyncTo(e.last_seq, e.last_hash);
  }
  if (closed && e.sha256 !== scan.sha256) {
    if (!damaged) {
      chain.log.add({
        kind: 'manifest_mismatch',
        file: diskName,
        line: null,
        seq: null,
        message: `manifest sha256 ${e.sha256} disagrees with the file and its sidecar (${scan.sha256})`,
      });
    }
  }
  if (damaged) return;
  const diffs: string[] = [];
  const cmp = (field: string, listed: unknown, actual: unknown) => {
    if (listed !== actual) diffs.push(`${field} ${JSON.stringify(listed)} ≠ ${JSON.stringify(actual)}`);
  };
  // An open entry still saying "empty" (first_seq null) is a lower bound too: records written before
  // the manifest update that would have listed them (a crash or ENOSPC in between) are checked by
  // the chain, exactly as the writer's recovery accepts them (FORMAT.md §Recovery).
  if (closed || e.first_seq !== null) {
    cmp('first_seq', e.first_seq, facts.first?.seq ?? null);
    cmp('first_hash', e.first_hash, facts.first?.hash ?? null);
    cmp('first_time', e.first_time, facts.first?.time ?? null);
  }
  if (closed) {
    if (e.last_seq !== null && actualLast > e.last_seq) cmp('last_seq', e.last_seq, actualLast);
    cmp('last_hash', e.last_hash, facts.last?.hash ?? null);
    cmp('last_time', e.last_time, facts.last?.time ?? null);
    cmp('count', e.count, facts.records);
    cmp('bytes', e.bytes, scan.bytes);
  } else {
    // Open file: the entry is a lower bound as of the last manifest write — but the record it names
    // must be one of this file's.
    if (e.last_seq !== null && facts.hashAtManifestLast === null) {
      diffs.push(`last_seq ${e.last_seq} is not a record of this file`);
    } else if (e.last_seq !== null && e.last_hash !== null) {
      cmp('last_hash', e.last_hash, facts.hashAtManifestLast);
    }
    if (e.count !== null && e.count > facts.records) cmp('count', e.count, facts.records);
    if (e.bytes !== null && e.bytes > scan.bytes) cmp('bytes', e.bytes, scan.bytes);
  }
  if (diffs.length > 0) {
    chain.log.add({
      kind: 'manifest_mismatch',
      file: diskName,
      line: null,
      seq: e.first_seq,
      message: `manifest entry for ${p.name} disagrees with the file: ${diffs.join(', ')}`,
    });
  }
}
