/**
 * The collector's HTTP API (Fastify, JSON schemas on every route):
 *
 *   POST /v1/batches                   signed batch from a provider → signed receipt (200) | 409 gap/fork
 *   GET  /v1/providers/:id/head        last stored seq + hash + the receipt issued for it (public)
 *   GET  /v1/providers/:id/hashes      seq + hash of stored records, for trail comparison (public)
 *   GET  /v1/events                    query API, bearer token; customer tokens see only their customer_id,
 *                                      admin queries need X-Admin-Reason and are recorded first
 *   POST /v1/providers/:id/checkpoints         signed checkpoint → witnessed + cosigned (witness-routes.ts)
 *   GET  /v1/providers/:id/checkpoints/latest  latest witnessed checkpoint, cosigned (public)
 *   GET  /v1/collector                 the collector's public key
 *   GET  /healthz                      storage reachable
 */
import type { KeyObject } from 'node:crypto';
import {
  type AuditEvent,
  GENESIS_HASH,
  keyId,
  publicKeyToBase64,
  type Receipt,
  type SignedBatch,
  SignerKey,
  signReceipt,
} from '@vramseal/audit';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { CollectorAuditSink } from './audit-sink.js';
import { type CollectorKeys, PROVIDER_ID_PATTERN, type Principal, tokenHash } from './config.js';
import { type DropSummary, EventLimiter, type EventLimiterOptions } from './event-limiter.js';
import { BatchRejection, checkSignature, parseBatchRecords } from './ingest.js';
import type { AuditStore, EventQuery, MigrateReport } from './store.js';
import { CheckpointWitness } from './witness.js';
import { registerWitnessRoutes } from './witness-routes.js';

export interface CollectorServerOptions {
  store: AuditStore;
  keys: CollectorKeys;
  /** The collector's Ed25519 private key (signs receipts). */
  signingKey: KeyObject;
  /** The collector's own audit trail. */
  audit: CollectorAuditSink;
  /** `service_id` for auth.failure events (default `vramseal-collector`). */
  serviceId?: string;
  /** A pino logger for operational logs (default: none). */
  logger?: FastifyBaseLogger;
  /** Max request body (default 64 MiB). */
  bodyLimit?: number;
  /** Injectable clock (ms since epoch). */
  now?: () => number;
  /** Reported by GET /v1/collector. */
  migration?: MigrateReport;
  /** Rate limit for security events caused by rejected requests (default 20 per IP per minute). */
  securityEvents?: Omit<EventLimiterOptions, 'now'>;
  /** C2SP key name of the collector's checkpoint cosignatures (default `vramseal-collector`). */
  witnessName?: string;
}

const HEX64 = '^[0-9a-f]{64}$';
const RFC3339 = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:\\d{2})$';
const ID_TEXT = { type: 'string', minLength: 1, maxLength: 256 } as const;

const errorSchema = {
  type: 'object',
  properties: {
    error: { type: 'string' },
    message: { type: 'string' },
    expected_seq: { type: 'integer' },
    expected_hash: { type: 'string' },
    conflict_seq: { type: 'integer' },
    stored_hash: { type: 'string' },
    batch_hash: { type: 'string' },
    index: { type: 'integer' },
    seq: { type: 'integer' },
    stored_size: { type: 'integer' },
    computed_root: { type: 'string' },
  },
  required: ['error', 'message'],
} as const;

const receiptSchema = {
  type: 'object',
  properties: {
    v: { type: 'integer' },
    provider_id: { type: 'string' },
    last_seq: { type: 'integer' },
    head_hash: { type: 'string' },
    time: { type: 'string' },
    key_id: { type: 'string' },
    signature: { type: 'string' },
  },
  required: ['v', 'provider_id', 'last_seq', 'head_hash', 'time', 'key_id', 'signature'],
} as const;

const errors = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
  503: errorSchema,
};

const batchBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'v',
    'provider_id',
    'first_seq',
    'last_seq',
    'prev_hash',
    'last_hash',
    'sent_at',
    'key_id',
    'records',
    'signature',
  ],
  properties: {
    v: { const: 1 },
    provider_id: { type: 'string', pattern: PROVIDER_ID_PATTERN },
    first_seq: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    last_seq: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    prev_hash: { type: 'string', pattern: HEX64 },
    last_hash: { type: 'string', pattern: HEX64 },
    sent_at: { type: 'string', maxLength: 40, pattern: RFC3339 },
    key_id: { type: 'string', pattern: '^[0-9a-f]{16}$' },
    records: {
      type: 'array',
      minItems: 1,
      maxItems: 10_000,
      items: { type: 'string', minLength: 2, maxLength: 1 << 20 },
    },
    signature: { type: 'string', minLength: 86, maxLength: 88, pattern: '^[A-Za-z0-9+/]+={0,2}$' },
  },
} as const;

const eventsQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    provider: { type: 'string', pattern: PROVIDER_ID_PATTERN },
    type: { type: 'string', maxLength: 2048, pattern: '^[a-z_.]+(,[a-z_.]+)*$' },
    actor: ID_TEXT,
    customer_id: ID_TEXT,
    shard_id: ID_TEXT,
    since: { type: 'string', maxLength: 40, pattern: RFC3339 },
    until: { type: 'string', maxLength: 40, pattern: RFC3339 },
    cursor: { type: 'string', maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
} as const;

type EventsQuery = {
  provider?: string;
  type?: string;
  actor?: string;
  customer_id?: string;
  shard_id?: string;
  since?: string;
  until?: string;
  cursor?: string;
  limit: number;
};

function encodeCursor(id: number): string {
  return Buffer.from(`v1:${id}`).toString('base64url');
}

