/**
 * The audit event taxonomy: every event type the trail records, as TypeBox schemas and the
 * TypeScript types derived from them. One union, {@link AuditEvent}, discriminated by `type`.
 *
 * Conventions (checked by {@link validateEvent}):
 * - field names are snake_case; every event has `type` and `timestamp` (strict RFC 3339, see rfc3339.ts);
 * - no fields beyond the schema (`additionalProperties: false`), except inside the two free-form
 *   objects `pool.modified.changes` and `audit.admin_query.query`, whose keys must match {@link KEY_PATTERN};
 * - string lengths are counted in characters (Unicode code points; an emoji counts one, as in JSON
 *   Schema): identifiers ≤ 256, free text ≤ 1024, paths ≤ 1024, hashes 64 or 128 hex digits;
 * - identifiers, paths and names are single-line (no tab or newline); free text may hold tab and newline;
 * - counts are non-negative safe integers; every number is finite.
 *
 * Shared shapes:
 * - actor    = { user_id, ip?, auth_method: 'bearer_token'|'api_key'|'mtls'|'internal', session_id? }
 * - resource = { resource_type, resource_id, parent_id? }
 * - result   = { status: 'success' } | { status: 'failure', reason } | { status: 'partial_success', details }
 * - severity = 'info' | 'warning' | 'high' | 'critical'
 *
 * Critical events (never dropped by a full queue; made durable at once in `hybrid` flush mode) are
 * those with `critical: true` in {@link EVENT_CATALOG}; see {@link CRITICAL_EVENT_TYPES}.
 */
import {
  FormatRegistry,
  type Static,
  type TObject,
  type TProperties,
  type TSchema,
  Type,
} from '@sinclair/typebox';
import { TOKEN_FINGERPRINT_PATTERN } from './fingerprint.js';
import { isIp, MAX_IP_INPUT_LENGTH } from './ip.js';
import { isRfc3339, MAX_TIMESTAMP_LENGTH } from './rfc3339.js';

// ---------------------------------------------------------------------------------------------
// Limits and formats
// ---------------------------------------------------------------------------------------------

/** Length and size limits of event fields (string lengths in characters, i.e. Unicode code points). */
export const LIMITS = {
  /** identifiers: user_id, shard_id, model_ref, ... */
  id: 256,
  /** free text: reason, details, message, ... */
  text: 1024,
  /** request paths, endpoints, file paths */
  path: 1024,
  /** items in a list of identifiers (scope[], data_types[], ...) */
  list: 256,
  /** gpu_devices[] and corrupt_ranges[] */
  smallList: 64,
  /** keys in a free-form object (changes{}, query{}) */
  freeFormKeys: 64,
  /** key length in a free-form object */
  key: 64,
  /** nesting depth below the event object (the event's own fields are depth 1) */
  depth: 6,
  /** any array anywhere (the per-field limits above are tighter) */
  array: 256,
  /** sum of the lengths (UTF-16 code units) of the scanned strings (free-form keys included) in one event */
  totalChars: 64 * 1024,
} as const;

/** TypeBox format name of strict RFC 3339 date-times (registered on import). */
export const TIMESTAMP_FORMAT = 'vramseal-rfc3339';
/** TypeBox format name of IPv4/IPv6 addresses accepted by {@link parseIp} (registered on import). */
export const IP_FORMAT = 'vramseal-ip';
/** TypeBox format name of digests ({@link DIGEST_PATTERN}, checked without a regex; registered on import). */
export const DIGEST_FORMAT = 'vramseal-digest';
FormatRegistry.Set(TIMESTAMP_FORMAT, isRfc3339);
FormatRegistry.Set(IP_FORMAT, isIp);
FormatRegistry.Set(DIGEST_FORMAT, isDigest);

// Sticky: tested from lastIndex to the end of the string, without slicing it.
const HEX_TAIL = /[0-9a-f]+$/y;

