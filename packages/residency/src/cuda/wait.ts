/**
 * Non-blocking waits for GPU work: the event is polled with cuEventQuery between turns of Node's
 * event loop (setImmediate for the first milliseconds, then 1 ms timers), so a daemon keeps
 * answering requests while a 32 GiB copy or a digest runs. No driver call here ever blocks.
 */
import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises';
import type { Driver, Handle } from './driver.js';

/** Polls with setImmediate this long (a digest of up to ~25 GiB) before switching to 1 ms timers. */
const SPIN_MS = 30;

/** Resolves once every piece of work recorded before `ev` has completed. */
export async function waitEvent(drv: Driver, ev: Handle): Promise<void> {
  const t0 = performance.now();
  while (!drv.eventQuery(ev)) {
    if (performance.now() - t0 < SPIN_MS) await immediate();
    else await sleep(1);
  }
}

/** A promise-chain mutex: `run(fn)` runs fn after every earlier call has settled. */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}
