/**
 * `vramseal audit verify <dir> --collector URL --provider ID [--collector-key KEY]`: compares the
 * local trail with the copy the platform collector stores (see compareWithCollector in
 * @vramseal/audit platform/compare.ts) and renders the result.
 */
import { existsSync, readFileSync } from 'node:fs';
import { type CollectorComparison, compareWithCollector } from '@vramseal/audit';
import { UsageError } from '../../output.js';

export interface CollectorCheckOptions {
  collector?: string;
  provider?: string;
  /** Collector public key: base64 raw key, PEM text, or a file holding either. */
  collectorKey?: string;
}

/** Runs the comparison when `--collector` is given; throws UsageError for a bad combination of options. */
export async function collectorCheck(
  dir: string,
  o: CollectorCheckOptions,
): Promise<CollectorComparison | undefined> {
  if (!o.collector) {
    if (o.provider || o.collectorKey)
      throw new UsageError('--provider and --collector-key need --collector URL');
    return undefined;
  }
  if (!o.provider) throw new UsageError('--collector needs --provider ID');
  let key = o.collectorKey;
  if (key && existsSync(key)) key = readFileSync(key, 'utf8');
  return compareWithCollector(dir, o.collector, o.provider, key ? { collectorPublicKey: key } : {});
}

/** JSON form for `--json`. */
export function collectorJson(c: CollectorComparison): Record<string, unknown> {
  return {
    ok: c.ok,
    url: c.collectorUrl,
    provider: c.providerId,
    collector_last_seq: c.collectorLastSeq,
    collector_head_hash: c.collectorHeadHash,
    local_last_seq: c.localLastSeq,
    agree_up_to: c.agreeUpTo,
    first_divergent_seq: c.firstDivergentSeq ?? null,
    unshipped: c.unshipped,
    receipt_verified: c.receiptVerified,
    receipt: c.receipt,
    message: c.message,
  };
}

/** One human line. */
export function collectorLine(c: CollectorComparison): string {
  const sig =
    c.receiptVerified === null
      ? 'receipt signature not checked (no --collector-key)'
      : c.receiptVerified
        ? 'receipt signature valid'
        : 'receipt signature INVALID';
  return `collector ${c.collectorUrl} (${c.providerId}): ${c.ok ? 'agrees' : 'DIVERGES'} — ${c.message}; ${sig}`;
}
