#!/usr/bin/env python3
"""Write tests/golden/hf_tiny/: a tiny Hugging Face GPT-2 and its logits.

`llmpi convert --from-hf` must read what `transformers` writes, so the
reference model here is a real `GPT2LMHeadModel` saved with
`save_pretrained` (model.safetensors + config.json), not a hand-written one.
Nothing is downloaded:

  * a byte-level BPE tokenizer is trained with HF `tokenizers` on text this
    script generates (seeded word salad), then re-laid out GPT-2 style
    (<|endoftext|> is the last id, as in GPT-2's own vocab.json) and written
    as vocab.json + merges.txt;
  * a randomly initialised GPT2LMHeadModel (n_embd 64, n_layer 2, n_head 4,
    n_positions 64, vocab = the tokenizer's) gets its LayerNorm weights and
    biases and all linear biases moved away from 1 / 0, so that a converter
    that dropped or mis-mapped them would be caught;
  * the logits of a few prompts (token ids from the HF tokenizer, one of them
    the full 64-token context) are computed in float64 from the float32
    weights (model.double()) and stored as float32 in logits.llfx.

Usage:
    python3 tests/golden/make_hf_gpt2.py            # (re)write hf_tiny/
    python3 tests/golden/make_hf_gpt2.py --check DIR
        # DIR is the output of `llmpi convert --to-hf`: load it with
        # GPT2LMHeadModel.from_pretrained / GPT2TokenizerFast, compare its
        # logits with logits.llfx and its tensors with hf_tiny/model.safetensors.

Needs torch, numpy, transformers, tokenizers. CI only reads the committed
files. Output is deterministic for a given library version.
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_fixtures import read_llfx, write_llfx  # noqa: E402  (LLFX format)

OUT_DIR = os.path.join(HERE, "hf_tiny")
SEED = 1234
EOT = "<|endoftext|>"
VOCAB_TARGET = 600  # BPE vocabulary before <|endoftext|> is appended
CFG = dict(n_embd=64, n_layer=2, n_head=4, n_positions=64)

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! 123",
    "a",
]


def corpus(seed=SEED, n_sentences=3000):
    """Seeded word salad with punctuation, digits, and some non-ASCII."""
    rng = random.Random(seed)
    words = ("the of and to in is was that for it with as his on be at by had are "
             "but from or have an they which one you were her all she there would "
             "their we him been has when who will more no if out so said what up its "
             "about into than them can only other new some could time these two may "
             "then do first any my now such like our over man me even most made after "
             "also did many before must through back years where much your way well "
             "down should because each just those people how too little state good "
             "very make world still own see men work long get here between both life "
             "being under never day same another know while last might us great old "
             "year off come since against go came right used take three quick brown "
             "fox jumps lazy dog hello café naïve über straße 東京 test model").split()
    out = []
    for _ in range(n_sentences):
        n = rng.randint(3, 14)
        s = " ".join(rng.choice(words) for _ in range(n))
        s = s[0].upper() + s[1:]
        if rng.random() < 0.2:
            s += " " + str(rng.randint(0, 9999))
        out.append(s + rng.choice([".", ".", ".", "!", "?", ","]))
    return out


def train_tokenizer(outdir):
    """Train a byte-level BPE, then write GPT-2 style vocab.json/merges.txt
    with <|endoftext|> as the last id. Returns the vocabulary size."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(corpus(), vocab_size=VOCAB_TARGET, min_frequency=2,
                            show_progress=False, special_tokens=[])
    tmp = tempfile.mkdtemp()
    try:
        tok.model.save(tmp)
        with open(os.path.join(tmp, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        shutil.copy(os.path.join(tmp, "merges.txt"), os.path.join(outdir, "merges.txt"))
    finally:
        shutil.rmtree(tmp)
    assert EOT not in vocab
    vocab[EOT] = len(vocab)
    assert sorted(vocab.values()) == list(range(len(vocab)))
    with open(os.path.join(outdir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    return len(vocab)


def hf_tokenizer(d):
    """The GPT-2 tokenizer of a directory holding vocab.json + merges.txt."""
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast.from_pretrained(d)


def prompts(tok, V, n_positions):
    """Token-id prompts: the texts (the last one ends in <|endoftext|>), and
    one random full-context prompt that reaches the last row of wpe."""
    out = []
    for i, text in enumerate(PROMPTS):
        ids = tok.encode(text)
        if i == len(PROMPTS) - 1:
            ids = ids + [V - 1]
        out.append((text.encode("utf-8"), ids))
    g = torch.Generator().manual_seed(SEED + 1)
    ids = torch.randint(0, V, (n_positions,), generator=g).tolist()
    out.append((b"", ids))
    return out


@torch.no_grad()
def logits64(model, ids):
    m = model.double()
    x = torch.tensor([ids], dtype=torch.int64)
    return m(input_ids=x).logits[0].to(torch.float32).numpy()


def build(outdir):
    from transformers import GPT2Config, GPT2LMHeadModel

    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    V = train_tokenizer(outdir)
    tok = hf_tokenizer(outdir)

    torch.manual_seed(SEED)
    cfg = GPT2Config(vocab_size=V, bos_token_id=V - 1, eos_token_id=V - 1,
                     initializer_range=0.05, **CFG)
    model = GPT2LMHeadModel(cfg).eval()
    g = torch.Generator().manual_seed(SEED + 2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if ".ln_" in name or "ln_f" in name:
                p.copy_(1.0 + 0.1 * r if name.endswith("weight") else 0.1 * r)
            elif name.endswith(".bias"):
                p.copy_(0.02 * r)
    model.save_pretrained(outdir)  # model.safetensors, config.json, generation_config.json
    gen = os.path.join(outdir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)  # not read by the converter; keep the fixture minimal
    os.chmod(os.path.join(outdir, "model.safetensors"), 0o644)

    # Reload from disk (what the converter sees) for the reference logits.
    model = GPT2LMHeadModel.from_pretrained(outdir).eval()
    tensors = [("config", np.array([V, CFG["n_positions"], CFG["n_layer"], CFG["n_head"],
                                    CFG["n_embd"]], dtype=np.int32))]
    ps = prompts(tok, V, CFG["n_positions"])
    tensors.append(("count", np.array([len(ps)], dtype=np.int32)))
    for i, (text, ids) in enumerate(ps):
        tensors.append((f"text/{i}", np.frombuffer(text, dtype=np.uint8).astype(np.int32)))
        tensors.append((f"tokens/{i}", np.array(ids, dtype=np.int32)))
        tensors.append((f"logits/{i}", logits64(model, ids)))
    path = os.path.join(outdir, "logits.llfx")
    write_llfx(path, tensors)
    total = sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))
    print(f"wrote {outdir}: vocab {V}, {len(ps)} prompts "
          f"({[len(ids) for _, ids in ps]} tokens), {total} bytes")
    print(f"max |logit| = {max(np.abs(t).max() for n, t in tensors if n.startswith('logits')):.4f}")


def read_safetensors(path):
    """name -> (dtype string, shape, raw bytes), without the safetensors package."""
    import struct

    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    hdr = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = (v["dtype"], tuple(v["shape"]), buf[base + a:base + b])
    return out


@torch.no_grad()
def check(d):
    """Load an `llmpi convert --to-hf` directory with transformers and compare."""
    from transformers import GPT2LMHeadModel

    fx = read_llfx(os.path.join(OUT_DIR, "logits.llfx"))
    model = GPT2LMHeadModel.from_pretrained(d).eval()
    ours = read_safetensors(os.path.join(d, "model.safetensors"))
    ref = read_safetensors(os.path.join(OUT_DIR, "model.safetensors"))
    assert set(ours) == set(ref), (sorted(set(ours) ^ set(ref)))
    for k in ref:
        assert ours[k] == ref[k], f"tensor {k} differs"
    print(f"{len(ref)} tensors byte-identical to hf_tiny/model.safetensors")
    tok = hf_tokenizer(d)
    worst = 0.0
    for i in range(int(fx["count"][0])):
        text = bytes(fx[f"text/{i}"].astype(np.uint8)).decode("utf-8")
        ids = fx[f"tokens/{i}"].tolist()
        if text:
            enc = tok.encode(text)
            assert enc == ids[:len(enc)], f"prompt {i}: tokenizer of {d} encodes differently"
        got = logits64(model, ids)
        want = fx[f"logits/{i}"]
        rel = np.abs(got - want).max() / np.abs(want).max()
        worst = max(worst, rel)
        print(f"prompt {i} ({len(ids)} tokens): max|diff|/max|ref| = {rel:.3e}")
    assert worst < 1e-6, worst
    print("check OK: transformers loads", d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_DIR)
    ap.add_argument("--check", metavar="DIR", help="load an `llmpi convert --to-hf` output")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    if args.check:
        check(args.check)
    else:
        build(args.out)


if __name__ == "__main__":
    sys.exit(main())
