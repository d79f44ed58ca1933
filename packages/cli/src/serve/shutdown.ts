/**
 * Graceful shutdown on SIGTERM / SIGINT, in this order:
 *   1. stop accepting connections and let in-flight requests finish (`app.close()`; idle keep-alive
 *      connections are closed, new requests on busy ones get 503);
 *   2. release every sealed shard (each emits `vram.deallocated`) and close the backend;
 *   3. flush and close the audit trail (so the releases are durable);
 *   4. exit 0 — or 1 if a step failed or the whole sequence outlived `timeoutMs`.
 * A second signal during shutdown is logged and ignored (the timeout still bounds the wait).
 */
import type { Logger } from 'pino';

export interface ShutdownStep {
  name: string;
  run(): Promise<void>;
}

export interface ShutdownOptions {
  steps: ShutdownStep[];
  logger?: Logger;
  timeoutMs?: number;
  signals?: NodeJS.Signals[];
  exit?: (code: number) => void;
}

/** Runs the steps in order; resolves with the exit code (0 when all succeeded). */
export async function runShutdown(steps: ShutdownStep[], logger?: Logger): Promise<number> {
  let code = 0;
  for (const step of steps) {
    const t0 = performance.now();
    try {
      await step.run();
      logger?.info({ step: step.name, ms: Math.round(performance.now() - t0) }, 'shutdown step done');
    } catch (err) {
      code = 1;
      logger?.error({ step: step.name, err: { message: (err as Error).message } }, 'shutdown step failed');
    }
  }
  return code;
}

/** Installs the signal handlers; returns a function that removes them. */
export function installShutdown(opts: ShutdownOptions): () => void {
  const signals = opts.signals ?? ['SIGTERM', 'SIGINT'];
  const exit = opts.exit ?? ((c: number) => process.exit(c));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let inProgress = false;
  const handler = (signal: NodeJS.Signals) => {
    if (inProgress) {
      opts.logger?.warn({ signal }, 'shutdown already in progress');
      return;
    }
    inProgress = true;
    opts.logger?.info(
      { signal },
      'shutting down: draining requests, releasing shards, flushing the audit trail',
    );
    const timer = setTimeout(() => {
      opts.logger?.error({ timeoutMs }, 'shutdown timed out');
      exit(1);
    }, timeoutMs);
    timer.unref();
    runShutdown(opts.steps, opts.logger).then((code) => {
      clearTimeout(timer);
      opts.logger?.info({ code }, 'shutdown complete');
      exit(code);
    });
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
