/**
 * Errors of the trail writer beyond those in errors.ts. Each has a typed string `code`.
 * Messages never contain secrets (key bytes) or event values.
 */
import { AuditError } from './errors.js';

/** An option or environment given to the writer is unusable (names the option and the rule). */
export class AuditConfigError extends AuditError {
  declare readonly code: 'AUDIT_CONFIG';
  constructor(
    readonly option: string,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super('AUDIT_CONFIG', `${option}: ${message}`, opts);
  }
}

/**
 * The trail on disk is inconsistent in a way the writer must not paper over (a file the manifest
 * lists is missing or shorter than recorded, files exist without a manifest, the tail cannot be parsed).
 * The writer refuses to open; a person (or `vramseal audit verify`) must look.
 */
export class AuditCorruptError extends AuditError {
  declare readonly code: 'AUDIT_CORRUPT';
  constructor(
    readonly file: string,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super('AUDIT_CORRUPT', `${file}: ${message}`, opts);
  }
}

/**
 * A routine event was dropped because the queue was full and `queue.onFull` is `'drop'` (or the hard
 * cap was reached). Its receipt's `durable` rejects with this; the drop is counted and later recorded
 * in the trail as `audit.events_dropped`.
 */
export class AuditDroppedError extends AuditError {
  declare readonly code: 'AUDIT_DROPPED';
  constructor(
    readonly eventType: string,
    readonly reason: string,
  ) {
    super('AUDIT_DROPPED', `audit event ${eventType} dropped: ${reason}`);
  }
}
