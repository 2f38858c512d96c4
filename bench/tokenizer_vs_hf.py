#!/usr/bin/env python3
"""bench/tokenizer_vs_hf.py — encode throughput of llmpi's BPE against Hugging
Face `tokenizers` on the same vocabulary and text, one core each.

    python3 bench/tokenizer_vs_hf.py --vocab DIR --text FILE [--llmpi build/llmpi]
                                     [--repeat 3] [--train-vocab N]

DIR holds vocab.json + merges.txt (GPT-2 format); with --train-vocab N and no
vocab.json there yet, HF trains one of N tokens on FILE first (ByteLevel,
GPT-2 settings). llmpi runs `llmpi bench tokenizer --json` (one call for the
whole text, a fresh word cache per repetition). HF runs single-threaded
(TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1, no encode_batch) over the
text in ~1 MB pieces cut where GPT-2 pre-tokenisation gives the same tokens as
for the whole text, so the two token counts must be equal; the script checks
that. Needs `pip install tokenizers`; FILE must be valid UTF-8.
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402


def safe_pieces(text, size=1 << 20):
    """Cut after a newline with printable ASCII on both sides (as llmpi's
    pretok_safe_cut) so that no piece of the pre-tokeniser crosses a cut."""
    def safe(i):
        return (text[i - 1] == "\n" and "!" <= text[i - 2] <= "~" and "!" <= text[i] <= "~")

    pieces, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = end
            while cut > start + 1 and not safe(cut):
                cut -= 1
            if cut <= start + 1:  # none before: take the next one after
                cut = end
                while cut < len(text) and not safe(cut):
                    cut += 1
            end = cut
        pieces.append(text[start:end])
        start = end
    return pieces


def hf_tokenizer(vocab_dir):
    tok = Tokenizer(models.BPE.from_file(os.path.join(vocab_dir, "vocab.json"),
                                         os.path.join(vocab_dir, "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--llmpi", default="build/llmpi")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--train-vocab", type=int, default=0)
    a = ap.parse_args()

    raw = open(a.text, "rb").read()
    text = raw.decode("utf-8")  # HF takes str only: the text must be valid UTF-8
    if not os.path.exists(os.path.join(a.vocab, "vocab.json")):
        if not a.train_vocab:
            sys.exit(f"{a.vocab}/vocab.json is missing (give --train-vocab N to train one)")
        os.makedirs(a.vocab, exist_ok=True)
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = trainers.BpeTrainer(vocab_size=a.train_vocab, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(safe_pieces(text), trainer)
        tok.model.save(a.vocab)

    out = subprocess.run([a.llmpi, "bench", "tokenizer", "--vocab", a.vocab, "--text", a.text,
                          "--repeat", str(a.repeat), "--json"],
                         check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    ours = json.loads(out.stdout)

    pieces = safe_pieces(text)
    times, ntok = [], 0
    for _ in range(a.repeat):
        tok = hf_tokenizer(a.vocab)  # fresh cache, as llmpi's runs
        t0 = time.perf_counter()
        ntok = sum(len(tok.encode(p).ids) for p in pieces)
        times.append(time.perf_counter() - t0)
    best = min(times)
    mb = len(raw) / 1e6
    print(f"text {a.text}: {mb:.2f} MB, vocabulary {ours['vocab_size']}, best of {a.repeat}, one core")
    print(f"{'':16s}{'MB/s':>10s}{'tokens/s':>14s}{'tokens':>12s}")
    print(f"{'llmpi':16s}{ours['mb_per_s']:10.2f}{ours['tokens_per_s']:14.0f}{ours['tokens']:12d}")
    print(f"{'HF tokenizers':16s}{mb / best:10.2f}{ntok / best:14.0f}{ntok:12d}")
    print(f"llmpi / HF: {ours['mb_per_s'] / (mb / best):.2f}x")
    if ntok != ours["tokens"]:
        sys.exit(f"token counts differ: llmpi {ours['tokens']}, HF {ntok}")


if __name__ == "__main__":
    main()
