/* tests/test_convert.c — safetensors I/O and `llmpi convert` against transformers.
 *
 * tests/golden/hf_tiny/ was written by tests/golden/make_hf_gpt2.py: a real
 * transformers GPT2LMHeadModel (n_embd 64, n_layer 2, n_head 4, n_positions
 * 64, a 601-token byte-level BPE), saved with save_pretrained, plus
 * logits.llfx, the logits of 4 prompts computed by transformers in float64
 * from the float32 weights.
 *
 *  - safetensors: write/read round trip, F16/BF16/F64 conversion, and every
 *    malformed-header case named in safetensors.h, each failing at st_open
 *    with a message naming the file and the tensor;
 *  - HF -> llmpi (convert_main, the CLI's entry point) -> ckpt_load_model ->
 *    gpt2_forward on the CPU backend: logits within 1e-5 of transformers'
 *    (max|c - ref| / max|ref| per prompt; fp32 against a float64 reference);
 *  - HF -> llmpi -> HF: every tensor byte-identical (name, dtype, shape, bytes);
 *  - the variants transformers writes or used to write (no "transformer."
 *    prefix, attn.bias / attn.masked_bias buffers, an explicit lm_head.weight
 *    equal to wte) give the same checkpoint; an lm_head.weight that differs
 *    is refused.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "err.h"
#include "gpt2.h"
#include "llfx.h"
#include "safetensors.h"
#include "subcommands.h"
#include "tokenizer.h"

#ifndef GOLDEN_DIR
#error "GOLDEN_DIR must point at tests/golden"
#endif
#define HF_DIR GOLDEN_DIR "/hf_tiny"
#define TOL 1e-5

static char work[256];

static void mk_work(void) {
    const char *base = getenv("TMPDIR");
    snprintf(work, sizeof work, "%s/llmpi_convert_XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(work));
}

static void rm_work(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    cr_expect_eq(system(cmd), 0);
}

static void wpath(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", work, name);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* ---- safetensors ----------------------------------------------------------- */

/* A file with the given header JSON (length field = strlen(json) + hlen_delta)
 * followed by `ndata` bytes of data. */
static void write_raw(const char *path, const char *json, long hlen_delta, size_t ndata) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    unsigned long long h = (unsigned long long)((long)strlen(json) + hlen_delta);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(h >> (8 * i));
    fwrite(len, 1, 8, fp);
    fputs(json, fp);
    for (size_t i = 0; i < ndata; i++)
        fputc(0, fp);
    fclose(fp);
}

/* st_open fails with a message containing the file name and `want`. */
static void expect_open_error(const char *json, long hlen_delta, size_t ndata,
                              const char *want) {
    char p[512];
    wpath(p, sizeof p, "bad.safetensors");
    write_raw(p, json, hlen_delta, ndata);
    struct st_file f;
    cr_expect_eq(st_open(p, &f), -1, "st_open accepted %s", json);
    cr_expect_not_null(strstr(err_msg(), p), "message does not name the file: %s",
                       err_msg());
    cr_expect_not_null(strstr(err_msg(), want), "message '%s' lacks '%s'", err_msg(),
                       want);
    st_close(&f);
}

Test(safetensors, write_read_roundtrip, .init = mk_work, .fini = rm_work) {
    float a[6] = {1, 2, 3, 4, 5, 6}; /* [2, 3] as data, written transposed as [3, 2] */
    float b[3] = {-1.5f, 0.25f, 1e-30f};
    struct st_out_tensor t[3] = {
        {.name = "z.weight", .ndim = 2, .shape = {3, 2}, .data = a, .transpose = 1},
        {.name = "a.bias", .ndim = 1, .shape = {3}, .data = b},
        {.name = "empty", .ndim = 2, .shape = {0, 4}, .data = NULL},
    };
    const char *meta[] = {"format", "pt", "note", "quote \" and \\ kept"};
    char p[512];
    wpath(p, sizeof p, "rt.safetensors");
    cr_assert_eq(st_write(p, t, 3, meta, 2), 0, "%s", err_msg());
    cr_expect(!exists(strcat(strcpy((char[600]){0}, p), ".tmp")),
              "temporary file left behind");

    struct st_file f;
    cr_assert_eq(st_open(p, &f), 0, "%s", err_msg());
    cr_expect_eq(f.count, 3);
    cr_expect_eq((f.data_start) % 8, 0, "header not padded to 8 bytes");
    cr_expect_str_eq(st_meta(&f, "format"), "pt");
    cr_expect_str_eq(st_meta(&f, "note"), "quote \" and \\ kept");
    const struct st_tensor *z = st_find(&f, "z.weight");
    cr_assert_not_null(z);
    cr_expect_str_eq(z->dtype, "F32");
    cr_expect(z->ndim == 2 && z->shape[0] == 3 && z->shape[1] == 2);
    float got[6];
    cr_assert_eq(st_read_f32(&f, z, got), 0, "%s", err_msg());
    const float want[6] = {1, 4, 2, 5, 3, 6};
    cr_expect_arr_eq(got, want, sizeof want);
    const struct st_tensor *bb = st_find(&f, "a.bias");
    cr_assert_not_null(bb);
    cr_assert_eq(st_read_f32(&f, bb, got), 0, "%s", err_msg());
    cr_expect_arr_eq(got, b, sizeof b);
    cr_expect_eq(st_find(&f, "empty")->numel, 0);
    cr_expect_null(st_find(&f, "nope"));
    st_close(&f);
}

