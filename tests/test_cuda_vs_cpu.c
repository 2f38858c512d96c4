/* tests/test_cuda_vs_cpu.c — every CUDA op against the CPU backend
 * (ctest -L gpu). Skipped, with a message saying so, where no GPU is present.
 *
 * Each op runs on both backends from the same random inputs, at a regular
 * shape and at odd shapes (sizes that are not multiples of any block or warp
 * size); outputs and accumulated gradients must agree to a relative error of
 * TOL = 1e-4 (max|cuda - cpu| / max|cpu|): both are fp32, only the order of
 * summation differs. Then whole models: the `tiny` and `gpt2-mini` losses of
 * 20 AdamW steps on the GPU must follow the CPU curve to 1e-3 relative.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"
#include "ops_cuda.h"
#include "optim.h"
#include "rng.h"

#define TOL 1e-4

static const struct ops *cpu, *gpu;
static struct rng r;

static void setup(void) {
    cpu = ops_cpu();
    gpu = ops_cuda();
    if (!gpu) cr_skip_test("no CUDA device: GPU tests skipped");
    rng_seed(&r, 1234);
}

TestSuite(cuda, .init = setup);

/* A tensor on both backends with its host values. */
struct pair {
    float *h, *c, *g;
    size_t n;
};

static struct pair mk(size_t n, float scale) {
    struct pair p = {malloc(n * sizeof(float)), cpu->alloc(n * 4), gpu->alloc(n * 4), n};
    cr_assert(p.h && p.c && p.g, "allocation of %zu floats failed", n);
    for (size_t i = 0; i < n; i++)
        p.h[i] = (float)(scale * (2.0 * rng_uniform(&r) - 1.0));
    cpu->upload(p.c, p.h, n * 4);
    gpu->upload(p.g, p.h, n * 4);
    return p;
}

static void drop(struct pair *p) {
    free(p->h);
    cpu->free(p->c);
    gpu->free(p->g);
}

/* max|gpu - cpu| / max|cpu| after both finished. */
static double diff(const struct pair *p) {
    float *a = malloc(p->n * 4), *b = malloc(p->n * 4);
    gpu->sync();
    cpu->download(a, p->c, p->n * 4);
    gpu->download(b, p->g, p->n * 4);
    double num = 0.0, den = 1e-30;
    for (size_t i = 0; i < p->n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) num = d;
        if (fabs(a[i]) > den) den = fabs(a[i]);
    }
    free(a);
    free(b);
    return num / den;
}

#define CHECK(p, what)                                                                   \
    do {                                                                                 \
        double e_ = diff(&(p));                                                          \
        cr_expect_leq(e_, TOL, "%s: relative difference %.3g", what, e_);                \
    } while (0)

static int32_t *tokens_on(const struct ops *o, const int32_t *h, size_t n) {
    int32_t *d = o->alloc(n * 4);
    o->upload(d, h, n * 4);
    return d;
}

Test(cuda, embedding) {
    int shapes[][6] = {{2, 16, 64, 0, 0, 256}, {3, 37, 33, 5, 100, 77}};
    for (int s = 0; s < 2; s++) {
        int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], pos0 = shapes[s][3];
        int v0 = shapes[s][4], V = shapes[s][5];
        size_t N = (size_t)B * T;
        int32_t *tok = malloc(N * 4);
        for (size_t i = 0; i < N; i++)
            tok[i] = (int32_t)(rng_u64(&r) % (uint64_t)(v0 + V + 20));
        int32_t *tc = tokens_on(cpu, tok, N), *tg = tokens_on(gpu, tok, N);
        struct pair wte = mk((size_t)V * C, 1), wpe = mk((size_t)(pos0 + T) * C, 1);
        struct pair out = mk(N * C, 0), dout = mk(N * C, 1);
        cpu->embedding_fwd(out.c, tc, wte.c, wpe.c, B, T, C, pos0, v0, V);
        gpu->embedding_fwd(out.g, tg, wte.g, wpe.g, B, T, C, pos0, v0, V);
        CHECK(out, "embedding forward");
        cpu->embedding_bwd(wte.c, wpe.c, dout.c, tc, B, T, C, pos0, v0, V);
        gpu->embedding_bwd(wte.g, wpe.g, dout.g, tg, B, T, C, pos0, v0, V);
        CHECK(wte, "embedding dwte");
        CHECK(wpe, "embedding dwpe");
        drop(&wte);
        drop(&wpe);
        drop(&out);
        drop(&dout);
        cpu->free(tc);
        gpu->free(tg);
        free(tok);
    }
}

