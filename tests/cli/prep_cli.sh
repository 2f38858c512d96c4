#!/usr/bin/env bash
# tests/cli/prep_cli.sh LLMPI SOURCE_DIR CASE — end-to-end checks of
# `llmpi prep` as a user runs it. Each CASE is one ctest. The corpus is
# generated here (the tokenizer fixture's text, the project's C sources, a
# JSONL file written below); python3 parses the shard headers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
FIXTURE="$SRC/tests/golden/tokenizer"
mkdir -p "$WORK/in/dir/sub"
cp "$FIXTURE/corpus.txt" "$WORK/in/corpus.txt"
cp "$SRC"/src/common/tokenizer*.c "$WORK/in/dir/"
cp "$SRC"/src/common/data.c "$WORK/in/dir/sub/"
python3 - "$WORK/in/docs.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(200):
        f.write(json.dumps({"id": i, "text": f"Document {i}: it's the {i}th one.\n"
                            "Second line, caf\u00e9 \u4e2d\u6587 \U0001F600 " * (1 + i % 3)}) + "\n")
    f.write("\n")  # a blank line is skipped
PY

# check_shards DIR VOCAB: headers valid, every token < vocab, val ~ 5%.
check_shards() {
    python3 - "$1" "$2" <<'PY'
import os, struct, sys
d, vocab = sys.argv[1], int(sys.argv[2])
counts = {}
for name in ("train", "val"):
    raw = open(os.path.join(d, name + ".bin"), "rb").read()
    assert raw[:8] == b"LLMPITOK", f"{name}: magic {raw[:8]!r}"
    version, v, n, dtype = struct.unpack("<IIQI", raw[8:28])
    assert version == 1 and v == vocab, (name, version, v)
    assert raw[28:64] == bytes(36), "header padding not zero"
    assert dtype == (2 if vocab <= 65536 else 4), dtype
    assert len(raw) == 64 + n * dtype, (name, len(raw), n)
    toks = struct.unpack("<%d%s" % (n, "H" if dtype == 2 else "i"), raw[64:])
    assert all(0 <= t < vocab for t in toks), f"{name}: token >= vocab"
    counts[name] = n
total = counts["train"] + counts["val"]
assert total > 1000 and abs(counts["val"] - int(0.05 * total)) <= 1, counts
print("shards ok:", counts)
PY
}

case "$CASE" in
text_dir_jsonl)
    # the fixture's HF vocabulary, three kinds of input
    "$LLMPI" prep "$WORK/in/corpus.txt" "$WORK/in/dir" "$WORK/in/docs.jsonl" \
        --out "$WORK/out" --tokenizer "$FIXTURE" | tee "$WORK/summary.txt"
    nfiles=$(find "$WORK/in" -type f | wc -l)
    ndocs=$((nfiles - 1 + 200))  # every file is a document, but the JSONL holds 200
    grep -q "$nfiles files, $ndocs documents" "$WORK/summary.txt" || fail "wrong file/document count"
    check_shards "$WORK/out" 2000
    python3 -c "import json,sys; a,b=(json.load(open(p)) for p in sys.argv[1:]); assert a==b" \
        "$WORK/out/vocab.json" "$FIXTURE/vocab.json" || fail "vocab.json differs from the one used"
    [ -f "$WORK/out/merges.txt" ] || fail "no merges.txt in the output"
    ls "$WORK/out" | grep -q tmp && fail "a .tmp file was left behind"
    # <|endoftext|> (id 0 in the fixture) ends each document
    python3 - "$WORK/out" "$ndocs" <<'PY'
