/**
 * `--key-file F` for the audit commands: the trail's MAC key.
 *
 * Accepted content: text — hex digits (64 for a 32-byte key; surrounding whitespace ignored),
 * `hex:<hex>` or `base64:<base64>`, at least 16 bytes once decoded, as the writer's loadMacKey accepts —
 * or else exactly 32 raw bytes (a 32-byte file that does not decode as such text; text wins when both
 * readings are possible, e.g. 32 hex digits). The file must be a regular file (not a symlink) that group and others cannot access (chmod 600),
 * like the writer requires — the same function the writer uses. The key never appears in output or errors.
 */
import { AuditConfigError, loadMacKey, type MacKey } from '@vramseal/audit';

export class KeyFileError extends Error {
  readonly code = 'KEY_FILE';
  constructor(file: string, reason: string) {
    super(`--key-file ${file}: ${reason}`);
    this.name = 'KeyFileError';
  }
}

/** Reads and decodes a MAC key file with the writer's own rules (loadMacKey). Throws {@link KeyFileError}. */
export function readKeyFile(file: string): MacKey {
  try {
    return loadMacKey({ file });
  } catch (e) {
    if (e instanceof AuditConfigError) throw new KeyFileError(file, e.message.slice(e.option.length + 2));
    throw new KeyFileError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
