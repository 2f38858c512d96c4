#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] — build the tokenizer fuzzer with clang
# (libFuzzer + ASan + UBSan) and run it for SECONDS (default 60). Crashes are
# written to build-fuzz/ (crash-*); the corpus grows in build-fuzz/corpus.
set -euo pipefail
SECONDS_TO_RUN=${1:-60}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/build-fuzz"  # build*/ is git-ignored
mkdir -p "$OUT/corpus"
CC=${CC:-clang}
"$CC" -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -DPCRE2_CODE_UNIT_WIDTH=8 \
    -DFIXTURE_DIR="\"$ROOT/tests/golden/tokenizer\"" \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
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
cd "$OUT"
ASAN_OPTIONS=detect_leaks=1 ./fuzz_tokenizer -max_total_time="$SECONDS_TO_RUN" -max_len=65536 \
    -timeout=10 -rss_limit_mb=2048 corpus
