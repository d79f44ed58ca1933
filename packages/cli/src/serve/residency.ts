/**
 * Adapts a `VramManager` to the daemon's {@link ResidencyPort}: shard handles stay here (the HTTP
 * layer only ever sees their public fields), ids map to handles, and the last verification of each
 * shard is remembered for `GET /v1/shards/:id`.
 */
import { NotSealedError, type SealedShard, type VramManager } from '@vramseal/residency';
import type { Logger } from 'pino';
import type {
  CapacityView,
  DeviceView,
  ResidencyPort,
  SealOptions,
  ShardView,
  VerificationView,
} from './ports.js';

export class ManagerResidency implements ResidencyPort {
  readonly #m: VramManager;
  readonly #log: Logger | undefined;
  readonly #last = new Map<string, VerificationView>();
  #periodic: { stop(): Promise<void> } | undefined;

  constructor(manager: VramManager, opts: { logger?: Logger | undefined } = {}) {
    this.#m = manager;
    this.#log = opts.logger;
  }

  /** The manager (for callers that need more than the port). */
  get manager(): VramManager {
    return this.#m;
  }

  get backend(): string {
    return this.#m.backendKind;
  }

  status(): { state: 'ready' | 'stopped'; reason?: string | undefined } {
    const s = this.#m.state;
    if (s === 'open') return { state: 'ready' };
    return {
      state: 'stopped',
      reason: s === 'closed' ? 'closed' : (this.#m.stopReason ?? 'a verification failed'),
    };
  }

  async devices(): Promise<DeviceView[]> {
    const devs = await this.#m.devices();
    const used = new Map<number, number>();
    for (const s of this.#m.shards()) used.set(s.gpu_device, (used.get(s.gpu_device) ?? 0) + s.vram_bytes);
    return devs.map((d) => ({
      device: d.index,
      name: d.name,
      backend: d.kind,
      total_bytes: d.totalBytes,
      free_bytes: d.freeBytes,
      used_bytes: used.get(d.index) ?? 0,
    }));
  }

  async capacity(device: number): Promise<CapacityView> {
    const c = await this.#m.capacity(device);
    return {
      device: c.device,
      total_bytes: c.totalBytes,
      used_bytes: c.usedBytes,
      available_bytes: c.availableBytes,
      reserve_bytes: c.reserveBytes,
      max_model_bytes: this.#m.policy.maxModelBytes,
    };
  }

  async seal(path: string, opts: SealOptions): Promise<ShardView> {
    const shard = await this.#m.seal(path, {
      ...(opts.device !== undefined ? { device: opts.device } : {}),
      ...(opts.shardId !== undefined ? { shardId: opts.shardId } : {}),
      ...(opts.modelRef !== undefined ? { modelRef: opts.modelRef } : {}),
      ...(opts.expectSha256 !== undefined ? { expectedSha256: opts.expectSha256 } : {}),
      ...(opts.onProgress !== undefined ? { onProgress: opts.onProgress } : {}),
    });
    this.#log?.info({ shard: shard.toJSON() }, 'shard sealed');
    return view(shard);
  }

  #handle(id: string): SealedShard | undefined {
    return this.#m.shard(id);
  }

  async verify(shardId: string, mode: 'full' | 'sample', chunks: number): Promise<VerificationView> {
    const shard = this.#handle(shardId);
    if (!shard) {
      // Unknown ids are answered by the caller (404); reaching here means it was released meanwhile.
      throw new NotSealedError(shardId);
    }
    const r =
      mode === 'full'
        ? await this.#m.verify(shard)
        : await this.#m.verifySample(shard, { chunks: Math.max(1, chunks) });
    const v: VerificationView = {
      mode: r.mode,
      ok: true,
      chunks_checked: r.chunks_checked,
      duration_ms: r.duration_ms,
      verified_at: new Date().toISOString(),
    };
    this.#last.set(shardId, v);
    return v;
  }

  async release(shardId: string): Promise<{ freed_bytes: number }> {
    const shard = this.#handle(shardId);
    if (!shard) throw new NotSealedError(shardId);
    await this.#m.release(shard);
    this.#last.delete(shardId);
    this.#log?.info({ shard_id: shardId, freed_bytes: shard.vram_bytes }, 'shard released');
    return { freed_bytes: shard.vram_bytes };
  }

  get(shardId: string): ShardView | undefined {
    const s = this.#handle(shardId);
    return s ? view(s) : undefined;
  }

  lastVerification(shardId: string): VerificationView | undefined {
    return this.#last.get(shardId);
  }

  list(): ShardView[] {
    return this.#m.shards().map(view);
  }

  /**
   * Full background verification of every shard every `intervalMs`. The manager stops itself on a
   * failure; `onRun` reports each run for metrics.
   */
  startPeriodic(intervalMs: number, onRun?: (ok: boolean, ms: number) => void): void {
    const handle = this.#m.startPeriodicVerification({ intervalMs: Math.max(10, intervalMs), mode: 'full' });
    let seen = 0;
    let failures = 0;
    const poll = setInterval(
      () => {
        const s = handle.status();
        if (s.runs > seen) {
          seen = s.runs;
          const ok = s.failures === failures;
          failures = s.failures;
          onRun?.(ok, s.lastDurationMs ?? 0);
          if (!ok) this.#log?.fatal({ error: s.lastError }, 'periodic verification failed; worker stopped');
        }
        if (!s.running) clearInterval(poll);
      },
      Math.min(1000, Math.max(10, intervalMs)),
    );
    poll.unref();
    this.#periodic = {
      stop: async () => {
        clearInterval(poll);
        await handle.stop();
      },
    };
  }

  /** TEST ONLY (demo, tests): flips `length` bytes at `offset` in the shard's device memory. */
  async corruptForTest(shardId: string, offset: number, length = 1): Promise<void> {
    const shard = this.#handle(shardId);
    if (!shard) throw new Error(`no shard ${shardId}`);
    await this.#m.corruptForTesting(shard, offset, length);
  }

  async close(): Promise<void> {
    await this.#periodic?.stop();
    await this.#m.close();
  }
}

function view(s: SealedShard): ShardView {
  return s.toJSON() as ShardView;
}