Test(safetensors, converts_f16_bf16_f64, .init = mk_work, .fini = rm_work) {
    char p[512];
    wpath(p, sizeof p, "h.safetensors");
    const char *json =
        "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[12,20]},"
        "\"m\":{\"dtype\":\"BOOL\",\"shape\":[1,1,2,2],\"data_offsets\":[20,24]}}";
    write_raw(p, json, 0, 0);
    FILE *fp = fopen(p, "ab");
    /* F16: 1.0, -2.0, 2^-24 (smallest subnormal), 65504 (largest finite) */
    const uint16_t h[4] = {0x3C00, 0xC000, 0x0001, 0x7BFF};
    const uint16_t bf[2] = {0x3F80, 0xC0A0}; /* 1.0, -5.0 */
    const double d = 0.1;
    const unsigned char m[4] = {1, 0, 1, 1};
    fwrite(h, 2, 4, fp);
    fwrite(bf, 2, 2, fp);
    fwrite(&d, 8, 1, fp);
    fwrite(m, 1, 4, fp);
    fclose(fp);

    struct st_file f;
    cr_assert_eq(st_open(p, &f), 0, "%s", err_msg());
    float v[4];
    cr_assert_eq(st_read_f32(&f, st_find(&f, "h"), v), 0, "%s", err_msg());
    cr_expect(v[0] == 1.0f && v[1] == -2.0f && v[2] == ldexpf(1.0f, -24) &&
                  v[3] == 65504.0f,
              "F16: %g %g %g %g", v[0], v[1], v[2], v[3]);
    cr_assert_eq(st_read_f32(&f, st_find(&f, "b"), v), 0, "%s", err_msg());
    cr_expect(v[0] == 1.0f && v[1] == -5.0f, "BF16: %g %g", v[0], v[1]);
    cr_assert_eq(st_read_f32(&f, st_find(&f, "d"), v), 0, "%s", err_msg());
    cr_expect_eq(v[0], 0.1f);
    const struct st_tensor *mt = st_find(&f, "m");
    cr_expect(!st_is_float(mt));
    cr_expect_eq(st_read_f32(&f, mt, v), -1);
    cr_expect_not_null(strstr(err_msg(), "'m' has dtype BOOL"), "%s", err_msg());
    st_close(&f);
}

Test(safetensors, rejects_malformed, .init = mk_work, .fini = rm_work) {
    const char *ok = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_open_error(ok, 1000, 8, "header length"); /* truncated header */
    expect_open_error(ok, 0, 4, "'w': data_offsets [0, 8] are out of range");
    expect_open_error(ok, 0, 12, "trailing"); /* 4 bytes not covered */
    expect_open_error(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8,
        "'w': data_offsets [0, 8] hold 8 bytes but the shape and dtype F32 need 12");
    expect_open_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      0, 8, "overlap");
    expect_open_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      0, 8, "'w': data_offsets [4, 8] leave a hole");
    expect_open_error("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                      0, 8, "'w': unknown dtype 'Q4'");
    expect_open_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
                      0, 8, "'w': shape[0] is not a non-negative integer");
    expect_open_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
                      0, 8, "'w': data_offsets [8, 0] are out of range");
    expect_open_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, 8,
                      "'w': data_offsets is not a pair");
    expect_open_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
                      0, 8, "'w' appears twice");
    expect_open_error("{\"__metadata__\":{\"format\":1}}", 0, 0, "value of 'format'");
    expect_open_error("{\"w\": oops}", 0, 8, "not valid JSON");
    expect_open_error("[1, 2]", 0, 0, "does not start with '{'");
    /* an 8-byte length field alone, then nothing */
    char p[512];
    wpath(p, sizeof p, "short.safetensors");
    FILE *fp = fopen(p, "wb");
    fputs("abc", fp);
    fclose(fp);
    struct st_file f;
    cr_expect_eq(st_open(p, &f), -1);
    cr_expect_not_null(strstr(err_msg(), "truncated"), "%s", err_msg());
    wpath(p, sizeof p, "missing.safetensors");
    cr_expect_eq(st_open(p, &f), -1);
    cr_expect_not_null(strstr(err_msg(), "No such file"), "%s", err_msg());
}

