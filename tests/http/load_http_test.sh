#!/usr/bin/env bash
# tests/http/load_http_test.sh LLMPI SOURCE_DIR PYENV — a smoke run of
# bench/load_http.py, so that the load benchmark cannot rot: trains a `tiny`
# checkpoint, makes (once, in PYENV, shared with http_api_test.sh) the same
# virtual environment, and ramps ~10 s of Poisson arrivals past what one slow
# replica (--step-delay) behind a small queue (--http-max-queue 3) can take.
# Checked: exit 0 (which already requires no request lost, no status other
# than 200 or 429, the server drained, its /metrics counts equal to the
# client's, exit 0 on SIGTERM), at least one 429, at least one 200. Timings
# are never checked.
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$@"
PYENV=$3
export OMP_NUM_THREADS=1
source "$SRC/tests/http/pyenv.sh"
make_pyenv "$PYENV"
cd "$WORK"
cat "$SRC"/src/common/*.c "$SRC"/kernels/cpu/*.c > text.txt
"$LLMPI" train --model tiny --context 256 --data text.txt --batch 4 --seq 32 --steps 4 \
    --lr 3e-3 --warmup 1 --log-every 10 --ckpt-dir ck > /dev/null
CKPT=$(ls ck/ckpt_*.h5 | tail -n 1)
# 50 ms per engine step and at most 3 generations admitted: a 16-token answer
# takes ~0.9 s, so the pool serves ~3-4 req/s; 2 req/s fits, 40 req/s cannot
rc=0
"$PYENV/bin/python" "$SRC/bench/load_http.py" --llmpi "$LLMPI" --ckpt "$CKPT" --work "$WORK/srv" \
    --serve-args "--threads 1 --step-delay 0.05 --http-max-queue 3" --http-timeout 20 \
    --rates 2,40 --stage-seconds 4 --max-tokens 16 --csv stages.csv --json > out.json || rc=$?
[ "$rc" -eq 0 ] || fail "bench/load_http.py exited with $rc"
"$PYENV/bin/python" - out.json stages.csv <<'EOF' || fail "the load's figures"
import csv, json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
rows = list(csv.DictReader(open(sys.argv[2])))
print(f"sent {s['sent']}: {s['ok']} x 200, {s['r429']} x 429, {s['lost']} lost; "
      f"drained {s['drained_after_s']} s after the last answer; server {s['server_counts']}")
assert r["failures"] == [], r["failures"]
assert s["lost"] == 0 and s["other"] == 0, s
assert s["r429"] >= 1, "no 429 although 40 req/s exceeds the pool"
assert s["ok"] >= 1, "no request served"
assert s["drained_after_s"] is not None, "not drained"
assert s["server_exit"] == 0, s["server_exit"]
assert s["retry_after"] == ["1"], s["retry_after"]
assert s["ok"] + s["r429"] == s["sent"], s
assert len(rows) == 2 and sum(int(x["sent"]) for x in rows) == s["sent"], rows
EOF
echo "load_http: ok"
