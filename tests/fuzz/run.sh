#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [tokenizer|api_json|all] — build the fuzzers
# with clang (libFuzzer + ASan + UBSan) and run each chosen one for SECONDS
# (default 60; default target all, one after the other, one worker each).
# Crashes are written to build-fuzz/ (crash-*); the corpora grow in
# build-fuzz/corpus (tokenizer) and build-fuzz/corpus_api_json.
set -euo pipefail
SECONDS_TO_RUN=${1:-60}
WHICH=${2:-all}
case "$WHICH" in
tokenizer | api_json | all) ;;
*)
    echo "usage: $0 [SECONDS] [tokenizer|api_json|all]" >&2
    exit 2
    ;;
esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/build-fuzz"  # build*/ is git-ignored
mkdir -p "$OUT/corpus" "$OUT/corpus_api_json"
CC=${CC:-clang}
FUZZ_FLAGS=(-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)

run_tokenizer() {
    "$CC" "${FUZZ_FLAGS[@]}" -DPCRE2_CODE_UNIT_WIDTH=8 \
        -DFIXTURE_DIR="\"$ROOT/tests/golden/tokenizer\"" \
        -I "$ROOT/src/common" "$ROOT/tests/fuzz/fuzz_tokenizer.c" \
        "$ROOT"/src/common/tokenizer*.c "$ROOT/src/common/err.c" \
        $(pkg-config --cflags --libs libpcre2-8 libcjson) -o "$OUT/fuzz_tokenizer"
    # Seeds: a small valid vocabulary (the 256 bytes + merges), and fixture text.
    python3 - "$OUT/corpus" "$ROOT/tests/golden/tokenizer" <<'PY'
import json, os, sys
out, fixture = sys.argv[1], sys.argv[2]
def byte_text(b):
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = [x for x in range(256) if x not in keep]
    return chr(b) if b in keep else chr(256 + extra.index(b))
vocab = {byte_text(b): b for b in range(256)}
for i, w in enumerate(["he", "ll", "hell", "Ġt", "Ġth", "<|endoftext|>"]):
    vocab[w] = 256 + i
merges = "#version: 0.2\nh e\nl l\nhe ll\nĠ t\nĠt h\n"
texts = ["hello there", "the\r\n\t  x's 123 \xff\xfe", open(os.path.join(fixture, "corpus.txt")).read()[:2000]]
for i, t in enumerate(texts):
    data = json.dumps(vocab).encode() + b"\0" + merges.encode() + b"\0" + t.encode("utf-8", "surrogateescape")
    open(os.path.join(out, f"seed{i}"), "wb").write(data)
PY
    (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 ./fuzz_tokenizer -max_total_time="$SECONDS_TO_RUN" \
        -max_len=65536 -timeout=10 -rss_limit_mb=2048 corpus)
}

run_api_json() {
    "$CC" "${FUZZ_FLAGS[@]}" -I "$ROOT/src/infer" -I "$ROOT/src/common" \
        "$ROOT/tests/fuzz/fuzz_api_json.c" "$ROOT/src/infer/api_json.c" \
        "$ROOT/src/infer/http_route.c" \
        $(pkg-config --cflags --libs libcjson) -lm -o "$OUT/fuzz_api_json"
    # Seeds: valid bodies of every endpoint (with the fields that have
    # ranges), a refused one, and method\npath lines; a dictionary of the
    # field names and values that the parsers look for.
    python3 - "$OUT/corpus_api_json" "$OUT/api_json.dict" <<'PY'
import json, os, sys
out, dict_path = sys.argv[1], sys.argv[2]
seeds = [
    {"model": "innkeeper", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "caf\u00e9 \"q\"\n"},
                                     {"type": "text", "text": "\U0001F600"}], "name": "bob"},
        {"role": "assistant", "content": None}],
     "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "top_k": 40,
     "repetition_penalty": 1.1, "seed": 42, "stop": ["\n", "User:"], "stream": True,
     "stream_options": {"include_usage": True}, "user": "u1", "n": 1},
    {"model": "m", "prompt": "Once upon a time", "max_tokens": 5, "stop": "END",
     "echo": False, "suffix": "", "best_of": 1, "logprobs": None},
    {"model": "m", "prompt": ["one"], "presence_penalty": 0, "frequency_penalty": 0,
     "response_format": {"type": "text"}, "tools": [], "logit_bias": {}},
    {"model": "m", "messages": [{"role": "tool", "content": "x"}], "max_completion_tokens": 3},
    {"scenario": "game-npcs", "opening": "Welcome!", "turns": 6},
    {"content": "Hello there", "from": "Bob_1", "conversation": 12},
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
]
for i, s in enumerate(seeds):
    open(os.path.join(out, f"seed{i}"), "wb").write(json.dumps(s).encode())
lines = [b"GET\n/v1/conversations/12/messages", b"POST\n/v1/topics/news/messages/",
         b"DELETE\x00/v1/conversations/7", b"-42\n9007199254740992", b"GET\n/health"]
for i, l in enumerate(lines):
    open(os.path.join(out, f"route{i}"), "wb").write(l)
words = ["model", "messages", "prompt", "role", "content", "name", "type", "text", "system",
         "user", "assistant", "developer", "tool", "max_tokens", "max_completion_tokens",
         "temperature", "top_p", "top_k", "repetition_penalty", "seed", "stop", "stream",
         "stream_options", "include_usage", "n", "logprobs", "top_logprobs", "echo", "tools",
         "functions", "logit_bias", "best_of", "suffix", "response_format",
         "presence_penalty", "frequency_penalty", "scenario", "opening", "turns", "from",
         "conversation", "image_url"]
with open(dict_path, "w") as f:
    for w in words:
        f.write('"\\"%s\\""\n' % w)
    for t in ["null", "true", "false", "1e999", "1e-50", "-0", "9007199254740992", "1073741824",
              "\\\\u0000", "\\\\ud83d\\\\ude00", "GET", "POST", "DELETE", "/v1/",
              "/v1/conversations/", "/v1/topics/", "/messages", "/v1/chat/completions",
              "/v1/completions", "/v1/models", "/health", "/metrics"]:
        f.write('"%s"\n' % t)
PY
    (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 ./fuzz_api_json -max_total_time="$SECONDS_TO_RUN" \
        -max_len=16384 -timeout=10 -rss_limit_mb=2048 -dict=api_json.dict \
        -artifact_prefix=api_json- corpus_api_json)
}

if [ "$WHICH" = tokenizer ] || [ "$WHICH" = all ]; then run_tokenizer; fi
if [ "$WHICH" = api_json ] || [ "$WHICH" = all ]; then run_api_json; fi