/** True when `s` matches {@link DIGEST_PATTERN}: `[<scheme>:[<digits>:]]<64 or 128 lower-case hex>`. */
export function isDigest(s: string): boolean {
  const n = s.length;
  // The hex part is the last 64 or 128 characters; a ':' can only stand right before it.
  let p: number;
  if (n > 64 && s.charCodeAt(n - 65) === 0x3a) p = n - 65;
  else if (n > 128 && s.charCodeAt(n - 129) === 0x3a) p = n - 129;
  else if (n === 64 || n === 128) p = -1;
  else return false;
  HEX_TAIL.lastIndex = p + 1;
  if (!HEX_TAIL.test(s)) return false;
  if (p === -1) return true;
  // scheme = [a-z0-9][a-z0-9-]{0,31}, then ':' and optionally parameter = [0-9]{1,9} and ':'
  let i = 0;
  for (; i < p; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x3a) break;
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || (c === 0x2d && i > 0))) return false;
  }
  if (i === 0 || i > 32) return false;
  if (i === p) return true;
  const digits = p - i - 1;
  if (digits < 1 || digits > 9) return false;
  for (let j = i + 1; j < p; j++) {
    const c = s.charCodeAt(j);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** Single line: no tab, no newline (other control characters are refused everywhere). */
export const SINGLE_LINE_PATTERN = '^[^\\t\\n]*$';
/** Keys of free-form objects. */
export const KEY_PATTERN = '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$';
/** A hash: 64 (SHA-256) or 128 (SHA-512) lower-case hex digits. */
export const HASH_PATTERN = '^(?:[0-9a-f]{64}|[0-9a-f]{128})$';
/** A digest: a hash, optionally prefixed by `<scheme>:` and `<parameter>:` (e.g. `sha256-merkle-v1:16384:<hex>`). */
export const DIGEST_PATTERN = '^(?:[a-z0-9][a-z0-9-]{0,31}:(?:[0-9]{1,9}:)?)?(?:[0-9a-f]{64}|[0-9a-f]{128})$';
/** A SHA-256 in hex: exactly 64 lower-case hex digits. */
export const SHA256_PATTERN = '^[0-9a-f]{64}$';
/** A request method (an RFC 9110 §5.6.2 token, e.g. `GET`). */
export const METHOD_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$";
/** What `security.invalid_token_used.token_prefix` may hold: a fingerprint, or at most 8 visible ASCII characters. */
export const TOKEN_PREFIX_PATTERN = '^(?:token:[0-9a-f]{6}|[\\x21-\\x7e]{1,8})$';

// ---------------------------------------------------------------------------------------------
// Field types
// ---------------------------------------------------------------------------------------------

const Id = () => Type.String({ minLength: 1, maxLength: LIMITS.id, pattern: SINGLE_LINE_PATTERN });
const Text = () => Type.String({ maxLength: LIMITS.text });
const PathStr = () => Type.String({ minLength: 1, maxLength: LIMITS.path, pattern: SINGLE_LINE_PATTERN });
const Timestamp = () => Type.String({ format: TIMESTAMP_FORMAT, maxLength: MAX_TIMESTAMP_LENGTH });
const Ip = () => Type.String({ format: IP_FORMAT, maxLength: MAX_IP_INPUT_LENGTH });
const Sha256 = () => Type.String({ maxLength: 64, pattern: SHA256_PATTERN });
const Digest = () => Type.String({ maxLength: 180, format: DIGEST_FORMAT });
const Count = () => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Seq = () => Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });
const NonNegative = () => Type.Number({ minimum: 0 });
const GpuDevice = () => Type.Integer({ minimum: 0, maximum: 65535 });
const IdList = () => Type.Array(Id(), { maxItems: LIMITS.list });

export const AuthMethodSchema = Type.Union([
  Type.Literal('bearer_token'),
  Type.Literal('api_key'),
  Type.Literal('mtls'),
  Type.Literal('internal'),
]);
export type AuthMethod = Static<typeof AuthMethodSchema>;

export const SeveritySchema = Type.Union([
  Type.Literal('info'),
  Type.Literal('warning'),
  Type.Literal('high'),
  Type.Literal('critical'),
]);
export type Severity = Static<typeof SeveritySchema>;

export const BackendKindSchema = Type.Union([Type.Literal('cuda'), Type.Literal('simulated')]);
export type BackendKind = Static<typeof BackendKindSchema>;

