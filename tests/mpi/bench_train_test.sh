#!/usr/bin/env bash
# tests/mpi/bench_train_test.sh LLMPI SOURCE_DIR CASE MPIEXEC — `llmpi bench
# train` under mpirun (src/train/bench_train.c) with the tiny model, a few
# seconds per case. Each CASE is one ctest (label mpi). Timings are printed,
# never asserted; what is checked is the layout, the arithmetic between the
# reported fields and the loss:
#   dp2        np 2 (DP 2): --json has ranks 2, dp 2, tp 1, global batch 2 x
#              --batch, tokens/s = global batch x seq / step time, per-rank
#              tokens/s = tokens/s / 2, comm share in [0, 1], no TP time;
#              the text report names the layout; --zero 1 and small buckets
#              give the same loss as the default
#   tp2        np 2 --tp 2 (DP 1): no DP time, and the loss equals that of
#              the same benchmark in one process (same tokens, same model)
#   dp2_tp2    np 4 --tp 2 (DP 2 x TP 2): the loss equals DP 2's
#   bad        --tp 3 at np 2, an unknown flag, a --seq beyond the context,
#              --zero 2, different flags on different ranks: one message,
#              exit 1 on every rank (no abort), within 30 s in all
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$@"
MPIEXEC=$4
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$WORK"
mpi() { local np=$1; shift; timeout 60 "$MPIEXEC" -np "$np" --oversubscribe "$LLMPI" "$@"; }
tiny=(bench train --model tiny --batch 2 --seq 32 --steps 3 --warmup-steps 1 --threads 1)

# check_json FILE RANKS DP TP: the fields and the arithmetic between them.
check_json() { python3 - "$@" <<'PY'
import json, math, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
ranks, dp, tp = map(int, sys.argv[2:5])
assert (j["ranks"], j["dp"], j["tp"]) == (ranks, dp, tp), j
assert j["bench"] == "train" and j["batch"] == 2 and j["seq"] == 32 and j["threads"] == 1, j
assert j["global_batch"] == dp * j["batch"], j
for k in ("ms_per_step", "tokens_per_s", "tokens_per_s_per_rank", "gflops", "gflops_per_rank"):
    assert j[k] > 0, (k, j)
close = lambda a, b: abs(a - b) <= 0.002 * abs(b) + 0.2
assert close(j["tokens_per_s"], j["global_batch"] * j["seq"] / (j["ms_per_step"] / 1e3)), j
assert close(j["tokens_per_s_per_rank"] * ranks, j["tokens_per_s"]), j
assert abs(j["gflops_per_rank"] * ranks - j["gflops"]) <= 1e-3 * j["gflops"], j
assert 0.0 <= j["comm_share"] <= 1.0, j
for k in ("comm_ms_per_step", "tp_comm_ms_per_step", "dp_comm_ms_per_step"):
    assert j[k] >= 0, (k, j)
assert abs(j["comm_ms_per_step"] - j["tp_comm_ms_per_step"] - j["dp_comm_ms_per_step"]) <= 0.002, j
assert abs(j["comm_share"] - j["comm_ms_per_step"] / j["ms_per_step"]) <= 0.002, j
if tp == 1: assert j["tp_comm_ms_per_step"] == 0, j
else: assert j["tp_comm_ms_per_step"] > 0, j  # TP collectives did run
if dp == 1: assert j["dp_comm_ms_per_step"] == 0, j
assert math.isfinite(j["loss"]) and 4.0 < j["loss"] < 7.0, j  # ~ln 256 on random tokens
print(f"  json ok: {ranks} ranks = DP {dp} x TP {tp}, comm share {j['comm_share']:.3f}")
PY
}

# same_loss A B: the two runs' losses agree to float tolerance.
same_loss() { python3 - "$@" <<'PY'
import json, sys
a, b = (json.loads(open(f).read().strip().splitlines()[-1])["loss"] for f in sys.argv[1:3])
assert abs(a - b) <= 1e-4 * abs(b), (a, b)
print(f"  same loss: {a} {b}")
PY
}

case "$CASE" in
dp2)
    mpi 2 "${tiny[@]}" --json > a.json
    cat a.json
    check_json a.json 2 2 1
    mpi 2 "${tiny[@]}" --zero 1 --bucket-mb 0.01 --json > z.json
    cat z.json
    check_json z.json 2 2 1
    same_loss a.json z.json
    mpi 2 "${tiny[@]}" > a.txt
    cat a.txt
    grep -q "^  2 ranks = DP 2 x TP 1, 1 thread per rank; batch 2 x 32 per DP rank (global 4 x 32: weak scaling)$" a.txt ||
        fail "no layout line"
    grep -qE "^  [0-9]+ tokens/s per rank; exposed communication [0-9.]+ ms/step \([0-9.]+% of the step\): TP 0.0 \+ DP [0-9.]+$" a.txt ||
        fail "no communication line"
    ;;
tp2)
    mpi 2 "${tiny[@]}" --tp 2 --json > t.json
    cat t.json
    check_json t.json 2 1 2
    timeout 60 "$LLMPI" "${tiny[@]}" --json > s.json
    cat s.json
    check_json s.json 1 1 1
    same_loss t.json s.json
    ;;
dp2_tp2)
    mpi 4 "${tiny[@]}" --tp 2 --json > t.json
    cat t.json
    check_json t.json 4 2 2
    mpi 2 "${tiny[@]}" --json > d.json
    same_loss t.json d.json
    ;;
bad)
    t0=$(date +%s)
    expect_one "^llmpi bench train: rank 0: error: topo: --tp 3 does not divide the world size 2" \
        mpi 2 "${tiny[@]}" --tp 3
    expect_one "^llmpi bench train: rank 0: error: unknown option '--bogus' \(see llmpi bench train --help\)$" \
        mpi 2 "${tiny[@]}" --bogus
    expect_one "^llmpi bench train: rank 0: error: --seq 4096 exceeds the model's context" \
        mpi 2 "${tiny[@]}" --seq 4096
    expect_one "^llmpi bench train: rank 0: error: --zero" \
        mpi 2 "${tiny[@]}" --zero 2
    expect_one "^llmpi bench train: rank 0: error: the ranks were started with different command lines" \
        timeout 60 "$MPIEXEC" --oversubscribe -np 1 "$LLMPI" "${tiny[@]}" : \
        -np 1 "$LLMPI" "${tiny[@]}" --steps 4
    # --tp 2 splits tiny's 4 heads; --heads 3 does not split over 2 ranks
    expect_one "^llmpi bench train: rank 0: error: " \
        mpi 2 "${tiny[@]}" --tp 2 --heads 3 --width 48
    # a world of one: the message without "rank 0: ", as before MPI
    expect_one "^llmpi bench train: error: --seq 4096 exceeds the model's context" \
        timeout 60 "$LLMPI" "${tiny[@]}" --seq 4096
    "$LLMPI" bench train --help | grep -q -- "--tp T" || fail "--help lists no --tp"
    el=$(( $(date +%s) - t0 ))
    echo "--- bad input cases took ${el} s"
    [ $el -lt 30 ] || fail "bad input cases took ${el} s"
    ;;
*) fail "unknown case $CASE" ;;
esac
echo ok
