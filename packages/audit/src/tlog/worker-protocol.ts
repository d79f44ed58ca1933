/** Messages between {@link WorkerTreeHost} and its worker (tree-worker.ts), and the final-sync handshake. */

export type HostRequest =
  | { t: 'start'; id: number }
  | { t: 'append'; seq: number; hex: string }
  | { t: 'sync'; id: number }
  | { t: 'close'; id: number }
  /** Final sync; the answer is written into `sab` (the main thread waits on it with Atomics.wait). */
  | { t: 'finish'; sab: SharedArrayBuffer };

export type HostResponse =
  | { t: 'ok'; id: number; size?: number; caughtUp?: number; root?: string }
  | { t: 'err'; id: number; code: string; message: string };

export const FINISH_PENDING = 0;
export const FINISH_OK = 1;
export const FINISH_ERROR = 2;
const MSG_OFFSET = 48;
export const FINISH_BYTES = MSG_OFFSET + 1024;

/** Layout: int32[0] state, int32[1] message length, float64 at 8 size, 16..48 root, 48.. message (UTF-8). */
export function writeFinish(
  sab: SharedArrayBuffer,
  state: number,
  size: number,
  root: Uint8Array,
  message: string,
): void {
  const i32 = new Int32Array(sab);
  new Float64Array(sab, 8, 1)[0] = size;
  new Uint8Array(sab, 16, 32).set(root.subarray(0, 32));
  const msg = Buffer.from(message, 'utf8').subarray(0, FINISH_BYTES - MSG_OFFSET);
  new Uint8Array(sab, MSG_OFFSET).set(msg);
  i32[1] = msg.length;
  Atomics.store(i32, 0, state);
  Atomics.notify(i32, 0);
}

export function readFinish(sab: SharedArrayBuffer): {
  state: number;
  size: number;
  root: Buffer;
  message: string;
} {
  const i32 = new Int32Array(sab);
  const len = i32[1] as number;
  return {
    state: Atomics.load(i32, 0),
    size: new Float64Array(sab, 8, 1)[0] as number,
    root: Buffer.from(new Uint8Array(sab, 16, 32)),
    message: Buffer.from(new Uint8Array(sab, MSG_OFFSET, len)).toString('utf8'),
  };
}
