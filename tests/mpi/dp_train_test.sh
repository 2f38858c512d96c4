#!/usr/bin/env bash
# tests/mpi/dp_train_test.sh LLMPI SOURCE_DIR CASE MPIEXEC — DP x TP
# `llmpi train` under mpirun (docs/distributed.md, "Data-parallel training"
# and "Tensor-parallel training").
# Each CASE is one ctest (label mpi):
#   equiv_OPT  (OPT sgd, adam, adamw) the same seed and global batch on 1
#              rank, DP2 (small buckets: many overlapped allreduces), DP4
#              (one bucket), ZeRO-1 at DP2 and DP4, DP1xTP2, DP2xTP2 (with
#              and without ZeRO-1) and DP1xTP4 log the same loss, grad norm
#              and val loss at every step of a 20-step tiny run, to a
#              relative tolerance of 1e-5 (the largest difference seen is
#              printed)
#   resume     a DP2 ZeRO-1 run's step-10 checkpoint resumed at DP1 and at
#              DP4 (with and without ZeRO-1) continues the same curve; a
#              DP2xTP2 run's step-10 checkpoint resumed at DP1xTP4 and at
#              DP4xTP1 too
#   signal     SIGUSR1 to mpirun mid-run of a DP2 run: exit 75 within 20 s
#              with a checkpoint; resuming from it completes the same curve,
#              bit for bit, as an uninterrupted DP2 run, and the metrics file
#              covers every step once
#   fail       bad input seen by one rank, by every rank, and a NaN: every
#              rank exits 1 promptly (< 30 s) with one message naming the rank
# OMP_NUM_THREADS=1 per rank: ranks share the 2 cores.
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$@"
MPIEXEC=$4
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
project_text "$WORK/text.txt"
cd "$WORK"
mpi() { local np=$1; shift; "$MPIEXEC" -np "$np" --oversubscribe "$LLMPI" "$@"; }

# compare TOL A B [FROM]: every step of B (from FROM) has the same loss,
# grad_norm and val_loss as A's within relative TOL; prints the largest
# relative difference. B must cover steps FROM..last of A.
compare() { python3 - "$@" <<'PY'
import json, sys
tol, a, b = float(sys.argv[1]), sys.argv[2], sys.argv[3]
frm = int(sys.argv[4]) if len(sys.argv) > 4 else 1
A = {r["step"]: r for r in map(json.loads, open(a))}
B = {r["step"]: r for r in map(json.loads, open(b))}
want = [s for s in sorted(A) if s >= frm]
assert sorted(s for s in B if s >= frm) == want, f"{b}: steps {sorted(B)} != {want}"
worst = {}
for s in want:
    for k in ("loss", "grad_norm", "val_loss", "lr"):
        if k not in A[s] and k not in B[s]: continue
        x, y = A[s][k], B[s][k]
        d = abs(x - y) / max(abs(x), 1e-30)
        if d > worst.get(k, (0, 0))[0]: worst[k] = (d, s)
        if d > tol: sys.exit(f"FAIL: {b} step {s} {k} {y!r} vs {a} {x!r}: rel diff {d:.3g} > {tol}")
print(f"  {b} vs {a}: max rel diff " + ", ".join(f"{k} {d:.2e} (step {s})" for k, (d, s) in sorted(worst.items())))
PY
}

tiny=(--model tiny --data text.txt --batch 8 --seq 32 --steps 20 --lr 1e-3 --warmup 3
      --eval-every 5 --eval-batches 2 --log-every 10)
TOL=1e-5

