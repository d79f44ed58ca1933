// Shared helpers of the trail-writer tests (not a test file itself).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { pino } from 'pino';
import type { AuditEvent } from '../src/events.js';
import type { AuditFs } from '../src/fs.js';
import { nodeFs } from '../src/fs.js';
import { readManifest } from '../src/manifest.js';
import { GENESIS_HASH, macMatches, recomputeHash } from '../src/record.js';

export const quiet = pino({ level: 'silent' });
const made: string[] = [];
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory (removed after the test file); the trail dir is `<tmp>/trail`. */
export function tmpTrail(): string {
  const d = mkdtempSync(join(tmpdir(), 'vramseal-writer-'));
  made.push(d);
  return join(d, 'trail');
}

export const TS = '2026-01-01T00:00:00.000Z';

export function routine(i = 0): AuditEvent {
  return { type: 'seal.verified', timestamp: TS, shard_id: `shard-${i}`, worker_id: 'w1' } as AuditEvent;
}

export function critical(i = 0): AuditEvent {
  return {
    type: 'seal.verification_failed',
    timestamp: TS,
    shard_id: `shard-${i}`,
    reason: 'digest mismatch',
    expected_digest: 'a'.repeat(64),
    actual_digest: 'b'.repeat(64),
    worker_id: 'w1',
    severity: 'critical',
  } as AuditEvent;
}

export interface ParsedLine {
  seq: number;
  hash: string;
  prev_hash: string;
  audit_id: string;
  mac?: string;
  event: { type: string; [k: string]: unknown };
  file: string;
  line: string;
}

/**
 * Reads every record of the trail (manifest order) and checks the whole chain: seq 1..n gap-free,
 * prev_hash links, hashes recompute, MACs verify (when `key`), lines end with '\n', manifest ranges match.
 */
export async function readTrail(dir: string, key?: Uint8Array): Promise<ParsedLine[]> {
  const m = await readManifest(dir);
  assert.ok(m, 'manifest exists');
  const out: ParsedLine[] = [];
  let prev = GENESIS_HASH;
  for (const f of m.files) {
    const text = readFileSync(join(dir, f.name), 'utf8');
    if (text.length > 0) assert.ok(text.endsWith('\n'), `${f.name} ends with a newline`);
    const lines = text.split('\n').slice(0, -1);
    if (f.state !== 'open') assert.equal(lines.length, f.count, `${f.name} count`);
    for (const line of lines) {
      const r = JSON.parse(line);
      assert.equal(r.seq, out.length + 1, 'seq gap-free');
      assert.equal(r.prev_hash, prev, `prev_hash of seq ${r.seq}`);
      assert.equal(recomputeHash(r), r.hash, `hash of seq ${r.seq}`);
      if (key) assert.ok(macMatches(key, r.hash, r.mac), `mac of seq ${r.seq}`);
      prev = r.hash;
      out.push({ ...r, file: f.name, line });
    }
    if (lines.length > 0 && f.state !== 'open') {
      assert.equal(f.first_seq, JSON.parse(lines[0] as string).seq);
      assert.equal(f.last_hash, prev);
    }
  }
  return out;
}

export function recordFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.audit'))
    .sort();
}

type Op = keyof AuditFs;

/**
 * An fs layer that fails chosen operations: `fail(op, code, times)`; `shortThenFail` makes the next
 * write write half its bytes, then the one after throw. `calls` logs operations in order.
 */
export class FaultFs {
  readonly fs: AuditFs;
  readonly calls: string[] = [];
  #fail = new Map<Op, { code: string; times: number; match?: (p: unknown[]) => boolean }>();
  #gate: Promise<void> | null = null;
  #short = 0;
  constructor(base: AuditFs = nodeFs) {
    const wrapped: Partial<AuditFs> = {};
    for (const k of Object.keys(base) as Op[]) {
      (wrapped as Record<string, unknown>)[k] = async (...args: unknown[]) => {
        this.calls.push(k);
        if (k === 'write' && this.#gate) await this.#gate;
        const f = this.#fail.get(k);
        if (f && f.times > 0 && (!f.match || f.match(args))) {
          f.times--;
          const e = new Error(`${f.code}: injected ${k} failure`) as NodeJS.ErrnoException;
          e.code = f.code;
          throw e;
        }
        if (k === 'write' && this.#short > 0) {
          this.#short--;
          const [fd, buf, off, len, pos] = args as [number, Uint8Array, number, number, number];
          const half = Math.max(1, Math.floor(len / 2));
          await base.write(fd, buf, off, half, pos);
          const e = new Error('EIO: injected after short write') as NodeJS.ErrnoException;
          e.code = 'EIO';
          throw e;
        }
        return (base[k] as (...a: unknown[]) => unknown)(...args);
      };
    }
    this.fs = wrapped as AuditFs;
  }
  fail(op: Op, code: string, times = Number.POSITIVE_INFINITY, match?: (args: unknown[]) => boolean): void {
    this.#fail.set(op, { code, times, match });
  }
  heal(): void {
    this.#fail.clear();
    this.#short = 0;
  }
  /** The next write writes half its bytes to disk and then fails with EIO (a torn write). */
  tornWrite(): void {
    this.#short = 1;
  }
  /** Blocks every write until the returned function is called. */
  block(): () => void {
    let open!: () => void;
    this.#gate = new Promise<void>((r) => {
      open = r;
    });
    return () => {
      this.#gate = null;
      open();
    };
  }
  count(op: Op): number {
    return this.calls.filter((c) => c === op).length;
  }
}

/** Lets pending I/O callbacks and immediates run. */
export function turn(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
