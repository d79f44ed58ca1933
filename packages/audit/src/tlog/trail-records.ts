/**
 * Reads a trail's records in seq order for the transparency layer (catch-up after a restart, proofs,
 * checkpoint checks). Files come from `manifest.json` (FORMAT.md §Manifest) in its order, or, without a
 * manifest, from the directory sorted by (date, N). Archived files are read from `<name>.gz`; files the
 * manifest marks `deleted` are reported through `onDeleted` (their records no longer exist).
 *
 * Memory is bounded: files are streamed and a line longer than `maxLineBytes` is reported as unparsable
 * without being buffered whole.
 */
import { createReadStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';

const MAX_LINE = 1 << 20;
const NAME_RE = /^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.audit$/;

/** One record file of the trail, in seq order. */
export interface TrailFileRef {
  name: string;
  /** Path actually read (the `.gz` for archived files). */
  path: string;
  gz: boolean;
  state: string;
  firstSeq: number | null;
  lastSeq: number | null;
}

/** One line of a trail file. `record` is undefined when the line is not a JSON object. */
export interface TrailLineRef {
  file: string;
  line: number;
  text: string;
  record?: Record<string, unknown>;
  /** Why the line could not be parsed. */
  error?: string;
  /** False for a last line without its `\n` (being written, or torn). */
  terminated: boolean;
}

interface ManifestLike {
  files?: { name?: unknown; state?: unknown; first_seq?: unknown; last_seq?: unknown }[];
}

const numOrNull = (v: unknown): number | null =>
  typeof v === 'number' && Number.isSafeInteger(v) ? v : null;

/** The trail's record files in seq order (see module comment). */
export function listTrailFiles(dir: string): { files: TrailFileRef[]; deleted: TrailFileRef[] } {
  const files: TrailFileRef[] = [];
  const deleted: TrailFileRef[] = [];
  const manifestPath = join(dir, 'manifest.json');
  if (existsSync(manifestPath)) {
    let m: ManifestLike;
    try {
      m = JSON.parse(readFileSync(manifestPath, 'utf8')) as ManifestLike;
    } catch {
      m = {};
    }
    if (Array.isArray(m.files)) {
      for (const f of m.files) {
        if (typeof f?.name !== 'string' || !NAME_RE.test(f.name)) continue;
        const state = typeof f.state === 'string' ? f.state : 'open';
        const ref: TrailFileRef = {
          name: f.name,
          path: join(dir, f.name),
          gz: false,
          state,
          firstSeq: numOrNull(f.first_seq),
          lastSeq: numOrNull(f.last_seq),
        };
        if (state === 'deleted') {
          deleted.push(ref);
          continue;
        }
        if (state === 'archived' || (!existsSync(ref.path) && existsSync(`${ref.path}.gz`))) {
          ref.path = `${ref.path}.gz`;
          ref.gz = true;
        }
        files.push(ref);
      }
      return { files, deleted };
    }
  }
  const names: { day: string; n: number; name: string; gz: boolean }[] = [];
  for (const name of readdirSync(dir)) {
    const gz = name.endsWith('.audit.gz');
    const base = gz ? name.slice(0, -3) : name;
    const m = NAME_RE.exec(base);
    if (!m) continue;
    if (gz && names.some((x) => x.name === base)) continue;
    if (!gz) {
      const i = names.findIndex((x) => x.name === base);
      if (i >= 0) names.splice(i, 1);
    }
    names.push({ day: m[1] as string, n: m[2] ? Number(m[2]) : 0, name: base, gz });
  }
  names.sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : a.n - b.n));
  for (const x of names) {
    files.push({
      name: x.name,
      path: join(dir, x.gz ? `${x.name}.gz` : x.name),
      gz: x.gz,
      state: 'unknown',
      firstSeq: null,
      lastSeq: null,
    });
  }
  return { files, deleted };
}

/** Streams the lines of one trail file (bounded memory; an unterminated last line is still yielded). */
export async function* readFileLines(ref: TrailFileRef): AsyncGenerator<TrailLineRef> {
  const raw = createReadStream(ref.path, { highWaterMark: 1 << 20 });
  const stream = ref.gz ? raw.pipe(createGunzip()) : raw;
  let carry: Buffer[] = [];
  let carryLen = 0;
  let skipping = false;
  let lineNo = 0;
  const make = (buf: Buffer | null, terminated = true): TrailLineRef => {
    lineNo++;
    if (!buf)
      return {
        file: ref.name,
        line: lineNo,
        text: '',
        terminated,
        error: `line longer than ${MAX_LINE} bytes`,
      };
    const text = buf.toString('utf8');
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      return { file: ref.name, line: lineNo, text, terminated, error: 'not valid JSON' };
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      return { file: ref.name, line: lineNo, text, terminated, error: 'not a JSON object' };
    }
    return { file: ref.name, line: lineNo, text, terminated, record: record as Record<string, unknown> };
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        const end = nl < 0 ? chunk.length : nl;
        if (!skipping) {
          if (carryLen + (end - start) > MAX_LINE) {
            skipping = true;
            carry = [];
            carryLen = 0;
          } else if (end > start) {
            carry.push(chunk.subarray(start, end));
            carryLen += end - start;
          }
        }
        if (nl < 0) break;
        yield make(skipping ? null : carry.length === 1 ? (carry[0] as Buffer) : Buffer.concat(carry));
        carry = [];
        carryLen = 0;
        skipping = false;
        start = nl + 1;
      }
      // Keep the carried bytes: the chunk buffer is not reused by fs streams, but copy to be safe.
      if (carry.length > 0) carry = [Buffer.from(Buffer.concat(carry))];
    }
  } finally {
    raw.destroy();
  }
  if (skipping || carryLen > 0) yield make(skipping ? null : Buffer.concat(carry), false);
}

/**
 * Every line of the trail, in file order, starting with the file that may contain `fromSeq` (files the
 * manifest shows to end before it are skipped).
 */
export async function* readTrailLines(dir: string, fromSeq = 1): AsyncGenerator<TrailLineRef> {
  const { files } = listTrailFiles(dir);
  for (const f of files) {
    if (f.state !== 'open' && f.lastSeq !== null && f.lastSeq < fromSeq) continue;
    yield* readFileLines(f);
  }
}
