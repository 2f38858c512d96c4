/* tests/test_ckpt.c — HDF5 checkpoints (src/common/ckpt*.c).
 *
 * Round trips must be bit-exact (parameters, moments, every state field);
 * damaged files (truncated at many lengths, garbage, not a checkpoint,
 * incomplete, a dataset of the wrong shape) must fail with a message naming
 * the file; the directory functions must skip temporary and incomplete files
 * and prune only complete checkpoints beyond the newest N. Files are made in
 * a fresh temporary directory per test.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "tokenizer.h"

#ifndef HF_TINY_DIR
#error "HF_TINY_DIR must point at tests/golden/hf_tiny"
#endif

static char dir[64];
static const struct gpt2_config cfg = {
    .vocab_size = 256, .max_seq = 16, .n_layer = 2, .n_head = 2, .n_embd = 8};

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/llmpi_test_ckpt_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(dir);
}

TestSuite(ckpt, .init = make_dir, .fini = remove_dir);

static size_t total(void) {
    struct param_table t;
    cr_assert_eq(param_table_build(&cfg, &t), 0);
    size_t n = t.total;
    param_table_free(&t);
    return n;
}

/* Deterministic, bit-pattern-rich floats (negative zero, tiny, huge). */
static float *pattern(size_t n, uint32_t seed) {
    float *x = malloc(n * sizeof *x);
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t bits = s & 0xbf7fffffu; /* no NaN/inf exponents */
        memcpy(&x[i], &bits, sizeof bits);
    }
    return x;
}

static struct ckpt_train_state state(const char *opt, float *m, float *v) {
    struct ckpt_train_state s = {
        .step = 10,
        .total_steps = 20,
        .seed = 0xfedcba9876543210ULL,
        .rng = {1, 0xffffffffffffffffULL, 3, 0x8000000000000000ULL},
        .data_cursor = 123456789012ULL,
        .data_train_tokens = 987654321098ULL,
        .optim_t = 10,
        .hp = {.lr = 6e-4f,
               .min_lr_frac = 0.1f,
               .weight_decay = 0.1f,
               .momentum = 0.9f,
               .beta1 = 0.9f,
               .beta2 = 0.95f,
               .eps = 1e-8f,
               .grad_clip = 1.0f,
               .val_fraction = 0.1f,
               .warmup = 3,
               .batch = 4,
               .seq = 16,
               .eval_every = 5,
               .eval_batches = 2},
        .m_state = m,
        .v_state = v,
    };
    snprintf(s.optimizer, sizeof s.optimizer, "%s", opt);
    return s;
}

/* Save a checkpoint of step `step` under dir with pattern data. */
static void save_step(int64_t step, char *path, size_t len) {
    size_t n = total();
    float *p = pattern(n, (uint32_t)step), *m = pattern(n, 7), *v = pattern(n, 8);
    struct tokenizer *tok = tokenizer_bytes();
    struct ckpt_train_state s = state("adamw", m, v);
    s.step = step;
    s.total_steps = step + 10;
    ckpt_path_for_step(dir, step, path, len);
    cr_assert_eq(ckpt_save(path, &cfg, p, tok, &s), 0, "%s", err_msg());
    tokenizer_free(tok);
    free(p);
    free(m);
    free(v);
}