/* ---- convert ----------------------------------------------------------------- */

static int convert(const char *dir_flag, const char *in, const char *out) {
    char *argv[] = {"convert", (char *)dir_flag, (char *)in, "--out", (char *)out, NULL};
    return convert_main(5, argv);
}

static float *load_ckpt(const char *path, struct gpt2_config *cfg,
                        struct tokenizer **tok) {
    float *params = NULL;
    cr_assert_eq(ckpt_load_model(path, cfg, &params, tok), 0, "%s", err_msg());
    return params;
}

Test(convert, hf_logits_match_transformers, .init = mk_work, .fini = rm_work) {
    char h5[512];
    wpath(h5, sizeof h5, "tiny.h5");
    cr_assert_eq(convert("--from-hf", HF_DIR, h5), 0, "%s", err_msg());
    struct gpt2_config cfg;
    float *params = load_ckpt(h5, &cfg, NULL);

    struct llfx fx;
    cr_assert_eq(llfx_load(HF_DIR "/logits.llfx", &fx), 0);
    const int32_t *c = llfx_get(&fx, "config")->data;
    cr_expect(cfg.vocab_size == c[0] && cfg.max_seq == c[1] && cfg.n_layer == c[2] &&
                  cfg.n_head == c[3] && cfg.n_embd == c[4],
              "config differs from the fixture");

    struct gpt2 m;
    cr_assert_eq(gpt2_create(&m, &cfg, ops_cpu()), 0, "%s", err_msg());
    gpt2_set_params(&m, params);
    int count = *(const int32_t *)llfx_get(&fx, "count")->data;
    double worst = 0;
    for (int i = 0; i < count; i++) {
        char key[32];
        snprintf(key, sizeof key, "tokens/%d", i);
        const struct llfx_tensor *tk = llfx_get(&fx, key);
        snprintf(key, sizeof key, "logits/%d", i);
        const struct llfx_tensor *lg = llfx_get(&fx, key);
        cr_assert(tk && lg);
        int T = (int)tk->numel;
        cr_assert_eq(gpt2_forward(&m, tk->data, NULL, 1, T, NULL), 0, "%s", err_msg());
        size_t n = (size_t)T * (size_t)cfg.vocab_size;
        cr_assert_eq(lg->numel, n);
        float *got = malloc(n * sizeof *got);
        m.ops->download(got, m.logits, n * sizeof *got);
        const float *ref = lg->data;
        double num = 0, den = 1e-30;
        for (size_t k = 0; k < n; k++) {
            double d = fabs((double)got[k] - ref[k]);
            if (!(d <= num)) num = d;
            if (fabs(ref[k]) > den) den = fabs(ref[k]);
        }
        free(got);
        cr_log_info("prompt %d (%d tokens): max|c - hf| / max|hf| = %.3g", i, T,
                    num / den);
        cr_expect_leq(num / den, TOL, "prompt %d: relative error %.3g", i, num / den);
        if (num / den > worst) worst = num / den;
    }
    printf("convert: logits vs transformers (float64), worst relative error %.3g\n",
           worst);
    gpt2_destroy(&m);
    llfx_free(&fx);
    free(params);
}

/* Every tensor of two safetensors files: same names, dtypes, shapes, bytes. */
static void expect_same_tensors(const char *a_path, const char *b_path) {
    struct st_file a, b;
    cr_assert_eq(st_open(a_path, &a), 0, "%s", err_msg());
    cr_assert_eq(st_open(b_path, &b), 0, "%s", err_msg());
    cr_expect_eq(a.count, b.count, "%d tensors vs %d", a.count, b.count);
    for (int i = 0; i < a.count; i++) {
        const struct st_tensor *x = &a.t[i], *y = st_find(&b, x->name);
        cr_assert_not_null(y, "%s: no tensor %s", b_path, x->name);
        cr_expect_str_eq(x->dtype, y->dtype, "%s", x->name);
        cr_expect_eq(x->ndim, y->ndim, "%s", x->name);
        cr_expect_arr_eq(x->shape, y->shape, sizeof x->shape[0] * (size_t)x->ndim, "%s",
                         x->name);
        size_t n = (size_t)(x->end - x->begin);
        cr_assert_eq(n, (size_t)(y->end - y->begin), "%s", x->name);
        char *p = malloc(n + 1), *q = malloc(n + 1);
        cr_assert_eq(st_read_raw(&a, x, p), 0, "%s", err_msg());
        cr_assert_eq(st_read_raw(&b, y, q), 0, "%s", err_msg());
        cr_expect(memcmp(p, q, n) == 0, "tensor %s differs", x->name);
        free(p);
        free(q);
    }
    st_close(&a);
    st_close(&b);
}

