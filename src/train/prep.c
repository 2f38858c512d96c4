/* src/train/prep.c — `llmpi prep`: text files, directories and JSONL ->
 * token shards (train.bin, val.bin) plus the vocabulary they were encoded
 * with (vocab.json, merges.txt), ready for `llmpi train --data DIR`.
 *
 * Every document is encoded and followed by <|endoftext|> when the tokenizer
 * has one. All tokens go to train.bin.tmp first; the last --val-fraction of
 * them then moves to val.bin.tmp, and both are renamed only when everything
 * succeeded, so an error leaves no shard behind. Inputs are all checked
 * before anything is written.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "err.h"
#include "shard.h"
#include "subcommands.h"
#include "timer.h"
#include "tokenizer.h"
#include "tokenizer_corpus.h"
#include "tokenizer_train.h"

static const char *prep_usage =
    "usage: llmpi prep INPUT... --out DIR [options]\n"
    "\n"
    "Encode text into token shards for `llmpi train --data DIR`. An INPUT is a\n"
    "text file (one document), a directory (its regular files, recursively, in\n"
    "sorted order) or a JSONL file (*.jsonl: one document per line, the string\n"
    "field --field of each JSON object). Writes DIR/train.bin, DIR/val.bin and,\n"
    "for a BPE tokenizer, DIR/vocab.json + DIR/merges.txt.\n"
    "\n"
    "  --out DIR              output directory (created if missing)\n"
    "  --tokenizer DIR        encode with DIR/vocab.json + DIR/merges.txt (GPT-2 format)\n"
    "  --train-tokenizer      train a byte-level BPE on the inputs first ...\n"
    "  --vocab-size N         ... with N tokens (>= 257, including <|endoftext|>)\n"
    "                         (neither: bytes, vocabulary 256, no <|endoftext|>)\n"
    "  --field NAME           JSONL field holding the text (default text)\n"
    "  --jsonl                read every input file as JSONL whatever its name\n"
    "  --val-fraction F       tokens held out in val.bin, from the end (default 0.05)\n"
    "  --help                 this text\n";

struct prep_args {
    const char **inputs;
    int ninputs;
    const char *out, *tokenizer_dir, *field;
    int train_tokenizer, vocab_size, all_jsonl;
    float val_fraction;
};

static int parse(int argc, char **argv, struct prep_args *a) {
    a->field = "text";
    a->val_fraction = 0.05f;
    a->inputs = calloc((size_t)argc, sizeof *a->inputs);
    if (!a->inputs) return err_set("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--out")) {
            if (!(a->out = args_value(argc, argv, &i))) return -1;
        } else if (!strcmp(f, "--tokenizer")) {
            if (!(a->tokenizer_dir = args_value(argc, argv, &i))) return -1;
        } else if (!strcmp(f, "--train-tokenizer")) {
            a->train_tokenizer = 1;
        } else if (!strcmp(f, "--vocab-size")) {
            if (!(v = args_value(argc, argv, &i)) ||
                args_int(f, v, 257, 1 << 24, &a->vocab_size))
                return -1;
        } else if (!strcmp(f, "--field")) {
            if (!(a->field = args_value(argc, argv, &i))) return -1;
        } else if (!strcmp(f, "--jsonl")) {
            a->all_jsonl = 1;
        } else if (!strcmp(f, "--val-fraction")) {
            if (!(v = args_value(argc, argv, &i)) || args_float(f, v, 0.0, 0.5, &a->val_fraction))
                return -1;
        } else if (f[0] == '-' && f[1] == '-') {
            return err_set("unknown option '%s' (see llmpi prep --help)", f);
        } else {
            a->inputs[a->ninputs++] = f;
        }
    }
    if (a->ninputs == 0) return err_set("no INPUT given (see llmpi prep --help)");
    if (!a->out) return err_set("--out DIR is required (see llmpi prep --help)");
    if (a->tokenizer_dir && a->train_tokenizer)
        return err_set("--tokenizer and --train-tokenizer exclude each other");
    if (a->train_tokenizer && !a->vocab_size)
        return err_set("--train-tokenizer needs --vocab-size N");
    if (a->vocab_size && !a->train_tokenizer)
        return err_set("--vocab-size goes with --train-tokenizer");
    return 0;
}

/* ---- progress on stderr --------------------------------------------------------- */

