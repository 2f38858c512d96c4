#!/usr/bin/env bash
# tests/slurm/slurm_test.sh LLMPI SOURCE_DIR CASE — jobs/*.sbatch submitted to
# a real Slurm started on this machine (local_cluster.sh: munged, slurmctld,
# slurmd), the way a cluster user submits them. Cases:
#   train  jobs/train.sbatch runs, is sent USR1 mid-run, checkpoints, requeues
#          itself, resumes and finishes; its loss curve equals an
#          uninterrupted run's (same flags, mpirun) step for step
#   sweep  jobs/sweep.sbatch writes one CSV row per run of its grid
#   serve  jobs/serve.sbatch serves the agents over HTTP; one chat request
#          is answered, then scancel stops it
#   mpirun jobs/train.sbatch without Slurm (bash, NP ranks under mpirun): a
#          run, then the same command with more steps resumes it; and
#          jobs/sweep.sbatch's quick grid under mpirun
# Needs root (slurmd) and Debian's slurm-wlm + munge (jobs/setup_debian.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$@"
LLMPI=$(realpath "$LLMPI")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$CASE" != mpirun ]; then
    CLUSTER=$WORK/cluster
    trap 'bash "$SRC/tests/slurm/local_cluster.sh" stop "$CLUSTER"; rm -rf "$WORK"' EXIT
    bash "$SRC/tests/slurm/local_cluster.sh" start "$CLUSTER"
    export SLURM_CONF=$CLUSTER/slurm.conf
    # Slurm's PMIx server authenticates its ranks itself: no psec override here
    unset PMIX_MCA_psec
fi
project_text "$WORK/text.txt"

job_field() { scontrol show job "$1" | grep -oE "(^| )$2=[^ ]*" | head -1 | cut -d= -f2; }

# wait_state JOB STATE SECONDS: fails at once when the job ends otherwise
wait_state() {
    local st=
    for _ in $(seq $(( $3 * 5 ))); do
        st=$(job_field "$1" JobState)
        [ "$st" = "$2" ] && return 0
        case "$st" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) break ;; esac
        sleep 0.2
    done
    scontrol show job "$1" || true
    cat "$WORK"/job-*.out 2>/dev/null || true
    fail "job $1 is $st, not $2 (waited up to $3 s)"
}

# From the repository's root, as docs/cluster.md says (the scripts find
# jobs/ and bench/ from the submit directory). The node has the machine's
# cores; jobs with more ranks say --overcommit.
submit() { (cd "$SRC" && sbatch --parsable -o "$WORK/job-%j.out" "$@"); }

case "$CASE" in
train)
    knobs=(LLMPI="$LLMPI" DATA="$WORK/text.txt" MODEL=tiny TP=2 DEVICE=cpu STEPS=300 BATCH=4
           SEQ=64 LR=1e-3 WARMUP=10 CKPT_EVERY=1000 THREADS=1)
    extra="--layers 4 --width 128 --heads 4 --log-every 10 --seed 5"
    export="ALL,OUT=$WORK/run,TRAIN_ARGS=$extra$(printf ',%s' "${knobs[@]}")"
    job=$(submit --ntasks-per-node=2 --export="$export" "$SRC/jobs/train.sbatch")
    # the signal once it is well under way (and well before the end); the
    # progress lines tell (the metrics file is renamed into place at the end)
    step=0
    for _ in $(seq 600); do
        step=$(grep -oE "^step +[0-9]+/300" "$WORK/job-$job.out" 2>/dev/null | tail -1 |
               grep -oE "[0-9]+/" | tr -d / || true)
        [ "${step:-0}" -ge 40 ] && break
        sleep 0.1
    done
    [ "${step:-0}" -ge 40 ] || { cat "$WORK"/job-*.out; fail "training did not get going"; }
    [ "$step" -lt 250 ] || fail "training nearly finished before the signal: make it longer"
    scancel --signal=USR1 "$job"
    # Slurm holds a requeued job back for cred_expire + 1 s (local_cluster.sh
    # sets 10 s): starting it earlier races the old run's step credentials
    wait_state "$job" COMPLETED 120
    cat "$WORK/job-$job.out"
    [ "$(job_field "$job" Restarts)" -ge 1 ] || fail "the job was not requeued"
    grep -q "checkpointed on the signal; requeueing" "$WORK/job-$job.out" || fail "no requeue message"
    grep -q "start 2:" "$WORK/job-$job.out" || fail "the requeued job did not start again"
    grep -q "finished with status 0" "$WORK/job-$job.out" || fail "the job did not finish"
    # the reference: the same run in one go
    # shellcheck disable=SC2086
    mpirun -np 2 "$LLMPI" train --data "$WORK/text.txt" --model tiny --tp 2 --device cpu \
        --steps 300 --batch 4 --seq 64 --lr 1e-3 --warmup 10 --threads 1 $extra \
        --metrics "$WORK/ref.jsonl" > "$WORK/ref.txt" 2>&1 || { cat "$WORK/ref.txt"; fail "reference run"; }
    python3 - "$WORK/run/metrics.jsonl" "$WORK/ref.jsonl" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