Test(convert, hf_roundtrip_is_byte_identical, .init = mk_work, .fini = rm_work) {
    char h5[512], out[512], p[600];
    wpath(h5, sizeof h5, "tiny.h5");
    wpath(out, sizeof out, "hf_out");
    cr_assert_eq(convert("--from-hf", HF_DIR, h5), 0, "%s", err_msg());
    cr_assert_eq(convert("--to-hf", h5, out), 0, "%s", err_msg());
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    expect_same_tensors(HF_DIR "/model.safetensors", p);
    static const char *files[] = {"config.json", "vocab.json", "merges.txt",
                                  "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        cr_expect(exists(p), "%s was not written", p);
    }
    /* and back again: the checkpoint converted from our own output is the same */
    char h5b[512];
    wpath(h5b, sizeof h5b, "tiny2.h5");
    cr_assert_eq(convert("--from-hf", out, h5b), 0, "%s", err_msg());
    struct gpt2_config c1, c2;
    float *p1 = load_ckpt(h5, &c1, NULL), *p2 = load_ckpt(h5b, &c2, NULL);
    struct param_table t;
    cr_assert_eq(param_table_build(&c1, &t), 0);
    cr_expect(memcmp(&c1, &c2, sizeof c1) == 0);
    cr_expect(memcmp(p1, p2, t.total * sizeof(float)) == 0, "parameters differ");
    param_table_free(&t);
    free(p1);
    free(p2);
    /* --to-hf refuses a non-empty output directory */
    cr_expect_eq(convert("--to-hf", h5, out), 1);
    cr_expect_not_null(strstr(err_msg(), "not empty"), "%s", err_msg());
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    cr_assert(a && b, "copy %s -> %s", from, to);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
}

/* WORK/NAME/: hf_tiny's config and tokenizer, and hf_tiny's tensors renamed
 * and extended: without the "transformer." prefix when strip is set, with
 * mask buffers, with lm_head.weight = wte (+ `lm_delta` on one element). */
static void make_variant(const char *name, int strip, int with_lm_head, float lm_delta) {
    char dir[512], p[600];
    wpath(dir, sizeof dir, name);
    cr_assert_eq(mkdir(dir, 0755), 0);
    static const char *files[] = {"config.json", "vocab.json", "merges.txt"};
    for (int i = 0; i < 3; i++) {
        char from[512];
        snprintf(from, sizeof from, "%s/%s", HF_DIR, files[i]);
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        copy_file(from, p);
    }
    struct st_file f;
    cr_assert_eq(st_open(HF_DIR "/model.safetensors", &f), 0, "%s", err_msg());
    struct st_out_tensor *o = calloc((size_t)f.count + 4, sizeof *o);
    float **data = calloc((size_t)f.count + 4, sizeof *data);
    int n = 0;
    const float *wte = NULL;
    size_t wte_n = 0;
    for (int i = 0; i < f.count; i++, n++) {
        const struct st_tensor *t = &f.t[i];
        data[n] = malloc(t->numel * sizeof(float) + 1);
        cr_assert_eq(st_read_f32(&f, t, data[n]), 0, "%s", err_msg());
        o[n].name = t->name + (strip ? strlen("transformer.") : 0);
        o[n].ndim = t->ndim;
        memcpy(o[n].shape, t->shape, sizeof t->shape);
        o[n].data = data[n];
        if (!strcmp(t->name, "transformer.wte.weight")) wte = data[n], wte_n = t->numel;
    }
    static float mask[64 * 64], masked_bias = -1e4f;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++)
            mask[i * 64 + j] = j <= i;
    o[n++] = (struct st_out_tensor){.name = strip ? "h.0.attn.bias"
                                                  : "transformer.h.0.attn.bias",
                                    .ndim = 4,
                                    .shape = {1, 1, 64, 64},
                                    .data = mask};
    o[n++] = (struct st_out_tensor){.name = strip ? "h.1.attn.masked_bias"
                                                  : "transformer.h.1.attn.masked_bias",
                                    .ndim = 0,
                                    .data = &masked_bias};
    float *lm = NULL;
    if (with_lm_head) {
        cr_assert_not_null(wte);
        lm = malloc(wte_n * sizeof *lm);
        memcpy(lm, wte, wte_n * sizeof *lm);
        lm[wte_n / 2] += lm_delta;
        o[n++] = (struct st_out_tensor){
            .name = "lm_head.weight",
            .ndim = 2,
            .shape = {st_find(&f, "transformer.wte.weight")->shape[0],
                      st_find(&f, "transformer.wte.weight")->shape[1]},
            .data = lm};
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    static const char *const meta[] = {"format", "pt"};
    cr_assert_eq(st_write(p, o, n, meta, 1), 0, "%s", err_msg());
    for (int i = 0; i < f.count; i++)
        free(data[i]);
    free(data);
    free(o);
    free(lm);
    st_close(&f);
}

