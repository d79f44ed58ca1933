/**
 * Ed25519 keys for platform mode (RFC 8032): a provider signs its batches, the collector signs its
 * receipts. Private keys live in PKCS#8 PEM files that must not be readable by group or others
 * (like the MAC key); public keys are written as base64 of the raw 32-byte key (RFC 8032 §5.1.5)
 * or as SPKI PEM. A key id is the first 16 hex chars of SHA-256(raw public key).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { PlatformError } from './errors.js';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4) before the 32 raw key bytes. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Parses an Ed25519 public key given as SPKI PEM or as base64/base64url of the raw 32 bytes. */
export function parsePublicKey(text: string): KeyObject {
  const s = text.trim();
  let key: KeyObject;
  try {
    if (s.startsWith('-----BEGIN')) key = createPublicKey(s);
    else {
      const raw = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
      if (raw.length !== 32) throw new Error('raw Ed25519 public key must be 32 bytes');
      key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
    }
  } catch (err) {
    throw new PlatformError('PLATFORM_KEY', `invalid Ed25519 public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new PlatformError('PLATFORM_KEY', `public key is ${key.asymmetricKeyType}, expected ed25519`);
  return key;
}

/** The raw 32-byte public key, base64 (the form providers.json uses). */
export function publicKeyToBase64(key: KeyObject): string {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return der.subarray(SPKI_ED25519_PREFIX.length).toString('base64');
}

/** Key id: first 16 hex chars of SHA-256 over the raw public key. */
export function keyId(key: KeyObject): string {
  return createHash('sha256').update(publicKeyToBase64(key), 'base64').digest('hex').slice(0, 16);
}

/** Parses an Ed25519 private key from PKCS#8 PEM text. */
export function parsePrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    // Never echo the input: it is a secret.
    throw new PlatformError('PLATFORM_KEY', 'invalid Ed25519 private key (expected PKCS#8 PEM)');
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new PlatformError('PLATFORM_KEY', `private key is ${key.asymmetricKeyType}, expected ed25519`);
  return key;
}

/**
 * Loads an Ed25519 private key from a PKCS#8 PEM file. The file must be a regular file with no
 * group/other permission bits (0600 or stricter), like the trail's MAC key file.
 */
export function loadPrivateKeyFile(file: string): KeyObject {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch (err) {
    throw new PlatformError(
      'PLATFORM_KEY',
      `cannot read key file ${file}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
  if (!st.isFile()) throw new PlatformError('PLATFORM_KEY', `key file ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0)
    throw new PlatformError(
      'PLATFORM_KEY',
      `key file ${file} has mode ${(st.mode & 0o777).toString(8)}; it must not be accessible by group or others (chmod 600)`,
    );
  return parsePrivateKey(readFileSync(file, 'utf8'));
}

/** Generates an Ed25519 key pair: PKCS#8 PEM private key and base64 raw public key. */
export function generateSigningKey(): { privateKeyPem: string; publicKey: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey: publicKeyToBase64(publicKey),
    keyId: keyId(publicKey),
  };
}
