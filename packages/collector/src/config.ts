/**
 * The collector's keys file (`--keys providers.json`): registered providers with their Ed25519
 * public keys, and the bearer tokens of the query API — stored as SHA-256 hashes, never in clear.
 *
 * {
 *   "providers": { "gpu-provider-1": {
 *       "public_keys": ["<base64 raw Ed25519 key>" | "<SPKI PEM>"],
 *       // optional (checkpoint witness): the trail's transparency keys and checkpoint origin
 *       "checkpoint_keys": ["<C2SP verifier key: name+id+base64>"],
 *       "checkpoint_origin": "vramseal/worker-1"
 *   } },
 *   "tokens": [
 *     { "name": "acme-portal", "sha256": "<hex SHA-256 of the token>", "role": "customer", "customer_id": "cust-acme" },
 *     { "name": "alice",       "sha256": "<hex>", "role": "admin" },
 *     { "name": "p1-ops",      "sha256": "<hex>", "role": "provider", "provider_id": "gpu-provider-1" }
 *   ]
 * }
 */
import { createHash, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { keyId, parsePublicKey, parseVerifierKey, type VerifierKey } from '@vramseal/audit';
import { CollectorError } from './errors.js';

export type Role = 'admin' | 'customer' | 'provider';

export interface Principal {
  name: string;
  role: Role;
  customerId?: string;
  providerId?: string;
}

/** A provider's registered transparency (checkpoint) keys and the origin its checkpoints must name. */
export interface CheckpointRegistration {
  origin: string;
  keys: VerifierKey[];
}

export interface CollectorKeys {
  /** provider id → (key id → public key). */
  providers: Map<string, Map<string, KeyObject>>;
  /**
   * provider id → checkpoint keys + origin, for providers registered as witnessed (optional: a keys
   * file without `checkpoint_keys` stays valid; such providers cannot submit checkpoints).
   */
  checkpoints?: Map<string, CheckpointRegistration>;
  /** hex SHA-256 of a token → principal. */
  tokens: Map<string, Principal>;
}

export const PROVIDER_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';
const PROVIDER_RE = new RegExp(PROVIDER_ID_PATTERN);
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

function fail(path: string, rule: string): never {
  throw new CollectorError('COLLECTOR_CONFIG', `keys file: ${path} ${rule}`);
}

/** Validates a parsed keys document; errors name the field and the rule. */
export function parseKeys(doc: unknown): CollectorKeys {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('<root>', 'must be an object');
  const d = doc as { providers?: unknown; tokens?: unknown };
  const providers = new Map<string, Map<string, KeyObject>>();
  const checkpoints = new Map<string, CheckpointRegistration>();
  const ps = d.providers ?? {};
  if (typeof ps !== 'object' || ps === null || Array.isArray(ps)) fail('providers', 'must be an object');
  for (const [id, v] of Object.entries(ps as Record<string, unknown>)) {
    if (!PROVIDER_RE.test(id))
      fail(`providers[${JSON.stringify(id.slice(0, 40))}]`, `id must match ${PROVIDER_ID_PATTERN}`);
    const p = v as {
      public_keys?: unknown;
      public_key?: unknown;
      checkpoint_keys?: unknown;
      checkpoint_origin?: unknown;
    };
    const list = p?.public_keys ?? (p?.public_key === undefined ? undefined : [p.public_key]);
    if (!Array.isArray(list) || list.length === 0)
      fail(`providers.${id}.public_keys`, 'must be a non-empty array');
    const keys = new Map<string, KeyObject>();
    list.forEach((k, i) => {
      if (typeof k !== 'string') fail(`providers.${id}.public_keys[${i}]`, 'must be a string');
      let key: KeyObject;
      try {
        key = parsePublicKey(k);
      } catch (err) {
        fail(`providers.${id}.public_keys[${i}]`, (err as Error).message);
      }
      keys.set(keyId(key), key);
    });
    providers.set(id, keys);
    if (p.checkpoint_keys !== undefined || p.checkpoint_origin !== undefined)
      checkpoints.set(id, parseCheckpointRegistration(id, p.checkpoint_keys, p.checkpoint_origin));
  }
  const tokens = new Map<string, Principal>();
  const ts = d.tokens ?? [];
  if (!Array.isArray(ts)) fail('tokens', 'must be an array');
  ts.forEach((t: Record<string, unknown>, i: number) => {
    const at = `tokens[${i}]`;
    if (typeof t !== 'object' || t === null) fail(at, 'must be an object');
    if (typeof t.name !== 'string' || !NAME_RE.test(t.name))
      fail(`${at}.name`, `must match ${NAME_RE.source}`);
    if (typeof t.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(t.sha256))
      fail(`${at}.sha256`, 'must be the 64 lowercase hex SHA-256 of the token');
    const p: Principal = { name: t.name, role: t.role as Role };
    if (t.role === 'customer') {
      if (typeof t.customer_id !== 'string' || !t.customer_id || t.customer_id.length > 256)
        fail(`${at}.customer_id`, 'is required for role customer');
      p.customerId = t.customer_id;
    } else if (t.role === 'provider') {
      if (typeof t.provider_id !== 'string' || !PROVIDER_RE.test(t.provider_id))
        fail(`${at}.provider_id`, 'is required for role provider');
      p.providerId = t.provider_id;
    } else if (t.role !== 'admin') fail(`${at}.role`, "must be one of 'admin', 'customer', 'provider'");
    if (tokens.has(t.sha256)) fail(`${at}.sha256`, 'duplicates another token');
    tokens.set(t.sha256, p);
  });
  return { providers, tokens, checkpoints };
}

function parseCheckpointRegistration(id: string, list: unknown, origin: unknown): CheckpointRegistration {
  if (!Array.isArray(list) || list.length === 0)
    fail(`providers.${id}.checkpoint_keys`, 'must be a non-empty array of C2SP verifier keys');
  if (
    typeof origin !== 'string' ||
    origin.length === 0 ||
    origin.length > 256 ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point (C2SP signed-note)
    /[\u0000-\u001f\u007f]/.test(origin)
  )
    fail(
      `providers.${id}.checkpoint_origin`,
      'is required with checkpoint_keys: the origin line of its checkpoints (1-256 characters, no control characters)',
    );
  const keys: VerifierKey[] = [];
  list.forEach((k, i) => {
    if (typeof k !== 'string') fail(`providers.${id}.checkpoint_keys[${i}]`, 'must be a string');
    try {
      keys.push(parseVerifierKey(k));
    } catch (err) {
      fail(`providers.${id}.checkpoint_keys[${i}]`, (err as Error).message);
    }
  });
  return { origin, keys };
}

export function loadKeysFile(file: string): CollectorKeys {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CollectorError(
      'COLLECTOR_CONFIG',
      `cannot read keys file ${file}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new CollectorError('COLLECTOR_CONFIG', `keys file ${file} is not valid JSON`);
  }
  return parseKeys(doc);
}

/** hex SHA-256 of a bearer token, the form the keys file stores. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
