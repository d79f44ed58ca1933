/**
 * Self-contained proof bundles (JSON) that an auditor verifies offline with only the log's public key:
 *
 *   inclusion:   { type: "vramseal.inclusion-proof.v1", seq, leaf_index, tree_size, record, record_hash,
 *                  leaf_hash, proof: [base64 hashes], checkpoint: "<signed note>" }
 *   consistency: { type: "vramseal.consistency-proof.v1", size1, size2, proof: [base64 hashes],
 *                  checkpoint1: "<signed note>", checkpoint2: "<signed note>" }
 *
 * The inclusion bundle carries the record line itself: the verifier re-hashes it (FORMAT.md §Record),
 * so the proof binds the record's content, not just a hash. Proofs are RFC 9162 §2.1.3 / §2.1.4.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { recomputeHash } from '../record.js';
import {
  CHECKPOINTS_FILE,
  type Checkpoint,
  parseCheckpoint,
  parseNote,
  splitNotes,
  type VerifiedCheckpoint,
  verifyCheckpoint,
} from './checkpoint.js';
import { TlogError } from './errors.js';
import type { VerifierKey } from './keys.js';
import { HASH_SIZE, MemoryNodeStore, MerkleTree, recordLeafHash } from './merkle.js';
import { assertConsistency, consistencyProof, inclusionProof, rootFromInclusionProof } from './proof.js';
import { FileNodeStore, readTlogState } from './store.js';
import { readTrailLines } from './trail-records.js';

export const INCLUSION_PROOF_TYPE = 'vramseal.inclusion-proof.v1';
export const CONSISTENCY_PROOF_TYPE = 'vramseal.consistency-proof.v1';

export interface InclusionProofBundle {
  type: typeof INCLUSION_PROOF_TYPE;
  seq: number;
  leaf_index: number;
  tree_size: number;
  record: string;
  record_hash: string;
  leaf_hash: string;
  proof: string[];
  checkpoint: string;
}

export interface ConsistencyProofBundle {
  type: typeof CONSISTENCY_PROOF_TYPE;
  size1: number;
  size2: number;
  proof: string[];
  checkpoint1: string;
  checkpoint2: string;
}

/** Parses a checkpoint note without checking its signature (producers; verifiers use verifyCheckpoint). */
export function readCheckpointUnverified(note: string): Checkpoint {
  return parseCheckpoint(parseNote(note).text);
}

/**
 * Reads a checkpoint argument: a file holding one signed note, or a `checkpoints` file (then the note
 * with the largest tree size is taken, the latest when sizes tie). With `size`, the (latest) note of
 * exactly that tree size.
 */
export function loadCheckpointFile(file: string, size?: number): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TlogError(
      'TLOG_IO',
      `checkpoint file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  return latestNote(text, file, size);
}

function latestNote(text: string, where: string, want?: number): string {
  let best: { note: string; size: number } | undefined;
  for (const note of splitNotes(text)) {
    let size: number;
    try {
      size = readCheckpointUnverified(note).size;
    } catch {
      continue;
    }
    if (want !== undefined && size !== want) continue;
    if (!best || size >= best.size) best = { note, size };
  }
  if (!best) {
    throw want === undefined
      ? new TlogError('TLOG_CHECKPOINT_INVALID', `${where}: no well-formed checkpoint found`)
      : new TlogError('TLOG_BAD_INPUT', `${where}: no checkpoint of size ${want}`);
  }
  return best.note;
}

/** The latest checkpoint in `<dir>/checkpoints`. */
export function latestTrailCheckpoint(dir: string): string {
  return loadCheckpointFile(join(dir, CHECKPOINTS_FILE));
}

/**
 * A tree for the trail that matches every given (size, root): the stored `tlog/` tree when it does,
 * else one rebuilt in memory from the trail's records (O(n); for trails without a tree).
 */
async function treeMatching(
  dir: string,
  want: Checkpoint[],
): Promise<{ tree: MerkleTree; close: () => void }> {
  const maxSize = Math.max(...want.map((c) => c.size));
  const state = readTlogState(dir);
  if (state && state.size >= maxSize) {
    const store = FileNodeStore.open(dir, { readOnly: true });
    const tree = new MerkleTree(store);
    if (want.every((c) => c.size === 0 || tree.rootAt(c.size).equals(c.root))) {
      return { tree, close: () => store.close() };
    }
    store.close();
    throw new TlogError(
      'TLOG_TRAIL_MISMATCH',
      `the trail's tree (tlog/) does not match the checkpoint: the trail or its tree was changed after it was signed`,
    );
  }
  const tree = new MerkleTree(new MemoryNodeStore());
  for await (const l of readTrailLines(dir)) {
    if (tree.size >= maxSize) break;
    const r = l.record;
    if (!r || r.seq !== tree.size + 1) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `rebuilding the tree: ${l.file}:${l.line} is not record ${tree.size + 1}`,
      );
    }
    tree.appendRecordHash(recomputeHash(r as never));
  }
  if (tree.size < maxSize) {
    throw new TlogError(
      'TLOG_TRAIL_MISMATCH',
      `the trail holds ${tree.size} records, the checkpoint commits to ${maxSize}`,
    );
  }
  for (const c of want) {
    if (c.size > 0 && !tree.rootAt(c.size).equals(c.root)) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `the trail's first ${c.size} records do not match the checkpoint`,
      );
    }
  }
  return { tree, close: () => {} };
}

