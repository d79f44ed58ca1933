/**
 * VramManager: seals model shards in device memory, proves they stay intact, records every step.
 *
 * seal(source):  validate → atomic capacity admission (synchronous reserve, so concurrent seals can
 *                never oversubscribe) → allocate → copy (backend.writeFrom) → digest computed FROM
 *                DEVICE MEMORY (backend.merkle) → compare expectedDigest / source SHA-256 → HMAC seal
 *                (seal.ts) → handle (shard.ts).
 * verify(shard): timing-safe seal check → full re-digest on the device → on mismatch, localize the
 *                differing chunks against the leaf hashes kept host-side at seal time (32 bytes per
 *                leaf: 0.2 % of the shard at 16 KiB leaves). Any failure emits the critical
 *                `seal.verification_failed`, waits for it to be durable, and stops the manager.
 *
 * States: `open` → `stopped` (after a failed verification: seal/verify/execute refuse with
 * StoppedError; release/capacity/close still work) → `closed`. Reopen to continue.
 *
 * Audit: every path emits its events (vram.allocated, vram.allocation_failed, vram.sealed,
 * seal.verified, seal.verification_failed, vram.deallocated, security.policy_violation, plus
 * security.integrity_violation). Critical events are awaited until durable. Without `failClosed`,
 * audit failures never block device work but are counted ({@link VramManager.stats}); with it, an
 * unavailable trail refuses seals and a seal whose `vram.sealed` record cannot be made durable is
 * undone.
 */
