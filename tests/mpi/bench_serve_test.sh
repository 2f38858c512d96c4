#!/usr/bin/env bash
# tests/mpi/bench_serve_test.sh LLMPI SOURCE_DIR CASE MPIEXEC — `llmpi bench
# serve` (src/infer/bench_serve.c) with the tiny model, a few seconds per
# case. Each CASE is one ctest (label mpi). Timings are printed, never
# asserted; what is checked is that every run served the whole schedule,
# the report's shape and the arithmetic between its fields:
#   np1   a world of one (in-process engine): --json has one run per policy
#         of --balance all plus the naive one, every request completed with
#         exactly the schedule's tokens, numbers positive; the text table has
#         one row per run; --csv one line per run; closed loop
#         (--rate inf --concurrency 4) too
#   np3   2 replicas with replica 1 slowed (--slow-replica 1:0.005): the
#         same checks, and what the policies promise on the request counts
#         (round-robin splits evenly, weighted 3,1 gives 3:1)
#   bad   bad flags and values: one message, exit 1 on every rank, no hang
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$@"
MPIEXEC=$4
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$WORK"
mpi() { local np=$1; shift; timeout 60 "$MPIEXEC" -np "$np" --oversubscribe "$LLMPI" "$@"; }
N=12
tiny=(bench serve --model tiny --requests $N --rate 200 --prompt-tokens 4:16 --gen-tokens 4:12
      --threads 1 --kv-cache-mb 4)

# check_json FILE REPLICAS [WEIGHTED_A WEIGHTED_B]: every run served the
# whole schedule; the fields agree with each other.
check_json() { python3 - "$@" <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
R = int(sys.argv[2])
n = j["requests"]
assert j["bench"] == "serve" and j["replicas"] == R and j["layers"] == 2, j
names = [r["policy"] for r in j["runs"]]
assert names == ["round-robin", "random", "weighted", "least-outstanding", "naive"], names
for r in j["runs"]:
    assert r["completed"] == n and r["errors"] == 0, r
    assert r["tokens"] == j["tokens_per_run"] > 0, r
    assert sum(r["per_replica"]) == n and len(r["per_replica"]) == R, r
    for k in ("duration_s", "tokens_per_s", "requests_per_s", "mean_in_flight",
              "ttft_p50_ms", "ttft_p99_ms"):
        assert r[k] > 0, (k, r)
    for k in ("tpot_p50_ms", "tpot_p99_ms"):  # receipts of two steps may share a poll
        assert r[k] >= 0, (k, r)
    assert r["ttft_p99_ms"] >= r["ttft_p50_ms"] and r["tpot_p99_ms"] >= r["tpot_p50_ms"], r
    assert abs(r["tokens_per_s"] * r["duration_s"] - r["tokens"]) <= 1e-2 * r["tokens"], r
    assert r["naive"] == (r["policy"] == "naive"), r
    assert r["speedup_vs_naive"] > 0, r
naive = j["runs"][-1]
assert abs(naive["speedup_vs_naive"] - 1) < 1e-9, naive
for r in j["runs"]:
    want = r["tokens_per_s"] / naive["tokens_per_s"]
    assert abs(r["speedup_vs_naive"] - want) <= 2e-3 * want + 1e-3, (r, want)
if R == 2:
    rr = j["runs"][0]["per_replica"]
    assert rr == [n // 2, n // 2], rr  # round-robin alternates
    if len(sys.argv) > 3:
        w = j["runs"][2]["per_replica"]
        a, b = int(sys.argv[3]), int(sys.argv[4])
        assert w == [n * a // (a + b), n * b // (a + b)], w  # smooth weighted cycle
print(f"  json ok: {len(names)} runs of {n} requests, {j['tokens_per_run']} tokens each; "
      + ", ".join(f"{r['policy']} {r['tokens_per_s']:.0f} tok/s" for r in j["runs"]))
PY
}

# check_text FILE: a header and one row per run, each with N/N done.
check_text() {
    cat "$1"
    for p in round-robin random weighted least-outstanding naive; do
        grep -qE "^$p +$N/$N +[0-9.]+ " "$1" || fail "no row for $p in $1"
    done
    [ "$(grep -cE "^[a-z-]+ +[0-9]+/$N " "$1")" -eq 5 ] || fail "expected 5 rows in $1"
}

# check_csv FILE: a header and one line per run.
check_csv() {
    cat "$1"
    head -n 1 "$1" | grep -q "^policy,naive,completed,errors,tokens," || fail "bad CSV header"
    [ "$(tail -n +2 "$1" | wc -l)" -eq 5 ] || fail "expected 5 CSV rows"
    tail -n +2 "$1" | cut -d, -f3 | grep -qvx "$N" && fail "a CSV row did not complete $N"
    return 0
}

case "$CASE" in
np1)
    timeout 60 "$LLMPI" "${tiny[@]}" --balance all --json --csv runs.csv > a.json
    cat a.json
    check_json a.json 1
    check_csv runs.csv
    timeout 60 "$LLMPI" "${tiny[@]}" --balance all > a.txt
    check_text a.txt
    grep -q "1 replica (in-process engine)" a.txt || fail "no in-process engine line"
    # closed loop: all at once, 4 out at a time
    timeout 60 "$LLMPI" "${tiny[@]}" --balance all --rate inf --concurrency 4 --json > c.json
    cat c.json
    check_json c.json 1
    python3 -c "import json,sys; j=json.load(open('c.json')); sys.exit(not (j['rate']=='inf' and j['concurrency']==4 and all(r['mean_in_flight'] <= 4.001 for r in j['runs'])))" ||
        fail "closed loop: more than 4 requests out at once"
    # the default with one replica: one policy run and the naive one
    timeout 60 "$LLMPI" "${tiny[@]}" > d.txt
    cat d.txt
    [ "$(grep -cE "^[a-z-]+ +[0-9]+/$N " d.txt)" -eq 2 ] || fail "expected 2 rows by default alone"
    ;;
np3)
    mpi 3 "${tiny[@]}" --slow-replica 1:0.005 --weights 3,1 --json --csv runs.csv > a.json
    cat a.json
    check_json a.json 2 3 1
    check_csv runs.csv
    python3 -c "import json,sys; j=json.load(open('a.json')); sys.exit(not (j['slow_replica']==1 and j['slow_step_s']==0.005))" ||
        fail "slow replica not reported"
    mpi 3 "${tiny[@]}" --slow-replica 1:0.005 > a.txt
    check_text a.txt
    grep -q "replica 1 sleeps 5.0 ms after each engine step" a.txt || fail "no slow-replica line"
    ;;
