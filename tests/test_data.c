/* tests/test_data.c — token shards (src/common/shard.c) and data_load: prep
 * directories, single shards, text files, and the errors for a wrong magic, a
 * token outside the vocabulary, a truncated file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "err.h"
#include "shard.h"
#include "tokenizer.h"

static char dir[64];
static char path_buf[8][256];
static int path_k;

static const char *in_dir(const char *name) {
    if (!dir[0]) {
        strcpy(dir, "/tmp/llmpi_data_XXXXXX");
        cr_assert(mkdtemp(dir));
    }
    char *p = path_buf[path_k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    dir[0] = '\0';
}

static void write_shard(const char *path, uint32_t vocab, const int32_t *ids, size_t n) {
    struct shard_writer *w = shard_writer_open(path, vocab);
    cr_assert(w, "%s", err_msg());
    cr_assert_eq(shard_writer_append(w, ids, n), 0, "%s", err_msg());
    cr_assert_eq(shard_writer_close(w), 0, "%s", err_msg());
}

Test(shard, write_read_both_dtypes_and_split) {
    int32_t ids[1000];
    for (int i = 0; i < 1000; i++) ids[i] = (i * 7919) % 50000;
    const char *small = in_dir("small.bin"), *big = in_dir("big.bin");
    write_shard(small, 50000, ids, 1000);
    for (int i = 0; i < 1000; i++) ids[i] = (i * 7919) % 100000;
    write_shard(big, 100000, ids, 1000);
    struct shard_header h;
    cr_assert_eq(shard_read_header(small, &h), 0);
    cr_assert(h.dtype == 2 && h.vocab_size == 50000 && h.ntokens == 1000 && h.version == 1);
    int32_t *t;
    size_t n;
    cr_assert_eq(shard_read(big, &t, &n, &h), 0, "%s", err_msg());
    cr_assert(h.dtype == 4 && n == 1000);
    cr_assert_eq(memcmp(t, ids, sizeof ids), 0);
    free(t);
    cr_assert_eq(access(in_dir("big.bin.tmp"), F_OK), -1, "the .tmp file was left behind");

    /* move_tail: a train/validation split after writing */
    struct shard_writer *a = shard_writer_open(in_dir("a.bin"), 100000);
    struct shard_writer *b = shard_writer_open(in_dir("b.bin"), 100000);
    cr_assert_eq(shard_writer_append(a, ids, 1000), 0);
    cr_assert_eq(shard_writer_move_tail(a, b, 300), 0, "%s", err_msg());
    cr_assert_eq(shard_writer_close(a), 0);
    cr_assert_eq(shard_writer_close(b), 0);
    cr_assert_eq(shard_read(in_dir("a.bin"), &t, &n, &h), 0);
    cr_assert(n == 700 && !memcmp(t, ids, 700 * sizeof *t));
    free(t);
    cr_assert_eq(shard_read(in_dir("b.bin"), &t, &n, &h), 0);
    cr_assert(n == 300 && !memcmp(t, ids + 700, 300 * sizeof *t));
    free(t);

    /* the writer refuses a token outside the vocabulary; abort leaves nothing */
    struct shard_writer *w = shard_writer_open(in_dir("bad.bin"), 10);
    int32_t ten = 10;
    cr_assert_eq(shard_writer_append(w, &ten, 1), -1);
    cr_assert(strstr(err_msg(), "bad.bin") && strstr(err_msg(), "10"), "%s", err_msg());
    shard_writer_abort(w);
    cr_assert_eq(access(in_dir("bad.bin.tmp"), F_OK), -1);
    cr_assert_eq(access(in_dir("bad.bin"), F_OK), -1);
    cleanup();
}

/* Corrupt a valid shard at byte `at` and expect `want` in data_load's error. */
static void expect_corrupt(size_t at, const void *bytes, size_t n, long truncate_to,
                           const char *want) {
    int32_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i % 50;
    const char *p = in_dir("c.bin");
    write_shard(p, 50, ids, 100);
    FILE *f = fopen(p, "r+b");
    fseek(f, (long)at, SEEK_SET);
    fwrite(bytes, 1, n, f);
    fclose(f);
    if (truncate_to >= 0) cr_assert_eq(truncate(p, truncate_to), 0);
    struct token_data d;
    if (at == 0 && !memcmp(bytes, "NOTATOK!", 8)) {
        /* without the magic it is not a shard: read as a text file */
        cr_assert_eq(data_load(p, 0.1, &d), 0);
        cr_assert_eq(d.vocab_size, 256);
        data_free(&d);
        struct shard_header h;
        cr_assert_eq(shard_read_header(p, &h), -1);
    } else {
        cr_assert_eq(data_load(p, 0.1, &d), -1, "a corrupt shard loaded");
        cr_assert_null(d.tokens);
    }
    cr_assert(strstr(err_msg(), "c.bin") && strstr(err_msg(), want), "message '%s' lacks '%s'",
              err_msg(), want);
}

