/**
 * AuditLogger: the trail writer (issue 2; FORMAT.md §Flush, §Queue).
 *
 * Data flows one way: `emit(event)` → validate → canonical event JSON → seq + audit_id + time →
 * queue → (writer turn) seal into the hash chain (+ MAC) → one write → fdatasync → receipts resolve,
 * `durable` listeners are told. `emit` does no I/O and never waits: everything after the queue runs
 * on a later turn of the event loop, one batch at a time (group commit).
 *
 * Modes: `disabled` (no-op, `emit` returns a constant receipt), `local` (files in `dir`), `platform`
 * (local files + the platform shipper, attached with `platform` options).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Logger, pino } from 'pino';
import { type Clock, Rfc3339Cache, systemClock } from './clock.js';
import { AuditUnavailableError } from './errors.js';
import { type AuditEvent, isCriticalEvent } from './events.js';
import { type AuditFs, nodeFs } from './fs.js';
import { MacKey } from './mac-key.js';
import type { Manifest } from './manifest.js';
import type { PlatformOptions } from './platform/attach.js';
import type { Shipper, ShipperStatus } from './platform/shipper.js';
import {
  type AuditReceipt,
  type AwaitTracker,
  DISABLED_RECEIPT,
  DroppedReceipt,
  EventArena,
  PendingRecord,
  RecordQueue,
} from './queue.js';
import { type RotationOptions, RotationPolicy } from './rotation.js';
import { WorkerSealer } from './seal-worker.js';
import { RecordSealer } from './sealer.js';
import { FileTrail, TrailIoError } from './trail-writer.js';
import { validateEventJson } from './validate.js';
import { AuditConfigError } from './writer-errors.js';

export type AuditMode = 'disabled' | 'local' | 'platform';

/** When records are written and fdatasync'ed (FORMAT.md §Flush). */
export type FlushOptions =
  | { mode: 'immediate' }
  | { mode: 'batched' | 'hybrid'; maxEvents?: number; maxDelayMs?: number };

export interface QueueOptions {
  /** Soft limit on queued (not yet durable) records. Default 100 000. */
  maxEvents?: number;
  /** Soft limit on queued bytes (approximate: event JSON + envelope). Default 64 MiB. */
  maxBytes?: number;
  /**
   * What happens to a routine event when the queue is at its limit:
   *  - `'wait'` (default): it is still accepted, up to a hard cap of twice the limits; callers that
   *    await `durable` (or `ready()`) are slowed down to the disk's pace; beyond the hard cap it is dropped.
   *  - `'drop'`: it is dropped at the limit.
   * Critical events are never dropped. Each drop is counted and recorded as `audit.events_dropped`.
   */
  onFull?: 'wait' | 'drop';
}

export interface AuditLoggerOptions {
  mode: AuditMode;
  /** Trail directory (required unless `disabled`). Created 0700; a symlink is refused. */
  dir?: string;
  /** The emitting service (required unless `disabled`); stored in every record. */
  serviceId?: string;
  /** Default `{ mode: 'hybrid', maxEvents: 512, maxDelayMs: 200 }`. */
  flush?: FlushOptions;
  /** HMAC-SHA256 key (≥ 16 bytes); see `loadMacKey`. Copied; never logged. */
  macKey?: Uint8Array;
  rotation?: RotationOptions;
  queue?: QueueOptions;
  /** When true, `emit` throws AuditUnavailableError while the trail cannot be written. */
  failClosed?: boolean;
  clock?: Clock;
  /** Operational (non-audit) log; default: pino at level `warn` to stderr. */
  logger?: Logger;
  /** `platform` mode: options of the platform shipper (see platform/attach.ts). */
  platform?: PlatformOptions;
  /** File-system layer (tests inject failures). */
  fs?: AuditFs;
  /** Retry delays after an I/O error: first, and maximum (doubling). Default 50 ms, 5 s. */
  retry?: { initialMs?: number; maxMs?: number };
  /** How long `close()` keeps retrying to write queued records. Default 10 s. */
  closeTimeoutMs?: number;
  /** Most records per write. Default 8192. */
  maxBatchEvents?: number;
  /**
   * Where records are hashed and MACed: `'main'` (default) or `'worker'` (a worker thread, so the
   * crypto runs on another core; same bytes — the worker checks itself against `sealRecord` at start,
   * and the logger falls back to the main thread if the worker fails). Default: `'main'`, or the
   * environment variable `VRAMSEAL_AUDIT_SEALER=worker`.
   */
  sealer?: 'main' | 'worker';
}

