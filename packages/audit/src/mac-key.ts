/**
 * Loading the trail's MAC key (FORMAT.md §Record `mac`) from a file or an environment variable.
 *
 * Encoding (file content or variable value, surrounding whitespace ignored):
 *   - `hex:<hex>` or bare hex (even length), or `base64:<base64>`;
 *   - at least 16 bytes after decoding (32 recommended);
 *   - a key FILE may instead hold exactly 32 raw bytes (when its content does not decode as the text
 *     forms above; text wins when both readings are possible, e.g. 32 hex digits). Files over 4 KiB
 *     are refused.
 * A key file must be a regular file (not a symlink) readable by its owner only (mode & 0o077 == 0).
 *
 * The key is returned as a {@link MacKey}: a Uint8Array whose `toJSON()` and `util.inspect` output are
 * `[redacted]`, so it cannot leak through logs or serialization. Errors never contain key material.
 */
import { constants as C, closeSync, fstatSync, lstatSync, openSync, readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { AuditConfigError } from './writer-errors.js';

export const MIN_MAC_KEY_BYTES = 16;

/** A secret key that refuses to serialize itself. */
export class MacKey extends Uint8Array {
  toJSON(): string {
    return '[redacted]';
  }
  override toString(): string {
    return '[redacted MacKey]';
  }
  [inspect.custom](): string {
    return `MacKey [redacted, ${this.length} bytes]`;
  }
  /** A redacted copy of raw key bytes. */
  static copyOf(bytes: Uint8Array): MacKey {
    const k = new MacKey(bytes.length);
    k.set(bytes);
    return k;
  }
}

export type MacKeySource = { file: string } | { env: string; environment?: NodeJS.ProcessEnv };

/** Decodes a key string (see module doc). `what` names the source in errors. */
export function parseMacKey(text: string, what: string): MacKey {
  const t = text.trim();
  let bytes: Buffer;
  if (t.startsWith('base64:')) {
    const b = t.slice(7);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b)) throw new AuditConfigError(what, 'base64 key is not valid base64');
    bytes = Buffer.from(b, 'base64');
  } else {
    const h = t.startsWith('hex:') ? t.slice(4) : t;
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(h)) {
      throw new AuditConfigError(what, 'key must be hex (even length) or "base64:<base64>"');
    }
    bytes = Buffer.from(h, 'hex');
  }
  if (bytes.length < MIN_MAC_KEY_BYTES) {
    throw new AuditConfigError(what, `key must be at least ${MIN_MAC_KEY_BYTES} bytes (got ${bytes.length})`);
  }
  const k = MacKey.copyOf(bytes);
  bytes.fill(0);
  return k;
}

const MAX_KEY_FILE_BYTES = 4096;
const TEXT_KEY = /^\s*(?:hex:|base64:)?[0-9A-Za-z+/=]+\s*$/;

/** A key file's bytes: the text forms of {@link parseMacKey}, else exactly 32 raw bytes. */
function decodeKeyFile(buf: Buffer, what: string): MacKey {
  const text = buf.toString('latin1');
  if (TEXT_KEY.test(text)) {
    try {
      return parseMacKey(text, what);
    } catch (e) {
      if (buf.length !== RAW_KEY_BYTES) throw e;
    }
  }
  if (buf.length === RAW_KEY_BYTES) return MacKey.copyOf(buf);
  throw new AuditConfigError(what, 'expected hex, hex:/base64: text, or exactly 32 raw bytes');
}
const RAW_KEY_BYTES = 32;

/**
 * Loads the MAC key from `{ file }` (must be a regular file with mode 0600 or stricter, not a
 * symlink) or from the environment variable `{ env }`. Throws {@link AuditConfigError}.
 */
export function loadMacKey(src: MacKeySource): MacKey {
  if ('file' in src) {
    const what = `macKey file ${src.file}`;
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(src.file);
    } catch (e) {
      throw new AuditConfigError(what, `cannot stat: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (st.isSymbolicLink()) throw new AuditConfigError(what, 'is a symlink (refused)');
    if (!st.isFile()) throw new AuditConfigError(what, 'is not a regular file');
    const fd = openSync(src.file, C.O_RDONLY | C.O_NOFOLLOW);
    try {
      const fst = fstatSync(fd);
      if ((fst.mode & 0o077) !== 0) {
        throw new AuditConfigError(
          what,
          `mode ${(fst.mode & 0o777).toString(8).padStart(4, '0')} lets group/others access it; chmod 600`,
        );
      }
      if (fst.size > MAX_KEY_FILE_BYTES) throw new AuditConfigError(what, 'is larger than 4 KiB: not a key');
      const buf = readFileSync(fd);
      try {
        return decodeKeyFile(buf, what);
      } finally {
        buf.fill(0);
      }
    } finally {
      closeSync(fd);
    }
  }
  const env = src.environment ?? process.env;
  const v = env[src.env];
  if (v === undefined || v === '') throw new AuditConfigError(`macKey env ${src.env}`, 'variable is not set');
  return parseMacKey(v, `macKey env ${src.env}`);
}
