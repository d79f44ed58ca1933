/**
 * Bearer-token file of the residency daemon (`vramseal serve --token-file F`).
 *
 * Format: UTF-8 text, one token per line: `<token> <role>`; blank lines and lines starting with `#`
 * are ignored. A token is 16–512 printable ASCII characters without spaces; a role is one of
 * {@link ROLES}. The file must not be readable or writable by group or others (mode 0600 or 0400).
 *
 * Tokens are kept only as SHA-256 digests and compared with `crypto.timingSafeEqual` against every
 * entry (no early exit), so neither the comparison time nor an error tells which token or how much of
 * it matched. Only fingerprints (`token:` + 6 hex of SHA-256) are ever logged or audited.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

/**
 * Roles, from least to most privileged.
 * - `reader`: health, capacity, list/get shards.
 * - `operator`: reader + `POST /v1/execute` (what an inference engine needs).
 * - `admin`: operator + seal (`POST /v1/shards`) and release (`DELETE /v1/shards/:id`).
 */
export const ROLES = ['reader', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** True when `role` grants at least the privileges of `needed`. */
export function roleAllows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** `token:` + the first 6 hex characters of SHA-256(token) (same rule as @vramseal/audit). */
export function fingerprint(token: string): string {
  return `token:${createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 6)}`;
}

export class TokenFileError extends Error {
  readonly code = 'TOKEN_FILE_INVALID';
  constructor(
    readonly source: string,
    readonly line: number,
    readonly rule: string,
  ) {
    super(line > 0 ? `${source}:${line}: ${rule}` : `${source}: ${rule}`);
    this.name = 'TokenFileError';
  }
}

export interface Principal {
  role: Role;
  fingerprint: string;
}

interface Entry {
  digest: Buffer;
  role: Role;
  fingerprint: string;
}

const TOKEN_RE = /^[\x21-\x7e]{16,512}$/;

/** The set of accepted bearer tokens with their roles. Never holds or prints the plain tokens. */
export class TokenStore {
  readonly #entries: Entry[];

  private constructor(entries: Entry[]) {
    this.#entries = entries;
  }

  /** Parses token-file text; errors name the source, the line number and the rule, never the token. */
  static parse(text: string, source = 'token file'): TokenStore {
    const entries: Entry[] = [];
    const seen = new Set<string>();
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = (lines[i] ?? '').trim();
      if (line === '' || line.startsWith('#')) continue;
      const parts = line.split(/[ \t]+/);
      if (parts.length !== 2)
        throw new TokenFileError(
          source,
          i + 1,
          'expected "<token> <role>" (two fields separated by a space)',
        );
      const [token, role] = parts as [string, string];
      if (!TOKEN_RE.test(token))
        throw new TokenFileError(
          source,
          i + 1,
          'token must be 16-512 printable ASCII characters without spaces',
        );
      if (!(ROLES as readonly string[]).includes(role))
        throw new TokenFileError(source, i + 1, `role must be one of ${ROLES.join(', ')}`);
      const digest = createHash('sha256').update(token, 'utf8').digest();
      const key = digest.toString('hex');
      if (seen.has(key)) throw new TokenFileError(source, i + 1, 'duplicate token');
      seen.add(key);
      entries.push({ digest, role: role as Role, fingerprint: fingerprint(token) });
    }
    if (entries.length === 0) throw new TokenFileError(source, 0, 'no tokens defined');
    return new TokenStore(entries);
  }

  /** Reads and parses a token file; refuses one that group or others can read or write. */
  static async fromFile(path: string): Promise<TokenStore> {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(path);
    } catch (err) {
      throw new TokenFileError(path, 0, `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    if (!st.isFile()) throw new TokenFileError(path, 0, 'not a regular file');
    if ((st.mode & 0o077) !== 0)
      throw new TokenFileError(
        path,
        0,
        `mode ${(st.mode & 0o777).toString(8)} is too open: group/others must have no access (chmod 600)`,
      );
    return TokenStore.parse(await readFile(path, 'utf8'), path);
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Roles and fingerprints of the configured tokens (safe to log). */
  describe(): Principal[] {
    return this.#entries.map((e) => ({ role: e.role, fingerprint: e.fingerprint }));
  }

  /**
   * Looks up a presented token in constant time with respect to which entry (if any) matches:
   * every entry is compared, with `timingSafeEqual` on equal-length SHA-256 digests.
   */
  authenticate(presented: string): Principal | undefined {
    const digest = createHash('sha256').update(presented, 'utf8').digest();
    let found: Entry | undefined;
    for (const e of this.#entries) {
      if (timingSafeEqual(digest, e.digest) && found === undefined) found = e;
    }
    return found ? { role: found.role, fingerprint: found.fingerprint } : undefined;
  }

  toJSON(): unknown {
    return { tokens: this.describe() };
  }
}
