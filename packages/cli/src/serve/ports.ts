/**
 * The small interfaces the daemon's HTTP layer depends on. `residency.ts` adapts a `VramManager` to
 * {@link ResidencyPort}; the `AuditLogger` of @vramseal/audit satisfies {@link AuditPort} as is.
 */

export interface AuditPort {
  emit(event: never): { seq?: number; durable: Promise<void> };
  flush(): Promise<void>;
  close(): Promise<void>;
  health(): { state: string; queueDepth?: number; lastError?: string };
  stats?(): { dropped?: number; fsyncs?: number; fsyncAvgMs?: number; fsyncMaxMs?: number };
}

/** Public fields of a sealed shard (what `SealedShard.toJSON()` shows). */
export interface ShardView {
  shard_id: string;
  gpu_device: number;
  vram_bytes: number;
  digest: string;
  sealed_at: string;
  backend: string;
  model_ref?: string | undefined;
  shard_index?: number | undefined;
  total_shards?: number | undefined;
}

export interface CapacityView {
  device: number;
  total_bytes: number;
  used_bytes: number;
  available_bytes: number;
  reserve_bytes: number;
  max_model_bytes: number;
}

export interface DeviceView {
  device: number;
  name: string;
  backend: string;
  total_bytes: number;
  free_bytes: number;
  used_bytes: number;
}

export interface VerificationView {
  mode: 'full' | 'sample';
  ok: boolean;
  chunks_checked?: number | undefined;
  duration_ms: number;
  verified_at: string;
}

export interface SealOptions {
  device?: number | undefined;
  expectSha256?: string | undefined;
  shardId?: string | undefined;
  modelRef?: string | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

export interface ResidencyPort {
  readonly backend: string;
  /** `ready`, or `stopped` (with the reason) after a failed verification. */
  status(): { state: 'ready' | 'stopped'; reason?: string | undefined };
  devices(): Promise<DeviceView[]>;
  capacity(device: number): Promise<CapacityView>;
  seal(path: string, opts: SealOptions): Promise<ShardView>;
  /** Throws the manager's SealVerificationFailedError / StoppedError / NotSealedError. */
  verify(shardId: string, mode: 'full' | 'sample', chunks: number): Promise<VerificationView>;
  release(shardId: string): Promise<{ freed_bytes: number }>;
  get(shardId: string): ShardView | undefined;
  lastVerification(shardId: string): VerificationView | undefined;
  list(): ShardView[];
  /** Releases every shard and closes the backend. */
  close(): Promise<void>;
}
