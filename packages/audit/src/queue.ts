/**
 * The writer's in-memory queue of records between `emit` and the disk, and the receipts `emit` returns.
 *
 * A {@link PendingRecord} is both the queue entry and the caller's receipt: one allocation per event.
 * Its `durable` promise is created lazily, on first access, so events nobody awaits cost no promise;
 * it is created with a no-op rejection handler attached, so an un-awaited receipt can never cause an
 * unhandled rejection (awaiting it still sees the rejection).
 */
import { inspect } from 'node:util';
import type { SealedRecord } from './trail-writer.js';
import { AuditDroppedError } from './writer-errors.js';

/** What `emit` returns. */
export interface AuditReceipt {
  /** The record's seq (0 when the event was not recorded: disabled mode, or dropped). */
  readonly seq: number;
  /** The record's audit_id ('' when not recorded). */
  readonly auditId: string;
  /** True when the event was dropped because the queue was full (see `queue.onFull`). */
  readonly dropped: boolean;
  /**
   * Settles when the record is durable (written and fdatasync'ed): resolves, or rejects with
   * AuditDroppedError (dropped) or AuditUnavailableError (the logger closed without being able to write it).
   */
  readonly durable: Promise<void>;
}

const noop = () => {};
const RESOLVED: Promise<void> = Promise.resolve();

/**
 * Counts receipts whose `durable` promise was requested and is still pending, so the logger can keep
 * its (normally unref'd) flush timers referenced while somebody may be awaiting one.
 */
export interface AwaitTracker {
  waiting: number;
  changed(): void;
}

const PENDING = 0;
const DONE = 1;
const FAILED = 2;

/**
 * Off-heap storage for the canonical JSON of queued events. A backlog of queued records would
 * otherwise be hundreds of bytes of string per record that every young-generation GC has to copy;
 * in 1 MiB slabs (external memory) it costs the GC nothing. A slab is freed once no unsealed record
 * refers to it (records drop their reference when sealed).
 */
export class EventArena {
  static readonly SLAB_BYTES = 1 << 20;
  slab: Buffer = Buffer.alloc(0); // first slab on first use
  off = 0;
  /** Makes room for `maxBytes` more bytes. */
  reserve(maxBytes: number): void {
    if (this.off + maxBytes > this.slab.length) {
      this.slab = Buffer.allocUnsafe(Math.max(EventArena.SLAB_BYTES, maxBytes));
      this.off = 0;
    }
  }
}

/** A queued record; also the receipt handed to the caller. */
export class PendingRecord implements AuditReceipt, SealedRecord {
  readonly seq: number;
  readonly auditId: string;
  readonly time: string;
  readonly critical: boolean;
  /** Bytes this record holds in the queue (event JSON in UTF-8 + envelope overhead), for `queue.maxBytes`. */
  readonly cost: number;
  /** Set when sealed into the chain (just before the first write attempt). */
  hash = '';
  /** The sealed line's bytes (with its `\n`): `len` bytes of `buf` from `off`; released once durable. */
  buf: Buffer | null = null;
  off = 0;
  len = 0;
  /** The event's canonical JSON: in an arena slab, or as a string when no arena is used. */
  #slab: Buffer | null;
  #off: number;
  #len: number;
  #json: string;
  #state = PENDING;
  #promise: Promise<void> | undefined = undefined;
  #resolve: (() => void) | undefined = undefined;
  #reject: ((e: unknown) => void) | undefined = undefined;
  #error: unknown = undefined;
  readonly #tracker: AwaitTracker;

  constructor(
    seq: number,
    auditId: string,
    time: string,
    eventJson: string,
    critical: boolean,
    overhead: number,
    tracker: AwaitTracker,
    arena?: EventArena,
  ) {
    this.#tracker = tracker;
    this.seq = seq;
    this.auditId = auditId;
    this.time = time;
    this.critical = critical;
    if (arena) {
      arena.reserve(eventJson.length * 3); // UTF-8 needs at most 3 bytes per UTF-16 code unit
      this.#slab = arena.slab;
      this.#off = arena.off;
      this.#len = arena.slab.write(eventJson, arena.off);
      arena.off += this.#len;
      this.#json = '';
    } else {
      this.#slab = null;
      this.#off = 0;
      this.#len = Buffer.byteLength(eventJson);
      this.#json = eventJson;
    }
    this.cost = this.#len + overhead;
  }

  /** The stored line without its `\n` ('' once released). */
  get line(): string {
    return this.buf === null ? '' : this.buf.toString('utf8', this.off, this.off + this.len - 1);
  }

  /** Stores the sealed line (UTF-8 + `\n`) in `arena`. */
  setLine(line: string, arena: EventArena): void {
    arena.reserve(line.length * 3 + 1);
    const b = arena.slab;
    const n = b.write(line, arena.off);
    b[arena.off + n] = 0x0a;
    this.buf = b;
    this.off = arena.off;
    this.len = n + 1;
    arena.off += n + 1;
  }

  /** UTF-8 byte length of the event's canonical JSON. */
  get eventBytes(): number {
    return this.#len;
  }

