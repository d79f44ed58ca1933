/**
 * Typed errors of platform mode (the shipper, batch and receipt signatures, trail comparison).
 * Messages never contain key material or record contents.
 */
export type PlatformErrorCode =
  | 'PLATFORM_CONFIG'
  | 'PLATFORM_KEY'
  | 'PLATFORM_SPOOL'
  | 'PLATFORM_HTTP'
  | 'PLATFORM_REJECTED'
  | 'PLATFORM_DIVERGED'
  | 'PLATFORM_RECEIPT';

export class PlatformError extends Error {
  readonly code: PlatformErrorCode;
  constructor(code: PlatformErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PlatformError';
    this.code = code;
  }
}
