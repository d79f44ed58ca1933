/**
 * Where a live trail's tree is kept (Tessera-style "log" layer between the store and the checkpoint
 * writer). Two implementations behind one interface:
 *
 *  - {@link LocalTreeHost}: the tree in this thread (used inside the worker, and when workers are off);
 *  - {@link WorkerTreeHost} (worker-host.ts): the same LocalTreeHost in a worker thread, so hashing the
 *    records and writing tlog/ costs the logger's thread only a string join and a postMessage per batch.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { catchUpFromTrail } from './catch-up.js';
import { CHECKPOINTS_FILE, type Checkpoint, parseCheckpoint, parseNote, splitNotes } from './checkpoint.js';
import { TlogError } from './errors.js';
import { MerkleTree } from './merkle.js';
import { FileNodeStore } from './store.js';

/** The tree state a checkpoint commits to. */
export interface TreeHead {
  size: number;
  root: Buffer;
}

export interface TreeHost {
  /** Opens the stored tree and catches up with the trail on disk. */
  start(): Promise<{ size: number; caughtUp: number }>;
  /** Appends durable records (consecutive seqs starting at `firstSeq`, hashes as 64-hex each, concatenated). */
  append(firstSeq: number, hashesHex: string): void;
  /** Makes the current tree durable (fsync) and returns its head. */
  sync(): Promise<TreeHead>;
  /** Synchronous final sync + close (the logger releases its lock right after 'close'). */
  closeSync(): TreeHead;
  /** Closes without a final sync of newer leaves than the last one (best effort). */
  close(): Promise<void>;
}

const MAX_PENDING_NODES = 8192;

/**
 * Never sign a fork: every checkpoint already in `<dir>/checkpoints` must still hold for the tree
 * (same root at its size, and no checkpoint larger than the trail). Otherwise the trail (or its tree)
 * was truncated or rewritten since it was signed, and a new checkpoint would contradict the old one:
 * `TLOG_TRAIL_MISMATCH`. Signatures are not checked here (roots do not depend on the key).
 */
export function checkSignedHistory(dir: string, tree: MerkleTree): void {
  let text: string;
  try {
    text = readFileSync(join(dir, CHECKPOINTS_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new TlogError('TLOG_IO', `tlog: cannot read ${CHECKPOINTS_FILE}: ${(err as Error).message}`);
  }
  // The largest checkpoint suffices: a matching root at its size fixes every record before it, so all
  // earlier checkpoints (each consistent with it when it was signed) hold as well. O(log n) reads.
  let largest: Checkpoint[] = [];
  for (const note of splitNotes(text)) {
    let cp: Checkpoint;
    try {
      cp = parseCheckpoint(parseNote(note).text);
    } catch {
      continue;
    }
    if (largest.length === 0 || cp.size > (largest[0] as Checkpoint).size) largest = [cp];
    else if (cp.size === (largest[0] as Checkpoint).size) largest.push(cp);
  }
  for (const cp of largest) {
    if (cp.size === 0) continue;
    const when = cp.time ? ` (signed ${cp.time})` : '';
    if (cp.size > tree.size) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `tlog: the trail holds ${tree.size} records but a checkpoint${when} was signed for ${cp.size}: the trail was truncated; refusing to sign checkpoints that contradict it`,
      );
    }
    if (!tree.rootAt(cp.size).equals(cp.root)) {
      throw new TlogError(
        'TLOG_TRAIL_MISMATCH',
        `tlog: the first ${cp.size} records no longer match the checkpoint${when}: the trail or its tree was rewritten; refusing to sign checkpoints that contradict it`,
      );
    }
  }
}

/** The tree in this thread: a {@link MerkleTree} over the trail's {@link FileNodeStore}. */
export class LocalTreeHost implements TreeHost {
  readonly dir: string;
  #store: FileNodeStore | undefined;
  #tree: MerkleTree | undefined;
  #catchingUp: Promise<void> | undefined;
  #queued: { firstSeq: number; hex: string }[] = [];
  #error: unknown;
  #caughtUp = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  get tree(): MerkleTree {
    if (!this.#tree) throw new TlogError('TLOG_BAD_INPUT', 'tree host not started');
    return this.#tree;
  }

  async start(): Promise<{ size: number; caughtUp: number }> {
    const store = FileNodeStore.open(this.dir);
    try {
      this.#tree = new MerkleTree(store);
      this.#store = store;
      this.#caughtUp = await catchUpFromTrail(this.dir, this.#tree);
      checkSignedHistory(this.dir, this.#tree);
    } catch (err) {
      store.close();
      this.#store = undefined;
      throw err;
    }
    return { size: this.#tree.size, caughtUp: this.#caughtUp };
  }

  append(firstSeq: number, hashesHex: string): void {
    if (this.#catchingUp) {
      this.#queued.push({ firstSeq, hex: hashesHex });
      return;
    }
    this.#apply(firstSeq, hashesHex);
  }

  #apply(firstSeq: number, hex: string): void {
    const tree = this.tree;
    const n = hex.length / 64;
    if (!Number.isInteger(n))
      throw new TlogError('TLOG_BAD_INPUT', 'append: hashes must be 64 hex characters each');
    const i = Math.max(0, tree.size + 1 - firstSeq); // skip records the tree already holds
    if (i < n && firstSeq + i !== tree.size + 1) {
      // A gap: records became durable that we were not told about. Read them from the trail.
      this.#queued.push({ firstSeq, hex });
      this.#startCatchUp(firstSeq - 1);
      return;
    }
    if (i < n) tree.appendRecordHashes(hex, i, n - i);
    const store = this.#store as FileNodeStore;
    if (store.count(0) - store.durableSize > MAX_PENDING_NODES) store.flush();
  }

  #startCatchUp(upToSeq: number): void {
    this.#catchingUp = (async () => {
      try {
        this.#caughtUp += await catchUpFromTrail(this.dir, this.tree, upToSeq);
      } catch (err) {
        this.#error = err;
      } finally {
        this.#catchingUp = undefined;
      }
      const q = this.#queued;
      this.#queued = [];
      for (const b of q) {
        if (this.#catchingUp) this.#queued.push(b);
        else this.#apply(b.firstSeq, b.hex);
      }
    })();
  }

  #throwIfFailed(): void {
    if (this.#error) {
      const e = this.#error;
      this.#error = undefined;
      throw e;
    }
  }

  async sync(): Promise<TreeHead> {
    while (this.#catchingUp) await this.#catchingUp;
    this.#throwIfFailed();
    const tree = this.tree;
    const size = tree.size;
    const root = tree.root();
    await (this.#store as FileNodeStore).syncWithRootAsync(root);
    return { size, root };
  }

  closeSync(): TreeHead {
    this.#throwIfFailed();
    if (this.#catchingUp) {
      throw new TlogError(
        'TLOG_IO',
        'tree host: closed while catching up with the trail; no final checkpoint',
      );
    }
    const tree = this.tree;
    const head = { size: tree.size, root: tree.root() };
    try {
      (this.#store as FileNodeStore).syncWithRoot(head.root);
    } finally {
      this.#store?.close();
      this.#store = undefined;
    }
    return head;
  }

  /** Waits for a catch-up in progress, then {@link closeSync}. */
  async finish(): Promise<TreeHead> {
    while (this.#catchingUp) await this.#catchingUp;
    return this.closeSync();
  }

  async close(): Promise<void> {
    while (this.#catchingUp) await this.#catchingUp;
    try {
      if (this.#store && this.#tree) this.#store.syncWithRoot(this.#tree.root());
    } finally {
      this.#store?.close();
      this.#store = undefined;
    }
  }
}
