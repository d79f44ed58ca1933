import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import fc from 'fast-check';
import { AuditValidationError } from '../src/errors.js';
import {
  AUDIT_EVENT_TYPES,
  type AuditEvent,
  CRITICAL_EVENT_TYPES,
  DIGEST_PATTERN,
  EVENT_CATALOG,
  EVENT_SCHEMAS,
  isAuditEventType,
  isCriticalEvent,
  isDigest,
  type VramSealedEvent,
} from '../src/events.js';
import { validateEvent } from '../src/validate.js';
import { SAMPLE_EVENTS, sample } from './fixtures/sample-events.js';

/** The 35 event types of issue 2, in its order; `*` = critical. */
const ISSUE_TYPES = `auth.success auth.failure* token.created token.revoked* authz.granted authz.denied
  authz.permission_changed pool.created pool.deleted pool.modified node.registered node.deregistered task.submitted
  task.completed task.canceled vram.sealed seal.verified seal.verification_failed* vram.allocated
  vram.allocation_failed vram.deallocated security.rate_limit_exceeded security.path_traversal_attempt*
  security.invalid_token_used* security.policy_violation* security.suspicious_activity*
  security.integrity_violation* security.malformed_model_rejected* security.resource_limit_violation*
  data.inference_executed data.model_accessed data.deleted compliance.gdpr_data_access_request
  compliance.gdpr_data_export compliance.gdpr_right_to_erasure`
  .split(/\s+/)
  .filter(Boolean);

const TRAIL_TYPES = [
  'audit.recovered',
  'audit.events_dropped',
  'audit.file_archived',
  'audit.file_deleted',
  'audit.admin_query',
  'audit.checkpoint',
  'audit.io_error',
];

/** Fields per type as listed in issue 2 and CONTRACTS.md §1 (`?` = optional). */
const FIELDS: Record<string, string> = {
  'auth.success': 'actor method path service_id',
  'auth.failure': 'attempted_user? reason ip path service_id',
  'token.created': 'actor token_fingerprint scope expires_at?',
  'token.revoked': 'actor token_fingerprint reason',
  'authz.granted': 'actor resource action',
  'authz.denied': 'actor resource action reason',
  'authz.permission_changed': 'actor subject old_permissions new_permissions',
  'pool.created': 'actor pool_id model_ref node_id replicas gpu_devices',
  'pool.deleted': 'actor pool_id model_ref node_id reason replicas_terminated',
  'pool.modified': 'actor pool_id changes',
  'node.registered': 'actor node_id gpu_count total_vram_gb capabilities',
  'node.deregistered': 'actor node_id reason pools_affected',
  'task.submitted': 'actor task_id model_ref prompt_length prompt_hash max_tokens',
  'task.completed': 'task_id worker_id tokens_generated duration_ms result',
  'task.canceled': 'actor task_id reason',
  'vram.sealed':
    'shard_id gpu_device vram_bytes digest worker_id backend? model_ref? shard_index? total_shards? sealed_at?',
  'seal.verified': 'shard_id worker_id backend? mode? chunks_checked? duration_ms? digest?',
  'seal.verification_failed':
    'shard_id reason expected_digest actual_digest worker_id severity backend? corrupt_ranges? chunks_failed?',
  'vram.allocated':
    'requested_bytes allocated_bytes available_bytes used_bytes gpu_device worker_id backend?',
  'vram.allocation_failed': 'requested_bytes available_bytes reason gpu_device worker_id backend?',
  'vram.deallocated': 'shard_id freed_bytes remaining_used gpu_device worker_id backend? reason?',
  'security.rate_limit_exceeded': 'ip endpoint limit actual window_seconds',
  'security.path_traversal_attempt': 'actor attempted_path endpoint',
  'security.invalid_token_used': 'ip token_prefix endpoint',
  'security.policy_violation': 'policy violation details severity worker_id action_taken',
  'security.suspicious_activity': 'actor activity_type details risk_score',
  'security.integrity_violation':
    'resource_type resource_id expected_hash actual_hash severity action_taken worker_id?',
  'security.malformed_model_rejected': 'model_ref validation_error severity action_taken worker_id?',
  'security.resource_limit_violation':
    'resource_type limit_type limit_value actual_value severity action_taken worker_id?',
  'data.inference_executed': 'customer_id job_id model_ref tokens_processed provider_id? result',
  'data.model_accessed': 'customer_id model_ref access_type provider_id?',
  'data.deleted': 'customer_id data_types reason',
  'compliance.gdpr_data_access_request': 'customer_id requester scope',
  'compliance.gdpr_data_export': 'customer_id data_types export_format file_hash',
  'compliance.gdpr_right_to_erasure': 'customer_id completed_at data_types_deleted',
  'audit.recovered': 'file quarantine_file bytes reason',
  'audit.events_dropped': 'count reason first_dropped_at? last_dropped_at?',
  'audit.file_archived': 'file archive first_seq last_seq sha256',
  'audit.file_deleted': 'file first_seq last_seq sha256 reason',
  'audit.admin_query': 'actor reason query',
  'audit.checkpoint': 'tree_size root_hash checkpoint_hash?',
  'audit.io_error': 'operation code message',
};

