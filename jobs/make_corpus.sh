#!/usr/bin/env bash
# jobs/make_corpus.sh OUT — the embedded default corpus: every fortune cookie
# of Debian's `fortunes`, `fortunes-min` and `fortunes-zh` packages (about
# 4.8 MB: 2.6 MB English, 2.2 MB Chinese), in a fixed shuffled order.
# Why shuffle: `llmpi train` reads its data in order and holds out the tail
# for validation; in file order it would see all the Chinese first and then
# all the English, and validate on one kind of text only. Writes OUT
# atomically.
set -euo pipefail
OUT=${1:?usage: make_corpus.sh OUT}
DIR=/usr/share/games/fortunes
[ -d "$DIR" ] || { echo "make_corpus: $DIR missing (apt-get install fortunes)" >&2; exit 1; }
mapfile -t files < <(find "$DIR" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort)
[ ${#files[@]} -gt 0 ] || { echo "make_corpus: no fortune files in $DIR" >&2; exit 1; }
# Fortune files separate their entries with a line holding only "%".
python3 - "$OUT.tmp" "${files[@]}" <<'PY'
import random, sys
entries = []
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        entries += [e.strip(b"\n") for e in f.read().split(b"\n%\n") if e.strip()]
random.Random(1).shuffle(entries)
with open(sys.argv[1], "wb") as f:
    f.write(b"\n%\n".join(entries) + b"\n%\n")
print(f"corpus: {len(entries)} entries from {len(sys.argv) - 2} files", end="")
PY
mv "$OUT.tmp" "$OUT"
echo ", $(wc -c < "$OUT") bytes in $OUT"