ref = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in got] == list(range(1, 301)), "steps of the requeued run are not 1..300"
for a, b in zip(got, ref):
    assert a["loss"] == b["loss"], f"step {a['step']}: {a['loss']} after requeue vs {b['loss']}"
print("requeued run = uninterrupted run, 300 steps, final loss", got[-1]["loss"])
PY
    ;;
serve)
    "$LLMPI" train --data "$WORK/text.txt" --model tiny --steps 5 --batch 2 --seq 32 \
        --ckpt-dir "$WORK/ckpt" > /dev/null
    job=$(submit --ntasks=3 --overcommit --export="ALL,LLMPI=$LLMPI,CKPT=$WORK/ckpt,HTTP_HOST=127.0.0.1,HTTP_PORT=0,DEVICE=cpu,THREADS=1" \
          "$SRC/jobs/serve.sbatch")
    port=
    for _ in $(seq 600); do
        port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/job-$job.out" 2>/dev/null || true)
        [ -n "$port" ] && break
        case "$(job_field "$job" JobState)" in PENDING|RUNNING|CONFIGURING) ;; *) break ;; esac
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$WORK/job-$job.out"; fail "the server did not start"; }
    python3 - "$port" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
models = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=60))
names = [m["id"] for m in models["data"]]
assert "llmpi" in names and len(names) > 1, names  # the bare model and the agents
req = urllib.request.Request(
    f"http://127.0.0.1:{port}/v1/chat/completions",
    data=json.dumps({"model": "llmpi", "max_tokens": 8, "seed": 1,
                     "messages": [{"role": "user", "content": "Hello"}]}).encode(),
    headers={"Content-Type": "application/json"})
r = json.load(urllib.request.urlopen(req, timeout=120))
c = r["choices"][0]
assert c["message"]["role"] == "assistant" and c["finish_reason"] in ("stop", "length"), r
assert r["usage"]["completion_tokens"] >= 1, r
print("served by the Slurm job:", json.dumps(c["message"]["content"]))
PY
    scancel "$job"
    for _ in $(seq 300); do
        state=$(job_field "$job" JobState)
        [ "$state" = RUNNING ] || [ "$state" = COMPLETING ] || break
        sleep 0.1
    done
    cat "$WORK/job-$job.out"
    case "$state" in CANCELLED|COMPLETED) ;; *) fail "job state $state after scancel" ;; esac
    ;;
sweep)
    job=$(submit --ntasks=4 --overcommit \
          --export="ALL,LLMPI=$LLMPI,OUT=$WORK/sweep,QUICK=1,OMP_NUM_THREADS=1" \
          "$SRC/jobs/sweep.sbatch")
    wait_state "$job" COMPLETED 600
    cat "$WORK/job-$job.out"
    for f in train loss comm generate serve; do
        [ -s "$WORK/sweep/$f.csv" ] || fail "no $f.csv"
    done
    python3 - "$WORK/sweep" <<'PY'
import csv, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/train.csv")))
layouts = {(r["dp"], r["tp"]) for r in rows}
assert len(layouts) >= 2, f"train.csv covers one layout only: {layouts}"
assert all(float(r["tokens_per_s"]) > 0 for r in rows), rows
print(f"sweep: {len(rows)} training rows over {len(layouts)} layouts")
PY
    ls "$WORK"/sweep/*.png
    ;;
mpirun)
    unset SLURM_JOB_ID
    run() {
        NP=2 TP=2 LLMPI=$LLMPI DATA=$WORK/text.txt OUT=$WORK/run MODEL=tiny DEVICE=cpu BATCH=4 \
            SEQ=32 THREADS=1 MPIRUN_ARGS=--oversubscribe STEPS=$1 bash "$SRC/jobs/train.sbatch"
    }
    run 10 > "$WORK/a.txt" 2>&1 || { cat "$WORK/a.txt"; fail "first run"; }
    run 20 > "$WORK/b.txt" 2>&1 || { cat "$WORK/b.txt"; fail "second run"; }
    cat "$WORK/b.txt"
    grep -q "resuming from .*ckpt_00000010.h5 at step 10" "$WORK/b.txt" || fail "no resume"
    [ "$(wc -l < "$WORK/run/metrics.jsonl")" -eq 20 ] || fail "metrics: expected steps 1..20"
    # the sweep without Slurm: every run under mpirun, CSVs and plots checked
    # by bench/sweep.py itself
    QUICK=1 LLMPI=$LLMPI OUT=$WORK/sweep MPIRUN_ARGS=--oversubscribe OMP_NUM_THREADS=1 \
        bash "$SRC/jobs/sweep.sbatch" > "$WORK/s.txt" 2>&1 || { cat "$WORK/s.txt"; fail "sweep"; }
    tail -3 "$WORK/s.txt"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
