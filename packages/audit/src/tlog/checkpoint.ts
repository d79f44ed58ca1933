/**
 * Signed checkpoints: the C2SP tlog-checkpoint text format inside a C2SP signed note.
 *
 * Checkpoint body (c2sp.org/tlog-checkpoint), every line ending in U+000A:
 *
 *   <origin>                       unique log identity, e.g. "vramseal/worker-1"
 *   <tree size>                    decimal, no leading zeros = number of records (= last seq)
 *   <root hash>                    standard base64 of the 32-byte RFC 9162 root
 *   time <RFC 3339 UTC>            vramseal extension line: when the checkpoint was signed
 *
 * Signed note (c2sp.org/signed-note): the body, a blank line, then one line per signature:
 *
 *   — <key name> <base64(4-byte key id || 64-byte Ed25519 signature over the body)>
 *
 * A trail's `checkpoints` file is the concatenation of its signed notes, each followed by one blank line.
 */
import { createHash, verify as cryptoVerify } from 'node:crypto';
import { TlogError } from './errors.js';
import type { SignerKey, VerifierKey } from './keys.js';
import { HASH_SIZE } from './merkle.js';

export const CHECKPOINTS_FILE = 'checkpoints';
const SIG_PREFIX = '\u2014 ';
const MAX_NOTE_BYTES = 1 << 16;
const MAX_SIGNATURES = 16;

/** A checkpoint's content. */
export interface Checkpoint {
  origin: string;
  /** Number of leaves (records) the root commits to. */
  size: number;
  /** RFC 9162 root hash, 32 bytes. */
  root: Buffer;
  /** RFC 3339 time from the `time` extension line, when present. */
  time?: string;
  /** Every extension line as written (including `time ...`). */
  extensions: string[];
}

/** A checkpoint whose signature was verified, with its exact signed-note text. */
export interface VerifiedCheckpoint extends Checkpoint {
  note: string;
  /** Lowercase hex SHA-256 of the note bytes (what `audit.checkpoint` records as checkpoint_hash). */
  noteHash: string;
}

function bad(msg: string): never {
  throw new TlogError('TLOG_CHECKPOINT_INVALID', msg);
}

function checkLine(what: string, s: string): void {
  if (s.length === 0) bad(`checkpoint: ${what} must not be empty`);
  // Signed notes must not contain control characters other than newline (C2SP signed-note §Format).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
  if (/[\u0000-\u001f\u007f]/.test(s)) bad(`checkpoint: ${what} must not contain control characters`);
}

/** The checkpoint body text (what gets signed). */
export function formatCheckpoint(cp: Omit<Checkpoint, 'extensions'> & { extensions?: string[] }): string {
  checkLine('origin', cp.origin);
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) bad('checkpoint: size must be a non-negative integer');
  if (cp.root.length !== HASH_SIZE) bad('checkpoint: root hash must be 32 bytes');
  const ext = [...(cp.extensions ?? [])];
  if (cp.time !== undefined && !ext.some((e) => e.startsWith('time '))) ext.unshift(`time ${cp.time}`);
  for (const e of ext) checkLine('extension line', e);
  return `${cp.origin}\n${cp.size}\n${cp.root.toString('base64')}\n${ext.map((e) => `${e}\n`).join('')}`;
}

/** Parses a checkpoint body (the signed note's text, already verified). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) bad('checkpoint: text must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) bad('checkpoint: needs origin, tree size and root hash lines');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  checkLine('origin', origin);
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    bad('checkpoint: tree size must be a decimal integer without leading zeros');
  }
  const root = Buffer.from(rootText, 'base64');
  if (root.length !== HASH_SIZE || root.toString('base64') !== rootText) {
    bad('checkpoint: root hash must be the standard base64 of 32 bytes');
  }
  let time: string | undefined;
  for (const e of extensions) {
    checkLine('extension line', e);
    if (e.startsWith('time ') && time === undefined) time = e.slice(5);
  }
  const cp: Checkpoint = { origin, size: Number(sizeText), root, extensions };
  if (time !== undefined) cp.time = time;
  return cp;
}

/** C2SP signed-note: `text` followed by a blank line and one signature line per signer. */
export function signNote(text: string, signers: readonly SignerKey[]): string {
  if (!text.endsWith('\n')) throw new TlogError('TLOG_BAD_INPUT', 'note: text must end with a newline');
  if (signers.length === 0) throw new TlogError('TLOG_BAD_INPUT', 'note: at least one signer is required');
  const msg = Buffer.from(text, 'utf8');
  let out = `${text}\n`;
  for (const s of signers) {
    const sig = Buffer.concat([s.keyId, s.sign(msg)]);
    out += `${SIG_PREFIX}${s.name} ${sig.toString('base64')}\n`;
  }
  return out;
}

