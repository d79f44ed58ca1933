/**
 * The residency daemon's HTTP server (Fastify). Builds the app from injected parts — the residency
 * port, the audit trail, the token store — so tests can drive it in-process, and `vramseal serve`
 * wires the real ones. See the README section "cli" for the API.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { clientIp, makeAuthHook, type Recorder, requestPath, safeText } from './auth.js';
import { DaemonMetrics, platformSource } from './metrics.js';
import { type ConfineResult, confineModelPath, pinModel } from './paths.js';
import type { AuditPort, ResidencyPort } from './ports.js';
import { RateLimiter } from './ratelimit.js';
import {
  capacityRoute,
  deleteRoute,
  executeRoute,
  getRoute,
  healthRoute,
  listRoute,
  metricsRoute,
  sealRoute,
} from './schemas.js';
import type { TokenStore } from './tokens.js';

export interface ServerOptions {
  residency: ResidencyPort;
  audit: AuditPort;
  tokens: TokenStore;
  /** Real path of --models-dir. */
  modelsDir: string;
  serviceId: string;
  /** What POST /v1/execute checks: a random sample of chunks, or the full digest. */
  executeCheck: 'sample' | 'full';
  /** Chunks per sample check (default 8). */
  sampleChunks?: number;
  /** Device used when a request names none (default 0). */
  defaultDevice?: number;
  /** Per client IP; default 600 requests per 60 s. */
  rateLimit?: { max: number; windowMs: number };
  logger?: Logger;
  /** Register prom-client's default process metrics (default true). */
  defaultMetrics?: boolean;
}

export interface Daemon {
  app: FastifyInstance;
  metrics: DaemonMetrics;
  /** ready | stopped (sticky until restart) | shutting_down */
  status(): { status: 'ready' | 'stopped' | 'shutting_down'; reason?: string | undefined };
  /** Marks the daemon as shutting down (health reports it; new work is refused). */
  beginShutdown(): void;
  /** Graceful close: stop accepting, let in-flight requests finish, close every connection. */
  close(): Promise<void>;
}

interface HttpError {
  status: number;
  code: string;
  message: string;
  shard_id?: string;
  corrupt_ranges?: ReadonlyArray<{ offset: number; length: number }>;
}

/** HTTP status per residency error code. */
const STATUS_BY_CODE: Record<string, number> = {
  INVALID_INPUT: 400,
  INSUFFICIENT_VRAM: 507,
  ALLOCATION_FAILED: 503,
  SEAL_VERIFICATION_FAILED: 409,
  NOT_SEALED: 404,
  INTEGRITY_VIOLATION: 422,
  POLICY_VIOLATION: 403,
  STOPPED: 503,
  AUDIT_UNAVAILABLE: 503,
  BACKEND_UNAVAILABLE: 503,
  DEVICE_ERROR: 500,
};

class RouteError extends Error {
  constructor(readonly http: HttpError) {
    super(http.message);
  }
}

function fromError(err: unknown): HttpError {
  if (err instanceof RouteError) return err.http;
  const e = err as FastifyError & {
    code?: unknown;
    shardId?: string;
    corruptRanges?: ReadonlyArray<{ offset: number; length: number }>;
  };
  if (e?.validation) return { status: 400, code: 'INVALID_REQUEST', message: e.message };
  const field = (err as { field?: unknown; rule?: unknown }).field;
  if (
    e?.code === 'INVALID_INPUT' &&
    field === 'shardId' &&
    /already/.test(String((err as { rule?: unknown }).rule))
  )
    return { status: 409, code: 'SHARD_EXISTS', message: e.message };
  if (typeof e?.code === 'string' && e.code in STATUS_BY_CODE) {
    const out: HttpError = { status: STATUS_BY_CODE[e.code] ?? 500, code: e.code, message: e.message };
    if (e.shardId) out.shard_id = e.shardId;
    if (e.corruptRanges?.length) out.corrupt_ranges = e.corruptRanges.slice(0, 64);
    return out;
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)
    return {
      status: e.statusCode,
      code: typeof e.code === 'string' ? e.code : 'BAD_REQUEST',
      message: e.message,
    };
  return { status: 500, code: 'INTERNAL', message: 'internal error (see the daemon log)' };
}

