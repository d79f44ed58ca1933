/** JSON Schemas (draft-07, as Fastify/Ajv use them) of every daemon route, request and response. */

export const SHARD_ID_PATTERN = '^[A-Za-z0-9_-]{1,256}$';

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        shard_id: { type: 'string' },
        corrupt_ranges: {
          type: 'array',
          items: {
            type: 'object',
            required: ['offset', 'length'],
            properties: { offset: { type: 'integer' }, length: { type: 'integer' } },
          },
        },
        retry_after_s: { type: 'integer' },
      },
    },
  },
} as const;

const errors = { '4xx': errorSchema, '5xx': errorSchema } as const;

export const shardSchema = {
  type: 'object',
  required: ['shard_id', 'gpu_device', 'vram_bytes', 'digest', 'sealed_at', 'backend'],
  properties: {
    shard_id: { type: 'string' },
    gpu_device: { type: 'integer' },
    vram_bytes: { type: 'integer' },
    digest: { type: 'string' },
    sealed_at: { type: 'string' },
    backend: { type: 'string', enum: ['cuda', 'simulated'] },
    model_ref: { type: 'string' },
    shard_index: { type: 'integer' },
    total_shards: { type: 'integer' },
  },
  additionalProperties: false,
} as const;

export const verificationSchema = {
  type: 'object',
  required: ['mode', 'ok', 'duration_ms', 'verified_at'],
  properties: {
    mode: { type: 'string', enum: ['full', 'sample'] },
    ok: { type: 'boolean' },
    chunks_checked: { type: 'integer' },
    duration_ms: { type: 'number' },
    verified_at: { type: 'string' },
  },
  additionalProperties: false,
} as const;

const healthBody = {
  type: 'object',
  required: ['status', 'backend', 'shards', 'audit'],
  properties: {
    status: { type: 'string', enum: ['ready', 'stopped', 'shutting_down', 'degraded'] },
    reason: { type: 'string' },
    backend: { type: 'string' },
    shards: { type: 'integer' },
    uptime_s: { type: 'number' },
    audit: {
      type: 'object',
      required: ['state'],
      properties: { state: { type: 'string' }, queue_depth: { type: 'integer' } },
    },
  },
} as const;

export const healthRoute = {
  response: { 200: healthBody, 503: healthBody, '4xx': errorSchema },
} as const;

export const capacityRoute = {
  querystring: {
    type: 'object',
    required: ['bytes'],
    properties: {
      bytes: { type: 'integer', minimum: 1 },
      device: { type: 'integer', minimum: 0 },
    },
    additionalProperties: false,
  },
  response: {
    200: {
      type: 'object',
      required: [
        'device',
        'bytes',
        'fits',
        'total_bytes',
        'used_bytes',
        'available_bytes',
        'reserve_bytes',
        'max_model_bytes',
      ],
      properties: {
        device: { type: 'integer' },
        bytes: { type: 'integer' },
        fits: { type: 'boolean' },
        reason: { type: 'string' },
        total_bytes: { type: 'integer' },
        used_bytes: { type: 'integer' },
        available_bytes: { type: 'integer' },
        reserve_bytes: { type: 'integer' },
        max_model_bytes: { type: 'integer' },
      },
      additionalProperties: false,
    },
    ...errors,
  },
} as const;

export const sealRoute = {
  body: {
    type: 'object',
    required: ['model'],
    properties: {
      model: { type: 'string', minLength: 1, maxLength: 4096 },
      device: { type: 'integer', minimum: 0 },
      expect_sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
      shard_id: { type: 'string', pattern: SHARD_ID_PATTERN },
      model_ref: { type: 'string', minLength: 1, maxLength: 256 },
    },
    additionalProperties: false,
  },
  response: {
    201: {
      type: 'object',
      required: ['shard', 'seal_ms', 'gb_per_s'],
      properties: { shard: shardSchema, seal_ms: { type: 'number' }, gb_per_s: { type: 'number' } },
      additionalProperties: false,
    },
    ...errors,
  },
} as const;

export const listRoute = {
  response: {
    200: {
      type: 'object',
      required: ['shards'],
      properties: { shards: { type: 'array', items: shardSchema } },
      additionalProperties: false,
    },
    ...errors,
  },
} as const;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: SHARD_ID_PATTERN } },
} as const;

export const getRoute = {
  params: idParams,
  response: {
    200: {
      type: 'object',
      required: ['shard', 'state', 'last_verification'],
      properties: {
        shard: shardSchema,
        state: { type: 'string', enum: ['sealed'] },
        last_verification: { anyOf: [verificationSchema, { type: 'null' }] },
      },
      additionalProperties: false,
    },
    ...errors,
  },
} as const;

export const deleteRoute = {
  params: idParams,
  response: {
    200: {
      type: 'object',
      required: ['shard_id', 'released', 'freed_bytes'],
      properties: {
        shard_id: { type: 'string' },
        released: { type: 'boolean' },
        freed_bytes: { type: 'integer' },
      },
      additionalProperties: false,
    },
    ...errors,
  },
} as const;

export const executeRoute = {
  body: {
    type: 'object',
    required: ['shard_id'],
    properties: { shard_id: { type: 'string', pattern: SHARD_ID_PATTERN } },
    additionalProperties: false,
  },
  response: {
    200: {
      type: 'object',
      required: ['attested', 'shard', 'verification'],
      properties: { attested: { type: 'boolean' }, shard: shardSchema, verification: verificationSchema },
      additionalProperties: false,
    },
    ...errors,
  },
} as const;

export const metricsRoute = {
  response: { 200: { type: 'string' } },
} as const;