export type HealthState = 'ok' | 'degraded' | 'unavailable';

export interface AuditHealth {
  /** `ok`; `degraded`: queue over its limit or events dropped since the last report; `unavailable`: the last write failed (or closed). */
  state: HealthState;
  lastError?: string;
  /** Records emitted but not yet durable. */
  queueDepth: number;
  queueBytes: number;
  /** Last durable seq; last assigned seq. */
  lastSeq: number;
  assignedSeq: number;
  /** Events dropped and not yet recorded as `audit.events_dropped`. */
  droppedPending: number;
  closed: boolean;
  /** Platform mode: the shipper's status (backlog, last acknowledged seq, last error). */
  platform?: ShipperStatus;
}

export interface AuditStats {
  emitted: number;
  written: number;
  dropped: number;
  rejected: number;
  ioErrors: number;
  batches: number;
  writes: number;
  fsyncs: number;
  fsyncAvgMs: number;
  fsyncMaxMs: number;
  bytesWritten: number;
  rotations: number;
  truncations: number;
  recovered: number;
  queueHighWater: number;
}

/** A record as the `durable` event reports it. */
export interface DurableRecord {
  seq: number;
  hash: string;
  /** The stored line, without its trailing newline. */
  line: string;
}

const DEFAULT_FLUSH: FlushOptions = { mode: 'hybrid', maxEvents: 512, maxDelayMs: 200 };
const M_IMMEDIATE = 0;
const M_BATCHED = 1;
const M_HYBRID = 2;

const defaultLogger = (): Logger =>
  pino(
    { name: 'vramseal-audit', level: process.env.VRAMSEAL_AUDIT_LOG_LEVEL ?? 'warn' },
    pino.destination({ dest: 2, sync: true }),
  );

function posInt(v: number | undefined, def: number, option: string, min = 1): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v < min) throw new AuditConfigError(option, `must be an integer ≥ ${min}`);
  return v;
}

function errInfo(e: unknown): { operation: string; code: string; message: string } {
  if (e instanceof TrailIoError) return { operation: e.operation, code: e.errno, message: e.message };
  const code = (e as NodeJS.ErrnoException)?.code;
  return {
    operation: 'write',
    code: typeof code === 'string' ? code : 'ERROR',
    message: String((e as Error)?.message ?? e),
  };
}

/**
 * The audit trail writer. Create with {@link AuditLogger.open}.
 *
 * Events: `'durable'` (records, after fdatasync, in seq order), `'error'` (I/O errors; records stay
 * queued and are retried), `'close'` (after the final flush, before the lock is released).
 */
export class AuditLogger {
  readonly mode: AuditMode;
  readonly dir: string;
  readonly serviceId: string;

  readonly #disabled: boolean;
  readonly #trail: FileTrail | null;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #time = new Rfc3339Cache();
  readonly #macKey: MacKey | undefined;
  readonly #sealer: RecordSealer | null;
  #workerSealer: WorkerSealer | null = null;
  /** Platform mode: the shipper attached at open (stopped on close, before the lock is released). */
  #shipper: Shipper | null = null;
  #sealInFlight: Promise<void> | null = null;
  readonly #flushMode: number;
  readonly #batchEvents: number;
  readonly #batchDelay: number;
  readonly #qMaxEvents: number;
  readonly #qMaxBytes: number;
  readonly #qHardEvents: number;
  readonly #qHardBytes: number;
  readonly #failClosed: boolean;
  readonly #overhead: number;
  readonly #retryInitial: number;
  readonly #retryMax: number;
  readonly #closeTimeoutMs: number;
  readonly #maxBatch: number;

