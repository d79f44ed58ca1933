/**
 * Reading a trail's records in seq order with filters (`queryTrail`), and following it as it grows
 * (`tailTrail`, `followTrail`).
 *
 * Files come from `manifest.json` in its order (without one, from the directory sorted by date and
 * rotation index); files whose manifest time range (`first_time`..`last_time`, FORMAT.md §Manifest)
 * lies outside `since`/`until` are not opened. Lines are pre-filtered on their bytes (a canonical record
 * holds `"shard_id":"x"` literally) before any JSON parsing, so selective queries skip most of the cost.
 *
 * With `verify: true` every record read (not only those returned) is checked — hash, MAC when a key is
 * given, seq and `prev_hash` links (across skipped files, from their manifest `last_hash`) — and the
 * first problem throws {@link TrailIntegrityError}. Full verification (checksums, manifest, all
 * failures) is {@link verifyTrail}'s job.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type AuditRecord, GENESIS_HASH } from './record.js';
import { type CheckedRecord, checkRecordLine, MacChecker, parseRecordLine } from './record-check.js';
import { LineSplitter, readTrailLines } from './trail-reader.js';
import {
  compareRecordFileNames,
  type ManifestEntryView,
  parseManifestText,
  RECORD_FILE_RE,
  type VerifyFailureKind,
} from './verify.js';

/** Filters of {@link queryTrail}; all given filters must match (AND). */
export interface QueryFilter {
  /** Event types; `auth.*` matches a dotted prefix. */
  types?: readonly string[];
  /** `event.actor.user_id`, or `event.actor` when it is a string (`audit.admin_query`). */
  actor?: string;
  /**
   * Any resource id field of the event: `resource.resource_id`, `resource_id`, `shard_id`, `pool_id`,
   * `node_id`, `task_id`, `job_id`, `model_ref`, `file`.
   */
  resourceId?: string;
  shardId?: string;
  customerId?: string;
  /** Record time (`time`) ≥ since. ISO 8601 string, Date or epoch ms. */
  since?: string | Date | number;
  /** Record time < until. */
  until?: string | Date | number;
  /** At most this many records. */
  limit?: number;
}

export interface QueryOptions extends QueryFilter {
  /** Check every record read (hash, MAC, links); throws {@link TrailIntegrityError} on the first problem. */
  verify?: boolean;
  macKey?: Uint8Array;
  maxLineBytes?: number;
}

/** Thrown by a verifying query at the first integrity problem. */
export class TrailIntegrityError extends Error {
  readonly code = 'TRAIL_INTEGRITY' as const;
  constructor(
    readonly kind: VerifyFailureKind,
    readonly file: string,
    readonly line: number | null,
    readonly seq: number | null,
    detail: string,
  ) {
    super(`${kind} in ${file}${line !== null ? ` line ${line}` : ''}: ${detail}`);
    this.name = 'TrailIntegrityError';
  }
}

/** A query argument that is not valid (names the option and the rule). */
export class QueryArgumentError extends Error {
  readonly code = 'INVALID_QUERY' as const;
  constructor(
    readonly option: string,
    rule: string,
  ) {
    super(`query option ${option}: ${rule}`);
    this.name = 'QueryArgumentError';
  }
}

/** A file of the trail to read, in seq order. */
export interface TrailFilePlan {
  name: string;
  /** Name on disk (`<name>.gz` for archives). */
  path: string;
  entry: ManifestEntryView | null;
}

/**
 * The trail's readable files in seq order, with manifest entries where there is a manifest. Deleted
 * entries are returned in `deleted` (for link continuity), not in `files`.
 */
export async function listTrail(
  dir: string,
): Promise<{ files: TrailFilePlan[]; all: ManifestEntryView[] | null; names: Set<string> }> {
  const names = new Set(await readdir(dir));
  let entries: ManifestEntryView[] | null = null;
  if (names.has('manifest.json')) {
    try {
      const text = await readFile(join(dir, 'manifest.json'), 'utf8');
      const p = parseManifestText(text);
      if (p.entries.length > 0) entries = p.entries;
    } catch {
      entries = null;
    }
  }
  const files: TrailFilePlan[] = [];
  if (entries) {
    for (const e of entries) {
      if (e.state === 'deleted') continue;
      const gz = `${e.name}.gz`;
      const path =
        e.state === 'archived'
          ? names.has(gz)
            ? gz
            : e.name
          : names.has(e.name)
            ? e.name
            : names.has(gz)
              ? gz
              : null;
      if (path !== null && names.has(path)) files.push({ name: e.name, path, entry: e });
    }
  } else {
    const seen = new Set<string>();
    for (const n of names) {
      const base = n.endsWith('.gz') ? n.slice(0, -3) : n;
      if (RECORD_FILE_RE.test(base)) seen.add(base);
    }
    for (const b of [...seen].sort(compareRecordFileNames)) {
      files.push({ name: b, path: names.has(b) ? b : `${b}.gz`, entry: null });
    }
  }
  return { files, all: entries, names };
}

