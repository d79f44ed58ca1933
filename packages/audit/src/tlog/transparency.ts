/**
 * Transparency for a live trail: keeps the RFC 9162 tree (tlog/) in step with the records the
 * {@link AuditLogger} makes durable, and writes Ed25519-signed C2SP checkpoints every N records, every
 * T milliseconds (when the trail grew) and when the logger closes.
 *
 *   const tl = await Transparency.attach(log, { signer: loadSignerKey('tlog.key'), witnessDir: '/mnt/witness' });
 *
 * Each checkpoint is appended (fsync'd) to `<trail>/checkpoints`, optionally to
 * `<witnessDir>/<origin with '/' as '_'>.checkpoints`, and recorded in the trail itself as an
 * `audit.checkpoint` event (tree_size, root_hash, checkpoint_hash). The tree is fsync'd before the
 * checkpoint that commits to it is written, so a checkpoint never refers to a tree state that a crash
 * can lose. On attach, the tree resumes from its durable size and re-reads only the records after it
 * (at most the records since the last checkpoint), checking each one's hash and chain link.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { recomputeHash } from '../record.js';
import { CHECKPOINTS_FILE, signCheckpoint } from './checkpoint.js';
import { TlogError } from './errors.js';
import type { SignerKey } from './keys.js';
import { MerkleTree, recordLeafHash } from './merkle.js';
import { ensurePrivateDir, FileNodeStore, fsyncDir } from './store.js';
import { readTrailLines } from './trail-records.js';

/** A record as the logger reports it once durable (CONTRACTS §2 'durable'). */
export interface DurableRecord {
  seq: number;
  hash: string;
}

/** What Transparency needs from a live logger (the real AuditLogger satisfies it). */
export interface TransparencySource {
  readonly dir: string;
  readonly serviceId: string;
  on(event: 'durable' | 'close', listener: (...args: never[]) => void): unknown;
  off?(event: 'durable' | 'close', listener: (...args: never[]) => void): unknown;
  /** The audit emit (used for `audit.checkpoint` records when `recordEvents` is on). */
  emit?(event: {
    type: 'audit.checkpoint';
    timestamp: string;
    tree_size: number;
    root_hash: string;
    checkpoint_hash: string;
  }): unknown;
}

export interface TransparencyOptions {
  signer: SignerKey;
  /** Checkpoint origin line; default `vramseal/<serviceId>`. */
  origin?: string;
  /** Checkpoint after this many new records (default 10 000). */
  everyRecords?: number;
  /** Checkpoint this often when the trail grew (ms, default 30 000; 0 = never on a timer). */
  everyMs?: number;
  /** Also append every checkpoint to `<witnessDir>/<origin, '/' -> '_'>.checkpoints`. */
  witnessDir?: string;
  /** Record each periodic checkpoint in the trail as an `audit.checkpoint` event (default true). */
  recordEvents?: boolean;
  /** Clock for the checkpoint `time` line (default: new Date()). */
  now?: () => Date;
  /** Operational logger (pino-like); errors also go to the 'error' event when it has listeners. */
  logger?: { warn(obj: unknown, msg?: string): void; error(obj: unknown, msg?: string): void };
}

/** A written checkpoint. */
export interface CheckpointInfo {
  size: number;
  root: Buffer;
  note: string;
  time: string;
}

const MAX_PENDING_NODES = 8192;

/** File name of a trail's checkpoints in a witness directory. */
export function witnessFileName(origin: string): string {
  return `${origin.replace(/[^A-Za-z0-9._-]/g, '_')}.checkpoints`;
}

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

/** The transparency layer attached to one live logger. Emits 'checkpoint' (CheckpointInfo) and 'error'. */
export class Transparency extends EventEmitter {
  readonly origin: string;
  readonly dir: string;
  #source: TransparencySource;
  #opts: Required<Pick<TransparencyOptions, 'everyRecords' | 'everyMs' | 'recordEvents'>> &
    TransparencyOptions;
  #store: FileNodeStore;
  #tree: MerkleTree;
  #buffered: DurableRecord[] | undefined = [];
  #lastCheckpointSize = 0;
  #lastOwnEventSeq = -1;
  #inFlight: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #caughtUp = 0;
  #onDurable = (recs: ReadonlyArray<DurableRecord>) => this.#handleDurable(recs);
  #onClose = () => this.#handleClose();

  private constructor(
    source: TransparencySource,
    opts: TransparencyOptions,
    store: FileNodeStore,
    tree: MerkleTree,
  ) {
    super();
    this.#source = source;
    this.dir = source.dir;
    this.origin = opts.origin ?? `vramseal/${source.serviceId}`;
    this.#opts = { everyRecords: 10_000, everyMs: 30_000, recordEvents: true, ...opts };
    this.#store = store;
    this.#tree = tree;
  }

