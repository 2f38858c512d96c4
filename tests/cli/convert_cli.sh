#!/usr/bin/env bash
# tests/cli/convert_cli.sh LLMPI SOURCE_DIR CASE — `llmpi convert` as a user
# runs it, on the transformers-written fixture tests/golden/hf_tiny. Each
# CASE is one ctest. Python (stdlib only, no torch) edits safetensors headers
# and checks JSON.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
HF=$SRC/tests/golden/hf_tiny

# Nothing but the inputs in $WORK: no output file, no temporary left behind.
expect_no_output() {
    local left
    left=$(find "$WORK" -mindepth 1 -maxdepth 1 ! -name 'in*' ! -name out.txt)
    [ -z "$left" ] || fail "output left behind: $left"
}

# A copy of hf_tiny in $WORK/$1 (without the files named after it).
copy_hf() {
    local dir=$WORK/$1; shift
    mkdir "$dir"
    cp "$HF"/config.json "$HF"/model.safetensors "$HF"/vocab.json "$HF"/merges.txt "$dir"/
    for f in "$@"; do rm "$dir/$f"; done
}

# edit_header FILE PYTHON: rewrite FILE's safetensors header after running
# PYTHON on the parsed header `h` (a dict); the data section is kept.
edit_header() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys
path, code = sys.argv[1], sys.argv[2]
buf = open(path, "rb").read()
(n,) = struct.unpack_from("<Q", buf, 0)
h = json.loads(buf[8:8 + n])
exec(code)
hdr = json.dumps(h).encode()
open(path, "wb").write(struct.pack("<Q", len(hdr)) + hdr + buf[8 + n:])
PY
}

# edit_config FILE PYTHON: the same for a config.json (`c` is the dict).
edit_config() {
    python3 - "$1" "$2" <<'PY'
import json, sys
path, code = sys.argv[1], sys.argv[2]
c = json.load(open(path))
exec(code)
json.dump(c, open(path, "w"), indent=2)
PY
}

case "$CASE" in
both_ways)
    "$LLMPI" convert --from-hf "$HF" --out "$WORK/tiny.h5"
    [ -s "$WORK/tiny.h5" ] || fail "no checkpoint written"
    "$LLMPI" convert --to-hf "$WORK/tiny.h5" --out "$WORK/hf"
    for f in model.safetensors config.json vocab.json merges.txt tokenizer_config.json; do
        [ -s "$WORK/hf/$f" ] || fail "--to-hf did not write $f"
    done
    ls -a "$WORK" | grep -q '\.tmp' && fail "a temporary file or directory was left behind"
    # Every tensor byte-identical (names as save_pretrained writes them, Conv1D
    # layout), the config a GPT2LMHeadModel one with the fixture's sizes.
    python3 - "$HF" "$WORK/hf" <<'PY'
