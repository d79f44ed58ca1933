/**
 * Bearer-token authentication and role check (RFC 6750 §2.1 header form only — tokens in query
 * strings would land in access logs). Runs as an `onRequest` hook for routes that declare
 * `config.role`; `/health` and `/metrics` declare none.
 *
 * Audit records (token fingerprints only, never the token):
 * - `auth.success` for every authenticated request;
 * - `auth.failure` for a missing/malformed header or an unknown token, plus
 *   `security.invalid_token_used` when a token was presented but is not known;
 * - `authz.denied` when the token's role is below the route's.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DaemonMetrics } from './metrics.js';
import { fingerprint, type Principal, type Role, roleAllows, type TokenStore } from './tokens.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Least role allowed to call the route; absent = no authentication. */
    role?: Role;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

export type Recorder = (event: Record<string, unknown>) => boolean;

export interface AuthOptions {
  tokens: TokenStore;
  record: Recorder;
  metrics: DaemonMetrics;
  serviceId: string;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
const UNSAFE_RE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** Makes client-supplied text safe for an audit field: escapes control/bidi characters, truncates. */
export function safeText(s: string, max = 256): string {
  const escaped = s.replace(UNSAFE_RE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > max ? `${escaped.slice(0, max - 1)}…` : escaped;
}

/** The client address for audit records: `req.ip` without an IPv6 zone id (`fe80::1%eth0`). */
export function clientIp(req: FastifyRequest): string {
  const ip = req.ip;
  const z = ip.indexOf('%');
  return z >= 0 ? ip.slice(0, z) : ip;
}

/** The request path without the query string, safe for audit fields. */
export function requestPath(req: FastifyRequest): string {
  const url = req.url;
  const q = url.indexOf('?');
  return safeText(q >= 0 ? url.slice(0, q) : url);
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

export function makeAuthHook(opts: AuthOptions) {
  const { tokens, record, metrics, serviceId } = opts;
  const now = () => new Date().toISOString();

  return async function authenticate(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const needed = req.routeOptions.config?.role;
    if (needed === undefined) return;
    const path = requestPath(req);
    const ip = clientIp(req);
    const header = req.headers.authorization;

    const fail = (reason: string, attempted?: string) => {
      metrics.authFailures.inc({ reason });
      record({
        type: 'auth.failure',
        timestamp: now(),
        ...(attempted ? { attempted_user: attempted } : {}),
        reason,
        ip,
        path,
        service_id: serviceId,
      });
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="vramseal"')
        .send(errorBody('UNAUTHORIZED', `authentication failed: ${reason}`));
    };

    if (header === undefined || header === '') return fail('missing');
    const m = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i.exec(header);
    if (!m?.[1]) return fail('malformed');
    const token = m[1];
    const principal = tokens.authenticate(token);
    if (principal === undefined) {
      const fp = fingerprint(token);
      record({ type: 'security.invalid_token_used', timestamp: now(), ip, token_prefix: fp, endpoint: path });
      return fail('invalid_token', fp);
    }
    const actor = { user_id: principal.fingerprint, ip, auth_method: 'bearer_token' };
    if (!roleAllows(principal.role, needed)) {
      metrics.authFailures.inc({ reason: 'forbidden' });
      record({
        type: 'authz.denied',
        timestamp: now(),
        actor,
        resource: { resource_type: 'endpoint', resource_id: path },
        action: req.method,
        reason: `role ${principal.role} below required ${needed}`,
      });
      return reply
        .code(403)
        .send(
          errorBody(
            'FORBIDDEN',
            `role ${principal.role} may not call ${req.method} ${path} (needs ${needed})`,
          ),
        );
    }
    if (
      !record({
        type: 'auth.success',
        timestamp: now(),
        actor,
        method: req.method,
        path,
        service_id: serviceId,
      })
    )
      return reply.code(503).send(errorBody('AUDIT_UNAVAILABLE', 'the audit trail cannot record; refusing'));
    req.principal = principal;
  };
}