export async function buildServer(opts: ServerOptions): Promise<Daemon> {
  const { residency, audit, tokens, modelsDir, serviceId } = opts;
  const sampleChunks = opts.sampleChunks ?? 8;
  const defaultDevice = opts.defaultDevice ?? 0;
  const log = opts.logger;
  const started = Date.now();
  let stoppedReason: string | undefined;
  let shuttingDown = false;

  const status = (): ReturnType<Daemon['status']> => {
    const m = residency.status();
    if (m.state === 'stopped' && stoppedReason === undefined) stoppedReason = m.reason ?? 'stopped';
    if (stoppedReason !== undefined) return { status: 'stopped', reason: stoppedReason };
    if (shuttingDown) return { status: 'shutting_down', reason: 'shutdown in progress' };
    return { status: 'ready' };
  };

  const record: Recorder = (event) => {
    try {
      audit.emit(event as never).durable.catch(() => {});
      return true;
    } catch (err) {
      log?.error(
        { err: { message: (err as Error).message, code: (err as { code?: string }).code } },
        'audit emit failed',
      );
      return false;
    }
  };

  const metrics = new DaemonMetrics(
    {
      devices: async () =>
        (await residency.devices()).map((d) => ({
          device: d.device,
          backend: d.backend,
          totalBytes: d.total_bytes,
          usedBytes: d.used_bytes,
        })),
      audit: () => {
        const h = audit.health();
        const s = audit.stats?.();
        return {
          queueDepth: h.queueDepth ?? 0,
          dropped: s?.dropped ?? 0,
          fsyncs: s?.fsyncs ?? 0,
          fsyncAvgMs: s?.fsyncAvgMs ?? 0,
          fsyncMaxMs: s?.fsyncMaxMs ?? 0,
        };
      },
      shards: () => residency.list().length,
      ready: () => status().status === 'ready',
      // Platform mode: the shipper attached to the trail (VRAMSEAL_PLATFORM_URL), read at scrape time.
      ...platformSource(audit),
    },
    { defaultMetrics: opts.defaultMetrics ?? true },
  );

  const app = Fastify({
    ...(log ? { loggerInstance: log as FastifyBaseLogger } : { logger: false }),
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  });

  // 1. Rate limiting, before anything else (bounds auth brute force and audit volume per client).
  const limiter = new RateLimiter(opts.rateLimit ?? { max: 600, windowMs: 60_000 });
  app.addHook('onRequest', async (req, reply) => {
    const d = limiter.hit(req.ip);
    reply.header('x-ratelimit-limit', d.limit);
    reply.header('x-ratelimit-remaining', Math.max(0, d.limit - d.count));
    if (d.allowed) return;
    metrics.rateLimited.inc();
    const retry = Math.max(1, Math.ceil(d.resetMs / 1000));
    if (d.report)
      record({
        type: 'security.rate_limit_exceeded',
        timestamp: new Date().toISOString(),
        ip: clientIp(req),
        endpoint: requestPath(req),
        limit: d.limit,
        actual: d.count,
        window_seconds: Math.round(limiter.windowMs / 1000),
      });
    return reply
      .code(429)
      .header('retry-after', retry)
      .send({
        error: {
          code: 'RATE_LIMITED',
          message: `rate limit of ${d.limit} requests per ${limiter.windowMs / 1000} s exceeded`,
          retry_after_s: retry,
        },
      });
  });
  // 2. Authentication + role check for routes that declare config.role.
  app.addHook('onRequest', makeAuthHook({ tokens, record, metrics, serviceId }));
  // While shutting down, responses close their connection so keep-alive clients cannot hold the
  // server open after their in-flight request finished.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (shuttingDown) reply.header('connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpRequests.inc({
      route: req.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    });
  });

  app.setErrorHandler((err, req, reply) => {
    const h = fromError(err);
    if (h.status >= 500)
      req.log.error(
        { err: { message: (err as Error).message, code: (err as { code?: unknown }).code } },
        'request failed',
      );
    const body: { error: Record<string, unknown> } = { error: { code: h.code, message: h.message } };
    if (h.shard_id) body.error.shard_id = h.shard_id;
    if (h.corrupt_ranges) body.error.corrupt_ranges = h.corrupt_ranges;
    return reply.code(h.status).send(body);
  });
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${requestPath(req)}` } }),
  );

  const requireReady = () => {
    const s = status();
    if (s.status !== 'ready')
      throw new RouteError({
        status: 503,
        code: s.status === 'stopped' ? 'STOPPED' : 'SHUTTING_DOWN',
        message:
          s.status === 'stopped'
            ? `the worker is stopped (${s.reason}); it stays stopped until restarted`
            : 'the daemon is shutting down',
      });
  };
  const shardOr404 = (id: string) => {
    const shard = residency.get(id);
    if (!shard)
      throw new RouteError({
        status: 404,
        code: 'NOT_SEALED',
        message: `no sealed shard ${JSON.stringify(id)}`,
        shard_id: id,
      });
    return shard;
  };
  const actorOf = (req: FastifyRequest) => ({
    user_id: req.principal?.fingerprint ?? 'anonymous',
    ip: clientIp(req),
    auth_method: 'bearer_token',
  });

  app.get('/health', { schema: healthRoute }, async (_req, reply: FastifyReply) => {
    let s: { status: string; reason?: string | undefined } = status();
    const h = audit.health();
    if (s.status === 'ready' && h.state === 'unavailable')
      s = { status: 'degraded', reason: `audit trail unavailable${h.lastError ? `: ${h.lastError}` : ''}` };
    reply.code(s.status === 'ready' ? 200 : 503);
    return {
      status: s.status,
      ...(s.reason ? { reason: s.reason } : {}),
      backend: residency.backend,
      shards: residency.list().length,
      uptime_s: Math.round((Date.now() - started) / 100) / 10,
      audit: { state: h.state, queue_depth: h.queueDepth ?? 0 },
    };
  });

  app.get('/metrics', { schema: metricsRoute }, async (_req, reply) => {
    const { contentType, body } = await metrics.expose();
    reply.type(contentType);
    return body;
  });

  app.get<{ Querystring: { bytes: number; device?: number } }>(
    '/v1/capacity',
    { schema: capacityRoute, config: { role: 'reader' } },
    async (req) => {
      const device = req.query.device ?? defaultDevice;
      const c = await residency.capacity(device);
      const bytes = req.query.bytes;
      let reason: string | undefined;
      if (bytes > c.max_model_bytes) reason = `exceeds the per-model limit of ${c.max_model_bytes} bytes`;
      else if (bytes > c.available_bytes)
        reason = `needs ${bytes} bytes, ${c.available_bytes} available after the ${c.reserve_bytes}-byte reserve`;
      return {
        device,
        bytes,
        fits: reason === undefined,
        ...(reason ? { reason } : {}),
        ...withoutDevice(c),
      };
    },
  );

  app.post<{
    Body: { model: string; device?: number; expect_sha256?: string; shard_id?: string; model_ref?: string };
  }>('/v1/shards', { schema: sealRoute, config: { role: 'admin' } }, async (req, reply) => {
    requireReady();
    const body = req.body;
    const checked = await confineModelPath(modelsDir, body.model);
    // Then pin the very file that was checked, so a symlink swapped in meanwhile cannot redirect the read.
    const pinned = checked.ok ? await pinModel(modelsDir, checked.path) : checked;
    if ('ok' in pinned) {
      const refused = pinned as Extract<ConfineResult, { ok: false }>;
      if (refused.kind === 'traversal') {
        record({
          type: 'security.path_traversal_attempt',
          timestamp: new Date().toISOString(),
          actor: actorOf(req),
          attempted_path: safeText(body.model, 1024),
          endpoint: requestPath(req),
        });
        throw new RouteError({
          status: 400,
          code: 'PATH_TRAVERSAL',
          message: `invalid model: ${refused.reason}`,
        });
      }
      throw new RouteError({
        status: refused.kind === 'not_found' ? 404 : 400,
        code: refused.kind === 'not_found' ? 'MODEL_NOT_FOUND' : 'INVALID_MODEL',
        message: `invalid model: ${refused.reason}`,
      });
    }
    const realPath = checked.ok ? checked.path : '';
    const t0 = performance.now();
    let shard: Awaited<ReturnType<ResidencyPort['seal']>>;
    try {
      shard = await residency.seal(pinned.path, {
        device: body.device ?? defaultDevice,
        expectSha256: body.expect_sha256?.toLowerCase(),
        shardId: body.shard_id,
        modelRef: body.model_ref ?? modelRefOf(modelsDir, realPath),
      });
    } catch (err) {
      metrics.seals.inc({ result: 'failed' });
      throw err;
    } finally {
      await pinned.close();
    }
    const ms = performance.now() - t0;
    metrics.seals.inc({ result: 'ok' });
    reply.code(201);
    return { shard, seal_ms: round(ms), gb_per_s: round(shard.vram_bytes / 1e9 / (ms / 1000)) };
  });

  app.get('/v1/shards', { schema: listRoute, config: { role: 'reader' } }, async () => ({
    shards: residency.list(),
  }));

  app.get<{ Params: { id: string } }>(
    '/v1/shards/:id',
    { schema: getRoute, config: { role: 'reader' } },
    async (req) => {
      const shard = shardOr404(req.params.id);
      return { shard, state: 'sealed', last_verification: residency.lastVerification(req.params.id) ?? null };
    },
  );

  // Per-shard gate: a release waits for the executes in flight on that shard and later executes get
  // 404, so a DELETE racing an execute can never look like a verification of a released shard
  // (which the manager must treat as a failure and stop on).
  const gates = new Map<string, { busy: number; releasing: boolean; idle: Array<() => void> }>();
  const gateOf = (id: string) => {
    let g = gates.get(id);
    if (!g) {
      g = { busy: 0, releasing: false, idle: [] };
      gates.set(id, g);
    }
    return g;
  };
  /** A shard whose DELETE is under way answers like an unknown one. */
  const beingReleased = (id: string) =>
    new RouteError({
      status: 404,
      code: 'NOT_SEALED',
      message: `shard ${JSON.stringify(id)} is being released`,
      shard_id: id,
    });
  const enter = (id: string) => {
    const g = gateOf(id);
    if (g.releasing) throw beingReleased(id);
    g.busy++;
    return () => {
      g.busy--;
      if (g.busy === 0) {
        for (const f of g.idle.splice(0)) f();
        if (!g.releasing) gates.delete(id);
      }
    };
  };

  app.delete<{ Params: { id: string } }>(
    '/v1/shards/:id',
    { schema: deleteRoute, config: { role: 'admin' } },
    async (req) => {
      const id = req.params.id;
      shardOr404(id);
      const g = gateOf(id);
      if (g.releasing) throw beingReleased(id);
      g.releasing = true;
      try {
        if (g.busy > 0) await new Promise<void>((r) => g.idle.push(r));
        const r = await residency.release(id);
        return { shard_id: id, released: true, freed_bytes: r.freed_bytes };
      } finally {
        gates.delete(id);
      }
    },
  );

  app.post<{ Body: { shard_id: string } }>(
    '/v1/execute',
    { schema: executeRoute, config: { role: 'operator' } },
    async (req) => {
      requireReady();
      const shard = shardOr404(req.body.shard_id);
      const leave = enter(shard.shard_id);
      const mode = opts.executeCheck;
      const t0 = performance.now();
      try {
        const verification = await residency.verify(shard.shard_id, mode, sampleChunks);
        metrics.verifications.inc({ mode, result: 'ok' });
        metrics.verificationSeconds.observe({ mode }, (performance.now() - t0) / 1000);
        return { attested: true, shard, verification };
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'SEAL_VERIFICATION_FAILED') {
          metrics.verifications.inc({ mode, result: 'failed' });
          metrics.verificationSeconds.observe({ mode }, (performance.now() - t0) / 1000);
          stoppedReason ??= `verification of shard ${shard.shard_id} failed`;
          log?.fatal(
            { shard_id: shard.shard_id, code },
            'seal verification failed; worker stopped until restart',
          );
        }
        throw err;
      } finally {
        leave();
      }
    },
  );

  return {
    app,
    metrics,
    status,
    beginShutdown: () => {
      shuttingDown = true;
    },
    close: async () => {
      shuttingDown = true;
      // app.close() stops accepting and waits for in-flight requests; connections that turn idle
      // after it was called are closed here as they do.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(sweep);
      }
    },
  };
}

function withoutDevice<T extends { device: number }>(c: T): Omit<T, 'device'> {
  const { device: _d, ...rest } = c;
  return rest;
}

function round(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 1000) / 1000 : 0;
}

function modelRefOf(root: string, path: string): string {
  const rel = path.slice(root.length).replace(/^[/\\]+/, '');
  return safeText(rel || path, 256);
}
