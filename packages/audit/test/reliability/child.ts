/** How reliability tests start child processes: on the built package when it is fresh, else via tsx. */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const AUDIT = fileURLToPath(new URL('../../', import.meta.url));

function newestMtime(dir: string): number {
  let t = 0;
  for (const n of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, n.name);
    t = Math.max(t, n.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

let fresh: boolean | undefined;
/**
 * True when packages/audit/dist is at least as new as every source file (`npm test` and
 * `npm run test:reliability` build first): children then start in ~0.2 s instead of compiling with tsx.
 */
export function distIsFresh(): boolean {
  if (fresh === undefined) {
    const idx = join(AUDIT, 'dist', 'index.js');
    fresh = existsSync(idx) && statSync(idx).mtimeMs >= newestMtime(join(AUDIT, 'src'));
  }
  return fresh;
}

/** Spawns `node <script> ...args` (a .mjs importing `@vramseal/audit`). */
export function spawnNode(script: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const pre = distIsFresh() ? [] : ['--conditions=vramseal-source', '--import', 'tsx'];
  return spawn(process.execPath, [...pre, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}