  /** Copies the event JSON's UTF-8 bytes into `dst` at `at` (to seal it elsewhere). */
  copyEventTo(dst: Buffer, at: number): void {
    if (this.#slab !== null) this.#slab.copy(dst, at, this.#off, this.#off + this.#len);
    else dst.write(this.#json, at);
  }

  /** Drops the event JSON (after sealing elsewhere). */
  releaseEvent(): void {
    this.#slab = null;
    this.#json = '';
  }

  /** The event's canonical JSON, handed over once (when the record is sealed) and then released. */
  takeEventJson(): string {
    if (this.#slab !== null) {
      const s = this.#slab.toString('utf8', this.#off, this.#off + this.#len);
      this.#slab = null;
      return s;
    }
    const s = this.#json;
    this.#json = '';
    return s;
  }

  get dropped(): boolean {
    return false;
  }

  /** A receipt serializes as what it tells the caller (never the queue's buffers). */
  toJSON(): { seq: number; auditId: string; dropped: boolean } {
    return { seq: this.seq, auditId: this.auditId, dropped: false };
  }

  [inspect.custom](): string {
    return `AuditReceipt { seq: ${this.seq}, auditId: '${this.auditId}' }`;
  }

  get durable(): Promise<void> {
    if (this.#promise === undefined) {
      if (this.#state === DONE) this.#promise = RESOLVED;
      else if (this.#state === FAILED) {
        this.#promise = Promise.reject(this.#error);
        this.#promise.catch(noop);
      } else {
        this.#promise = new Promise<void>((res, rej) => {
          this.#resolve = res;
          this.#reject = rej;
        });
        this.#promise.catch(noop);
        this.#tracker.waiting++;
        if (this.#tracker.waiting === 1) this.#tracker.changed();
      }
    }
    return this.#promise;
  }

  #untrack(): void {
    this.#tracker.waiting--;
    if (this.#tracker.waiting === 0) this.#tracker.changed();
  }

  /** True once settled (durable or failed). */
  get settled(): boolean {
    return this.#state !== PENDING;
  }

  /** Marks the record durable. */
  settle(): void {
    if (this.#state !== PENDING) return;
    this.#state = DONE;
    if (this.#resolve) {
      this.#resolve();
      this.#untrack();
    }
  }

  /** Marks the record as never to be written. */
  fail(err: unknown): void {
    if (this.#state !== PENDING) return;
    this.#state = FAILED;
    this.#error = err;
    if (this.#reject) {
      this.#reject(err);
      this.#untrack();
    }
  }
}

/** Receipt of a dropped event. */
export class DroppedReceipt implements AuditReceipt {
  readonly seq = 0;
  readonly auditId = '';
  readonly dropped = true;
  readonly #type: string;
  readonly #reason: string;
  #promise: Promise<void> | undefined;
  constructor(type: string, reason: string) {
    this.#type = type;
    this.#reason = reason;
  }
  get durable(): Promise<void> {
    if (!this.#promise) {
      this.#promise = Promise.reject(new AuditDroppedError(this.#type, this.#reason));
      this.#promise.catch(noop);
    }
    return this.#promise;
  }
}

/** Receipt of `disabled` mode: nothing recorded, `durable` already resolved. */
export const DISABLED_RECEIPT: AuditReceipt = Object.freeze({
  seq: 0,
  auditId: '',
  dropped: false,
  durable: RESOLVED,
});

/**
 * FIFO of pending records, in seq order. Records stay in it until durable: the writer reads a batch
 * from the head with {@link peek}, and removes what was made durable with {@link shift}.
 * Array + head index (no O(n) `Array#shift`), compacted as the head advances.
 */
export class RecordQueue {
  #a: PendingRecord[] = [];
  #head = 0;
  /** Sum of the queued records' `cost`. */
  bytes = 0;
  /** Highest depth seen. */
  highWater = 0;

  get length(): number {
    return this.#a.length - this.#head;
  }

  push(r: PendingRecord): void {
    this.#a.push(r);
    this.bytes += r.cost;
    const n = this.#a.length - this.#head;
    if (n > this.highWater) this.highWater = n;
  }

  /** The oldest record, if any. */
  first(): PendingRecord | undefined {
    return this.#a[this.#head];
  }

  /** Up to `max` oldest records (not removed), skipping the first `skip`. */
  peek(max: number, skip = 0): PendingRecord[] {
    return this.#a.slice(this.#head + skip, this.#head + skip + max);
  }

  /** Removes and returns the oldest record. */
  shift(): PendingRecord | undefined {
    if (this.#head >= this.#a.length) return undefined;
    const r = this.#a[this.#head] as PendingRecord;
    (this.#a as (PendingRecord | undefined)[])[this.#head] = undefined;
    this.#head++;
    this.bytes -= r.cost;
    if (this.#head === this.#a.length) {
      this.#a = [];
      this.#head = 0;
      this.bytes = 0;
    } else if (this.#head >= 4096 && this.#head * 2 >= this.#a.length) {
      this.#a = this.#a.slice(this.#head);
      this.#head = 0;
    }
    return r;
  }

  /** Removes and returns everything. */
  drain(): PendingRecord[] {
    const out = this.#a.slice(this.#head);
    this.#a = [];
    this.#head = 0;
    this.bytes = 0;
    return out;
  }
}