test('the taxonomy has the 35 event types of issue 2 plus the trail’s own events, nothing else', () => {
  assert.equal(ISSUE_TYPES.length, 35);
  const expected = [...ISSUE_TYPES.map((t) => t.replace('*', '')), ...TRAIL_TYPES];
  assert.deepEqual([...AUDIT_EVENT_TYPES].sort(), [...expected].sort());
  for (const t of expected) assert.ok(isAuditEventType(t), t);
  assert.equal(isAuditEventType('vram.unsealed'), false);
  assert.equal(isAuditEventType('__proto__'), false);
  assert.equal(isAuditEventType(42), false);
});

test('critical events: the 10 starred ones of issue 2 plus audit.recovered', () => {
  const starred = ISSUE_TYPES.filter((t) => t.endsWith('*')).map((t) => t.slice(0, -1));
  assert.equal(starred.length, 10);
  assert.deepEqual([...CRITICAL_EVENT_TYPES].sort(), [...starred, 'audit.recovered'].sort());
  for (const t of AUDIT_EVENT_TYPES) {
    assert.equal(isCriticalEvent(t), CRITICAL_EVENT_TYPES.has(t), t);
    assert.equal(EVENT_CATALOG[t].critical, CRITICAL_EVENT_TYPES.has(t), t);
    assert.ok(EVENT_CATALOG[t].description.length > 0, t);
  }
  assert.equal(isCriticalEvent('nope'), false);
  assert.equal(isCriticalEvent('constructor'), false);
  // immutable at run time, not only in the type system
  assert.throws(() => (CRITICAL_EVENT_TYPES as Set<string>).add('vram.sealed'));
  assert.equal(isCriticalEvent('vram.sealed'), false);
  assert.equal(CRITICAL_EVENT_TYPES.size, 11);
  assert.throws(() => {
    (EVENT_SCHEMAS['vram.sealed'].properties.shard_id as { maxLength: number }).maxLength = 1e9;
  }, TypeError);
});

test('every event type has exactly the fields of issue 2 / CONTRACTS.md, plus type and timestamp', () => {
  for (const t of AUDIT_EVENT_TYPES) {
    const schema = EVENT_SCHEMAS[t] as TSchema;
    const want = (FIELDS[t] as string).split(' ');
    const required = want.filter((f) => !f.endsWith('?'));
    const all = want.map((f) => f.replace('?', ''));
    assert.deepEqual(Object.keys(schema.properties).sort(), ['timestamp', 'type', ...all].sort(), t);
    assert.deepEqual([...schema.required].sort(), ['timestamp', 'type', ...required].sort(), t);
    assert.equal(schema.additionalProperties, false, t);
    assert.equal(schema.properties.type.const, t);
  }
});

test('all field names are snake_case and every fixed-field object is closed', () => {
  const visit = (s: TSchema, where: string) => {
    if (s.properties) {
      if (!s.patternProperties) assert.equal(s.additionalProperties, false, `${where} must be closed`);
      for (const [k, v] of Object.entries(s.properties as Record<string, TSchema>)) {
        assert.match(k, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/, `${where}.${k}`);
        visit(v, `${where}.${k}`);
      }
    }
    if (s.patternProperties)
      assert.equal(s.additionalProperties, false, `${where} free-form keys must be checked`);
    if (s.items) visit(s.items, `${where}[]`);
    for (const v of (s.anyOf as TSchema[] | undefined) ?? []) visit(v, where);
  };
  for (const t of AUDIT_EVENT_TYPES) visit(EVENT_SCHEMAS[t] as TSchema, t);
});