case "$CASE" in
equiv_*)
    opt=${CASE#equiv_}
    "$LLMPI" train "${tiny[@]}" --optimizer $opt --metrics dp1.jsonl
    mpi 2 train "${tiny[@]}" --optimizer $opt --metrics dp2.jsonl --bucket-mb 0.01
    mpi 4 train "${tiny[@]}" --optimizer $opt --metrics dp4.jsonl
    mpi 2 train "${tiny[@]}" --optimizer $opt --metrics z2.jsonl --zero 1
    mpi 4 train "${tiny[@]}" --optimizer $opt --metrics z4.jsonl --zero 1 --bucket-mb 0.01
    mpi 2 train "${tiny[@]}" --optimizer $opt --metrics tp2.jsonl --tp 2
    mpi 4 train "${tiny[@]}" --optimizer $opt --metrics dp2tp2.jsonl --tp 2 --bucket-mb 0.01
    mpi 4 train "${tiny[@]}" --optimizer $opt --metrics zdp2tp2.jsonl --tp 2 --zero 1
    mpi 4 train "${tiny[@]}" --optimizer $opt --metrics tp4.jsonl --tp 4
    for f in dp2 dp4 z2 z4 tp2 dp2tp2 zdp2tp2 tp4; do compare $TOL dp1.jsonl $f.jsonl; done
    compare $TOL dp2.jsonl z2.jsonl   # ZeRO-1 against plain DP at the same width
    compare $TOL dp4.jsonl z4.jsonl
    compare $TOL dp2tp2.jsonl zdp2tp2.jsonl
    ;;
resume)
    mpi 2 train "${tiny[@]}" --zero 1 --metrics full.jsonl --ckpt-dir full --ckpt-every 10
    [ -e full/ckpt_00000010.h5 ] || fail "no step-10 checkpoint"
    "$LLMPI" train --data text.txt --resume full/ckpt_00000010.h5 --metrics r1.jsonl
    mpi 4 train --data text.txt --resume full/ckpt_00000010.h5 --metrics r4.jsonl
    mpi 4 train --data text.txt --resume full/ckpt_00000010.h5 --metrics r4z.jsonl --zero 1
    for f in r1 r4 r4z; do compare $TOL full.jsonl $f.jsonl 11; done
    # saved by DP2 x TP2 (each TP rank of DP rank 0 writes its hyperslabs),
    # resumed at DP1 x TP4 and DP4 x TP1 (each rank reads its own)
    mpi 4 train "${tiny[@]}" --tp 2 --metrics tfull.jsonl --ckpt-dir tfull --ckpt-every 10
    [ -e tfull/ckpt_00000010.h5 ] || fail "no step-10 checkpoint from DP2 x TP2"
    mpi 4 train --data text.txt --resume tfull/ckpt_00000010.h5 --tp 4 --metrics t14.jsonl
    mpi 4 train --data text.txt --resume tfull/ckpt_00000010.h5 --metrics t41.jsonl
    mpi 2 train --data text.txt --resume tfull/ckpt_00000010.h5 --tp 2 --zero 1 --metrics t12.jsonl
    for f in t14 t41 t12; do compare $TOL tfull.jsonl $f.jsonl 11; done
    compare $TOL full.jsonl tfull.jsonl   # the TP run is the DP run's curve too
    # a layout the checkpoint's model cannot split into: one message, exit 1
    expect_error "^llmpi train: rank 0: error: tp: --tp 3 does not divide the heads" \
        mpi 3 train --data text.txt --resume tfull/ckpt_00000010.h5 --tp 3
    [ "$(grep -c 'error:' "$WORK/out.txt")" -eq 1 ] || fail "expected one error message"
    ;;