/** Builds the inclusion proof of record `seq` to checkpoint `note` (default: the trail's latest). */
export async function buildInclusionProof(
  dir: string,
  seq: number,
  note?: string,
): Promise<InclusionProofBundle> {
  if (!Number.isSafeInteger(seq) || seq < 1)
    throw new TlogError('TLOG_BAD_INPUT', `seq: must be an integer >= 1, got ${seq}`);
  const cpNote = note ?? latestTrailCheckpoint(dir);
  const cp = readCheckpointUnverified(cpNote);
  if (seq > cp.size) {
    throw new TlogError(
      'TLOG_BAD_INPUT',
      `seq: ${seq} is after the checkpoint's ${cp.size} records; use a later checkpoint`,
    );
  }
  let record: string | undefined;
  for await (const l of readTrailLines(dir, seq)) {
    if (l.record?.seq === seq) {
      record = l.text;
      break;
    }
  }
  if (record === undefined) throw new TlogError('TLOG_BAD_INPUT', `seq: record ${seq} is not in the trail`);
  const recordHash = recomputeHash(JSON.parse(record));
  const leaf = recordLeafHash(recordHash);
  const { tree, close } = await treeMatching(dir, [cp]);
  try {
    if (!tree.leafHash(seq - 1).equals(leaf)) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `record ${seq} in the trail differs from the one the checkpoint commits to`,
      );
    }
    const proof = inclusionProof(tree, seq - 1, cp.size);
    // Self-check: a damaged stored node must not produce a proof that fails for the auditor.
    if (!rootFromInclusionProof(seq - 1, cp.size, leaf, proof).equals(cp.root)) {
      throw new TlogError(
        'TLOG_CORRUPT',
        'the stored tree produced a proof that does not verify: rebuild tlog/',
      );
    }
    return {
      type: INCLUSION_PROOF_TYPE,
      seq,
      leaf_index: seq - 1,
      tree_size: cp.size,
      record,
      record_hash: recordHash,
      leaf_hash: leaf.toString('hex'),
      proof: proof.map((p) => p.toString('base64')),
      checkpoint: cpNote,
    };
  } finally {
    close();
  }
}

/** Builds the consistency proof between two checkpoints of the trail (older first). */
export async function buildConsistencyProof(
  dir: string,
  note1: string,
  note2: string,
): Promise<ConsistencyProofBundle> {
  const c1 = readCheckpointUnverified(note1);
  const c2 = readCheckpointUnverified(note2);
  if (c1.origin !== c2.origin)
    throw new TlogError('TLOG_BAD_INPUT', 'checkpoints: the two checkpoints name different logs');
  if (c1.size > c2.size)
    throw new TlogError(
      'TLOG_BAD_INPUT',
      `checkpoints: --from (${c1.size}) is larger than --to (${c2.size})`,
    );
  const { tree, close } = await treeMatching(dir, [c1, c2]);
  try {
    const proof = consistencyProof(tree, c1.size, c2.size);
    assertConsistency(c1.size, c2.size, proof, c1.size === 0 ? tree.rootAt(0) : c1.root, c2.root);
    return {
      type: CONSISTENCY_PROOF_TYPE,
      size1: c1.size,
      size2: c2.size,
      proof: proof.map((p) => p.toString('base64')),
      checkpoint1: note1,
      checkpoint2: note2,
    };
  } finally {
    close();
  }
}

