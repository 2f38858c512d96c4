#!/usr/bin/env bash
# jobs/gpu_check.sh [OUT_DIR] — on a machine with an NVIDIA GPU: build with
# the CUDA backend, run every test (the GPU suites included) and the training
# benchmark on the GPU and the CPU. Logs and JSON results go to OUT_DIR
# (default runs/gpu_check). Keeps going after a failure so that one run
# reports everything; exits non-zero if any step failed.
#   CUDA_ARCH   CUDA architectures to build for (default 90)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/runs/gpu_check}
mkdir -p "$OUT"
failed=0
step() { echo "== $*"; }

step "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; nproc; } 2>&1 | tee "$OUT/machine.txt"

step "build (CUDA ON, sm_${CUDA_ARCH:-90})"
if ! bash "$ROOT/jobs/build.sh" "$ROOT/build-gpu" -DLLMPI_CUDA=ON -DLLMPI_WERROR=ON \
        -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" > "$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"; echo "build failed"; exit 1
fi

step "ctest -L gpu"
(cd "$ROOT/build-gpu" && ctest -L gpu --output-on-failure) > "$OUT/ctest_gpu.log" 2>&1 || failed=1
tail -15 "$OUT/ctest_gpu.log"
# Criterion's own summary lines, to show the GPU tests ran rather than skipped
"$ROOT/build-gpu/tests/test_cuda_vs_cpu" -j1 --verbose 2>&1 | grep -E "RUN|PASS|FAIL|SKIP|Synthesis" > "$OUT/cuda_vs_cpu.txt"
tail -14 "$OUT/cuda_vs_cpu.txt"

step "ctest (everything)"
(cd "$ROOT/build-gpu" && ctest -LE gpu --output-on-failure) > "$OUT/ctest_all.log" 2>&1 || failed=1
tail -6 "$OUT/ctest_all.log"
"$ROOT/build-gpu/tests/test_ops_grad" -j1 --verbose 2>&1 | grep -E "Synthesis|FAIL|SKIP" | tail -5 | tee "$OUT/ops_grad_summary.txt"

step "bench train"
B="$ROOT/build-gpu/llmpi"
{
  "$B" bench train --device cuda --model gpt2 --vocab 50257 --batch 8 --seq 1024 --steps 10 --json
  "$B" bench train --device cuda --model gpt2 --vocab 50257 --batch 4 --seq 1024 --steps 10 --json
  "$B" bench train --device cuda --model gpt2-mini --batch 8 --seq 256 --steps 20 --json
  "$B" bench train --device cpu --model gpt2-mini --batch 8 --seq 256 --steps 5 --threads "$(nproc)" --json
} 2>&1 | tee "$OUT/bench.jsonl" || failed=1
exit $failed
