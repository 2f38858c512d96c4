#!/usr/bin/env bash
# tests/cli/train_cli.sh LLMPI SOURCE_DIR CASE — end-to-end checks of
# `llmpi train` / `llmpi bench` as a user runs them. Each CASE is one ctest.
# Training text: the project's own C sources (always present, no download).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
project_text "$WORK/text.txt"

tiny=(--model tiny --data "$WORK/text.txt" --batch 4 --seq 32 --log-every 10)

# Strip the timing fields, which legitimately differ between runs.
numbers() { sed -E 's/"tokens_per_s":[^,]*,"ms":[^,}]*//' "$1"; }

case "$CASE" in
reproducible)
    # Same seed, same data, same numbers; another seed, other numbers.
    for opt in sgd adam adamw; do
        "$LLMPI" train "${tiny[@]}" --steps 12 --optimizer $opt --lr 1e-3 --eval-every 6 --seed 7 --metrics "$WORK/a.jsonl"
        "$LLMPI" train "${tiny[@]}" --steps 12 --optimizer $opt --lr 1e-3 --eval-every 6 --seed 7 --metrics "$WORK/b.jsonl"
        "$LLMPI" train "${tiny[@]}" --steps 12 --optimizer $opt --lr 1e-3 --eval-every 6 --seed 8 --metrics "$WORK/c.jsonl"
        [ "$(wc -l < "$WORK/a.jsonl")" -eq 12 ] || fail "$opt: expected 12 metrics lines"
        diff <(numbers "$WORK/a.jsonl") <(numbers "$WORK/b.jsonl") || fail "$opt: same seed gave different numbers"
        if diff -q <(numbers "$WORK/a.jsonl") <(numbers "$WORK/c.jsonl") > /dev/null; then
            fail "$opt: a different seed gave identical numbers"
        fi
        grep -q '"val_loss"' "$WORK/a.jsonl" || fail "$opt: no val_loss in the metrics"
    done
    ;;
loss_falls)
    # 60 AdamW steps on real text: the mean loss of the last 10 steps must be
    # well below ln(256) = 5.55 (a uniform guess) and below the first 10 steps'.
    "$LLMPI" train "${tiny[@]}" --steps 60 --lr 3e-3 --warmup 5 --metrics "$WORK/m.jsonl"
    python3 - "$WORK/m.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["step"] for r in rows] == list(range(1, 61)), "steps not 1..60"
for r in rows:
    for k in ("step", "loss", "lr", "grad_norm", "tokens_per_s", "ms"):
        assert k in r, f"missing {k}"
first = sum(r["loss"] for r in rows[:10]) / 10
last = sum(r["loss"] for r in rows[-10:]) / 10
print(f"first 10 steps {first:.3f}, last 10 steps {last:.3f}")
assert last < first - 1.0, "loss did not fall by at least 1 nat"
assert last < 4.0, "loss is not clearly below a uniform guess"
PY
    ;;
missing_data)
    expect_error "no-such-file.txt.*No such file" "$LLMPI" train --model tiny --data "$WORK/no-such-file.txt" --metrics "$WORK/m.jsonl"
    [ ! -e "$WORK/m.jsonl" ] && [ ! -e "$WORK/m.jsonl.partial" ] || fail "a metrics file was left behind"
    : > "$WORK/empty.txt"
    expect_error "empty" "$LLMPI" train --model tiny --data "$WORK/empty.txt"
    expect_error "is not a regular file|not an llmpi prep output" "$LLMPI" train --model tiny --data "$WORK"
    ;;
bad_shape)
    expect_error "width 100 is not divisible by heads 3" "$LLMPI" train "${tiny[@]}" --width 100 --heads 3 --metrics "$WORK/m.jsonl"
    expect_error "--seq 100 exceeds the model's context 64" "$LLMPI" train --model tiny --data "$WORK/text.txt" --seq 100 --metrics "$WORK/m.jsonl"
    expect_error "unknown model preset 'gpt5'" "$LLMPI" train --model gpt5 --data "$WORK/text.txt"
    expect_error "--steps: 'ten' is not an integer" "$LLMPI" train "${tiny[@]}" --steps ten
    expect_error "unknown option '--bogus'" "$LLMPI" train "${tiny[@]}" --bogus
    expect_error "--optimizer: unknown 'lion'" "$LLMPI" train "${tiny[@]}" --optimizer lion
    [ ! -e "$WORK/m.jsonl" ] && [ ! -e "$WORK/m.jsonl.partial" ] || fail "a metrics file was left behind"
    ;;
nan_loss)
    # An absurd learning rate without clipping diverges: the run must stop
    # with a message naming the step, exit non-zero and leave no metrics file.
    expect_error "loss is (NaN|infinite) at step [0-9]+" "$LLMPI" train "${tiny[@]}" --steps 200 --lr 1000 --warmup 0 --grad-clip 0 --optimizer sgd --metrics "$WORK/m.jsonl"
    [ ! -e "$WORK/m.jsonl" ] && [ ! -e "$WORK/m.jsonl.partial" ] || fail "a metrics file was left behind"
    ;;