/** A signed note split into its text and signature lines (nothing verified yet). */
export interface ParsedNote {
  text: string;
  signatures: { name: string; keyId: Buffer; signature: Buffer }[];
}

/** Splits a signed note (C2SP signed-note §Format); throws `TLOG_CHECKPOINT_INVALID` when malformed. */
export function parseNote(note: string): ParsedNote {
  if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) bad('note: larger than 64 KiB');
  if (note.includes('\uFFFD')) bad('note: must be valid UTF-8');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(note)) bad('note: must not contain control characters');
  if (!note.endsWith('\n')) bad('note: must end with a newline');
  // The signatures start after the last blank line.
  const split = note.lastIndexOf('\n\n');
  if (split < 0) bad('note: no blank line between text and signatures');
  const text = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2, -1).split('\n');
  if (sigLines.length > MAX_SIGNATURES) bad(`note: more than ${MAX_SIGNATURES} signatures`);
  const signatures: ParsedNote['signatures'] = [];
  for (const line of sigLines) {
    if (!line.startsWith(SIG_PREFIX)) bad('note: signature lines must start with "\u2014 "');
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.lastIndexOf(' ');
    if (sp <= 0) bad('note: signature line must be "\u2014 <name> <base64>"');
    const name = rest.slice(0, sp);
    const b64 = rest.slice(sp + 1);
    const raw = Buffer.from(b64, 'base64');
    if (raw.length < 5 || raw.toString('base64') !== b64)
      bad('note: signature must be base64 of key id || signature');
    signatures.push({ name, keyId: raw.subarray(0, 4), signature: raw.subarray(4) });
  }
  return { text, signatures };
}

/**
 * Opens a signed note with a trusted key (C2SP signed-note §Signatures): signatures from unknown keys
 * (name or key id differ) are ignored; a signature from the known key must verify; at least one must.
 * Returns the verified text. Throws `TLOG_SIGNATURE_INVALID`.
 */
export function openNote(note: string, key: VerifierKey): string {
  const parsed = parseNote(note);
  const msg = Buffer.from(parsed.text, 'utf8');
  let ok = false;
  for (const s of parsed.signatures) {
    if (s.name !== key.name || !s.keyId.equals(key.keyId)) continue;
    if (s.signature.length !== 64 || !cryptoVerify(null, msg, key.keyObject, s.signature)) {
      throw new TlogError('TLOG_SIGNATURE_INVALID', `note: the signature by ${key.name} does not verify`);
    }
    ok = true;
  }
  if (!ok) {
    throw new TlogError(
      'TLOG_SIGNATURE_INVALID',
      `note: not signed by the trusted key ${key.name}+${key.keyId.toString('hex')}`,
    );
  }
  return parsed.text;
}

/** Signs a checkpoint; returns the signed note. */
export function signCheckpoint(
  cp: Omit<Checkpoint, 'extensions'> & { extensions?: string[] },
  signer: SignerKey,
): string {
  return signNote(formatCheckpoint(cp), [signer]);
}

/**
 * Verifies a signed checkpoint with `key` and parses it. With `origin`, the checkpoint must name it.
 * Throws `TLOG_SIGNATURE_INVALID` or `TLOG_CHECKPOINT_INVALID`.
 */
export function verifyCheckpoint(
  note: string,
  key: VerifierKey,
  opts: { origin?: string } = {},
): VerifiedCheckpoint {
  const text = openNote(note, key);
  const cp = parseCheckpoint(text);
  if (opts.origin !== undefined && cp.origin !== opts.origin) {
    bad(`checkpoint: origin is ${JSON.stringify(cp.origin)}, expected ${JSON.stringify(opts.origin)}`);
  }
  return { ...cp, note, noteHash: createHash('sha256').update(note, 'utf8').digest('hex') };
}

/**
 * Splits a `checkpoints` file (signed notes, each followed by a blank line) into the notes, in order.
 * A single note file (no trailing blank line) works too. A torn last entry is ignored.
 */
export function splitNotes(fileText: string): string[] {
  const notes: string[] = [];
  const lines = fileText.split('\n');
  let cur: string[] = [];
  let inSigs = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (inSigs) {
      if (line.startsWith(SIG_PREFIX)) {
        cur.push(line);
        continue;
      }
      notes.push(`${cur.join('\n')}\n`);
      cur = [];
      inSigs = false;
      if (line === '') continue; // the separator after a note
    }
    if (line === '' && cur.length > 0 && (lines[i + 1] ?? '').startsWith(SIG_PREFIX)) {
      cur.push('');
      inSigs = true;
      continue;
    }
    if (line !== '' || cur.length > 0) cur.push(line);
  }
  if (inSigs && cur.length > 0) notes.push(`${cur.join('\n')}\n`);
  return notes;
}
