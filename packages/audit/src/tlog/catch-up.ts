/**
 * Catch-up of a stored tree with the trail on disk: after a restart (or a gap in what the logger
 * reported), re-reads the records after the tree's size, checking each against its content and chain.
 */
import { recomputeHash } from '../record.js';
import { TlogError } from './errors.js';
import { type MerkleTree, recordLeafHash } from './merkle.js';
import { readTrailLines } from './trail-records.js';

/**
 * Brings the tree up to date with the records on disk: re-reads records from seq `tree.size` on (the
 * last leaf, to check the join) and appends the rest. Each record's hash is recomputed and its
 * `prev_hash` link checked; a record that does not match what the tree holds is `TLOG_TRAIL_MISMATCH`.
 * Returns the number of records appended.
 */
export async function catchUpFromTrail(
  dir: string,
  tree: MerkleTree,
  upToSeq = Number.POSITIVE_INFINITY,
): Promise<number> {
  const start = tree.size;
  let prevHash: string | undefined;
  let appended = 0;
  for await (const l of readTrailLines(dir, Math.max(1, start))) {
    const r = l.record;
    // A last line still being written (no newline yet): its record arrives through 'durable'.
    if (!l.terminated) break;
    if (!r) {
      // A torn last line (crash mid-write) is the writer's to recover; anything else is damage.
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `tlog catch-up: ${l.file}:${l.line}: ${l.error ?? 'unparsable'}`,
      );
    }
    const seq = r.seq;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq)) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `tlog catch-up: ${l.file}:${l.line}: record has no integer seq`,
      );
    }
    if (seq < start) continue;
    if (seq > upToSeq) break;
    const hash = r.hash as string;
    let recomputed: string;
    try {
      recomputed = recomputeHash(r as never);
    } catch {
      recomputed = '';
    }
    if (recomputed !== hash) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `tlog catch-up: ${l.file}:${l.line}: seq ${seq} hash does not match its content`,
      );
    }
    if (seq === start && start > 0) {
      if (!recordLeafHash(hash).equals(tree.leafHash(start - 1))) {
        throw new TlogError(
          'TLOG_TRAIL_MISMATCH',
          `tlog catch-up: ${l.file}:${l.line}: record ${seq} differs from leaf ${seq - 1} of the stored tree (trail rewritten?)`,
        );
      }
      prevHash = hash;
      continue;
    }
    if (seq !== tree.size + 1) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `tlog catch-up: ${l.file}:${l.line}: expected seq ${tree.size + 1}, found ${seq}`,
      );
    }
    if (prevHash !== undefined && r.prev_hash !== prevHash) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `tlog catch-up: ${l.file}:${l.line}: seq ${seq} prev_hash does not link to seq ${seq - 1}`,
      );
    }
    tree.appendRecordHash(hash);
    prevHash = hash;
    appended++;
  }
  if (start > 0 && prevHash === undefined && tree.size === start) {
    // The record behind the last durable leaf was not found: the trail is shorter than the tree.
    throw new TlogError(
      'TLOG_TRAIL_MISMATCH',
      `tlog catch-up: the trail has no record ${start}, but the tree holds ${start} leaves`,
    );
  }
  return appended;
}
