#!/usr/bin/env bash
# jobs/make_corpus.sh OUT — the embedded default corpus: every English
# fortune cookie file of Debian's `fortunes` and `fortunes-min` packages,
# concatenated (about 2.5 MB of text). Writes OUT atomically.
set -euo pipefail
OUT=${1:?usage: make_corpus.sh OUT}
DIR=/usr/share/games/fortunes
[ -d "$DIR" ] || { echo "make_corpus: $DIR missing (apt-get install fortunes)" >&2; exit 1; }
files=$(find "$DIR" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort)
[ -n "$files" ] || { echo "make_corpus: no fortune files in $DIR" >&2; exit 1; }
# shellcheck disable=SC2086
cat $files > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "corpus: $OUT ($(wc -c < "$OUT") bytes from $(echo "$files" | wc -l) files)"