import json, struct, sys
def tensors(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    h = json.loads(buf[8:8 + n])
    meta = h.pop("__metadata__", {})
    return meta, {k: (v["dtype"], v["shape"], buf[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
                  for k, v in h.items()}
ref_meta, ref = tensors(sys.argv[1] + "/model.safetensors")
meta, ours = tensors(sys.argv[2] + "/model.safetensors")
assert sorted(ref) == sorted(ours), sorted(set(ref) ^ set(ours))
for k in ref:
    assert ref[k] == ours[k], f"tensor {k} differs"
assert meta.get("format") == "pt", meta
a, b = json.load(open(sys.argv[1] + "/config.json")), json.load(open(sys.argv[2] + "/config.json"))
for k in ("model_type", "vocab_size", "n_positions", "n_embd", "n_layer", "n_head",
          "activation_function", "layer_norm_epsilon", "bos_token_id", "eos_token_id"):
    assert a[k] == b[k], (k, a[k], b[k])
assert b["architectures"] == ["GPT2LMHeadModel"]
assert json.load(open(sys.argv[2] + "/vocab.json")) == json.load(open(sys.argv[1] + "/vocab.json"))
print(f"{len(ref)} tensors byte-identical; config and vocabulary match")
PY
    # and back: our own output converts again
    "$LLMPI" convert --from-hf "$WORK/hf" --out "$WORK/tiny2.h5"
    [ -s "$WORK/tiny2.h5" ] || fail "our own --to-hf output did not convert back"
    # a trailing slash on --out is fine, an existing non-empty directory is not
    "$LLMPI" convert --to-hf "$WORK/tiny.h5" --out "$WORK/hf2/"
    [ -s "$WORK/hf2/model.safetensors" ] || fail "--out DIR/ not written"
    expect_error "hf2: exists and is not empty" "$LLMPI" convert --to-hf "$WORK/tiny.h5" --out "$WORK/hf2"
    mkdir "$WORK/empty"
    "$LLMPI" convert --to-hf "$WORK/tiny.h5" --out "$WORK/empty"
    [ -s "$WORK/empty/model.safetensors" ] || fail "an existing empty --out directory was not filled"
    ;;
bad_input)
    out=$WORK/out.h5
    # missing config.json
    copy_hf in_nocfg config.json
    expect_error "in_nocfg/config.json: No such file" "$LLMPI" convert --from-hf "$WORK/in_nocfg" --out "$out"
    # config options llmpi's GPT-2 cannot represent: the field is named
    copy_hf in_relu
    edit_config "$WORK/in_relu/config.json" 'c["activation_function"] = "relu"'
    expect_error "in_relu/config.json: field 'activation_function' is 'relu'" \
        "$LLMPI" convert --from-hf "$WORK/in_relu" --out "$out"
    copy_hf in_eps
    edit_config "$WORK/in_eps/config.json" 'c["layer_norm_epsilon"] = 1e-6'
    expect_error "in_eps/config.json: field 'layer_norm_epsilon' is 1e-06" \
        "$LLMPI" convert --from-hf "$WORK/in_eps" --out "$out"
    copy_hf in_inner
    edit_config "$WORK/in_inner/config.json" 'c["n_inner"] = 100'
    expect_error "in_inner/config.json: field 'n_inner' is 100" \
        "$LLMPI" convert --from-hf "$WORK/in_inner" --out "$out"
    copy_hf in_untied
    edit_config "$WORK/in_untied/config.json" 'c["tie_word_embeddings"] = False'
    expect_error "in_untied/config.json: field 'tie_word_embeddings' is false" \
        "$LLMPI" convert --from-hf "$WORK/in_untied" --out "$out"
    copy_hf in_nolayers
    edit_config "$WORK/in_nolayers/config.json" 'del c["n_layer"]'
    expect_error "in_nolayers/config.json: field 'n_layer' is missing" \
        "$LLMPI" convert --from-hf "$WORK/in_nolayers" --out "$out"
    # safetensors: truncated header, offsets out of range, a wrong shape, an unknown tensor
    copy_hf in_trunc
    head -c 100 "$HF/model.safetensors" > "$WORK/in_trunc/model.safetensors"
    expect_error "in_trunc/model.safetensors: header length [0-9]+ exceeds the file" \
        "$LLMPI" convert --from-hf "$WORK/in_trunc" --out "$out"
    copy_hf in_range
    edit_header "$WORK/in_range/model.safetensors" \
        'k = max((v for v in h if v != "__metadata__"), key=lambda v: h[v]["data_offsets"][1]); h[k]["data_offsets"][1] += 4'
    expect_error "in_range/model.safetensors: tensor '[a-z0-9_.]+': data_offsets \[[0-9]+, [0-9]+\] are out of range" \
        "$LLMPI" convert --from-hf "$WORK/in_range" --out "$out"
    copy_hf in_shape
    edit_header "$WORK/in_shape/model.safetensors" 'h["transformer.h.0.mlp.c_fc.weight"]["shape"] = [256, 64]'
    expect_error "in_shape/model.safetensors: tensor 'transformer.h.0.mlp.c_fc.weight' has shape \[256, 64\]; config.json implies \[64, 256\]" \
        "$LLMPI" convert --from-hf "$WORK/in_shape" --out "$out"
    copy_hf in_name
    edit_header "$WORK/in_name/model.safetensors" 'h["transformer.ln_g.bias"] = h.pop("transformer.ln_f.bias")'
    expect_error "in_name/model.safetensors: tensor 'transformer.ln_g.bias' is not a parameter" \
        "$LLMPI" convert --from-hf "$WORK/in_name" --out "$out"
    copy_hf in_noweights model.safetensors
    expect_error "in_noweights/model.safetensors: No such file" \
        "$LLMPI" convert --from-hf "$WORK/in_noweights" --out "$out"
    copy_hf in_notok merges.txt
    expect_error "in_notok/merges.txt: No such file" \
        "$LLMPI" convert --from-hf "$WORK/in_notok" --out "$out"
    expect_no_output
    # --to-hf: a missing or damaged checkpoint leaves no directory behind
    expect_error "in_missing.h5" "$LLMPI" convert --to-hf "$WORK/in_missing.h5" --out "$WORK/hf"
    cp "$HF/config.json" "$WORK/in_notckpt.h5"
    expect_error "in_notckpt.h5" "$LLMPI" convert --to-hf "$WORK/in_notckpt.h5" --out "$WORK/hf"
    expect_no_output
    # the command line
    expect_error "give exactly one of --from-hf DIR or --to-hf FILE" "$LLMPI" convert --out "$out"
    expect_error "give exactly one of" "$LLMPI" convert --from-hf "$HF" --to-hf "$out" --out "$out"
    expect_error "--out PATH is required" "$LLMPI" convert --from-hf "$HF"
    expect_error "unknown option '--bogus'" "$LLMPI" convert --from-hf "$HF" --bogus
    expect_error "--out needs a value" "$LLMPI" convert --from-hf "$HF" --out
    expect_no_output
    ;;
help)
    "$LLMPI" convert --help > "$WORK/help.txt"
    grep -q -- "--from-hf DIR --out FILE.h5" "$WORK/help.txt" || fail "help lacks --from-hf"
    grep -q -- "--to-hf FILE.h5 --out DIR" "$WORK/help.txt" || fail "help lacks --to-hf"
    "$LLMPI" --help | grep -q "convert" || fail "llmpi --help does not list convert"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "OK $CASE"
