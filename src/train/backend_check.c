/* src/train/backend_check.c — one op backend against another (see
 * backend_check.h). The shapes are the ones the GPU suite has always used:
 * a regular one, then odd sizes, and for attention both the training
 * layout (packed q|k|v, Tq = Tk) and the decode layout (Tq < Tk).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_check.h"
#include "err.h"
#include "gpt2.h"
#include "optim.h"
#include "rng.h"

#define TOL 1e-4       /* fp32 ops: the order of summation differs */
#define TOL_SUMSQ 1e-6 /* a sum of squares in double on both sides */
#define TOL_LOSS 1e-3  /* a whole model over 20 steps */
/* bf16 matmul operands (backend_check_bf16). Both sides round the same fp32
 * inputs to the same bf16 operands and multiply exactly, so only the order
 * (and, on tensor cores, the rounding mode) of the fp32 accumulation
 * differs: ~1e-6, and at most ~3e-5 for a truncating accumulator over
 * K = 1536. 3e-4 still fails a device that multiplies fp32 operands, whose
 * results are ~2e-3 (bf16's unit roundoff 2^-9) off the emulation. */
#define TOL_BF16 3e-4
/* A model whose matmuls round to bf16: each backend rounds its own fp32
 * activations, which differ in the last bits, so a value that close to a
 * bf16 rounding boundary rounds the other way (an error of 2^-8 in that
 * operand) and training carries it into the later steps. Five times the
 * fp32 curve's tolerance; gross errors of the bf16 path (a wrong operand,
 * layout or scratch offset) move the loss by far more. It cannot tell bf16
 * from fp32 (tiny's two curves differ by only 1.2e-5 over 20 steps on the
 * CPU): TOL_BF16's op checks do that. */
#define TOL_LOSS_BF16 5e-3

struct ck {
    const struct ops *ref, *dut;
    struct rng r;
    struct check_report *rep;
    int oom;
    double tol;      /* compare's / loss_curve's tolerance; 0: TOL / TOL_LOSS */
    const char *tag; /* prefixed to the check names (NULL: none) */
};

/* A tensor on both backends with its host values. */
struct pair {
    float *h, *a, *b; /* host, ref, dut */
    size_t n;
};

static struct pair mk(struct ck *k, size_t n, float scale) {
    struct pair p = {malloc(n * sizeof(float)), k->ref->alloc(n * 4),
                     k->dut->alloc(n * 4), n};
    if (!p.h || !p.a || !p.b) {
        k->oom = 1;
        return p;
    }
    for (size_t i = 0; i < n; i++)
        p.h[i] = (float)(scale * (2.0 * rng_uniform(&k->r) - 1.0));
    k->ref->upload(p.a, p.h, n * 4);
    k->dut->upload(p.b, p.h, n * 4);
    return p;
}

static void drop(struct ck *k, struct pair *p) {
    free(p->h);
    if (p->a) k->ref->free(p->a);
    if (p->b) k->dut->free(p->b);
    memset(p, 0, sizeof *p);
}

static int32_t *tokens_on(struct ck *k, const struct ops *o, const int32_t *h, size_t n) {
    int32_t *d = o->alloc(n * 4);
    if (!d)
        k->oom = 1;
    else
        o->upload(d, h, n * 4);
    return d;
}

static void add(struct ck *k, const char *what, const char *shape, double err,
                double tol) {
    struct check_report *rep = k->rep;
    if (rep->n == rep->cap) {
        int cap = rep->cap ? 2 * rep->cap : 64;
        struct check_result *r = realloc(rep->r, (size_t)cap * sizeof *r);
        if (!r) {
            k->oom = 1;
            return;
        }
        rep->r = r;
        rep->cap = cap;
    }
    struct check_result *x = &rep->r[rep->n++];
    snprintf(x->what, sizeof x->what, "%s%s", k->tag ? k->tag : "", what);
    snprintf(x->shape, sizeof x->shape, "%s", shape);
    x->err = err;
    x->tol = tol;
    x->pass = err <= tol; /* NaN fails */
}

