#!/usr/bin/env bash
# tests/cli/generate_cli.sh LLMPI SOURCE_DIR CASE — end-to-end checks of
# `llmpi generate` / `llmpi bench generate` as a user runs them. Each CASE is
# one ctest. The checkpoint comes from training `tiny` (context 64, byte
# tokenizer) for a few steps on the project's own C sources.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
make_ckpt() {
    cat "$SRC"/src/common/*.c "$SRC"/kernels/cpu/*.c > "$WORK/text.txt"
    "$LLMPI" train --model tiny --data "$WORK/text.txt" --batch 4 --seq 32 --steps 30 \
        --lr 3e-3 --warmup 3 --log-every 10 --ckpt-dir "$WORK/ck" > /dev/null
    CKPT=$(ls "$WORK"/ck/ckpt_*.h5 | tail -n 1)
    [ -f "$CKPT" ] || fail "training wrote no checkpoint"
}

gen() { "$LLMPI" generate --ckpt "$CKPT" --quiet "$@"; }

case "$CASE" in
reproducible)
    make_ckpt
    gen --prompt "int main(" --max-tokens 40 --seed 7 > "$WORK/a.txt"
    gen --prompt "int main(" --max-tokens 40 --seed 7 > "$WORK/b.txt"
    gen --prompt "int main(" --max-tokens 40 --seed 8 > "$WORK/c.txt"
    [ -s "$WORK/a.txt" ] || fail "no output"
    cmp "$WORK/a.txt" "$WORK/b.txt" || fail "the same seed gave different text"
    if cmp -s "$WORK/a.txt" "$WORK/c.txt"; then fail "another seed gave the same text"; fi
    # every sampling knob at once, and greedy, are reproducible too
    for opts in "--top-k 5 --top-p 0.9 --temperature 0.8 --repetition-penalty 1.3" \
                "--temperature 0"; do
        gen --prompt "static " --max-tokens 30 --seed 1 $opts > "$WORK/d.txt"
        gen --prompt "static " --max-tokens 30 --seed 2 $opts > "$WORK/e.txt"
        [ -s "$WORK/d.txt" ] || fail "no output with $opts"
        if [ "$opts" = "--temperature 0" ]; then
            cmp "$WORK/d.txt" "$WORK/e.txt" || fail "greedy decoding depends on the seed"
        fi
        gen --prompt "static " --max-tokens 30 --seed 1 $opts > "$WORK/f.txt"
        cmp "$WORK/d.txt" "$WORK/f.txt" || fail "$opts: same seed, different text"
    done
    # the summary on stderr: why it stopped and the speeds
    "$LLMPI" generate --ckpt "$CKPT" --prompt "x" --max-tokens 5 2> "$WORK/err.txt" > /dev/null
    grep -q "1 prompt + 5 generated tokens; stopped: reached --max-tokens" "$WORK/err.txt" ||
        { cat "$WORK/err.txt"; fail "no summary line"; }
    ;;
context)
    make_ckpt
    # 100 bytes = 100 tokens > context 64
    expect_error "the prompt is 100 tokens but the model's context is 64 tokens" \
        gen --prompt "$(head -c 100 "$WORK/text.txt" | tr -d '\0')" --max-tokens 5
    # exactly the context: one token, and the reason says so
    p=$(printf 'x%.0s' $(seq 64))
    "$LLMPI" generate --ckpt "$CKPT" --prompt "$p" --max-tokens 5 > "$WORK/o.txt" 2> "$WORK/err.txt"
    grep -q "64 prompt + 1 generated tokens; stopped: the context is full" "$WORK/err.txt" ||
        { cat "$WORK/err.txt"; fail "no context-full message"; }
    [ "$(wc -c < "$WORK/o.txt")" -eq 1 ] || fail "expected exactly one byte of output"
    # running into the context: 60 + 5 tokens
    p=$(printf 'x%.0s' $(seq 60))
    "$LLMPI" generate --ckpt "$CKPT" --prompt "$p" --max-tokens 50 > /dev/null 2> "$WORK/err.txt"
    grep -q "60 prompt + 5 generated tokens; stopped: the context is full" "$WORK/err.txt" ||
        { cat "$WORK/err.txt"; fail "no context-full message"; }
    ;;
stop)
    make_ckpt
    # sampled output (fixed seed), then a piece of it as a stop string: the
    # same draws must now give exactly the text before the piece's first
    # occurrence (a barely trained model's greedy output is all spaces)
    gen --prompt "int " --max-tokens 40 --seed 5 > "$WORK/full.txt"
    python3 - "$WORK/full.txt" "$WORK" <<'PY'
import sys
full = open(sys.argv[1], "rb").read()
# a 3-byte piece (no newline / NUL, which a shell argument would lose) that
# first occurs at offset >= 4, so the cut output is not empty
for i in range(4, len(full) - 3):
    stop = full[i:i + 3]
    if full.find(stop) == i and b"\n" not in stop and b"\0" not in stop:
        break
else:
    sys.exit(f"no usable stop piece in {full!r}")
open(sys.argv[2] + "/stop.bin", "wb").write(stop)
open(sys.argv[2] + "/want.txt", "wb").write(full[:i])
PY
    gen --prompt "int " --max-tokens 40 --seed 5 --stop "$(cat "$WORK/stop.bin")" \
        > "$WORK/cut.txt"
    cmp "$WORK/cut.txt" "$WORK/want.txt" || fail "stop string: wrong output"
    ;;
bad_ckpt)
    make_ckpt
    expect_error "no-such.h5.*No such file" "$LLMPI" generate --ckpt "$WORK/no-such.h5" --prompt hi
    echo "not a checkpoint" > "$WORK/garbage.h5"
    expect_error "garbage.h5" "$LLMPI" generate --ckpt "$WORK/garbage.h5" --prompt hi
    head -c 4000 "$CKPT" > "$WORK/truncated.h5"
    expect_error "truncated.h5" "$LLMPI" generate --ckpt "$WORK/truncated.h5" --prompt hi
    expect_error "--ckpt FILE is required" "$LLMPI" generate --prompt hi
    expect_error "--prompt TEXT is required" "$LLMPI" generate --ckpt "$CKPT"
    ;;
bad_args)
    make_ckpt
    expect_error "--top-p: must be > 0" gen --prompt hi --top-p 0
    expect_error "--temperature: -1 is out of range" gen --prompt hi --temperature -1
    expect_error "--max-tokens: 'lots' is not an integer" gen --prompt hi --max-tokens lots
    expect_error "unknown option '--bogus'" gen --prompt hi --bogus 1
    expect_error "--seed: '-3' is not a non-negative integer" gen --prompt hi --seed -3
    expect_error "unknown device|not available|no CUDA|cuda" gen --prompt hi --device tpu
    ;;
help)
    "$LLMPI" generate --help | grep -q -- "--top-p"
    "$LLMPI" bench generate --help | grep -q -- "--prompt-tokens"
    ;;
bench_json)
    "$LLMPI" bench generate --model tiny --prompt-tokens 8 --tokens 16 --json > "$WORK/b.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['decode_tokens_per_s']>0 and d['prefill_tokens_per_s']>0 and d['tokens']==16, d" "$WORK/b.json"
    make_ckpt
    "$LLMPI" bench generate --ckpt "$CKPT" --prompt-tokens 16 --tokens 8 --json > "$WORK/c.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['decode_tokens_per_s']>0 and d['layers']==2, d" "$WORK/c.json"
    expect_error "--prompt-tokens 60 \\+ --tokens 10 exceed the model's context 64" \
        "$LLMPI" bench generate --model tiny --prompt-tokens 60 --tokens 10
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "PASS: $CASE"
