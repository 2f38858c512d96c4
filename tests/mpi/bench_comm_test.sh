#!/usr/bin/env bash
# tests/mpi/bench_comm_test.sh LLMPI SOURCE_DIR CASE MPIEXEC — `llmpi bench
# comm` (src/train/bench_comm.c) on small sizes, a few seconds per case. Each
# CASE is one ctest (label mpi); timings are printed, never asserted:
#   np2        2 ranks (DP 2), 4 KiB..1 MiB, table and --csv: one row per size
#              and method (mpi, comm, bucketed), positive time, algbw and
#              busbw, every result verified; small buckets split the larger
#              sizes into several nonblocking allreduces
#   np4_tp2    4 ranks with --tp 2 (two DP groups of 2), --json: DP 2, the same
#              rows, busbw = algbw * 2(n-1)/n = algbw
#   singleton  a plain process: DP 1, busbw 0, results verified
#   fault      LLMPI_BENCH_COMM_FAULT=1 corrupts rank 1's results: the check
#              fails, one message naming rank 1, exit 1, no CSV left behind;
#              =0:comm, =0:bucketed: each method's check fails on its own,
#              also in a world of one
#   bad        an unknown flag, --min > --max, --tp not dividing the world, a
#              size that is not a multiple of 4, different options on
#              different ranks: one message, exit 1 on every rank (no abort),
#              within 30 s each
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$@"
MPIEXEC=$4
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$WORK"
mpi() { local np=$1; shift; timeout 60 "$MPIEXEC" -np "$np" --oversubscribe "$LLMPI" "$@"; }
small=(--min 4K --max 1M --iters 3 --warmup 1)

# check_table FILE DP: the text table has one row per size (4 KiB .. 1 MiB)
# and method, each with a positive time, time relative to mpi's (1.00x for
# mpi) and algbw, busbw = algbw * 2(DP-1)/DP (0 for DP 1) and "ok"; and the
# final verification line.
check_table() { python3 - "$@" <<'PY'
import re, sys
text, dp = open(sys.argv[1]).read(), int(sys.argv[2])
rows = re.findall(r"^\s*(\d+ (?:B|KiB|MiB|GiB))\s+(mpi|comm|bucketed)\s+(\d+)\s+(\S+)\s+(\S+)x\s+(\S+)\s+(\S+)\s+(\S+)$",
                  text, re.M)
sizes = [f"{1 << k} KiB" for k in range(2, 10)] + ["1 MiB"]
assert len(rows) == 9 * 3, f"expected 27 rows, got {len(rows)}:\n{text}"
assert sorted({r[0] for r in rows}) == sorted(sizes), sorted({r[0] for r in rows})
for size in sizes:
    assert sorted(r[1] for r in rows if r[0] == size) == ["bucketed", "comm", "mpi"], size
for size, m, iters, us, ratio, alg, bus, ok in rows:
    us, ratio, alg, bus = float(us), float(ratio), float(alg), float(bus)
    assert int(iters) > 0 and us > 0 and ratio > 0 and alg > 0, (size, m)
    assert m != "mpi" or ratio == 1.0, (size, m, ratio)
    want = alg * 2 * (dp - 1) / dp
    assert abs(bus - want) <= 1e-3 + 1e-3 * want, (size, m, alg, bus)
    assert ok == "ok", (size, m)
assert re.search(r"^all results verified: 9 sizes x 3 methods", text, re.M), text
assert f"DP {dp} x" in text, text
print(f"  table: {len(rows)} rows, DP {dp}")
PY
}

case "$CASE" in
np2)
    mpi 2 bench comm "${small[@]}" --bucket-mb 0.25 --csv out.csv > out.txt
    cat out.txt
    check_table out.txt 2
    python3 - out.csv <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 27, len(rows)
assert sorted({int(r["bytes"]) for r in rows}) == [4096 << k for k in range(9)]
for r in rows:
    assert r["dp"] == "2" and r["world"] == "2" and r["verified"] == "1", r
    assert float(r["time_us"]) > 0 and float(r["algbw_gbps"]) > 0 and float(r["busbw_gbps"]) > 0, r