/* max|dut - ref| / max|ref| once both are done, recorded as a check. */
static void compare(struct ck *k, const struct pair *p, const char *what,
                    const char *shape) {
    if (k->oom) return;
    float *a = malloc(p->n * 4), *b = malloc(p->n * 4);
    if (!a || !b) {
        free(a);
        free(b);
        k->oom = 1;
        return;
    }
    k->dut->sync();
    k->ref->download(a, p->a, p->n * 4);
    k->dut->download(b, p->b, p->n * 4);
    double num = 0.0, den = 1e-30;
    for (size_t i = 0; i < p->n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) num = d; /* a NaN sticks */
        if (fabs(a[i]) > den) den = fabs(a[i]);
    }
    free(a);
    free(b);
    add(k, what, shape, num / den, k->tol > 0 ? k->tol : TOL);
}

static void embedding(struct ck *k) {
    static const int shapes[][6] = {{2, 16, 64, 0, 0, 256}, {3, 37, 33, 5, 100, 77}};
    for (int s = 0; s < 2 && !k->oom; s++) {
        int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], pos0 = shapes[s][3];
        int v0 = shapes[s][4], V = shapes[s][5];
        char sh[48];
        snprintf(sh, sizeof sh, "B=%d T=%d C=%d V=%d", B, T, C, V);
        size_t N = (size_t)B * T;
        int32_t *tok = malloc(N * 4);
        if (!tok) {
            k->oom = 1;
            return;
        }
        for (size_t i = 0; i < N; i++)
            tok[i] = (int32_t)(rng_u64(&k->r) % (uint64_t)(v0 + V + 20));
        int32_t *ta = tokens_on(k, k->ref, tok, N), *tb = tokens_on(k, k->dut, tok, N);
        struct pair wte = mk(k, (size_t)V * C, 1), wpe = mk(k, (size_t)(pos0 + T) * C, 1);
        struct pair out = mk(k, N * C, 0), dout = mk(k, N * C, 1);
        if (!k->oom) {
            k->ref->embedding_fwd(out.a, ta, wte.a, wpe.a, B, T, C, pos0, v0, V);
            k->dut->embedding_fwd(out.b, tb, wte.b, wpe.b, B, T, C, pos0, v0, V);
            compare(k, &out, "embedding forward", sh);
            k->ref->embedding_bwd(wte.a, wpe.a, dout.a, ta, B, T, C, pos0, v0, V);
            k->dut->embedding_bwd(wte.b, wpe.b, dout.b, tb, B, T, C, pos0, v0, V);
            compare(k, &wte, "embedding dwte", sh);
            compare(k, &wpe, "embedding dwpe", sh);
        }
        drop(k, &wte);
        drop(k, &wpe);
        drop(k, &out);
        drop(k, &dout);
        if (ta) k->ref->free(ta);
        if (tb) k->dut->free(tb);
        free(tok);
    }
}

static void layernorm(struct ck *k) {
    static const int shapes[][2] = {{64, 128}, {37, 33}, {5, 1000}};
    for (int s = 0; s < 3 && !k->oom; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        char sh[48];
        snprintf(sh, sizeof sh, "N=%d C=%d", N, C);
        struct pair x = mk(k, (size_t)N * C, 2), w = mk(k, C, 1), b = mk(k, C, 1);
        struct pair out = mk(k, (size_t)N * C, 0), mean = mk(k, N, 0), rstd = mk(k, N, 0);
        struct pair dout = mk(k, (size_t)N * C, 1), dx = mk(k, (size_t)N * C, 1);
        struct pair dw = mk(k, C, 1), db = mk(k, C, 1);
        if (!k->oom) {
            k->ref->layernorm_fwd(out.a, mean.a, rstd.a, x.a, w.a, b.a, N, C);
            k->dut->layernorm_fwd(out.b, mean.b, rstd.b, x.b, w.b, b.b, N, C);
            compare(k, &out, "layernorm forward", sh);
            compare(k, &rstd, "layernorm rstd", sh);
            k->ref->layernorm_bwd(dx.a, dw.a, db.a, dout.a, x.a, w.a, mean.a, rstd.a, N,
                                  C);
            k->dut->layernorm_bwd(dx.b, dw.b, db.b, dout.b, x.b, w.b, mean.b, rstd.b, N,
                                  C);
            compare(k, &dx, "layernorm dinp", sh);
            compare(k, &dw, "layernorm dw", sh);
            compare(k, &db, "layernorm db", sh);
        }
        struct pair *all[] = {&x, &w, &b, &out, &mean, &rstd, &dout, &dx, &dw, &db};
        for (int i = 0; i < 10; i++)
            drop(k, all[i]);
    }
}

