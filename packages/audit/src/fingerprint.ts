/**
 * Token fingerprints: how audit events refer to a bearer token or API key without containing it.
 *
 *   tokenFingerprint(t) = "token:" + first 6 lower-case hex digits of SHA-256(UTF-8(t))
 *
 * 24 bits identify a token among the few a user holds (for correlating `token.created` with
 * `token.revoked`), but are far too few to help anyone guess or confirm the token itself.
 */
import { createHash } from 'node:crypto';

/** Shape of a fingerprint, as the event schemas check it. */
export const TOKEN_FINGERPRINT_PATTERN = '^token:[0-9a-f]{6}$';

/**
 * Fingerprint of a secret token for audit records (see module doc). The token is hashed and dropped;
 * it never appears in errors.
 * @throws {TypeError} when `token` is not a non-empty string.
 */
export function tokenFingerprint(token: string): string {
  if (typeof token !== 'string' || token.length === 0) {
    throw new TypeError('tokenFingerprint: token must be a non-empty string');
  }
  return `token:${createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 6)}`;
}
