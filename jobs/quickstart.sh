#!/usr/bin/env bash
# jobs/quickstart.sh — the README's main job on a fresh Debian 12 machine:
# install dependencies, build, make the default corpus (Debian's fortunes) and
# train a small GPT-2 on it for a few minutes, printing a falling loss.
# Knobs (environment): STEPS (1000), MODEL (gpt2-mini), LAYERS (4), WIDTH (256),
# HEADS (4), BATCH (8), SEQ (128), LR (1e-3), THREADS (all cores), OUT (runs/quickstart).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/runs/quickstart}
bash "$ROOT/jobs/setup_debian.sh"
bash "$ROOT/jobs/build.sh" "$ROOT/build"
mkdir -p "$OUT"
bash "$ROOT/jobs/make_corpus.sh" "$OUT/fortunes.txt"
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
"$ROOT/build/llmpi" train --model "${MODEL:-gpt2-mini}" \
    --layers "${LAYERS:-4}" --width "${WIDTH:-256}" --heads "${HEADS:-4}" \
    --data "$OUT/fortunes.txt" --steps "${STEPS:-1000}" --batch "${BATCH:-8}" \
    --seq "${SEQ:-128}" --lr "${LR:-1e-3}" --warmup 20 --eval-every 50 \
    --log-every 10 "${threads[@]}" --metrics "$OUT/metrics.jsonl"
echo "quickstart: metrics in $OUT/metrics.jsonl"