static void matmul(struct ck *k) {
    static const int shapes[][3] = {
        {128, 64, 192}, {37, 33, 29}, {5, 7, 3}, {256, 384, 1536}};
    for (int s = 0; s < 4 && !k->oom; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        for (int bias = 0; bias < 2 && !k->oom; bias++) {
            char sh[48];
            snprintf(sh, sizeof sh, "N=%d C=%d OC=%d%s", N, C, OC, bias ? " +bias" : "");
            struct pair x = mk(k, (size_t)N * C, 1), w = mk(k, (size_t)OC * C, 1),
                        b = mk(k, OC, 1);
            struct pair out = mk(k, (size_t)N * OC, 0), dout = mk(k, (size_t)N * OC, 1);
            struct pair dx = mk(k, (size_t)N * C, 1), dw = mk(k, (size_t)OC * C, 1),
                        db = mk(k, OC, 1);
            if (!k->oom) {
                k->ref->matmul_fwd(out.a, x.a, w.a, bias ? b.a : NULL, N, C, OC);
                k->dut->matmul_fwd(out.b, x.b, w.b, bias ? b.b : NULL, N, C, OC);
                compare(k, &out, "matmul forward", sh);
                k->ref->matmul_bwd(dx.a, dw.a, bias ? db.a : NULL, dout.a, x.a, w.a, N, C,
                                   OC);
                k->dut->matmul_bwd(dx.b, dw.b, bias ? db.b : NULL, dout.b, x.b, w.b, N, C,
                                   OC);
                compare(k, &dx, "matmul dinp", sh);
                compare(k, &dw, "matmul dw", sh);
                if (bias) compare(k, &db, "matmul dbias", sh);
            }
            struct pair *all[] = {&x, &w, &b, &out, &dout, &dx, &dw, &db};
            for (int i = 0; i < 8; i++)
                drop(k, all[i]);
        }
    }
}

/* Training layout (packed qkv, Tq = Tk) and decode layout (Tq < Tk): regular
 * shapes, odd ones (T and HS off every tile and warp size, Tq = 1, head sizes
 * in each of the CUDA kernel's buckets up to its limit of 128, Tq on both
 * sides of its 32-row switch) and one long sequence (many key tiles, long
 * online-softmax chains). The forward's lse is compared too: it is what the
 * backward recomputes P from. */
