/**
 * Ed25519 keys for signed checkpoints, in the C2SP signed-note key formats (interoperable with
 * golang.org/x/mod/sumdb/note and transparency-dev witnesses):
 *
 *   verifier key (public, safe to publish):  <name>+<key id, 8 hex>+<base64(0x01 || 32-byte public key)>
 *   signer key  (private, file mode 0600):   PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 || 32-byte seed)>
 *
 *   key id = SHA-256(name || 0x0A || 0x01 || public key)[:4]        (C2SP signed-note §Signatures)
 *
 * PEM keys (PKCS#8 private, SPKI public) are accepted too, with the key name given separately.
 * Private key material lives only in a node:crypto KeyObject behind a #private field: it never appears
 * in toJSON(), util.inspect, errors or logs.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import * as fs from 'node:fs';
import { inspect } from 'node:util';
import { TlogError } from './errors.js';

/** C2SP signed-note signature type byte for Ed25519. */
export const ED25519_TYPE = 0x01;
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** C2SP signed-note: key names are non-empty, without Unicode spaces or '+'. */
export function checkKeyName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 256 || /[\s+\p{Z}\p{Cc}]/u.test(name)) {
    throw new TlogError(
      'TLOG_KEY_INVALID',
      'key name: must be 1-256 characters without spaces, control characters or "+" (C2SP signed-note)',
    );
  }
}

