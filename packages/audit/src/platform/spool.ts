/**
 * Reads records back from a local trail directory (the spool) by seq, across rotated files
 * (`YYYY-MM-DD[.N].audit`, archived `.audit.gz`), for shipping and for comparison with the collector.
 *
 * Only complete lines (terminated by "\n") are returned: a line being written is never shipped half.
 * The reader keeps a cursor (file, byte offset, next seq) so that reading the next records of the
 * open file costs one positional read of the new bytes, not a rescan.
 */
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { PlatformError } from './errors.js';

export interface SpoolRecord {
  seq: number;
  hash: string;
  prev_hash: string;
  /** The stored line, without its trailing newline. */
  line: string;
}

export interface SpoolReadOptions {
  /** At most this many records (default 500). */
  maxRecords?: number;
  /** Stop before the lines' total length exceeds this (default 4 MiB; at least one record is returned). */
  maxBytes?: number;
  /** Do not return records with a seq above this (e.g. the last durable seq). */
  untilSeq?: number;
}

const FILE_RE = /^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.audit(\.gz)?$/;
const CHUNK = 1 << 20;

interface TrailFile {
  name: string;
  day: string;
  n: number;
  gz: boolean;
}

interface Cursor {
  file: string;
  offset: number;
  nextSeq: number;
}

/** Lists the trail's record files in seq order (day, then rotation index; `.gz` stands in for its `.audit`). */
export async function listTrailFiles(dir: string): Promise<TrailFile[]> {
  const names = await readdir(dir);
  const byBase = new Map<string, TrailFile>();
  for (const name of names) {
    const m = FILE_RE.exec(name);
    if (!m) continue;
    const f: TrailFile = {
      name,
      day: m[1] as string,
      n: m[2] === undefined ? 0 : Number(m[2]),
      gz: m[3] !== undefined,
    };
    const base = f.gz ? name.slice(0, -3) : name;
    // When both exist (mid-archive), prefer the plain file.
    if (!byBase.has(base) || !f.gz) byBase.set(base, f);
  }
  return [...byBase.values()].sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : a.n - b.n));
}

function parseLine(line: string, where: string): SpoolRecord {
  let r: { seq?: unknown; hash?: unknown; prev_hash?: unknown };
  try {
    r = JSON.parse(line);
  } catch {
    throw new PlatformError('PLATFORM_SPOOL', `unparsable record line in ${where}`);
  }
  if (!Number.isSafeInteger(r.seq) || typeof r.hash !== 'string' || typeof r.prev_hash !== 'string')
    throw new PlatformError('PLATFORM_SPOOL', `record in ${where} lacks seq/hash/prev_hash`);
  return { seq: r.seq as number, hash: r.hash, prev_hash: r.prev_hash, line };
}

export class SpoolReader {
  readonly dir: string;
  #cursor: Cursor | undefined;
  /** First seq of files whose first line we have read (stable once written). */
  #firstSeq = new Map<string, number>();
  #gzCache: { name: string; buf: Buffer } | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Reads records `fromSeq, fromSeq+1, ...` (contiguous) per `opts`. Returns [] when none is there yet. */
  async read(fromSeq: number, opts: SpoolReadOptions = {}): Promise<SpoolRecord[]> {
    try {
      return await this.#read(fromSeq, opts);
    } catch (err) {
      // A file archived (renamed to .gz) under our cursor: locate again once.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.#cursor = undefined;
      return await this.#read(fromSeq, opts);
    }
  }

