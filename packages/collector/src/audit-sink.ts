/**
 * The collector's own audit trail: admin queries (`audit.admin_query`) and rejected batches
 * (`security.integrity_violation`, `auth.failure`) are recorded there. The real AuditLogger
 * (`@vramseal/audit`) satisfies this interface; tests may use an in-memory one.
 */
import type { AuditEvent } from '@vramseal/audit';

export interface CollectorAuditSink {
  /** Validates and queues the event; `durable` settles once it is on disk. May throw synchronously. */
  emit(event: AuditEvent): { durable: Promise<void> };
}
