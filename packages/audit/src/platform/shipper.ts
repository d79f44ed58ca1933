/**
 * The provider side of platform mode: ships durable records of the local trail (the spool) to the
 * collector in signed batches, with exponential backoff + jitter, and resumes after a restart from
 * the seq the collector acknowledged.
 *
 * Invariants:
 * - Only records already durable in the local trail are shipped (the trail is the spool): when
 *   attached to an AuditLogger, up to the last seq its `durable` event reported; standalone, the
 *   complete lines present in the files.
 * - `acked_seq` only advances on a collector receipt for exactly the records sent (verified when the
 *   collector's public key is configured), and is persisted atomically in `platform-state.json`.
 * - Nothing is deleted or skipped: while the collector is unreachable the backlog just grows on
 *   disk and drains when it returns; re-sent records are acknowledged idempotently by the collector.
 * - A fork (the collector holds a different record at some seq) or a collector that is ahead of the
 *   local trail stops shipping in state `diverged` (retried at the maximum backoff), never papered over.
 */

import type { KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { withDeadline } from '../deadline.js';
import { GENESIS_HASH } from '../record.js';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { BATCH_VERSION, type BatchHeader, signBatch } from './batch.js';
import { PlatformError } from './errors.js';
import { keyId, loadPrivateKeyFile, parsePrivateKey, parsePublicKey } from './keys.js';
import { type Receipt, verifyReceipt } from './receipt.js';
import { SpoolReader, type SpoolRecord } from './spool.js';
import { readShipperState, type ShipperState, writeShipperState } from './state.js';

export interface ShipperOptions {
  /** The local trail directory (the spool). */
  dir: string;
  /** This provider's id as registered with the collector. */
  providerId: string;
  /** Collector base URL, e.g. `https://audit.example.com` (http: only for loopback/tests). */
  url: string;
  /** Provider Ed25519 private key: a KeyObject, PKCS#8 PEM text, or `{ file }` (mode 0600). */
  privateKey: KeyObject | string | { file: string };
  /** Collector Ed25519 public key (base64 raw or PEM): when given, every receipt's signature is verified. */
  collectorPublicKey?: KeyObject | string;
  batch?: {
    /** Records per batch (default 500). */
    maxRecords?: number;
    /** Bytes of lines per batch (default 1 MiB). */
    maxBytes?: number;
    /** Ship a partial batch once its oldest record waited this long (default 1000 ms). */
    maxDelayMs?: number;
  };
  backoff?: BackoffOptions;
  /** Per-request timeout (default 30 s). */
  requestTimeoutMs?: number;
  /** Standalone mode: how often to look for new records in the files (default 1000 ms). */
  pollIntervalMs?: number;
  /** Injectable for tests. */
  fetch?: typeof fetch;
}

export type ShipperStateName =
  | 'starting'
  | 'idle'
  | 'waiting'
  | 'shipping'
  | 'backoff'
  | 'diverged'
  | 'stopped';

export interface ShipperStatus {
  state: ShipperStateName;
  providerId: string;
  collectorUrl: string;
  /** Last seq the collector acknowledged with a receipt. */
  ackedSeq: number;
  ackedHash: string;
  /** Last seq known durable in the local trail (attached mode), or last seq seen in the files. */
  durableSeq: number;
  /** Records durable locally but not yet acknowledged. */
  backlog: number;
  lastError?: string;
  lastErrorAt?: string;
  lastAckAt?: string;
  batchesAcked: number;
  recordsAcked: number;
  /** Failed attempts in total, and in a row now. */
  failures: number;
  consecutiveFailures: number;
  nextAttemptAt?: string;
}

interface HeadResponse {
  provider_id: string;
  last_seq: number;
  head_hash: string;
  receipt: Receipt;
}

const BUFFER_MAX = 20_000;

export class Shipper extends EventEmitter {
  readonly dir: string;
  readonly providerId: string;
  readonly url: string;
  #key: KeyObject;
  #keyId: string;
  #collectorKey: KeyObject | undefined;
  #spool: SpoolReader;
  #fetch: typeof fetch;
  #maxRecords: number;
  #maxBytes: number;
  #maxDelayMs: number;
  #backoff: BackoffOptions;
  #timeoutMs: number;
  #pollMs: number;

  #attached = false;
  #state: ShipperStateName = 'starting';
  #acked = 0;
  #ackedHash = GENESIS_HASH;
  #receipt: Receipt | undefined;
  #durable = 0;
  #seenInFiles = 0;
  #pendingSince: number | undefined;
  #buf: SpoolRecord[] = [];
  #bufHead = 0;
  #synced = false;
  #lastError: string | undefined;
  #lastErrorAt: string | undefined;
  #lastAckAt: string | undefined;
  #batchesAcked = 0;
  #recordsAcked = 0;
  #failures = 0;
  #consecutive = 0;
  #nextAttemptAt: number | undefined;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wakeFn: (() => void) | undefined;
  #abort: AbortController | undefined;
  #flushWanted = 0;
  #idleWaiters: Array<() => void> = [];
  #persistedOnce = false;

  constructor(opts: ShipperOptions) {
    super();
    if (!opts.providerId) throw new PlatformError('PLATFORM_CONFIG', 'platform.providerId is required');
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new PlatformError('PLATFORM_CONFIG', 'platform.url must be an absolute http(s) URL');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new PlatformError('PLATFORM_CONFIG', 'platform.url must be an http(s) URL');
    this.dir = opts.dir;
    this.providerId = opts.providerId;
    this.url = opts.url.replace(/\/+$/, '');
    const pk = opts.privateKey;
    this.#key =
      typeof pk === 'string'
        ? parsePrivateKey(pk)
        : 'file' in pk && typeof pk.file === 'string'
          ? loadPrivateKeyFile(pk.file)
          : (pk as KeyObject);
    this.#keyId = keyId(this.#key);
    const ck = opts.collectorPublicKey;
    this.#collectorKey = ck === undefined ? undefined : typeof ck === 'string' ? parsePublicKey(ck) : ck;
    this.#spool = new SpoolReader(opts.dir);
    this.#fetch = opts.fetch ?? fetch;
    this.#maxRecords = opts.batch?.maxRecords ?? 500;
    this.#maxBytes = opts.batch?.maxBytes ?? 1 << 20;
    this.#maxDelayMs = opts.batch?.maxDelayMs ?? 1000;
    this.#backoff = opts.backoff ?? {};
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#pollMs = opts.pollIntervalMs ?? 1000;
  }

  /** Loads the persisted state and starts shipping in the background. */
  async start(): Promise<void> {
    if (this.#loop) return;
    const s = await readShipperState(this.dir);
    if (s && s.provider_id === this.providerId) {
      this.#acked = s.acked_seq;
      this.#ackedHash = s.acked_hash;
      this.#receipt = s.receipt;
    }
    this.#loop = this.#run();
  }

  /**
   * Attached mode: the logger reports durable records (its `durable` event). Records are kept in a
   * bounded in-memory window to avoid re-reading them from disk; older ones are read from the files.
   */
  noteDurable(recs: ReadonlyArray<{ seq: number; hash: string; line: string }>): void {
    this.#attached = true;
    for (const r of recs) {
      if (r.seq <= this.#durable) continue;
      this.#durable = r.seq;
      const last = this.#buf[this.#buf.length - 1];
      if (this.#bufHead < this.#buf.length && last && last.seq + 1 !== r.seq) this.#dropBuffer();
      this.#buf.push({ seq: r.seq, hash: r.hash, prev_hash: '', line: r.line });
    }
    if (this.#buf.length - this.#bufHead > BUFFER_MAX) {
      this.#bufHead = this.#buf.length - BUFFER_MAX;
      this.#compactBuffer();
    }
    if (this.#pendingSince === undefined && this.#durable > this.#acked) this.#pendingSince = Date.now();
    this.#wake();
  }

  /** Attached mode: records up to `seq` are durable (e.g. those already in the trail when it was opened). */
  noteDurableSeq(seq: number): void {
    this.#attached = true;
    if (seq > this.#durable) {
      this.#durable = seq;
      this.#dropBuffer();
      if (this.#pendingSince === undefined && this.#durable > this.#acked) this.#pendingSince = Date.now();
      this.#wake();
    }
  }

  status(): ShipperStatus {
    const durable = this.#attached ? this.#durable : Math.max(this.#seenInFiles, this.#acked);
    const s: ShipperStatus = {
      state: this.#state,
      providerId: this.providerId,
      collectorUrl: this.url,
      ackedSeq: this.#acked,
      ackedHash: this.#ackedHash,
      durableSeq: durable,
      backlog: Math.max(0, durable - this.#acked),
      batchesAcked: this.#batchesAcked,
      recordsAcked: this.#recordsAcked,
      failures: this.#failures,
      consecutiveFailures: this.#consecutive,
    };
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    if (this.#lastErrorAt !== undefined) s.lastErrorAt = this.#lastErrorAt;
    if (this.#lastAckAt !== undefined) s.lastAckAt = this.#lastAckAt;
    if (this.#nextAttemptAt !== undefined) s.nextAttemptAt = new Date(this.#nextAttemptAt).toISOString();
    return s;
  }

  /** The last receipt the collector gave (verified when a collector key is configured). */
  get receipt(): Receipt | undefined {
    return this.#receipt;
  }

  /**
   * Ships everything durable now without waiting for a full batch, and resolves once the shipper is
   * idle with nothing left to ship. Rejects after `timeoutMs` (default 30 s) naming the last error.
   */
  async flush(timeoutMs = 30_000): Promise<void> {
    if (!this.#loop) throw new PlatformError('PLATFORM_CONFIG', 'shipper not started');
    this.#flushWanted++;
    this.#nextAttemptAt = undefined;
    this.#wake();
    try {
      await withDeadline(
        new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
        timeoutMs,
        () =>
          new PlatformError(
            'PLATFORM_HTTP',
            `shipper flush timed out after ${timeoutMs} ms with backlog ${this.status().backlog}${
              this.#lastError ? `; last error: ${this.#lastError}` : ''
            }`,
          ),
      );
    } finally {
      this.#flushWanted--;
    }
  }

  /** Stops shipping (an in-flight request is aborted; its records stay in the spool). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#abort?.abort();
    this.#wake();
    await this.#loop;
    this.#state = 'stopped';
  }

  // ---- loop ----

  async #run(): Promise<void> {
    while (!this.#stopping) {
      try {
        if (!this.#synced) {
          await this.#resync();
          continue;
        }
        const avail = this.#attached ? this.#durable - this.#acked : Number.POSITIVE_INFINITY;
        if (avail <= 0) {
          this.#setIdle();
          await this.#wait();
          continue;
        }
        if (
          this.#attached &&
          avail < this.#maxRecords &&
          this.#flushWanted === 0 &&
          this.#pendingSince !== undefined
        ) {
          const due = this.#pendingSince + this.#maxDelayMs - Date.now();
          if (due > 0) {
            this.#state = 'waiting';
            await this.#wait(due);
            continue;
          }
        }
        const recs = await this.#next();
        if (recs.length === 0) {
          this.#setIdle();
          await this.#wait(this.#attached ? undefined : this.#pollMs);
          continue;
        }
        this.#state = 'shipping';
        await this.#send(recs);
        this.#consecutive = 0;
        this.#nextAttemptAt = undefined;
        this.#pendingSince = this.#durable > this.#acked ? Date.now() : undefined;
      } catch (err) {
        if (this.#stopping) break;
        await this.#fail(err);
      }
    }
    this.#state = 'stopped';
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  #setIdle(): void {
    this.#state = 'idle';
    this.#pendingSince = undefined;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  async #fail(err: unknown): Promise<void> {
    const e = err as PlatformError;
    this.#failures++;
    this.#consecutive++;
    this.#lastError = e.message;
    this.#lastErrorAt = new Date().toISOString();
    const diverged = e.code === 'PLATFORM_DIVERGED';
    this.#state = diverged ? 'diverged' : 'backoff';
    if (this.listenerCount('error') > 0) this.emit('error', e);
    const delay = diverged
      ? (this.#backoff.maxMs ?? 60_000)
      : backoffDelay(this.#consecutive - 1, this.#backoff);
    this.#nextAttemptAt = Date.now() + delay;
    await this.#wait(delay, true);
    this.#nextAttemptAt = undefined;
  }

  #wake(): void {
    const w = this.#wakeFn;
    this.#wakeFn = undefined;
    w?.();
  }

  /** Sleeps until woken or `ms` passed. `backoff`: only stop() and flush() end it, not new records. */
  #wait(ms?: number, backoff = false): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        if (this.#wakeFn === fn) this.#wakeFn = undefined;
        resolve();
      };
      const fn = () => {
        if (!backoff || this.#stopping || this.#nextAttemptAt === undefined) done();
        else this.#wakeFn = fn;
      };
      if (ms !== undefined) timer = setTimeout(done, ms);
      this.#wakeFn = fn;
    });
  }

  #dropBuffer(): void {
    this.#buf = [];
    this.#bufHead = 0;
  }

  #compactBuffer(): void {
    if (this.#bufHead > 4096 && this.#bufHead * 2 > this.#buf.length) {
      this.#buf = this.#buf.slice(this.#bufHead);
      this.#bufHead = 0;
    }
  }

  /** The next records to ship: seq acked+1 onwards, from memory when possible, else from the files. */
  async #next(): Promise<SpoolRecord[]> {
    const from = this.#acked + 1;
    while (this.#bufHead < this.#buf.length && (this.#buf[this.#bufHead] as SpoolRecord).seq < from)
      this.#bufHead++;
    this.#compactBuffer();
    const first = this.#buf[this.#bufHead];
    if (first && first.seq === from) {
      const out: SpoolRecord[] = [];
      let bytes = 0;
      for (let i = this.#bufHead; i < this.#buf.length && out.length < this.#maxRecords; i++) {
        const r = this.#buf[i] as SpoolRecord;
        if (out.length > 0 && bytes + r.line.length > this.#maxBytes) break;
        out.push(r);
        bytes += r.line.length;
      }
      return out;
    }
    const until = this.#attached
      ? first
        ? Math.min(this.#durable, first.seq - 1)
        : this.#durable
      : undefined;
    const recs = await this.#spool.read(from, {
      maxRecords: this.#maxRecords,
      maxBytes: this.#maxBytes,
      ...(until === undefined ? {} : { untilSeq: until }),
    });
    const last = recs[recs.length - 1];
    if (last && last.seq > this.#seenInFiles) this.#seenInFiles = last.seq;
    if (recs.length === 0 && this.#attached && this.#durable >= from)
      throw new PlatformError(
        'PLATFORM_SPOOL',
        `record seq ${from} is durable but not found in trail ${this.dir}`,
      );
    return recs;
  }

  async #request(
    method: 'GET' | 'POST',
    path: string,
    body?: string,
  ): Promise<{ status: number; json: unknown }> {
    const ac = new AbortController();
    this.#abort = ac;
    const timer = setTimeout(() => ac.abort(), this.#timeoutMs);
    try {
      const init: RequestInit = { method, signal: ac.signal, headers: { accept: 'application/json' } };
      if (body !== undefined) {
        init.body = body;
        init.headers = { accept: 'application/json', 'content-type': 'application/json' };
      }
      const res = await this.#fetch(`${this.url}${path}`, init);
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: res.status, json };
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      throw new PlatformError(
        'PLATFORM_HTTP',
        `${method} ${path}: ${ac.signal.aborted ? `timed out or aborted` : (cause?.code ?? (err as Error).message)}`,
      );
    } finally {
      clearTimeout(timer);
      this.#abort = undefined;
    }
  }

  #checkReceipt(r: unknown, what: string): Receipt {
    const x = r as Receipt | undefined;
    if (!x || typeof x !== 'object' || x.provider_id !== this.providerId)
      throw new PlatformError('PLATFORM_RECEIPT', `${what}: missing or foreign receipt`);
    if (this.#collectorKey && !verifyReceipt(x, this.#collectorKey))
      throw new PlatformError(
        'PLATFORM_RECEIPT',
        `${what}: receipt signature does not verify with the collector key`,
      );
    return x;
  }

  /** Confirms where the collector stands (`GET /v1/providers/:id/head`) against the local trail. */
  async #resync(): Promise<void> {
    this.#state = 'starting';
    const { status, json } = await this.#request(
      'GET',
      `/v1/providers/${encodeURIComponent(this.providerId)}/head`,
    );
    if (status !== 200) throw httpError('GET head', status, json);
    const head = json as HeadResponse;
    const receipt = this.#checkReceipt(head.receipt, 'head');
    if (receipt.last_seq !== head.last_seq || receipt.head_hash !== head.head_hash)
      throw new PlatformError('PLATFORM_RECEIPT', 'head: receipt does not match the head it comes with');
    if (head.last_seq === 0) {
      await this.#setAcked(0, GENESIS_HASH, receipt);
    } else {
      const local = await this.#spool.get(head.last_seq);
      if (!local)
        throw new PlatformError(
          'PLATFORM_DIVERGED',
          `collector holds ${this.providerId} up to seq ${head.last_seq} but the local trail has no record ${head.last_seq}`,
        );
      if (local.hash !== head.head_hash)
        throw new PlatformError(
          'PLATFORM_DIVERGED',
          `fork: collector's record ${head.last_seq} has hash ${head.head_hash}, the local trail's ${local.hash}`,
        );
      await this.#setAcked(head.last_seq, head.head_hash, receipt);
    }
    this.#synced = true;
    this.#consecutive = 0;
    this.#state = 'idle';
  }

  async #setAcked(seq: number, hash: string, receipt: Receipt): Promise<void> {
    const changed = seq !== this.#acked || hash !== this.#ackedHash;
    this.#acked = seq;
    this.#ackedHash = hash;
    this.#receipt = receipt;
    this.#lastAckAt = new Date().toISOString();
    // Once stop() was called another shipper may own the directory (restart): leave the file to it.
    // A lost update only means re-sending, which the collector acknowledges as duplicates.
    if ((changed || !this.#persistedOnce) && !this.#stopping) {
      const st: ShipperState = {
        v: 1,
        provider_id: this.providerId,
        collector_url: this.url,
        acked_seq: seq,
        acked_hash: hash,
        receipt,
        updated_at: this.#lastAckAt,
      };
      await writeShipperState(this.dir, st);
      this.#persistedOnce = true;
    }
  }

  async #send(recs: SpoolRecord[]): Promise<void> {
    const first = recs[0] as SpoolRecord;
    const last = recs[recs.length - 1] as SpoolRecord;
    let prev = first.prev_hash;
    if (!prev) prev = (JSON.parse(first.line) as { prev_hash: string }).prev_hash;
    const header: BatchHeader = {
      v: BATCH_VERSION,
      provider_id: this.providerId,
      first_seq: first.seq,
      last_seq: last.seq,
      prev_hash: prev,
      last_hash: last.hash,
      sent_at: new Date().toISOString(),
      key_id: this.#keyId,
    };
    const body = JSON.stringify(
      signBatch(
        header,
        recs.map((r) => r.line),
        this.#key,
      ),
    );
    const { status, json } = await this.#request('POST', '/v1/batches', body);
    if (status === 200) {
      const receipt = this.#checkReceipt((json as { receipt?: unknown })?.receipt, 'batch');
      if (receipt.last_seq < last.seq || (receipt.last_seq === last.seq && receipt.head_hash !== last.hash))
        throw new PlatformError(
          'PLATFORM_RECEIPT',
          `batch ${first.seq}..${last.seq}: receipt for seq ${receipt.last_seq} does not cover it`,
        );
      await this.#setAcked(last.seq, last.hash, receipt);
      if (receipt.last_seq > last.seq) this.#synced = false; // the collector is ahead: confirm against the trail
      this.#batchesAcked++;
      this.#recordsAcked += recs.length;
      this.emit('ack', { firstSeq: first.seq, lastSeq: last.seq, receipt });
      return;
    }
    if (status === 409) {
      // Gap or fork: re-read the collector's head and decide (resume from it, or stop as diverged).
      this.#synced = false;
      throw httpError(`batch ${first.seq}..${last.seq}`, status, json);
    }
    throw httpError(`batch ${first.seq}..${last.seq}`, status, json);
  }
}

function httpError(what: string, status: number, json: unknown): PlatformError {
  const j = json as { error?: unknown; message?: unknown } | undefined;
  const msg = typeof j?.message === 'string' ? j.message.slice(0, 300) : '';
  const code = typeof j?.error === 'string' ? j.error.slice(0, 40) : '';
  return new PlatformError(
    status === 409 ? 'PLATFORM_REJECTED' : 'PLATFORM_HTTP',
    `${what}: collector answered ${status}${code ? ` ${code}` : ''}${msg ? `: ${msg}` : ''}`,
  );
}
