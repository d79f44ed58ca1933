/**
 * HTTP routes of the checkpoint witness (see witness.ts):
 *
 *   POST /v1/providers/:id/checkpoints          {checkpoint: <signed note>, consistency_proof?: base64[]}
 *        200 accepted | duplicate (+ the collector-cosigned note)
 *        400 INVALID_CHECKPOINT | ORIGIN_MISMATCH | BAD_CONSISTENCY_PROOF
 *        401 UNKNOWN_PROVIDER | BAD_SIGNATURE (recorded as auth.failure)
 *        403 NOT_WITNESSED (no checkpoint_keys registered for the provider)
 *        409 SIZE_BEYOND_RECORDS (retry once the records are shipped)
 *        409 ROOT_MISMATCH (recorded as security.integrity_violation)
 *   GET  /v1/providers/:id/checkpoints/latest   the latest witnessed checkpoint, cosigned (public)
 *
 * The submission needs no bearer token: the provider's checkpoint signature authenticates it.
 */
import {
  type AuditEvent,
  parseNote,
  TlogError,
  type VerifiedCheckpoint,
  verifyCheckpoint,
} from '@vramseal/audit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type CollectorKeys, PROVIDER_ID_PATTERN } from './config.js';
import type { CheckpointWitness, WitnessedCheckpoint } from './witness.js';

export interface WitnessRouteContext {
  keys: CollectorKeys;
  witness: CheckpointWitness;
  /** Best-effort, rate-limited security event in the collector's trail. */
  recordSecurity(req: FastifyRequest, event: AuditEvent): Promise<void>;
  now(): number;
  ipOf(req: FastifyRequest): string;
  serviceId: string;
  /** Error response schemas by status. */
  errors: Record<number, unknown>;
}

const providerParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: PROVIDER_ID_PATTERN } },
} as const;

const witnessedSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['accepted', 'duplicate'] },
    provider_id: { type: 'string' },
    origin: { type: 'string' },
    tree_size: { type: 'integer' },
    root_hash: { type: 'string' },
    note: { type: 'string' },
    cosigned_note: { type: 'string' },
    witnessed_at: { type: 'string' },
    witness_key: { type: 'string' },
  },
  required: [
    'provider_id',
    'origin',
    'tree_size',
    'root_hash',
    'cosigned_note',
    'witnessed_at',
    'witness_key',
  ],
} as const;

const B64_HASH = '^[A-Za-z0-9+/]{43}=$';

