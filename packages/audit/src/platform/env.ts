/**
 * Platform-mode configuration from the environment, so any process that opens an AuditLogger (the
 * `vramseal serve` daemon, `vramseal audit emit`, ...) can ship its trail without new flags:
 *
 *   VRAMSEAL_PLATFORM_URL          collector base URL (https://…)            — enables platform mode
 *   VRAMSEAL_PROVIDER_ID           this provider's id at the collector       — required with the URL
 *   VRAMSEAL_PROVIDER_KEY_FILE     provider Ed25519 private key (PKCS#8 PEM, mode 0600) — required
 *   VRAMSEAL_COLLECTOR_PUBLIC_KEY  collector public key (base64 or PEM): verify every receipt — optional
 *   VRAMSEAL_PLATFORM_BATCH        records per batch (default 500)           — optional
 *   VRAMSEAL_PLATFORM_DELAY_MS     max wait before a partial batch (default 1000) — optional
 */

import type { PlatformOptions } from './attach.js';
import { PlatformError } from './errors.js';

/** The platform options the environment asks for, or undefined when VRAMSEAL_PLATFORM_URL is unset. */
export function platformOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): PlatformOptions | undefined {
  const url = env.VRAMSEAL_PLATFORM_URL;
  if (!url) return undefined;
  const need = (name: string): string => {
    const v = env[name];
    if (!v)
      throw new PlatformError('PLATFORM_CONFIG', `${name} is required when VRAMSEAL_PLATFORM_URL is set`);
    return v;
  };
  const int = (name: string, min: number, max: number): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
      throw new PlatformError('PLATFORM_CONFIG', `${name} must be an integer between ${min} and ${max}`);
    return Number(v);
  };
  const o: PlatformOptions = {
    url,
    providerId: need('VRAMSEAL_PROVIDER_ID'),
    privateKey: { file: need('VRAMSEAL_PROVIDER_KEY_FILE') },
  };
  if (env.VRAMSEAL_COLLECTOR_PUBLIC_KEY) o.collectorPublicKey = env.VRAMSEAL_COLLECTOR_PUBLIC_KEY;
  const maxRecords = int('VRAMSEAL_PLATFORM_BATCH', 1, 10_000);
  const maxDelayMs = int('VRAMSEAL_PLATFORM_DELAY_MS', 0, 3_600_000);
  if (maxRecords !== undefined || maxDelayMs !== undefined)
    o.batch = {
      ...(maxRecords !== undefined ? { maxRecords } : {}),
      ...(maxDelayMs !== undefined ? { maxDelayMs } : {}),
    };
  return o;
}