import { createHash, type KeyObject, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import type { BackendKind, DeviceAllocation, DeviceBackend, DeviceInfo, WriteProgress } from './backend.js';
import { type BackendChoice, type OpenBackendOptions, openBackend } from './backends.js';
import {
  AllocationFailedError,
  AuditUnavailableError,
  DeviceError,
  InsufficientVramError,
  IntegrityViolationError,
  InvalidInputError,
  NotSealedError,
  PolicyViolationError,
  ResidencyError,
  SealVerificationFailedError,
  StoppedError,
} from './errors.js';
import type { AuditSink, ResidencyEvent } from './events.js';
import { formatDigest, leafCount, parseDigest } from './merkle.js';
import {
  checkIndex,
  checkLabel,
  checkShardId,
  checkToken,
  checkWorkerId,
  type ResidencyPolicy,
  resolvePolicy,
  SHARD_ID_PATTERN,
  sizeRefusal,
} from './policy.js';
import { computeSeal, deriveSealKey, type SealFields, sealMatches } from './seal.js';
import { mintShard, publicFields, type SealedShard, shardSecret } from './shard.js';
import { openSource, type ShardSource } from './source.js';

/** Placeholder digest for `seal.verification_failed` when no digest exists (forged handle, unknown shard). */
export const NO_DIGEST = `sha256-merkle-v1:0:${'0'.repeat(64)}`;
/** At most this many corrupt ranges are listed in an event (CONTRACTS §1); the count is exact. */
export const MAX_EVENT_RANGES = 64;

export type ManagerState = 'open' | 'stopped' | 'closed';

export interface VramManagerOptions {
  /** The worker's secret token (≥ 16 characters). Give this or `tokenFile`. */
  workerToken?: string;
  /** File holding the token (mode 0600 or stricter; one trailing newline is ignored). */
  tokenFile?: string;
  /** This worker's id, recorded in every event: `[A-Za-z0-9._:-]{1,256}`. */
  workerId: string;
  /** The audit trail (an `AuditLogger`, or anything with `emit` and `health`). */
  audit: AuditSink;
  /** `auto` (default: `VRAMSEAL_BACKEND`, else auto), `cuda`, `simulated`, or a backend instance (not closed by the manager). */
  backend?: BackendChoice | DeviceBackend;
  /** Options for `openBackend` when `backend` is a name. */
  backendOptions?: OpenBackendOptions;
  /** Largest shard accepted (default 100 GiB); larger seals are a policy violation. */
  maxModelBytes?: number;
  /** Device bytes never handed out (default 0). */
  reserveBytes?: number;
  /**
   * Most bytes this manager may hold on each device (a quota, e.g. for a GPU shared by several
   * workers). Default: no quota (the device size minus `reserveBytes`).
   */
  quotaBytes?: number;
  /** Refuse seals when the audit trail cannot record (default false). */
  failClosed?: boolean;
  /** Merkle leaf size for new seals (default 16 KiB; a power of two in 1 KiB..16 MiB). */
  leafSize?: number;
  /** Clock for `sealed_at` and event timestamps (default `Date.now`). */
  now?: () => number;
}

export interface SealOptions {
  /** Device index (default 0). */
  device?: number;
  /** `[A-Za-z0-9_-]{1,256}`; default: an opaque random id. */
  shardId?: string;
  modelRef?: string;
  shardIndex?: number;
  totalShards?: number;
  /** The digest the bytes must have (`sha256-merkle-v1:<leaf>:<hex>`); its leaf size is used. */
  expectedDigest?: string;
  /** The plain SHA-256 (hex) the source bytes must have. */
  expectedSha256?: string;
  /** Progress of the host → device copy. */
  onProgress?: WriteProgress;
  /** Streaming chunk size for file sources (default 8 MiB). */
  chunkBytes?: number;
}

export interface VerifyResult {
  shard_id: string;
  mode: 'full' | 'sample';
  chunks_checked: number;
  duration_ms: number;
  digest: string;
}

export interface CapacityInfo {
  device: number;
  backend: BackendKind;
  /** Device total memory. */
  totalBytes: number;
  /** Bytes this manager holds or has admitted on the device. */
  usedBytes: number;
  /** What a seal may take now: min(min(total − reserve, quota) − used, device free − reserve − admitted-not-allocated). */
  availableBytes: number;
  reserveBytes: number;
  /** The per-device quota, if one is set. */
  quotaBytes?: number;
  /** Device-wide free memory as the backend reports it (CUDA: other processes included). */
  deviceFreeBytes: number;
  shards: number;
}

export interface PeriodicVerificationStatus {
  running: boolean;
  intervalMs: number;
  mode: 'full' | 'sample';
  runs: number;
  shardsVerified: number;
  failures: number;
  lastRunStartedAt?: string;
  lastRunFinishedAt?: string;
  lastDurationMs?: number;
  lastError?: string;
}

export interface PeriodicVerification {
  status(): PeriodicVerificationStatus;
  /** Stops the schedule and waits for a run in progress. */
  stop(): Promise<void>;
}

export interface ManagerStats {
  state: ManagerState;
  stopReason?: string;
  shards: number;
  seals: number;
  verifications: number;
  sampleVerifications: number;
  verificationFailures: number;
  /** Events the audit sink refused or failed to make durable. */
  auditFailures: number;
  auditLastError?: string;
}

interface Entry {
  /** The shard id at seal time (the handle's own field is user-mutable; this is not). */
  readonly id: string;
  readonly shard: SealedShard;
  readonly alloc: DeviceAllocation;
  readonly leafSize: number;
  readonly length: number;
  /** Seal-time leaf hashes, leafCount × 32 bytes. */
  readonly leaves: Uint8Array;
  readonly seal: Uint8Array;
  busy: number;
  idle?: (() => void) | undefined;
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Asks the sink to write what it holds now (an AuditLogger in batched mode would wait up to maxDelayMs). */
function flushSink(audit: AuditSink): void {
  try {
    audit.flush?.().catch(() => {});
  } catch {
    // a sink that cannot flush still gets the event; durability is awaited by the caller
  }
}

/** Reads a property of untrusted input; a throwing getter or a non-object reads as undefined. */
function prop(o: unknown, key: string): unknown {
  if (typeof o !== 'object' || o === null) return undefined;
  try {
    return (o as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function eventDigest(d: unknown): string {
  return typeof d === 'string' && /^sha256-merkle-v1:\d{1,9}:[0-9a-f]{64}$/.test(d) ? d : NO_DIGEST;
}

function eventShardId(id: unknown): string {
  if (typeof id === 'string' && SHARD_ID_PATTERN.test(id)) return id;
  return `invalid-id-${createHash('sha256').update(String(id)).digest('hex').slice(0, 16)}`;
}

/** Contiguous runs of leaf indices → byte ranges (clamped to the shard length). */
export function leafRanges(
  indices: readonly number[],
  leafSize: number,
  length: number,
): { offset: number; length: number }[] {
  const sorted = [...indices].sort((a, b) => a - b);
  const out: { offset: number; length: number }[] = [];
  for (const i of sorted) {
    const offset = i * leafSize;
    const len = Math.min(leafSize, length - offset);
    const last = out.at(-1);
    if (last && last.offset + last.length === offset) last.length += len;
    else out.push({ offset, length: len });
  }
  return out;
}

async function readTokenFile(path: string): Promise<string> {
  let st: Awaited<ReturnType<typeof fsp.stat>>;
  let raw: string;
  try {
    st = await fsp.stat(path);
    raw = await fsp.readFile(path, 'utf8');
  } catch (e) {
    throw new InvalidInputError(
      'tokenFile',
      `cannot read ${JSON.stringify(path)} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if (!st.isFile())
    throw new InvalidInputError('tokenFile', `${JSON.stringify(path)} must be a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new InvalidInputError(
      'tokenFile',
      `${JSON.stringify(path)} must not be readable by group or others (chmod 600)`,
    );
  }
  return checkToken(raw.replace(/\r?\n$/, ''), 'tokenFile');
}

/**
 * Seals model shards in device memory and verifies them. Create with {@link VramManager.open}.
 */
export class VramManager {
  readonly #backend: DeviceBackend;
  readonly #ownsBackend: boolean;
  readonly #audit: AuditSink;
  readonly #key: KeyObject;
  readonly #workerId: string;
  readonly #policy: ResidencyPolicy;
  readonly #now: () => number;
  readonly #devices: DeviceInfo[];
  readonly #committed: number[];
  readonly #allocated: number[];
  readonly #entries = new Map<string, Entry>();
  readonly #pendingIds = new Set<string>();
  readonly #inflight = new Set<Promise<unknown>>();
  #state: ManagerState = 'open';
  #closing: Promise<void> | undefined;
  #stopReason: string | undefined;
  #periodic: PeriodicVerification | undefined;
  #lastPeriodic: PeriodicVerification | undefined;
  #stats = { seals: 0, verifications: 0, sampleVerifications: 0, verificationFailures: 0, auditFailures: 0 };
  #auditLastError: string | undefined;

  private constructor(init: {
    backend: DeviceBackend;
    ownsBackend: boolean;
    audit: AuditSink;
    key: KeyObject;
    workerId: string;
    policy: ResidencyPolicy;
    now: () => number;
    devices: DeviceInfo[];
  }) {
    this.#backend = init.backend;
    this.#ownsBackend = init.ownsBackend;
    this.#audit = init.audit;
    this.#key = init.key;
    this.#workerId = init.workerId;
    this.#policy = init.policy;
    this.#now = init.now;
    this.#devices = init.devices;
    this.#committed = init.devices.map(() => 0);
    this.#allocated = init.devices.map(() => 0);
  }

  /**
   * Validates the options, derives the seal key, opens the backend and runs its device policy
   * checks (a violation emits `security.policy_violation` and refuses to start).
   */
  static async open(opts: VramManagerOptions): Promise<VramManager> {
    if (typeof opts !== 'object' || opts === null)
      throw new InvalidInputError('options', 'must be an object');
    const workerId = checkWorkerId(opts.workerId);
    const audit = opts.audit;
    if (typeof audit?.emit !== 'function' || typeof audit?.health !== 'function') {
      throw new InvalidInputError('audit', 'must have emit(event) and health() (e.g. an AuditLogger)');
    }
    const policy = resolvePolicy(opts);
    if ((opts.workerToken === undefined) === (opts.tokenFile === undefined)) {
      throw new InvalidInputError('workerToken', 'give exactly one of workerToken or tokenFile');
    }
    const token =
      opts.workerToken !== undefined
        ? checkToken(opts.workerToken)
        : await readTokenFile(String(opts.tokenFile));
    const key = deriveSealKey(token, workerId);
    if (policy.failClosed && audit.health().state === 'unavailable') {
      throw new AuditUnavailableError('the audit trail reports state unavailable');
    }
    const now = opts.now ?? Date.now;
    const stamp = () => new Date(now()).toISOString();
    const policyEvent = (e: PolicyViolationError) => {
      try {
        const { durable } = audit.emit({
          type: 'security.policy_violation',
          timestamp: stamp(),
          policy: e.policy,
          violation: e.violation.slice(0, 1024),
          details: e.details.slice(0, 1024),
          severity: 'critical',
          worker_id: workerId,
          action_taken: 'refused_to_start',
        });
        flushSink(audit);
        return Promise.resolve(durable).catch(() => {});
      } catch {
        return Promise.resolve();
      }
    };
    const choice = opts.backend ?? undefined;
    let backend: DeviceBackend;
    const ownsBackend = typeof choice !== 'object';
    try {
      backend =
        typeof choice === 'object' && choice !== null
          ? choice
          : await openBackend(choice as BackendChoice | undefined, opts.backendOptions);
    } catch (e) {
      if (e instanceof PolicyViolationError) await policyEvent(e);
      throw e;
    }
    try {
      const devices = await backend.devices();
      if (devices.length === 0)
        throw new DeviceError('devices', 'NO_DEVICE', `backend ${backend.kind} reports no device`);
      if (backend.checkPolicy) {
        for (const d of devices) await backend.checkPolicy(d.index);
      }
      return new VramManager({ backend, ownsBackend, audit, key, workerId, policy, now, devices });
    } catch (e) {
      if (e instanceof PolicyViolationError) await policyEvent(e);
      if (ownsBackend) await backend.close().catch(() => {});
      throw e;
    }
  }

  /** `open`, `stopped` (after a failed verification) or `closed`. */
  get state(): ManagerState {
    return this.#state;
  }
  /** Why the manager stopped, if it did. */
  get stopReason(): string | undefined {
    return this.#stopReason;
  }
  get workerId(): string {
    return this.#workerId;
  }
  /** `cuda` or `simulated`. */
  get backendKind(): BackendKind {
    return this.#backend.kind;
  }
  get policy(): ResidencyPolicy {
    return this.#policy;
  }

  /** Devices as discovered at open, with fresh memory figures. */
  async devices(): Promise<DeviceInfo[]> {
    return this.#backend.devices();
  }

  /** The handles this manager holds, in seal order. */
  shards(): SealedShard[] {
    return [...this.#entries.values()].map((e) => e.shard);
  }

  /** The handle of a sealed shard by id, if this manager holds it. */
  shard(shardId: string): SealedShard | undefined {
    return this.#entries.get(shardId)?.shard;
  }

  stats(): ManagerStats {
    const s: ManagerStats = { state: this.#state, shards: this.#entries.size, ...this.#stats };
    if (this.#stopReason !== undefined) s.stopReason = this.#stopReason;
    if (this.#auditLastError !== undefined) s.auditLastError = this.#auditLastError;
    return s;
  }

  toJSON(): Record<string, unknown> {
    return {
      state: this.#state,
      workerId: this.#workerId,
      backend: this.#backend.kind,
      devices: this.#devices.length,
      shards: this.#entries.size,
      policy: this.#policy,
    };
  }

  [inspect.custom](): string {
    return `VramManager ${inspect(this.toJSON())}`;
  }

  // ---------------------------------------------------------------------------------------------
  // audit plumbing

  #stamp(): string {
    return new Date(this.#now()).toISOString();
  }

  #auditFailed(e: unknown): void {
    this.#stats.auditFailures++;
    this.#auditLastError = errMessage(e);
  }

  /**
   * Emits an event. Resolves true once durable (critical callers await it), false when the sink
   * refused it or failed to persist it — counted, never thrown (the caller decides with failClosed).
   */
  #emit(ev: ResidencyEvent): Promise<boolean> {
    let r: { durable: Promise<void> };
    try {
      r = this.#audit.emit(ev);
    } catch (e) {
      this.#auditFailed(e);
      return Promise.resolve(false);
    }
    return Promise.resolve(r?.durable).then(
      () => true,
      (e) => {
        this.#auditFailed(e);
        return false;
      },
    );
  }

  /** A critical event: emitted, flushed at once when the sink can flush, and awaited until durable. */
  #emitCritical(ev: ResidencyEvent): Promise<boolean> {
    const durable = this.#emit(ev);
    flushSink(this.#audit);
    return durable;
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  #assertOpen(): void {
    if (this.#state === 'stopped') throw new StoppedError(this.#stopReason ?? 'a verification failed');
    if (this.#state === 'closed' || this.#closing) throw new StoppedError('the manager is closed');
  }

  /** Passes chunks through, and ends a long copy early once the manager stops or starts closing. */
  async *#untilStopped(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const c of chunks) {
      this.#assertOpen();
      yield c;
    }
  }

  #device(d: unknown): number {
    if (!Number.isInteger(d) || (d as number) < 0 || (d as number) >= this.#devices.length) {
      throw new InvalidInputError('device', `must be an integer in 0..${this.#devices.length - 1}`);
    }
    return d as number;
  }

  #available(d: number): number {
    const total = (this.#devices[d] as DeviceInfo).totalBytes;
    const cap = Math.min(
      total - this.#policy.reserveBytes,
      this.#policy.quotaBytes ?? Number.POSITIVE_INFINITY,
    );
    return Math.max(0, cap - (this.#committed[d] as number));
  }

  // ---------------------------------------------------------------------------------------------
  // capacity

  /** Capacity of a device (default 0) as admission sees it. */
  async capacity(device = 0): Promise<CapacityInfo> {
    const d = this.#device(device);
    const mem = await this.#backend.memoryInfo(d);
    const pending = Math.max(0, (this.#committed[d] as number) - (this.#allocated[d] as number));
    return {
      device: d,
      backend: this.#backend.kind,
      totalBytes: mem.totalBytes,
      usedBytes: this.#committed[d] as number,
      availableBytes: Math.max(
        0,
        Math.min(this.#available(d), mem.freeBytes - this.#policy.reserveBytes - pending),
      ),
      reserveBytes: this.#policy.reserveBytes,
      ...(this.#policy.quotaBytes === undefined ? {} : { quotaBytes: this.#policy.quotaBytes }),
      deviceFreeBytes: mem.freeBytes,
      shards: [...this.#entries.values()].filter((e) => e.alloc.device === d).length,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // seal

  /**
   * Seals a shard: copies `source` to the device, digests the device memory and returns a handle.
   * @throws InvalidInputError, PolicyViolationError, InsufficientVramError, AllocationFailedError,
   *   IntegrityViolationError, AuditUnavailableError, StoppedError, DeviceError
   */
  seal(source: ShardSource, opts: SealOptions = {}): Promise<SealedShard> {
    return this.#track(this.#seal(source, opts));
  }

  async #seal(source: ShardSource, opts: SealOptions): Promise<SealedShard> {
    this.#assertOpen();
    if (typeof opts !== 'object' || opts === null)
      throw new InvalidInputError('options', 'must be an object');
    if (this.#policy.failClosed && this.#audit.health().state === 'unavailable') {
      throw new AuditUnavailableError('the audit trail reports state unavailable; seal refused');
    }
    const device = this.#device(opts.device ?? 0);
    const shardId =
      opts.shardId === undefined ? `s_${randomBytes(16).toString('base64url')}` : checkShardId(opts.shardId);
    const modelRef = opts.modelRef === undefined ? undefined : checkLabel('modelRef', opts.modelRef);
    const shardIndex = opts.shardIndex === undefined ? undefined : checkIndex('shardIndex', opts.shardIndex);
    const totalShards =
      opts.totalShards === undefined ? undefined : checkIndex('totalShards', opts.totalShards);
    if (totalShards !== undefined && totalShards < 1)
      throw new InvalidInputError('totalShards', 'must be ≥ 1');
    if (shardIndex !== undefined && totalShards !== undefined && shardIndex >= totalShards) {
      throw new InvalidInputError('shardIndex', 'must be < totalShards');
    }
    let leafSize = this.#policy.leafSize;
    let expectedRoot: Uint8Array | undefined;
    if (opts.expectedDigest !== undefined) {
      try {
        ({ leafSize, root: expectedRoot } = parseDigest(opts.expectedDigest));
      } catch (e) {
        throw new InvalidInputError('expectedDigest', errMessage(e));
      }
    }
    if (opts.expectedSha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(opts.expectedSha256)) {
      throw new InvalidInputError('expectedSha256', 'must be 64 hex digits');
    }
    if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') {
      throw new InvalidInputError('onProgress', 'must be a function');
    }
    if (this.#entries.has(shardId) || this.#pendingIds.has(shardId)) {
      throw new InvalidInputError('shardId', `${shardId} is already sealed or being sealed by this manager`);
    }

    const hashLeaf = opts.expectedSha256 !== undefined ? leafSize : undefined;
    const src = await openSource(source, {
      ...(opts.chunkBytes !== undefined ? { chunkBytes: opts.chunkBytes } : {}),
      ...(hashLeaf !== undefined ? { hashLeafSize: hashLeaf } : {}),
    });
    const size = src.size;
    const base = { gpu_device: device, worker_id: this.#workerId, backend: this.#backend.kind } as const;
    const refuse = (reason: string, available: number): void => {
      void this.#emit({
        type: 'vram.allocation_failed',
        timestamp: this.#stamp(),
        requested_bytes: size,
        available_bytes: available,
        reason: reason.slice(0, 1024),
        ...base,
      });
    };

    // ---- admission: everything from here to `committed += size` is synchronous (atomic) ----
    try {
      this.#assertOpen();
      if (this.#entries.has(shardId) || this.#pendingIds.has(shardId)) {
        throw new InvalidInputError(
          'shardId',
          `${shardId} is already sealed or being sealed by this manager`,
        );
      }
    } catch (e) {
      await src.close();
      throw e;
    }
    const refusal = sizeRefusal(size, this.#policy);
    if (refusal) {
      await src.close();
      const available = this.#available(device);
      if (refusal.kind === 'policy') {
        await this.#emitCritical({
          type: 'security.policy_violation',
          timestamp: this.#stamp(),
          policy: 'max_model_bytes',
          violation: 'shard larger than maxModelBytes',
          details: refusal.rule,
          severity: 'high',
          worker_id: this.#workerId,
          action_taken: 'seal_refused',
        });
        refuse(`policy: ${refusal.rule}`, available);
        throw new PolicyViolationError('max_model_bytes', 'shard larger than maxModelBytes', refusal.rule);
      }
      refuse(`invalid size: ${refusal.rule}`, available);
      throw new InvalidInputError('source', refusal.rule);
    }
    const available = this.#available(device);
    if (size > available) {
      await src.close();
      refuse(`insufficient VRAM: need ${size} bytes, ${available} available after reserve`, available);
      const detail =
        this.#policy.quotaBytes === undefined
          ? `reserve ${this.#policy.reserveBytes} bytes`
          : `reserve ${this.#policy.reserveBytes} bytes, quota ${this.#policy.quotaBytes} bytes`;
      throw new InsufficientVramError(device, size, available, detail);
    }
    this.#committed[device] = (this.#committed[device] as number) + size;
    this.#pendingIds.add(shardId);
    // ---- admitted ----

    let alloc: DeviceAllocation | undefined;
    const undo = async (reason: 'error') => {
      if (alloc) {
        const a = alloc;
        alloc = undefined;
        await this.#backend.free(a).catch(() => {});
        this.#allocated[device] = (this.#allocated[device] as number) - size;
        this.#committed[device] = (this.#committed[device] as number) - size;
        void this.#emit({
          type: 'vram.deallocated',
          timestamp: this.#stamp(),
          shard_id: shardId,
          freed_bytes: size,
          remaining_used: this.#committed[device] as number,
          reason,
          ...base,
        });
      } else {
        this.#committed[device] = (this.#committed[device] as number) - size;
      }
    };
    try {
      // Device-wide check (CUDA: other processes share the GPU). The driver stays the arbiter.
      const mem = await this.#backend.memoryInfo(device);
      const pendingOthers = Math.max(
        0,
        (this.#committed[device] as number) - size - (this.#allocated[device] as number),
      );
      const deviceAvailable = Math.max(0, mem.freeBytes - this.#policy.reserveBytes - pendingOthers);
      if (size > deviceAvailable) {
        refuse(
          `insufficient VRAM: need ${size} bytes, ${deviceAvailable} free device-wide after reserve`,
          deviceAvailable,
        );
        throw new InsufficientVramError(
          device,
          size,
          deviceAvailable,
          'device-wide free memory, other processes included',
        );
      }
      try {
        alloc = await this.#backend.allocate(device, size);
      } catch (e) {
        if (e instanceof PolicyViolationError) {
          await this.#emitCritical({
            type: 'security.policy_violation',
            timestamp: this.#stamp(),
            policy: e.policy,
            violation: e.violation.slice(0, 1024),
            details: e.details.slice(0, 1024),
            severity: 'critical',
            worker_id: this.#workerId,
            action_taken: 'seal_refused',
          });
        }
        refuse(errMessage(e), this.#available(device) + size); // this seal's admission is still counted
        if (e instanceof ResidencyError) throw e;
        throw new AllocationFailedError(device, size, errMessage(e), e);
      }
      this.#allocated[device] = (this.#allocated[device] as number) + size;
      const allocatedOk = this.#emit({
        type: 'vram.allocated',
        timestamp: this.#stamp(),
        requested_bytes: size,
        allocated_bytes: alloc.bytes,
        available_bytes: this.#available(device),
        used_bytes: this.#committed[device] as number,
        ...base,
      });

      // Files go straight to the device when the backend can (no JS buffers) and no host-side hash
      // is needed; otherwise they stream through src.chunks() (hashed on the way when asked).
      const direct =
        src.kind === 'file' && src.path !== undefined && hashLeaf === undefined
          ? this.#backend.writeFromFile
          : undefined;
      const written = direct
        ? await direct.call(this.#backend, alloc, src.path as string, opts.onProgress)
        : await this.#backend.writeFrom(alloc, this.#untilStopped(src.chunks()), opts.onProgress);
      if (written !== size) {
        throw new DeviceError('writeFrom', 'SHORT_WRITE', `copied ${written} of ${size} bytes to the device`);
      }
      // The digest is computed from device memory, after the copy.
      const { root, leaves } = await this.#backend.merkle(alloc, { leafSize, wantLeaves: true });
      if (!leaves || leaves.length !== leafCount(size, leafSize) * 32) {
        throw new DeviceError('merkle', 'NO_LEAVES', 'backend did not return the leaf hashes');
      }
      const digest = formatDigest(leafSize, root);

      const violation = async (expected: string, actual: string, what: string) => {
        await this.#emitCritical({
          type: 'security.integrity_violation',
          timestamp: this.#stamp(),
          resource_type: 'model_shard',
          resource_id: shardId,
          expected_hash: expected,
          actual_hash: actual,
          severity: 'critical',
          action_taken: 'seal_refused',
          worker_id: this.#workerId,
        });
        return new IntegrityViolationError(`shard ${shardId}: ${what}; nothing was sealed`, expected, actual);
      };
      if (expectedRoot && !timingSafeEqual(Buffer.from(expectedRoot), Buffer.from(root))) {
        throw await violation(
          opts.expectedDigest as string,
          digest,
          'the device digest differs from expectedDigest',
        );
      }
      if (opts.expectedSha256 !== undefined) {
        const h = src.hashes();
        if (!h) throw new DeviceError('seal', 'NO_SOURCE_HASH', 'source hash unavailable');
        const expected = opts.expectedSha256.toLowerCase();
        if (h.sha256 !== expected) {
          throw await violation(expected, h.sha256, 'the source SHA-256 differs from expectedSha256');
        }
        if (!timingSafeEqual(Buffer.from(h.merkleRoot), Buffer.from(root))) {
          throw await violation(
            formatDigest(leafSize, h.merkleRoot),
            digest,
            'the bytes on the device differ from the bytes read from the source',
          );
        }
      }

      this.#assertOpen(); // stopped or closing meanwhile: do not hand out a handle
      const fields: SealFields = {
        shard_id: shardId,
        digest,
        sealed_at: this.#stamp(),
        gpu_device: device,
        vram_bytes: size,
        model_ref: modelRef,
        shard_index: shardIndex,
        total_shards: totalShards,
        backend: this.#backend.kind,
      };
      const seal = computeSeal(this.#key, fields);
      const shard = mintShard(fields, { seal, alloc, owner: this });
      const sealedOk = this.#emit({
        type: 'vram.sealed',
        timestamp: fields.sealed_at,
        shard_id: shardId,
        gpu_device: device,
        vram_bytes: size,
        digest,
        worker_id: this.#workerId,
        backend: this.#backend.kind,
        sealed_at: fields.sealed_at,
        ...(modelRef !== undefined ? { model_ref: modelRef } : {}),
        ...(shardIndex !== undefined ? { shard_index: shardIndex } : {}),
        ...(totalShards !== undefined ? { total_shards: totalShards } : {}),
      });
      if (this.#policy.failClosed && !((await allocatedOk) && (await sealedOk))) {
        throw new AuditUnavailableError(
          `the seal of ${shardId} could not be recorded durably; it was undone`,
        );
      }
      this.#assertOpen();
      this.#entries.set(shardId, {
        id: shardId,
        shard,
        alloc,
        leafSize,
        length: size,
        leaves,
        seal,
        busy: 0,
      });
      this.#pendingIds.delete(shardId);
      this.#stats.seals++;
      return shard;
    } catch (e) {
      this.#pendingIds.delete(shardId);
      await undo('error');
      throw e;
    } finally {
      await src.close().catch(() => {});
    }
  }

  // ---------------------------------------------------------------------------------------------
  // verify

  /** Checks the handle against this manager: seal (timing-safe), issuer, registry. Synchronous. */
  #authenticate(
    shard: unknown,
  ): { entry: Entry; fields: SealFields } | { failure: string; expected: string } {
    if (typeof shard !== 'object' || shard === null)
      return { failure: 'not a shard handle', expected: NO_DIGEST };
    const claimed = shard as SealedShard;
    const expected = eventDigest(prop(claimed, 'digest'));
    const secret = shardSecret(shard);
    if (!secret) return { failure: 'not a handle issued by a VramManager (forged or copied)', expected };
    let fields: SealFields;
    try {
      fields = publicFields(claimed);
    } catch {
      return { failure: 'handle fields unreadable', expected };
    }
    if (!sealMatches(this.#key, fields, secret.seal)) {
      return { failure: 'seal mismatch: handle fields altered or sealed under another key', expected };
    }
    const entry = this.#entries.get(fields.shard_id);
    if (secret.owner !== this || !entry || entry.shard !== shard) {
      return { failure: 'shard is not sealed by this manager (unknown or released)', expected };
    }
    // From here on only this authenticated snapshot is used, never the (mutable) handle again.
    return { entry, fields };
  }

  async #fail(
    shard: unknown,
    reason: string,
    expected: string,
    actual: string,
    extra: { corrupt_ranges?: { offset: number; length: number }[]; chunks_failed?: number } = {},
  ): Promise<never> {
    const shardId = eventShardId(prop(shard, 'shard_id'));
    this.#stats.verificationFailures++;
    const ranges = extra.corrupt_ranges;
    await this.#emitCritical({
      type: 'seal.verification_failed',
      timestamp: this.#stamp(),
      shard_id: shardId,
      reason: reason.slice(0, 1024),
      expected_digest: expected,
      actual_digest: actual,
      worker_id: this.#workerId,
      severity: 'critical',
      backend: this.#backend.kind,
      ...(ranges ? { corrupt_ranges: ranges.slice(0, MAX_EVENT_RANGES) } : {}),
      ...(extra.chunks_failed !== undefined ? { chunks_failed: extra.chunks_failed } : {}),
    });
    this.#stop(`verification of ${shardId} failed: ${reason}`);
    throw new SealVerificationFailedError(
      `seal verification of ${shardId} failed: ${reason}; manager stopped`,
      shardId,
      ranges ?? [],
    );
  }

  #stop(reason: string): void {
    if (this.#state !== 'open') return;
    this.#state = 'stopped';
    this.#stopReason = reason;
    const p = this.#periodic;
    this.#periodic = undefined;
    void p?.stop();
  }

  /** Runs fn while the entry is marked busy (release waits for it). */
  async #using<T>(entry: Entry, fn: () => Promise<T>): Promise<T> {
    entry.busy++;
    try {
      return await fn();
    } finally {
      entry.busy--;
      if (entry.busy === 0) entry.idle?.();
    }
  }

  /**
   * Full verification: seal check, then a re-digest of the whole shard on the device. On any
   * failure emits `seal.verification_failed` (durable before this rejects), stops the manager and
   * rejects with SealVerificationFailedError (`corruptRanges` lists the differing byte ranges).
   */
  verify(shard: SealedShard): Promise<VerifyResult> {
    return this.#track(this.#verify(shard));
  }

  async #verify(shard: SealedShard): Promise<VerifyResult> {
    this.#assertOpen();
    const t0 = performance.now();
    const auth = this.#authenticate(shard);
    if ('failure' in auth) return this.#fail(shard, auth.failure, auth.expected, NO_DIGEST);
    const { entry, fields } = auth;
    const { leafSize, length, alloc } = entry;
    let root: Uint8Array;
    try {
      root = (await this.#using(entry, () => this.#backend.merkle(alloc, { leafSize, length }))).root;
    } catch (e) {
      return this.#fail(fields, `device digest failed: ${errMessage(e)}`, fields.digest, NO_DIGEST);
    }
    const sealedRoot = parseDigest(fields.digest).root;
    const actual = formatDigest(leafSize, root);
    if (!timingSafeEqual(Buffer.from(sealedRoot), Buffer.from(root))) {
      let bad: number[] = [];
      try {
        const now = await this.#using(entry, () =>
          this.#backend.merkle(alloc, { leafSize, length, wantLeaves: true }),
        );
        bad = diffLeaves(entry.leaves, now.leaves ?? new Uint8Array(0));
      } catch {
        // localization is best effort; the verdict stands
      }
      const ranges = leafRanges(bad, leafSize, length);
      return this.#fail(
        fields,
        `digest mismatch: ${bad.length} of ${leafCount(length, leafSize)} chunks differ`,
        fields.digest,
        actual,
        { corrupt_ranges: ranges, chunks_failed: bad.length },
      );
    }
    const duration_ms = Math.round((performance.now() - t0) * 1000) / 1000;
    this.#stats.verifications++;
    const result: VerifyResult = {
      shard_id: fields.shard_id,
      mode: 'full',
      chunks_checked: leafCount(length, leafSize),
      duration_ms,
      digest: actual,
    };
    void this.#emitVerified(result); // routine event: durability not awaited on the request path
    return result;
  }

  #emitVerified(r: VerifyResult): Promise<boolean> {
    return this.#emit({
      type: 'seal.verified',
      timestamp: this.#stamp(),
      shard_id: r.shard_id,
      worker_id: this.#workerId,
      backend: this.#backend.kind,
      mode: r.mode,
      chunks_checked: r.chunks_checked,
      duration_ms: r.duration_ms,
      digest: r.digest,
    });
  }

  /**
   * Spot check of `chunks` random leaves (default 8; all when the shard has fewer), hashed on the
   * device and compared with the seal-time leaf hashes. Same failure semantics as {@link verify}.
   */
  verifySample(shard: SealedShard, opts: { chunks?: number } = {}): Promise<VerifyResult> {
    return this.#track(this.#verifySample(shard, opts));
  }

  async #verifySample(shard: SealedShard, opts: { chunks?: number }): Promise<VerifyResult> {
    this.#assertOpen();
    const k = opts.chunks ?? 8;
    if (!Number.isSafeInteger(k) || k < 1)
      throw new InvalidInputError('chunks', 'must be a positive integer');
    const t0 = performance.now();
    const auth = this.#authenticate(shard);
    if ('failure' in auth) return this.#fail(shard, auth.failure, auth.expected, NO_DIGEST);
    const { entry, fields } = auth;
    const { leafSize, length, alloc } = entry;
    const n = leafCount(length, leafSize);
    const picked = new Set<number>();
    if (k >= n) for (let i = 0; i < n; i++) picked.add(i);
    else while (picked.size < k) picked.add(randomInt(n));
    const indices = [...picked];
    let hashes: Uint8Array;
    try {
      hashes = await this.#using(entry, () => this.#backend.leafHashes(alloc, leafSize, indices, length));
    } catch (e) {
      return this.#fail(fields, `device leaf hashing failed: ${errMessage(e)}`, fields.digest, NO_DIGEST);
    }
    const bad = indices.filter((leaf, j) => {
      const want = entry.leaves.subarray(leaf * 32, leaf * 32 + 32);
      const got = hashes.subarray(j * 32, j * 32 + 32);
      return got.length !== 32 || !timingSafeEqual(want, got);
    });
    if (bad.length > 0) {
      return this.#fail(
        fields,
        `sampled chunks differ: ${bad.length} of ${indices.length} checked`,
        fields.digest,
        NO_DIGEST,
        { corrupt_ranges: leafRanges(bad, leafSize, length), chunks_failed: bad.length },
      );
    }
    this.#stats.sampleVerifications++;
    const result: VerifyResult = {
      shard_id: fields.shard_id,
      mode: 'sample',
      chunks_checked: indices.length,
      duration_ms: Math.round((performance.now() - t0) * 1000) / 1000,
      digest: fields.digest,
    };
    void this.#emitVerified(result); // routine event: durability not awaited on the request path
    return result;
  }

  /**
   * Verifies the shard (`sample` by default, or `full`), then runs `fn`. Refuses when stopped.
   */
  async execute<T>(
    shard: SealedShard,
    fn: (shard: SealedShard) => T | Promise<T>,
    opts: { verify?: 'full' | 'sample'; chunks?: number } = {},
  ): Promise<T> {
    if (opts.verify === 'full') await this.verify(shard);
    else await this.verifySample(shard, opts.chunks === undefined ? {} : { chunks: opts.chunks });
    this.#assertOpen();
    return fn(shard);
  }

  // ---------------------------------------------------------------------------------------------
  // periodic

  /**
   * Full (or sample) verification of every sealed shard every `intervalMs` (runs never overlap; the
   * timer does not keep the process alive). A failure stops the manager and the schedule. Starting
   * again replaces the previous schedule.
   */
  startPeriodicVerification(opts: {
    intervalMs: number;
    mode?: 'full' | 'sample';
    chunks?: number;
  }): PeriodicVerification {
    this.#assertOpen();
    const intervalMs = opts?.intervalMs;
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 10) {
      throw new InvalidInputError('intervalMs', 'must be an integer ≥ 10 (milliseconds)');
    }
    const mode = opts.mode ?? 'full';
    if (mode !== 'full' && mode !== 'sample')
      throw new InvalidInputError('mode', "must be 'full' or 'sample'");
    void this.#periodic?.stop();
    const status: PeriodicVerificationStatus = {
      running: true,
      intervalMs,
      mode,
      runs: 0,
      shardsVerified: 0,
      failures: 0,
    };
    let timer: NodeJS.Timeout | undefined;
    let current: Promise<void> | undefined;
    let stopped = false;
    const runOnce = async () => {
      const t0 = performance.now();
      status.lastRunStartedAt = this.#stamp();
      try {
        for (const entry of [...this.#entries.values()]) {
          if (stopped || this.#state !== 'open') break;
          if (this.#entries.get(entry.id) !== entry) continue; // released meanwhile
          const shard = entry.shard;
          if (mode === 'full') await this.verify(shard);
          else await this.verifySample(shard, opts.chunks === undefined ? {} : { chunks: opts.chunks });
          status.shardsVerified++;
        }
      } catch (e) {
        status.failures++;
        status.lastError = errMessage(e);
      }
      status.runs++;
      status.lastRunFinishedAt = this.#stamp();
      status.lastDurationMs = Math.round((performance.now() - t0) * 1000) / 1000;
    };
    const schedule = () => {
      if (stopped || this.#state !== 'open') {
        status.running = false;
        return;
      }
      timer = setTimeout(() => {
        current = runOnce().finally(() => {
          current = undefined;
          schedule();
        });
      }, intervalMs);
      timer.unref();
    };
    const handle: PeriodicVerification = {
      status: () => ({ ...status, running: status.running && !stopped && this.#state === 'open' }),
      stop: async () => {
        stopped = true;
        status.running = false;
        if (timer) clearTimeout(timer);
        await current;
        if (this.#periodic === handle) this.#periodic = undefined;
      },
    };
    this.#periodic = handle;
    this.#lastPeriodic = handle;
    schedule();
    return handle;
  }

  /** Status of the current (or last) periodic verification schedule, if one was started. */
  periodicStatus(): PeriodicVerificationStatus | undefined {
    return this.#lastPeriodic?.status();
  }

  // ---------------------------------------------------------------------------------------------
  // release / close

  /**
   * Frees a shard's device memory and emits `vram.deallocated` (reason `release`). Waits for
   * verifications of that shard in progress. Works in the stopped state.
   * @throws NotSealedError when the handle is unknown or already released (does not stop the manager)
   */
  async release(shard: SealedShard): Promise<void> {
    // By identity, so a handle whose fields were altered can still be released.
    const entry = [...this.#entries.values()].find((e) => e.shard === shard);
    if (!entry) throw new NotSealedError(eventShardId(prop(shard, 'shard_id')));
    await this.#releaseEntry(entry, 'release');
  }

  async #releaseEntry(entry: Entry, reason: 'release' | 'close' | 'dispose'): Promise<void> {
    const { id, alloc } = entry;
    this.#entries.delete(id);
    if (entry.busy > 0) await new Promise<void>((r) => (entry.idle = r));
    await this.#backend.free(alloc);
    const d = alloc.device;
    this.#allocated[d] = (this.#allocated[d] as number) - alloc.bytes;
    this.#committed[d] = (this.#committed[d] as number) - alloc.bytes;
    void this.#emit({
      type: 'vram.deallocated',
      timestamp: this.#stamp(),
      shard_id: id,
      freed_bytes: alloc.bytes,
      remaining_used: this.#committed[d] as number,
      gpu_device: d,
      worker_id: this.#workerId,
      backend: this.#backend.kind,
      reason,
    });
  }

  /**
   * Stops periodic verification, waits for operations in flight, releases every shard
   * (`vram.deallocated` reason `close`) and closes the backend if the manager opened it. Idempotent.
   */
  close(): Promise<void> {
    return this.#close('close');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#close('dispose');
  }

  #close(reason: 'close' | 'dispose'): Promise<void> {
    this.#closing ??= (async () => {
      await this.#periodic?.stop();
      await Promise.allSettled([...this.#inflight]);
      const errors: unknown[] = [];
      for (const entry of [...this.#entries.values()]) {
        await this.#releaseEntry(entry, reason).catch((e) => errors.push(e));
      }
      if (this.#ownsBackend) await this.#backend.close().catch((e) => errors.push(e));
      this.#state = 'closed';
      if (errors.length > 0) {
        throw new DeviceError(
          'close',
          'RELEASE_FAILED',
          `close: ${errors.length} release(s) failed: ${errMessage(errors[0])}`,
        );
      }
    })();
    return this.#closing;
  }

  // ---------------------------------------------------------------------------------------------
  // test hook

  /**
   * TEST ONLY: flips bytes of a sealed shard in device memory (XOR `mask`, default 0xff) so demos
   * and tests can show that verification catches it. Never call this in production.
   */
  async corruptForTesting(shard: SealedShard, offset: number, length = 1, mask = 0xff): Promise<void> {
    const id = prop(shard, 'shard_id');
    const entry = typeof id === 'string' ? this.#entries.get(id) : undefined;
    if (!entry || entry.shard !== shard) throw new NotSealedError(eventShardId(id));
    await this.#using(entry, () => this.#backend.corrupt(entry.alloc, offset, length, mask));
  }
}

function diffLeaves(a: Uint8Array, b: Uint8Array): number[] {
  const n = Math.max(a.length, b.length) / 32;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a.subarray(i * 32, i * 32 + 32);
    const y = b.subarray(i * 32, i * 32 + 32);
    if (x.length !== 32 || y.length !== 32 || !timingSafeEqual(x, y)) out.push(i);
  }
  return out;
}
