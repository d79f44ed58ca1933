/**
 * Shared test fixtures: both storage engines (real PostgreSQL at 127.0.0.1:5432 in a unique schema
 * dropped afterwards, and in-memory PGlite), an in-memory collector audit sink that validates every
 * event, provider keys, and hand-built trails (sealRecord) for driving the API directly.
 */

import type { KeyObject } from 'node:crypto';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import {
  type AuditEvent,
  type BatchHeader,
  canonicalize,
  GENESIS_HASH,
  keyId,
  publicKeyToBase64,
  type SignedBatch,
  sealRecord,
  signBatch,
  validateEvent,
} from '@vramseal/audit';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import type { CollectorAuditSink } from '../src/audit-sink.js';
import { openStore } from '../src/collector.js';
import { type CollectorKeys, parseKeys, tokenHash } from '../src/config.js';
import { buildCollectorServer } from '../src/server.js';
import type { AuditStore, MigrateReport } from '../src/store.js';

export const PG_URL = process.env.VRAMSEAL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Records every event after validating it like the real AuditLogger would. */
export class MemoryAudit implements CollectorAuditSink {
  events: AuditEvent[] = [];
  failing = false;
  emit(event: AuditEvent): { durable: Promise<void> } {
    const e = validateEvent(event);
    if (this.failing) return { durable: Promise.reject(new Error('trail unavailable')) };
    this.events.push(e);
    return { durable: Promise.resolve() };
  }
  ofType(t: string): AuditEvent[] {
    return this.events.filter((e) => e.type === t);
  }
}

export interface EngineFixture {
  engine: 'postgres' | 'pglite';
  store: AuditStore;
  migration: MigrateReport;
  /** Runs SQL as the database owner / superuser (bypassing the app role, not the triggers). */
  ownerQuery(sql: string, params?: unknown[]): Promise<unknown[]>;
  close(): Promise<void>;
}

export async function openEngine(engine: 'postgres' | 'pglite'): Promise<EngineFixture> {
  if (engine === 'pglite') {
    const { store, migration } = await openStore({});
    return {
      engine,
      store,
      migration,
      ownerQuery: async (sql, params) => {
        // PGlite has one connection, running as the app role after migrate(): step out of it and back.
        await store.client.exec('RESET ROLE');
        try {
          return (await store.client.query(sql.replaceAll('{s}', `"${store.schema}"`), params)).rows;
        } finally {
          await store.client.useRole('vramseal_collector_app');
        }
      },
      close: () => store.client.close(),
    };
  }
  const schema = `vs_test_${process.pid}_${randomUUID().slice(0, 8)}`;
  const { store, migration } = await openStore({ databaseUrl: PG_URL, schema, poolSize: 12 });
  const owner = new pg.Client({ connectionString: PG_URL });
  await owner.connect();
  return {
    engine,
    store,
    migration,
    ownerQuery: async (sql, params) =>
      (await owner.query(sql.replaceAll('{s}', `"${schema}"`), params as unknown[])).rows,
    close: async () => {
      await store.client.close();
      await owner.query(`DROP SCHEMA "${schema}" CASCADE`);
      await owner.end();
    },
  };
}

export interface ProviderKey {
  id: string;
  privateKey: KeyObject;
  publicKey: string;
  keyId: string;
}

export function newProvider(prefix = 'prov'): ProviderKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    id: `${prefix}-${randomUUID().slice(0, 8)}`,
    privateKey,
    publicKey: publicKeyToBase64(publicKey),
    keyId: keyId(publicKey),
  };
}

export const TOKENS = {
  admin: 'tok-admin-0123456789',
  acme: 'tok-acme-0123456789',
  globex: 'tok-globex-0123456789',
};

export function makeKeys(providers: ProviderKey[]): CollectorKeys {
  return parseKeys({
    providers: Object.fromEntries(providers.map((p) => [p.id, { public_keys: [p.publicKey] }])),
    tokens: [
      { name: 'alice-admin', sha256: tokenHash(TOKENS.admin), role: 'admin' },
      { name: 'acme-portal', sha256: tokenHash(TOKENS.acme), role: 'customer', customer_id: 'cust-acme' },
      {
        name: 'globex-portal',
        sha256: tokenHash(TOKENS.globex),
        role: 'customer',
        customer_id: 'cust-globex',
      },
    ],
  });
}