/** Who did it. `ip` is stored normalized (see ip.ts). */
export const ActorSchema = Type.Object(
  {
    user_id: Id(),
    ip: Type.Optional(Ip()),
    auth_method: AuthMethodSchema,
    session_id: Type.Optional(Id()),
  },
  { additionalProperties: false },
);
export type Actor = Static<typeof ActorSchema>;

/** What it was done to. */
export const ResourceSchema = Type.Object(
  { resource_type: Id(), resource_id: Id(), parent_id: Type.Optional(Id()) },
  { additionalProperties: false },
);
export type Resource = Static<typeof ResourceSchema>;

/** Outcome of a task or job: `{status:'success'}`, `{status:'failure',reason}` or `{status:'partial_success',details}`. */
export const ResultSchema = Type.Union([
  Type.Object({ status: Type.Literal('success') }, { additionalProperties: false }),
  Type.Object({ status: Type.Literal('failure'), reason: Text() }, { additionalProperties: false }),
  Type.Object({ status: Type.Literal('partial_success'), details: Text() }, { additionalProperties: false }),
]);
export type Result = Static<typeof ResultSchema>;

/** A corrupt byte range found by a seal verification. */
export const ByteRangeSchema = Type.Object(
  { offset: Count(), length: Count() },
  { additionalProperties: false },
);

/** Free-form `pool.modified.changes`: keys per {@link KEY_PATTERN}, JSON values (checked by the validator's walk). */
export const ChangesSchema = Type.Record(Type.String({ pattern: KEY_PATTERN }), Type.Unknown(), {
  maxProperties: LIMITS.freeFormKeys,
  additionalProperties: false,
});

/** Free-form `audit.admin_query.query`: flat map of strings, numbers and booleans. */
export const QuerySchema = Type.Record(
  Type.String({ pattern: KEY_PATTERN }),
  Type.Union([Text(), Type.Number(), Type.Boolean()]),
  { maxProperties: LIMITS.freeFormKeys, additionalProperties: false },
);

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

export type EventCategory =
  | 'auth'
  | 'authz'
  | 'resource'
  | 'vram'
  | 'security'
  | 'data'
  | 'compliance'
  | 'audit';

/** Static facts about an event type. */
export interface EventInfo {
  category: EventCategory;
  /** Critical events are never dropped and are made durable at once in `hybrid` mode. */
  critical: boolean;
  description: string;
}

function ev<T extends string, P extends TProperties>(type: T, props: P, description: string) {
  return Type.Object(
    { type: Type.Literal(type), timestamp: Timestamp(), ...props },
    { additionalProperties: false, description },
  );
}

const backend = () => Type.Optional(BackendKindSchema);

// auth
export const AuthSuccessSchema = ev(
  'auth.success',
  { actor: ActorSchema, method: Type.String({ pattern: METHOD_PATTERN }), path: PathStr(), service_id: Id() },
  'A request authenticated.',
);
export const AuthFailureSchema = ev(
  'auth.failure',
  { attempted_user: Type.Optional(Id()), reason: Text(), ip: Ip(), path: PathStr(), service_id: Id() },
  'A request failed to authenticate.',
);
export const TokenCreatedSchema = ev(
  'token.created',
  {
    actor: ActorSchema,
    token_fingerprint: Type.String({ pattern: TOKEN_FINGERPRINT_PATTERN }),
    scope: IdList(),
    expires_at: Type.Optional(Timestamp()),
  },
  'An API token was issued (referred to by tokenFingerprint(), never by value).',
);
export const TokenRevokedSchema = ev(
  'token.revoked',
  {
    actor: ActorSchema,
    token_fingerprint: Type.String({ pattern: TOKEN_FINGERPRINT_PATTERN }),
    reason: Text(),
  },
  'An API token was revoked.',
);

// authz
export const AuthzGrantedSchema = ev(
  'authz.granted',
  { actor: ActorSchema, resource: ResourceSchema, action: Id() },
  'An action on a resource was allowed.',
);
export const AuthzDeniedSchema = ev(
  'authz.denied',
  { actor: ActorSchema, resource: ResourceSchema, action: Id(), reason: Text() },
  'An action on a resource was refused.',
);
export const AuthzPermissionChangedSchema = ev(
  'authz.permission_changed',
  { actor: ActorSchema, subject: Id(), old_permissions: IdList(), new_permissions: IdList() },
  "A subject's permissions changed.",
);

