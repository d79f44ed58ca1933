/**
 * `manifest.json`: the index of every record file a trail ever had (FORMAT.md §Manifest).
 * Replaced atomically (temp file, fsync, rename, fsync dir) by {@link writeManifest}.
 */
import { join } from 'node:path';
import { type AuditFs, isErrno, nodeFs, writeFileAtomic } from './fs.js';
import { AuditCorruptError } from './writer-errors.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_VERSION = 1 as const;

export type ManifestFileState = 'open' | 'closed' | 'archived' | 'deleted';

/** One record file's entry (FORMAT.md §Manifest). */
export interface ManifestFile {
  name: string;
  state: ManifestFileState;
  first_seq: number | null;
  last_seq: number | null;
  count: number;
  first_hash: string | null;
  last_hash: string | null;
  first_time: string | null;
  last_time: string | null;
  created: string;
  closed: string | null;
  bytes: number;
  sha256: string | null;
  /** `archived`: the archive file name (e.g. `2026-11-27.audit.gz`). */
  archive?: string;
  /** `deleted`: when, and the seq of the `audit.file_deleted` record. */
  deleted_at?: string;
  deleted_by_seq?: number;
}

export interface Manifest {
  v: typeof MANIFEST_VERSION;
  service_id: string;
  files: ManifestFile[];
}

const FILE_RE = /^(\d{4}-\d{2}-\d{2})(?:\.([1-9]\d{0,5}))?\.audit$/;

/** `YYYY-MM-DD.audit` for n = 0, `YYYY-MM-DD.N.audit` for n ≥ 1. */
export function recordFileName(day: string, n: number): string {
  return n === 0 ? `${day}.audit` : `${day}.${n}.audit`;
}

/** Parses a record file name, or returns null when `name` is not one. */
export function parseRecordFileName(name: string): { day: string; n: number } | null {
  const m = FILE_RE.exec(name);
  return m ? { day: m[1] as string, n: m[2] ? Number(m[2]) : 0 } : null;
}

/** A fresh entry for a newly created (empty) record file. */
export function newFileEntry(name: string, created: string): ManifestFile {
  return {
    name,
    state: 'open',
    first_seq: null,
    last_seq: null,
    count: 0,
    first_hash: null,
    last_hash: null,
    first_time: null,
    last_time: null,
    created,
    closed: null,
    bytes: 0,
    sha256: null,
  };
}

const isHash = (x: unknown) => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x);
const isSeq = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 1;
const STATES = new Set(['open', 'closed', 'archived', 'deleted']);

/** Checks the manifest's structure and invariants; throws {@link AuditCorruptError} naming the problem. */
export function checkManifest(m: unknown, where = MANIFEST_FILE): Manifest {
  const bad = (msg: string): never => {
    throw new AuditCorruptError(where, msg);
  };
  if (typeof m !== 'object' || m === null) return bad('not a JSON object');
  const o = m as Record<string, unknown>;
  if (o.v !== MANIFEST_VERSION) bad(`unsupported version ${JSON.stringify(o.v)}`);
  if (typeof o.service_id !== 'string') bad('service_id is not a string');
  if (!Array.isArray(o.files)) return bad('files is not an array');
  let prevLast = 0;
  const names = new Set<string>();
  o.files.forEach((f: unknown, i: number) => {
    const e = f as Record<string, unknown>;
    const at = `files[${i}]`;
    if (typeof e !== 'object' || e === null) bad(`${at} is not an object`);
    if (typeof e.name !== 'string' || !parseRecordFileName(e.name))
      bad(`${at}.name is not a record file name`);
    if (names.has(e.name as string)) bad(`${at}.name ${e.name} is listed twice`);
    names.add(e.name as string);
    if (!STATES.has(e.state as string)) bad(`${at}.state is invalid`);
    if (e.state === 'open' && i !== (o.files as unknown[]).length - 1)
      bad(`${at} is open but not the last file`);
    if (typeof e.count !== 'number' || !Number.isSafeInteger(e.count) || e.count < 0)
      bad(`${at}.count is invalid`);
    if (e.count === 0) {
      if (e.first_seq !== null || e.last_seq !== null) bad(`${at} has no records but a seq range`);
    } else {
      if (!isSeq(e.first_seq) || !isSeq(e.last_seq)) bad(`${at}.first_seq/last_seq invalid`);
      if (!isHash(e.first_hash) || !isHash(e.last_hash)) bad(`${at}.first_hash/last_hash invalid`);
      if ((e.last_seq as number) - (e.first_seq as number) + 1 !== e.count) bad(`${at}.count ≠ seq range`);
      if (e.first_seq !== prevLast + 1) bad(`${at}.first_seq ${e.first_seq} does not follow ${prevLast}`);
      prevLast = e.last_seq as number;
    }
    if (typeof e.bytes !== 'number' || e.bytes < 0) bad(`${at}.bytes is invalid`);
    if (e.state !== 'open' && e.state !== 'deleted' && !isHash(e.sha256))
      bad(`${at}.sha256 missing on a closed file`);
  });
  return m as Manifest;
}

/** Reads and checks `dir/manifest.json`; `null` if there is none. */
export async function readManifest(dir: string, afs: AuditFs = nodeFs): Promise<Manifest | null> {
  let buf: Buffer;
  try {
    buf = await afs.readFile(join(dir, MANIFEST_FILE));
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return null;
    throw e;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new AuditCorruptError(join(dir, MANIFEST_FILE), 'is not valid JSON', { cause: e });
  }
  return checkManifest(parsed, join(dir, MANIFEST_FILE));
}

/** Atomically replaces `dir/manifest.json` (mode 0600). */
export async function writeManifest(afs: AuditFs, dir: string, m: Manifest): Promise<void> {
  await writeFileAtomic(
    afs,
    dir,
    join(dir, MANIFEST_FILE),
    Buffer.from(`${JSON.stringify(m, null, 2)}\n`),
    0o600,
  );
}

/** Deep copy (manifests are plain JSON). */
export function cloneManifest(m: Manifest): Manifest {
  return { v: m.v, service_id: m.service_id, files: m.files.map((f) => ({ ...f })) };
}