/** Registers a provider's key in a live keys object (the server reads it per request). */
export function register(keys: CollectorKeys, p: ProviderKey): void {
  const k = parseKeys({ providers: { [p.id]: { public_keys: [p.publicKey] } } });
  keys.providers.set(p.id, k.providers.get(p.id) as Map<string, KeyObject>);
}

export interface Rec {
  seq: number;
  hash: string;
  prev_hash: string;
  line: string;
}

/** A hand-built provider trail (FORMAT.md records via sealRecord), extendable. */
export class TrailBuilder {
  recs: Rec[] = [];
  constructor(
    readonly serviceId = 'worker-1',
    readonly t0 = Date.parse('2026-11-27T10:00:00.000Z'),
  ) {}
  get lastHash(): string {
    return this.recs[this.recs.length - 1]?.hash ?? GENESIS_HASH;
  }
  add(n: number, ev: (seq: number) => Record<string, unknown> = defaultEvent): Rec[] {
    const out: Rec[] = [];
    for (let i = 0; i < n; i++) {
      const seq = this.recs.length + 1;
      const prev = this.lastHash;
      const { line, hash } = sealRecord({
        seq,
        audit_id: randomUUID(),
        time: new Date(this.t0 + seq * 1000).toISOString(),
        service_id: this.serviceId,
        eventJson: canonicalize(ev(seq)),
        prev_hash: prev,
      });
      const r = { seq, hash, prev_hash: prev, line };
      this.recs.push(r);
      out.push(r);
    }
    return out;
  }
  /** Records first..last (1-based, inclusive). */
  range(first: number, last: number): Rec[] {
    return this.recs.slice(first - 1, last);
  }
}

export function defaultEvent(seq: number): Record<string, unknown> {
  const customer = seq % 2 === 0 ? 'cust-acme' : 'cust-globex';
  return {
    type: 'data.inference_executed',
    timestamp: new Date(Date.parse('2026-11-27T10:00:00.000Z') + seq * 1000).toISOString(),
    customer_id: customer,
    job_id: `job-${seq}`,
    model_ref: 'llama-3-8b@sha256:abc',
    tokens_processed: seq,
    result: { status: 'success' },
  };
}

export function batchOf(
  p: ProviderKey,
  recs: Rec[],
  key: KeyObject = p.privateKey,
  kid = p.keyId,
): SignedBatch {
  const first = recs[0] as Rec;
  const last = recs[recs.length - 1] as Rec;
  const h: BatchHeader = {
    v: 1,
    provider_id: p.id,
    first_seq: first.seq,
    last_seq: last.seq,
    prev_hash: first.prev_hash,
    last_hash: last.hash,
    sent_at: new Date().toISOString(),
    key_id: kid,
  };
  return signBatch(
    h,
    recs.map((r) => r.line),
    key,
  );
}

export interface ServerFixture extends EngineFixture {
  app: FastifyInstance;
  audit: MemoryAudit;
  keys: CollectorKeys;
  collectorKey: KeyObject;
  collectorPublicKey: string;
}

export async function openServer(engine: 'postgres' | 'pglite'): Promise<ServerFixture> {
  const f = await openEngine(engine);
  const audit = new MemoryAudit();
  const keys = makeKeys([]);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const app = await buildCollectorServer({
    store: f.store,
    keys,
    signingKey: privateKey,
    audit,
    migration: f.migration,
    securityEvents: { perWindow: 100_000 },
  });
  await app.ready();
  return {
    ...f,
    app,
    audit,
    keys,
    collectorKey: privateKey,
    collectorPublicKey: publicKeyToBase64(publicKey),
    close: async () => {
      await app.close();
      await f.close();
    },
  };
}

export async function post(
  app: FastifyInstance,
  b: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await app.inject({ method: 'POST', url: '/v1/batches', payload: b as object });
  return { status: r.statusCode, body: r.json() };
}

export async function get(
  app: FastifyInstance,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await app.inject({ method: 'GET', url, headers });
  return { status: r.statusCode, body: r.json() };
}

export const ENGINES = ['postgres', 'pglite'] as const;
