/**
 * Verifier integration: checks a trail against a signed (ideally witnessed) checkpoint.
 *
 * The hash chain alone cannot see a trail cut short at the end, nor a trail rewritten and re-chained end
 * to end by someone without the MAC key (or with it). A checkpoint signed earlier commits to the first
 * `size` records through the RFC 9162 root, so:
 *
 *  - every record is re-hashed from its content (the chain is recomputed end to end, never trusting the
 *    stored `hash`), its leaf appended to a streaming frontier (O(log n) memory);
 *  - fewer than `size` records on disk        -> `truncated_trail`
 *  - the root of the first `size` records differs from the checkpoint's   -> `history_rewritten`
 *
 * When the trail's own `tlog/` tree still matches the checkpoint, it is used as evidence to say more:
 * the first rewritten seq, and whether the records that remain after a truncation are an intact prefix.
 * Records of files deleted by retention are taken from that tree (their content no longer exists).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { recomputeHash } from '../record.js';
import { type VerifiedCheckpoint, verifyCheckpoint } from './checkpoint.js';
import { TlogError } from './errors.js';
import type { VerifierKey } from './keys.js';
import { FrontierOnlyStore, MerkleTree, recordLeafHash } from './merkle.js';
import { FileNodeStore, TLOG_DIR } from './store.js';
import { listTrailFiles, readFileLines } from './trail-records.js';

/** Failure kinds this check reports (in addition to the verifier's own). */
export type CheckpointFailureKind = 'truncated_trail' | 'history_rewritten' | 'checkpoint_invalid';

/** Same shape as the verifier's failures: kind, file, line, seq, plain message. */
export interface CheckpointFailure {
  kind: CheckpointFailureKind;
  file: string | null;
  line: number | null;
  seq: number | null;
  message: string;
  lastSeq?: number;
}

export interface CheckpointCheckReport {
  ok: boolean;
  /** The checkpoint, when its signature verified. */
  checkpoint: (Pick<VerifiedCheckpoint, 'origin' | 'size' | 'time' | 'noteHash'> & { root: string }) | null;
  /** Records read from the trail (well-formed lines). */
  records: number;
  /** Leaves taken from the stored tree for files deleted by retention. */
  leavesFromStoredTree: number;
  /** Whether the trail's stored tree (tlog/) matched the checkpoint and was used as evidence. */
  storedTreeMatches: boolean;
  failures: CheckpointFailure[];
}

export interface CheckpointCheckOptions {
  /** Expected origin line (e.g. `vramseal/<service id>`); any origin when absent. */
  origin?: string;
}

/**
 * Checks the trail in `dir` against the signed checkpoint `note`, verified with `key`.
 * Never throws for damaged input: everything wrong becomes a failure in the report.
 */