static void attention(struct ck *k) {
    static const int shapes[][5] = {
        {2, 64, 64, 4, 16},  {3, 37, 37, 3, 11},     {2, 1, 29, 2, 8},
        {1, 5, 70, 5, 64},   {1, 1536, 1536, 2, 64}, {2, 100, 100, 3, 80},
        {1, 1, 200, 2, 128}, {2, 33, 95, 2, 96},     {1, 20, 20, 2, 40}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < nshapes && !k->oom; s++) {
        int B = shapes[s][0], Tq = shapes[s][1], Tk = shapes[s][2], NH = shapes[s][3];
        int HS = shapes[s][4], C = NH * HS;
        int packed = Tq == Tk;
        int qs = packed ? 3 * C : C, ks = packed ? 3 * C : 2 * C;
        char sh[48];
        snprintf(sh, sizeof sh, "B=%d Tq=%d Tk=%d NH=%d HS=%d", B, Tq, Tk, NH, HS);
        struct pair q = mk(k, (size_t)B * Tq * qs, 1), kv = mk(k, (size_t)B * Tk * ks, 1);
        struct pair out = mk(k, (size_t)B * Tq * C, 0),
                    lse = mk(k, (size_t)B * NH * Tq, 0);
        struct pair dout = mk(k, (size_t)B * Tq * C, 1);
        struct pair dq = mk(k, q.n, 1), dkv = mk(k, kv.n, 1);
        if (!k->oom) {
            /* packed: q, k, v all inside q's buffer; else k|v packed in kv */
            float *ka = packed ? q.a + C : kv.a, *kb = packed ? q.b + C : kv.b;
            float *va = packed ? q.a + 2 * C : kv.a + C,
                  *vb = packed ? q.b + 2 * C : kv.b + C;
            float *dka = packed ? dq.a + C : dkv.a, *dkb = packed ? dq.b + C : dkv.b;
            float *dva = packed ? dq.a + 2 * C : dkv.a + C,
                  *dvb = packed ? dq.b + 2 * C : dkv.b + C;
            k->ref->attention_fwd(out.a, lse.a, q.a, ka, va, B, Tq, Tk, NH, HS, qs, ks);
            k->dut->attention_fwd(out.b, lse.b, q.b, kb, vb, B, Tq, Tk, NH, HS, qs, ks);
            compare(k, &out, "attention forward", sh);
            compare(k, &lse, "attention lse", sh);
            k->ref->attention_bwd(dq.a, dka, dva, dout.a, out.a, lse.a, q.a, ka, va, B,
                                  Tq, Tk, NH, HS, qs, ks);
            k->dut->attention_bwd(dq.b, dkb, dvb, dout.b, out.b, lse.b, q.b, kb, vb, B,
                                  Tq, Tk, NH, HS, qs, ks);
            compare(k, &dq, packed ? "attention dqkv" : "attention dq", sh);
            if (!packed) compare(k, &dkv, "attention dk|dv", sh);
        }
        struct pair *all[] = {&q, &kv, &out, &lse, &dout, &dq, &dkv};
        for (int i = 0; i < 7; i++)
            drop(k, all[i]);
    }
}

/* max|x - y| / max|x| of two dut buffers (n floats); NaN sticks. */
static double dut_diff(struct ck *k, const float *x, const float *y, size_t n) {
    float *a = malloc(n * 4), *b = malloc(n * 4);
    double num = 0.0, den = 1e-30;
    if (!a || !b) {
        k->oom = 1;
    } else {
        k->dut->download(a, x, n * 4);
        k->dut->download(b, y, n * 4);
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)a[i] - b[i]);
            if (!(d <= num)) num = d;
            if (fabs(a[i]) > den) den = fabs(a[i]);
        }
    }
    free(a);
    free(b);
    return num / den;
}

/* Paged attention: sequences of different lengths in one call, their
 * blocks scattered at random over a pool, decode rows and prefill chunks,
 * query rows in reverse sequence order after a row of no sequence (random
 * initial out values: a row the op must not write is compared too). Then
 * the layout promise of ops.h on the device under test: the same values
 * with each sequence in one contiguous block give the same bits (tol 0). */
