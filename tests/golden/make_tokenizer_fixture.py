#!/usr/bin/env python3
"""tests/golden/make_tokenizer_fixture.py — reference data for tests/test_tokenizer.c.

Writes a deterministic corpus (seeded; English-like sentences, Chinese, code,
emoji, odd whitespace: tabs, runs of spaces, trailing spaces, \\r\\n, numbers,
apostrophes), trains a byte-level BPE on it with Hugging Face `tokenizers`
(GPT-2 settings: ByteLevel(add_prefix_space=False, use_regex=True) and the
ByteLevel decoder, vocabulary 2000 including <|endoftext|>), and saves into
tests/golden/tokenizer/:

  corpus.txt   the text (UTF-8), one test case per line (a line keeps its
               "\\n"; the last line has none)
  vocab.json, merges.txt   the trained vocabulary
  ids.txt      the expected ids of each line of corpus.txt, space-separated,
               one line per line; then one last line with the ids of the whole
               corpus encoded at once (checks pieces across line ends)

Needs `pip install tokenizers`. The outputs are committed; rerun only to
change them (`python3 tests/golden/make_tokenizer_fixture.py`).
"""
import os
import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer")
VOCAB_SIZE = 2000

WORDS = ("the of and to in is was he for it with as his on be at by had that not are but "
         "from or have an they which one you were her all she there would their we him been "
         "has when who will more no if out so said what up its about into than them can only "
         "other new some could time these two may then do first any my now such like our over "
         "man me even most made after also did many before must through back years where much "
         "your way well down should because each just those people Mr how too little state good "
         "very make world still own see men work long get here between both life being under "
         "never day same another know while last might us great old year off come since against "
         "go came right used take three tokenizer shard merge vocabulary byte encode decode "
         "training gradient").split()
CONTRACTIONS = ["it's", "don't", "we're", "they've", "I'm", "you'll", "she'd", "can't",
                "John's", "IT'S", "rock'n'roll", "'tis", "o'clock", "y'all"]
CHINESE = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从"
EMOJI = ["😀", "🚀", "👍🏽", "🇫🇷", "❤️", "🐍", "∑", "→", "…", "€", "½", "™"]
OTHER_SCRIPTS = ["Grüße", "naïve", "café", "Ελληνικά", "русский", "עברית", "العربية",
                 "हिन्दी", "日本語のテキスト", "한국어", "ﬁnance", "Ⅻ", "٣٤٥"]
CODE = [
    "int main(int argc, char **argv) {",
    "    for (size_t i = 0; i < n; i++) sum += x[i] * w[i];",
    "\treturn err_set(\"%s: bad value\", path);",
    "def f(x):",
    "    return {'a': x ** 2, \"b\": [1, 2, 3]}",
    "if (a != b && c >= 0x7f) { *p++ = '\\n'; }",
    "    }",
    "#include <stdio.h>",
    "x = y->next; // follow the list",
    "SELECT id, name FROM users WHERE age > 30;",
    "const re = /'s|'t|\\s+(?!\\S)/gu;",
]
SPACES = [" ", "  ", "   ", "\t", " \t ", "\u00a0", "\u3000", "    "]


def sentence(rng):
    n = rng.randint(3, 14)
    words = []
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            words.append(rng.choice(CONTRACTIONS))
        elif r < 0.13:
            words.append(str(rng.randint(0, 10 ** rng.randint(1, 7))))
        elif r < 0.16:
            words.append(rng.choice(OTHER_SCRIPTS))
        else:
            words.append(rng.choice(WORDS))
    words[0] = words[0].capitalize()
    s = " ".join(words)
    return s + rng.choice([".", ".", ".", "!", "?", ",", ";", ":", " -", "..."])


def line(rng):
    r = rng.random()
    if r < 0.45:
        s = sentence(rng)
        if rng.random() < 0.3:
            s += " " + sentence(rng)
    elif r < 0.55:
        s = "".join(rng.choice(CHINESE) for _ in range(rng.randint(2, 30)))
        if rng.random() < 0.5:
            s += rng.choice(["，", "。", "！", "、"]) + "".join(rng.choice(CHINESE) for _ in range(5))
    elif r < 0.70:
        s = rng.choice(CODE)
    elif r < 0.78:
        s = sentence(rng) + " " + "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4)))
    elif r < 0.88:
        words = sentence(rng).split(" ")
        s = "".join(w + rng.choice(SPACES) for w in words)
    elif r < 0.93:
        s = "%d.%02d%% of %d, %s" % (rng.randint(0, 99), rng.randint(0, 99),
                                      rng.randint(0, 99999), rng.choice(["3.14159", "1e-9", "2,500,000", "0x1F"]))
    elif r < 0.96:
        s = ""  # an empty line
    else:
        s = rng.choice(SPACES) * rng.randint(1, 4)  # whitespace only
    if rng.random() < 0.1:
        s += rng.choice(SPACES)  # trailing whitespace
    return s + ("\r\n" if rng.random() < 0.1 else "\n")


def main():
    rng = random.Random(20240611)
    lines = [line(rng) for _ in range(2500)]
    lines[-1] = lines[-1].rstrip("\r\n") + " the end"
    for text in lines[:-1]:
        assert text.endswith("\n") and "\n" not in text[:-1], repr(text)
    corpus = "".join(lines)
    os.makedirs(OUT, exist_ok=True)
    corpus_path = os.path.join(OUT, "corpus.txt")
    with open(corpus_path, "w", encoding="utf-8", newline="") as f:
        f.write(corpus)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    # The whole corpus as one sequence: `tok.train(files)` would cut it into
    # lines first, which changes the counts of whitespace pieces that span
    # line ends (llmpi trains on whole documents, as it encodes them).
    tok.train_from_iterator([corpus], trainer)
    tok.model.save(OUT)

    with open(os.path.join(OUT, "ids.txt"), "w") as f:
        for text in lines:
            ids = tok.encode(text).ids
            assert tok.decode(ids) == text, repr(text)
            f.write(" ".join(map(str, ids)) + "\n")
        f.write(" ".join(map(str, tok.encode(corpus).ids)) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {OUT}: {len(lines)} lines, {len(corpus.encode())} bytes of text, "
          f"vocabulary {tok.get_vocab_size()}, {total} bytes in all")


if __name__ == "__main__":
    main()