import struct, sys
toks = []
for name in ("train", "val"):
    raw = open(f"{sys.argv[1]}/{name}.bin", "rb").read()
    toks += struct.unpack("<%dH" % ((len(raw) - 64) // 2), raw[64:])
assert toks.count(0) == int(sys.argv[2]) and toks[-1] == 0, toks.count(0)
PY
    # bytes vocabulary when no tokenizer is given: token == byte, no eot
    "$LLMPI" prep "$WORK/in/corpus.txt" --out "$WORK/bytes" --val-fraction 0.05
    check_shards "$WORK/bytes" 256
    [ ! -e "$WORK/bytes/vocab.json" ] || fail "bytes prep wrote a vocab.json"
    ;;
train_tokenizer)
    "$LLMPI" prep "$WORK/in/corpus.txt" "$WORK/in/docs.jsonl" --out "$WORK/out" \
        --train-tokenizer --vocab-size 1500
    check_shards "$WORK/out" 1500
    python3 - "$WORK/out/vocab.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 1500 and v["<|endoftext|>"] == 1499 and v["Ġ"] == 220, (len(v), v.get("Ġ"))  # GPT-2's id too
assert sorted(v.values()) == list(range(1500))
PY
    # the trained vocabulary encodes again, identically
    "$LLMPI" prep "$WORK/in/corpus.txt" "$WORK/in/docs.jsonl" --out "$WORK/again" \
        --tokenizer "$WORK/out"
    cmp "$WORK/out/train.bin" "$WORK/again/train.bin" || fail "re-encoding differs"
    ;;
bad_input)
    expect_error "input '$WORK/nothere'" "$LLMPI" prep "$WORK/nothere" --out "$WORK/o1"
    [ ! -e "$WORK/o1" ] || fail "an output directory was created for a missing input"
    printf '{"text": "ok"}\n{"body": "no text field"}\n' > "$WORK/nofield.jsonl"
    expect_error "nofield.jsonl line 2: no field \"text\"" \
        "$LLMPI" prep "$WORK/nofield.jsonl" --out "$WORK/o2"
    [ ! -e "$WORK/o2" ] || fail "half-written output after a JSONL error"
    printf '{"text": "ok"}\n\n{"text": "broken\n' > "$WORK/badjson.jsonl"
    expect_error "badjson.jsonl line 3: invalid JSON" \
        "$LLMPI" prep "$WORK/badjson.jsonl" --out "$WORK/o3"
    printf '{"text": 5}\n' > "$WORK/notstring.jsonl"
    expect_error "line 1: field \"text\" is not a string" \
        "$LLMPI" prep "$WORK/notstring.jsonl" --out "$WORK/o4"
    expect_error "no field \"body\"" "$LLMPI" prep "$WORK/in/docs.jsonl" --field body --out "$WORK/o5"
    # an existing output keeps its old shards when a new prep fails
    "$LLMPI" prep "$WORK/in/corpus.txt" --out "$WORK/keep"
    cp "$WORK/keep/train.bin" "$WORK/train.before"
    expect_error "invalid JSON" "$LLMPI" prep "$WORK/badjson.jsonl" --out "$WORK/keep"
    cmp "$WORK/keep/train.bin" "$WORK/train.before" || fail "a failed prep changed train.bin"
    ls "$WORK/keep" | grep -q tmp && fail "a .tmp file was left behind"
    expect_error "vocab.json" "$LLMPI" prep "$WORK/in/corpus.txt" --out "$WORK/o6" --tokenizer "$WORK"
    expect_error "needs --vocab-size" "$LLMPI" prep "$WORK/in/corpus.txt" --out "$WORK/o7" --train-tokenizer
    expect_error "--out DIR is required" "$LLMPI" prep "$WORK/in/corpus.txt"
    expect_error "--vocab-size: 100 is out of range" \
        "$LLMPI" prep "$WORK/in/corpus.txt" --out "$WORK/o8" --train-tokenizer --vocab-size 100
    expect_error "--val-fraction" "$LLMPI" prep "$WORK/in/corpus.txt" --out "$WORK/o9" --val-fraction 2
    expect_error "unknown option" "$LLMPI" prep "$WORK/in/corpus.txt" --out "$WORK/o9" --frobnicate
    ;;
help)
    "$LLMPI" prep --help | grep -q -- "--train-tokenizer" || fail "prep --help lacks --train-tokenizer"
    "$LLMPI" bench tokenizer --help | grep -q -- "--vocab" || fail "bench tokenizer --help"
    "$LLMPI" bench tokenizer --vocab "$FIXTURE" --text "$FIXTURE/corpus.txt" --repeat 2 --json \
        > "$WORK/bench.json"
    python3 - "$WORK/bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("bytes", "tokens", "mb_per_s", "tokens_per_s", "vocab_size"):
    assert k in r, k
assert r["vocab_size"] == 2000 and r["mb_per_s"] > 0 and r["tokens"] > 10000, r
PY
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "ok: $CASE"