test('a complete sample of every event type validates and round-trips unchanged', () => {
  assert.deepEqual(Object.keys(SAMPLE_EVENTS).sort(), [...AUDIT_EVENT_TYPES].sort());
  for (const t of AUDIT_EVENT_TYPES) {
    const e = sample(t);
    assert.deepEqual(validateEvent(e), e, t);
  }
});

test('every event type rejects a missing required field and an unknown field, naming both', () => {
  for (const t of AUDIT_EVENT_TYPES) {
    const schema = EVENT_SCHEMAS[t] as TSchema;
    for (const f of schema.required as string[]) {
      const e = sample(t);
      delete e[f];
      assert.throws(
        () => validateEvent(e),
        (err: unknown) => {
          assert.ok(err instanceof AuditValidationError, `${t} without ${f}`);
          if (f === 'type') return err.rule === 'unknown-event-type';
          assert.equal(err.eventType, t);
          assert.equal(err.path, f);
          assert.equal(err.rule, 'required');
          assert.ok(err.message.includes(t) && err.message.includes(f) && err.message.includes('required'));
          return true;
        },
      );
    }
    const extra = { ...sample(t), surprise: 1 };
    assert.throws(() => validateEvent(extra), {
      code: 'INVALID_EVENT',
      path: 'surprise',
      rule: 'unknown-field',
    });
    if ('actor' in extra) {
      const e = sample(t);
      (e.actor as Record<string, unknown>).role = 'admin';
      assert.throws(() => validateEvent(e), { path: 'actor.role', rule: 'unknown-field', eventType: t });
    }
  }
});

test('result is {status:success} | {status:failure, reason} | {status:partial_success, details}', () => {
  const base = sample('task.completed');
  const ok = (result: unknown) => validateEvent({ ...base, result });
  assert.deepEqual(ok({ status: 'success' }).type, 'task.completed');
  ok({ status: 'failure', reason: 'oom' });
  ok({ status: 'partial_success', details: 'cut' });
  const bad: [unknown, string, string][] = [
    [{ status: 'failure' }, 'result.reason', 'required'],
    [{ status: 'success', reason: 'x' }, 'result.reason', 'unknown-field'],
    [{ status: 'partial_success', details: 7 }, 'result.details', 'type'],
    [{ status: 'done' }, 'result', 'shape'],
    ['success', 'result', 'shape'],
    [{ status: 'success', extra: 1 }, 'result.extra', 'unknown-field'],
  ];
  for (const [result, path, rule] of bad) {
    assert.throws(() => ok(result), { path, rule }, JSON.stringify(result));
  }
});

test('enums: auth_method, severity, backend, mode, deallocation reason', () => {
  const cases: [string, (e: Record<string, unknown>) => void, string][] = [
    [
      'authz.granted',
      (e) => ((e.actor as Record<string, unknown>).auth_method = 'password'),
      'actor.auth_method',
    ],
    ['security.policy_violation', (e) => (e.severity = 'fatal'), 'severity'],
    ['vram.sealed', (e) => (e.backend = 'rocm'), 'backend'],
    ['seal.verified', (e) => (e.mode = 'quick'), 'mode'],
    ['vram.deallocated', (e) => (e.reason = 'gc'), 'reason'],
  ];
  for (const [t, mutate, path] of cases) {
    const e = sample(t as never);
    mutate(e);
    assert.throws(() => validateEvent(e), { path, rule: 'enum' }, t);
  }
  for (const m of ['bearer_token', 'api_key', 'mtls', 'internal']) {
    const e = sample('authz.granted');
    (e.actor as Record<string, unknown>).auth_method = m;
    validateEvent(e);
  }
});

