/**
 * Daemon metrics in platform mode: a real AuditLogger in mode 'platform' ships to a real collector
 * (PGlite, loopback HTTP); the `vramseal_platform_*` metrics follow the shipper while the collector
 * is unreachable (backlog, failures, last error time, state backoff) and after it comes back
 * (backlog 0, acked seq = last seq). The error text never reaches the exposition.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AuditLogger, publicKeyToBase64, shipperOf } from '@vramseal/audit';
import { buildCollectorServer, openStore, parseKeys } from '@vramseal/collector';
import pino from 'pino';
import { DaemonMetrics, type MetricsSources, platformSource } from '../src/serve/metrics.js';

const quiet = pino({ level: 'silent' });
const tmp = mkdtempSync(join(tmpdir(), 'vramseal-platform-metrics-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function sources(extra: Partial<MetricsSources> = {}): MetricsSources {
  return {
    devices: async () => [],
    audit: () => ({ queueDepth: 0, dropped: 0, fsyncs: 0, fsyncAvgMs: 0, fsyncMaxMs: 0 }),
    shards: () => 0,
    ready: () => true,
    ...extra,
  };
}

function value(text: string, series: string): number {
  const esc = series.replace(/[{}"=]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${series} missing in exposition`);
  return Number(m[1]);
}

test('local trail: no vramseal_platform_* metrics', async () => {
  const log = await AuditLogger.open({
    mode: 'local',
    dir: join(tmp, 'local'),
    serviceId: 'w',
    logger: quiet,
  });
  try {
    const m = new DaemonMetrics(sources(platformSource(log)), { defaultMetrics: false });
    const { body } = await m.expose();
    assert.doesNotMatch(body, /vramseal_platform_/);
    assert.match(body, /^vramseal_shards 0$/m);
  } finally {
    await log.close();
  }
});

test('platform mode: backlog, acked seq, failures and state follow the shipper; no error text', async () => {
  const { store } = await openStore({});
  const provider = generateKeyPairSync('ed25519');
  const collector = generateKeyPairSync('ed25519');
  const providerId = 'gpu-metrics-1';
  const keys = parseKeys({
    providers: { [providerId]: { public_keys: [publicKeyToBase64(provider.publicKey)] } },
  });
  const app = await buildCollectorServer({
    store,
    keys,
    signingKey: collector.privateKey,
    audit: { emit: () => ({ durable: Promise.resolve() }) },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const a = app.server.address();
  const url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  let reachable = false;
  const SECRET = 'tok-SECRET-9f8e7d';
  const fakeFetch: typeof fetch = async (input, init) => {
    // An error message that carries something secret: it must never be exposed by /metrics.
    if (!reachable) throw new Error(`connect ECONNREFUSED (bearer ${SECRET})`);
    return fetch(input, init);
  };
  const log = await AuditLogger.open({
    mode: 'platform',
    dir: join(tmp, 'platform'),
    serviceId: 'worker-metrics',
    flush: { mode: 'batched', maxEvents: 8, maxDelayMs: 5 },
    logger: quiet,
    platform: {
      providerId,
      url,
      privateKey: provider.privateKey,
      collectorPublicKey: publicKeyToBase64(collector.publicKey),
      batch: { maxRecords: 10, maxDelayMs: 5 },
      backoff: { initialMs: 10, maxMs: 40 },
      fetch: fakeFetch,
    },
  });
  try {
    assert.ok(shipperOf(log), 'the logger has a shipper');
    const m = new DaemonMetrics(sources(platformSource(log)), { defaultMetrics: false });
    const rs = [];
    for (let i = 0; i < 12; i++)
      rs.push(
        log.emit({
          type: 'data.inference_executed',
          timestamp: new Date(Date.UTC(2026, 10, 27, 10, 0, i)).toISOString(),
          customer_id: 'cust-a',
          job_id: `job-${i}`,
          model_ref: 'm',
          tokens_processed: i,
          result: { status: 'success' },
        } as never).durable,
      );
    await Promise.all(rs);
    // Wait until the shipper has failed at least twice.
    const shipper = shipperOf(log);
    for (let i = 0; i < 200 && (shipper?.status().failures ?? 0) < 2; i++)
      await new Promise((r) => setTimeout(r, 10));
    let text = (await m.expose()).body;
    assert.equal(value(text, 'vramseal_platform_backlog_records'), 12);
    assert.equal(value(text, 'vramseal_platform_acked_seq'), 0);
    assert.equal(value(text, 'vramseal_platform_durable_seq'), 12);
    assert.ok(value(text, 'vramseal_platform_ship_failures_total') >= 2);
    assert.ok(value(text, 'vramseal_platform_consecutive_failures') >= 2);
    const errAt = value(text, 'vramseal_platform_last_error_timestamp_seconds');
    assert.ok(errAt > Date.now() / 1000 - 60 && errAt <= Date.now() / 1000 + 1, `error time ${errAt}`);
    assert.equal(value(text, 'vramseal_platform_last_ack_timestamp_seconds'), 0);
    assert.equal(value(text, 'vramseal_platform_records_acked_total'), 0);
    const states = [...text.matchAll(/^vramseal_platform_state\{state="(\w+)"\} 1$/gm)].map((x) => x[1]);
    assert.equal(states.length, 1, 'exactly one current state');
    assert.ok(['backoff', 'shipping'].includes(states[0] as string), `state ${states[0]}`);
    assert.ok(!text.includes(SECRET) && !text.includes('ECONNREFUSED'), 'no error text in /metrics');

    // The collector becomes reachable: the backlog drains.
    reachable = true;
    await shipper?.flush(10_000);
    text = (await m.expose()).body;
    assert.equal(value(text, 'vramseal_platform_backlog_records'), 0);
    assert.equal(value(text, 'vramseal_platform_acked_seq'), 12);
    assert.equal(value(text, 'vramseal_platform_records_acked_total'), 12);
    assert.equal(value(text, 'vramseal_platform_consecutive_failures'), 0);
    assert.ok(value(text, 'vramseal_platform_last_ack_timestamp_seconds') >= errAt);
    assert.equal(await store.count(providerId), 12);
    // Counters never go down between scrapes.
    const failures = value(text, 'vramseal_platform_ship_failures_total');
    assert.ok(value((await m.expose()).body, 'vramseal_platform_ship_failures_total') >= failures);
  } finally {
    await log.close();
    await app.close();
    await store.client.close();
  }
});