Test(shard, errors_name_file_and_field) {
    unsigned char big_token[2] = {0x34, 0x12}; /* 0x1234 >= vocab 50 */
    expect_corrupt(64 + 2 * 17, big_token, 2, -1, "token 17 is 4660");
    unsigned char version[4] = {9, 0, 0, 0};
    expect_corrupt(8, version, 4, -1, "version");
    unsigned char dtype[4] = {3, 0, 0, 0};
    expect_corrupt(24, dtype, 4, -1, "dtype");
    unsigned char same[1] = {0};
    expect_corrupt(64, same, 1, 64 + 150, "token count");
    expect_corrupt(0, "NOTATOK!", 8, -1, "magic");
    struct token_data d;
    cr_assert_eq(data_load(in_dir("missing"), 0.1, &d), -1);
    cr_assert(strstr(err_msg(), "missing"), "%s", err_msg());
    cleanup();
}

Test(data, load_prep_dir_shard_and_text) {
    /* a prep-style directory with the bytes vocabulary */
    int32_t ids[200];
    for (int i = 0; i < 200; i++) ids[i] = i;
    write_shard(in_dir("train.bin"), 256, ids, 150);
    write_shard(in_dir("val.bin"), 256, ids + 150, 50);
    struct token_data d;
    cr_assert_eq(data_load(dir, 0.5 /* ignored */, &d), 0, "%s", err_msg());
    cr_assert(d.n == 200 && d.train_end == 150 && d.vocab_size == 256);
    cr_assert_eq(memcmp(d.tokens, ids, sizeof ids), 0);
    cr_assert(d.tokenizer && tokenizer_is_bytes(d.tokenizer));
    data_free(&d);

    /* a single shard: split by val_fraction */
    cr_assert_eq(data_load(in_dir("train.bin"), 0.2, &d), 0, "%s", err_msg());
    cr_assert(d.n == 150 && d.train_end == 120);
    data_free(&d);

    /* a BPE vocabulary beside the shards must match their vocab size */
    struct tokenizer *t = tokenizer_load_files(TOKENIZER_FIXTURE_DIR "/vocab.json",
                                               TOKENIZER_FIXTURE_DIR "/merges.txt");
    cr_assert(t);
    cr_assert_eq(tokenizer_save_files(t, dir), 0);
    cr_assert_eq(data_load(dir, 0.0, &d), -1);
    cr_assert(strstr(err_msg(), "vocab size") && strstr(err_msg(), "2000"), "%s", err_msg());
    write_shard(in_dir("train.bin"), 2000, ids, 150);
    write_shard(in_dir("val.bin"), 2000, ids + 150, 50);
    cr_assert_eq(data_load(dir, 0.0, &d), 0, "%s", err_msg());
    cr_assert(d.vocab_size == 2000 && d.tokenizer && !tokenizer_is_bytes(d.tokenizer));
    cr_assert_eq(tokenizer_eot(d.tokenizer), 0);
    data_free(&d);
    tokenizer_free(t);

    /* val.bin with another vocabulary */
    write_shard(in_dir("val.bin"), 3000, ids, 50);
    cr_assert_eq(data_load(dir, 0.0, &d), -1);
    cr_assert(strstr(err_msg(), "val.bin"), "%s", err_msg());

    /* a text file: bytes, as data_load_bytes */
    FILE *f = fopen(in_dir("text.txt"), "w");
    fputs("hello, world", f);
    fclose(f);
    cr_assert_eq(data_load(in_dir("text.txt"), 0.25, &d), 0);
    cr_assert(d.n == 12 && d.train_end == 9 && d.vocab_size == 256 && d.tokens[0] == 'h');
    cr_assert(d.tokenizer && tokenizer_is_bytes(d.tokenizer));
    data_free(&d);
    cr_assert_eq(data_load_bytes(in_dir("text.txt"), 0.25, &d), 0);
    cr_assert(d.n == 12 && d.tokenizer);
    data_free(&d);
    cleanup();
}
