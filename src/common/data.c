/* src/common/data.c — token data (prep directories, shards, text as bytes)
 * and batch windows. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"
#include "err.h"
#include "shard.h"
#include "tokenizer.h"

/* The vocabulary files in dir, or the bytes tokenizer when there are none
 * and the vocabulary is 256; NULL without an error when neither. */
static int tokenizer_beside(const char *dir, uint32_t vocab_size, const char *shard_path,
                            struct tokenizer **out) {
    char vp[PATH_MAX], mp[PATH_MAX];
    *out = NULL;
    if (snprintf(vp, sizeof vp, "%s/vocab.json", dir) >= (int)sizeof vp ||
        snprintf(mp, sizeof mp, "%s/merges.txt", dir) >= (int)sizeof mp)
        return err_set("%s: path too long", dir);
    if (access(vp, F_OK) == 0) {
        *out = tokenizer_load_files(vp, mp);
        if (!*out) return -1;
        if ((uint32_t)tokenizer_vocab_size(*out) != vocab_size) {
            int v = tokenizer_vocab_size(*out);
            tokenizer_free(*out);
            *out = NULL;
            return err_set("%s: vocab size: %u, but %s has %d tokens", shard_path, vocab_size,
                           vp, v);
        }
        return 0;
    }
    if (vocab_size == 256) {
        *out = tokenizer_bytes();
        return *out ? 0 : -1;
    }
    return 0;
}

static int load_dir(const char *dir, struct token_data *d) {
    char tp[PATH_MAX], vp[PATH_MAX];
    if (snprintf(tp, sizeof tp, "%s/train.bin", dir) >= (int)sizeof tp ||
        snprintf(vp, sizeof vp, "%s/val.bin", dir) >= (int)sizeof vp)
        return err_set("%s: path too long", dir);
    if (access(tp, F_OK) != 0)
        return err_set("data directory '%s' is not an llmpi prep output (no train.bin)", dir);
    struct shard_header th, vh;
    int32_t *train = NULL, *val = NULL;
    size_t nt = 0, nv = 0;
    int rc = -1;
    if (shard_read(tp, &train, &nt, &th) || shard_read(vp, &val, &nv, &vh)) goto out;
    if (th.vocab_size != vh.vocab_size) {
        err_set("%s: vocab size: %u, but %s says %u", vp, vh.vocab_size, tp, th.vocab_size);
        goto out;
    }
    if (nt == 0) {
        err_set("%s: token count: the training shard is empty", tp);
        goto out;
    }
    d->tokens = malloc((nt + nv) * sizeof *d->tokens);
    if (!d->tokens) {
        err_set("%s: out of memory for %zu tokens", dir, nt + nv);
        goto out;
    }
    memcpy(d->tokens, train, nt * sizeof *train);
    if (nv) memcpy(d->tokens + nt, val, nv * sizeof *val);
    d->n = nt + nv;
    d->train_end = nt;
    d->vocab_size = (int)th.vocab_size;
    rc = tokenizer_beside(dir, th.vocab_size, tp, &d->tokenizer);
out:
    free(train);
    free(val);
    if (rc) data_free(d);
    return rc;
}

static int load_shard(const char *path, double val_fraction, struct token_data *d) {
    struct shard_header h;
    if (shard_read(path, &d->tokens, &d->n, &h)) return -1;
    if (d->n == 0) {
        data_free(d);
        return err_set("%s: token count: the shard is empty", path);
    }
    d->vocab_size = (int)h.vocab_size;
    d->train_end = d->n - (size_t)(val_fraction * (double)d->n);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (tokenizer_beside(dir, h.vocab_size, path, &d->tokenizer)) {
        data_free(d);
        return -1;
    }
    return 0;
}

int data_load(const char *path, double val_fraction, struct token_data *d) {
    memset(d, 0, sizeof *d);
    struct stat st;
    if (stat(path, &st) != 0) return err_set("data '%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return load_dir(path, d);
    if (shard_is_shard(path)) return load_shard(path, val_fraction, d);
    return data_load_bytes(path, val_fraction, d);
}

int data_load_bytes(const char *path, double val_fraction, struct token_data *d) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) return err_set("data file '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return err_set("data file '%s' is not a regular file", path);
    }
    long size = (long)st.st_size;
    if (size <= 0) {
        fclose(f);
        return err_set("data file '%s' is empty", path);
    }
    unsigned char *bytes = malloc((size_t)size);
    d->tokens = malloc((size_t)size * sizeof(int32_t));
    if (!bytes || !d->tokens) {
        free(bytes);
        fclose(f);
        data_free(d);
        return err_set("data file '%s': out of memory for %ld bytes", path, size);
    }
    size_t got = fread(bytes, 1, (size_t)size, f);
    int read_error = ferror(f);
    fclose(f);
    if (got != (size_t)size || read_error) {
        free(bytes);
        data_free(d);
        return err_set("data file '%s': read %zu of %ld bytes", path, got, size);
    }
    for (long i = 0; i < size; i++)
        d->tokens[i] = bytes[i];
    free(bytes);
    d->n = (size_t)size;
    d->vocab_size = 256;
    d->tokenizer = tokenizer_bytes();
    if (!d->tokenizer) {
        data_free(d);
        return -1;
    }
    d->train_end = d->n - (size_t)(val_fraction * (double)d->n);
    return 0;
}

void data_free(struct token_data *d) {
    free(d->tokens);
    tokenizer_free(d->tokenizer);
    memset(d, 0, sizeof *d);
}

int data_check_fits(const struct token_data *d, const char *path, int B, int T,
                    int eval_batches) {
    size_t need = (size_t)B * T + 1;
    if (d->train_end < need)
        return err_set("data file '%s': the training part has %zu tokens, a "
                       "batch of %d x %d needs %zu",
                       path, d->train_end, B, T, need);
    if (eval_batches > 0 && d->n - d->train_end < (size_t)T + 1)
        return err_set("data file '%s': the validation part has %zu tokens, "
                       "fewer than one sequence (%d + 1); lower --seq or raise "
                       "--val-fraction",
                       path, d->n - d->train_end, T);
    return 0;
}

static void window(const int32_t *src, int T, int32_t *inputs, int32_t *targets) {
    memcpy(inputs, src, (size_t)T * sizeof(int32_t));
    memcpy(targets, src + 1, (size_t)T * sizeof(int32_t));
}

void data_train_batch(const struct token_data *d, size_t *cursor, int B, int T,
                      int32_t *inputs, int32_t *targets) {
    size_t span = (size_t)B * T;
    if (*cursor + span + 1 > d->train_end) *cursor = 0;
    for (int b = 0; b < B; b++)
        window(d->tokens + *cursor + (size_t)b * T, T, inputs + (size_t)b * T,
               targets + (size_t)b * T);
    *cursor += span;
}

size_t data_val_batches(const struct token_data *d, int B, int T) {
    size_t val = d->n - d->train_end;
    if (val < (size_t)T + 1) return 0;
    return (val - 1) / ((size_t)B * T);
}

void data_val_batch(const struct token_data *d, size_t k, int B, int T, int32_t *inputs,
                    int32_t *targets) {
    size_t val = d->n - d->train_end;
    size_t windows = (val - 1) / (size_t)T; /* >= 1, checked by data_check_fits */
    for (int b = 0; b < B; b++) {
        size_t w = (k * (size_t)B + (size_t)b) % windows;
        window(d->tokens + d->train_end + w * (size_t)T, T, inputs + (size_t)b * T,
               targets + (size_t)b * T);
    }
}