// resources
export const PoolCreatedSchema = ev(
  'pool.created',
  {
    actor: ActorSchema,
    pool_id: Id(),
    model_ref: Id(),
    node_id: Id(),
    replicas: Count(),
    gpu_devices: Type.Array(GpuDevice(), { maxItems: LIMITS.smallList }),
  },
  'A worker pool was created.',
);
export const PoolDeletedSchema = ev(
  'pool.deleted',
  {
    actor: ActorSchema,
    pool_id: Id(),
    model_ref: Id(),
    node_id: Id(),
    reason: Text(),
    replicas_terminated: Count(),
  },
  'A worker pool was deleted.',
);
export const PoolModifiedSchema = ev(
  'pool.modified',
  { actor: ActorSchema, pool_id: Id(), changes: ChangesSchema },
  'A worker pool was reconfigured; `changes` is a free-form JSON object.',
);
export const NodeRegisteredSchema = ev(
  'node.registered',
  {
    actor: ActorSchema,
    node_id: Id(),
    gpu_count: Count(),
    total_vram_gb: NonNegative(),
    capabilities: IdList(),
  },
  'A GPU node joined.',
);
export const NodeDeregisteredSchema = ev(
  'node.deregistered',
  { actor: ActorSchema, node_id: Id(), reason: Text(), pools_affected: IdList() },
  'A GPU node left.',
);
export const TaskSubmittedSchema = ev(
  'task.submitted',
  {
    actor: ActorSchema,
    task_id: Id(),
    model_ref: Id(),
    prompt_length: Count(),
    prompt_hash: Digest(),
    max_tokens: Count(),
  },
  'An inference task was submitted (the prompt only by length and hash).',
);
export const TaskCompletedSchema = ev(
  'task.completed',
  {
    task_id: Id(),
    worker_id: Id(),
    tokens_generated: Count(),
    duration_ms: NonNegative(),
    result: ResultSchema,
  },
  'An inference task finished.',
);
export const TaskCanceledSchema = ev(
  'task.canceled',
  { actor: ActorSchema, task_id: Id(), reason: Text() },
  'An inference task was canceled.',
);

// vram
export const VramSealedSchema = ev(
  'vram.sealed',
  {
    shard_id: Id(),
    gpu_device: GpuDevice(),
    vram_bytes: Count(),
    digest: Digest(),
    worker_id: Id(),
    backend: backend(),
    model_ref: Type.Optional(Id()),
    shard_index: Type.Optional(Count()),
    total_shards: Type.Optional(Count()),
    sealed_at: Type.Optional(Timestamp()),
  },
  'A model shard was loaded into VRAM, digested and sealed.',
);
export const SealVerifiedSchema = ev(
  'seal.verified',
  {
    shard_id: Id(),
    worker_id: Id(),
    backend: backend(),
    mode: Type.Optional(Type.Union([Type.Literal('full'), Type.Literal('sample')])),
    chunks_checked: Type.Optional(Count()),
    duration_ms: Type.Optional(NonNegative()),
    digest: Type.Optional(Digest()),
  },
  'The GPU-resident bytes of a sealed shard matched their seal.',
);
export const SealVerificationFailedSchema = ev(
  'seal.verification_failed',
  {
    shard_id: Id(),
    reason: Text(),
    expected_digest: Digest(),
    actual_digest: Digest(),
    worker_id: Id(),
    severity: SeveritySchema,
    backend: backend(),
    corrupt_ranges: Type.Optional(Type.Array(ByteRangeSchema, { maxItems: LIMITS.smallList })),
    chunks_failed: Type.Optional(Count()),
  },
  'The GPU-resident bytes of a sealed shard did NOT match their seal.',
);
export const VramAllocatedSchema = ev(
  'vram.allocated',
  {
    requested_bytes: Count(),
    allocated_bytes: Count(),
    available_bytes: Count(),
    used_bytes: Count(),
    gpu_device: GpuDevice(),
    worker_id: Id(),
    backend: backend(),
  },
  'Device memory was allocated.',
);
export const VramAllocationFailedSchema = ev(
  'vram.allocation_failed',
  {
    requested_bytes: Count(),
    available_bytes: Count(),
    reason: Text(),
    gpu_device: GpuDevice(),
    worker_id: Id(),
    backend: backend(),
  },
  'A device memory allocation was refused.',
);
export const VramDeallocatedSchema = ev(
  'vram.deallocated',
  {
    shard_id: Id(),
    freed_bytes: Count(),
    remaining_used: Count(),
    gpu_device: GpuDevice(),
    worker_id: Id(),
    backend: backend(),
    reason: Type.Optional(
      Type.Union([
        Type.Literal('release'),
        Type.Literal('close'),
        Type.Literal('dispose'),
        Type.Literal('error'),
      ]),
    ),
  },
  'Device memory holding a shard was freed.',
);