/** key id = SHA-256(name || 0x0A || 0x01 || public key)[:4]. */
export function ed25519KeyId(name: string, publicKey: Uint8Array): Buffer {
  return createHash('sha256')
    .update(name, 'utf8')
    .update(Buffer.from([0x0a, ED25519_TYPE]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

function rawPublic(k: KeyObject): Buffer {
  const jwk = k.export({ format: 'jwk' }) as { x?: string; crv?: string };
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new TlogError('TLOG_KEY_INVALID', 'key: not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

/** A public checkpoint-verification key. */
export class VerifierKey {
  readonly name: string;
  readonly keyId: Buffer;
  readonly publicKey: Buffer;
  readonly keyObject: KeyObject;

  constructor(name: string, publicKey: Uint8Array) {
    checkKeyName(name);
    if (publicKey.length !== 32)
      throw new TlogError('TLOG_KEY_INVALID', 'public key: Ed25519 keys are 32 bytes');
    this.name = name;
    this.publicKey = Buffer.from(publicKey);
    this.keyId = ed25519KeyId(name, this.publicKey);
    this.keyObject = createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, this.publicKey]),
      format: 'der',
      type: 'spki',
    });
  }

  /** The C2SP verifier key string `<name>+<id hex>+<base64(0x01 || key)>`. */
  toString(): string {
    return `${this.name}+${this.keyId.toString('hex')}+${Buffer.concat([Buffer.from([ED25519_TYPE]), this.publicKey]).toString('base64')}`;
  }

  toJSON(): { name: string; key_id: string; vkey: string } {
    return { name: this.name, key_id: this.keyId.toString('hex'), vkey: this.toString() };
  }

  /** Parses a C2SP verifier key string; checks the embedded key id. */
  static parse(vkey: string): VerifierKey {
    const s = vkey.trim();
    const parts = s.split('+');
    // The base64 part may itself contain '+': name and id are the first two fields.
    if (parts.length < 3)
      throw new TlogError('TLOG_KEY_INVALID', 'verifier key: expected <name>+<hex id>+<base64 key>');
    const [name, idHex] = parts as [string, string];
    const b64 = parts.slice(2).join('+');
    if (!/^[0-9a-f]{8}$/.test(idHex))
      throw new TlogError('TLOG_KEY_INVALID', 'verifier key: id must be 8 hex digits');
    const raw = Buffer.from(b64, 'base64');
    if (raw.length !== 33 || raw[0] !== ED25519_TYPE || raw.toString('base64') !== b64) {
      throw new TlogError(
        'TLOG_KEY_INVALID',
        'verifier key: key must be base64 of 0x01 || 32-byte Ed25519 key',
      );
    }
    const k = new VerifierKey(name, raw.subarray(1));
    if (k.keyId.toString('hex') !== idHex) {
      throw new TlogError('TLOG_KEY_INVALID', 'verifier key: id does not match the name and key');
    }
    return k;
  }
}

/** A private checkpoint-signing key. The key material is not reachable from outside. */
export class SignerKey {
  readonly name: string;
  readonly keyId: Buffer;
  readonly verifier: VerifierKey;
  readonly #key: KeyObject;

  constructor(name: string, privateKey: KeyObject) {
    checkKeyName(name);
    if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
      throw new TlogError('TLOG_KEY_INVALID', 'signer key: must be an Ed25519 private key');
    }
    this.name = name;
    this.#key = privateKey;
    this.verifier = new VerifierKey(name, rawPublic(createPublicKey(privateKey)));
    this.keyId = this.verifier.keyId;
  }

  /** Creates a signer from a 32-byte Ed25519 seed (RFC 8032 private key). */
  static fromSeed(name: string, seed: Uint8Array): SignerKey {
    if (seed.length !== 32)
      throw new TlogError('TLOG_KEY_INVALID', 'signer key: Ed25519 seed must be 32 bytes');
    const k = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    return new SignerKey(name, k);
  }

  /** Generates a fresh key pair (node:crypto generateKeyPairSync('ed25519')). */
  static generate(name: string): SignerKey {
    const { privateKey } = generateKeyPairSync('ed25519');
    return new SignerKey(name, privateKey);
  }

  /** Parses `PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>`; checks the embedded key id. */
  static parse(skey: string): SignerKey {
    const parts = skey.trim().split('+');
    if (parts.length < 5 || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY') {
      throw new TlogError(
        'TLOG_KEY_INVALID',
        'signer key: expected PRIVATE+KEY+<name>+<hex id>+<base64 key>',
      );
    }
    const name = parts[2] as string;
    const idHex = parts[3] as string;
    const b64 = parts.slice(4).join('+');
    const raw = Buffer.from(b64, 'base64');
    if (raw.length !== 33 || raw[0] !== ED25519_TYPE || raw.toString('base64') !== b64) {
      throw new TlogError(
        'TLOG_KEY_INVALID',
        'signer key: key must be base64 of 0x01 || 32-byte Ed25519 seed',
      );
    }
    const k = SignerKey.fromSeed(name, raw.subarray(1));
    raw.fill(0);
    if (k.keyId.toString('hex') !== idHex) {
      throw new TlogError('TLOG_KEY_INVALID', 'signer key: id does not match the name and key');
    }
    return k;
  }

  /** Signs `message` (RFC 8032 Ed25519, node:crypto sign(null, ...)). */
  sign(message: Uint8Array): Buffer {
    return cryptoSign(null, message, this.#key);
  }

  /** The private key in C2SP signer-key format (for writing the key file only). */
  exportSignerKey(): string {
    const d = Buffer.from((this.#key.export({ format: 'jwk' }) as { d: string }).d, 'base64url');
    const s = `PRIVATE+KEY+${this.name}+${this.keyId.toString('hex')}+${Buffer.concat([Buffer.from([ED25519_TYPE]), d]).toString('base64')}`;
    d.fill(0);
    return s;
  }

  toJSON(): { name: string; key_id: string } {
    return { name: this.name, key_id: this.keyId.toString('hex') };
  }

  [inspect.custom](): string {
    return `SignerKey { name: ${JSON.stringify(this.name)}, key_id: '${this.keyId.toString('hex')}' }`;
  }
}

/**
 * Writes a fresh key pair: `<prefix>.key` (signer key, mode 0600, created exclusively: an existing file
 * is never overwritten) and `<prefix>.pub` (verifier key, mode 0644). Returns the signer.
 */
export function writeKeyPair(
  prefix: string,
  name: string,
): { signer: SignerKey; keyFile: string; pubFile: string } {
  const signer = SignerKey.generate(name);
  const keyFile = `${prefix}.key`;
  const pubFile = `${prefix}.pub`;
  for (const f of [keyFile, pubFile]) {
    if (fs.existsSync(f))
      throw new TlogError('TLOG_IO', `keygen: ${f} already exists; refusing to overwrite it`);
  }
  const fd = fs.openSync(keyFile, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.fchmodSync(fd, 0o600); // umask cannot widen it, but make it exact
    fs.writeSync(fd, `${signer.exportSignerKey()}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.writeFileSync(pubFile, `${signer.verifier.toString()}\n`, { mode: 0o644, flag: 'wx' });
  return { signer, keyFile, pubFile };
}

/**
 * Loads a signer key file: C2SP `PRIVATE+KEY+...` or PKCS#8 PEM (then `name` is required).
 * Refuses a symlink and any mode looser than 0600 (group/other bits set), like ssh does.
 */
export function loadSignerKey(file: string, name?: string): SignerKey {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (err) {
    throw new TlogError(
      'TLOG_IO',
      `signer key file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  if (st.isSymbolicLink() || !st.isFile()) {
    throw new TlogError(
      'TLOG_KEY_PERMISSIONS',
      `signer key file ${file}: must be a regular file, not a symlink`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new TlogError(
      'TLOG_KEY_PERMISSIONS',
      `signer key file ${file}: mode ${(st.mode & 0o777).toString(8)} is too open; it must be 0600 (chmod 600 ${file})`,
    );
  }
  const text = fs.readFileSync(file, 'utf8');
  if (text.trimStart().startsWith('PRIVATE+KEY+')) return SignerKey.parse(text);
  if (text.includes('-----BEGIN PRIVATE KEY-----')) {
    if (!name) throw new TlogError('TLOG_KEY_INVALID', `signer key file ${file}: a PEM key needs a key name`);
    try {
      return new SignerKey(name, createPrivateKey({ key: text, format: 'pem' }));
    } catch (err) {
      if (err instanceof TlogError) throw err;
      throw new TlogError('TLOG_KEY_INVALID', `signer key file ${file}: not a valid Ed25519 PKCS#8 key`);
    }
  }
  throw new TlogError(
    'TLOG_KEY_INVALID',
    `signer key file ${file}: expected PRIVATE+KEY+... or a PKCS#8 PEM key`,
  );
}

/** Parses a verifier key: C2SP `<name>+<id>+<base64>` or SPKI PEM (then `name` is required). */
export function parseVerifierKey(text: string, name?: string): VerifierKey {
  if (text.includes('-----BEGIN PUBLIC KEY-----')) {
    if (!name) throw new TlogError('TLOG_KEY_INVALID', 'verifier key: a PEM key needs a key name');
    let k: KeyObject;
    try {
      k = createPublicKey({ key: text, format: 'pem' });
    } catch {
      throw new TlogError('TLOG_KEY_INVALID', 'verifier key: not a valid SPKI PEM key');
    }
    return new VerifierKey(name, rawPublic(k));
  }
  return VerifierKey.parse(text);
}

/** Loads a verifier key file (see {@link parseVerifierKey}). */
export function loadVerifierKey(file: string, name?: string): VerifierKey {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TlogError(
      'TLOG_IO',
      `public key file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  return parseVerifierKey(text, name);
}