help)
    "$LLMPI" --help | grep -q "train"
    "$LLMPI" train --help | grep -q -- "--metrics"
    "$LLMPI" train --help | grep -q -- "--dtype"
    "$LLMPI" bench train --help | grep -q -- "--json"
    "$LLMPI" bench train --help | grep -q -- "--dtype"
    expect_error "unknown command" "$LLMPI" frobnicate
    ;;
selftest)
    # without a GPU: a notice and status 0 (the checks themselves are
    # tested on the CPU in test_backend_check); bad input: status 1
    "$LLMPI" selftest --help | grep -q -- "--quick"
    "$LLMPI" selftest --quick > "$WORK/s.txt"
    cat "$WORK/s.txt"
    if ! grep -q "GPU checks are skipped" "$WORK/s.txt"; then
        grep -q "checks: .* passed, 0 failed" "$WORK/s.txt" || fail "selftest on a GPU failed"
    fi
    expect_error "unknown option '--bogus'" "$LLMPI" selftest --bogus
    expect_error "--steps" "$LLMPI" selftest --steps 0
    ;;
gpu_nccl)
    # ctest -L gpu: one GPU rank under mpirun with ZeRO-1, so gradients are
    # reduce-scattered and parameters allgathered by NCCL on device buffers,
    # against the same run on the CPU (MPI, host buffers); bench train on the
    # GPU through the same groups. Exit 77 (skipped) without a GPU.
    run=(mpirun -np 1 "$LLMPI" train "${tiny[@]}" --steps 10 --lr 1e-3 --zero 1 --seed 3)
    rc=0
    "${run[@]}" --device cuda --metrics "$WORK/g.jsonl" > "$WORK/g.txt" 2>&1 || rc=$?
    cat "$WORK/g.txt"
    if [ $rc -ne 0 ] && grep -q "no usable CUDA device\|no CUDA backend" "$WORK/g.txt"; then
        echo "no CUDA device: skipped"; exit 77
    fi
    [ $rc -eq 0 ] || fail "GPU training with NCCL failed"
    "${run[@]}" --device cpu --metrics "$WORK/c.jsonl"
    python3 - "$WORK/g.jsonl" "$WORK/c.jsonl" <<'PY'
import json, sys
g = [json.loads(l)["loss"] for l in open(sys.argv[1])]
c = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(g) == len(c) == 10, (len(g), len(c))
for i, (a, b) in enumerate(zip(g, c)):
    assert abs(a - b) <= 1e-3 * max(1.0, abs(b)), f"step {i + 1}: GPU {a} vs CPU {b}"
print("GPU (NCCL) loss curve follows the CPU (MPI) one:", g[-1], c[-1])
PY
    mpirun -np 1 "$LLMPI" bench train --device cuda --model tiny --batch 2 --seq 32 --steps 2 \
        --warmup-steps 1 --zero 1 --json > "$WORK/b.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['tokens_per_s']>0, d" "$WORK/b.json"
    ;;
bench_json)
    "$LLMPI" bench train --model tiny --batch 2 --seq 32 --steps 2 --warmup-steps 1 --json > "$WORK/b.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['tokens_per_s']>0 and d['gflops']>0, d" "$WORK/b.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['dtype'] == 'fp32', d" "$WORK/b.json"
    # MFU is reported against a GPU's peak: on the CPU both are null
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['device'] != 'cpu' or (d['mfu'] is None and d['peak_tflops'] is None), d" "$WORK/b.json"
    ;;
dtype)
    # --dtype bf16 rounds the matmuls' operands to bf16 (fp32 accumulation,
    # everything else fp32). The same run in fp32 and bf16: the losses agree
    # loosely (1e-2 relative at every step; ~1e-4 seen), and are not
    # identical, so the mode is really on.
    "$LLMPI" train "${tiny[@]}" --steps 15 --lr 3e-3 --warmup 3 --metrics "$WORK/f.jsonl"
    "$LLMPI" train "${tiny[@]}" --steps 15 --lr 3e-3 --warmup 3 --dtype bf16 --metrics "$WORK/b.jsonl" 2> "$WORK/err.txt"
    cat "$WORK/err.txt"
    grep -q "mixed precision: bf16" "$WORK/err.txt" || fail "no note of the bf16 matmuls"
    python3 - "$WORK/f.jsonl" "$WORK/b.jsonl" <<'PY'
import json, sys
f = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(f) == len(b) == 15, (len(f), len(b))
worst = max(abs(x - y) / x for x, y in zip(f, b))
print(f"largest relative loss difference bf16 vs fp32: {worst:.2e}")
assert worst <= 1e-2, "the bf16 run strays from the fp32 run"
assert f != b, "bf16 gave the fp32 losses bit for bit: the matmuls were not rounded"
PY
    expect_error "--dtype: unknown 'fp16' \(fp32 or bf16\)" "$LLMPI" train "${tiny[@]}" --dtype fp16
    expect_error "--dtype: unknown 'half'" "$LLMPI" bench train --model tiny --dtype half
    "$LLMPI" bench train --model tiny --batch 2 --seq 32 --steps 2 --warmup-steps 1 --dtype bf16 --json > "$WORK/b.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['dtype'] == 'bf16' and d['tokens_per_s'] > 0, d" "$WORK/b.json"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "PASS: $CASE"
