/**
 * Provider side of the collector's checkpoint witness (issue 8 "copied to a witness location ... the
 * collector when platform mode exists"): every checkpoint the trail's {@link Transparency} signs is
 * posted to `POST /v1/providers/:id/checkpoints` of the collector, which recomputes the root over the
 * records it stores and cosigns it (packages/collector/src/witness.ts).
 *
 *   const tl = await Transparency.attach(log, { signer });
 *   const w = await attachCheckpointWitness(tl, { shipper: shipperOf(log) });
 *
 * A checkpoint is posted only once the collector has acknowledged the records it commits to (the
 * shipper's `ackedSeq` ≥ tree size), so it is never refused as "beyond the stored records". Network
 * errors and 5xx are retried with exponential backoff and full jitter; a refusal (bad signature, wrong
 * origin, root mismatch = the collector holds another history) is final for that checkpoint, reported
 * through 'error' and `status().lastError`, and never retried in a loop. On attach, the trail's latest
 * checkpoint (from `<trail>/checkpoints`) is submitted too, so one signed just before a restart is
 * witnessed after it. Pending checkpoints are bounded (`maxPending`, oldest dropped first: a newer
 * witnessed checkpoint covers every older one, since the collector checks each against its records).
 *
 * Emits 'witnessed' ({size, cosignedNote}), 'error' (TlogError `TLOG_WITNESS`) and 'stopped'.
 */

import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { withDeadline } from '../deadline.js';
import { type BackoffOptions, backoffDelay } from '../platform/backoff.js';
import {
  CHECKPOINTS_FILE,
  openNote,
  parseCheckpoint,
  parseNote,
  type VerifiedCheckpoint,
  verifyCheckpoint,
} from './checkpoint.js';
import { TlogError } from './errors.js';
import { VerifierKey } from './keys.js';
import { loadCheckpointFile } from './proof-bundle.js';

/** What the witness client needs of the platform shipper (`Shipper` of platform/ satisfies it). */
export interface AckSource {
  readonly url: string;
  readonly providerId: string;
  status(): { ackedSeq: number };
  on(event: 'ack', fn: () => void): unknown;
  off?(event: 'ack', fn: () => void): unknown;
}

/** What the witness client needs of a {@link Transparency} (its 'checkpoint' event and trail dir). */
export interface CheckpointSource {
  readonly dir: string;
  on(event: 'checkpoint', fn: (info: { note: string; size: number }) => void): unknown;
  off?(event: 'checkpoint', fn: (info: { note: string; size: number }) => void): unknown;
}

export interface WitnessClientOptions {
  /** Collector base URL; default the shipper's. */
  url?: string;
  /** Provider id at the collector; default the shipper's. */
  providerId?: string;
  /**
   * The platform shipper: a checkpoint waits until `ackedSeq` reaches its tree size. Without it, each
   * checkpoint is posted at once and a "beyond the stored records" answer is retried with backoff.
   */
  shipper?: AckSource | undefined;
  /** The collector's witness key (C2SP verifier key, `witness_key` of GET /v1/collector): verify cosignatures. */
  witnessKey?: VerifierKey | string;
  backoff?: BackoffOptions;
  /** Per-request timeout (default 30 s). */
  requestTimeoutMs?: number;
  /** Pending checkpoints kept at most (default 16). */
  maxPending?: number;
  /** Injectable for tests. */
  fetch?: typeof fetch;
}

export type WitnessClientState = 'idle' | 'waiting' | 'submitting' | 'backoff' | 'stopped';

export interface WitnessClientStatus {
  state: WitnessClientState;
  /** Checkpoints not yet witnessed (or refused). */
  pending: number;
  /** Largest tree size the collector witnessed for this client. */
  witnessedSize: number;
  /** The collector-cosigned note of that checkpoint. */
  cosignedNote?: string;
  /** Checkpoints the collector refused (final). */
  rejected: number;
  /** Failed attempts (retried). */
  failures: number;
  lastError?: string;
  lastErrorAt?: string;
}