  /**
   * Opens (or creates) the trail's tree, catches up with the records on disk and starts following the
   * logger. Throws `TLOG_CORRUPT` / `TLOG_TRAIL_MISMATCH` when the stored tree and the trail disagree.
   */
  static async attach(source: TransparencySource, opts: TransparencyOptions): Promise<Transparency> {
    if (!opts?.signer) throw new TlogError('TLOG_BAD_INPUT', 'transparency: signer is required');
    const everyRecords = opts.everyRecords ?? 10_000;
    if (!Number.isSafeInteger(everyRecords) || everyRecords < 1) {
      throw new TlogError('TLOG_BAD_INPUT', 'transparency: everyRecords must be an integer >= 1');
    }
    if (opts.everyMs !== undefined && (!Number.isFinite(opts.everyMs) || opts.everyMs < 0)) {
      throw new TlogError('TLOG_BAD_INPUT', 'transparency: everyMs must be >= 0');
    }
    if (opts.witnessDir !== undefined) ensurePrivateDir(opts.witnessDir);
    const store = FileNodeStore.open(source.dir);
    let tree: MerkleTree;
    try {
      tree = new MerkleTree(store);
    } catch (err) {
      store.close();
      throw err;
    }
    const t = new Transparency(source, opts, store, tree);
    // Listen first, buffer while catching up: nothing durable in between can be missed.
    source.on('durable', t.#onDurable as (...args: never[]) => void);
    source.on('close', t.#onClose);
    try {
      await t.#catchUp();
    } catch (err) {
      t.#detach();
      store.close();
      throw err;
    }
    t.#lastCheckpointSize = t.#tree.size === store.durableSize ? store.durableSize : -1;
    if (t.#opts.everyMs > 0) {
      t.#timer = setInterval(() => t.#onTimer(), t.#opts.everyMs);
      t.#timer.unref();
    }
    return t;
  }

  /** Current number of leaves (= last seq in the tree). */
  get size(): number {
    return this.#tree.size;
  }

  /** Current root hash. */
  root(): Buffer {
    return this.#tree.root();
  }

  /** The live tree (read access for proofs). */
  get tree(): MerkleTree {
    return this.#tree;
  }

  /** Records re-read from the trail on attach (0 after a clean shutdown: nothing is rehashed). */
  get caughtUp(): number {
    return this.#caughtUp;
  }

  async #catchUp(): Promise<void> {
    for (;;) {
      this.#caughtUp += await catchUpFromTrail(this.dir, this.#tree);
      const buf = this.#buffered ?? [];
      // Records already on disk were appended by the catch-up; a gap means more landed meanwhile.
      const next = buf.find((r) => r.seq > this.#tree.size);
      if (next && next.seq !== this.#tree.size + 1) {
        this.#buffered = buf.filter((r) => r.seq > this.#tree.size);
        continue;
      }
      this.#buffered = undefined;
      this.#appendAll(buf);
      return;
    }
  }

  #handleDurable(recs: ReadonlyArray<DurableRecord>): void {
    if (this.#closed) return;
    if (this.#buffered) {
      for (const r of recs) this.#buffered.push({ seq: r.seq, hash: r.hash });
      return;
    }
    this.#appendAll(recs);
  }

  #appendAll(recs: ReadonlyArray<DurableRecord>): void {
    try {
      for (const r of recs) {
        if (r.seq <= this.#tree.size) continue;
        if (r.seq !== this.#tree.size + 1) {
          throw new TlogError(
            'TLOG_TRAIL_MISMATCH',
            `transparency: record ${r.seq} arrived after ${this.#tree.size}`,
          );
        }
        this.#tree.appendRecordHash(r.hash);
      }
      if (this.#store.count(0) - this.#store.durableSize > MAX_PENDING_NODES) this.#store.flush();
    } catch (err) {
      this.#fail(err);
      return;
    }
    if (this.#tree.size - this.#lastCheckpointSize >= this.#opts.everyRecords) this.#checkpointAsync();
  }

  #onTimer(): void {
    const size = this.#tree.size;
    if (size === this.#lastCheckpointSize) return;
    // Only our own audit.checkpoint record arrived since the last checkpoint: nothing to commit to.
    if (size === this.#lastOwnEventSeq && size === this.#lastCheckpointSize + 1) return;
    this.#checkpointAsync();
  }

  /** Writes a checkpoint of the current tree now (waits for one in flight first). */
  async checkpoint(): Promise<CheckpointInfo | undefined> {
    while (this.#inFlight) await this.#inFlight;
    if (this.#closed) return undefined;
    return this.#writeCheckpoint(true);
  }

  #checkpointAsync(): void {
    if (this.#inFlight || this.#closed) return;
    this.#inFlight = this.#writeCheckpoint(true)
      .then(
        () => undefined,
        (err) => this.#fail(err),
      )
      .finally(() => {
        this.#inFlight = undefined;
        // Records that arrived while it was written may already call for the next one.
        if (!this.#closed && this.#tree.size - this.#lastCheckpointSize >= this.#opts.everyRecords) {
          this.#checkpointAsync();
        }
      });
  }

  async #writeCheckpoint(recordEvent: boolean): Promise<CheckpointInfo | undefined> {
    const size = this.#tree.size;
    const root = this.#tree.root();
    const time = (this.#opts.now?.() ?? new Date()).toISOString();
    this.#lastCheckpointSize = size;
    await this.#store.syncWithRootAsync(root);
    if (this.#closed) return undefined; // the close checkpoint (same or larger size) superseded this one
    const note = signCheckpoint({ origin: this.origin, size, root, time }, this.#opts.signer);
    await appendDurable(join(this.dir, CHECKPOINTS_FILE), `${note}\n`);
    if (this.#opts.witnessDir) {
      await appendDurable(join(this.#opts.witnessDir, witnessFileName(this.origin)), `${note}\n`);
    }
    const info: CheckpointInfo = { size, root, note, time };
    if (recordEvent && this.#opts.recordEvents) this.#recordEvent(info);
    this.emit('checkpoint', info);
    return info;
  }

  #recordEvent(info: CheckpointInfo): void {
    const emit = this.#source.emit;
    if (typeof emit !== 'function') return;
    try {
      const receipt = emit.call(this.#source, {
        type: 'audit.checkpoint',
        timestamp: info.time,
        tree_size: info.size,
        root_hash: info.root.toString('hex'),
        checkpoint_hash: sha256Hex(info.note),
      }) as { seq?: unknown; durable?: Promise<unknown> } | undefined;
      if (receipt && typeof receipt.seq === 'number') this.#lastOwnEventSeq = receipt.seq;
      receipt?.durable?.catch?.(() => {});
    } catch (err) {
      this.#fail(err);
    }
  }

  #handleClose(): void {
    if (this.#closed) return;
    try {
      if (this.#buffered === undefined && this.#tree.size !== this.#lastCheckpointSize) {
        // Synchronous: the logger releases its lock right after 'close'.
        const size = this.#tree.size;
        const root = this.#tree.root();
        const time = (this.#opts.now?.() ?? new Date()).toISOString();
        this.#store.syncWithRoot(root);
        const note = signCheckpoint({ origin: this.origin, size, root, time }, this.#opts.signer);
        appendDurableSync(join(this.dir, CHECKPOINTS_FILE), `${note}\n`);
        if (this.#opts.witnessDir)
          appendDurableSync(join(this.#opts.witnessDir, witnessFileName(this.origin)), `${note}\n`);
        this.#lastCheckpointSize = size;
        this.emit('checkpoint', { size, root, note, time } satisfies CheckpointInfo);
      } else {
        this.#store.syncWithRoot(this.#tree.root());
      }
    } catch (err) {
      this.#fail(err);
    } finally {
      this.#shutdown();
    }
  }

  /** Stops following the logger without a final checkpoint (the logger's close writes one normally). */
  async detach(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
    if (this.#closed) return;
    try {
      this.#store.syncWithRoot(this.#tree.root());
    } finally {
      this.#shutdown();
    }
  }

  #shutdown(): void {
    this.#closed = true;
    this.#detach();
    this.#store.close();
  }

  #detach(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const off = this.#source.off;
    if (typeof off === 'function') {
      off.call(this.#source, 'durable', this.#onDurable as (...args: never[]) => void);
      off.call(this.#source, 'close', this.#onClose);
    }
  }

  #fail(err: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#opts.logger?.error({ err }, 'vramseal transparency: checkpoint failed');
  }
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

const APPEND_FLAGS =
  fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW;

async function appendDurable(path: string, text: string): Promise<void> {
  const created = !fs.existsSync(path);
  const fh = await fs.promises.open(path, APPEND_FLAGS, 0o600);
  try {
    await fh.write(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  if (created) fsyncDir(dirname(path));
}

function appendDurableSync(path: string, text: string): void {
  const created = !fs.existsSync(path);
  const fd = fs.openSync(path, APPEND_FLAGS, 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  if (created) fsyncDir(dirname(path));
}
