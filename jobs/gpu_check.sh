#!/usr/bin/env bash
# jobs/gpu_check.sh [OUT_DIR] — on a machine with an NVIDIA GPU: build with
# the CUDA backend, run the GPU tests (CUDA ops, training and decoding
# against the CPU backend; finite differences on the CUDA backend) and the
# training and generation benchmarks on the GPU. Logs and JSON results go to
# OUT_DIR (default runs/gpu_check). Keeps going after a failure so that one
# run reports everything; exits non-zero if any step failed.
#   CUDA_ARCH   CUDA architectures to build for (default 90)
#   FULL=1      also run the whole CPU suite there
#   NO_BENCH=1  skip the benchmarks
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/runs/gpu_check}
mkdir -p "$OUT"
failed=0
step() { echo "== $*"; }

step "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nvcc --version | tail -1; nproc; } 2>&1 | tee "$OUT/machine.txt"

step "build (CUDA ON, sm_${CUDA_ARCH:-90})"
extra=()
# Debian's parallel (Open MPI) HDF5 unpacked under a private prefix
# (.devdeps): FindHDF5 searches only HDF5_ROOT itself once that is set and
# finds no h5pcc there (dpkg -x makes no h5pcc -> h5pcc.openmpi alternative),
# so name the files; it then reads H5pubconf.h to see that the build is
# parallel, which CMakeLists.txt requires.
if [ -n "${HDF5_ROOT:-}" ] && [ -f "$HDF5_ROOT/include/hdf5/openmpi/hdf5.h" ]; then
    # and skip pkg-config: the unpacked .pc files still point into /usr
    extra=(-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=TRUE -DHDF5_C_INCLUDE_DIR="$HDF5_ROOT/include/hdf5/openmpi"
           -DHDF5_hdf5_LIBRARY_RELEASE="$HDF5_ROOT/lib/x86_64-linux-gnu/hdf5/openmpi/libhdf5.so")
fi
if ! bash "$ROOT/jobs/build.sh" "$ROOT/build-gpu" -DLLMPI_CUDA=ON -DLLMPI_WERROR=ON \
        -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" "${extra[@]}" > "$OUT/build.log" 2>&1; then
    grep -iE "error|not found|could not" "$OUT/build.log" | head -30; tail -15 "$OUT/build.log"
    echo "build failed"; exit 1
fi

step "GPU tests"
T="$ROOT/build-gpu/tests"
{
  for t in test_cuda_vs_cpu test_generate test_ops_grad test_xent_shard test_bf16 \
           test_attention_paged test_kvpool; do
    timeout 240 "$T/$t" -j1 --verbose 2>&1 | grep -E "FAIL|SKIP|Synthesis|cuda" || true
  done
} > "$OUT/gpu_tests.txt" 2>&1
grep -E "Synthesis|FAIL" "$OUT/gpu_tests.txt"
grep -q "FAIL" "$OUT/gpu_tests.txt" && failed=1

step "ctest -L gpu (also NCCL on one rank: mpi_nccl_np1, cli_train_gpu_nccl)"
(cd "$ROOT/build-gpu" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    ctest -L gpu --output-on-failure) > "$OUT/ctest_gpu.log" 2>&1 || failed=1
tail -6 "$OUT/ctest_gpu.log"

if [ "${FULL:-0}" = 1 ]; then
  step "ctest (CPU suite)"
  (cd "$ROOT/build-gpu" && ctest -LE gpu --output-on-failure) > "$OUT/ctest_all.log" 2>&1 || failed=1
  tail -4 "$OUT/ctest_all.log"
fi

[ "${NO_BENCH:-0}" = 1 ] && exit $failed

step "benchmarks"
B="$ROOT/build-gpu/llmpi"
{
  timeout 300 "$B" selftest --json
  timeout 60 "$B" bench train --device cuda --model gpt2 --vocab 50257 --batch 8 --seq 1024 --steps 10 --json
  timeout 60 "$B" bench train --device cuda --dtype bf16 --model gpt2 --vocab 50257 --batch 8 --seq 1024 --steps 10 --json
  timeout 60 "$B" bench generate --device cuda --model gpt2 --vocab 50257 --prompt-tokens 128 --tokens 128 --json
  timeout 60 "$B" bench generate --device cuda --model gpt2 --vocab 50257 --prompt-tokens 512 --tokens 128 --json
} 2>&1 | tee "$OUT/bench.jsonl"
grep -q '"tokens_per_s"' "$OUT/bench.jsonl" || failed=1
exit $failed
