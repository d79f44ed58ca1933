/**
 * A fault-injecting file-system layer for the trail writer (`AuditLoggerOptions.fs`).
 *
 * Two kinds of faults, both counted:
 *  - a disk that fills up: `spaceLeft` bytes may still be written; a write that does not fit writes
 *    what fits (a short write, like write(2)) and the next one fails with ENOSPC — until `grow()`;
 *  - random failures: each call of an operation in `ops` fails with probability `rate`, with ENOSPC
 *    or EIO, from a seeded PRNG (reproducible schedule).
 */
import type { AuditFs } from '@vramseal/audit';
import { nodeFs } from '@vramseal/audit';
import { rng } from './summary.js';

type Op = keyof AuditFs;

export interface FaultPlan {
  seed: number;
  /** Probability that one call of an operation in `ops` fails. */
  rate?: number;
  ops?: readonly Op[];
  codes?: readonly string[];
  /** Called before every operation (drives fault schedules by the number of calls). */
  tick?: (op: Op) => void;
}

export class FaultyDisk {
  readonly fs: AuditFs;
  /** Bytes that may still be written (Infinity = unlimited). */
  spaceLeft = Number.POSITIVE_INFINITY;
  rate = 0;
  /** Faults injected, by `op:code` (short writes at the space limit are not counted; the ENOSPC after them is). */
  readonly injected = new Map<string, number>();
  #ops: Set<Op>;
  #codes: readonly string[];
  #r: ReturnType<typeof rng>;

  constructor(plan: FaultPlan, base: AuditFs = nodeFs) {
    this.rate = plan.rate ?? 0;
    this.#ops = new Set(plan.ops ?? ['write', 'fdatasync']);
    this.#codes = plan.codes ?? ['ENOSPC', 'EIO'];
    this.#r = rng(plan.seed);
    const w: Partial<AuditFs> = {};
    for (const k of Object.keys(base) as Op[]) {
      (w as Record<string, unknown>)[k] = async (...args: unknown[]) => {
        plan.tick?.(k);
        if (this.rate > 0 && this.#ops.has(k) && this.#r.chance(this.rate)) {
          throw this.#fault(k, this.#codes[this.#r.int(this.#codes.length)] as string);
        }
        if (k === 'write' && this.spaceLeft !== Number.POSITIVE_INFINITY) {
          const [fd, buf, off, len, pos] = args as [number, Uint8Array, number, number, number];
          if (this.spaceLeft <= 0) throw this.#fault('write', 'ENOSPC');
          const n = Math.min(len, this.spaceLeft);
          const wrote = await base.write(fd, buf, off, n, pos);
          this.spaceLeft -= wrote;
          return wrote;
        }
        return (base[k] as (...a: unknown[]) => unknown)(...args);
      };
    }
    this.fs = w as AuditFs;
  }

  #fault(op: string, code: string): NodeJS.ErrnoException {
    const key = `${op}:${code}`;
    this.injected.set(key, (this.injected.get(key) ?? 0) + 1);
    const e = new Error(`${code}: injected ${op} failure`) as NodeJS.ErrnoException;
    e.code = code;
    return e;
  }

  /** Total faults injected so far. */
  get faults(): number {
    let n = 0;
    for (const v of this.injected.values()) n += v;
    return n;
  }

  /** No more random faults and unlimited space. */
  heal(): void {
    this.rate = 0;
    this.spaceLeft = Number.POSITIVE_INFINITY;
  }
}