test('hash and digest shapes', () => {
  for (const good of [
    'a'.repeat(64),
    'b'.repeat(128),
    `sha256:${'c'.repeat(64)}`,
    `sha256-merkle-v1:16384:${'d'.repeat(64)}`,
  ]) {
    assert.ok(isDigest(good), good);
  }
  for (const bad of [
    'A'.repeat(64),
    'a'.repeat(63),
    'a'.repeat(65),
    'a'.repeat(96),
    `:${'a'.repeat(64)}`,
    `-x:${'a'.repeat(64)}`,
    `Sha256:${'a'.repeat(64)}`,
    `s:1234567890:${'a'.repeat(64)}`,
    `s::${'a'.repeat(64)}`,
    `s:x:${'a'.repeat(64)}`,
    `s:1:2:${'a'.repeat(64)}`,
    `${'s'.repeat(33)}:${'a'.repeat(64)}`,
  ]) {
    assert.equal(isDigest(bad), false, bad);
  }
  const e = sample('audit.file_archived');
  e.sha256 = 'A'.repeat(64);
  assert.throws(() => validateEvent(e), { path: 'sha256', rule: 'pattern' });
  const t = sample('token.created');
  t.token_fingerprint = 'token:ABCDEF';
  assert.throws(() => validateEvent(t), { path: 'token_fingerprint', rule: 'pattern' });
  const i = sample('security.invalid_token_used');
  i.token_prefix = 'sk-live-0123456789';
  assert.throws(() => validateEvent(i), { path: 'token_prefix', rule: 'pattern' });
  i.token_prefix = 'sk-live-';
  validateEvent(i);
});

test('types: per-type interfaces narrow by `type`', () => {
  const e = validateEvent(sample('vram.sealed'));
  if (e.type === 'vram.sealed') {
    const s: VramSealedEvent = e;
    assert.equal(typeof s.vram_bytes, 'number');
  } else {
    assert.fail('wrong type');
  }
  const all: AuditEvent[] = AUDIT_EVENT_TYPES.map((t) => validateEvent(sample(t)));
  assert.equal(all.length, AUDIT_EVENT_TYPES.length);
});

test('property: isDigest (hand-written, no regex backtracking) agrees with DIGEST_PATTERN', () => {
  const re = new RegExp(DIGEST_PATTERN);
  const piece = fc.constantFrom(
    'a',
    'z',
    '0',
    '9',
    '-',
    ':',
    'A',
    '_',
    'f',
    '12',
    'sha256',
    'sha256-merkle-v1',
  );
  const pureHex = fc
    .constantFrom(63, 64, 65, 127, 128, 129)
    .chain((n) =>
      fc.string({ minLength: n, maxLength: n, unit: fc.constantFrom(...'0123456789abcdef'.split('')) }),
    );
  // mostly well-formed hex; sometimes one character replaced by a non-hex one
  const hex = fc.oneof(
    pureHex,
    fc.tuple(pureHex, fc.nat(), fc.constantFrom('g', ':', 'A', '-')).map(([h, i, c]) => {
      const at = i % h.length;
      return h.slice(0, at) + c + h.slice(at + 1);
    }),
  );
  const prefix = fc.oneof(
    fc.array(piece, { maxLength: 8 }).map((p) => p.join('')),
    fc.constantFrom(
      '',
      'sha256:',
      'sha256-merkle-v1:16384:',
      'x:1:',
      `${'s'.repeat(32)}:`,
      `${'s'.repeat(33)}:`,
    ),
  );
  let matched = 0;
  fc.assert(
    fc.property(prefix, hex, (pre, h) => {
      const s = pre + h;
      const want = re.test(s);
      assert.equal(isDigest(s), want, s);
      if (want) matched++;
    }),
    { numRuns: 1000 },
  );
  assert.ok(matched > 50, `generator too weak: only ${matched} valid digests`);
});

test('every error class the package throws on purpose is an AuditError with its typed code', async () => {
  const { AuditError } = await import('../src/errors.js');
  const { AuditConfigError, AuditCorruptError, AuditDroppedError } = await import('../src/writer-errors.js');
  const { TrailIoError } = await import('../src/trail-writer.js');
  const cases: Array<[Error & { code: string }, string, string]> = [
    [new AuditConfigError('flush.mode', 'must be immediate'), 'AUDIT_CONFIG', 'AuditConfigError'],
    [new AuditCorruptError('2026-01-01.audit', 'truncated'), 'AUDIT_CORRUPT', 'AuditCorruptError'],
    [new AuditDroppedError('auth.success', 'queue full'), 'AUDIT_DROPPED', 'AuditDroppedError'],
    [new TrailIoError('write', 'ENOSPC', 'x.audit', new Error('no space')), 'AUDIT_IO', 'TrailIoError'],
  ];
  for (const [e, code, name] of cases) {
    assert.ok(e instanceof AuditError, name);
    assert.equal(e.code, code);
    assert.equal(e.name, name);
  }
});