function decodeCursor(c: string): number | undefined {
  const m = /^v1:(\d{1,16})$/.exec(Buffer.from(c, 'base64url').toString('utf8'));
  return m ? Number(m[1]) : undefined;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

/** Builds the collector's Fastify app (not listening yet). */
export async function buildCollectorServer(opts: CollectorServerOptions): Promise<FastifyInstance> {
  const { store, keys, audit } = opts;
  const now = opts.now ?? Date.now;
  const serviceId = opts.serviceId ?? 'vramseal-collector';
  const collectorKeyId = keyId(opts.signingKey);
  const collectorPublicKey = publicKeyToBase64(opts.signingKey);
  const witness = new CheckpointWitness(store, {
    signer: new SignerKey(opts.witnessName ?? 'vramseal-collector', opts.signingKey),
    now,
  });
  const app = Fastify({
    bodyLimit: opts.bodyLimit ?? 64 << 20,
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  }) as unknown as FastifyInstance;

  const makeReceipt = (providerId: string, lastSeq: number, headHash: string): Receipt =>
    signReceipt(
      {
        v: 1,
        provider_id: providerId,
        last_seq: lastSeq,
        head_hash: headHash,
        time: new Date(now()).toISOString(),
        key_id: collectorKeyId,
      },
      opts.signingKey,
    );

  /** Records an event in the collector's trail and waits until it is durable. */
  const record = async (event: AuditEvent): Promise<void> => {
    await audit.emit(event).durable;
  };
  const limiter = new EventLimiter({ ...opts.securityEvents, now });
  const recordSummaries = async (req: FastifyRequest | undefined, sums: DropSummary[]): Promise<void> => {
    for (const d of sums) {
      try {
        await record({
          type: 'audit.events_dropped',
          timestamp: new Date(now()).toISOString(),
          count: d.count,
          reason: `rate limit: ${d.type} events caused by client ${d.key} beyond the per-window limit`,
          first_dropped_at: new Date(d.first).toISOString(),
          last_dropped_at: new Date(d.last).toISOString(),
        } as AuditEvent);
      } catch (err) {
        (req?.log ?? app.log).error({ err: (err as Error).message }, 'could not record a drop summary');
      }
    }
  };
  /**
   * Best effort for security events on a rejection path: the rejection stands even if the trail is
   * down. Per client IP they are rate limited (see EventLimiter); the excess is summarized.
   */
  const recordSecurity = async (req: FastifyRequest, event: AuditEvent): Promise<void> => {
    const { allowed, summaries } = limiter.admit(ipOf(req), event.type);
    await recordSummaries(req, summaries);
    if (!allowed) return;
    try {
      await record(event);
    } catch (err) {
      req.log.error(
        { err: (err as Error).message, type: event.type },
        'could not record security event in the collector trail',
      );
    }
  };
  const sweep = setInterval(() => {
    void recordSummaries(undefined, limiter.drain());
  }, 10_000);
  sweep.unref();
  app.addHook('onClose', async () => {
    clearInterval(sweep);
    await recordSummaries(undefined, limiter.drain(Number.POSITIVE_INFINITY));
  });
  const ipOf = (req: FastifyRequest) => req.ip || '0.0.0.0';

  app.setErrorHandler(
    (err: Error & { statusCode?: number; validation?: unknown; code?: string }, req, reply) => {
      if (err instanceof HttpError)
        return reply.code(err.status).send({ error: err.error, message: err.message });
      if (err.validation) return reply.code(400).send({ error: 'INVALID_REQUEST', message: err.message });
      if (err.statusCode && err.statusCode < 500)
        return reply.code(err.statusCode).send({ error: err.code ?? 'BAD_REQUEST', message: err.message });
      req.log.error({ err: err.message }, 'request failed');
      return reply
        .code(503)
        .send({ error: 'UNAVAILABLE', message: 'the collector could not complete the request' });
    },
  );

  app.post(
    '/v1/batches',
    {
      schema: {
        body: batchBodySchema,
        response: {
          200: {
            type: 'object',
            properties: {
              status: { type: 'string', enum: ['accepted', 'duplicate'] },
              stored: { type: 'integer' },
              duplicates: { type: 'integer' },
              receipt: receiptSchema,
            },
            required: ['status', 'stored', 'duplicates', 'receipt'],
          },
          ...errors,
        },
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const b = req.body as SignedBatch;
      let parsed: ReturnType<typeof parseBatchRecords>;
      try {
        if (b.last_seq < b.first_seq)
          throw new BatchRejection(400, 'BATCH_INVALID', 'last_seq must be >= first_seq');
        checkSignature(b, keys.providers.get(b.provider_id));
        parsed = parseBatchRecords(b);
      } catch (err) {
        if (!(err instanceof BatchRejection)) throw err;
        if (err.status === 401)
          await recordSecurity(req, {
            type: 'auth.failure',
            timestamp: new Date(now()).toISOString(),
            attempted_user: b.provider_id,
            reason: `batch rejected: ${err.error}`,
            ip: ipOf(req),
            path: '/v1/batches',
            service_id: serviceId,
          } as AuditEvent);
        else if (err.detail.expectedHash && err.detail.actualHash)
          await recordSecurity(req, {
            type: 'security.integrity_violation',
            timestamp: new Date(now()).toISOString(),
            resource_type: 'audit_record',
            resource_id: `${b.provider_id}#${err.detail.seq ?? b.first_seq}`,
            expected_hash: err.detail.expectedHash,
            actual_hash: err.detail.actualHash,
            severity: 'critical',
            action_taken: 'batch_rejected',
          } as AuditEvent);
        const body: Record<string, unknown> = { error: err.error, message: err.message };
        if (err.detail.index !== undefined) body.index = err.detail.index;
        if (err.detail.seq !== undefined) body.seq = err.detail.seq;
        return reply.code(err.status).send(body);
      }
      const out = await store.append(
        {
          providerId: b.provider_id,
          firstSeq: b.first_seq,
          lastSeq: b.last_seq,
          prevHash: b.prev_hash,
          lastHash: b.last_hash,
          sentAt: b.sent_at,
          keyId: b.key_id,
          signature: b.signature,
          records: parsed,
        },
        (seq, hash) => makeReceipt(b.provider_id, seq, hash),
      );
      switch (out.kind) {
        case 'accepted':
          return { status: 'accepted', stored: out.stored, duplicates: out.duplicates, receipt: out.receipt };
        case 'duplicate':
          return {
            status: 'duplicate',
            stored: 0,
            duplicates: out.duplicates,
            receipt: out.receipt ?? makeReceipt(b.provider_id, out.head.lastSeq, out.head.headHash),
          };
        case 'gap':
          await recordSecurity(req, {
            type: 'security.integrity_violation',
            timestamp: new Date(now()).toISOString(),
            resource_type: 'audit_trail',
            resource_id: b.provider_id,
            expected_hash: out.expectedHash,
            actual_hash: b.prev_hash,
            severity: 'high',
            action_taken: 'batch_rejected_gap',
          } as AuditEvent);
          return reply.code(409).send({
            error: 'GAP',
            message: `batch starts at seq ${b.first_seq} but the collector expects seq ${out.expectedSeq} (records ${out.expectedSeq}..${b.first_seq - 1} missing)`,
            expected_seq: out.expectedSeq,
            expected_hash: out.expectedHash,
          });
        case 'fork':
          await recordSecurity(req, {
            type: 'security.integrity_violation',
            timestamp: new Date(now()).toISOString(),
            resource_type: 'audit_trail',
            resource_id: `${b.provider_id}#${out.seq}`,
            expected_hash: out.storedHash,
            actual_hash: out.batchHash,
            severity: 'critical',
            action_taken: 'batch_rejected_fork',
          } as AuditEvent);
          return reply.code(409).send({
            error: 'FORK',
            message: `fork at seq ${out.seq}: the batch does not continue the stored chain (stored ${out.storedHash}, batch ${out.batchHash})`,
            expected_seq: out.expectedSeq,
            expected_hash: out.expectedHash,
            conflict_seq: out.seq,
            stored_hash: out.storedHash,
            batch_hash: out.batchHash,
          });
      }
    },
  );

  const providerParams = {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', pattern: PROVIDER_ID_PATTERN } },
  } as const;

  app.get(
    '/v1/providers/:id/head',
    {
      schema: {
        params: providerParams,
        response: {
          200: {
            type: 'object',
            properties: {
              provider_id: { type: 'string' },
              last_seq: { type: 'integer' },
              head_hash: { type: 'string' },
              receipt: receiptSchema,
            },
            required: ['provider_id', 'last_seq', 'head_hash', 'receipt'],
          },
          ...errors,
        },
      },
    },
    async (req: FastifyRequest) => {
      const id = (req.params as { id: string }).id;
      if (!keys.providers.has(id))
        throw new HttpError(404, 'UNKNOWN_PROVIDER', `provider ${id} is not registered`);
      const h = await store.head(id);
      return {
        provider_id: id,
        last_seq: h.lastSeq,
        head_hash: h.headHash,
        receipt: h.receipt ?? makeReceipt(id, h.lastSeq, h.lastSeq === 0 ? GENESIS_HASH : h.headHash),
      };
    },
  );

  app.get(
    '/v1/providers/:id/hashes',
    {
      schema: {
        params: providerParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from_seq: { type: 'integer', minimum: 1, default: 1 },
            limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 1000 },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              provider_id: { type: 'string' },
              hashes: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { seq: { type: 'integer' }, hash: { type: 'string' } },
                  required: ['seq', 'hash'],
                },
              },
            },
            required: ['provider_id', 'hashes'],
          },
          ...errors,
        },
      },
    },
    async (req: FastifyRequest) => {
      const id = (req.params as { id: string }).id;
      if (!keys.providers.has(id))
        throw new HttpError(404, 'UNKNOWN_PROVIDER', `provider ${id} is not registered`);
      const q = req.query as { from_seq: number; limit: number };
      return { provider_id: id, hashes: await store.hashes(id, q.from_seq, q.limit) };
    },
  );

  const authenticate = async (req: FastifyRequest): Promise<Principal> => {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer ([\x21-\x7e]{1,512})$/.exec(h) : null;
    const p = m ? keys.tokens.get(tokenHash(m[1] as string)) : undefined;
    if (!p) {
      await recordSecurity(req, {
        type: 'auth.failure',
        timestamp: new Date(now()).toISOString(),
        reason: m ? 'unknown bearer token' : 'missing or malformed Authorization header',
        ip: ipOf(req),
        path: req.routeOptions.url ?? '/v1/events',
        service_id: serviceId,
      } as AuditEvent);
      throw new HttpError(
        401,
        'UNAUTHORIZED',
        'a valid bearer token is required (Authorization: Bearer <token>)',
      );
    }
    return p;
  };

  app.get(
    '/v1/events',
    {
      schema: {
        querystring: eventsQuerySchema,
        headers: {
          type: 'object',
          properties: {
            authorization: { type: 'string', maxLength: 600 },
            'x-admin-reason': { type: 'string', minLength: 1, maxLength: 1024 },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              events: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    id: { type: 'integer' },
                    provider_id: { type: 'string' },
                    seq: { type: 'integer' },
                    record: { type: 'object', additionalProperties: true },
                  },
                  required: ['id', 'provider_id', 'seq', 'record'],
                },
              },
              next_cursor: { type: ['string', 'null'] },
            },
            required: ['events', 'next_cursor'],
          },
          ...errors,
        },
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const principal = await authenticate(req);
      const q = req.query as EventsQuery;
      const filter: EventQuery = { limit: q.limit };
      if (q.provider !== undefined) filter.providerId = q.provider;
      if (q.type !== undefined) filter.types = q.type.split(',');
      if (q.actor !== undefined) filter.actor = q.actor;
      if (q.customer_id !== undefined) filter.customerId = q.customer_id;
      if (q.shard_id !== undefined) filter.shardId = q.shard_id;
      if (q.since !== undefined) filter.since = q.since;
      if (q.until !== undefined) filter.until = q.until;
      if (q.cursor !== undefined) {
        const id = decodeCursor(q.cursor);
        if (id === undefined)
          throw new HttpError(400, 'INVALID_REQUEST', 'querystring/cursor is not a cursor this API returned');
        filter.afterId = id;
      }
      if (principal.role === 'customer') {
        if (q.customer_id !== undefined && q.customer_id !== principal.customerId)
          throw new HttpError(403, 'FORBIDDEN', 'a customer token may only query its own customer_id');
        filter.customerId = principal.customerId as string;
      } else if (principal.role === 'provider') {
        if (q.provider !== undefined && q.provider !== principal.providerId)
          throw new HttpError(403, 'FORBIDDEN', 'a provider token may only query its own provider');
        filter.providerId = principal.providerId as string;
      } else {
        const reason = req.headers['x-admin-reason'];
        if (typeof reason !== 'string' || reason.trim() === '')
          throw new HttpError(403, 'ADMIN_REASON_REQUIRED', 'admin queries require an X-Admin-Reason header');
        const query: Record<string, string | number> = {};
        for (const [k, v] of Object.entries(q)) if (v !== undefined) query[k] = v as string | number;
        let receipt: { durable: Promise<void> };
        try {
          receipt = audit.emit({
            type: 'audit.admin_query',
            timestamp: new Date(now()).toISOString(),
            actor: { user_id: principal.name, ip: ipOf(req), auth_method: 'bearer_token' },
            reason,
            query,
          } as AuditEvent);
        } catch (err) {
          const e = err as { code?: string; path?: string; rule?: string };
          if (e.code === 'INVALID_EVENT')
            throw new HttpError(
              400,
              'INVALID_REQUEST',
              `headers/x-admin-reason violates rule ${e.rule ?? 'unknown'} (${e.path ?? ''})`,
            );
          throw new HttpError(
            503,
            'AUDIT_UNAVAILABLE',
            'the admin query cannot be recorded now, so it is refused',
          );
        }
        try {
          await receipt.durable;
        } catch {
          throw new HttpError(
            503,
            'AUDIT_UNAVAILABLE',
            'the admin query cannot be recorded now, so it is refused',
          );
        }
      }
      const rows = await store.query(filter);
      const last = rows[rows.length - 1];
      reply.header('cache-control', 'no-store');
      return {
        events: rows.map((r) => ({
          id: r.id,
          provider_id: r.provider_id,
          seq: r.seq,
          record: JSON.parse(r.line),
        })),
        next_cursor: rows.length === filter.limit && last ? encodeCursor(last.id) : null,
      };
    },
  );

  registerWitnessRoutes(app, { keys, witness, recordSecurity, now, ipOf, serviceId, errors });

  app.get(
    '/v1/collector',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              key_id: { type: 'string' },
              public_key: { type: 'string' },
              witness_key: { type: 'string' },
              engine: { type: 'string' },
              schema_version: { type: 'integer' },
              privileges: { type: 'string' },
            },
            required: ['key_id', 'public_key', 'engine'],
          },
        },
      },
    },
    async () => ({
      key_id: collectorKeyId,
      public_key: collectorPublicKey,
      witness_key: witness.signer.verifier.toString(),
      engine: store.client.engine,
      schema_version: opts.migration?.schemaVersion ?? 0,
      privileges: opts.migration?.privileges ?? 'unknown',
    }),
  );

  app.get(
    '/healthz',
    {
      schema: {
        response: {
          200: { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] },
          503: errorSchema,
        },
      },
    },
    async () => {
      await store.client.query('SELECT 1');
      return { status: 'ok' };
    },
  );

  return app;
}
