/**
 * Prometheus metrics of the residency daemon (prom-client, own registry — nothing global).
 *
 * | metric                                          | type      | labels            |
 * | ----------------------------------------------- | --------- | ----------------- |
 * | vramseal_vram_bytes_total                       | gauge     | device, backend   |
 * | vramseal_vram_bytes_used                        | gauge     | device, backend   |
 * | vramseal_shards                                 | gauge     |                   |
 * | vramseal_seals_total                            | counter   | result            |
 * | vramseal_verifications_total                    | counter   | mode, result      |
 * | vramseal_verification_duration_seconds          | histogram | mode              |
 * | vramseal_state                                  | gauge     | (1 ready, 0 stopped) |
 * | vramseal_audit_queue_depth                      | gauge     |                   |
 * | vramseal_audit_dropped_records_total            | counter   |                   |
 * | vramseal_audit_fsyncs_total                      | counter   |                   |
 * | vramseal_audit_fsync_avg_seconds                | gauge     | (mean since start) |
 * | vramseal_audit_fsync_max_seconds                | gauge     |                   |
 * | vramseal_http_requests_total                    | counter   | route, status     |
 * | vramseal_auth_failures_total                    | counter   | reason            |
 * | vramseal_rate_limited_total                     | counter   |                   |
 * platform mode only (the trail ships to a collector, see @vramseal/audit `shipperOf`):
 * | vramseal_platform_backlog_records               | gauge     |                   |
 * | vramseal_platform_acked_seq                     | gauge     |                   |
 * | vramseal_platform_durable_seq                   | gauge     |                   |
 * | vramseal_platform_records_acked_total           | counter   |                   |
 * | vramseal_platform_ship_failures_total           | counter   |                   |
 * | vramseal_platform_consecutive_failures          | gauge     |                   |
 * | vramseal_platform_last_error_timestamp_seconds  | gauge     | (0: none yet)     |
 * | vramseal_platform_last_ack_timestamp_seconds    | gauge     | (0: none yet)     |
 * | vramseal_platform_state                         | gauge     | state (1 current) |
 * plus prom-client's default process metrics with the `vramseal_` prefix.
 *
 * Gauges that mirror other components (VRAM, audit queue, drops) are read at scrape time through
 * the {@link MetricsSources} callbacks, so the hot path does no extra work for them.
 */
import { shipperOf } from '@vramseal/audit';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface DeviceUsage {
  device: number;
  backend: string;
  totalBytes: number;
  usedBytes: number;
}

export interface AuditGauges {
  queueDepth: number;
  /** Cumulative records dropped by the audit queue. */
  dropped: number;
  /** Cumulative fdatasync calls, their mean and maximum latency (ms). */
  fsyncs: number;
  fsyncAvgMs: number;
  fsyncMaxMs: number;
}

/**
 * The platform shipper's status, as `Shipper.status()` of @vramseal/audit reports it. Only numbers,
 * times and the state name are exposed: the error text (which may name hosts or paths) never is.
 */
export interface PlatformGauges {
  state: string;
  ackedSeq: number;
  durableSeq: number;
  backlog: number;
  recordsAcked: number;
  failures: number;
  consecutiveFailures: number;
  /** RFC 3339 times. */
  lastErrorAt?: string | undefined;
  lastAckAt?: string | undefined;
}

/** The shipper's states (ShipperStateName of @vramseal/audit); one `vramseal_platform_state` series each. */
export const PLATFORM_STATES = [
  'starting',
  'idle',
  'waiting',
  'shipping',
  'backoff',
  'diverged',
  'stopped',
] as const;

export interface MetricsSources {
  devices(): Promise<DeviceUsage[]>;
  audit(): AuditGauges;
  shards(): number;
  ready(): boolean;
  /**
   * Platform mode: the shipper's status now. When given, the `vramseal_platform_*` metrics are
   * registered; when absent (local trail), they do not appear at all.
   */
  platform?: () => PlatformGauges;
}

