/* src/train/bench_tokenizer.c — `llmpi bench tokenizer`: BPE encode
 * throughput on one core (MB/s of text, tokens/s).
 *
 * Each repetition encodes the whole text with a freshly loaded tokenizer, so
 * the word cache starts empty every time (a warm cache would flatter the
 * number); loading is not timed. Reports the best and the median repetition.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "err.h"
#include "subcommands.h"
#include "timer.h"
#include "tokenizer.h"

static const char *usage =
    "usage: llmpi bench tokenizer --vocab DIR --text FILE [--repeat N] [--json]\n"
    "\n"
    "Encode FILE with DIR/vocab.json + DIR/merges.txt on one core, N times\n"
    "(default 3), each with an empty word cache; print MB/s and tokens/s.\n"
    "  --json   one JSON object on stdout instead of text\n";

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set("--text '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
        (buf = malloc((size_t)st.st_size + 1)) &&
        fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
        *len = (size_t)st.st_size;
    } else {
        free(buf);
        buf = NULL;
        err_set("--text '%s': cannot read it", path);
    }
    fclose(f);
    return buf;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int bench_tokenizer_main(int argc, char **argv) {
    const char *vocab_dir = NULL, *text_path = NULL, *v;
    int repeat = 3, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(f, "--vocab")) {
            if (!(vocab_dir = args_value(argc, argv, &i))) goto fail;
        } else if (!strcmp(f, "--text")) {
            if (!(text_path = args_value(argc, argv, &i))) goto fail;
        } else if (!strcmp(f, "--repeat")) {
            if (!(v = args_value(argc, argv, &i)) || args_int(f, v, 1, 1000, &repeat)) goto fail;
        } else if (!strcmp(f, "--json")) {
            json = 1;
        } else {
            err_set("unknown option '%s' (see llmpi bench tokenizer --help)", f);
            goto fail;
        }
    }
    if (!vocab_dir || !text_path) {
        err_set("--vocab DIR and --text FILE are required");
        goto fail;
    }
    char vp[PATH_MAX], mp[PATH_MAX];
    snprintf(vp, sizeof vp, "%s/vocab.json", vocab_dir);
    snprintf(mp, sizeof mp, "%s/merges.txt", vocab_dir);
    size_t len;
    char *text = read_file(text_path, &len);
    if (!text) goto fail;
    double *secs = malloc((size_t)repeat * sizeof *secs);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int vocab_size = 0;
    for (int r = 0; r < repeat; r++) {
        struct tokenizer *t = tokenizer_load_files(vp, mp);
        if (!t) {
            free(text);
            free(secs);
            free(ids);
            goto fail;
        }
        vocab_size = tokenizer_vocab_size(t);
        n = 0;
        double t0 = timer_now();
        int bad = tokenizer_encode(t, text, len, &ids, &n, &cap);
        secs[r] = timer_now() - t0;
        tokenizer_free(t);
        if (bad) {
            free(text);
            free(secs);
            free(ids);
            goto fail;
        }
    }
    qsort(secs, (size_t)repeat, sizeof *secs, cmp_double);
    double best = secs[0], median = secs[repeat / 2];
    if (json)
        printf("{\"bytes\":%zu,\"tokens\":%zu,\"vocab_size\":%d,\"repeat\":%d,"
               "\"best_s\":%.6f,\"median_s\":%.6f,\"mb_per_s\":%.3f,\"median_mb_per_s\":%.3f,"
               "\"tokens_per_s\":%.1f}\n",
               len, n, vocab_size, repeat, best, median, len / 1e6 / best, len / 1e6 / median,
               n / best);
    else
        printf("llmpi bench tokenizer: %.2f MB -> %zu tokens (vocabulary %d, %.2f bytes/token)\n"
               "  best of %d: %.3f s = %.2f MB/s, %.0f tokens/s (median %.2f MB/s)\n",
               len / 1e6, n, vocab_size, n ? (double)len / n : 0.0, repeat, best,
               len / 1e6 / best, n / best, len / 1e6 / median);
    free(text);
    free(secs);
    free(ids);
    return 0;
fail:
    fprintf(stderr, "llmpi bench tokenizer: error: %s\n", err_msg());
    return 1;
}
