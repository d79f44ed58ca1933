export type * from './backend.js';
export * from './backends.js';
export {
  type CudaBackend,
  type CudaBackendOptions,
  type CudaDigestTiming,
  openCudaBackend,
} from './cuda/index.js';
export * from './errors.js';
export * from './events.js';
export * from './manager.js';
export * from './merkle.js';
export { StreamingMerkle } from './merkle-stream.js';
export * from './policy.js';
export {
  computeSeal,
  deriveSealKey,
  encodeSealFields,
  SEAL_KEY_INFO,
  SEAL_SALT_PREFIX,
  SEAL_SCHEME,
  type SealFields,
  sealMatches,
} from './seal.js';
export { publicFields, SealedShard } from './shard.js';
export * from './simulated/index.js';
export {
  DEFAULT_CHUNK_BYTES,
  type OpenedSource,
  type OpenSourceOptions,
  openSource,
  type ShardSource,
} from './source.js';