function toMs(v: string | Date | number | undefined, option: string): number | undefined {
  if (v === undefined) return undefined;
  const ms = typeof v === 'number' ? v : v instanceof Date ? v.getTime() : Date.parse(v);
  if (!Number.isFinite(ms)) throw new QueryArgumentError(option, 'must be an ISO 8601 time');
  return ms;
}

const RESOURCE_FIELDS = [
  'resource_id',
  'shard_id',
  'pool_id',
  'node_id',
  'task_id',
  'job_id',
  'model_ref',
  'file',
];

/** A compiled filter: byte-level necessary conditions, then exact checks on the parsed record. */
class Matcher {
  readonly needles: Buffer[][] = [];
  readonly sinceMs: number | undefined;
  readonly untilMs: number | undefined;
  readonly sinceIso: string | undefined;
  readonly untilIso: string | undefined;
  readonly #types: Set<string> | null;
  readonly #prefixes: string[];
  constructor(readonly q: QueryFilter) {
    this.sinceMs = toMs(q.since, 'since');
    this.untilMs = toMs(q.until, 'until');
    this.sinceIso = this.sinceMs === undefined ? undefined : new Date(this.sinceMs).toISOString();
    this.untilIso = this.untilMs === undefined ? undefined : new Date(this.untilMs).toISOString();
    if (q.limit !== undefined && (!Number.isSafeInteger(q.limit) || q.limit < 0)) {
      throw new QueryArgumentError('limit', 'must be an integer >= 0');
    }
    const lit = (k: string, v: string) => Buffer.from(`"${k}":${JSON.stringify(v)}`);
    if (q.types && q.types.length > 0) {
      for (const t of q.types)
        if (typeof t !== 'string' || t === '')
          throw new QueryArgumentError('types', 'must be non-empty strings');
      this.#types = new Set(q.types.filter((t) => !t.endsWith('*')));
      this.#prefixes = q.types.filter((t) => t.endsWith('*')).map((t) => t.slice(0, -1));
      this.needles.push(
        q.types.map((t) => (t.endsWith('*') ? Buffer.from(`"type":"${t.slice(0, -1)}`) : lit('type', t))),
      );
    } else {
      this.#types = null;
      this.#prefixes = [];
    }
    if (q.actor !== undefined) this.needles.push([lit('user_id', q.actor), lit('actor', q.actor)]);
    if (q.shardId !== undefined) this.needles.push([lit('shard_id', q.shardId)]);
    if (q.customerId !== undefined) this.needles.push([lit('customer_id', q.customerId)]);
    if (q.resourceId !== undefined) {
      const v = q.resourceId;
      this.needles.push(RESOURCE_FIELDS.map((f) => lit(f, v)));
    }
  }

  /** Cheap test on the stored bytes: false means the record cannot match. */
  maybe(line: Buffer): boolean {
    for (const alts of this.needles) {
      let any = false;
      for (const n of alts) {
        if (line.indexOf(n) >= 0) {
          any = true;
          break;
        }
      }
      if (!any) return false;
    }
    if (this.sinceIso !== undefined || this.untilIso !== undefined) {
      // A canonical record ends with `"time":"<24 chars>","v":1}`.
      const t = timeOfLine(line);
      if (t !== null) {
        if (this.sinceIso !== undefined && t < this.sinceIso) return false;
        if (this.untilIso !== undefined && t >= this.untilIso) return false;
      }
    }
    return true;
  }

