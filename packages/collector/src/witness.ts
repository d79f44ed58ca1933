/**
 * The collector as a checkpoint witness (issue 8): a provider submits the signed checkpoints of its
 * trail's RFC 9162 tree; the collector accepts one only when its root equals the root the collector
 * computes ITSELF over the provider's records it stores, seq 1..tree_size (leaf = SHA-256(0x00 ||
 * record hash bytes), TRANSPARENCY.md). No trust in the provider is needed: every witnessed checkpoint
 * commits to a prefix of the same append-only stored sequence, so any two of them are consistent by
 * construction, and a checkpoint of a rewritten history (a root over other records) is refused.
 *
 * Accepted checkpoints go to the append-only `checkpoints` table (SCHEMA.md) with the compact range
 * (frontier) of their tree, so the next one costs only the records added since. Each is cosigned: the
 * collector adds its own Ed25519 line to the C2SP signed note (c2sp.org/signed-note allows several).
 */
import { createHash } from 'node:crypto';
import {
  parseNote,
  type SignerKey,
  signNote,
  type VerifiedCheckpoint,
  verifyConsistency,
} from '@vramseal/audit';
import { CompactRange } from './compact-range.js';
import { quoteIdent, type SqlExecutor } from './db/client.js';
import { CollectorError } from './errors.js';
import type { AuditStore } from './store.js';

/** A checkpoint the collector witnessed. */
export interface WitnessedCheckpoint {
  providerId: string;
  origin: string;
  treeSize: number;
  /** RFC 9162 root, lowercase hex. */
  rootHash: string;
  /** The provider's signed note as submitted. */
  note: string;
  noteSha256: string;
  /** The provider's checkpoint key that signed it (C2SP verifier key string). */
  signerKey: string;
  /** `note` plus the collector's signature line. */
  cosignedNote: string;
  witnessedAt: string;
}

export type WitnessOutcome =
  | { kind: 'accepted'; checkpoint: WitnessedCheckpoint }
  /** The same tree size and root were witnessed before (idempotent resubmission). */
  | { kind: 'duplicate'; checkpoint: WitnessedCheckpoint }
  /** The checkpoint commits to more records than the collector stores for the provider. */
  | { kind: 'beyond'; storedSize: number }
  /** The root is not the collector's root over the same records: a rewritten (or forked) history. */
  | { kind: 'mismatch'; computedRoot: string; storedSize: number }
  /** A consistency proof was supplied and does not verify against the previous witnessed checkpoint. */
  | { kind: 'bad-proof'; fromSize: number };

interface Row {
  provider_id: string;
  origin: string;
  tree_size: number | string;
  root_hash: string;
  note: string;
  note_sha256: string;
  signer_key: string;
  cosigned_note: string;
  frontier: string[];
  witnessed_at: Date | string;
}

const COLUMNS =
  'provider_id, origin, tree_size, root_hash, note, note_sha256, signer_key, cosigned_note, frontier, witnessed_at';

function toCheckpoint(r: Row): WitnessedCheckpoint {
  return {
    providerId: r.provider_id,
    origin: r.origin,
    treeSize: Number(r.tree_size),
    rootHash: r.root_hash,
    note: r.note,
    noteSha256: r.note_sha256,
    signerKey: r.signer_key,
    cosignedNote: r.cosigned_note,
    witnessedAt: new Date(r.witnessed_at).toISOString(),
  };
}

/**
 * Adds `signer`'s signature line to a signed note (C2SP signed-note: one line per signature, over the
 * same text). A note that already carries a line of this key is returned unchanged.
 */
export function cosignNote(note: string, signer: SignerKey): string {
  const parsed = parseNote(note);
  if (parsed.signatures.some((s) => s.name === signer.name && s.keyId.equals(signer.keyId))) return note;
  const own = signNote(parsed.text, [signer]).slice(parsed.text.length + 1);
  return note + own;
}

export interface CheckpointWitnessOptions {
  /** The collector's cosigning key (its Ed25519 key as a C2SP signer). */
  signer: SignerKey;
  /** Record hashes read per query while computing a root (default 10 000). */
  chunk?: number;
  now?: () => number;
}

/** Witnessing over an {@link AuditStore}'s tables (same SQL on PostgreSQL and PGlite). */
export class CheckpointWitness {
  readonly signer: SignerKey;
  #store: AuditStore;
  #s: string;
  #chunk: number;
  #now: () => number;