export function registerWitnessRoutes(app: FastifyInstance, ctx: WitnessRouteContext): void {
  const { keys, witness } = ctx;
  const witnessKey = witness.signer.verifier.toString();
  const view = (c: WitnessedCheckpoint) => ({
    provider_id: c.providerId,
    origin: c.origin,
    tree_size: c.treeSize,
    root_hash: c.rootHash,
    note: c.note,
    cosigned_note: c.cosignedNote,
    witnessed_at: c.witnessedAt,
    witness_key: witnessKey,
  });
  const iso = () => new Date(ctx.now()).toISOString();

  app.post(
    '/v1/providers/:id/checkpoints',
    {
      schema: {
        params: providerParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['checkpoint'],
          properties: {
            checkpoint: { type: 'string', minLength: 1, maxLength: 65_536 },
            consistency_proof: {
              type: 'array',
              maxItems: 128,
              items: { type: 'string', pattern: B64_HASH },
            },
          },
        },
        response: { 200: witnessedSchema, ...ctx.errors },
      },
    },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const id = (req.params as { id: string }).id;
      const body = req.body as { checkpoint: string; consistency_proof?: string[] };
      const authFailure = (reason: string) =>
        ctx.recordSecurity(req, {
          type: 'auth.failure',
          timestamp: iso(),
          attempted_user: id,
          reason: `checkpoint rejected: ${reason}`,
          ip: ctx.ipOf(req),
          path: '/v1/providers/:id/checkpoints',
          service_id: ctx.serviceId,
        } as AuditEvent);
      if (!keys.providers.has(id)) {
        await authFailure('UNKNOWN_PROVIDER');
        return reply
          .code(401)
          .send({ error: 'UNKNOWN_PROVIDER', message: `provider ${id} is not registered` });
      }
      const reg = keys.checkpoints?.get(id);
      if (!reg)
        return reply.code(403).send({
          error: 'NOT_WITNESSED',
          message: `provider ${id} has no checkpoint_keys registered at this collector`,
        });
      try {
        parseNote(body.checkpoint);
      } catch (err) {
        return reply
          .code(400)
          .send({ error: 'INVALID_CHECKPOINT', message: `body/checkpoint: ${(err as Error).message}` });
      }
      let cp: VerifiedCheckpoint | undefined;
      let signerKey = '';
      for (const key of reg.keys) {
        try {
          cp = verifyCheckpoint(body.checkpoint, key);
          signerKey = key.toString();
          break;
        } catch (err) {
          if (err instanceof TlogError && err.code === 'TLOG_SIGNATURE_INVALID') continue;
          if (err instanceof TlogError)
            return reply
              .code(400)
              .send({ error: 'INVALID_CHECKPOINT', message: `body/checkpoint: ${err.message}` });
          throw err;
        }
      }
      if (!cp) {
        await authFailure('BAD_SIGNATURE');
        return reply.code(401).send({
          error: 'BAD_SIGNATURE',
          message: `body/checkpoint: no valid signature by a checkpoint key registered for provider ${id}`,
        });
      }
      if (cp.origin !== reg.origin)
        return reply.code(400).send({
          error: 'ORIGIN_MISMATCH',
          message: `body/checkpoint: origin is ${JSON.stringify(cp.origin)}, provider ${id} is registered with ${JSON.stringify(reg.origin)}`,
        });
      const proof = body.consistency_proof?.map((b) => Buffer.from(b, 'base64'));
      const out = await witness.witness(id, cp, signerKey, proof);
      switch (out.kind) {
        case 'accepted':
        case 'duplicate':
          return { status: out.kind, ...view(out.checkpoint) };
        case 'beyond':
          return reply.code(409).send({
            error: 'SIZE_BEYOND_RECORDS',
            message: `checkpoint tree size ${cp.size} exceeds the ${out.storedSize} records the collector stores for ${id}; ship the records first`,
            stored_size: out.storedSize,
          });
        case 'bad-proof':
          return reply.code(400).send({
            error: 'BAD_CONSISTENCY_PROOF',
            message: `body/consistency_proof does not prove tree size ${out.fromSize} (the last witnessed checkpoint) consistent with ${cp.size}`,
          });
        case 'mismatch':
          await ctx.recordSecurity(req, {
            type: 'security.integrity_violation',
            timestamp: iso(),
            resource_type: 'transparency_checkpoint',
            resource_id: `${id}@${cp.size}`,
            expected_hash: out.computedRoot,
            actual_hash: cp.root.toString('hex'),
            severity: 'critical',
            action_taken: 'checkpoint_rejected',
          } as AuditEvent);
          return reply.code(409).send({
            error: 'ROOT_MISMATCH',
            message: `checkpoint root for tree size ${cp.size} differs from the root the collector computes over the stored records 1..${cp.size}: the trail's history was rewritten`,
            computed_root: out.computedRoot,
            stored_size: out.storedSize,
          });
      }
    },
  );

  app.get(
    '/v1/providers/:id/checkpoints/latest',
    { schema: { params: providerParams, response: { 200: witnessedSchema, ...ctx.errors } } },
    async (req: FastifyRequest, reply: FastifyReply) => {
      const id = (req.params as { id: string }).id;
      if (!keys.providers.has(id))
        return reply
          .code(404)
          .send({ error: 'UNKNOWN_PROVIDER', message: `provider ${id} is not registered` });
      const c = await witness.latest(id);
      if (!c)
        return reply
          .code(404)
          .send({ error: 'NO_CHECKPOINT', message: `no checkpoint of provider ${id} was witnessed yet` });
      reply.header('cache-control', 'no-store');
      return view(c);
    },
  );
}