Test(cuda, layernorm) {
    int shapes[][2] = {{64, 128}, {37, 33}, {5, 1000}};
    for (int s = 0; s < 3; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        struct pair x = mk((size_t)N * C, 2), w = mk(C, 1), b = mk(C, 1);
        struct pair out = mk((size_t)N * C, 0), mean = mk(N, 0), rstd = mk(N, 0);
        struct pair dout = mk((size_t)N * C, 1), dx = mk((size_t)N * C, 1);
        struct pair dw = mk(C, 1), db = mk(C, 1);
        cpu->layernorm_fwd(out.c, mean.c, rstd.c, x.c, w.c, b.c, N, C);
        gpu->layernorm_fwd(out.g, mean.g, rstd.g, x.g, w.g, b.g, N, C);
        CHECK(out, "layernorm forward");
        CHECK(rstd, "layernorm rstd");
        cpu->layernorm_bwd(dx.c, dw.c, db.c, dout.c, x.c, w.c, mean.c, rstd.c, N, C);
        gpu->layernorm_bwd(dx.g, dw.g, db.g, dout.g, x.g, w.g, mean.g, rstd.g, N, C);
        CHECK(dx, "layernorm dinp");
        CHECK(dw, "layernorm dw");
        CHECK(db, "layernorm db");
        struct pair *all[] = {&x, &w, &b, &out, &mean, &rstd, &dout, &dx, &dw, &db};
        for (int i = 0; i < 10; i++)
            drop(all[i]);
    }
}

Test(cuda, matmul) {
    int shapes[][3] = {{128, 64, 192}, {37, 33, 29}, {5, 7, 3}, {256, 384, 1536}};
    for (int s = 0; s < 4; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            struct pair x = mk((size_t)N * C, 1), w = mk((size_t)OC * C, 1),
                        b = mk(OC, 1);
            struct pair out = mk((size_t)N * OC, 0), dout = mk((size_t)N * OC, 1);
            struct pair dx = mk((size_t)N * C, 1), dw = mk((size_t)OC * C, 1),
                        db = mk(OC, 1);
            cpu->matmul_fwd(out.c, x.c, w.c, with_bias ? b.c : NULL, N, C, OC);
            gpu->matmul_fwd(out.g, x.g, w.g, with_bias ? b.g : NULL, N, C, OC);
            CHECK(out, "matmul forward");
            cpu->matmul_bwd(dx.c, dw.c, with_bias ? db.c : NULL, dout.c, x.c, w.c, N, C,
                            OC);
            gpu->matmul_bwd(dx.g, dw.g, with_bias ? db.g : NULL, dout.g, x.g, w.g, N, C,
                            OC);
            CHECK(dx, "matmul dinp");
            CHECK(dw, "matmul dw");
            CHECK(db, "matmul dbias");
            struct pair *all[] = {&x, &w, &b, &out, &dout, &dx, &dw, &db};
            for (int i = 0; i < 8; i++)
                drop(all[i]);
        }
    }
}

