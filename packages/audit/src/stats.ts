/**
 * Summary of a trail: files by state, size on disk, records by event type and by severity, seq and
 * time span. Streams every readable file once (bounded memory); it does not verify (see verifyTrail).
 *
 * Severity of a record: the event's own `severity` field when it has one (`info`, `warning`, `high`,
 * `critical`); otherwise `critical` for the critical event types ({@link isCriticalEvent}) and `info`
 * for the rest.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { isCriticalEvent } from './events.js';
import { listTrail } from './query.js';
import { parseRecordLine } from './record-check.js';
import { readTrailLines } from './trail-reader.js';

export interface TrailStats {
  dir: string;
  files: { total: number; open: number; closed: number; archived: number; deleted: number; missing: number };
  /** Bytes of record files on disk (archives compressed), plus sidecars and manifest. */
  bytesOnDisk: number;
  /** Bytes of record content read (uncompressed). */
  bytesContent: number;
  records: number;
  unparsableLines: number;
  byType: Record<string, number>;
  bySeverity: Record<string, number>;
  firstSeq: number | null;
  lastSeq: number | null;
  firstTime: string | null;
  lastTime: string | null;
  /** lastTime − firstTime in ms (0 for fewer than two records). */
  spanMs: number;
}

/** Computes {@link TrailStats} for the trail in `dir`. */
export async function trailStats(dir: string): Promise<TrailStats> {
  const { files, all, names } = await listTrail(dir);
  const s: TrailStats = {
    dir,
    files: { total: 0, open: 0, closed: 0, archived: 0, deleted: 0, missing: 0 },
    bytesOnDisk: 0,
    bytesContent: 0,
    records: 0,
    unparsableLines: 0,
    byType: {},
    bySeverity: {},
    firstSeq: null,
    lastSeq: null,
    firstTime: null,
    lastTime: null,
    spanMs: 0,
  };
  if (all) {
    for (const e of all) {
      s.files.total++;
      s.files[e.state]++;
    }
    s.files.missing = all.filter((e) => e.state !== 'deleted').length - files.length;
  } else {
    s.files.total = files.length;
    s.files.closed = files.filter((f) => names.has(`${f.name}.sha256`) && f.path === f.name).length;
    s.files.archived = files.filter((f) => f.path !== f.name).length;
    s.files.open = files.length - s.files.closed - s.files.archived;
  }
  for (const n of names) {
    if (n === 'manifest.json' || /\.audit(\.gz|\.sha256)?$/.test(n)) {
      s.bytesOnDisk += (await lstat(join(dir, n)).catch(() => ({ size: 0 }))).size;
    }
  }
  for (const f of files) {
    for await (const l of readTrailLines(join(dir, f.path))) {
      s.bytesContent += l.length + (l.terminated ? 1 : 0);
      if (l.bytes === null) {
        s.unparsableLines++;
        continue;
      }
      const r = parseRecordLine(l.bytes);
      if ('reason' in r) {
        s.unparsableLines++;
        continue;
      }
      s.records++;
      const type = typeof r.event.type === 'string' ? r.event.type : '(none)';
      s.byType[type] = (s.byType[type] ?? 0) + 1;
      const sev =
        typeof r.event.severity === 'string' ? r.event.severity : isCriticalEvent(type) ? 'critical' : 'info';
      s.bySeverity[sev] = (s.bySeverity[sev] ?? 0) + 1;
      if (s.firstSeq === null) {
        s.firstSeq = r.seq;
        s.firstTime = r.time;
      }
      s.lastSeq = r.seq;
      s.lastTime = r.time;
    }
  }
  if (s.firstTime && s.lastTime) {
    const d = Date.parse(s.lastTime) - Date.parse(s.firstTime);
    s.spanMs = Number.isFinite(d) ? d : 0;
  }
  return s;
}