  readonly #q = new RecordQueue();
  readonly #arena = new EventArena();
  /** Sealed lines, encoded once, written from here (no per-line strings kept alive). */
  readonly #lineArena = new EventArena();
  #assignedSeq: number;
  #chainHash: string;
  #lastSeq: number;
  #lastHash: string;
  #urgentSeq = 0;
  #writing = false;
  #kickPending = false;
  #loopPromise: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #backoff: NodeJS.Timeout | null = null;
  #retryDelay: number;
  #unavailable = false;
  #lastError: string | undefined;
  #outage: { operation: string; code: string; message: string; attempts: number } | null = null;
  #closing = false;
  #closed = false;
  #closePromise: Promise<void> | null = null;
  #flushWaiters: { seq: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #readyWaiters: (() => void)[] = [];
  #drops: { count: number; first: number; last: number } | null = null;
  #beforeExit: (() => void) | null = null;
  #s = {
    emitted: 0,
    written: 0,
    dropped: 0,
    rejected: 0,
    ioErrors: 0,
    batches: 0,
    recovered: 0,
  };

  readonly #ee = new EventEmitter();

  private constructor(o: AuditLoggerOptions, trail: FileTrail | null, log: Logger) {
    this.mode = o.mode;
    this.#disabled = o.mode === 'disabled';
    this.dir = o.dir ?? '';
    this.serviceId = o.serviceId ?? '';
    this.#trail = trail;
    this.#log = log;
    this.#clock = o.clock ?? systemClock;
    this.#macKey = o.macKey ? MacKey.copyOf(o.macKey) : undefined;
    this.#sealer = trail ? new RecordSealer(this.serviceId, this.#macKey) : null;
    const f = o.flush ?? DEFAULT_FLUSH;
    this.#flushMode = f.mode === 'immediate' ? M_IMMEDIATE : f.mode === 'batched' ? M_BATCHED : M_HYBRID;
    this.#batchEvents = f.mode === 'immediate' ? 1 : posInt(f.maxEvents, 512, 'flush.maxEvents');
    this.#batchDelay = f.mode === 'immediate' ? 0 : posInt(f.maxDelayMs, 200, 'flush.maxDelayMs', 0);
    const q = o.queue ?? {};
    this.#qMaxEvents = posInt(q.maxEvents, 100_000, 'queue.maxEvents');
    this.#qMaxBytes = posInt(q.maxBytes, 64 * 1024 * 1024, 'queue.maxBytes');
    // Never wait for the timer with a full queue.
    this.#batchEvents = Math.min(this.#batchEvents, this.#qMaxEvents);
    const wait = (q.onFull ?? 'wait') === 'wait';
    this.#qHardEvents = wait ? this.#qMaxEvents * 2 : this.#qMaxEvents;
    this.#qHardBytes = wait ? this.#qMaxBytes * 2 : this.#qMaxBytes;
    this.#failClosed = o.failClosed === true;
    this.#overhead = 300 + (this.#macKey ? 76 : 0);
    this.#retryInitial = posInt(o.retry?.initialMs, 50, 'retry.initialMs');
    this.#retryMax = posInt(o.retry?.maxMs, 5000, 'retry.maxMs');
    this.#retryDelay = this.#retryInitial;
    this.#closeTimeoutMs = posInt(o.closeTimeoutMs, 10_000, 'closeTimeoutMs', 0);
    this.#maxBatch = posInt(o.maxBatchEvents, 8192, 'maxBatchEvents');
    const resume = trail?.resume;
    this.#assignedSeq = resume?.seq ?? 0;
    this.#lastSeq = this.#assignedSeq;
    this.#chainHash = resume?.hash ?? '';
    this.#lastHash = this.#chainHash;
    const sealerKind = o.sealer ?? (process.env.VRAMSEAL_AUDIT_SEALER === 'worker' ? 'worker' : 'main');
    if (trail && sealerKind === 'worker') {
      this.#workerSealer = new WorkerSealer(this.serviceId, this.#macKey, this.#chainHash);
    }
  }

  /**
   * Opens a trail: checks options, prepares the directory, takes the writer lock (AuditLockedError if
   * another process holds it), reads the manifest, recovers the tail of the last file and resumes
   * the chain. Throws AuditConfigError / AuditCorruptError / AuditLockedError / I/O errors.
   */
  static async open(o: AuditLoggerOptions): Promise<AuditLogger> {
    if (o === null || typeof o !== 'object') throw new AuditConfigError('options', 'must be an object');
    if (o.mode !== 'disabled' && o.mode !== 'local' && o.mode !== 'platform') {
      throw new AuditConfigError('mode', "must be 'disabled', 'local' or 'platform'");
    }
    if (o.flush && !['immediate', 'batched', 'hybrid'].includes(o.flush.mode)) {
      throw new AuditConfigError('flush.mode', "must be 'immediate', 'batched' or 'hybrid'");
    }
    if (o.sealer !== undefined && o.sealer !== 'main' && o.sealer !== 'worker') {
      throw new AuditConfigError('sealer', "must be 'main' or 'worker'");
    }
    if (o.queue?.onFull !== undefined && o.queue.onFull !== 'wait' && o.queue.onFull !== 'drop') {
      throw new AuditConfigError('queue.onFull', "must be 'wait' or 'drop'");
    }
    const log = o.logger ?? defaultLogger();
    if (o.mode === 'disabled') return new AuditLogger(o, null, log);
    if (typeof o.dir !== 'string' || o.dir === '') throw new AuditConfigError('dir', 'is required');
    if (typeof o.serviceId !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(o.serviceId)) {
      throw new AuditConfigError('serviceId', 'must be 1–256 visible ASCII characters');
    }
    if (o.macKey !== undefined && (!(o.macKey instanceof Uint8Array) || o.macKey.length < 16)) {
      throw new AuditConfigError('macKey', 'must be a Uint8Array of at least 16 bytes');
    }
    if (o.mode === 'platform' && !o.platform) {
      throw new AuditConfigError('platform', "mode 'platform' needs the platform shipper options");
    }
    const rotation = new RotationPolicy(o.rotation);
    posInt(rotation.maxBytes, 0, 'rotation.maxBytes');
    const clock = o.clock ?? systemClock;
    const trail = await FileTrail.open({
      afs: o.fs ?? nodeFs,
      dir: o.dir,
      serviceId: o.serviceId,
      rotation,
      macKey: o.macKey,
      now: () => clock.now(),
      log,
    });
    let logger: AuditLogger;
    try {
      logger = new AuditLogger(o, trail, log);
    } catch (e) {
      await trail.close().catch(() => {});
      await trail.releaseLock().catch(() => {});
      throw e;
    }
    logger.#installExitHook();
    if (o.mode === 'platform' && o.platform) {
      try {
        const { attachShipper } = await import('./platform/attach.js');
        logger.#shipper = await attachShipper(logger, o.platform);
      } catch (e) {
        await logger.close().catch(() => {});
        throw e;
      }
    }
    for (const r of trail.recovered) {
      logger.#s.recovered++;
      log.warn({ dir: o.dir, ...r }, 'audit trail tail quarantined on restart');
      logger.#emitInternal({ type: 'audit.recovered', timestamp: logger.#nowIso(), ...r });
    }
    return logger;
  }

  /** Seq of the last durable record (0 for an empty trail). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Hash of the last durable record (GENESIS_HASH for an empty trail; '' when disabled). */
  get lastHash(): string {
    return this.#lastHash;
  }

  #nowIso(): string {
    return this.#time.format(this.#clock.now());
  }

  /**
   * Records an event. Validates it (throws AuditValidationError; nothing is recorded), assigns its seq
   * and audit_id, queues it and returns at once; no I/O happens on the caller's turn.
   * Throws AuditUnavailableError when closed, or with `failClosed` while the trail cannot be written.
   * Not awaiting `durable` is safe.
   */
  emit(event: AuditEvent): AuditReceipt {
    if (this.#disabled) return DISABLED_RECEIPT;
    if (this.#closing) throw new AuditUnavailableError('audit logger is closed');
    if (this.#unavailable && this.#failClosed) {
      this.#s.rejected++;
      throw new AuditUnavailableError(
        `audit trail unavailable (fail-closed): ${this.#lastError ?? 'I/O error'}`,
      );
    }
    const v = validateEventJson(event);
    const ev = v.event;
    const eventJson = v.json;
    const critical = isCriticalEvent(ev.type);
    const q = this.#q;
    if (
      !critical &&
      (q.length >= this.#qHardEvents || q.bytes + eventJson.length + this.#overhead > this.#qHardBytes)
    ) {
      return this.#drop(ev.type);
    }
    const rec = new PendingRecord(
      ++this.#assignedSeq,
      randomUUID(),
      this.#time.format(this.#clock.now()),
      eventJson,
      critical,
      this.#overhead,
      this.#tracker,
      this.#arena,
    );
    q.push(rec);
    this.#s.emitted++;
    if (
      this.#flushMode === M_IMMEDIATE ||
      (critical && this.#flushMode === M_HYBRID) ||
      q.length >= this.#batchEvents
    ) {
      this.#urgentSeq = rec.seq;
      if (!this.#kickPending && !this.#writing) this.#kick();
    } else if (this.#timer === null) {
      this.#armTimer();
    }
    return rec;
  }

  #drop(type: string): AuditReceipt {
    const now = this.#clock.now();
    this.#s.dropped++;
    if (this.#drops) {
      this.#drops.count++;
      this.#drops.last = now;
    } else {
      this.#drops = { count: 1, first: now, last: now };
      this.#log.warn(
        { dir: this.dir },
        'audit queue full: dropping routine events (counted, recorded later)',
      );
    }
    return new DroppedReceipt(type, 'queue full');
  }

  /** Queues one of the trail's own events, bypassing limits and fail-closed. */
  #emitInternal(event: Record<string, unknown>): void {
    let eventJson: string;
    let type: string;
    try {
      const v = validateEventJson(event);
      type = v.event.type;
      eventJson = v.json;
    } catch (e) {
      this.#log.error({ err: e, type: event.type }, 'internal audit event failed validation (bug)');
      return;
    }
    const rec = new PendingRecord(
      ++this.#assignedSeq,
      randomUUID(),
      this.#nowIso(),
      eventJson,
      isCriticalEvent(type),
      this.#overhead,
      this.#tracker,
      this.#arena,
    );
    this.#q.push(rec);
    this.#s.emitted++;
    this.#urgentSeq = rec.seq;
    this.#kick();
  }

  /**
   * Timers are unref'd (they never keep a process alive by themselves: the `beforeExit` hook writes
   * what is queued) except while somebody waits on a receipt or on flush().
   */
  readonly #tracker: AwaitTracker = {
    waiting: 0,
    changed: () => this.#refTimers(),
  };

  #refTimers(): void {
    const keep = this.#tracker.waiting > 0 || this.#flushWaiters.length > 0;
    for (const t of [this.#timer, this.#backoff]) {
      if (t === null) continue;
      if (keep) t.ref();
      else t.unref();
    }
  }

  #armTimer(): void {
    if (this.#timer !== null || this.#closing) return;
    this.#timer = setTimeout(this.#onTimer, this.#batchDelay);
    if (this.#tracker.waiting === 0 && this.#flushWaiters.length === 0) this.#timer.unref();
  }

  #onTimer = (): void => {
    this.#timer = null;
    if (this.#q.length === 0) return;
    this.#urgentSeq = this.#assignedSeq;
    this.#kick();
  };

  #kick(): void {
    if (this.#kickPending || this.#writing) return;
    this.#kickPending = true;
    setImmediate(this.#onKick);
  }

  #onKick = (): void => {
    this.#kickPending = false;
    if (!this.#writing) this.#loopPromise = this.#loop();
  };

  #canWrite(): boolean {
    const first = this.#q.first();
    return first !== undefined && first.seq <= this.#urgentSeq && this.#backoff === null;
  }

  async #loop(): Promise<void> {
    this.#writing = true;
    const trail = this.#trail as FileTrail;
    try {
      while (this.#canWrite()) {
        if (this.#timer !== null && this.#urgentSeq >= this.#assignedSeq) {
          clearTimeout(this.#timer);
          this.#timer = null;
        }
        const batch = this.#q.peek(this.#maxBatch);
        await this.#sealBatch(batch);
        this.#s.batches++;
        let ahead: Promise<void> | null = null;
        try {
          const io = trail.append(batch, this.#onDurable);
          // While the write and fdatasync are in flight, seal what queued up behind this batch.
          if (this.#q.length > batch.length)
            ahead = this.#sealBatch(this.#q.peek(this.#maxBatch, batch.length));
          await io;
        } catch (e) {
          if (ahead) await ahead;
          this.#onIoError(e);
          break;
        }
        if (ahead) await ahead;
        if (this.#unavailable) this.#onWritable();
      }
    } finally {
      this.#writing = false;
    }
    if (this.#q.length > 0 && this.#backoff === null) {
      if (this.#canWrite()) this.#kick();
      else if (this.#flushMode !== M_IMMEDIATE) this.#armTimer();
    }
  }

  /** Seals the unsealed records of `batch` into the chain, in seq order (on the worker if configured). */
  async #sealBatch(batch: PendingRecord[]): Promise<void> {
    while (this.#sealInFlight) await this.#sealInFlight;
    let i = 0;
    while (i < batch.length && (batch[i] as PendingRecord).hash !== '') i++;
    if (i === batch.length) return;
    const todo = i === 0 ? batch : batch.slice(i);
    const w = this.#workerSealer;
    if (w && !w.failed) {
      const p = w.seal(todo).then(
        () => {
          this.#chainHash = w.hash;
        },
        (e) => {
          // Its chain state can no longer be trusted: drop the worker for good.
          this.#log.error({ err: e }, 'audit seal worker failed; sealing on the main thread from now on');
          this.#workerSealer = null;
          void w.close().catch(() => {});
          this.#seal(todo);
        },
      );
      this.#sealInFlight = p;
      try {
        await p;
      } finally {
        this.#sealInFlight = null;
      }
      return;
    }
    this.#seal(todo);
  }

  /** Seals unsealed records of `batch` into the chain on this thread, in seq order. */
  #seal(batch: PendingRecord[]): void {
    const sealer = this.#sealer as RecordSealer;
    const arena = this.#lineArena;
    let prev = this.#chainHash;
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i] as PendingRecord;
      if (r.hash !== '') continue;
      sealer.sealInto(r, prev, arena);
      prev = r.hash;
    }
    this.#chainHash = prev;
  }

  #onDurable = (n: number): void => {
    const q = this.#q;
    const tell = this.#ee.listenerCount('durable') > 0;
    const out: DurableRecord[] | null = tell ? new Array(n) : null;
    let r: PendingRecord | undefined;
    for (let i = 0; i < n; i++) {
      r = q.shift() as PendingRecord;
      r.settle();
      if (out) out[i] = { seq: r.seq, hash: r.hash, line: r.line };
      r.buf = null; // the line's bytes are on disk: let the slab go
    }
    if (!r) return;
    // A write succeeded: the trail is writable again. Say so before any receipt or flush() waiter
    // resumes (they run as microtasks after this returns), so a caller that awaited flush() after an
    // outage sees health() 'ok' and a fail-closed emit() accepted at once.
    if (this.#unavailable) this.#onWritable();
    this.#lastSeq = r.seq;
    this.#lastHash = r.hash;
    this.#s.written += n;
    if (out) {
      try {
        this.#ee.emit('durable', out);
      } catch (e) {
        this.#log.error({ err: e }, "an audit 'durable' listener threw");
      }
    }
    if (this.#flushWaiters.length > 0) {
      const last = this.#lastSeq;
      this.#flushWaiters = this.#flushWaiters.filter((w) => {
        if (w.seq > last) return true;
        w.resolve();
        return false;
      });
    }
    if (q.length < this.#qMaxEvents && q.bytes < this.#qMaxBytes) {
      if (this.#drops) this.#reportDrops();
      if (this.#readyWaiters.length > 0) {
        const ws = this.#readyWaiters;
        this.#readyWaiters = [];
        for (const w of ws) w();
      }
    }
  };

  #reportDrops(): void {
    const d = this.#drops;
    if (!d) return;
    this.#drops = null;
    this.#emitInternal({
      type: 'audit.events_dropped',
      timestamp: this.#nowIso(),
      count: d.count,
      reason: 'queue full',
      first_dropped_at: new Date(d.first).toISOString(),
      last_dropped_at: new Date(d.last).toISOString(),
    });
  }

  #onIoError(e: unknown): void {
    this.#s.ioErrors++;
    const info = errInfo(e);
    this.#unavailable = true;
    this.#lastError = `${info.operation}: ${info.code}`;
    if (this.#outage) this.#outage.attempts++;
    else this.#outage = { ...info, attempts: 1 };
    this.#log.error(
      {
        dir: this.dir,
        operation: info.operation,
        code: info.code,
        queueDepth: this.#q.length,
        retryMs: this.#retryDelay,
      },
      'audit trail write failed; records stay queued and will be retried',
    );
    if (this.#ee.listenerCount('error') > 0) {
      try {
        this.#ee.emit('error', e);
      } catch (x) {
        this.#log.error({ err: x }, "an audit 'error' listener threw");
      }
    }
    if (this.#flushWaiters.length > 0) {
      const ws = this.#flushWaiters;
      this.#flushWaiters = [];
      const err = new AuditUnavailableError(`audit trail unavailable: ${info.message}`, { cause: e });
      for (const w of ws) w.reject(err);
    }
    if (!this.#closing) {
      this.#backoff = setTimeout(this.#onRetry, this.#retryDelay);
      this.#refTimers();
      this.#retryDelay = Math.min(this.#retryMax, this.#retryDelay * 2);
    }
  }

  #onRetry = (): void => {
    this.#backoff = null;
    this.#urgentSeq = Math.max(this.#urgentSeq, this.#q.first()?.seq ?? 0);
    this.#kick();
  };

  /** The trail is writable again: record the outage in the trail itself. */
  #onWritable(): void {
    this.#unavailable = false;
    this.#retryDelay = this.#retryInitial;
    const o = this.#outage;
    this.#outage = null;
    this.#log.warn({ dir: this.dir, failedAttempts: o?.attempts }, 'audit trail writable again');
    if (o) {
      this.#emitInternal({
        type: 'audit.io_error',
        timestamp: this.#nowIso(),
        operation: o.operation.slice(0, 256),
        code: o.code.slice(0, 256),
        message: `${o.message}; recovered after ${o.attempts} failed attempt(s)`.slice(0, 1024),
      });
    }
  }

  /**
   * Resolves when every record emitted before the call is durable. Rejects with AuditUnavailableError
   * if an I/O error happens first (the records stay queued and are retried). A pending retry is
   * attempted at once.
   */
  flush(): Promise<void> {
    if (this.#disabled) return Promise.resolve();
    const target = this.#assignedSeq;
    if (this.#lastSeq >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#flushWaiters.push({ seq: target, resolve, reject });
      if (target > this.#urgentSeq) this.#urgentSeq = target;
      if (this.#backoff !== null) {
        clearTimeout(this.#backoff);
        this.#backoff = null;
      }
      this.#kick();
    });
  }

  /** Resolves when the queue is below its limits (backpressure for producers of routine events). */
  ready(): Promise<void> {
    if (this.#disabled || (this.#q.length < this.#qMaxEvents && this.#q.bytes < this.#qMaxBytes)) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.#readyWaiters.push(resolve));
  }

  health(): AuditHealth {
    const q = this.#q;
    const over = q.length >= this.#qMaxEvents || q.bytes >= this.#qMaxBytes;
    const state: HealthState =
      this.#closed || this.#unavailable ? 'unavailable' : over || this.#drops ? 'degraded' : 'ok';
    const h: AuditHealth = {
      state,
      queueDepth: q.length,
      queueBytes: q.bytes,
      lastSeq: this.#lastSeq,
      assignedSeq: this.#assignedSeq,
      droppedPending: this.#drops?.count ?? 0,
      closed: this.#closed,
    };
    if (this.#lastError !== undefined && this.#unavailable) h.lastError = this.#lastError;
    else if (this.#closed) h.lastError = 'closed';
    if (this.#shipper) h.platform = this.#shipper.status();
    return h;
  }

  stats(): AuditStats {
    const c = this.#trail?.counters;
    return {
      ...this.#s,
      writes: c?.writes ?? 0,
      fsyncs: c?.fsyncs ?? 0,
      fsyncAvgMs: c && c.fsyncs > 0 ? c.fsyncTotalMs / c.fsyncs : 0,
      fsyncMaxMs: c?.fsyncMaxMs ?? 0,
      bytesWritten: c?.bytesWritten ?? 0,
      rotations: c?.rotations ?? 0,
      truncations: c?.truncations ?? 0,
      queueHighWater: this.#q.highWater,
    };
  }

  /** The manifest as the writer has it (a copy). */
  manifest(): Manifest | null {
    return this.#trail?.manifest() ?? null;
  }

  /** Changes the manifest (retention), serialized with the writer's own manifest writes. */
  mutateManifest(fn: (m: Manifest) => void | Promise<void>): Promise<void> {
    if (!this.#trail) return Promise.reject(new AuditUnavailableError('no trail in disabled mode'));
    if (this.#closed) return Promise.reject(new AuditUnavailableError('audit logger is closed'));
    return this.#trail.mutateManifest(fn);
  }

  /**
   * Writes everything queued (retrying I/O errors for up to `closeTimeoutMs`), records pending drop
   * counts, closes the file (it stays the open file of the trail), emits `'close'` and releases the
   * lock. Records that could not be written reject their `durable` with AuditUnavailableError, and
   * `close()` rejects. Idempotent.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#doClose();
    return this.#closePromise;
  }

  async #doClose(): Promise<void> {
    this.#closing = true;
    if (this.#disabled) {
      this.#closed = true;
      this.#ee.emit('close');
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#drops) this.#reportDrops();
    const trail = this.#trail as FileTrail;
    const deadline = Date.now() + this.#closeTimeoutMs;
    let failure: unknown = null;
    let delay = this.#retryInitial;
    for (;;) {
      while (this.#writing) await this.#loopPromise;
      if (this.#backoff) {
        clearTimeout(this.#backoff);
        this.#backoff = null;
      }
      if (this.#q.length === 0) break;
      this.#urgentSeq = this.#assignedSeq;
      this.#loopPromise = this.#loop();
      await this.#loopPromise;
      if (this.#q.length === 0) break;
      if (Date.now() >= deadline) {
        failure = new AuditUnavailableError(
          `audit logger closed with ${this.#q.length} record(s) not written: ${this.#lastError ?? 'I/O error'}`,
        );
        for (const r of this.#q.drain()) r.fail(failure);
        break;
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(1, deadline - Date.now()))));
      delay = Math.min(delay * 2, this.#retryMax);
    }
    for (const w of this.#flushWaiters) w.reject(failure ?? new AuditUnavailableError('audit logger closed'));
    this.#flushWaiters = [];
    try {
      await trail.close();
    } catch (e) {
      failure ??= e;
      this.#log.error({ dir: this.dir, err: errInfo(e) }, 'audit trail close failed');
    }
    await this.#workerSealer?.close().catch(() => {});
    this.#closed = true;
    if (this.#beforeExit) process.off('beforeExit', this.#beforeExit);
    try {
      this.#ee.emit('close');
    } catch (e) {
      this.#log.error({ err: e }, "an audit 'close' listener threw");
    }
    // The shipper reads the trail and owns platform-state.json: let it finish before the lock goes.
    await this.#shipper
      ?.stop()
      .catch((e) => this.#log.error({ err: errInfo(e) }, 'platform shipper stop failed'));
    await trail.releaseLock().catch((e) => {
      failure ??= e;
    });
    for (const w of this.#readyWaiters) w();
    this.#readyWaiters = [];
    if (failure) throw failure;
  }

  /** Flush queued records when the event loop would otherwise go idle (batched timers are unref'd). */
  #installExitHook(): void {
    let warned = false;
    this.#beforeExit = () => {
      if (this.#q.length === 0 || this.#closing) return;
      if (!this.#unavailable) {
        this.#urgentSeq = this.#assignedSeq;
        this.#kick();
      } else if (!warned) {
        warned = true;
        this.#log.error(
          { dir: this.dir, queueDepth: this.#q.length, lastError: this.#lastError },
          'process is exiting with audit records the trail could not write (call close() to wait for them)',
        );
      }
    };
    process.on('beforeExit', this.#beforeExit);
  }

  /** Subscribes to `'durable'` (records after fdatasync, seq order), `'error'` (I/O errors) or `'close'`. */
  on(event: 'durable', fn: (recs: ReadonlyArray<DurableRecord>) => void): this;
  on(event: 'error', fn: (err: unknown) => void): this;
  on(event: 'close', fn: () => void): this;
  on(event: string, fn: (...args: never[]) => void): this {
    this.#ee.on(event, fn as (...a: unknown[]) => void);
    return this;
  }

  once(event: 'durable', fn: (recs: ReadonlyArray<DurableRecord>) => void): this;
  once(event: 'error', fn: (err: unknown) => void): this;
  once(event: 'close', fn: () => void): this;
  once(event: string, fn: (...args: never[]) => void): this {
    this.#ee.once(event, fn as (...a: unknown[]) => void);
    return this;
  }

  off(event: 'durable' | 'error' | 'close', fn: (...args: never[]) => void): this {
    this.#ee.off(event, fn as (...a: unknown[]) => void);
    return this;
  }

  listenerCount(event: 'durable' | 'error' | 'close'): number {
    return this.#ee.listenerCount(event);
  }

  /** Never serializes secrets. */
  toJSON(): Record<string, unknown> {
    return { mode: this.mode, dir: this.dir, serviceId: this.serviceId, mac: this.#macKey !== undefined };
  }
}