signal)
    long=(--model tiny --data text.txt --batch 4 --seq 16 --steps 1500 --lr 1e-3 --warmup 3
          --eval-batches 1 --log-every 500 --optimizer adam)
    # the reference: the same layout uninterrupted (over 1500 steps the
    # rounding differences between layouts grow past 1e-5; the equiv cases
    # bound them over 20 steps), so the resumed curve must match it exactly
    mpi 2 train "${long[@]}" --metrics ref.jsonl 2> /dev/null
    # mpirun itself in the background (not a subshell), so the signal reaches it
    "$MPIEXEC" -np 2 --oversubscribe "$LLMPI" train "${long[@]}" --metrics run.jsonl \
        --ckpt-dir ck > out.txt 2>&1 &
    job=$!
    for _ in $(seq 300); do # up to 15 s until 20 steps are logged
        [ "$(cat run.jsonl.partial 2>/dev/null | wc -l)" -ge 20 ] && break
        kill -0 $job 2>/dev/null || { cat out.txt; fail "the run ended early"; }
        sleep 0.05
    done
    start=$(date +%s%N)
    kill -USR1 $job
    for _ in $(seq 400); do kill -0 $job 2>/dev/null || break; sleep 0.05; done
    kill -0 $job 2>/dev/null && { kill -KILL $job; fail "still running 20 s after SIGUSR1"; }
    rc=0; wait $job || rc=$?
    cat out.txt
    echo "--- exit $rc after $(( ($(date +%s%N) - start) / 1000000 )) ms"
    [ $rc -eq 75 ] || fail "exit status $rc, expected 75 (requeue)"
    grep -q "stop signal SIGUSR1: stopped after step" out.txt || fail "no stop message"
    [ "$(grep -c 'stop signal' out.txt)" -eq 1 ] || fail "expected one stop message (rank 0's)"
    ls ck/ckpt_*.h5 > /dev/null || fail "no checkpoint written"
    [ -e run.jsonl.partial ] && [ ! -e run.jsonl ] || fail "expected run.jsonl.partial only"
    mpi 2 train --data text.txt --ckpt-dir ck --resume --metrics run.jsonl 2> out2.txt
    grep "resuming from" out2.txt
    compare 0 ref.jsonl run.jsonl
    ;;
fail)
    # one rank's own bad input: rank 1 runs in a directory without text.txt
    mkdir -p r0 r1 && cp text.txt r0/
    t0=$(date +%s)
    expect_error "^llmpi train: rank 1: error: .*text.txt" \
        "$MPIEXEC" --oversubscribe -np 1 -wdir r0 "$LLMPI" train "${tiny[@]}" : \
        -np 1 -wdir r1 "$LLMPI" train "${tiny[@]}"
    [ "$(grep -c 'error:' "$WORK/out.txt")" -eq 1 ] || fail "expected one error message"
    # every rank sees it: one message, rank 0's, naming both numbers
    expect_error "^llmpi train: rank 0: error: --batch 6 .* 4 data-parallel ranks" \
        mpi 4 train "${tiny[@]}" --batch 6
    [ "$(grep -c 'error:' "$WORK/out.txt")" -eq 1 ] || fail "expected one error message"
    # layouts that do not fit: TP not dividing the world, the heads (tiny
    # has 4) or the MLP width
    expect_error "^llmpi train: rank 0: error: topo: --tp 3 does not divide the world size 4" \
        mpi 4 train "${tiny[@]}" --tp 3
    [ "$(grep -c 'error:' "$WORK/out.txt")" -eq 1 ] || fail "expected one error message"
    expect_error "^llmpi train: error: topo: --tp 2 does not divide the world size 1" \
        "$LLMPI" train "${tiny[@]}" --tp 2
    expect_error "^llmpi train: rank 0: error: tp: --tp 3 does not divide the heads \(n_head = 4\)" \
        mpi 3 train "${tiny[@]}" --tp 3
    [ "$(grep -c 'error:' "$WORK/out.txt")" -eq 1 ] || fail "expected one error message"
    # different command lines on different ranks (MPMD)
    expect_error "^llmpi train: rank 0: error: the ranks were started with different command lines" \
        "$MPIEXEC" --oversubscribe -np 1 "$LLMPI" train "${tiny[@]}" : -np 1 "$LLMPI" train "${tiny[@]}" --seed 2
    # a diverging run: the global loss is NaN/inf on every rank at the same step
    expect_error "^llmpi train: rank 0: error: loss is (NaN|infinite) at step" \
        mpi 2 train "${tiny[@]}" --optimizer sgd --lr 1000 --grad-clip 0 --metrics nan.jsonl
    [ ! -e nan.jsonl ] && [ ! -e nan.jsonl.partial ] || fail "a failed run left a metrics file"
    el=$(( $(date +%s) - t0 ))
    echo "--- failure cases took ${el} s"
    [ $el -lt 30 ] || fail "failures took ${el} s"
    ;;
*) fail "unknown case $CASE" ;;
esac
echo ok