// security
export const RateLimitExceededSchema = ev(
  'security.rate_limit_exceeded',
  { ip: Ip(), endpoint: PathStr(), limit: Count(), actual: Count(), window_seconds: NonNegative() },
  'A client exceeded a rate limit.',
);
export const PathTraversalAttemptSchema = ev(
  'security.path_traversal_attempt',
  { actor: ActorSchema, attempted_path: Text(), endpoint: PathStr() },
  'A request tried to escape a directory (record the path through escapeForAudit()).',
);
export const InvalidTokenUsedSchema = ev(
  'security.invalid_token_used',
  { ip: Ip(), token_prefix: Type.String({ pattern: TOKEN_PREFIX_PATTERN }), endpoint: PathStr() },
  'A request presented an unknown, expired or revoked token (identified by fingerprint or ≤ 8-char prefix).',
);
export const PolicyViolationSchema = ev(
  'security.policy_violation',
  {
    policy: Id(),
    violation: Text(),
    details: Text(),
    severity: SeveritySchema,
    worker_id: Id(),
    action_taken: Id(),
  },
  'A residency or security policy was violated.',
);
export const SuspiciousActivitySchema = ev(
  'security.suspicious_activity',
  {
    actor: ActorSchema,
    activity_type: Id(),
    details: Text(),
    risk_score: Type.Number({ minimum: 0, maximum: 100 }),
  },
  'Behaviour that looks like an attack (risk_score 0–100).',
);
export const IntegrityViolationSchema = ev(
  'security.integrity_violation',
  {
    resource_type: Id(),
    resource_id: Id(),
    expected_hash: Digest(),
    actual_hash: Digest(),
    severity: SeveritySchema,
    action_taken: Id(),
    worker_id: Type.Optional(Id()),
  },
  'Data did not match its recorded hash.',
);
export const MalformedModelRejectedSchema = ev(
  'security.malformed_model_rejected',
  {
    model_ref: Id(),
    validation_error: Text(),
    severity: SeveritySchema,
    action_taken: Id(),
    worker_id: Type.Optional(Id()),
  },
  'A model file failed validation and was refused.',
);
export const ResourceLimitViolationSchema = ev(
  'security.resource_limit_violation',
  {
    resource_type: Id(),
    limit_type: Id(),
    limit_value: NonNegative(),
    actual_value: NonNegative(),
    severity: SeveritySchema,
    action_taken: Id(),
    worker_id: Type.Optional(Id()),
  },
  'A resource limit was exceeded.',
);

// data (GDPR Art. 30 records of processing)
export const InferenceExecutedSchema = ev(
  'data.inference_executed',
  {
    customer_id: Id(),
    job_id: Id(),
    model_ref: Id(),
    tokens_processed: Count(),
    provider_id: Type.Optional(Id()),
    result: ResultSchema,
  },
  "Inference ran on a customer's data.",
);
export const ModelAccessedSchema = ev(
  'data.model_accessed',
  { customer_id: Id(), model_ref: Id(), access_type: Id(), provider_id: Type.Optional(Id()) },
  "A customer's model was accessed.",
);
export const DataDeletedSchema = ev(
  'data.deleted',
  { customer_id: Id(), data_types: IdList(), reason: Text() },
  "A customer's data was deleted.",
);