interface Pending {
  size: number;
  note: string;
}

/** Posts checkpoints to the collector's witness; see the file comment. */
export class CheckpointWitnessClient extends EventEmitter {
  readonly url: string;
  readonly providerId: string;
  #shipper: AckSource | undefined;
  #witnessKey: VerifierKey | undefined;
  #backoff: BackoffOptions;
  #timeoutMs: number;
  #maxPending: number;
  #fetch: typeof fetch;
  #pending: Pending[] = [];
  #state: WitnessClientState = 'idle';
  #witnessedSize = -1;
  #cosigned: string | undefined;
  #rejected = 0;
  #failures = 0;
  #consecutive = 0;
  #lastError: string | undefined;
  #lastErrorAt: string | undefined;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wakeFn: (() => void) | undefined;
  #abort: AbortController | undefined;
  #idleWaiters: Array<() => void> = [];
  #onAck = () => this.#wake();

  constructor(opts: WitnessClientOptions) {
    super();
    const url = opts.url ?? opts.shipper?.url;
    const providerId = opts.providerId ?? opts.shipper?.providerId;
    if (!url || !providerId)
      throw new TlogError('TLOG_BAD_INPUT', 'witness: url and providerId are required (or a shipper)');
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new TlogError('TLOG_BAD_INPUT', 'witness: url must be an absolute http(s) URL');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:')
      throw new TlogError('TLOG_BAD_INPUT', 'witness: url must be an http(s) URL');
    this.url = url.replace(/\/+$/, '');
    this.providerId = providerId;
    this.#shipper = opts.shipper;
    const wk = opts.witnessKey;
    this.#witnessKey = wk === undefined ? undefined : typeof wk === 'string' ? VerifierKey.parse(wk) : wk;
    this.#backoff = opts.backoff ?? {};
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#maxPending = opts.maxPending ?? 16;
    if (!Number.isSafeInteger(this.#maxPending) || this.#maxPending < 1)
      throw new TlogError('TLOG_BAD_INPUT', 'witness: maxPending must be an integer >= 1');
    this.#fetch = opts.fetch ?? fetch;
    this.#shipper?.on('ack', this.#onAck);
    this.#loop = this.#run();
  }

  /** Queues a signed checkpoint note for the collector. Throws `TLOG_CHECKPOINT_INVALID` when malformed. */
  submit(note: string): void {
    if (this.#stopping) return;
    const size = parseCheckpoint(parseNote(note).text).size;
    if (this.#pending.some((p) => p.size === size) || size === this.#witnessedSize) return;
    this.#pending.push({ size, note });
    this.#pending.sort((a, b) => a.size - b.size);
    while (this.#pending.length > this.#maxPending) this.#pending.shift();
    this.#wake();
  }

  status(): WitnessClientStatus {
    const s: WitnessClientStatus = {
      state: this.#state,
      pending: this.#pending.length,
      witnessedSize: Math.max(0, this.#witnessedSize),
      rejected: this.#rejected,
      failures: this.#failures,
    };
    if (this.#cosigned !== undefined) s.cosignedNote = this.#cosigned;
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    if (this.#lastErrorAt !== undefined) s.lastErrorAt = this.#lastErrorAt;
    return s;
  }

  /** Resolves once no checkpoint is pending (each witnessed or refused); rejects after `timeoutMs`. */
  async flush(timeoutMs = 30_000): Promise<void> {
    if (this.#pending.length === 0) return;
    this.#consecutive = 0;
    this.#wake();
    await withDeadline(
      new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
      timeoutMs,
      () =>
        new TlogError(
          'TLOG_WITNESS',
          `witness flush timed out after ${timeoutMs} ms with ${this.#pending.length} checkpoint(s) pending${
            this.#lastError ? `; last error: ${this.#lastError}` : ''
          }`,
        ),
    );
  }

  /** Stops submitting (an in-flight request is aborted; pending checkpoints are dropped). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#shipper?.off?.('ack', this.#onAck);
    this.#abort?.abort();
    this.#wake();
    await this.#loop;
    this.#state = 'stopped';
    this.emit('stopped');
  }

  #wake(): void {
    const w = this.#wakeFn;
    this.#wakeFn = undefined;
    w?.();
  }

  #sleep(ms: number | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      timer?.unref?.();
      function done() {
        if (timer) clearTimeout(timer);
        resolve();
      }
      this.#wakeFn = done;
    });
  }

  /** The next checkpoint the collector can take: the smallest whose records it acknowledged. */
  #next(): Pending | undefined {
    const first = this.#pending[0];
    if (!first) return undefined;
    if (!this.#shipper) return first;
    return first.size <= this.#shipper.status().ackedSeq ? first : undefined;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      const p = this.#next();
      if (!p) {
        this.#state = this.#pending.length ? 'waiting' : 'idle';
        if (this.#pending.length === 0) for (const w of this.#idleWaiters.splice(0)) w();
        await this.#sleep(undefined);
        continue;
      }
      this.#state = 'submitting';
      let outcome: 'done' | 'retry';
      try {
        outcome = await this.#post(p);
      } catch (err) {
        if (this.#stopping) break;
        this.#error(err as Error);
        outcome = 'retry';
      }
      if (this.#stopping) break;
      if (outcome === 'done') {
        this.#pending = this.#pending.filter((x) => x !== p);
        this.#consecutive = 0;
        continue;
      }
      this.#failures++;
      this.#state = 'backoff';
      await this.#sleep(backoffDelay(this.#consecutive++, this.#backoff));
    }
    this.#state = 'stopped';
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  #error(err: Error): void {
    this.#lastError = err.message;
    this.#lastErrorAt = new Date().toISOString();
  }

  #refuse(p: Pending, status: number, code: string, message: string): 'done' {
    this.#rejected++;
    const err = new TlogError(
      'TLOG_WITNESS',
      `witness refused checkpoint of tree size ${p.size}: ${status} ${code}${message ? `: ${message}` : ''}`,
    );
    this.#error(err);
    if (this.listenerCount('error') > 0) this.emit('error', err);
    return 'done';
  }

  async #post(p: Pending): Promise<'done' | 'retry'> {
    const ac = new AbortController();
    this.#abort = ac;
    const timer = setTimeout(() => ac.abort(), this.#timeoutMs);
    let status: number;
    let json: Record<string, unknown> | undefined;
    try {
      const res = await this.#fetch(
        `${this.url}/v1/providers/${encodeURIComponent(this.providerId)}/checkpoints`,
        {
          method: 'POST',
          signal: ac.signal,
          headers: { accept: 'application/json', 'content-type': 'application/json' },
          body: JSON.stringify({ checkpoint: p.note }),
        },
      );
      status = res.status;
      const text = await res.text();
      try {
        json = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      throw new TlogError(
        'TLOG_WITNESS',
        `POST checkpoint: ${ac.signal.aborted ? 'timed out or aborted' : (cause?.code ?? (err as Error).message)}`,
      );
    } finally {
      clearTimeout(timer);
      this.#abort = undefined;
    }
    const code = typeof json?.error === 'string' ? json.error : '';
    const message = typeof json?.message === 'string' ? json.message.slice(0, 300) : '';
    if (status === 200) {
      const cosigned = json?.cosigned_note;
      if (typeof cosigned !== 'string' || json?.tree_size !== p.size)
        return this.#refuse(p, status, 'BAD_RESPONSE', 'the answer does not carry this checkpoint');
      if (this.#witnessKey) {
        try {
          if (openNote(cosigned, this.#witnessKey) !== parseNote(p.note).text)
            return this.#refuse(p, status, 'BAD_COSIGNATURE', 'the cosigned note is not this checkpoint');
        } catch (err) {
          return this.#refuse(p, status, 'BAD_COSIGNATURE', (err as Error).message);
        }
      }
      if (p.size >= this.#witnessedSize) {
        this.#witnessedSize = p.size;
        this.#cosigned = cosigned;
      }
      this.emit('witnessed', { size: p.size, cosignedNote: cosigned });
      return 'done';
    }
    // Records not stored yet (no shipper to wait for, or a race): retry later.
    if (status === 409 && code === 'SIZE_BEYOND_RECORDS') {
      this.#error(new Error(`collector stores fewer records than tree size ${p.size} (${message})`));
      return 'retry';
    }
    if (status >= 400 && status < 500 && status !== 408 && status !== 429)
      return this.#refuse(p, status, code, message);
    this.#error(new Error(`POST checkpoint: collector answered ${status}${code ? ` ${code}` : ''}`));
    return 'retry';
  }
}

/**
 * Witnesses every checkpoint `transparency` signs from now on, plus the trail's latest one already in
 * `<trail>/checkpoints` (one signed before a restart). `opts.shipper` is typically `shipperOf(logger)`.
 */
export function attachCheckpointWitness(
  transparency: CheckpointSource,
  opts: WitnessClientOptions,
): CheckpointWitnessClient {
  const client = new CheckpointWitnessClient(opts);
  const file = join(transparency.dir, CHECKPOINTS_FILE);
  if (existsSync(file)) {
    try {
      client.submit(loadCheckpointFile(file));
    } catch {
      // No complete checkpoint in the file yet: nothing to catch up on.
    }
  }
  const onCheckpoint = (info: { note: string }) => client.submit(info.note);
  transparency.on('checkpoint', onCheckpoint);
  client.once('stopped', () => transparency.off?.('checkpoint', onCheckpoint));
  return client;
}

/**
 * Fetches the latest checkpoint the collector witnessed for `providerId`
 * (`GET /v1/providers/:id/checkpoints/latest`) and verifies both signatures: the provider's checkpoint
 * key and the collector's witness key. The result is the evidence for
 * `checkAgainstCheckpoint(dir, result.note, providerKey)`: a trail cut short or rewritten after the
 * collector witnessed it shows as `truncated_trail` / `history_rewritten`. Returns undefined when the
 * collector witnessed none yet; throws `TLOG_WITNESS` (HTTP) or `TLOG_SIGNATURE_INVALID`.
 */
export async function fetchWitnessedCheckpoint(
  url: string,
  providerId: string,
  keys: { providerKey: VerifierKey; witnessKey: VerifierKey; origin?: string },
  opts: { fetch?: typeof fetch; timeoutMs?: number } = {},
): Promise<VerifiedCheckpoint | undefined> {
  const base = url.replace(/\/+$/, '');
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(
      `${base}/v1/providers/${encodeURIComponent(providerId)}/checkpoints/latest`,
      { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000) },
    );
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    throw new TlogError('TLOG_WITNESS', `GET witnessed checkpoint: ${cause?.code ?? (err as Error).message}`);
  }
  const body = (await res.json().catch(() => undefined)) as
    | { error?: string; cosigned_note?: unknown }
    | undefined;
  if (res.status === 404 && body?.error === 'NO_CHECKPOINT') return undefined;
  if (res.status !== 200 || typeof body?.cosigned_note !== 'string')
    throw new TlogError(
      'TLOG_WITNESS',
      `GET witnessed checkpoint: collector answered ${res.status}${body?.error ? ` ${body.error}` : ''}`,
    );
  const o = keys.origin === undefined ? {} : { origin: keys.origin };
  verifyCheckpoint(body.cosigned_note, keys.witnessKey, o);
  return verifyCheckpoint(body.cosigned_note, keys.providerKey, o);
}
