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
import { CHECKPOINTS_FILE, signCheckpoint } from './checkpoint.js';
import { TlogError } from './errors.js';
import type { SignerKey } from './keys.js';
import { ensurePrivateDir, fsyncDir, removeStoredTree } from './store.js';
import { LocalTreeHost, type TreeHead, type TreeHost } from './tree-host.js';
import { WorkerTreeHost } from './worker-host.js';

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
  /**
   * Hash and store the tree in a worker thread (default true): the logger's thread then only hands
   * each durable batch's hashes over (README has the measured cost of both). `false` keeps the tree in
   * this thread. A worker that cannot start falls back to this thread with a warning.
   */
  worker?: boolean;
  /**
   * Discard the stored tree (`tlog/`, not the checkpoints) and rebuild it from the trail: the way out of
   * `TLOG_CORRUPT` (damaged level files). It re-reads and re-hashes the whole trail. Checkpoints signed
   * before still check the rebuilt tree: a trail changed since then shows as `history_rewritten`.
   */
  rebuild?: boolean;
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

/** File name of a trail's checkpoints in a witness directory. */
export function witnessFileName(origin: string): string {
  return `${origin.replace(/[^A-Za-z0-9._-]/g, '_')}.checkpoints`;
}

/** The transparency layer attached to one live logger. Emits 'checkpoint' (CheckpointInfo) and 'error'. */
export class Transparency extends EventEmitter {
  readonly origin: string;
  readonly dir: string;
  #source: TransparencySource;
  #opts: Required<Pick<TransparencyOptions, 'everyRecords' | 'everyMs' | 'recordEvents'>> &
    TransparencyOptions;
  #host: TreeHost;
  /** Records seen before the host was ready. */
  #buffered: DurableRecord[] | undefined = [];
  /** Highest seq handed to the tree. */
  #size = 0;
  #lastCheckpointSize = 0;
  #lastOwnEventSeq = -1;
  #inFlight: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #caughtUp = 0;
  #onDurable = (recs: ReadonlyArray<DurableRecord>) => this.#handleDurable(recs);
  #onClose = () => this.#handleClose();