// compliance
export const GdprDataAccessRequestSchema = ev(
  'compliance.gdpr_data_access_request',
  { customer_id: Id(), requester: Id(), scope: IdList() },
  'A data subject access request (GDPR Art. 15) was received.',
);
export const GdprDataExportSchema = ev(
  'compliance.gdpr_data_export',
  { customer_id: Id(), data_types: IdList(), export_format: Id(), file_hash: Digest() },
  "A customer's data was exported (GDPR Art. 20).",
);
export const GdprRightToErasureSchema = ev(
  'compliance.gdpr_right_to_erasure',
  { customer_id: Id(), completed_at: Timestamp(), data_types_deleted: IdList() },
  'An erasure request (GDPR Art. 17) was completed.',
);

// the trail's own events
export const AuditRecoveredSchema = ev(
  'audit.recovered',
  { file: PathStr(), quarantine_file: PathStr(), bytes: Count(), reason: Text() },
  'A torn tail (crash mid-write) was moved to a quarantine file on restart.',
);
export const AuditEventsDroppedSchema = ev(
  'audit.events_dropped',
  {
    count: Count(),
    reason: Text(),
    first_dropped_at: Type.Optional(Timestamp()),
    last_dropped_at: Type.Optional(Timestamp()),
  },
  'Routine events were dropped because the queue was full.',
);
export const AuditFileArchivedSchema = ev(
  'audit.file_archived',
  { file: PathStr(), archive: PathStr(), first_seq: Seq(), last_seq: Seq(), sha256: Sha256() },
  'A closed trail file was archived by retention.',
);
export const AuditFileDeletedSchema = ev(
  'audit.file_deleted',
  { file: PathStr(), first_seq: Seq(), last_seq: Seq(), sha256: Sha256(), reason: Text() },
  'A closed trail file was deleted by retention.',
);
export const AuditAdminQuerySchema = ev(
  'audit.admin_query',
  { actor: ActorSchema, reason: Text(), query: QuerySchema },
  'Someone queried the audit trail.',
);
export const AuditCheckpointSchema = ev(
  'audit.checkpoint',
  { tree_size: Count(), root_hash: Sha256(), checkpoint_hash: Type.Optional(Sha256()) },
  'A checkpoint of the trail was taken.',
);
export const AuditIoErrorSchema = ev(
  'audit.io_error',
  { operation: Id(), code: Id(), message: Text() },
  'The trail writer hit an I/O error (recorded once it could write again).',
);

/** Every event schema, by `type`. */
export const EVENT_SCHEMAS = {
  'auth.success': AuthSuccessSchema,
  'auth.failure': AuthFailureSchema,
  'token.created': TokenCreatedSchema,
  'token.revoked': TokenRevokedSchema,
  'authz.granted': AuthzGrantedSchema,
  'authz.denied': AuthzDeniedSchema,
  'authz.permission_changed': AuthzPermissionChangedSchema,
  'pool.created': PoolCreatedSchema,
  'pool.deleted': PoolDeletedSchema,
  'pool.modified': PoolModifiedSchema,
  'node.registered': NodeRegisteredSchema,
  'node.deregistered': NodeDeregisteredSchema,
  'task.submitted': TaskSubmittedSchema,
  'task.completed': TaskCompletedSchema,
  'task.canceled': TaskCanceledSchema,
  'vram.sealed': VramSealedSchema,
  'seal.verified': SealVerifiedSchema,
  'seal.verification_failed': SealVerificationFailedSchema,
  'vram.allocated': VramAllocatedSchema,
  'vram.allocation_failed': VramAllocationFailedSchema,
  'vram.deallocated': VramDeallocatedSchema,
  'security.rate_limit_exceeded': RateLimitExceededSchema,
  'security.path_traversal_attempt': PathTraversalAttemptSchema,
  'security.invalid_token_used': InvalidTokenUsedSchema,
  'security.policy_violation': PolicyViolationSchema,
  'security.suspicious_activity': SuspiciousActivitySchema,
  'security.integrity_violation': IntegrityViolationSchema,
  'security.malformed_model_rejected': MalformedModelRejectedSchema,
  'security.resource_limit_violation': ResourceLimitViolationSchema,
  'data.inference_executed': InferenceExecutedSchema,
  'data.model_accessed': ModelAccessedSchema,
  'data.deleted': DataDeletedSchema,
  'compliance.gdpr_data_access_request': GdprDataAccessRequestSchema,
  'compliance.gdpr_data_export': GdprDataExportSchema,
  'compliance.gdpr_right_to_erasure': GdprRightToErasureSchema,
  'audit.recovered': AuditRecoveredSchema,
  'audit.events_dropped': AuditEventsDroppedSchema,
  'audit.file_archived': AuditFileArchivedSchema,
  'audit.file_deleted': AuditFileDeletedSchema,
  'audit.admin_query': AuditAdminQuerySchema,
  'audit.checkpoint': AuditCheckpointSchema,
  'audit.io_error': AuditIoErrorSchema,
} as const satisfies Record<string, TObject>;

