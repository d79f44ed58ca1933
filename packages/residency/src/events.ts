/**
 * The audit events the VramManager emits (a structural subset of `@vramseal/audit`'s `AuditEvent`,
 * CONTRACTS §1), and the sink interface it emits them to. Kept local so the residency core only
 * needs "something with emit() and health()"; the real `AuditLogger` satisfies {@link AuditSink}.
 */
import type { BackendKind } from './backend.js';

export type Severity = 'info' | 'warning' | 'high' | 'critical';

interface Base {
  timestamp: string;
}

export interface VramAllocatedEvent extends Base {
  type: 'vram.allocated';
  requested_bytes: number;
  allocated_bytes: number;
  available_bytes: number;
  used_bytes: number;
  gpu_device: number;
  worker_id: string;
  backend?: BackendKind;
}
export interface VramAllocationFailedEvent extends Base {
  type: 'vram.allocation_failed';
  requested_bytes: number;
  available_bytes: number;
  reason: string;
  gpu_device: number;
  worker_id: string;
  backend?: BackendKind;
}
export interface VramSealedEvent extends Base {
  type: 'vram.sealed';
  shard_id: string;
  gpu_device: number;
  vram_bytes: number;
  digest: string;
  worker_id: string;
  backend?: BackendKind;
  model_ref?: string;
  shard_index?: number;
  total_shards?: number;
  sealed_at?: string;
}
export interface SealVerifiedEvent extends Base {
  type: 'seal.verified';
  shard_id: string;
  worker_id: string;
  backend?: BackendKind;
  mode?: 'full' | 'sample';
  chunks_checked?: number;
  duration_ms?: number;
  digest?: string;
}
export interface SealVerificationFailedEvent extends Base {
  type: 'seal.verification_failed';
  shard_id: string;
  reason: string;
  expected_digest: string;
  actual_digest: string;
  worker_id: string;
  severity: Severity;
  backend?: BackendKind;
  corrupt_ranges?: { offset: number; length: number }[];
  chunks_failed?: number;
}
export interface VramDeallocatedEvent extends Base {
  type: 'vram.deallocated';
  shard_id: string;
  freed_bytes: number;
  remaining_used: number;
  gpu_device: number;
  worker_id: string;
  backend?: BackendKind;
  reason?: 'release' | 'close' | 'dispose' | 'error';
}
export interface PolicyViolationEvent extends Base {
  type: 'security.policy_violation';
  policy: string;
  violation: string;
  details: string;
  severity: Severity;
  worker_id: string;
  action_taken: string;
}
export interface IntegrityViolationEvent extends Base {
  type: 'security.integrity_violation';
  resource_type: string;
  resource_id: string;
  expected_hash: string;
  actual_hash: string;
  severity: Severity;
  action_taken: string;
  worker_id?: string;
}

/** Every event the manager emits. */
export type ResidencyEvent =
  | VramAllocatedEvent
  | VramAllocationFailedEvent
  | VramSealedEvent
  | SealVerifiedEvent
  | SealVerificationFailedEvent
  | VramDeallocatedEvent
  | PolicyViolationEvent
  | IntegrityViolationEvent;

export type ResidencyEventType = ResidencyEvent['type'];

/** The seven VRAM-lifecycle event types (issue 4). */
export const VRAM_EVENT_TYPES = [
  'vram.allocated',
  'vram.allocation_failed',
  'vram.sealed',
  'seal.verified',
  'seal.verification_failed',
  'vram.deallocated',
  'security.policy_violation',
] as const satisfies readonly ResidencyEventType[];

/**
 * Where the manager sends events: the real `AuditLogger`, or any object with the same two methods.
 * `emit` may throw synchronously (validation, trail unavailable); `durable` settles when the record
 * is on disk. The manager never leaves a `durable` rejection unhandled.
 */
export interface AuditSink {
  emit(event: ResidencyEvent): { durable: Promise<void> };
  health(): { state: 'ok' | 'degraded' | 'unavailable' | (string & {}); lastError?: string | undefined };
  /** Optional: write everything queued now (called after critical events). */
  flush?(): Promise<void>;
}