  matches(r: AuditRecord): boolean {
    const e = r.event as Record<string, unknown>;
    const type = e.type;
    if (this.#types) {
      if (typeof type !== 'string') return false;
      if (!this.#types.has(type) && !this.#prefixes.some((p) => type.startsWith(p))) return false;
    }
    const q = this.q;
    if (q.actor !== undefined) {
      const a = e.actor;
      const uid =
        typeof a === 'string'
          ? a
          : typeof a === 'object' && a !== null
            ? (a as { user_id?: unknown }).user_id
            : undefined;
      if (uid !== q.actor) return false;
    }
    if (q.shardId !== undefined && e.shard_id !== q.shardId) return false;
    if (q.customerId !== undefined && e.customer_id !== q.customerId) return false;
    if (q.resourceId !== undefined) {
      const res = e.resource as { resource_id?: unknown } | undefined;
      const hit =
        (typeof res === 'object' && res !== null && res.resource_id === q.resourceId) ||
        RESOURCE_FIELDS.some((f) => e[f] === q.resourceId);
      if (!hit) return false;
    }
    if (this.sinceMs !== undefined || this.untilMs !== undefined) {
      const t = Date.parse(r.time);
      if (!Number.isFinite(t)) return false;
      if (this.sinceMs !== undefined && t < this.sinceMs) return false;
      if (this.untilMs !== undefined && t >= this.untilMs) return false;
    }
    return true;
  }

  /** Whether a file whose records span [first, last] (ISO times) can hold a match. */
  fileMayMatch(e: ManifestEntryView | null): boolean {
    if (!e) return true;
    if (this.untilIso !== undefined && e.first_time !== null && e.first_time >= this.untilIso) return false;
    // last_time is only a lower bound for the open file.
    if (
      this.sinceIso !== undefined &&
      e.state !== 'open' &&
      e.last_time !== null &&
      e.last_time < this.sinceIso
    )
      return false;
    return true;
  }
}

const TIME_TAIL = Buffer.from('","v":1}');
function timeOfLine(line: Buffer): string | null {
  const n = line.length;
  if (n < 42 || line.compare(TIME_TAIL, 0, TIME_TAIL.length, n - TIME_TAIL.length, n) !== 0) return null;
  const t = line.toString('latin1', n - 8 - 24, n - 8);
  return line.toString('latin1', n - 8 - 24 - 8, n - 8 - 24) === '"time":"' ? t : null;
}

/**
 * The records of the trail in `dir` that match `q`, in seq order, as an async iterator. Stops after
 * `limit` records (and closes the file it was reading).
 */
export async function* queryTrail(dir: string, q: QueryOptions = {}): AsyncGenerator<AuditRecord> {
  const m = new Matcher(q);
  if (q.limit === 0) return;
  const { files, all } = await listTrail(dir);
  const mac = q.verify && q.macKey ? new MacChecker(q.macKey) : null;
  let yielded = 0;
  // Verification state: the expected next seq and prev_hash.
  let expSeq = 1;
  let expPrev = GENESIS_HASH;
  const entryIndex = new Map((all ?? []).map((e, i) => [e.name, i]));
  let lastReadIdx = -1;
  for (const f of files) {
    if (!m.fileMayMatch(f.entry)) continue;
    if (q.verify && all && f.entry) {
      // Link across files not read (skipped by time or deleted) through the manifest.
      const idx = entryIndex.get(f.name) as number;
      if (idx !== lastReadIdx + 1 && idx > 0) {
        const prev = all[idx - 1] as ManifestEntryView;
        if (prev.last_seq !== null && prev.last_hash !== null) {
          expSeq = prev.last_seq + 1;
          expPrev = prev.last_hash;
        }
      }
      lastReadIdx = idx;
    }
    const filter = q.verify ? undefined : (b: Buffer) => m.maybe(b);
    for await (const l of readTrailLines(join(dir, f.path), { maxLineBytes: q.maxLineBytes, filter })) {
      if (!q.verify && l.bytes === null) continue;
      if (l.bytes === null) {
        throw new TrailIntegrityError(
          'unparsable_line',
          f.path,
          l.lineNo,
          null,
          `line is ${l.length} bytes, over the cap`,
        );
      }
      const r = q.verify ? checkRecordLine(l.bytes) : parseRecordLine(l.bytes);
      if ('reason' in r) {
        if (q.verify) throw new TrailIntegrityError('unparsable_line', f.path, l.lineNo, null, r.reason);
        continue;
      }
      if (q.verify) {
        if (!l.terminated)
          throw new TrailIntegrityError('torn_line', f.path, l.lineNo, r.seq, 'last line has no newline');
        if (!(r as CheckedRecord).hashOk)
          throw new TrailIntegrityError(
            'modified_record',
            f.path,
            l.lineNo,
            r.seq,
            'content does not match its hash',
          );
        if (r.seq !== expSeq)
          throw new TrailIntegrityError(
            r.seq > expSeq ? 'deleted_records' : 'inserted_record',
            f.path,
            l.lineNo,
            r.seq,
            `expected seq ${expSeq}, found ${r.seq}`,
          );
        if (r.prevHash !== expPrev)
          throw new TrailIntegrityError(
            'modified_record',
            f.path,
            l.lineNo,
            r.seq,
            'prev_hash does not link to the previous record',
          );
        if (mac && !mac.matches(r.hash, r.mac))
          throw new TrailIntegrityError('bad_mac', f.path, l.lineNo, r.seq, 'MAC does not match');
        expSeq = r.seq + 1;
        expPrev = r.hash;
        if (!m.maybe(l.bytes)) continue;
      }
      const rec = r.record as unknown as AuditRecord;
      if (!m.matches(rec)) continue;
      yield rec;
      if (q.limit !== undefined && ++yielded >= q.limit) return;
    }
  }
}

/** The last `n` records of the trail (in seq order), reading files from the end. */
export async function tailTrail(dir: string, n: number): Promise<AuditRecord[]> {
  if (!Number.isSafeInteger(n) || n < 0) throw new QueryArgumentError('lines', 'must be an integer >= 0');
  if (n === 0) return [];
  const { files } = await listTrail(dir);
  let out: AuditRecord[] = [];
  for (let i = files.length - 1; i >= 0 && out.length < n; i--) {
    const f = files[i] as TrailFilePlan;
    const ring: AuditRecord[] = [];
    for await (const l of readTrailLines(join(dir, f.path))) {
      if (l.bytes === null || !l.terminated) continue;
      const r = parseRecordLine(l.bytes);
      if ('reason' in r) continue;
      ring.push(r.record as unknown as AuditRecord);
      if (ring.length > n) ring.shift();
    }
    out = [...ring, ...out].slice(-n);
  }
  return out;
}

export interface FollowOptions {
  /** Start after this seq (default: the current end of the trail). */
  afterSeq?: number;
  /** Poll interval. Default 250 ms. */
  pollMs?: number;
  signal?: AbortSignal;
}

/**
 * Yields records appended to the trail from now on (like `tail -f`), following rotation into new
 * files, until `signal` aborts. Only whole (newline-terminated) lines are yielded.
 */
export async function* followTrail(dir: string, o: FollowOptions = {}): AsyncGenerator<AuditRecord> {
  const pollMs = o.pollMs ?? 250;
  let after = o.afterSeq;
  if (after === undefined) {
    const last = await tailTrail(dir, 1);
    after = last[0]?.seq ?? 0;
  }
  let current: string | null = null;
  let offset = 0;
  let pending: AuditRecord[] = [];
  const newSplitter = () =>
    new LineSplitter({
      line(b) {
        const r = parseRecordLine(b);
        if (!('reason' in r)) pending.push(r.record as unknown as AuditRecord);
      },
      oversize() {},
    });
  let split = newSplitter();
  while (!o.signal?.aborted) {
    const { files } = await listTrail(dir).catch(() => ({ files: [] as TrailFilePlan[] }));
    const plain = files.filter((f) => f.path === f.name);
    // Find the file holding the next seq: the last one whose first_seq ≤ after + 1.
    if (current === null) {
      const candidate =
        [...plain]
          .reverse()
          .find((f) => f.entry?.first_seq == null || f.entry.first_seq <= (after as number) + 1) ?? plain[0];
      if (candidate) {
        current = candidate.name;
        offset = 0;
      }
    }
    let progressed = false;
    if (current !== null) {
      const st = await stat(join(dir, current)).catch(() => null);
      if (st && st.size > offset) {
        const fh = await open(join(dir, current), 'r');
        try {
          const len = Math.min(st.size - offset, 8 << 20);
          const buf = Buffer.allocUnsafe(len);
          const { bytesRead } = await fh.read(buf, 0, len, offset);
          offset += bytesRead;
          split.push(buf.subarray(0, bytesRead));
          const out = pending;
          pending = [];
          for (const r of out) {
            if (r.seq <= (after as number)) continue;
            after = r.seq;
            yield r;
          }
          progressed = bytesRead > 0;
        } finally {
          await fh.close();
        }
      }
      if (!progressed) {
        // Rotation: move on once a later file exists and this one is fully read.
        const idx = plain.findIndex((f) => f.name === current);
        const next = idx >= 0 ? plain[idx + 1] : undefined;
        if (next && !split.midLine) {
          current = next.name;
          offset = 0;
          split = newSplitter();
          continue;
        }
      }
    }
    if (!progressed) await sleep(pollMs, o.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
