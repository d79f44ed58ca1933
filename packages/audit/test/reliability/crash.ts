/**
 * Crash scenario (issue 9): a child process emits in `immediate` (or `hybrid`) mode and reports each
 * acknowledged (durable) record; the parent SIGKILLs it at a random moment — during start-up and
 * recovery too — then restarts the trail and checks, every round:
 *  - every acknowledged record is in the trail, at its seq, with its content;
 *  - a torn tail seen on disk after the kill is quarantined and recorded as `audit.recovered`
 *    (bytes equal to the quarantined file), never dropped silently;
 *  - after restart the whole trail verifies (hash chain, MAC, seq, manifest, sidecars) and seq/chain
 *    continue (the next round's records follow the last one).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuditLogger, readManifest, verifyTrail } from '@vramseal/audit';
import { pino } from 'pino';
import { spawnNode } from './child.js';
import { reportRow, rng } from './summary.js';
import { readRecords, tempDir } from './trail-io.js';

const CHILD = fileURLToPath(new URL('./fixtures/crash-emitter.mjs', import.meta.url));
const CRASH_KEY = Buffer.alloc(32, 0x5c);
/** Small files, so kills also land in rotations (close + sidecar + manifest + new file). */
const CRASH_ROTATION = { maxBytes: 16_384 };

export interface CrashResult {
  rounds: number;
  acked: number;
  lost: number;
  tornTails: number;
  recoveredEvents: number;
  killsBeforeReady: number;
  simulatedTorn: number;
}

