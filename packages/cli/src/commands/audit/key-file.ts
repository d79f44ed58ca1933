/**
 * `--key-file F` for the audit commands: the trail's MAC key.
 *
 * Accepted content: text — hex digits (64 for a 32-byte key; surrounding whitespace ignored),
 * `hex:<hex>` or `base64:<base64>`, at least 16 bytes once decoded, as the writer's loadMacKey accepts —
 * or else exactly 32 raw bytes (a 32-byte file that does not decode as such text; text wins when both
 * readings are possible, e.g. 32 hex digits). The file must be a regular file (not a symlink) that group and others cannot access (chmod 600),
 * like the writer requires. The key never appears in output or errors.
 */
import { constants as C, closeSync, fstatSync, lstatSync, openSync, readFileSync } from 'node:fs';
import { MacKey, parseMacKey } from '@vramseal/audit';

export class KeyFileError extends Error {
  readonly code = 'KEY_FILE';
  constructor(file: string, reason: string) {
    super(`--key-file ${file}: ${reason}`);
    this.name = 'KeyFileError';
  }
}

const TEXT_KEY = /^\s*(?:hex:|base64:)?[0-9A-Za-z+/=]+\s*$/;

/** Reads and decodes a MAC key file (see module doc). Throws {@link KeyFileError}. */
export function readKeyFile(file: string): MacKey {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(file);
  } catch (e) {
    throw new KeyFileError(file, `cannot stat (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (st.isSymbolicLink()) throw new KeyFileError(file, 'is a symlink (refused)');
  if (!st.isFile()) throw new KeyFileError(file, 'is not a regular file');
  const fd = openSync(file, C.O_RDONLY | C.O_NOFOLLOW);
  let buf: Buffer;
  try {
    const fst = fstatSync(fd);
    if ((fst.mode & 0o077) !== 0) {
      throw new KeyFileError(
        file,
        `mode ${(fst.mode & 0o777).toString(8).padStart(4, '0')} lets group/others read it; chmod 600`,
      );
    }
    if (fst.size > 4096) throw new KeyFileError(file, 'is larger than 4 KiB: not a key');
    buf = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    const text = buf.toString('latin1');
    if (TEXT_KEY.test(text)) {
      try {
        return parseMacKey(text, 'key');
      } catch (e) {
        if (buf.length !== 32) throw new KeyFileError(file, (e as Error).message.replace(/^key: /, ''));
      }
    }
    if (buf.length === 32) return MacKey.copyOf(buf);
    throw new KeyFileError(file, 'expected 64 hex digits, hex:/base64: text, or exactly 32 raw bytes');
  } finally {
    buf.fill(0);
  }
}
