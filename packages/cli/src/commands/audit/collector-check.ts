/**
 * `vramseal audit verify <dir> --collector URL --provider ID [--collector-key KEY] [--public-key F]`:
 *
 *  1. compares the local trail with the copy the platform collector stores (see compareWithCollector in
 *     @vramseal/audit platform/compare.ts);
 *  2. when the collector witnessed checkpoints of this provider (issue 8), fetches the latest witnessed
 *     one (`fetchWitnessedCheckpoint`: the collector's cosignature and, with `--public-key`, the
 *     provider's signature checked) and checks the local trail against it (`checkAgainstCheckpoint`):
 *     a trail cut short or rewritten after the collector saw it shows as `truncated_trail` /
 *     `history_rewritten` — also when the collector's copy itself agrees with the local one only up to
 *     the local end.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  type CheckpointFailure,
  type CollectorComparison,
  checkAgainstCheckpoint,
  compareWithCollector,
  fetchWitnessedCheckpoint,
  loadVerifierKey,
  TlogError,
  type VerifierKey,
} from '@vramseal/audit';
import { UsageError } from '../../output.js';
import { collectorReceiptKey, parseCollectorWitnessKey } from '../../serve/transparency.js';

export interface CollectorCheckOptions {
  collector?: string;
  provider?: string;
  /**
   * Collector public key: base64 raw key, PEM text, the C2SP witness key it prints (`witness_key`), or a
   * file holding any of them. Checks the signed head and the witness cosignature.
   */
  collectorKey?: string;
  /** The provider's checkpoint verifier key file (as for `--checkpoint`). */
  publicKey?: string;
  /** Key name, when `publicKey` is a PEM file. */
  keyName?: string;
  /** Required checkpoint origin. */
  origin?: string;
}

function collectorKeyText(o: CollectorCheckOptions): string | undefined {
  const key = o.collectorKey;
  return key && existsSync(key) ? readFileSync(key, 'utf8') : key;
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
  const key = collectorKeyText(o);
  return compareWithCollector(
    dir,
    o.collector,
    o.provider,
    key ? { collectorPublicKey: collectorReceiptKey(key) } : {},
  );
}

/** The trail checked against the collector's latest witnessed checkpoint. */
export interface WitnessCheck {
  /** False when the trail fails the check (or the witnessed checkpoint's signatures do not verify). */
  ok: boolean;
  /** `checked`, or `none` when the collector witnessed no checkpoint of this provider yet. */
  status: 'checked' | 'none';
  treeSize: number | null;
  rootHash: string | null;
  time: string | null;
  /** The witness key used: pinned by --collector-key, or (not pinned) as the collector announced it. */
  witnessKey: string;
  witnessKeyPinned: boolean;
  /** Whether the provider's own checkpoint signature was checked (--public-key). */
  providerSignatureChecked: boolean;
  failures: CheckpointFailure[];
  message: string;
}

async function announcedWitnessKey(url: string): Promise<VerifierKey | undefined> {
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/v1/collector`, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json()) as { witness_key?: unknown };
    return res.status === 200 && typeof body.witness_key === 'string'
      ? parseCollectorWitnessKey(body.witness_key)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Step 2 of the file comment; undefined without `--collector`. Throws for usage and I/O problems
 * (collector unreachable, unreadable key file); integrity problems become failures.
 */
export async function witnessCheck(dir: string, o: CollectorCheckOptions): Promise<WitnessCheck | undefined> {
  if (!o.collector || !o.provider) return undefined;
  const providerKey = o.publicKey ? loadVerifierKey(o.publicKey, o.keyName) : undefined;
  const keyText = collectorKeyText(o);
  const pinned = keyText ? parseCollectorWitnessKey(keyText) : undefined;
  const announced = await announcedWitnessKey(o.collector);
  // The pinned key decides; the announcement only supplies the key name when it is the same key.
  const witnessKey =
    pinned && announced && !announced.publicKey.equals(pinned.publicKey) ? pinned : (announced ?? pinned);
  if (!witnessKey)
    throw new TlogError(
      'TLOG_WITNESS',
      `${o.collector}: the collector announces no witness key (GET /v1/collector); pass --collector-key`,
    );
  const base = {
    witnessKey: witnessKey.toString(),
    witnessKeyPinned: pinned?.publicKey.equals(witnessKey.publicKey) === true,
    providerSignatureChecked: providerKey !== undefined,
  };
  const origin = o.origin === undefined ? {} : { origin: o.origin };
  let cp: Awaited<ReturnType<typeof fetchWitnessedCheckpoint>>;
  try {
    // Without the provider's key, the collector's cosignature is the evidence (it recomputed the root
    // over the records it stores before cosigning): verify the note with the witness key twice.
    cp = await fetchWitnessedCheckpoint(o.collector, o.provider, {
      providerKey: providerKey ?? witnessKey,
      witnessKey,
      ...origin,
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'TLOG_SIGNATURE_INVALID' && code !== 'TLOG_CHECKPOINT_INVALID') throw err;
    const message = `collector-witnessed checkpoint rejected: ${(err as Error).message}`;
    return {
      ok: false,
      status: 'checked',
      treeSize: null,
      rootHash: null,
      time: null,
      ...base,
      failures: [{ kind: 'checkpoint_invalid', file: null, line: null, seq: null, message }],
      message,
    };
  }
  if (!cp)
    return {
      ok: true,
      status: 'none',
      treeSize: null,
      rootHash: null,
      time: null,
      ...base,
      failures: [],
      message: 'the collector has witnessed no checkpoint of this provider yet',
    };
  const r = await checkAgainstCheckpoint(dir, cp.note, providerKey ?? witnessKey, origin);
  const failures = r.failures.map((f) => ({ ...f, message: `collector-witnessed checkpoint: ${f.message}` }));
  return {
    ok: r.ok,
    status: 'checked',
    treeSize: cp.size,
    rootHash: cp.root.toString('hex'),
    time: cp.time ?? null,
    ...base,
    failures,
    message: r.ok
      ? `the trail holds the ${cp.size} records the collector witnessed (checkpoint of ${cp.time ?? 'unknown time'})`
      : `the trail does NOT match the checkpoint the collector witnessed (tree size ${cp.size}, ${cp.time ?? 'unknown time'})`,
  };
}

/** JSON form of the witness check (`collector.witness` in `--json`). */
export function witnessJson(w: WitnessCheck): Record<string, unknown> {
  return {
    ok: w.ok,
    status: w.status,
    tree_size: w.treeSize,
    root_hash: w.rootHash,
    time: w.time,
    witness_key: w.witnessKey,
    witness_key_pinned: w.witnessKeyPinned,
    provider_signature_checked: w.providerSignatureChecked,
    message: w.message,
  };
}

/** One human line for the witness check. */
export function witnessLine(w: WitnessCheck): string {
  const keys = [
    w.witnessKeyPinned
      ? 'cosignature checked with --collector-key'
      : 'cosignature checked with the key the collector announced (not pinned: pass --collector-key)',
    w.providerSignatureChecked
      ? 'provider signature checked'
      : 'provider signature not checked (no --public-key)',
  ];
  return `witnessed checkpoint: ${w.ok ? 'agrees' : 'FAILS'} — ${w.message}; ${keys.join('; ')}`;
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