static void check_roundtrip(const char *opt) {
    size_t n = total();
    float *p = pattern(n, 1), *m = pattern(n, 2),
          *v = strcmp(opt, "sgd") ? pattern(n, 3) : NULL;
    struct tokenizer *tok = tokenizer_bytes();
    struct ckpt_train_state s = state(opt, m, v);
    char path[256];
    snprintf(path, sizeof path, "%s/rt.h5", dir);
    cr_assert_eq(ckpt_save(path, &cfg, p, tok, &s), 0, "%s", err_msg());

    struct gpt2_config c;
    cr_assert_eq(ckpt_read_config(path, &c), 0, "%s", err_msg());
    cr_assert_eq(memcmp(&c, &cfg, sizeof c), 0);

    float *q = NULL;
    struct tokenizer *t2 = NULL;
    cr_assert_eq(ckpt_load_model(path, &c, &q, &t2), 0, "%s", err_msg());
    cr_assert_eq(memcmp(&c, &cfg, sizeof c), 0);
    cr_assert_eq(memcmp(p, q, n * sizeof *p), 0, "parameters differ");
    cr_assert(tokenizer_is_bytes(t2));

    struct ckpt_train_state r;
    cr_assert_eq(ckpt_load_train(path, &cfg, &r), 0, "%s", err_msg());
    cr_assert_eq(r.step, s.step);
    cr_assert_eq(r.total_steps, s.total_steps);
    cr_assert_eq(r.seed, s.seed);
    cr_assert_eq(memcmp(r.rng, s.rng, sizeof r.rng), 0);
    cr_assert_eq(r.data_cursor, s.data_cursor);
    cr_assert_eq(r.data_train_tokens, s.data_train_tokens);
    cr_assert_str_eq(r.optimizer, opt);
    cr_assert_eq(r.optim_t, s.optim_t);
    cr_assert_eq(memcmp(&r.hp, &s.hp, sizeof r.hp), 0, "hyperparameters differ");
    cr_assert_eq(memcmp(r.m_state, m, n * sizeof *m), 0, "first moment differs");
    if (v)
        cr_assert_eq(memcmp(r.v_state, v, n * sizeof *v), 0, "second moment differs");
    else
        cr_assert_null(r.v_state);

    ckpt_train_state_free(&r);
    tokenizer_free(tok);
    tokenizer_free(t2);
    free(p);
    free(q);
    free(m);
    free(v);
}

Test(ckpt, roundtrip_adamw) { check_roundtrip("adamw"); }
Test(ckpt, roundtrip_adam) { check_roundtrip("adam"); }
Test(ckpt, roundtrip_sgd) { check_roundtrip("sgd"); }

Test(ckpt, model_only_has_no_train_state) {
    size_t n = total();
    float *p = pattern(n, 1), *q = NULL;
    struct tokenizer *tok = tokenizer_bytes();
    char path[256];
    snprintf(path, sizeof path, "%s/model.h5", dir);
    cr_assert_eq(ckpt_save(path, &cfg, p, tok, NULL), 0, "%s", err_msg());
    struct gpt2_config c;
    cr_assert_eq(ckpt_load_model(path, &c, &q, NULL), 0, "%s", err_msg());
    cr_assert_eq(memcmp(p, q, n * sizeof *p), 0);
    struct ckpt_train_state r;
    cr_assert_eq(ckpt_load_train(path, &cfg, &r), -1);
    cr_assert(strstr(err_msg(), path) && strstr(err_msg(), "no training state"), "%s",
              err_msg());
    tokenizer_free(tok);
    free(p);
    free(q);
}

/* The tokenizer travels inside the file: a BPE one comes back with the same
 * vocab.json and merges.txt texts. Skipped while tokenizer.c is the
 * bytes-only placeholder. */
Test(ckpt, bpe_tokenizer_roundtrip) {
    struct tokenizer *tok =
        tokenizer_load_files(HF_TINY_DIR "/vocab.json", HF_TINY_DIR "/merges.txt");
    if (!tok) cr_skip_test("BPE tokenizer not available: %s", err_msg());
    struct gpt2_config c = cfg;
    c.vocab_size = tokenizer_vocab_size(tok);
    struct param_table t;
    cr_assert_eq(param_table_build(&c, &t), 0);
    float *p = pattern(t.total, 1), *q = NULL;
    param_table_free(&t);
    char path[256];
    snprintf(path, sizeof path, "%s/bpe.h5", dir);
    cr_assert_eq(ckpt_save(path, &c, p, tok, NULL), 0, "%s", err_msg());
    struct tokenizer *t2 = NULL;
    struct gpt2_config c2;
    cr_assert_eq(ckpt_load_model(path, &c2, &q, &t2), 0, "%s", err_msg());
    cr_assert(!tokenizer_is_bytes(t2));
    char *v1, *m1, *v2, *m2;
    size_t vl1, ml1, vl2, ml2;
    cr_assert_eq(tokenizer_to_strings(tok, &v1, &vl1, &m1, &ml1), 0);
    cr_assert_eq(tokenizer_to_strings(t2, &v2, &vl2, &m2, &ml2), 0);
    cr_assert(vl1 == vl2 && memcmp(v1, v2, vl1) == 0, "vocab.json differs");
    cr_assert(ml1 == ml2 && memcmp(m1, m2, ml1) == 0, "merges.txt differs");
    free(v1), free(m1), free(v2), free(m2);
    tokenizer_free(tok);
    tokenizer_free(t2);
    free(p);
    free(q);
}