function startChild(dir: string, mode: string, round: number): ChildProcess {
  return spawnNode(CHILD, [dir, mode, String(round)], {
    env: {
      ...process.env,
      CRASH_KEY_HEX: CRASH_KEY.toString('hex'),
      CRASH_ROTATION_BYTES: String(CRASH_ROTATION.maxBytes),
    },
  });
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runCrashScenario(opts: {
  mode: 'immediate' | 'hybrid';
  rounds: number;
  seed: number;
}): Promise<CrashResult> {
  const r = rng(opts.seed);
  const dir = join(tempDir(`crash-${opts.mode}`), 'trail');
  const res: CrashResult = {
    rounds: 0,
    acked: 0,
    lost: 0,
    tornTails: 0,
    recoveredEvents: 0,
    killsBeforeReady: 0,
    simulatedTorn: 0,
  };
  let startupMs = 1500;
  let prevLastSeq = 0;
  const failures: string[] = [];
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      const child = startChild(dir, opts.mode, round);
      const t0 = Date.now();
      let out = '';
      let err = '';
      let readyAt = 0;
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (d: string) => {
        out += d;
        if (!readyAt && out.includes('ready ')) readyAt = Date.now();
      });
      child.stderr?.on('data', (d) => {
        err += d;
      });
      const exited = new Promise<number | null>((res1) => child.once('exit', (c) => res1(c)));
      // 1 round in 8: kill during start-up / recovery; otherwise 0..250 ms into the writing.
      const early = r.chance(0.125);
      if (early) await delay(r.int(startupMs));
      else {
        const readyBy = Date.now() + 60_000;
        while (!readyAt && Date.now() < readyBy) {
          if (child.exitCode !== null) break;
          await delay(5);
        }
        if (!readyAt) throw new Error(`crash child did not start: ${err.slice(0, 2000)}`);
        startupMs = readyAt - t0;
        await delay(r.int(250));
      }
      if (!readyAt) res.killsBeforeReady++;
      child.kill('SIGKILL');
      const code = await exited;
      if (child.exitCode !== null && code !== null)
        throw new Error(`crash child exited by itself (${code}): ${err.slice(0, 2000)}`);
      res.rounds++;
      const acks = new Map<number, string>();
      let firstAck = Number.POSITIVE_INFINITY;
      for (const line of out.split('\n')) {
        const m = /^(\d+) (\S+)$/.exec(line);
        if (!m) continue;
        const seq = Number(m[1]);
        acks.set(seq, m[2] as string);
        if (seq < firstAck) firstAck = seq;
      }
      res.acked += acks.size;
      if (acks.size > 0 && firstAck <= prevLastSeq)
        failures.push(`round ${round}: acknowledged seq ${firstAck} reuses a seq ≤ ${prevLastSeq}`);
      if (!existsSync(dir)) continue;

      // SIGKILL never interrupts a write(2) half-way (the page cache holds what was written), so a
      // torn tail — what a power cut mid-write leaves — is simulated in 1 round in 3: a prefix of a
      // record line, without its newline, appended to the open file.
      if (r.chance(1 / 3)) {
        const open = (await readManifest(dir))?.files.find((f) => f.state === 'open');
        if (open) {
          const p = join(dir, open.name);
          const lines = readFileSync(p, 'utf8').split('\n').filter(Boolean);
          const model = lines.at(-1) ?? '{"v":1,"seq":1,"audit_id":"x"}';
          appendFileSync(p, model.slice(0, 1 + r.int(model.length - 1)));
          res.simulatedTorn++;
        }
      }
      // What is on disk now: a torn tail shows as a `torn_line` failure.
      const raw = await verifyTrail(dir, { macKey: CRASH_KEY, concurrency: 0 });
      const torn = raw.failures.filter((f) => f.kind === 'torn_line').length;
      res.tornTails += torn;
      const qBefore = quarantined(dir);

      // Restart: recovery runs in open.
      const log = await AuditLogger.open({
        mode: 'local',
        dir,
        serviceId: 'crash-test',
        flush: { mode: 'immediate' },
        rotation: CRASH_ROTATION,
        macKey: CRASH_KEY,
        logger: pino({ level: 'silent' }),
      });
      const maxAck = Math.max(0, ...acks.keys());
      if (log.lastSeq < maxAck)
        failures.push(`round ${round}: resumed at ${log.lastSeq} < acknowledged ${maxAck}`);
      const recoveredNow = log.stats().recovered;
      await log.close();

      const report = await verifyTrail(dir, { macKey: CRASH_KEY, concurrency: 0 });
      if (!report.ok)
        failures.push(
          `round ${round}: trail does not verify after restart: ${JSON.stringify(report.failures.slice(0, 3))}`,
        );
      const recs = readRecords(dir);
      const bySeq = new Map(recs.map((x) => [x.seq, x]));
      for (const [seq, shard] of acks) {
        if (bySeq.get(seq)?.event.shard_id !== shard) {
          res.lost++;
          failures.push(`round ${round}: acknowledged seq ${seq} (${shard}) missing or different`);
        }
      }
      // Every quarantined tail is recorded; every torn tail seen is quarantined.
      const recovered = recs.filter((x) => x.event.type === 'audit.recovered');
      res.recoveredEvents = recovered.length;
      if (recovered.length !== res.tornTails)
        failures.push(
          `round ${round}: ${res.tornTails} torn tail(s) so far, ${recovered.length} audit.recovered`,
        );
      const qAfter = quarantined(dir);
      const newQ = [...qAfter.keys()].filter((q) => !qBefore.has(q));
      if (newQ.length !== recoveredNow)
        failures.push(`round ${round}: ${newQ.length} new quarantine file(s), ${recoveredNow} recovered`);
      if (torn > 0 && recoveredNow < 1)
        failures.push(`round ${round}: torn tail on disk but nothing recovered`);
      for (const q of newQ) {
        const ev = recovered.find((e) => String(e.event.quarantine_file).endsWith(q));
        if (!ev) failures.push(`round ${round}: quarantine file ${q} has no audit.recovered record`);
        else if (ev.event.bytes !== qAfter.get(q))
          failures.push(
            `round ${round}: audit.recovered says ${ev.event.bytes} bytes, ${q} holds ${qAfter.get(q)}`,
          );
      }
      const last = recs.at(-1);
      if (last && last.seq !== recs.length)
        failures.push(`round ${round}: seq not gap-free (${last.seq} ≠ ${recs.length})`);
      prevLastSeq = last?.seq ?? 0;
      if (failures.length > 0) break;
    }
  } finally {
    reportRow({
      category: `crash: SIGKILL writer (${opts.mode})`,
      injected: res.rounds + res.simulatedTorn,
      detected: res.rounds + res.recoveredEvents,
      undetected: 0,
      lost: res.lost,
      note: `seed ${opts.seed}; ${res.rounds} kills (${res.killsBeforeReady} during start-up) + ${res.simulatedTorn} torn tails; ${res.acked} acked records checked; ${res.recoveredEvents} audit.recovered`,
    });
  }
  assert.deepEqual(failures, []);
  return res;
}

function quarantined(dir: string): Map<string, number> {
  const q = join(dir, 'quarantine');
  const m = new Map<string, number>();
  if (!existsSync(q)) return m;
  for (const n of readdirSync(q)) m.set(n, statSync(join(q, n)).size);
  return m;
}