function decodeProof(proof: unknown): Buffer[] {
  if (!Array.isArray(proof))
    throw new TlogError('TLOG_PROOF_INVALID', 'proof: must be an array of base64 hashes');
  return proof.map((p, i) => {
    const b = typeof p === 'string' ? Buffer.from(p, 'base64') : Buffer.alloc(0);
    if (b.length !== HASH_SIZE || b.toString('base64') !== p) {
      throw new TlogError('TLOG_PROOF_INVALID', `proof[${i}]: must be the base64 of a 32-byte hash`);
    }
    return b;
  });
}

export interface ProofVerification {
  ok: boolean;
  type: string;
  /** Why verification failed (absent when ok). */
  reason?: string;
  checkpoint?: VerifiedCheckpoint;
  checkpoint2?: VerifiedCheckpoint;
  seq?: number;
}

/**
 * Verifies a proof bundle (either type) with only the public key. `checkpointNote` replaces the
 * bundle's own checkpoint (e.g. the witness's copy); `origin` pins the log. Never throws for bad input.
 */
export function verifyProofBundle(
  bundle: unknown,
  key: VerifierKey,
  opts: { checkpointNote?: string; origin?: string } = {},
): ProofVerification {
  const b = bundle as Record<string, unknown> | null;
  const type = typeof b?.type === 'string' ? b.type : 'unknown';
  try {
    if (b === null || typeof b !== 'object')
      throw new TlogError('TLOG_PROOF_INVALID', 'proof: not a JSON object');
    const originOpt = opts.origin === undefined ? {} : { origin: opts.origin };
    if (type === INCLUSION_PROOF_TYPE) {
      const note = opts.checkpointNote ?? (b.checkpoint as string);
      if (typeof note !== 'string') throw new TlogError('TLOG_PROOF_INVALID', 'checkpoint: missing');
      const cp = verifyCheckpoint(note, key, originOpt);
      if (typeof b.record !== 'string')
        throw new TlogError('TLOG_PROOF_INVALID', 'record: must be the record line');
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(b.record) as Record<string, unknown>;
      } catch {
        throw new TlogError('TLOG_PROOF_INVALID', 'record: not valid JSON');
      }
      const hash = recomputeHash(rec as never);
      if (rec.hash !== hash)
        throw new TlogError('TLOG_PROOF_INVALID', 'record: its content does not match its hash');
      const seq = rec.seq as number;
      if (b.seq !== seq)
        throw new TlogError('TLOG_PROOF_INVALID', `seq: the bundle says ${String(b.seq)}, the record ${seq}`);
      if (b.tree_size !== cp.size) {
        throw new TlogError(
          'TLOG_PROOF_INVALID',
          `tree_size: the proof is for ${String(b.tree_size)} records, the checkpoint has ${cp.size}`,
        );
      }
      const root = rootFromInclusionProof(seq - 1, cp.size, recordLeafHash(hash), decodeProof(b.proof));
      if (!root.equals(cp.root))
        throw new TlogError('TLOG_PROOF_INVALID', 'proof: does not lead to the checkpoint root');
      return { ok: true, type, checkpoint: cp, seq };
    }
    if (type === CONSISTENCY_PROOF_TYPE) {
      if (typeof b.checkpoint1 !== 'string' || typeof b.checkpoint2 !== 'string') {
        throw new TlogError('TLOG_PROOF_INVALID', 'checkpoint1/checkpoint2: missing');
      }
      const c1 = verifyCheckpoint(b.checkpoint1, key, originOpt);
      const c2 = verifyCheckpoint(opts.checkpointNote ?? b.checkpoint2, key, originOpt);
      if (c1.origin !== c2.origin)
        throw new TlogError('TLOG_PROOF_INVALID', 'checkpoints: name different logs');
      if (b.size1 !== c1.size || b.size2 !== c2.size) {
        throw new TlogError('TLOG_PROOF_INVALID', 'size1/size2: do not match the checkpoints');
      }
      const empty = new MerkleTree(new MemoryNodeStore()).root();
      assertConsistency(c1.size, c2.size, decodeProof(b.proof), c1.size === 0 ? empty : c1.root, c2.root);
      return { ok: true, type, checkpoint: c1, checkpoint2: c2 };
    }
    throw new TlogError('TLOG_PROOF_INVALID', `type: unknown proof type ${JSON.stringify(type)}`);
  } catch (err) {
    if (!(err instanceof TlogError))
      return { ok: false, type, reason: `invalid input: ${(err as Error).message}` };
    return { ok: false, type, reason: err.message };
  }
}
