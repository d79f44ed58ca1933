/**
 * Confinement of model paths to `--models-dir`.
 *
 * A requested model path is accepted only when BOTH its lexical resolution against the models
 * directory and its real path (every symlink resolved) lie inside the real path of the models
 * directory, and it names a regular file. `..` segments that climb out, absolute paths elsewhere,
 * symlinks (anywhere in the path) that point outside, NUL bytes and control characters are refused.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, readlink, realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';

export type ConfineResult =
  | { ok: true; path: string; bytes: number }
  | { ok: false; kind: 'traversal' | 'invalid' | 'not_found' | 'not_file'; reason: string };

/** True when `child` is `root` itself or below it (both absolute, normalized). */
export function isInside(root: string, child: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** Resolves `--models-dir` once at start-up (it must exist and be a directory). */
export async function resolveModelsDir(dir: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      `--models-dir ${dir}: ${code === 'ENOENT' ? 'no such directory' : (code ?? 'cannot resolve')}`,
    );
  }
  const st = await stat(real);
  if (!st.isDirectory()) throw new Error(`--models-dir ${dir}: not a directory`);
  return real;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Confines `requested` (relative to `rootReal`, or absolute) to `rootReal` (already a real path).
 */
export async function confineModelPath(rootReal: string, requested: string): Promise<ConfineResult> {
  if (requested.length === 0 || requested.length > 4096)
    return { ok: false, kind: 'invalid', reason: 'model must be 1-4096 characters' };
  if (CONTROL_RE.test(requested))
    return { ok: false, kind: 'invalid', reason: 'model must not contain NUL or control characters' };
  const lexical = resolve(rootReal, requested);
  if (!isInside(rootReal, lexical) || lexical === rootReal)
    return { ok: false, kind: 'traversal', reason: 'path resolves outside the models directory' };
  let real: string;
  try {
    real = await realpath(lexical);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      return { ok: false, kind: 'not_found', reason: 'no such model file' };
    if (code === 'ELOOP') return { ok: false, kind: 'traversal', reason: 'symlink loop' };
    return { ok: false, kind: 'invalid', reason: `cannot resolve path (${code ?? 'error'})` };
  }
  if (!isInside(rootReal, real) || real === rootReal)
    return { ok: false, kind: 'traversal', reason: 'a symlink leads outside the models directory' };
  const st = await stat(real);
  if (!st.isFile()) return { ok: false, kind: 'not_file', reason: 'model is not a regular file' };
  return { ok: true, path: real, bytes: st.size };
}

export interface PinnedModel {
  /** What to open for reading: `/proc/self/fd/N` on Linux (the very file checked), else the real path. */
  path: string;
  bytes: number;
  close(): Promise<void>;
}

/**
 * Closes the check-then-open race of {@link confineModelPath}: opens the confined real path without
 * following a final symlink, then (Linux) asks the kernel which file the descriptor really is
 * (`/proc/self/fd/N`) and checks that it is still inside the models directory. The returned path
 * re-opens that same open file, whatever happens to the directory tree meanwhile. Elsewhere the
 * real path is returned (a residual race remains there).
 */
export async function pinModel(rootReal: string, realPath: string): Promise<PinnedModel | ConfineResult> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: a FIFO swapped in after the check must not block the open (no effect on regular files).
    fh = await open(realPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP')
      return { ok: false, kind: 'traversal', reason: 'the model was replaced by a symlink' };
    if (code === 'ENOENT') return { ok: false, kind: 'not_found', reason: 'no such model file' };
    return { ok: false, kind: 'invalid', reason: `cannot open (${code ?? 'error'})` };
  }
  const close = () => fh.close();
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      await close();
      return { ok: false, kind: 'not_file', reason: 'model is not a regular file' };
    }
    if (process.platform !== 'linux') return { path: realPath, bytes: st.size, close };
    const fdPath = `/proc/self/fd/${fh.fd}`;
    const actual = await readlink(fdPath);
    if (!isInside(rootReal, actual)) {
      await close();
      return { ok: false, kind: 'traversal', reason: 'the model was moved outside the models directory' };
    }
    return { path: fdPath, bytes: st.size, close };
  } catch (err) {
    await close();
    throw err;
  }
}
