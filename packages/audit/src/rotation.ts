/**
 * When to start a new record file (FORMAT.md §Rotation) and what to call it.
 *
 * A record goes to the open file unless that file already holds at least one record and
 *   - `daily` is on and the record's UTC day (from its `time`) differs from the file's day, or
 *   - appending the record's line (+ `\n`) would make the file larger than `maxBytes`.
 * A single record larger than `maxBytes` is written alone into its own file.
 * New files are named after the UTC day of their first record: `YYYY-MM-DD.audit`, then
 * `YYYY-MM-DD.1.audit`, `YYYY-MM-DD.2.audit`, … (one more than the highest N the manifest has for that day).
 */
import { utcDay } from './clock.js';
import { type Manifest, parseRecordFileName, recordFileName } from './manifest.js';

export const DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024;

export interface RotationOptions {
  /** Start a new file when the open one would exceed this many bytes (default 100 MiB). */
  maxBytes?: number;
  /** Start a new file when the UTC day changes (default true). */
  daily?: boolean;
}

export class RotationPolicy {
  readonly maxBytes: number;
  readonly daily: boolean;
  constructor(o: RotationOptions = {}) {
    this.maxBytes = o.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.daily = o.daily ?? true;
  }

  /** Whether a record of `lineBytes` bytes (with its `\n`) and time `time` must go to a new file. */
  mustRotate(file: { count: number; bytes: number; day: string }, time: string, lineBytes: number): boolean {
    if (file.count === 0) return false;
    if (this.daily && !time.startsWith(file.day)) return true; // the UTC day is time's first 10 chars
    return file.bytes + lineBytes > this.maxBytes;
  }

  /** The name for a new file whose first record has time `time`, unused by any manifest entry. */
  nextName(m: Manifest, time: string, taken: ReadonlySet<string> = new Set()): string {
    const day = utcDay(time);
    let n = -1;
    for (const f of m.files) {
      const p = parseRecordFileName(f.name);
      if (p && p.day === day && p.n > n) n = p.n;
    }
    let name = recordFileName(day, n + 1);
    while (taken.has(name)) name = recordFileName(day, ++n + 1);
    return name;
  }
}