export async function checkAgainstCheckpoint(
  dir: string,
  note: string,
  key: VerifierKey,
  opts: CheckpointCheckOptions = {},
): Promise<CheckpointCheckReport> {
  const failures: CheckpointFailure[] = [];
  const report: CheckpointCheckReport = {
    ok: false,
    checkpoint: null,
    records: 0,
    leavesFromStoredTree: 0,
    storedTreeMatches: false,
    failures,
  };
  let cp: VerifiedCheckpoint;
  try {
    cp = verifyCheckpoint(note, key, opts.origin === undefined ? {} : { origin: opts.origin });
  } catch (err) {
    failures.push({
      kind: 'checkpoint_invalid',
      file: null,
      line: null,
      seq: null,
      message: `checkpoint rejected: ${(err as Error).message}`,
    });
    return report;
  }
  report.checkpoint = {
    origin: cp.origin,
    size: cp.size,
    time: cp.time,
    noteHash: cp.noteHash,
    root: cp.root.toString('hex'),
  };
  const N = cp.size;

  // The trail's own tree, if it still matches the checkpoint, is evidence for locating damage.
  let stored: MerkleTree | undefined;
  let storedStore: FileNodeStore | undefined;
  if (existsSync(join(dir, TLOG_DIR, 'state.json'))) {
    try {
      storedStore = FileNodeStore.open(dir, { readOnly: true });
      const t = new MerkleTree(storedStore);
      if (t.size >= N && N > 0 && t.rootAt(N).equals(cp.root)) stored = t;
    } catch {
      stored = undefined;
    }
  }
  report.storedTreeMatches = stored !== undefined;

  const tree = new MerkleTree(new FrontierOnlyStore());
  let rootAtN = N === 0 ? tree.root() : undefined;
  let firstMismatch: { seq: number; file: string; line: number } | undefined;
  let firstUnusable: { file: string; line: number; why: string } | undefined;
  let last: { seq: number | null; file: string; line: number } | undefined;
  let unfilledDeleted = false;

  const addLeaf = (leaf: Buffer, where: { seq: number; file: string; line: number } | undefined) => {
    const i = tree.size;
    if (i < N && stored && !firstMismatch && where && !leaf.equals(stored.leafHash(i))) firstMismatch = where;
    tree.appendLeafHash(leaf);
    if (tree.size === N) rootAtN = tree.root();
  };

  try {
    const { files, deleted } = listTrailFiles(dir);
    for (const f of files) {
      for await (const l of readFileLines(f)) {
        const r = l.record;
        let hash: string | undefined;
        let seq: number | null = null;
        if (r) {
          seq = typeof r.seq === 'number' && Number.isSafeInteger(r.seq) ? r.seq : null;
          try {
            hash = recomputeHash(r as never);
          } catch {
            hash = undefined;
          }
        }
        if (hash === undefined || seq === null) {
          // Not a usable record: it cannot be a leaf, so the history as stored differs from a full one.
          if (!firstUnusable && l.text.length > 0)
            firstUnusable = { file: l.file, line: l.line, why: l.error ?? 'not a record' };
          continue;
        }
        // Records of files deleted by retention come from the stored tree (when it matches the checkpoint).
        if (seq > tree.size + 1 && !stored && deleted.length > 0) unfilledDeleted = true;
        if (seq > tree.size + 1 && stored) {
          const gapEnd = Math.min(seq - 1, stored.size);
          const covered = deleted.some(
            (d) =>
              d.firstSeq !== null &&
              d.lastSeq !== null &&
              d.firstSeq <= tree.size + 1 &&
              d.lastSeq >= tree.size + 1,
          );
          if (covered) {
            while (tree.size < gapEnd) {
              addLeaf(stored.leafHash(tree.size), undefined);
              report.leavesFromStoredTree++;
            }
          }
        }
        report.records++;
        addLeaf(recordLeafHash(hash), { seq, file: l.file, line: l.line });
        last = { seq, file: l.file, line: l.line };
      }
    }
    // Trailing deleted files (possible only if everything after them is gone too) are not filled.
  } catch (err) {
    if (err instanceof TlogError) throw err;
    failures.push({
      kind: 'history_rewritten',
      file: null,
      line: null,
      seq: null,
      message: `the trail could not be read to the end (${(err as Error).message}); it cannot match the checkpoint`,
    });
  }

  const where = firstMismatch
    ? ` (first differing record: seq ${firstMismatch.seq}, ${firstMismatch.file} line ${firstMismatch.line})`
    : firstUnusable
      ? ` (first unreadable line: ${firstUnusable.file} line ${firstUnusable.line}: ${firstUnusable.why})`
      : '';
  const when = cp.time ? ` signed ${cp.time}` : '';
  const inconclusive = unfilledDeleted
    ? " Files deleted by retention left a gap that only the trail's tlog/ tree can fill, and it is missing or does not match the checkpoint: this may be the cause."
    : '';
  if (tree.size < N) {
    let prefix = '';
    if (stored && tree.size > 0) {
      prefix = stored.rootAt(tree.size).equals(tree.root())
        ? ' The records that remain are an intact prefix of the checkpointed history.'
        : '';
    }
    failures.push({
      kind: 'truncated_trail',
      file: last?.file ?? null,
      line: last?.line ?? null,
      seq: tree.size + 1,
      lastSeq: N,
      message: `the trail holds ${tree.size} record(s) but the checkpoint${when} commits to ${N}: records ${tree.size + 1}..${N} are missing.${prefix}${inconclusive}`,
    });
    if (stored && tree.size > 0 && prefix === '') {
      failures.push({
        kind: 'history_rewritten',
        file: firstMismatch?.file ?? null,
        line: firstMismatch?.line ?? null,
        seq: firstMismatch?.seq ?? null,
        message: `the remaining records also differ from the checkpointed history${where}`,
      });
    }
  } else if (!(rootAtN as Buffer).equals(cp.root)) {
    failures.push({
      kind: 'history_rewritten',
      file: firstMismatch?.file ?? firstUnusable?.file ?? null,
      line: firstMismatch?.line ?? firstUnusable?.line ?? null,
      seq: firstMismatch?.seq ?? null,
      message: `the first ${N} records do not match the checkpoint${when} (Merkle root differs): the history was rewritten${where}.${inconclusive}`,
    });
  }
  storedStore?.close();
  report.ok = failures.length === 0;
  return report;
}
