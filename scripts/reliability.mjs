#!/usr/bin/env node
// `npm run test:reliability`: runs the full reliability suite (*.reliability.test.ts, full sizes,
// fresh random seeds unless VRAMSEAL_RELIABILITY_SEED is set) and prints the summary table of faults
// injected / detected / undetected / lost per category, with the machine it ran on.
//   node scripts/reliability.mjs [--json FILE] [--markdown]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const jsonIdx = args.indexOf('--json');
const jsonOut = jsonIdx >= 0 ? args[jsonIdx + 1] : undefined;
const tmp = mkdtempSync(join(tmpdir(), 'vramseal-reliability-'));
const out = join(tmp, 'rows.ndjson');
const t0 = Date.now();
const r = spawnSync(process.execPath, [join(root, 'scripts/run-tests.mjs'), '--reliability'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, VRAMSEAL_RELIABILITY: 'full', VRAMSEAL_RELIABILITY_OUT: out },
});
const minutes = ((Date.now() - t0) / 60000).toFixed(1);
const rows = existsSync(out)
  ? readFileSync(out, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  : [];
rmSync(tmp, { recursive: true, force: true });

const c = cpus();
const machine = `${c.length} × ${c[0]?.model?.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${process.platform}`;
const head = ['Category', 'Faults injected', 'Detected', 'Undetected', 'Lost', 'Notes'];
const body = rows.map((x) => [x.category, x.injected, x.detected, x.undetected, x.lost, x.note ?? '']);
const tot = rows.reduce(
  (a, x) => [a[0] + x.injected, a[1] + x.detected, a[2] + x.undetected, a[3] + x.lost],
  [0, 0, 0, 0],
);
body.push(['**total**', ...tot, '']);
const md = [
  `| ${head.join(' | ')} |`,
  `|${head.map((_, i) => (i === 0 || i === 5 ? ' --- ' : ' ---: ')).join('|')}|`,
  ...body.map((row) => `| ${row.map((v) => String(v).replaceAll('|', '\\|')).join(' | ')} |`),
].join('\n');
console.log(`\nReliability summary (full run, ${minutes} min, exit ${r.status}) on ${machine}\n`);
if (args.includes('--markdown')) console.log(md);
else {
  const cols = head.slice(0, 5);
  const w = cols.map((h, i) => Math.max(h.length, ...body.map((row) => String(row[i]).length)));
  const line = (row) =>
    row
      .slice(0, 5)
      .map((v, i) => (i === 0 ? String(v).padEnd(w[i]) : String(v).padStart(w[i])))
      .join('  ');
  console.log(line(cols));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const row of body) console.log(line(row));
  console.log('\nNotes:');
  for (const x of rows) if (x.note) console.log(`  ${x.category}: ${x.note}`);
}
if (jsonOut)
  writeFileSync(
    jsonOut,
    `${JSON.stringify({ machine, minutes: Number(minutes), exit: r.status, rows }, null, 2)}\n`,
  );
process.exit(r.status ?? 1);