static long file_size(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

/* Copy the first len bytes of src to dst. */
static void copy_prefix(const char *src, const char *dst, long len) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    cr_assert(in && out);
    for (long i = 0; i < len; i++) {
        int c = fgetc(in);
        cr_assert_neq(c, EOF);
        fputc(c, out);
    }
    fclose(in);
    fclose(out);
}

static void expect_load_error(const char *path, const char *what) {
    struct gpt2_config c;
    float *q = (float *)1;
    cr_assert_eq(ckpt_read_config(path, &c), -1, "%s: read_config succeeded", path);
    cr_assert(strstr(err_msg(), path), "message does not name the file: %s", err_msg());
    cr_assert(strstr(err_msg(), what), "expected '%s' in: %s", what, err_msg());
    cr_assert_eq(ckpt_load_model(path, &c, &q, NULL), -1);
    cr_assert_null(q);
    cr_assert(strstr(err_msg(), path), "%s", err_msg());
    cr_assert_eq(ckpt_is_complete(path), 0);
}

Test(ckpt, truncated_files_fail_clearly) {
    char path[256], cut[256];
    save_step(5, path, sizeof path);
    long size = file_size(path);
    long lens[] = {0, 1, 8, 100, 512, 2048, size / 4, size / 2, size - 4096, size - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        snprintf(cut, sizeof cut, "%s/cut_%ld.h5", dir, lens[i]);
        copy_prefix(path, cut, lens[i]);
        expect_load_error(cut, "corrupt or truncated");
    }
}

