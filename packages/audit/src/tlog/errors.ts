/**
 * Typed errors of the transparency layer (`tlog/`). Each carries a string `code` so callers can branch
 * without parsing messages. Messages never contain key material.
 */
export type TlogErrorCode =
  | 'TLOG_BAD_INPUT'
  | 'TLOG_CORRUPT'
  | 'TLOG_TRAIL_MISMATCH'
  | 'TLOG_PROOF_INVALID'
  | 'TLOG_CHECKPOINT_INVALID'
  | 'TLOG_SIGNATURE_INVALID'
  | 'TLOG_KEY_INVALID'
  | 'TLOG_KEY_PERMISSIONS'
  | 'TLOG_IO'
  | 'TLOG_WITNESS';

export class TlogError extends Error {
  readonly code: TlogErrorCode;
  constructor(code: TlogErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TlogError';
    this.code = code;
  }
}
