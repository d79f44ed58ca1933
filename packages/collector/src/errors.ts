/** Typed errors of the collector. `code` is stable; messages never contain tokens, keys or record contents. */
export type CollectorErrorCode =
  | 'COLLECTOR_CONFIG'
  | 'COLLECTOR_STORAGE'
  | 'COLLECTOR_MIGRATION'
  | 'COLLECTOR_AUDIT';

export class CollectorError extends Error {
  readonly code: CollectorErrorCode;
  constructor(code: CollectorErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CollectorError';
    this.code = code;
  }
}