struct progress {
    const char *what;
    int bytes; /* show MB and MB/s (0: a fraction of total only) */
    uint64_t total, done_before, done_file;
    double start, last;
    int tty;
};

static void progress_show(struct progress *p, int final) {
    double now = timer_now();
    if (!final && now - p->last < (p->tty ? 0.2 : 10.0)) return;
    p->last = now;
    uint64_t done = p->done_before + p->done_file;
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    if (frac > 1.0) frac = 1.0;
    double mbps = done / 1e6 / (now - p->start > 1e-9 ? now - p->start : 1e-9);
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    if (p->bytes)
        fprintf(stderr, "%s%-15s [%s] %3.0f%%  %.1f/%.1f MB  %.1f MB/s%s", p->tty ? "\r" : "",
                p->what, bar, frac * 100, done / 1e6, p->total / 1e6, mbps,
                p->tty && !final ? "" : "\n");
    else
        fprintf(stderr, "%s%-15s [%s] %3.0f%%  %.1f s%s", p->tty ? "\r" : "", p->what, bar,
                frac * 100, now - p->start, p->tty && !final ? "" : "\n");
    fflush(stderr);
}

static void progress_bytes(uint64_t file_done, void *ctx) {
    struct progress *p = ctx;
    p->done_file = file_done;
    progress_show(p, 0);
}

/* ---- the two passes ------------------------------------------------------------- */

struct pass {
    struct progress prog; /* first: the visitor's progress callback, given the
                             pass as its context, reads it as a progress */
    struct bpe_trainer *trainer; /* training pass */
    struct tokenizer *tok;       /* encoding pass */
    struct shard_writer *out;
    int32_t *ids;
    size_t cap;
    uint64_t documents;
};

static int train_text(const char *text, size_t len, void *ctx) {
    struct pass *p = ctx;
    return bpe_trainer_add(p->trainer, text, len);
}

static int encode_text(const char *text, size_t len, void *ctx) {
    struct pass *p = ctx;
    size_t n = 0;
    if (tokenizer_encode(p->tok, text, len, &p->ids, &n, &p->cap)) return -1;
    return shard_writer_append(p->out, p->ids, n);
}

static int end_document(void *ctx) {
    struct pass *p = ctx;
    p->documents++;
    int32_t eot = p->tok ? tokenizer_eot(p->tok) : -1;
    return eot >= 0 ? shard_writer_append(p->out, &eot, 1) : 0;
}

static void progress_fraction(double fraction, void *ctx) {
    struct progress *p = ctx;
    p->done_before = 0;
    p->done_file = (uint64_t)(fraction * (double)p->total);
    progress_show(p, 0);
}

static int walk_files(struct pass *p, char **files, int nfiles, const struct prep_args *a,
                      const struct corpus_visitor *v) {
    p->prog.start = p->prog.last = timer_now();
    p->prog.done_before = p->prog.done_file = 0;
    for (int i = 0; i < nfiles; i++) {
        int jsonl = a->all_jsonl || corpus_is_jsonl(files[i]);
        if (corpus_read_file(files[i], jsonl, a->field, v)) return -1;
        struct stat st;
        p->prog.done_before += stat(files[i], &st) == 0 ? (uint64_t)st.st_size : p->prog.done_file;
        p->prog.done_file = 0;
    }
    progress_show(&p->prog, 1);
    return 0;
}

static struct tokenizer *get_tokenizer(const struct prep_args *a, char **files, int nfiles,
                                       uint64_t total) {
    if (a->tokenizer_dir) {
        char vp[PATH_MAX], mp[PATH_MAX];
        snprintf(vp, sizeof vp, "%s/vocab.json", a->tokenizer_dir);
        snprintf(mp, sizeof mp, "%s/merges.txt", a->tokenizer_dir);
        return tokenizer_load_files(vp, mp);
    }
    if (!a->train_tokenizer) return tokenizer_bytes();
    struct pass p = {.prog = {"counting words", 1, total, 0, 0, 0, 0, isatty(2)}};
    p.trainer = bpe_trainer_new();
    if (!p.trainer) return NULL;
    struct corpus_visitor v = {train_text, NULL, progress_bytes, &p};
    struct tokenizer *t = NULL;
    if (walk_files(&p, files, nfiles, a, &v) == 0) {
        struct progress merging = {"merging", 0, 1000000, 0, 0, timer_now(),
                                    timer_now(), isatty(2)};
        t = bpe_trainer_finish(p.trainer, a->vocab_size, progress_fraction, &merging);
        if (t) progress_show(&merging, 1);
    }
    bpe_trainer_free(p.trainer);
    return t;
}