static void attention_paged(struct ck *k) {
    static const struct {
        int NH, HS, bs, n, nq[8], kvlen[8];
    } shapes[] = {
        {12, 64, 16, 8, {1, 1, 1, 1, 1, 1, 1, 1}, {1024, 1, 17, 300, 64, 65, 129, 700}},
        {3, 13, 5, 4, {1, 7, 1, 33}, {1, 40, 130, 33}},
        {2, 256, 7, 2, {2, 1}, {300, 65}},
        {1, 1, 1, 3, {1, 2, 3}, {4, 9, 3}},
        {5, 130, 32, 3, {1, 1, 17}, {33, 500, 17}},
    };
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0] && !k->oom; c++) {
        const int NH = shapes[c].NH, HS = shapes[c].HS, bs = shapes[c].bs;
        const int n = shapes[c].n, C = NH * HS, qs = C + 3, ks = 2 * C, voff = C;
        char sh[48];
        snprintf(sh, sizeof sh, "seqs=%d NH=%d HS=%d block=%d", n, NH, HS, bs);
        int rows = 1, need = 0, maxb = 1, maxlen = 1;
        for (int i = 0; i < n; i++) {
            int b = (shapes[c].kvlen[i] + bs - 1) / bs;
            need += b;
            maxb = b > maxb ? b : maxb;
            maxlen = shapes[c].kvlen[i] > maxlen ? shapes[c].kvlen[i] : maxlen;
            rows += shapes[c].nq[i];
        }
        const int pool = need + 5;
        int32_t *desc = malloc((size_t)n * (3 + maxb + 1) * 4);
        int *perm = malloc((size_t)pool * sizeof *perm);
        float *kv2h = calloc((size_t)n * maxlen * ks, 4);
        if (!desc || !perm || !kv2h) {
            free(desc);
            free(perm);
            free(kv2h);
            k->oom = 1;
            return;
        }
        /* desc: [n][3] descriptors, then the scattered tables [n][maxb],
         * then the contiguous layout's tables [n][1] */
        int32_t *tab = desc + 3 * n, *tab2 = tab + (size_t)n * maxb;
        for (int b = 0; b < pool; b++)
            perm[b] = b;
        for (int b = pool - 1; b > 0; b--) {
            int x = (int)(rng_u64(&k->r) % (uint64_t)(b + 1)), t = perm[b];
            perm[b] = perm[x];
            perm[x] = t;
        }
        for (int i = n - 1, row = 1, next = 0; i >= 0; i--) {
            desc[3 * i] = row;
            desc[3 * i + 1] = shapes[c].nq[i];
            desc[3 * i + 2] = shapes[c].kvlen[i];
            row += shapes[c].nq[i];
            tab2[i] = i;
            int nb = (shapes[c].kvlen[i] + bs - 1) / bs;
            for (int b = 0; b < maxb; b++)
                tab[(size_t)i * maxb + b] = b < nb ? perm[next++] : 0;
        }
        struct pair q = mk(k, (size_t)rows * qs, 1),
                    kv = mk(k, (size_t)pool * bs * ks, 1);
        struct pair out = mk(k, (size_t)rows * C, 1);
        const size_t nd = (size_t)n * (3 + maxb + 1);
        int32_t *da = tokens_on(k, k->ref, desc, nd),
                *db = tokens_on(k, k->dut, desc, nd);
        float *kv2 = k->dut->alloc((size_t)n * maxlen * ks * 4);
        float *out2 = k->dut->alloc(out.n * 4);
        if (!kv2 || !out2) k->oom = 1;
        if (!k->oom) {
            k->ref->attention_paged_fwd(out.a, q.a, kv.a, da, da + 3 * n, n, rows, maxb,
                                        bs, NH, HS, qs, ks, voff);
            k->dut->attention_paged_fwd(out.b, q.b, kv.b, db, db + 3 * n, n, rows, maxb,
                                        bs, NH, HS, qs, ks, voff);
            compare(k, &out, "attention paged", sh);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < shapes[c].kvlen[i]; j++)
                    memcpy(kv2h + ((size_t)i * maxlen + j) * ks,
                           kv.h + ((size_t)tab[(size_t)i * maxb + j / bs] * bs + j % bs) *
                                      ks,
                           (size_t)ks * 4);
            k->dut->upload(kv2, kv2h, (size_t)n * maxlen * ks * 4);
            k->dut->upload(out2, out.h, out.n * 4);
            k->dut->attention_paged_fwd(out2, q.b, kv2, db, db + 3 * n + (size_t)n * maxb,
                                        n, rows, 1, maxlen, NH, HS, qs, ks, voff);
            add(k, "attention paged layout", sh, dut_diff(k, out.b, out2, out.n), 0.0);
        }
        drop(k, &q);
        drop(k, &kv);
        drop(k, &out);
        if (da) k->ref->free(da);
        if (db) k->dut->free(db);
        if (kv2) k->dut->free(kv2);
        if (out2) k->dut->free(out2);
        free(desc);
        free(perm);
        free(kv2h);
    }
}

