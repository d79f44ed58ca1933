#!/usr/bin/env bash
# Packs what the GPU tests and bench need on the device machine (CUDA, but no Node.js) into .device/,
# without the whole node_modules (~200 MB): koffi, tsx/esbuild, pino, typebox, fast-check and the
# @vramseal workspace links, plus the run script. From the repo root:
#   bash packages/residency/scripts/device-pack.sh
#   device run: carry [".device"], command "bash .device/enter bash .slim/gpu-run.sh"   (results in $OUT)
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
ex=$(git rev-parse --git-path info/exclude)
grep -qxF '/.slim/' "$ex" 2>/dev/null || echo '/.slim/' >> "$ex"
rm -rf .slim
mkdir -p .slim/node_modules/@vramseal
deps=$(node -e '
  const { readFileSync, existsSync } = require("node:fs");
  const seen = new Set(); const stack = process.argv.slice(1);
  while (stack.length) {
    const n = stack.pop(); if (seen.has(n) || !existsSync(`node_modules/${n}/package.json`)) continue;
    seen.add(n);
    const j = JSON.parse(readFileSync(`node_modules/${n}/package.json`, "utf8"));
    for (const d of Object.keys({ ...j.dependencies, ...j.optionalDependencies })) stack.push(d);
  }
  console.log([...seen].join("\n"));' koffi tsx pino @sinclair/typebox fast-check)
for p in $deps; do
  mkdir -p ".slim/node_modules/$(dirname "$p")"
  cp -r "node_modules/$p" ".slim/node_modules/$p"
done
cp -P node_modules/@vramseal/* .slim/node_modules/@vramseal/
cp packages/residency/scripts/gpu-run.sh .slim/gpu-run.sh
../shared/device/pack .slim