/* Training layout (packed qkv, Tq = Tk) and decode layout (Tq < Tk). */
Test(cuda, attention) {
    int shapes[][5] = {
        {2, 64, 64, 4, 16}, {3, 37, 37, 3, 11}, {2, 1, 29, 2, 8}, {1, 5, 70, 5, 64}};
    for (int s = 0; s < 4; s++) {
        int B = shapes[s][0], Tq = shapes[s][1], Tk = shapes[s][2], NH = shapes[s][3];
        int HS = shapes[s][4], C = NH * HS;
        int packed = Tq == Tk;
        int qs = packed ? 3 * C : C, ks = packed ? 3 * C : 2 * C;
        struct pair q = mk((size_t)B * Tq * qs, 1), kv = mk((size_t)B * Tk * ks, 1);
        struct pair out = mk((size_t)B * Tq * C, 0),
                    probs = mk((size_t)B * NH * Tq * Tk, 0);
        struct pair dout = mk((size_t)B * Tq * C, 1);
        struct pair dq = mk(q.n, 1), dkv = mk(kv.n, 1);
        /* packed: q, k, v all inside q's buffer; else k|v packed in kv */
        float *kc = packed ? q.c + C : kv.c, *kg = packed ? q.g + C : kv.g;
        float *vc = packed ? q.c + 2 * C : kv.c + C,
              *vg = packed ? q.g + 2 * C : kv.g + C;
        float *dkc = packed ? dq.c + C : dkv.c, *dkg = packed ? dq.g + C : dkv.g;
        float *dvc = packed ? dq.c + 2 * C : dkv.c + C,
              *dvg = packed ? dq.g + 2 * C : dkv.g + C;
        cpu->attention_fwd(out.c, probs.c, q.c, kc, vc, B, Tq, Tk, NH, HS, qs, ks);
        gpu->attention_fwd(out.g, probs.g, q.g, kg, vg, B, Tq, Tk, NH, HS, qs, ks);
        CHECK(out, "attention forward");
        CHECK(probs, "attention probs");
        cpu->attention_bwd(dq.c, dkc, dvc, dout.c, probs.c, q.c, kc, vc, B, Tq, Tk, NH,
                           HS, qs, ks);
        gpu->attention_bwd(dq.g, dkg, dvg, dout.g, probs.g, q.g, kg, vg, B, Tq, Tk, NH,
                           HS, qs, ks);
        CHECK(dq, "attention dq (dqkv when packed)");
        CHECK(dkv, "attention dk|dv");
        struct pair *all[] = {&q, &kv, &out, &probs, &dout, &dq, &dkv};
        for (int i = 0; i < 7; i++)
            drop(all[i]);
    }
}

Test(cuda, elementwise) {
    size_t sizes[] = {1000, 4097, 12345};
    for (int s = 0; s < 3; s++) {
        size_t n = sizes[s];
        struct pair a = mk(n, 4), b = mk(n, 1), out = mk(n, 0), dout = mk(n, 1);
        struct pair da = mk(n, 1), db = mk(n, 1);
        cpu->gelu_fwd(out.c, a.c, n);
        gpu->gelu_fwd(out.g, a.g, n);
        CHECK(out, "gelu forward");
        cpu->gelu_bwd(da.c, dout.c, a.c, n);
        gpu->gelu_bwd(da.g, dout.g, a.g, n);
        CHECK(da, "gelu backward");
        cpu->residual_fwd(out.c, a.c, b.c, n);
        gpu->residual_fwd(out.g, a.g, b.g, n);
        CHECK(out, "residual forward");
        cpu->residual_bwd(da.c, db.c, dout.c, n);
        gpu->residual_bwd(da.g, db.g, dout.g, n);
        CHECK(da, "residual da");
        CHECK(db, "residual db");
        double sc = cpu->sumsq(a.c, n), sg = gpu->sumsq(a.g, n);
        cr_expect_leq(fabs(sc - sg) / sc, 1e-6, "sumsq %.9g vs %.9g", sc, sg);
        cpu->scale(a.c, n, 0.37f);
        gpu->scale(a.g, n, 0.37f);
        CHECK(a, "scale");
        struct pair *all[] = {&a, &b, &out, &dout, &da, &db};
        for (int i = 0; i < 6; i++)
            drop(all[i]);
    }
}

Test(cuda, cross_entropy) {
    int shapes[][2] = {{64, 256}, {37, 50257}, {3, 33}};
    for (int s = 0; s < 3; s++) {
        int N = shapes[s][0], V = shapes[s][1];
        int32_t *tgt = malloc((size_t)N * 4);
        for (int i = 0; i < N; i++)
            tgt[i] = i == 1 ? -1 : (int32_t)(rng_u64(&r) % (uint64_t)V);
        int32_t *tc = tokens_on(cpu, tgt, N), *tg = tokens_on(gpu, tgt, N);
        struct pair z = mk((size_t)N * V, 5), loss = mk(N, 0), dloss = mk(N, 1);
        cpu->xent_fwd(loss.c, z.c, tc, N, V);
        gpu->xent_fwd(loss.g, z.g, tg, N, V);
        CHECK(loss, "cross-entropy forward");
        cpu->xent_bwd_inplace(z.c, tc, dloss.c, N, V);
        gpu->xent_bwd_inplace(z.g, tg, dloss.g, N, V);
        CHECK(z, "cross-entropy backward");
        drop(&z);
        drop(&loss);
        drop(&dloss);
        cpu->free(tc);
        gpu->free(tg);
        free(tgt);
    }
}