static void elementwise(struct ck *k) {
    static const size_t sizes[] = {1000, 4097, 12345};
    for (int s = 0; s < 3 && !k->oom; s++) {
        size_t n = sizes[s];
        char sh[48];
        snprintf(sh, sizeof sh, "n=%zu", n);
        struct pair a = mk(k, n, 4), b = mk(k, n, 1), out = mk(k, n, 0),
                    dout = mk(k, n, 1);
        struct pair da = mk(k, n, 1), db = mk(k, n, 1);
        if (!k->oom) {
            k->ref->gelu_fwd(out.a, a.a, n);
            k->dut->gelu_fwd(out.b, a.b, n);
            compare(k, &out, "gelu forward", sh);
            k->ref->gelu_bwd(da.a, dout.a, a.a, n);
            k->dut->gelu_bwd(da.b, dout.b, a.b, n);
            compare(k, &da, "gelu backward", sh);
            k->ref->residual_fwd(out.a, a.a, b.a, n);
            k->dut->residual_fwd(out.b, a.b, b.b, n);
            compare(k, &out, "residual forward", sh);
            k->ref->residual_bwd(da.a, db.a, dout.a, n);
            k->dut->residual_bwd(da.b, db.b, dout.b, n);
            compare(k, &da, "residual da", sh);
            compare(k, &db, "residual db", sh);
            double sa = k->ref->sumsq(a.a, n), sb = k->dut->sumsq(a.b, n);
            add(k, "sumsq", sh, fabs(sa - sb) / sa, TOL_SUMSQ);
            k->ref->scale(a.a, n, 0.37f);
            k->dut->scale(a.b, n, 0.37f);
            compare(k, &a, "scale", sh);
        }
        struct pair *all[] = {&a, &b, &out, &dout, &da, &db};
        for (int i = 0; i < 6; i++)
            drop(k, all[i]);
    }
}

static void cross_entropy(struct ck *k) {
    static const int shapes[][2] = {{64, 256}, {37, 50257}, {3, 33}};
    for (int s = 0; s < 3 && !k->oom; s++) {
        int N = shapes[s][0], V = shapes[s][1];
        char sh[48];
        snprintf(sh, sizeof sh, "N=%d V=%d", N, V);
        int32_t *tgt = malloc((size_t)N * 4);
        if (!tgt) {
            k->oom = 1;
            return;
        }
        for (int i = 0; i < N; i++) /* row 1 is ignored (-1) */
            tgt[i] = i == 1 ? -1 : (int32_t)(rng_u64(&k->r) % (uint64_t)V);
        int32_t *ta = tokens_on(k, k->ref, tgt, N), *tb = tokens_on(k, k->dut, tgt, N);
        struct pair z = mk(k, (size_t)N * V, 5), loss = mk(k, N, 0), dloss = mk(k, N, 1);
        if (!k->oom) {
            k->ref->xent_fwd(loss.a, z.a, ta, N, V);
            k->dut->xent_fwd(loss.b, z.b, tb, N, V);
            compare(k, &loss, "cross-entropy forward", sh);
            k->ref->xent_bwd_inplace(z.a, ta, dloss.a, N, V);
            k->dut->xent_bwd_inplace(z.b, tb, dloss.b, N, V);
            compare(k, &z, "cross-entropy backward", sh);
        }
        drop(k, &z);
        drop(k, &loss);
        drop(k, &dloss);
        if (ta) k->ref->free(ta);
        if (tb) k->dut->free(tb);
        free(tgt);
    }
}