  async #read(fromSeq: number, opts: SpoolReadOptions): Promise<SpoolRecord[]> {
    const maxRecords = opts.maxRecords ?? 500;
    const maxBytes = opts.maxBytes ?? 4 << 20;
    const until = opts.untilSeq ?? Number.MAX_SAFE_INTEGER;
    if (fromSeq > until) return [];
    let cur = this.#cursor?.nextSeq === fromSeq ? this.#cursor : await this.#locate(fromSeq);
    if (!cur) return [];
    const out: SpoolRecord[] = [];
    let bytes = 0;
    for (;;) {
      const { records, offset, eof } = await this.#readFrom(
        cur,
        maxRecords - out.length,
        maxBytes - bytes,
        until,
        out.length === 0,
      );
      for (const r of records) {
        out.push(r);
        bytes += r.line.length;
      }
      cur = { file: cur.file, offset, nextSeq: cur.nextSeq + records.length };
      this.#cursor = cur;
      if (!eof || out.length >= maxRecords || bytes >= maxBytes || cur.nextSeq > until) break;
      // End of this file: continue in the next one, if the trail has rotated.
      const files = await listTrailFiles(this.dir);
      const at = cur.file;
      const i = files.findIndex((f) => f.name === at);
      const next = i >= 0 ? files[i + 1] : undefined;
      if (!next) break;
      const first = await this.#firstSeqOf(next);
      if (first === undefined) break;
      if (first !== cur.nextSeq)
        throw new PlatformError(
          'PLATFORM_SPOOL',
          `trail ${this.dir}: file ${next.name} starts at seq ${first}, expected ${cur.nextSeq}`,
        );
      cur = { file: next.name, offset: 0, nextSeq: cur.nextSeq };
      this.#cursor = cur;
    }
    return out;
  }

  /** The record with this seq, or undefined when the trail does not hold it. */
  async get(seq: number): Promise<SpoolRecord | undefined> {
    const [r] = await this.read(seq, { maxRecords: 1 });
    return r?.seq === seq ? r : undefined;
  }

  /** The last complete record of the trail, or undefined for an empty trail. */
  async last(): Promise<SpoolRecord | undefined> {
    const files = await listTrailFiles(this.dir);
    for (let i = files.length - 1; i >= 0; i--) {
      const f = files[i] as TrailFile;
      const first = await this.#firstSeqOf(f);
      if (first === undefined) continue;
      let cur: Cursor = { file: f.name, offset: 0, nextSeq: first };
      let last: SpoolRecord | undefined;
      for (;;) {
        const { records, offset, eof } = await this.#readFrom(
          cur,
          10_000,
          Number.MAX_SAFE_INTEGER,
          Number.MAX_SAFE_INTEGER,
          true,
        );
        if (records.length > 0) last = records[records.length - 1];
        cur = { file: f.name, offset, nextSeq: cur.nextSeq + records.length };
        if (eof || records.length === 0) break;
      }
      if (last) return last;
    }
    return undefined;
  }

  /** The first record of the trail (retention may have removed earlier files). */
  async first(): Promise<SpoolRecord | undefined> {
    for (const f of await listTrailFiles(this.dir)) {
      const first = await this.#firstSeqOf(f);
      if (first !== undefined) return this.get(first);
    }
    return undefined;
  }

  async #firstSeqOf(f: TrailFile): Promise<number | undefined> {
    const known = this.#firstSeq.get(f.name);
    if (known !== undefined) return known;
    const buf = await this.#bytes(f.name, 0, 64 * 1024);
    const nl = buf.indexOf(10);
    if (nl < 0) return undefined;
    const seq = parseLine(buf.subarray(0, nl).toString('utf8'), f.name).seq;
    this.#firstSeq.set(f.name, seq);
    return seq;
  }

  /** Finds the file and offset of `seq` by scanning from the start of the last file that begins at or before it. */
  async #locate(seq: number): Promise<Cursor | undefined> {
    let files: TrailFile[];
    try {
      files = await listTrailFiles(this.dir);
    } catch (err) {
      throw new PlatformError(
        'PLATFORM_SPOOL',
        `cannot list trail ${this.dir}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
    let chosen: { f: TrailFile; first: number } | undefined;
    for (const f of files) {
      const first = await this.#firstSeqOf(f);
      if (first === undefined) continue;
      if (first <= seq) chosen = { f, first };
      else break;
    }
    if (!chosen) return undefined;
    let cur: Cursor = { file: chosen.f.name, offset: 0, nextSeq: chosen.first };
    // Skip records before `seq`.
    while (cur.nextSeq < seq) {
      const { records, offset, eof } = await this.#readFrom(
        cur,
        Math.min(seq - cur.nextSeq, 10_000),
        Number.MAX_SAFE_INTEGER,
        seq - 1,
        true,
      );
      cur = { file: cur.file, offset, nextSeq: cur.nextSeq + records.length };
      if (eof && cur.nextSeq < seq) {
        // The record may be in the next file (located above) or not written yet.
        const i = files.findIndex((f) => f.name === cur.file);
        const next = files[i + 1];
        if (!next) return undefined;
        const first = await this.#firstSeqOf(next);
        if (first === undefined || first > seq) return undefined;
        cur = { file: next.name, offset: 0, nextSeq: first };
      }
      if (records.length === 0 && !eof) return undefined;
    }
    return cur;
  }

  async #bytes(name: string, offset: number, length: number): Promise<Buffer> {
    if (name.endsWith('.gz')) {
      if (this.#gzCache?.name !== name)
        this.#gzCache = { name, buf: gunzipSync(await readFile(join(this.dir, name))) };
      return this.#gzCache.buf.subarray(offset, offset + length);
    }
    const fh = await open(join(this.dir, name), 'r');
    try {
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /** Reads complete lines from the cursor. `eof`: the file has no further complete line now. */
  async #readFrom(
    cur: Cursor,
    maxRecords: number,
    maxBytes: number,
    until: number,
    atLeastOne: boolean,
  ): Promise<{ records: SpoolRecord[]; offset: number; eof: boolean }> {
    const records: SpoolRecord[] = [];
    let offset = cur.offset;
    let nextSeq = cur.nextSeq;
    let bytes = 0;
    let chunk = CHUNK;
    for (;;) {
      if (records.length >= maxRecords || nextSeq > until) return { records, offset, eof: false };
      const buf = await this.#bytes(cur.file, offset, chunk);
      if (buf.length === 0) return { records, offset, eof: true };
      let start = 0;
      let nl = buf.indexOf(10, start);
      if (nl < 0) {
        if (buf.length < chunk) return { records, offset, eof: true }; // torn or in-progress last line
        chunk *= 2; // a line longer than the chunk: read more of it
        continue;
      }
      chunk = CHUNK;
      while (nl >= 0) {
        const line = buf.toString('utf8', start, nl);
        const r = parseLine(line, cur.file);
        if (r.seq !== nextSeq)
          throw new PlatformError(
            'PLATFORM_SPOOL',
            `trail ${this.dir}: ${cur.file} has seq ${r.seq} where ${nextSeq} was expected`,
          );
        if (bytes + line.length > maxBytes && !(atLeastOne && records.length === 0))
          return { records, offset: offset + start, eof: false };
        records.push(r);
        bytes += line.length;
        nextSeq++;
        start = nl + 1;
        if (records.length >= maxRecords || nextSeq > until)
          return { records, offset: offset + start, eof: false };
        nl = buf.indexOf(10, start);
      }
      offset += start;
    }
  }
}