type Schemas = typeof EVENT_SCHEMAS;
/** Every event type name (`'vram.sealed'`, ...). */
export type AuditEventType = keyof Schemas;
/** One audit event: the union of all event types, discriminated by `type`. */
export type AuditEvent = { [K in AuditEventType]: Static<Schemas[K]> }[AuditEventType];
/** The event type named `T`. */
export type AuditEventOf<T extends AuditEventType> = Static<Schemas[T]>;

export type AuthSuccessEvent = AuditEventOf<'auth.success'>;
export type AuthFailureEvent = AuditEventOf<'auth.failure'>;
export type TokenCreatedEvent = AuditEventOf<'token.created'>;
export type TokenRevokedEvent = AuditEventOf<'token.revoked'>;
export type AuthzGrantedEvent = AuditEventOf<'authz.granted'>;
export type AuthzDeniedEvent = AuditEventOf<'authz.denied'>;
export type AuthzPermissionChangedEvent = AuditEventOf<'authz.permission_changed'>;
export type PoolCreatedEvent = AuditEventOf<'pool.created'>;
export type PoolDeletedEvent = AuditEventOf<'pool.deleted'>;
export type PoolModifiedEvent = AuditEventOf<'pool.modified'>;
export type NodeRegisteredEvent = AuditEventOf<'node.registered'>;
export type NodeDeregisteredEvent = AuditEventOf<'node.deregistered'>;
export type TaskSubmittedEvent = AuditEventOf<'task.submitted'>;
export type TaskCompletedEvent = AuditEventOf<'task.completed'>;
export type TaskCanceledEvent = AuditEventOf<'task.canceled'>;
export type VramSealedEvent = AuditEventOf<'vram.sealed'>;
export type SealVerifiedEvent = AuditEventOf<'seal.verified'>;
export type SealVerificationFailedEvent = AuditEventOf<'seal.verification_failed'>;
export type VramAllocatedEvent = AuditEventOf<'vram.allocated'>;
export type VramAllocationFailedEvent = AuditEventOf<'vram.allocation_failed'>;
export type VramDeallocatedEvent = AuditEventOf<'vram.deallocated'>;
export type RateLimitExceededEvent = AuditEventOf<'security.rate_limit_exceeded'>;
export type PathTraversalAttemptEvent = AuditEventOf<'security.path_traversal_attempt'>;
export type InvalidTokenUsedEvent = AuditEventOf<'security.invalid_token_used'>;
export type PolicyViolationEvent = AuditEventOf<'security.policy_violation'>;
export type SuspiciousActivityEvent = AuditEventOf<'security.suspicious_activity'>;
export type IntegrityViolationEvent = AuditEventOf<'security.integrity_violation'>;
export type MalformedModelRejectedEvent = AuditEventOf<'security.malformed_model_rejected'>;
export type ResourceLimitViolationEvent = AuditEventOf<'security.resource_limit_violation'>;
export type InferenceExecutedEvent = AuditEventOf<'data.inference_executed'>;
export type ModelAccessedEvent = AuditEventOf<'data.model_accessed'>;
export type DataDeletedEvent = AuditEventOf<'data.deleted'>;
export type GdprDataAccessRequestEvent = AuditEventOf<'compliance.gdpr_data_access_request'>;
export type GdprDataExportEvent = AuditEventOf<'compliance.gdpr_data_export'>;
export type GdprRightToErasureEvent = AuditEventOf<'compliance.gdpr_right_to_erasure'>;
export type AuditRecoveredEvent = AuditEventOf<'audit.recovered'>;
export type AuditEventsDroppedEvent = AuditEventOf<'audit.events_dropped'>;
export type AuditFileArchivedEvent = AuditEventOf<'audit.file_archived'>;
export type AuditFileDeletedEvent = AuditEventOf<'audit.file_deleted'>;
export type AuditAdminQueryEvent = AuditEventOf<'audit.admin_query'>;
export type AuditCheckpointEvent = AuditEventOf<'audit.checkpoint'>;
export type AuditIoErrorEvent = AuditEventOf<'audit.io_error'>;