  constructor(store: AuditStore, opts: CheckpointWitnessOptions) {
    this.#store = store;
    this.#s = quoteIdent(store.schema);
    this.signer = opts.signer;
    this.#chunk = opts.chunk ?? 10_000;
    this.#now = opts.now ?? Date.now;
    if (!Number.isSafeInteger(this.#chunk) || this.#chunk < 1)
      throw new CollectorError('COLLECTOR_CONFIG', 'witness chunk must be an integer >= 1');
  }

  /** The witnessed checkpoint with the largest tree size, if any. */
  async latest(providerId: string): Promise<WitnessedCheckpoint | undefined> {
    const r = await this.#store.client.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.#s}.checkpoints WHERE provider_id = $1 ORDER BY tree_size DESC LIMIT 1`,
      [providerId],
    );
    const row = r.rows[0];
    return row ? toCheckpoint(row) : undefined;
  }

  /**
   * Witnesses a checkpoint whose signature (by `signerKey`) and origin the caller has verified.
   * Serialized per provider (advisory lock); the root is recomputed inside the same transaction.
   */
  async witness(
    providerId: string,
    cp: VerifiedCheckpoint,
    signerKey: string,
    consistencyProof?: readonly Buffer[],
  ): Promise<WitnessOutcome> {
    const s = this.#s;
    const rootHex = cp.root.toString('hex');
    return this.#store.client.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext('vramseal-witness'), hashtext($1))`, [
        providerId,
      ]);
      const head = await tx.query<{ seq: number | string }>(
        `SELECT seq FROM ${s}.records WHERE provider_id = $1 ORDER BY seq DESC LIMIT 1`,
        [providerId],
      );
      const storedSize = Number(head.rows[0]?.seq ?? 0);
      if (cp.size > storedSize) return { kind: 'beyond', storedSize } as const;
      const same = await tx.query<Row>(
        `SELECT ${COLUMNS} FROM ${s}.checkpoints WHERE provider_id = $1 AND tree_size = $2`,
        [providerId, cp.size],
      );
      const prior = same.rows[0];
      if (prior) {
        // Its root was computed over the same stored records when it was accepted.
        if (prior.root_hash !== rootHex)
          return { kind: 'mismatch', computedRoot: prior.root_hash, storedSize } as const;
        return { kind: 'duplicate', checkpoint: toCheckpoint(prior) } as const;
      }
      const baseRow = (
        await tx.query<Row>(
          `SELECT ${COLUMNS} FROM ${s}.checkpoints WHERE provider_id = $1 AND tree_size < $2
            ORDER BY tree_size DESC LIMIT 1`,
          [providerId, cp.size],
        )
      ).rows[0];
      const range = baseRow
        ? CompactRange.fromHex(Number(baseRow.tree_size), baseRow.frontier)
        : CompactRange.empty();
      await this.#extend(tx, providerId, range, cp.size);
      const computed = range.root();
      if (!computed.equals(cp.root))
        return { kind: 'mismatch', computedRoot: computed.toString('hex'), storedSize } as const;
      if (consistencyProof !== undefined) {
        const fromSize = baseRow ? Number(baseRow.tree_size) : 0;
        const fromRoot = baseRow ? Buffer.from(baseRow.root_hash, 'hex') : undefined;
        const ok =
          fromRoot === undefined
            ? consistencyProof.length === 0
            : verifyConsistency(fromSize, cp.size, consistencyProof, fromRoot, cp.root);
        if (!ok) return { kind: 'bad-proof', fromSize } as const;
      }
      const cosigned = cosignNote(cp.note, this.signer);
      const witnessedAt = new Date(this.#now()).toISOString();
      const ins = await tx.query<Row>(
        `INSERT INTO ${s}.checkpoints (provider_id, origin, tree_size, root_hash, note, note_sha256, signer_key,
           cosigned_note, frontier, witnessed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text[], $10::timestamptz) RETURNING ${COLUMNS}`,
        [
          providerId,
          cp.origin,
          cp.size,
          rootHex,
          cp.note,
          createHash('sha256').update(cp.note, 'utf8').digest('hex'),
          signerKey,
          cosigned,
          range.toHex(),
          witnessedAt,
        ],
      );
      return { kind: 'accepted', checkpoint: toCheckpoint(ins.rows[0] as Row) } as const;
    });
  }

  /** Appends the provider's stored records range.size + 1 .. size to `range`, a chunk per query. */
  async #extend(tx: SqlExecutor, providerId: string, range: CompactRange, size: number): Promise<void> {
    while (range.size < size) {
      const from = range.size + 1;
      const to = Math.min(size, range.size + this.#chunk);
      const r = await tx.query<{ seq: number | string; hash: string }>(
        `SELECT seq, hash FROM ${this.#s}.records WHERE provider_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq`,
        [providerId, from, to],
      );
      if (r.rows.length !== to - from + 1)
        throw new CollectorError(
          'COLLECTOR_STORAGE',
          `provider ${providerId}: stored records ${from}..${to} are not contiguous`,
        );
      for (const row of r.rows) range.appendRecordHash(row.hash);
    }
  }
}