Test(cuda, optimizers) {
    size_t n = 10007;
    for (int kind = 0; kind < 3; kind++) {
        struct pair p = mk(n, 1), m = mk(n, 0), v = mk(n, 0);
        for (int t = 1; t <= 3; t++) {
            struct pair g = mk(n, 1);
            if (kind == 0) {
                cpu->sgd_update(p.c, g.c, m.c, n, 0.1f, 0.9f, 0.01f);
                gpu->sgd_update(p.g, g.g, m.g, n, 0.1f, 0.9f, 0.01f);
            } else {
                cpu->adam_update(p.c, g.c, m.c, v.c, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f,
                                 t, kind == 2);
                gpu->adam_update(p.g, g.g, m.g, v.g, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f,
                                 t, kind == 2);
            }
            drop(&g);
        }
        CHECK(p, kind == 0 ? "sgd params" : kind == 1 ? "adam params" : "adamw params");
        CHECK(m, "optimizer first moment");
        drop(&p);
        drop(&m);
        drop(&v);
    }
}

/* 20 AdamW steps of a whole model on each backend from the same weights and
 * batches: the loss curves must agree. */
static void loss_curve(const char *preset, int B, int T, int steps) {
    struct gpt2_config cfg;
    cr_assert_eq(model_preset(preset, &cfg), 0);
    cfg.vocab_size = 256;
    struct gpt2 mc, mg;
    cr_assert_eq(gpt2_create(&mc, &cfg, cpu), 0);
    cr_assert_eq(gpt2_create(&mg, &cfg, gpu), 0);
    float *w = malloc(mc.table.total * sizeof(float));
    param_init(&mc.table, &cfg, w, 5);
    gpt2_set_params(&mc, w);
    gpt2_set_params(&mg, w);
    struct optim_config oc = {OPTIM_ADAMW, 0.1f, 0.0f, 0.9f, 0.95f, 1e-8f};
    struct optim oc_c, oc_g;
    cr_assert_eq(optim_create(&oc_c, &oc, &mc), 0);
    cr_assert_eq(optim_create(&oc_g, &oc, &mg), 0);
    size_t n = (size_t)B * T;
    int32_t *tok = malloc((n + 1) * 4);
    for (int s = 0; s < steps; s++) {
        /* a learnable stream: a noisy repeating pattern */
        for (size_t i = 0; i <= n; i++)
            tok[i] =
                (int32_t)((i * 7 + (size_t)s) % 61 + (rng_u64(&r) % 4 == 0 ? 100 : 0));
        double lc, lg;
        cr_assert_eq(gpt2_forward(&mc, tok, tok + 1, B, T, &lc), 0);
        cr_assert_eq(gpt2_forward(&mg, tok, tok + 1, B, T, &lg), 0);
        cr_expect_leq(fabs(lc - lg) / lc, 1e-3, "%s step %d: cpu loss %.6f, gpu %.6f",
                      preset, s + 1, lc, lg);
        cr_assert_eq(gpt2_backward(&mc), 0);
        cr_assert_eq(gpt2_backward(&mg), 0);
        optim_clip_grads(&mc, 1.0);
        optim_clip_grads(&mg, 1.0);
        optim_step(&oc_c, &mc, 1e-3f);
        optim_step(&oc_g, &mg, 1e-3f);
    }
    optim_destroy(&oc_c);
    optim_destroy(&oc_g);
    gpt2_destroy(&mc);
    gpt2_destroy(&mg);
    free(w);
    free(tok);
}

Test(cuda, tiny_follows_cpu_loss_curve, .timeout = 300) { loss_curve("tiny", 4, 64, 20); }
Test(cuda, gpt2_mini_follows_cpu_loss_curve, .timeout = 600) {
    loss_curve("gpt2-mini", 4, 128, 20);
}
