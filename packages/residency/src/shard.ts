/**
 * SealedShard: the handle `VramManager.seal` returns. Its public fields are exactly the sealed
 * fields (seal.ts); the seal bytes and the device allocation stay private to this module (a
 * WeakMap, so they appear in no property, inspect() output, JSON or structured clone).
 *
 * The public fields are plain properties on purpose: changing one is not prevented but detected —
 * `verify` recomputes the HMAC over them and the manager stops on a mismatch.
 */
import { inspect } from 'node:util';
import type { BackendKind, DeviceAllocation } from './backend.js';
import type { SealFields } from './seal.js';

/** @internal What only the issuing manager can see. */
export interface ShardSecret {
  readonly seal: Uint8Array;
  readonly alloc: DeviceAllocation;
  /** Identity of the issuing manager. */
  readonly owner: object;
}

const secrets = new WeakMap<SealedShard, ShardSecret>();

export class SealedShard implements SealFields {
  shard_id: string;
  gpu_device: number;
  vram_bytes: number;
  digest: string;
  sealed_at: string;
  model_ref?: string | undefined;
  shard_index?: number | undefined;
  total_shards?: number | undefined;
  backend: BackendKind;

  /** @internal Use `VramManager.seal`; a handle built any other way never verifies. */
  constructor(fields: SealFields) {
    this.shard_id = fields.shard_id;
    this.gpu_device = fields.gpu_device;
    this.vram_bytes = fields.vram_bytes;
    this.digest = fields.digest;
    this.sealed_at = fields.sealed_at;
    if (fields.model_ref !== undefined) this.model_ref = fields.model_ref;
    if (fields.shard_index !== undefined) this.shard_index = fields.shard_index;
    if (fields.total_shards !== undefined) this.total_shards = fields.total_shards;
    this.backend = fields.backend;
  }

  /** The public fields only (never the seal or the device allocation). */
  toJSON(): SealFields {
    return publicFields(this);
  }

  [inspect.custom](): string {
    return `SealedShard ${inspect(this.toJSON())}`;
  }
}

/** Snapshot of the public fields of anything shaped like a handle (untrusted input is fine). */
export function publicFields(s: SealFields): SealFields {
  const f: SealFields = {
    shard_id: s.shard_id,
    digest: s.digest,
    sealed_at: s.sealed_at,
    gpu_device: s.gpu_device,
    vram_bytes: s.vram_bytes,
    backend: s.backend,
  };
  if (s.model_ref !== undefined) f.model_ref = s.model_ref;
  if (s.shard_index !== undefined) f.shard_index = s.shard_index;
  if (s.total_shards !== undefined) f.total_shards = s.total_shards;
  return f;
}

/** @internal */
export function mintShard(fields: SealFields, secret: ShardSecret): SealedShard {
  const s = new SealedShard(fields);
  secrets.set(s, secret);
  return s;
}

/** @internal The private part, or undefined for an object this module did not mint. */
export function shardSecret(s: unknown): ShardSecret | undefined {
  return typeof s === 'object' && s !== null ? secrets.get(s as SealedShard) : undefined;
}