bad)
    t0=$(date +%s)
    P="^llmpi bench serve: rank 0: error:"
    expect_one "$P unknown option '--bogus' \(see llmpi bench serve --help\)$" \
        mpi 3 "${tiny[@]}" --bogus
    expect_one "$P --slow-replica 2: there are 2 replicas \(0..1\)$" \
        mpi 3 "${tiny[@]}" --slow-replica 2:0.1
    expect_one "$P --slow-replica 'x': expected R:SECONDS" mpi 3 "${tiny[@]}" --slow-replica x
    expect_one "$P --prompt-tokens '9:3': need 1 <= A <= B" mpi 3 "${tiny[@]}" --prompt-tokens 9:3
    expect_one "$P --prompt-tokens up to 16 \+ --gen-tokens up to 60 exceed the model's context 64$" \
        mpi 3 "${tiny[@]}" --gen-tokens 4:60
    expect_one "$P unknown (balancing )?policy" mpi 3 "${tiny[@]}" --balance round-robin,fastest
    expect_one "$P --weights '1': expected 2 non-negative numbers" mpi 3 "${tiny[@]}" --weights 1
    expect_one "$P --weights '1,2,3': more than 2 values" mpi 3 "${tiny[@]}" --weights 1,2,3
    expect_one "$P --rate" mpi 3 "${tiny[@]}" --rate -1
    expect_one "$P " mpi 3 "${tiny[@]}" --ckpt does-not-exist.h5
    # a world of one: the message without "rank 0: "
    expect_one "^llmpi bench serve: error: --slow-replica 1: there is 1 replica \(0..0\)$" \
        timeout 60 "$LLMPI" "${tiny[@]}" --slow-replica 1:0.1
    # a KV pool too small for the longest request: the run fails with the
    # engine's reason, every rank ends
    rc=0
    mpi 3 "${tiny[@]}" --kv-cache-mb 0.01 > out.txt 2>&1 || rc=$?
    cat out.txt
    [ $rc -ne 0 ] || fail "a refused request did not fail the benchmark"
    grep -q "failed on replica" out.txt || fail "no reason for the failed request"
    "$LLMPI" bench serve --help | grep -q -- "--slow-replica R:S" || fail "--help lists no --slow-replica"
    "$LLMPI" bench --help | grep -q "^  serve " || fail "llmpi bench --help lists no serve"
    el=$(( $(date +%s) - t0 ))
    echo "--- bad input cases took ${el} s"
    [ $el -lt 45 ] || fail "bad input cases took ${el} s"
    ;;
*) fail "unknown case $CASE" ;;
esac
echo ok
