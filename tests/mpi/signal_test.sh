#!/usr/bin/env bash
# tests/mpi/signal_test.sh TARGET SIGNAL NP -- COMMAND... — a stop signal
# sent from outside reaches an agreement of all NP ranks.
# Runs COMMAND DIR in the background (COMMAND is mpirun ... test_mpi_signal
# wait), waits until every rank has written DIR/rank.R.pid, then sends
# SIGNAL to rank TARGET's process, or to mpirun itself when TARGET is
# "mpirun" (Open MPI forwards SIGUSR1/SIGUSR2 to every rank). The job must
# exit 75 (requeue) within 20 s with all NP ranks reporting the stop.
set -uo pipefail
target=$1 sig=$2 np=$3
shift 4 # the three arguments and "--"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/out" 2>/dev/null; exit 1; }
"$@" "$dir" > "$dir/out" 2>&1 &
job=$!
for _ in $(seq 300); do # up to 15 s for start-up
    [ "$(ls "$dir" | grep -c '\.pid$')" -eq "$np" ] && break
    kill -0 $job 2>/dev/null || fail "the job ended before every rank was ready"
    sleep 0.05
done
[ "$(ls "$dir" | grep -c '\.pid$')" -eq "$np" ] || { kill -KILL $job; fail "ranks not ready after 15 s"; }
if [ "$target" = mpirun ]; then pid=$job; else pid=$(cat "$dir/rank.$target.pid"); fi
start=$(date +%s%N)
kill -"$sig" "$pid" || fail "kill -$sig $pid"
for _ in $(seq 400); do # up to 20 s to agree and exit
    kill -0 $job 2>/dev/null || break
    sleep 0.05
done
if kill -0 $job 2>/dev/null; then kill -KILL $job; fail "still running 20 s after SIG$sig"; fi
wait $job
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$dir/out"
echo "--- SIG$sig to $target: exit status $rc after ${ms} ms"
[ $rc -eq 75 ] || fail "exit status $rc, expected 75 (requeue)"
n=$(grep -c "stop requested" "$dir/out")
[ "$n" -eq "$np" ] || fail "$n of $np ranks reported the stop"
echo "ok"
