/** Small helpers to read a trail directory back in tests (trails here are small, read whole). */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareRecordFileNames, RECORD_FILE_RE } from '@vramseal/audit';

export interface StoredRecord {
  seq: number;
  hash: string;
  prev_hash: string;
  event: Record<string, unknown> & { type: string };
  line: string;
}

/** Every record of the trail's plain `.audit` files, in file order. Throws on an unparsable line. */
export function readRecords(dir: string): StoredRecord[] {
  const files = readdirSync(dir)
    .filter((n) => RECORD_FILE_RE.test(n))
    .sort(compareRecordFileNames);
  const out: StoredRecord[] = [];
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      out.push({ ...JSON.parse(line), line });
    }
  }
  return out;
}

const made: string[] = [];
/** A fresh temp directory, removed by {@link cleanupTemp}. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `vramseal-rel-${prefix}-`));
  made.push(d);
  return d;
}
export function cleanupTemp(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}
