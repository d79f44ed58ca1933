#!/usr/bin/env bash
# Runs on the device machine from the repo root, after `.device/enter` unpacked .slim (see device-pack.sh):
# card facts, the GPU test suite and the VRAM benchmark, each saved under $OUT.
set -uo pipefail
[ -e node_modules ] || mv .slim/node_modules node_modules
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv; date -u; node --version; } 2>&1 | tee "$OUT/card.txt"
timeout 300 node scripts/run-tests.mjs --gpu > "$OUT/test-gpu.txt" 2>&1; echo "test:gpu rc=$?"
grep -E "^(✔|✖|﹣|ℹ|#)" "$OUT/test-gpu.txt" | tail -45
grep -A15 "^✖" "$OUT/test-gpu.txt" | head -60
if [ "${BENCH:-1}" = 1 ]; then
  UV_THREADPOOL_SIZE=16 timeout 240 node --conditions=vramseal-source --import tsx packages/residency/bench/vram.ts --json \
    > "$OUT/bench.json" 2> "$OUT/bench.log"; echo "bench:vram rc=$?"; tail -20 "$OUT/bench.log"
fi
