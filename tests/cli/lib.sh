# tests/cli/lib.sh — shared prologue of the command-line tests. Source it as
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
# with the test's arguments LLMPI SOURCE_DIR CASE. It sets LLMPI, SRC, CASE,
# a scratch directory WORK (removed on exit), a small OpenMP setup, and the
# helpers below.
set -euo pipefail
LLMPI=$1
SRC=$2
CASE=$3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=2
# sleeping workers: these tests run many short processes on shared cores
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_error PATTERN CMD...: CMD must exit non-zero and print a message
# matching the extended regex PATTERN (stdout and stderr, kept in $WORK/out.txt).
expect_error() {
    local pattern=$1; shift
    local rc=0
    "$@" > "$WORK/out.txt" 2>&1 || rc=$?
    cat "$WORK/out.txt"
    [ "$rc" -ne 0 ] || fail "expected a non-zero exit from: $*"
    grep -qE -- "$pattern" "$WORK/out.txt" || fail "expected a message matching '$pattern'"
}

# expect_one PATTERN CMD...: a multi-rank command that fails on bad input
# must exit 1 (every rank exited 1 together, no MPI_ABORT) with exactly one
# message, matching the extended regex PATTERN (kept in $WORK/out.txt).
expect_one() {
    local pattern=$1 rc=0; shift
    "$@" > "$WORK/out.txt" 2>&1 || rc=$?
    cat "$WORK/out.txt"
    [ $rc -eq 1 ] || fail "exit status $rc, expected 1 from: $*"
    grep -qE -- "$pattern" "$WORK/out.txt" || fail "expected a message matching '$pattern'"
    [ "$(grep -c 'error:' "$WORK/out.txt")" -eq 1 ] || fail "expected one error message"
    ! grep -q "MPI_ABORT" "$WORK/out.txt" || fail "aborted instead of exiting together"
}

# project_text FILE: the project's own C sources as training text (always
# present, no download).
project_text() {
    cat "$SRC"/src/common/*.c "$SRC"/src/train/*.c "$SRC"/kernels/cpu/*.c > "$1"
}
