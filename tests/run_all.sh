#!/usr/bin/env bash
# tests/run_all.sh — the README's test command: install dependencies, then
#   1. the Release build with -Wall -Wextra -Werror (CUDA backend compiled
#      when nvcc is present) and every test (ctest);
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build of the same
#      tests (CPU only; the GPU kernels are not instrumented).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/jobs/setup_debian.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
# Sleeping, not spinning, OpenMP workers: many short test processes on a
# small shared machine otherwise spend their time waiting for time slices.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# Open MPI refuses to run as root without these, and more ranks than cores
# (the multi-rank tests start up to 4 on a 2-core machine) need oversubscribe.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# PMIx authenticates its local clients with munge when munge is installed; with
# munged not running (a fresh machine) every MPI_Init then waits ~2.3 s for it
# to time out, which is most of the suite's wall time. Local ranks need no
# munge: native Unix credentials do. (A Slurm test starts its own munged.)
export PMIX_MCA_psec=${PMIX_MCA_psec:-native}

echo "== Release build, -Werror"
bash "$ROOT/jobs/build.sh" "$ROOT/build" -DLLMPI_WERROR=ON
(cd "$ROOT/build" && ctest --output-on-failure)

echo "== ASan + UBSan build"
bash "$ROOT/jobs/build.sh" "$ROOT/build-asan" -DLLMPI_WERROR=ON -DLLMPI_SANITIZE=ON \
    -DLLMPI_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
# OpenBLAS and libgomp are not instrumented; their own thread-pool allocations
# are reported as leaks at exit, so leak checking stays off.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# (the Slurm tests submit the same binaries' jobs again: once, in Release, is enough)
(cd "$ROOT/build-asan" && ctest --output-on-failure -LE slurm)
echo "== all tests passed"
