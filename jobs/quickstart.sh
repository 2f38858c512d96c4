#!/usr/bin/env bash
# jobs/quickstart.sh — the README's main job on a fresh Debian 12 machine:
# install dependencies, build, turn Debian's fortune cookies (English and
# Chinese) into a corpus, train a BPE tokenizer and token shards on it, train
# a small GPT-2 for a few minutes over mpirun as DP2 x TP2 (data-parallel
# pairs of tensor-parallel ranks; parallel HDF5 checkpoints on the way), then
# sample text from the last checkpoint and serve it to the agents of the
# game-npcs scenario (jobs/agents_scenarios.json).
# Knobs (environment): RANKS (4: ranks under mpirun; 1 runs a plain process),
# TP (2: tensor-parallel ranks per model; DP = RANKS / TP), STEPS (1000), VOCAB (4096), LAYERS (4), WIDTH (256),
# HEADS (4), BATCH (8, the global batch), SEQ (128), LR (1e-3),
# THREADS (per rank; default cores / RANKS), PROMPT ("Q: What"),
# OUT (runs/quickstart).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/runs/quickstart}
LLMPI=$ROOT/build/llmpi
bash "$ROOT/jobs/setup_debian.sh"
bash "$ROOT/jobs/build.sh" "$ROOT/build"
mkdir -p "$OUT"
bash "$ROOT/jobs/make_corpus.sh" "$OUT/fortunes.txt"

echo "== tokenizer and shards"
rm -rf "$OUT/data"
"$LLMPI" prep "$OUT/fortunes.txt" --out "$OUT/data" --train-tokenizer --vocab-size "${VOCAB:-4096}"

echo "== training"
RANKS=${RANKS:-4}
TP=${TP:-2}
[ "$RANKS" -gt 1 ] || TP=1
THREADS=${THREADS:-$(( $(nproc) / RANKS > 0 ? $(nproc) / RANKS : 1 ))}
threads=(--threads "$THREADS")
launch=()
if [ "$RANKS" -gt 1 ]; then
    # as root, Open MPI wants these two; more ranks than cores need oversubscribe
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    launch=(mpirun -np "$RANKS" --oversubscribe -x OMP_NUM_THREADS="$THREADS")
fi
rm -rf "$OUT/ckpt"
"${launch[@]}" "$LLMPI" train --model gpt2-mini --layers "${LAYERS:-4}" --width "${WIDTH:-256}" \
    --heads "${HEADS:-4}" --tp "$TP" --data "$OUT/data" --steps "${STEPS:-1000}" \
    --batch "${BATCH:-8}" --seq "${SEQ:-128}" --lr "${LR:-1e-3}" --warmup 20 \
    --eval-every 100 --log-every 20 "${threads[@]}" --metrics "$OUT/metrics.jsonl" \
    --ckpt-dir "$OUT/ckpt" --ckpt-every 250 --keep 2

echo "== sampling from the last checkpoint"
last=$(ls "$OUT"/ckpt/ckpt_*.h5 | sort | tail -1)
"$LLMPI" generate --ckpt "$last" --prompt "${PROMPT:-Q: What}" --max-tokens 80 \
    --temperature 0.8 --top-k 50 --seed 1 --threads "$(nproc)"
echo
echo "== serving it to agents: the game-npcs scenario on 2 replica groups"
# rank 0 coordinates (three NPCs talking in a tavern scene), ranks 1
# and 2 are replica groups with continuous batching (docs/serving.md)
serve=(mpirun -np 3 --oversubscribe -x OMP_NUM_THREADS=1)
[ "$RANKS" -gt 1 ] || serve=()
"${serve[@]}" "$LLMPI" serve --ckpt "$last" --agents "$ROOT/jobs/agents_scenarios.json" \
    --scenario game-npcs --turns 6 --redact --transcript "$OUT/transcript.jsonl"
echo
echo "quickstart: metrics in $OUT/metrics.jsonl, checkpoints in $OUT/ckpt, transcript in"
echo "$OUT/transcript.jsonl"
