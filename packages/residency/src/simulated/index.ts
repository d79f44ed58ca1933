export {
  DEFAULT_INLINE_DIGEST_BYTES,
  DEFAULT_SIM_VRAM_BYTES,
  parseByteSize,
  SIM_SEGMENT_BYTES,
  SimulatedBackend,
  type SimulatedBackendOptions,
} from './backend.js';
