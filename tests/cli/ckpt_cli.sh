#!/usr/bin/env bash
# tests/cli/ckpt_cli.sh LLMPI SOURCE_DIR CASE — checkpoints and resume from
# the command line (docs/checkpoints.md). Each CASE is one ctest:
#   resume    a run resumed from its step-10 checkpoint logs the same numbers
#             for steps 11..20 as the uninterrupted run (sgd, adam, adamw),
#             ends with the same parameters, and --resume DIR / bare --resume
#             pick the newest; the metrics file continues across the resume
#   inspect   h5dump (and h5py where installed) read the layout we document
#   mismatch  wrong shape / optimizer, missing / damaged files: a message
#             naming the file and field, exit 1, nothing overwritten
#   kill      kill -9 at random moments of a --ckpt-every 1 run, several
#             times: every checkpoint left is complete and the run resumes
# Training text: the project's own C sources (always present, no download).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
project_text "$WORK/text.txt"
cd "$WORK"

# The metrics lines without their timing fields, optionally from step $2 on.
numbers() { python3 - "$1" "${2:-1}" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["step"] >= int(sys.argv[2]):
        r.pop("tokens_per_s"); r.pop("ms")
        print(json.dumps(r, sort_keys=True))
PY
}

tiny=(--model tiny --data text.txt --batch 4 --seq 32 --log-every 5 --steps 20 --lr 1e-3 --warmup 3 --eval-every 5)

case "$CASE" in
resume)
    for opt in sgd adam adamw; do
        rm -rf full part b; mkdir part
        "$LLMPI" train "${tiny[@]}" --optimizer $opt --ckpt-dir full --ckpt-every 5 --metrics full.jsonl
        ls full/ckpt_000000{05,10,15,20}.h5 > /dev/null || fail "$opt: expected checkpoints 5, 10, 15, 20"
        # the same flags, from the step-10 file
        "$LLMPI" train "${tiny[@]}" --optimizer $opt --resume full/ckpt_00000010.h5 --metrics r1.jsonl
        diff <(numbers full.jsonl 11) <(numbers r1.jsonl) || fail "$opt: resumed numbers differ"
        # no flags but --data: every setting comes from the checkpoint
        "$LLMPI" train --data text.txt --resume full/ckpt_00000010.h5 --metrics r2.jsonl
        diff <(numbers full.jsonl 11) <(numbers r2.jsonl) || fail "$opt: resume with the checkpoint's settings differs"
        # --resume DIR picks the newest complete file (10, not the .tmp)
        cp full/ckpt_00000005.h5 full/ckpt_00000010.h5 part/
        cp full/ckpt_00000020.h5 part/.ckpt_00000015.h5.tmp
        # a metrics record interrupted after step 12 is continued, not duplicated
        head -n 12 full.jsonl > r3.jsonl.partial
        "$LLMPI" train "${tiny[@]}" --optimizer $opt --resume part --ckpt-dir b --metrics r3.jsonl 2> err.txt
        grep -q "resuming from part/ckpt_00000010.h5 at step 10" err.txt || fail "$opt: --resume DIR did not pick step 10"
        [ ! -e r3.jsonl.partial ] || fail "$opt: a .partial metrics file was left"
        diff <(numbers full.jsonl) <(numbers r3.jsonl) || fail "$opt: the continued metrics file differs"
        # the resumed run ends with the same parameters and optimizer state
        h5diff full/ckpt_00000020.h5 b/ckpt_00000020.h5 /params /params || fail "$opt: final parameters differ"
        h5diff full/ckpt_00000020.h5 b/ckpt_00000020.h5 /optimizer /optimizer || fail "$opt: final optimizer state differs"
        # bare --resume: the newest in --ckpt-dir (10 in part/), writing on from there
        "$LLMPI" train "${tiny[@]}" --optimizer $opt --ckpt-dir part --ckpt-every 5 --resume --keep 2 2> err.txt
        grep -q "resuming from part/ckpt_00000010.h5 at step 10" err.txt || fail "$opt: bare --resume did not pick step 10"
        [ "$(cd part && ls -A | tr '\n' ' ')" = "ckpt_00000015.h5 ckpt_00000020.h5 " ] \
            || fail "$opt: expected only steps 15 and 20 kept (and the stale .tmp gone): $(ls -A part)"
    done
    # bare --resume on an empty --ckpt-dir starts from scratch
    rm -rf fresh
    "$LLMPI" train "${tiny[@]}" --steps 3 --ckpt-dir fresh --resume 2> err.txt
    grep -q "starting from step 0" err.txt || fail "bare --resume on a new dir did not start fresh"
    [ -e fresh/ckpt_00000003.h5 ] || fail "no checkpoint at the last step"
    ;;