static void optimizers(struct ck *k) {
    static const char *const names[] = {"sgd", "adam", "adamw"};
    enum { N = 10007, MANY = 300 };
    /* runs as a model has them (decayed matrices around undecayed biases),
     * and more runs than the CUDA kernel takes in one launch (128) */
    static const struct ops_decay_run few[] = {{4000, 0.1f}, {4007, 0.0f}, {9000, 0.1f},
                                               {N, 0.0f}};
    static struct ops_decay_run many[MANY];
    for (int r = 0; r < MANY; r++)
        many[r] = (struct ops_decay_run){r == MANY - 1 ? N : (size_t)(r + 1) * 33,
                                         r % 2 ? 0.0f : 0.05f * (1 + r % 3)};
    const struct ops_decay_run *tables[] = {few, many};
    const int counts[] = {4, MANY};
    const size_t n = N;
    for (int tab = 0; tab < 2; tab++) {
        for (int kind = 0; kind < 3 && !k->oom; kind++) {
            const struct ops_decay_run *runs = tables[tab];
            const int nr = counts[tab];
            char what[64], sh[48];
            snprintf(sh, sizeof sh, "n=%zu, %d runs, 3 steps", n, nr);
            struct pair p = mk(k, n, 1), m = mk(k, n, 0), v = mk(k, n, 0);
            for (int t = 1; t <= 3 && !k->oom; t++) {
                struct pair g = mk(k, n, 1);
                if (!k->oom && kind == 0) {
                    k->ref->sgd_update(p.a, g.a, m.a, n, runs, nr, 0.1f, 0.9f);
                    k->dut->sgd_update(p.b, g.b, m.b, n, runs, nr, 0.1f, 0.9f);
                } else if (!k->oom) {
                    k->ref->adam_update(p.a, g.a, m.a, v.a, n, runs, nr, 1e-2f, 0.9f,
                                        0.95f, 1e-8f, t, kind == 2);
                    k->dut->adam_update(p.b, g.b, m.b, v.b, n, runs, nr, 1e-2f, 0.9f,
                                        0.95f, 1e-8f, t, kind == 2);
                }
                drop(k, &g);
            }
            snprintf(what, sizeof what, "%s params", names[kind]);
            compare(k, &p, what, sh);
            snprintf(what, sizeof what, "%s first moment", names[kind]);
            compare(k, &m, what, sh);
            drop(k, &p);
            drop(k, &m);
            drop(k, &v);
        }
    }
}

int backend_check_ops(const struct ops *ref, const struct ops *dut,
                      struct check_report *rep) {
    struct ck k = {.ref = ref, .dut = dut, .rep = rep};
    rng_seed(&k.r, 1234);
    embedding(&k);
    layernorm(&k);
    matmul(&k);
    attention(&k);
    attention_paged(&k);
    elementwise(&k);
    cross_entropy(&k);
    optimizers(&k);
    return k.oom ? err_set("out of memory checking the ops") : 0;
}

/* `steps` AdamW steps of a whole model on each backend from the same
 * weights and batches; the largest relative loss difference. */