function deepFreeze(o: unknown): void {
  if (typeof o !== 'object' || o === null || Object.isFrozen(o)) return;
  Object.freeze(o);
  for (const v of Object.values(o)) deepFreeze(v);
}
// The schemas are compiled once (validate.ts); freezing them keeps docs and checks in agreement.
deepFreeze(EVENT_SCHEMAS);

/** Every event type name, in catalog order. */
export const AUDIT_EVENT_TYPES: readonly AuditEventType[] = Object.freeze(
  Object.keys(EVENT_SCHEMAS) as AuditEventType[],
);

const CRITICAL: readonly AuditEventType[] = [
  'auth.failure',
  'token.revoked',
  'seal.verification_failed',
  'security.path_traversal_attempt',
  'security.invalid_token_used',
  'security.policy_violation',
  'security.suspicious_activity',
  'security.integrity_violation',
  'security.malformed_model_rejected',
  'security.resource_limit_violation',
  'audit.recovered',
];

function categoryOf(type: AuditEventType): EventCategory {
  const prefix = type.slice(0, type.indexOf('.'));
  switch (prefix) {
    case 'auth':
    case 'token':
      return 'auth';
    case 'authz':
      return 'authz';
    case 'pool':
    case 'node':
    case 'task':
      return 'resource';
    case 'vram':
    case 'seal':
      return 'vram';
    case 'security':
    case 'data':
    case 'compliance':
    case 'audit':
      return prefix;
    default:
      throw new Error(`no category for ${type}`);
  }
}

/** Category, criticality and description of every event type. */
export const EVENT_CATALOG: Readonly<Record<AuditEventType, Readonly<EventInfo>>> = Object.freeze(
  Object.fromEntries(
    AUDIT_EVENT_TYPES.map((t) => [
      t,
      Object.freeze({
        category: categoryOf(t),
        critical: CRITICAL.includes(t),
        description: (EVENT_SCHEMAS[t] as TSchema).description as string,
      }),
    ]),
  ) as Record<AuditEventType, EventInfo>,
);

/** A set that cannot be changed at run time either (a cast to `Set` and `.add()` would otherwise work). */
class FrozenSet<T> implements ReadonlySet<T> {
  readonly #s: Set<T>;
  constructor(items: Iterable<T>) {
    this.#s = new Set(items);
    Object.freeze(this);
  }
  get size(): number {
    return this.#s.size;
  }
  has(v: T): boolean {
    return this.#s.has(v);
  }
  forEach(cb: (value: T, key: T, set: ReadonlySet<T>) => void, thisArg?: unknown): void {
    for (const v of this.#s) cb.call(thisArg, v, v, this);
  }
  entries(): SetIterator<[T, T]> {
    return this.#s.entries();
  }
  keys(): SetIterator<T> {
    return this.#s.keys();
  }
  values(): SetIterator<T> {
    return this.#s.values();
  }
  [Symbol.iterator](): SetIterator<T> {
    return this.#s.values();
  }
}

/** The critical event types: the 10 marked `*` in the taxonomy, plus `audit.recovered`. Immutable. */
export const CRITICAL_EVENT_TYPES: ReadonlySet<AuditEventType> = new FrozenSet(CRITICAL);

const KNOWN: ReadonlySet<string> = new Set(AUDIT_EVENT_TYPES);

/** True when `type` names a critical event type. */
export function isCriticalEvent(type: string): boolean {
  return CRITICAL_EVENT_TYPES.has(type as AuditEventType);
}

/** True when `type` names a known event type. */
export function isAuditEventType(type: unknown): type is AuditEventType {
  return typeof type === 'string' && KNOWN.has(type);
}

/** The JSON Schema of the whole union (for documentation and external validators). */
export const AuditEventSchema = Type.Union(Object.values(EVENT_SCHEMAS) as TObject[], {
  description: 'A vramseal audit event, discriminated by `type`.',
});