/* *created says whether we made it (to remove it again, empty, on failure). */
static int make_dir(const char *dir, int *created) {
    struct stat st;
    *created = 0;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return err_set("--out '%s' exists and is not a directory", dir);
        return 0;
    }
    if (mkdir(dir, 0777) != 0) return err_set("--out '%s': %s", dir, strerror(errno));
    *created = 1;
    return 0;
}

static int run(const struct prep_args *a) {
    char **files = NULL;
    int nfiles = 0, rc = -1, created_dir = 0;
    uint64_t total = 0;
    struct tokenizer *tok = NULL;
    struct shard_writer *train = NULL, *val = NULL;
    struct pass p = {0};
    char tp[PATH_MAX], vp[PATH_MAX];
    if (snprintf(tp, sizeof tp, "%s/train.bin", a->out) >= (int)sizeof tp ||
        snprintf(vp, sizeof vp, "%s/val.bin", a->out) >= (int)sizeof vp)
        return err_set("--out '%s': path too long", a->out);
    if (corpus_expand(a->inputs, a->ninputs, &files, &nfiles, &total)) return -1;
    if (nfiles == 0) {
        err_set("no input files found in %s%s", a->inputs[0], a->ninputs > 1 ? " ..." : "");
        goto out;
    }
    double t0 = timer_now();
    if (!(tok = get_tokenizer(a, files, nfiles, total))) goto out;
    if (make_dir(a->out, &created_dir)) goto out;
    uint32_t vocab = (uint32_t)tokenizer_vocab_size(tok);
    if (!(train = shard_writer_open(tp, vocab)) || !(val = shard_writer_open(vp, vocab))) goto out;
    p.prog = (struct progress){"encoding", 1, total, 0, 0, 0, 0, isatty(2)};
    p.tok = tok;
    p.out = train;
    struct corpus_visitor v = {encode_text, end_document, progress_bytes, &p};
    if (walk_files(&p, files, nfiles, a, &v)) goto out;
    uint64_t ntok = shard_writer_count(train);
    uint64_t nval = (uint64_t)((double)a->val_fraction * (double)ntok);
    if (shard_writer_move_tail(train, val, nval)) goto out;
    if (!tokenizer_is_bytes(tok) && tokenizer_save_files(tok, a->out)) goto out;
    int bad = shard_writer_close(train);
    train = NULL;
    if (bad) goto out;
    bad = shard_writer_close(val);
    val = NULL;
    if (bad) {
        remove(tp);
        goto out;
    }
    double secs = timer_now() - t0;
    printf("llmpi prep: %d file%s, %llu document%s, %.2f MB -> %llu tokens (%.2f bytes/token) "
           "in %.1f s (%.2f MB/s)\n",
           nfiles, nfiles == 1 ? "" : "s", (unsigned long long)p.documents,
           p.documents == 1 ? "" : "s", total / 1e6, (unsigned long long)ntok,
           ntok ? (double)total / (double)ntok : 0.0, secs, total / 1e6 / (secs > 0 ? secs : 1));
    printf("  %s: %llu tokens\n  %s: %llu tokens\n  vocabulary: %u tokens (%s%s)\n", tp,
           (unsigned long long)(ntok - nval), vp, (unsigned long long)nval, vocab,
           tokenizer_is_bytes(tok) ? "bytes" : a->out,
           tokenizer_is_bytes(tok) ? "" : "/vocab.json + merges.txt");
    rc = 0;
out:
    shard_writer_abort(train);
    shard_writer_abort(val);
    if (rc && created_dir) rmdir(a->out); /* only if still empty */
    tokenizer_free(tok);
    free(p.ids);
    corpus_paths_free(files, nfiles);
    return rc;
}

int prep_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(prep_usage, stdout);
            return 0;
        }
    }
    struct prep_args a = {0};
    int rc = parse(argc, argv, &a) || run(&a) ? 1 : 0;
    if (rc) fprintf(stderr, "llmpi prep: error: %s\n", err_msg());
    free(a.inputs);
    return rc;
}