Test(convert, hf_name_variants, .init = mk_work, .fini = rm_work) {
    char ref[512];
    wpath(ref, sizeof ref, "ref.h5");
    cr_assert_eq(convert("--from-hf", HF_DIR, ref), 0, "%s", err_msg());
    struct gpt2_config cfg;
    float *want = load_ckpt(ref, &cfg, NULL);
    struct param_table t;
    cr_assert_eq(param_table_build(&cfg, &t), 0);

    const struct {
        const char *name;
        int strip, lm_head;
    } cases[] = {{"bare", 1, 0}, {"bare_lm", 1, 1}, {"prefixed_lm", 0, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        make_variant(cases[i].name, cases[i].strip, cases[i].lm_head, 0.0f);
        char dir[512], h5[600];
        wpath(dir, sizeof dir, cases[i].name);
        snprintf(h5, sizeof h5, "%s.h5", dir);
        cr_assert_eq(convert("--from-hf", dir, h5), 0, "%s: %s", cases[i].name,
                     err_msg());
        struct gpt2_config c2;
        float *got = load_ckpt(h5, &c2, NULL);
        cr_expect(memcmp(got, want, t.total * sizeof(float)) == 0,
                  "%s: parameters differ", cases[i].name);
        free(got);
    }

    make_variant("untied", 0, 1, 1e-3f);
    char dir[512], h5[600];
    wpath(dir, sizeof dir, "untied");
    snprintf(h5, sizeof h5, "%s.h5", dir);
    cr_expect_eq(convert("--from-hf", dir, h5), 1);
    cr_expect_not_null(strstr(err_msg(), "'lm_head.weight' differs"), "%s", err_msg());
    cr_expect(!exists(h5), "an output file was left behind");
    param_table_free(&t);
    free(want);
}

/* The checkpoint's tokenizer (loaded from hf_tiny's vocab.json/merges.txt)
 * encodes the fixture's texts as the HF tokenizer did. */
Test(convert, tokenizer_matches_hf, .init = mk_work, .fini = rm_work) {
    char h5[512];
    wpath(h5, sizeof h5, "tiny.h5");
    cr_assert_eq(convert("--from-hf", HF_DIR, h5), 0, "%s", err_msg());
    struct gpt2_config cfg;
    struct tokenizer *tok = NULL;
    free(load_ckpt(h5, &cfg, &tok));
    cr_assert_not_null(tok);
    cr_expect_eq(tokenizer_vocab_size(tok), cfg.vocab_size);
    cr_expect_eq(tokenizer_eot(tok), cfg.vocab_size - 1);
    struct llfx fx;
    cr_assert_eq(llfx_load(HF_DIR "/logits.llfx", &fx), 0);
    int count = *(const int32_t *)llfx_get(&fx, "count")->data;
    for (int i = 0; i < count; i++) {
        char key[32];
        snprintf(key, sizeof key, "text/%d", i);
        const struct llfx_tensor *tx = llfx_get(&fx, key);
        snprintf(key, sizeof key, "tokens/%d", i);
        const struct llfx_tensor *tk = llfx_get(&fx, key);
        if (!tx->numel) continue;
        char *text = malloc(tx->numel + 1);
        for (size_t k = 0; k < tx->numel; k++)
            text[k] = (char)((const int32_t *)tx->data)[k];
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        cr_assert_eq(tokenizer_encode(tok, text, tx->numel, &ids, &n, &cap), 0, "%s",
                     err_msg());
        cr_expect_leq(n, tk->numel);
        cr_expect(n <= tk->numel && memcmp(ids, tk->data, n * sizeof *ids) == 0,
                  "text %d encodes differently from the HF tokenizer", i);
        free(ids);
        free(text);
    }
    llfx_free(&fx);
    tokenizer_free(tok);
}