static int loss_curve(struct ck *k, const char *preset, int B, int T, int steps) {
    struct gpt2_config cfg;
    if (model_preset(preset, &cfg)) return -1;
    cfg.vocab_size = 256;
    struct gpt2 ma = {0}, mb = {0};
    struct optim oa = {0}, ob = {0};
    float *w = NULL;
    int32_t *tok = NULL;
    int rc = -1, have_a = 0, have_b = 0, have_oa = 0, have_ob = 0;
    if (gpt2_create(&ma, &cfg, k->ref)) goto out;
    have_a = 1;
    if (gpt2_create(&mb, &cfg, k->dut)) goto out;
    have_b = 1;
    size_t n = (size_t)B * T;
    w = malloc(ma.table.total * sizeof(float));
    tok = malloc((n + 1) * 4);
    if (!w || !tok) {
        err_set("out of memory");
        goto out;
    }
    param_init(&ma.table, &cfg, w, 5);
    gpt2_set_params(&ma, w);
    gpt2_set_params(&mb, w);
    struct optim_config oc = {OPTIM_ADAMW, 0.1f, 0.0f, 0.9f, 0.95f, 1e-8f};
    if (optim_create(&oa, &oc, &ma)) goto out;
    have_oa = 1;
    if (optim_create(&ob, &oc, &mb)) goto out;
    have_ob = 1;
    double worst = 0.0;
    for (int s = 0; s < steps; s++) {
        /* a learnable stream: a noisy repeating pattern */
        for (size_t i = 0; i <= n; i++)
            tok[i] =
                (int32_t)((i * 7 + (size_t)s) % 61 + (rng_u64(&k->r) % 4 == 0 ? 100 : 0));
        double la, lb;
        if (gpt2_forward(&ma, tok, tok + 1, B, T, &la) ||
            gpt2_forward(&mb, tok, tok + 1, B, T, &lb) || gpt2_backward(&ma) ||
            gpt2_backward(&mb))
            goto out;
        double d = fabs(la - lb) / la;
        if (!(d <= worst)) worst = d;
        optim_clip_grads(&ma, 1.0);
        optim_clip_grads(&mb, 1.0);
        optim_step(&oa, &ma, 1e-3f);
        optim_step(&ob, &mb, 1e-3f);
    }
    char what[64], sh[48];
    snprintf(what, sizeof what, "%s loss curve", preset);
    snprintf(sh, sizeof sh, "B=%d T=%d, %d AdamW steps", B, T, steps);
    add(k, what, sh, worst, k->tol > 0 ? k->tol : TOL_LOSS);
    rc = k->oom ? err_set("out of memory") : 0;
out:
    if (have_oa) optim_destroy(&oa);
    if (have_ob) optim_destroy(&ob);
    if (have_a) gpt2_destroy(&ma);
    if (have_b) gpt2_destroy(&mb);
    free(w);
    free(tok);
    return rc;
}

int backend_check_models(const struct ops *ref, const struct ops *dut, int steps,
                         int quick, struct check_report *rep) {
    struct ck k = {.ref = ref, .dut = dut, .rep = rep};
    rng_seed(&k.r, 4321);
    if (loss_curve(&k, "tiny", 4, 64, steps)) return -1;
    if (!quick && loss_curve(&k, "gpt2-mini", 4, 128, steps)) return -1;
    return 0;
}

int backend_check_bf16(const struct ops *ref, const struct ops *dut, int steps,
                       struct check_report *rep) {
    const struct ops *both[2] = {ref, dut};
    for (int i = 0; i < 2; i++)
        if (!both[i]->set_matmul_dtype || !both[i]->matmul_dtype)
            return err_set("the %s backend has no matmul dtype setting", both[i]->name);
    enum ops_dtype was[2] = {ref->matmul_dtype(), dut->matmul_dtype()};
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++)
        if (both[i]->set_matmul_dtype(OPS_BF16))
            rc = err_set("the %s backend cannot run bf16 matmuls here", both[i]->name);
    if (!rc) {
        struct ck k = {
            .ref = ref, .dut = dut, .rep = rep, .tol = TOL_BF16, .tag = "bf16 "};
        rng_seed(&k.r, 5678);
        matmul(&k);
        rc = k.oom ? err_set("out of memory checking the bf16 matmuls") : 0;
        k.tol = TOL_LOSS_BF16;
        if (!rc) rc = loss_curve(&k, "tiny", 4, 64, steps);
    }
    /* back to what each was in (dut first: ref may be the same backend) */
    dut->set_matmul_dtype(was[1]);
    ref->set_matmul_dtype(was[0]);
    return rc;
}

void check_report_free(struct check_report *rep) {
    free(rep->r);
    memset(rep, 0, sizeof *rep);
}

int check_report_failures(const struct check_report *rep) {
    int n = 0;
    for (int i = 0; i < rep->n; i++)
        n += !rep->r[i].pass;
    return n;
}
