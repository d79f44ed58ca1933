/**
 * Compares a local trail with the copy a collector stores (`vramseal audit verify <dir> --collector URL
 * --provider ID`). Both are hash chains, so agreeing on the hash at seq k means agreeing on every
 * record up to k: the comparison checks the collector's head against the local record at that seq
 * and, when they differ, finds the first divergent seq by binary search over
 * `GET /v1/providers/:id/hashes` (O(log n) requests).
 */
import type { KeyObject } from 'node:crypto';
import { GENESIS_HASH } from '../record.js';
import { PlatformError } from './errors.js';
import { parsePublicKey } from './keys.js';
import { type Receipt, verifyReceipt } from './receipt.js';
import { SpoolReader } from './spool.js';

export interface CompareOptions {
  /** Collector public key (base64 raw or PEM): the head receipt's signature is checked when given. */
  collectorPublicKey?: KeyObject | string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

export interface CollectorComparison {
  /** True when the local trail and the collector agree on every seq both hold. */
  ok: boolean;
  providerId: string;
  collectorUrl: string;
  collectorLastSeq: number;
  collectorHeadHash: string;
  receipt: Receipt;
  /** true: signature checked with the given key; false: checked and bad; null: no key given. */
  receiptVerified: boolean | null;
  /** Last seq of the local trail (0 when empty). */
  localLastSeq: number;
  /** Highest seq at which both hold the same record (0: none). */
  agreeUpTo: number;
  /** First seq at which they differ, or which the collector holds and the local trail lacks. */
  firstDivergentSeq?: number;
  /** Local records the collector does not hold yet (shipping backlog). */
  unshipped: number;
  message: string;
}

export async function compareWithCollector(
  dir: string,
  url: string,
  providerId: string,
  opts: CompareOptions = {},
): Promise<CollectorComparison> {
  const base = url.replace(/\/+$/, '');
  const f = opts.fetch ?? fetch;
  const timeout = opts.timeoutMs ?? 30_000;
  const get = async (path: string): Promise<unknown> => {
    let res: Response;
    try {
      res = await f(`${base}${path}`, {
        signal: AbortSignal.timeout(timeout),
        headers: { accept: 'application/json' },
      });
    } catch (err) {
      const c = (err as { cause?: { code?: string } }).cause;
      throw new PlatformError('PLATFORM_HTTP', `GET ${path}: ${c?.code ?? (err as Error).message}`);
    }
    const text = await res.text();
    if (res.status !== 200)
      throw new PlatformError(
        'PLATFORM_HTTP',
        `GET ${path}: collector answered ${res.status} ${text.slice(0, 200)}`,
      );
    return JSON.parse(text);
  };
  const pid = encodeURIComponent(providerId);
  const head = (await get(`/v1/providers/${pid}/head`)) as {
    last_seq: number;
    head_hash: string;
    receipt: Receipt;
  };
  const key =
    opts.collectorPublicKey === undefined
      ? undefined
      : typeof opts.collectorPublicKey === 'string'
        ? parsePublicKey(opts.collectorPublicKey)
        : opts.collectorPublicKey;
  const receiptVerified = key
    ? verifyReceipt(head.receipt, key) &&
      head.receipt.last_seq === head.last_seq &&
      head.receipt.head_hash === head.head_hash &&
      head.receipt.provider_id === providerId
    : null;

  const spool = new SpoolReader(dir);
  const lastLocal = await spool.last();
  const firstLocal = await spool.first();
  const localLast = lastLocal?.seq ?? 0;
  const localBase = firstLocal ? firstLocal.seq - 1 : 0; // seqs at or below this are not held locally
  const remoteHash = async (seq: number): Promise<string> => {
    if (seq === 0) return GENESIS_HASH;
    const r = (await get(`/v1/providers/${pid}/hashes?from_seq=${seq}&limit=1`)) as {
      hashes: Array<{ seq: number; hash: string }>;
    };
    const h = r.hashes[0];
    if (!h || h.seq !== seq) throw new PlatformError('PLATFORM_HTTP', `collector has no hash for seq ${seq}`);
    return h.hash;
  };
  const localHash = async (seq: number): Promise<string | undefined> =>
    seq === 0 ? GENESIS_HASH : (await spool.get(seq))?.hash;

  const result = (
    ok: boolean,
    agreeUpTo: number,
    message: string,
    firstDivergentSeq?: number,
  ): CollectorComparison => {
    const r: CollectorComparison = {
      ok: ok && receiptVerified !== false,
      providerId,
      collectorUrl: base,
      collectorLastSeq: head.last_seq,
      collectorHeadHash: head.head_hash,
      receipt: head.receipt,
      receiptVerified,
      localLastSeq: localLast,
      agreeUpTo,
      unshipped: ok ? Math.max(0, localLast - head.last_seq) : 0,
      message:
        receiptVerified === false ? `collector receipt signature does not verify; ${message}` : message,
    };
    if (firstDivergentSeq !== undefined) r.firstDivergentSeq = firstDivergentSeq;
    return r;
  };

  /** Largest seq in (lo, hi) that agrees, given lo agrees (or is unknown base) and hi differs. */
  const search = async (lo: number, hi: number): Promise<number> => {
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if ((await localHash(mid)) === (await remoteHash(mid))) lo = mid;
      else hi = mid;
    }
    return lo;
  };

  if (head.last_seq === 0)
    return result(
      true,
      0,
      `collector holds no record of ${providerId} yet; ${localLast} local record(s) unshipped`,
    );
  if (head.last_seq <= localLast) {
    const lh = await localHash(head.last_seq);
    if (lh === head.head_hash)
      return result(
        true,
        head.last_seq,
        `local trail and collector agree up to seq ${head.last_seq}; ${localLast - head.last_seq} local record(s) not shipped yet`,
      );
    if (lh === undefined)
      return result(
        true,
        head.last_seq,
        `local trail no longer holds seq ${head.last_seq} (retention); cannot compare`,
      );
    const agree = await search(localBase, head.last_seq);
    return result(
      false,
      agree,
      `local trail and collector diverge at seq ${agree + 1} (they agree up to ${agree}; collector head ${head.last_seq})`,
      agree + 1,
    );
  }
  // The collector holds more than the local trail.
  if (localLast > 0 && (await localHash(localLast)) === (await remoteHash(localLast)))
    return result(
      false,
      localLast,
      `local trail ends at seq ${localLast} but the collector holds up to ${head.last_seq}: records ${localLast + 1}..${head.last_seq} are missing locally`,
      localLast + 1,
    );
  const agree = localLast === 0 ? 0 : await search(localBase, localLast);
  return result(
    false,
    agree,
    `local trail and collector diverge at seq ${agree + 1} (they agree up to ${agree}; local ends at ${localLast}, collector at ${head.last_seq})`,
    agree + 1,
  );
}