inspect)
    "$LLMPI" train "${tiny[@]}" --steps 2 --ckpt-dir d
    f=d/ckpt_00000002.h5
    h5dump -H "$f" > h.txt
    for a in vocab_size max_seq n_layer n_head n_embd; do
        grep -q "ATTRIBUTE \"$a\"" h.txt || fail "h5dump -H: no config attribute $a"
    done
    for d in wte wpe h.0.attn.c_attn.weight h.1.mlp.c_proj.bias ln_f.weight; do
        grep -q "DATASET \"$d\"" h.txt || fail "h5dump -H: no parameter dataset $d"
    done
    grep -A2 'DATASET "wte"' h.txt | grep -q 'SIMPLE { ( 256, 32 )' || fail "wte not at [256, 32]"
    h5dump -a /config/n_layer "$f" | grep -q "(0): 2" || fail "n_layer attribute is not 2"
    h5dump -a /optimizer/kind "$f" | grep -q '"adamw"' || fail "optimizer kind is not adamw"
    h5dump -a /complete "$f" | grep -q "(0): 1" || fail "complete is not 1"
    py=""
    for p in python3 /usr/bin/python3; do
        if "$p" -c "import h5py" 2> /dev/null; then py=$p; break; fi
    done
    if [ -n "$py" ]; then
        "$py" - "$f" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["format"] == "llmpi-checkpoint" and f.attrs["complete"] == 1
    cfg = {k: int(v) for k, v in f["config"].attrs.items()}
    assert cfg == dict(vocab_size=256, max_seq=64, n_layer=2, n_head=4, n_embd=32), cfg
    assert f["params/wte"].shape == (256, 32) and f["params/wte"].dtype == "float32"
    assert f["tokenizer"].attrs["kind"] == "bytes"
    assert int(f["train"].attrs["step"]) == 2 and len(f["train"].attrs["rng"]) == 4
    assert f["optimizer/v/h.0.ln_1.weight"].shape == (32,)
print("h5py reads the checkpoint")
PY
    else
        echo "h5py not installed: skipping the Python check"
    fi
    ;;