print(f"  csv: {len(rows)} rows")
PY
    ;;
np4_tp2)
    mpi 4 bench comm "${small[@]}" --tp 2 --json > out.json
    cat out.json
    python3 - out.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert (j["world"], j["dp"], j["tp"], j["verified"]) == (4, 2, 2, True), j
rs = j["results"]
assert len(rs) == 27, len(rs)
for r in rs:
    assert r["method"] in ("mpi", "comm", "bucketed"), r
    assert r["time_us"] > 0 and r["algbw_gbps"] > 0, r
    assert abs(r["busbw_gbps"] - r["algbw_gbps"]) <= 1e-5 + 1e-5 * r["algbw_gbps"], r
print(f"  json: {len(rs)} results")
PY
    ;;
singleton)
    timeout 60 "$LLMPI" bench comm "${small[@]}" > out.txt
    cat out.txt
    check_table out.txt 1
    grep -q "^DP 1: " out.txt || fail "no DP 1 note"
    ;;
fault)
    expect_error "^llmpi bench comm: rank 1: error: result check failed: mpi allreduce of 4 KiB, call 1: element [0-9]+ is" \
        env LLMPI_BENCH_COMM_FAULT=1 "$MPIEXEC" -np 2 --oversubscribe "$LLMPI" bench comm "${small[@]}" --csv f.csv
    [ "$(grep -c 'error:' "$WORK/out.txt")" -eq 1 ] || fail "expected one error message"
    [ ! -e f.csv ] || fail "a failed run left its CSV file"
    # each method's own check: only its results corrupted
    for m in comm bucketed; do
        expect_error "^llmpi bench comm: rank 0: error: result check failed: $m allreduce of 4 KiB, call 1:" \
            env LLMPI_BENCH_COMM_FAULT=0:$m timeout 60 "$MPIEXEC" -np 2 --oversubscribe "$LLMPI" bench comm "${small[@]}"
    done
    # a world of one (DP 1: the result is the rank's own fill, still checked)
    expect_error "^llmpi bench comm: error: result check failed: bucketed allreduce of 4 KiB, call 1:" \
        env LLMPI_BENCH_COMM_FAULT=0:bucketed timeout 60 "$LLMPI" bench comm "${small[@]}"
    ;;
bad)
    t0=$(date +%s)
    expect_one "^llmpi bench comm: rank 0: error: unknown option '--bogus' \(see llmpi bench comm --help\)$" \
        mpi 2 bench comm "${small[@]}" --bogus
    expect_one "^llmpi bench comm: rank 0: error: --min 1 MiB is larger than --max 4 KiB$" \
        mpi 2 bench comm --min 1M --max 4K
    expect_one "^llmpi bench comm: rank 0: error: topo: --tp 3 does not divide the world size 4" \
        mpi 4 bench comm "${small[@]}" --tp 3
    expect_one "^llmpi bench comm: rank 0: error: --min: 6 is not a multiple of 4 bytes" \
        mpi 2 bench comm --min 6
    expect_one "^llmpi bench comm: rank 0: error: --max: '1X' is not a size" \
        mpi 2 bench comm --max 1X
    expect_one "^llmpi bench comm: rank 0: error: the ranks were started with different options" \
        timeout 60 "$MPIEXEC" --oversubscribe -np 1 "$LLMPI" bench comm "${small[@]}" : \
        -np 1 "$LLMPI" bench comm "${small[@]}" --iters 4
    expect_one "^llmpi bench comm: error: unknown option '--bogus'" \
        timeout 60 "$LLMPI" bench comm --bogus
    "$LLMPI" bench comm --help | grep -q -- "--bucket-mb" || fail "--help"
    "$LLMPI" bench --help | grep -q "comm" || fail "bench --help lists no comm"
    el=$(( $(date +%s) - t0 ))
    echo "--- bad input cases took ${el} s"
    [ $el -lt 30 ] || fail "bad input cases took ${el} s"
    ;;
*) fail "unknown case $CASE" ;;
esac
echo ok
