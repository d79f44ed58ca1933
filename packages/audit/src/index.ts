export * from './canonical.js';
export { type Clock, ManualClock, systemClock, utcDay } from './clock.js';
export * from './errors.js';
export * from './events.js';
export * from './fingerprint.js';
export { type AuditFs, nodeFs, type StatLike } from './fs.js';
export * from './ip.js';
export { LOCK_FILE, type LockInfo } from './lock.js';
export * from './logger.js';
export * from './mac-key.js';
export * from './manifest.js';
export * from './platform/index.js';
export * from './query.js';
export type { AuditReceipt } from './queue.js';
export * from './record.js';
export * from './record-check.js';
export { QUARANTINE_DIR, type RecoveredTail } from './recovery.js';
export * from './retention.js';
export * from './rfc3339.js';
export * from './rotation.js';
export * from './stats.js';
export * from './tlog/index.js';
export {
  DEFAULT_MAX_LINE_BYTES,
  type FileScan,
  type LineSink,
  LineSplitter,
  readTrailLines as readTrailFileLines,
  scanTrailFile,
  type TrailLine,
} from './trail-reader.js';
export { type SealedRecord, TrailIoError } from './trail-writer.js';
export * from './validate.js';
export * from './verify.js';
export * from './writer-errors.js';