mismatch)
    "$LLMPI" train "${tiny[@]}" --steps 10 --ckpt-dir d --ckpt-every 5 --metrics m.jsonl
    snapshot() { (cd d && ls -A && md5sum -- *) ; md5sum m.jsonl; }
    snapshot > before.txt
    c=d/ckpt_00000005.h5
    expect_error "$c: the checkpoint's model has n_layer 2 but the command line asks for 3" "$LLMPI" train "${tiny[@]}" --resume "$c" --layers 3 --ckpt-dir d --metrics m.jsonl
    expect_error "$c: the checkpoint's model has n_embd 32 but the command line asks for 64" "$LLMPI" train "${tiny[@]}" --resume "$c" --width 64 --ckpt-dir d --metrics m.jsonl
    expect_error "$c: the checkpoint's model has n_head 4 but the command line asks for 2" "$LLMPI" train "${tiny[@]}" --resume "$c" --heads 2 --ckpt-dir d --metrics m.jsonl
    expect_error "$c: the checkpoint's model has vocab_size 256 but the command line asks for 300" "$LLMPI" train "${tiny[@]}" --resume "$c" --vocab 300 --ckpt-dir d --metrics m.jsonl
    expect_error "$c: the checkpoint's optimizer is adamw but the command line asks for sgd" "$LLMPI" train "${tiny[@]}" --resume "$c" --optimizer sgd --ckpt-dir d --metrics m.jsonl
    expect_error "--resume 'd/nope.h5': No such file" "$LLMPI" train "${tiny[@]}" --resume d/nope.h5 --ckpt-dir d --metrics m.jsonl
    mkdir empty
    expect_error "--resume 'empty': the directory holds no complete checkpoint" "$LLMPI" train --data text.txt --resume empty
    expect_error "--ckpt-dir 'd' already holds checkpoints" "$LLMPI" train "${tiny[@]}" --ckpt-dir d --metrics m.jsonl
    expect_error "d/ckpt_00000010.h5: the checkpoint is at step 10, the end of a --steps 10 run" "$LLMPI" train --data text.txt --resume d --metrics m.jsonl
    head -c 30000 d/ckpt_00000010.h5 > trunc.h5
    expect_error "trunc.h5: not a readable HDF5 file: corrupt or truncated" "$LLMPI" train "${tiny[@]}" --resume trunc.h5 --ckpt-dir d --metrics m.jsonl
    head -c 4000 "$LLMPI" > garbage.h5
    expect_error "garbage.h5: not a readable HDF5 file" "$LLMPI" train "${tiny[@]}" --resume garbage.h5 --ckpt-dir d --metrics m.jsonl
    snapshot > after.txt
    diff before.txt after.txt || fail "a failed run changed the checkpoint directory or the metrics file"
    [ ! -e m.jsonl.partial ] || fail "a failed run left a .partial metrics file"
    ;;
kill)
    # ~1.7M parameters: a save (20 MB with AdamW moments) takes tens of ms,
    # so a random kill often lands inside one.
    big=(--model tiny --layers 2 --width 256 --heads 4 --data text.txt --batch 1 --seq 16 --steps 100000 --lr 1e-3)
    for i in 1 2 3 4; do
        "$LLMPI" train "${big[@]}" --ckpt-dir d --ckpt-every 1 --keep 3 --resume > /dev/null 2> log$i.txt &
        pid=$!
        # once this run has saved once, kill it 0-190 ms later: mostly inside
        # a save, since saves take most of each step's time here
        for _ in $(seq 1000); do
            grep -q '^checkpoint step' log$i.txt && break
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.02
        done
        sleep "0.$((RANDOM % 20))"
        kill -9 "$pid" 2> /dev/null || fail "run $i ended before it was killed: $(tail -3 log$i.txt)"
        wait "$pid" 2> /dev/null || true
        n=$(ls d | grep -c '^ckpt_.*\.h5$' || true)
        [ "$n" -ge 1 ] || fail "run $i: no checkpoint written before the kill: $(tail -3 log$i.txt)"
        for f in d/ckpt_*.h5; do
            h5dump -a /complete "$f" 2> /dev/null | grep -q "(0): 1" || fail "run $i: $f is damaged or incomplete"
        done
        echo "kill $i: $(ls -A d | tr '\n' ' ')"
    done
    # the newest complete one resumes: train one more step from it
    newest=$(ls d | grep '^ckpt_.*\.h5$' | sort | tail -n 1)
    step=$((10#${newest:5:8}))
    "$LLMPI" train --data text.txt --resume d --steps $((step + 1)) --ckpt-dir d 2> log.txt || { cat log.txt; fail "resume after the kills failed"; }
    grep -q "resuming from d/$newest at step $step" log.txt || fail "did not resume from $newest"
    [ -e "d/ckpt_$(printf %08d $((step + 1))).h5" ] || fail "no checkpoint after the resumed step"
    ! ls -A d | grep -q '\.tmp$' || fail "stale .tmp files were not pruned: $(ls -A d)"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "PASS: $CASE"
