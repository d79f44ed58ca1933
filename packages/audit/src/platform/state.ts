/**
 * The shipper's persistent state, `platform-state.json` in the trail directory: the last seq and
 * hash the collector acknowledged (with its signed receipt). Replaced atomically (write temp, fsync,
 * rename, fsync dir) so a crash leaves either the old or the new state, never a torn one.
 *
 * The state is a hint: at start the shipper confirms it with `GET /v1/providers/:id/head`, and the
 * collector acknowledges re-sent records idempotently, so a stale state costs re-sending, never loss.
 */
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Receipt } from './receipt.js';

export const STATE_FILE = 'platform-state.json';

export interface ShipperState {
  v: 1;
  provider_id: string;
  collector_url: string;
  acked_seq: number;
  acked_hash: string;
  receipt?: Receipt;
  updated_at: string;
}

export async function readShipperState(dir: string): Promise<ShipperState | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const s = JSON.parse(text) as ShipperState;
    if (s.v !== 1 || !Number.isSafeInteger(s.acked_seq) || typeof s.acked_hash !== 'string') return undefined;
    return s;
  } catch {
    return undefined; // unreadable state: start from the collector's head
  }
}

export async function writeShipperState(dir: string, s: ShipperState): Promise<void> {
  const tmp = join(dir, `${STATE_FILE}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(s)}\n`);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, STATE_FILE));
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await d.close();
  }
}
