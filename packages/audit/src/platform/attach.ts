/**
 * Wires a {@link Shipper} to a running AuditLogger (mode `platform`): the logger's `durable` event
 * feeds it, its `close` event stops it. Call right after `AuditLogger.open`, before the first emit,
 * so that `logger.lastSeq` is the last durable record of the trail.
 */
import { Shipper, type ShipperOptions } from './shipper.js';

/** What the shipper needs of a logger (the real AuditLogger satisfies it). */
export interface ShippableLogger {
  readonly dir: string;
  readonly lastSeq: number;
  on(
    event: 'durable',
    fn: (recs: ReadonlyArray<{ seq: number; hash: string; line: string }>) => void,
  ): unknown;
  on(event: 'close', fn: () => void): unknown;
}

export type PlatformOptions = Omit<ShipperOptions, 'dir'>;

const attached = new WeakMap<object, Shipper>();

/** The shipper attached to a logger opened in mode `platform` (for status/metrics and flush), if any. */
export function shipperOf(logger: object): Shipper | undefined {
  return attached.get(logger);
}

export async function attachShipper(logger: ShippableLogger, opts: PlatformOptions): Promise<Shipper> {
  const shipper = new Shipper({ ...opts, dir: logger.dir });
  shipper.noteDurableSeq(logger.lastSeq);
  logger.on('durable', (recs) => shipper.noteDurable(recs));
  logger.on('close', () => {
    void shipper.stop();
  });
  attached.set(logger, shipper);
  await shipper.start();
  return shipper;
}