  private constructor(source: TransparencySource, opts: TransparencyOptions, host: TreeHost) {
    super();
    this.#source = source;
    this.dir = source.dir;
    this.origin = opts.origin ?? `vramseal/${source.serviceId}`;
    this.#opts = { everyRecords: 10_000, everyMs: 30_000, recordEvents: true, ...opts };
    this.#host = host;
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
    if (opts.rebuild === true) removeStoredTree(source.dir);
    let host: TreeHost =
      opts.worker === false ? new LocalTreeHost(source.dir) : new WorkerTreeHost(source.dir);
    const t = new Transparency(source, opts, host);
    // Listen first, buffer while catching up: nothing durable in between can be missed.
    source.on('durable', t.#onDurable as (...args: never[]) => void);
    source.on('close', t.#onClose);
    let started: { size: number; caughtUp: number };
    try {
      try {
        started = await host.start();
      } catch (err) {
        // A worker that cannot start (not a problem with the tree itself): keep the tree in this thread.
        if (err instanceof TlogError || opts.worker === false) throw err;
        opts.logger?.warn(
          { err },
          'vramseal transparency: tree worker did not start; hashing in this thread',
        );
        await host.close().catch(() => {});
        host = new LocalTreeHost(source.dir);
        t.#host = host;
        started = await host.start();
      }
    } catch (err) {
      t.#closed = true;
      t.#detach();
      await host.close().catch(() => {});
      throw err;
    }
    t.#size = started.size;
    t.#caughtUp = started.caughtUp;
    t.#lastCheckpointSize = started.caughtUp === 0 ? started.size : -1;
    const buf = t.#buffered ?? [];
    t.#buffered = undefined;
    t.#appendAll(buf);
    if (t.#opts.everyMs > 0) {
      t.#timer = setInterval(() => t.#onTimer(), t.#opts.everyMs);
      t.#timer.unref();
    }
    return t;
  }

  /** Number of records handed to the tree (= last seq once they are hashed). */
  get size(): number {
    return this.#size;
  }

  /** Records re-read from the trail on attach (0 after a clean shutdown: nothing is rehashed). */
  get caughtUp(): number {
    return this.#caughtUp;
  }

  /** Makes the tree durable and returns its current size and root. */
  head(): Promise<TreeHead> {
    return this.#host.sync();
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
    // One string per run of consecutive seqs: the whole per-record cost on the logger's thread.
    let first = -1;
    let next = -1;
    let hex = '';
    for (const r of recs) {
      if (r.seq <= this.#size) continue;
      if (r.seq !== next) {
        if (hex) this.#host.append(first, hex);
        first = r.seq;
        hex = '';
      }
      hex += r.hash;
      next = r.seq + 1;
      this.#size = r.seq;
    }
    if (hex) this.#host.append(first, hex);
    if (this.#size - this.#lastCheckpointSize >= this.#opts.everyRecords) this.#checkpointAsync();
  }

  #onTimer(): void {
    const size = this.#size;
    if (size === this.#lastCheckpointSize) return;
    // Only our own audit.checkpoint record arrived since the last checkpoint: nothing to commit to.
    if (size === this.#lastOwnEventSeq && size === this.#lastCheckpointSize + 1) return;
    this.#checkpointAsync();
  }

  /** Writes a checkpoint of the current tree now (after one in flight). */
  async checkpoint(): Promise<CheckpointInfo | undefined> {
    while (this.#inFlight) await this.#inFlight;
    if (this.#closed) return undefined;
    return this.#writeCheckpoint();
  }

  #checkpointAsync(): void {
    if (this.#inFlight || this.#closed) return;
    this.#lastCheckpointSize = this.#size;
    this.#inFlight = this.#writeCheckpoint()
      .then(
        () => undefined,
        (err) => {
          if (!this.#closed) this.#fail(err); // after close, the final checkpoint superseded it
        },
      )
      .finally(() => {
        this.#inFlight = undefined;
        // Records that arrived while it was written may already call for the next one.
        if (!this.#closed && this.#size - this.#lastCheckpointSize >= this.#opts.everyRecords) {
          this.#checkpointAsync();
        }
      });
  }

  async #writeCheckpoint(): Promise<CheckpointInfo | undefined> {
    const head = await this.#host.sync();
    if (this.#closed) return undefined; // the close checkpoint (same or larger size) superseded this one
    this.#lastCheckpointSize = Math.max(this.#lastCheckpointSize, head.size);
    const info = this.#sign(head);
    await appendDurable(join(this.dir, CHECKPOINTS_FILE), `${info.note}\n`);
    if (this.#opts.witnessDir) {
      await appendDurable(join(this.#opts.witnessDir, witnessFileName(this.origin)), `${info.note}\n`);
    }
    if (this.#opts.recordEvents && !this.#closed) this.#recordEvent(info);
    this.emit('checkpoint', info);
    return info;
  }

  #sign(head: TreeHead): CheckpointInfo {
    const time = (this.#opts.now?.() ?? new Date()).toISOString();
    const note = signCheckpoint(
      { origin: this.origin, size: head.size, root: head.root, time },
      this.#opts.signer,
    );
    return { size: head.size, root: head.root, note, time };
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
      // The logger is closing (its final checkpoint follows on 'close') or cannot write: not ours to raise.
      if ((err as { code?: string }).code === 'AUDIT_UNAVAILABLE') {
        this.#opts.logger?.warn({ err }, 'vramseal transparency: audit.checkpoint not recorded');
        return;
      }
      this.#fail(err);
    }
  }

  #handleClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#detach();
    if (this.#buffered !== undefined) return; // still starting: attach() fails or finishes on its own
    try {
      // Synchronous: the logger releases its lock right after 'close'.
      const head = this.#host.closeSync();
      if (head.size !== this.#lastCheckpointSize) {
        const info = this.#sign(head);
        appendDurableSync(join(this.dir, CHECKPOINTS_FILE), `${info.note}\n`);
        if (this.#opts.witnessDir) {
          appendDurableSync(join(this.#opts.witnessDir, witnessFileName(this.origin)), `${info.note}\n`);
        }
        this.#lastCheckpointSize = head.size;
        this.emit('checkpoint', info);
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  /** Stops following the logger without a final checkpoint (the logger's close writes one normally). */
  async detach(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
    if (this.#closed) return;
    this.#closed = true;
    this.#detach();
    await this.#host.close();
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
