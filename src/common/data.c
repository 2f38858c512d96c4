/* src/common/data.c — byte-level token data and batch windows. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data.h"
#include "err.h"

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
    d->train_end = d->n - (size_t)(val_fraction * (double)d->n);
    return 0;
}

void data_free(struct token_data *d) {
    free(d->tokens);
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
