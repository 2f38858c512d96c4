#!/usr/bin/env bash
# tests/mpi/fail_test.sh LIMIT_S WANT_RC PATTERN COUNT -- COMMAND... — run a
# multi-rank job that must end on its own and check how it ended.
#   LIMIT_S  the job must end within this many seconds (killed by timeout
#            otherwise, which fails the test: a hang)
#   WANT_RC  "nonzero", or an exact exit status
#   PATTERN  an extended regex its output (stdout + stderr) must contain
#   COUNT    how many lines must match PATTERN: a number, or "any" (>= 1)
# Prints the output and the time taken.
set -uo pipefail
limit=$1 want_rc=$2 pattern=$3 count=$4
shift 5 # the four arguments and "--"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s%N)
timeout -k 5 "$limit" "$@" > "$out" 2>&1
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$out"
echo "--- exit status $rc after ${ms} ms (limit ${limit} s)"
fail() { echo "FAIL: $*"; exit 1; }
# Not the status: mpirun itself exits 137 when a rank was killed by SIGKILL.
if [ $ms -ge $((limit * 1000)) ]; then fail "still running after ${limit} s: a hang"; fi
if [ "$want_rc" = nonzero ]; then
    [ $rc -ne 0 ] || fail "exit status 0, expected non-zero"
else
    [ $rc -eq "$want_rc" ] || fail "exit status $rc, expected $want_rc"
fi
n=$(grep -cE -- "$pattern" "$out")
if [ "$count" = any ]; then
    [ "$n" -ge 1 ] || fail "no line matches /$pattern/"
else
    [ "$n" -eq "$count" ] || fail "$n lines match /$pattern/, expected $count"
fi
echo "ok"