/**
 * `{ platform }` for {@link MetricsSources} when `logger` (the daemon's AuditLogger) ships its trail to
 * a collector (platform mode), else `{}`.
 */
export function platformSource(logger: object): { platform?: () => PlatformGauges } {
  const shipper = shipperOf(logger);
  return shipper ? { platform: () => shipper.status() } : {};
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class DaemonMetrics {
  readonly registry = new Registry();
  readonly seals: Counter<'result'>;
  readonly verifications: Counter<'mode' | 'result'>;
  readonly verificationSeconds: Histogram<'mode'>;
  readonly httpRequests: Counter<'route' | 'status'>;
  readonly authFailures: Counter<'reason'>;
  readonly rateLimited: Counter;
  #droppedSeen = 0;
  #fsyncsSeen = 0;
  #platformAckedSeen = 0;
  #platformFailuresSeen = 0;

  constructor(sources: MetricsSources, opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'vramseal_' });

    new Gauge({
      name: 'vramseal_vram_bytes_total',
      help: 'Device memory capacity in bytes',
      labelNames: ['device', 'backend'],
      registers,
      async collect() {
        this.reset();
        for (const d of await sources.devices())
          this.set({ device: String(d.device), backend: d.backend }, d.totalBytes);
      },
    });
    new Gauge({
      name: 'vramseal_vram_bytes_used',
      help: 'Device memory held by sealed shards in bytes',
      labelNames: ['device', 'backend'],
      registers,
      async collect() {
        this.reset();
        for (const d of await sources.devices())
          this.set({ device: String(d.device), backend: d.backend }, d.usedBytes);
      },
    });
    new Gauge({
      name: 'vramseal_shards',
      help: 'Sealed shards currently held',
      registers,
      collect() {
        this.set(sources.shards());
      },
    });
    new Gauge({
      name: 'vramseal_state',
      help: '1 when the worker is ready, 0 when stopped after a failed verification',
      registers,
      collect() {
        this.set(sources.ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'vramseal_audit_queue_depth',
      help: 'Audit records queued but not yet durable',
      registers,
      collect() {
        this.set(sources.audit().queueDepth);
      },
    });
    const self = this;
    new Counter({
      name: 'vramseal_audit_dropped_records_total',
      help: 'Routine audit records dropped because the queue was full (each drop is later recorded as audit.events_dropped)',
      registers,
      collect() {
        const now = sources.audit().dropped;
        if (now > self.#droppedSeen) this.inc(now - self.#droppedSeen);
        self.#droppedSeen = Math.max(self.#droppedSeen, now);
      },
    });
    this.seals = new Counter({
      name: 'vramseal_seals_total',
      help: 'Seal attempts by result',
      labelNames: ['result'],
      registers,
    });
    this.verifications = new Counter({
      name: 'vramseal_verifications_total',
      help: 'Seal verifications by mode (full|sample) and result (ok|failed)',
      labelNames: ['mode', 'result'],
      registers,
    });
    this.verificationSeconds = new Histogram({
      name: 'vramseal_verification_duration_seconds',
      help: 'Seal verification latency',
      labelNames: ['mode'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    // The audit logger keeps fsync count, mean and max (not every sample), so these mirror it.
    new Counter({
      name: 'vramseal_audit_fsyncs_total',
      help: 'fdatasync calls made by the audit trail writer',
      registers,
      collect() {
        const now = sources.audit().fsyncs;
        if (now > self.#fsyncsSeen) this.inc(now - self.#fsyncsSeen);
        self.#fsyncsSeen = Math.max(self.#fsyncsSeen, now);
      },
    });
    new Gauge({
      name: 'vramseal_audit_fsync_avg_seconds',
      help: 'Mean audit trail fdatasync latency since start',
      registers,
      collect() {
        this.set(sources.audit().fsyncAvgMs / 1000);
      },
    });
    new Gauge({
      name: 'vramseal_audit_fsync_max_seconds',
      help: 'Slowest audit trail fdatasync since start',
      registers,
      collect() {
        this.set(sources.audit().fsyncMaxMs / 1000);
      },
    });
    this.httpRequests = new Counter({
      name: 'vramseal_http_requests_total',
      help: 'HTTP requests by route and status code',
      labelNames: ['route', 'status'],
      registers,
    });
    this.authFailures = new Counter({
      name: 'vramseal_auth_failures_total',
      help: 'Rejected requests by reason (missing|malformed|invalid_token|forbidden)',
      labelNames: ['reason'],
      registers,
    });
    this.rateLimited = new Counter({
      name: 'vramseal_rate_limited_total',
      help: 'Requests refused by the rate limiter',
      registers,
    });
    if (sources.platform) this.#registerPlatform(sources.platform, registers);
    for (const result of ['ok', 'failed']) this.seals.inc({ result }, 0);
    for (const mode of ['full', 'sample'])
      for (const result of ['ok', 'failed']) this.verifications.inc({ mode, result }, 0);
  }

  /** The `vramseal_platform_*` metrics, read from the shipper status at scrape time. */
  #registerPlatform(status: () => PlatformGauges, registers: Registry[]): void {
    const self = this;
    const seconds = (iso: string | undefined): number => {
      const t = iso === undefined ? Number.NaN : Date.parse(iso);
      return Number.isFinite(t) ? t / 1000 : 0;
    };
    new Gauge({
      name: 'vramseal_platform_backlog_records',
      help: 'Records durable in the local trail but not yet acknowledged by the collector',
      registers,
      collect() {
        this.set(status().backlog);
      },
    });
    new Gauge({
      name: 'vramseal_platform_acked_seq',
      help: 'Last record seq the collector acknowledged with a signed receipt',
      registers,
      collect() {
        this.set(status().ackedSeq);
      },
    });
    new Gauge({
      name: 'vramseal_platform_durable_seq',
      help: 'Last record seq durable in the local trail (the spool)',
      registers,
      collect() {
        this.set(status().durableSeq);
      },
    });
    new Counter({
      name: 'vramseal_platform_records_acked_total',
      help: 'Records the collector acknowledged since the daemon started',
      registers,
      collect() {
        const now = status().recordsAcked;
        if (now > self.#platformAckedSeen) this.inc(now - self.#platformAckedSeen);
        self.#platformAckedSeen = Math.max(self.#platformAckedSeen, now);
      },
    });
    new Counter({
      name: 'vramseal_platform_ship_failures_total',
      help: 'Failed attempts to reach or ship to the collector (each retried with backoff)',
      registers,
      collect() {
        const now = status().failures;
        if (now > self.#platformFailuresSeen) this.inc(now - self.#platformFailuresSeen);
        self.#platformFailuresSeen = Math.max(self.#platformFailuresSeen, now);
      },
    });
    new Gauge({
      name: 'vramseal_platform_consecutive_failures',
      help: 'Failed attempts in a row now (0 once a batch is acknowledged again)',
      registers,
      collect() {
        this.set(status().consecutiveFailures);
      },
    });
    new Gauge({
      name: 'vramseal_platform_last_error_timestamp_seconds',
      help: 'Unix time of the last shipping error (0: none since start); the error text is in the logs only',
      registers,
      collect() {
        this.set(seconds(status().lastErrorAt));
      },
    });
    new Gauge({
      name: 'vramseal_platform_last_ack_timestamp_seconds',
      help: 'Unix time of the last receipt from the collector (0: none since start)',
      registers,
      collect() {
        this.set(seconds(status().lastAckAt));
      },
    });
    new Gauge({
      name: 'vramseal_platform_state',
      help: 'Shipper state: 1 for the current state, 0 for the others (diverged = the collector holds a different record)',
      labelNames: ['state'],
      registers,
      collect() {
        const cur = status().state;
        for (const st of PLATFORM_STATES) this.set({ state: st }, st === cur ? 1 : 0);
      },
    });
  }

  /** Prometheus text exposition. */
  async expose(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