Test(ckpt, garbage_and_foreign_files_fail_clearly) {
    char path[256];
    snprintf(path, sizeof path, "%s/garbage.h5", dir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 5000; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    expect_load_error(path, "not a readable HDF5 file");

    /* a valid HDF5 file that is not a checkpoint */
    snprintf(path, sizeof path, "%s/foreign.h5", dir);
    hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(fid, 0);
    H5Fclose(fid);
    expect_load_error(path, "not an llmpi checkpoint");

    snprintf(path, sizeof path, "%s/missing.h5", dir);
    expect_load_error(path, "No such file");
    expect_load_error(dir, "not a regular file");
}

/* Open a saved checkpoint for writing with plain HDF5 (the damage tools). */
static hid_t reopen(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(fid, 0);
    return fid;
}

static void make_incomplete(const char *path) {
    hid_t fid = reopen(path);
    cr_assert_geq(H5Adelete(fid, "complete"), 0);
    H5Fclose(fid);
}

Test(ckpt, incomplete_file_fails_clearly) {
    char path[256];
    save_step(5, path, sizeof path);
    make_incomplete(path);
    expect_load_error(path, "incomplete checkpoint");
}

Test(ckpt, wrong_shape_and_missing_dataset) {
    char path[256];
    save_step(5, path, sizeof path);
    hid_t fid = reopen(path);
    cr_assert_geq(H5Ldelete(fid, "/params/wpe", H5P_DEFAULT), 0);
    hsize_t dims[2] = {16, 9};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(fid, "/params/wpe", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    cr_assert_geq(d, 0);
    H5Dclose(d);
    H5Sclose(sp);
    cr_assert_geq(H5Ldelete(fid, "/optimizer/v/ln_f.bias", H5P_DEFAULT), 0);
    H5Fclose(fid);

    struct gpt2_config c;
    float *q = NULL;
    cr_assert_eq(ckpt_load_model(path, &c, &q, NULL), -1);
    cr_assert(strstr(err_msg(), "/params/wpe has shape [16, 9], expected [16, 8]"), "%s",
              err_msg());
    struct ckpt_train_state r;
    cr_assert_eq(ckpt_load_train(path, &cfg, &r), -1);
    cr_assert(strstr(err_msg(), "/optimizer/v/ln_f.bias is missing"), "%s", err_msg());
    cr_assert_null(r.m_state);
}

Test(ckpt, failed_save_overwrites_nothing) {
    char path[256];
    save_step(5, path, sizeof path);
    long size = file_size(path);
    /* a config that does not validate: refused before any file is touched */
    struct gpt2_config bad = cfg;
    bad.n_head = 3;
    size_t n = total();
    float *p = pattern(n, 9);
    struct tokenizer *tok = tokenizer_bytes();
    cr_assert_eq(ckpt_save(path, &bad, p, tok, NULL), -1);
    cr_assert_eq(file_size(path), size);
    cr_assert(ckpt_is_complete(path));
    /* a directory that does not exist: the message names the temporary file */
    char nodir[256];
    snprintf(nodir, sizeof nodir, "%s/no/such/x.h5", dir);
    cr_assert_eq(ckpt_save(nodir, &cfg, p, tok, NULL), -1);
    cr_assert(strstr(err_msg(), "/no/such/.x.h5.tmp"), "%s", err_msg());
    tokenizer_free(tok);
    free(p);
}

static int exists(const char *name) {
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

static void touch_copy(const char *src, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    copy_prefix(src, p, file_size(src));
}

Test(ckpt, find_latest_skips_tmp_and_incomplete) {
    char out[512], p5[256], p10[256], p20[256], p25[256];
    cr_assert_eq(ckpt_find_latest(dir, out, sizeof out), 1, "empty dir: none");
    save_step(5, p5, sizeof p5);
    save_step(10, p10, sizeof p10);
    /* newer names that must not count */
    touch_copy(p10, ".ckpt_00000015.h5.tmp"); /* a save in flight */
    save_step(20, p20, sizeof p20);
    make_incomplete(p20);
    save_step(25, p25, sizeof p25);
    copy_prefix(p10, p25, file_size(p10) / 2); /* truncated */
    touch_copy(p10, "ckpt_30.h5");             /* not our name */
    touch_copy(p10, "ckpt_00000040.h5.bak");
    cr_assert_eq(ckpt_find_latest(dir, out, sizeof out), 0, "%s", err_msg());
    cr_assert_str_eq(out, p10);
    cr_assert_eq(ckpt_find_latest(dir, out, 8), -1, "too small an output buffer");

    char missing[256];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    cr_assert_eq(ckpt_find_latest(missing, out, sizeof out), -1);
    cr_assert(strstr(err_msg(), missing), "%s", err_msg());
}

Test(ckpt, prune_keeps_newest_complete) {
    char p[256];
    for (int s = 1; s <= 6; s++)
        save_step(s, p, sizeof p);
    ckpt_path_for_step(dir, 6, p, sizeof p);
    touch_copy(p, ".ckpt_00000003.h5.tmp"); /* stale: older than the newest */
    touch_copy(p, ".ckpt_00000009.h5.tmp"); /* maybe in flight: kept */
    save_step(7, p, sizeof p);
    make_incomplete(p); /* incomplete: neither counted nor deleted */

    cr_assert_eq(ckpt_prune(dir, 0), 0, "%s", err_msg()); /* 0: keep all */
    cr_assert(exists("ckpt_00000001.h5"));
    cr_assert(!exists(".ckpt_00000003.h5.tmp"));
    cr_assert(exists(".ckpt_00000009.h5.tmp"));

    cr_assert_eq(ckpt_prune(dir, 2), 0, "%s", err_msg());
    for (int s = 1; s <= 4; s++) {
        char name[64];
        snprintf(name, sizeof name, "ckpt_%08d.h5", s);
        cr_assert(!exists(name), "%s should be pruned", name);
    }
    cr_assert(exists("ckpt_00000005.h5"));
    cr_assert(exists("ckpt_00000006.h5"));
    cr_assert(exists("ckpt_00000007.h5"));
    cr_assert(exists(".ckpt_00000009.h5.tmp"));
    char out[512];
    cr_assert_eq(ckpt_find_latest(dir, out, sizeof out), 0);
    ckpt_path_for_step(dir, 6, p, sizeof p);
    cr_assert_str_eq(out, p);
}
