/* tests/test_attention_paged.c — ops->attention_paged_fwd (kernels/ops.h)
 * through the ops table, so the same checks run on every backend (cpu::*,
 * and cuda::* when built with CUDA; skipped where no device is usable).
 *
 * Each case: several sequences of different lengths in one call, their
 * blocks a random permutation of a pool (scattered, never one run by
 * design), tables wider than needed and padded with ids that must never be
 * read, query rows placed in reverse sequence order between rows that
 * belong to no sequence (which must stay untouched), q / k / v at strides
 * wider than the heads (q_stride = C + 3, kv_stride = 2C + 5, v at + C + 2),
 * decode rows (nq = 1) and prefill chunks (nq > 1, nq = kvlen too), odd
 * NH / HS / block_size, lengths across several 32- and 64-key tiles.
 *
 *  - against a double-precision reference that gathers each sequence's rows
 *    into a contiguous array and runs plain causal softmax attention:
 *    max |out - ref| / max |ref| <= 1e-5 (fp32 sums of <= 300 terms round at
 *    ~1e-7; a wrong mask, table lookup or rescale is off by O(1e-1));
 *  - the layout promise of ops.h, bitwise: the same values with every
 *    sequence in one contiguous block, each sequence alone, and each query
 *    row of a prefill chunk alone as a decode step (nq = 1, kvlen cut to
 *    its position) give exactly the same output bits.
 * One case uses sharp scores (q x 8: softmax weights down to e^-100) for
 * the max-subtraction, and cpu::* also runs HS = 300 (over the CUDA
 * kernel's limit, which cuda::* checks is a recorded error).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define TOL 1e-5
#define MAXS 6
#define SENTINEL 12345.0f
#define BAD_ID (-7) /* table padding: reading it would be out of bounds */

struct pcase {
    int NH, HS, bs, n;
    int nq[MAXS], kvlen[MAXS];
    float qscale;
};

static const struct pcase cases[] = {
    {3, 13, 5, 4, {1, 4, 1, 7}, {1, 23, 64, 7}, 1.0f},
    {2, 64, 16, 3, {1, 1, 9}, {100, 17, 40}, 1.0f},
    {1, 1, 1, 3, {2, 1, 3}, {5, 9, 3}, 1.0f},
    {4, 33, 7, 5, {1, 2, 1, 5, 1}, {200, 30, 1, 61, 129}, 8.0f},
    {2, 256, 3, 2, {3, 1}, {50, 300}, 1.0f},
    {5, 130, 32, 3, {1, 1, 1}, {33, 32, 31}, 1.0f},
};

static int blocks_for(int n, int bs) { return (n + bs - 1) / bs; }

/* One call of the op on backend o; host inputs, host output (the out
 * buffer's initial contents are `init`). */
static void run_op(const struct ops *o, float *out_h, const float *init, size_t out_n,
                   const float *q_h, size_t q_n, const float *kv_h, size_t kv_n,
                   const int32_t *seqs_h, const int32_t *tab_h, int n_seqs, int rows,
                   int max_blocks, int bs, int NH, int HS, int qs, int ks, int voff) {
    struct buf out, q, kv;
    cr_assert_eq(buf_from(o, &out, init, out_n), 0);
    cr_assert_eq(buf_from(o, &q, q_h, q_n), 0);
    cr_assert_eq(buf_from(o, &kv, kv_h, kv_n), 0);
    int32_t *sd = dev_i32(o, seqs_h, (size_t)3 * n_seqs);
    int32_t *td = dev_i32(o, tab_h, (size_t)n_seqs * max_blocks);
    cr_assert(sd && td);
    o->attention_paged_fwd(out.d, q.d, kv.d, sd, td, n_seqs, rows, max_blocks, bs, NH, HS,
                           qs, ks, voff);
    buf_pull(o, &out);
    memcpy(out_h, out.h, out_n * sizeof(float));
    buf_free(o, &out);
    buf_free(o, &q);
    buf_free(o, &kv);
    o->free(sd);
    o->free(td);
}

/* The double reference for sequence s: its keys gathered through the
 * table into [kvlen][2C], then plain causal softmax attention. */
static void reference(double *ref, const struct pcase *c, int s, const float *q, int qs,
                      int qstart, const float *kv, int ks, int voff, const int32_t *tab,
                      int max_blocks) {
    const int C = c->NH * c->HS, HS = c->HS, L = c->kvlen[s], nq = c->nq[s];
    double *k = malloc((size_t)L * 2 * C * sizeof *k), *p = malloc((size_t)L * sizeof *p);
    cr_assert(k && p);
    for (int j = 0; j < L; j++) {
        const float *row =
            kv + ((size_t)tab[s * max_blocks + j / c->bs] * c->bs + j % c->bs) * ks;
        for (int x = 0; x < C; x++) {
            k[(size_t)j * 2 * C + x] = row[x];
            k[(size_t)j * 2 * C + C + x] = row[voff + x];
        }
    }
    for (int i = 0; i < nq; i++)
        for (int h = 0; h < c->NH; h++) {
            const float *qr = q + (size_t)(qstart + i) * qs + (size_t)h * HS;
            const int last = L - nq + i;
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j <= last; j++) {
                double d = 0.0;
                for (int x = 0; x < HS; x++)
                    d += (double)qr[x] * k[(size_t)j * 2 * C + (size_t)h * HS + x];
                p[j] = d / sqrt((double)HS);
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int j = 0; j <= last; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            double *o = ref + ((size_t)i * c->NH + h) * HS;
            for (int x = 0; x < HS; x++) {
                double a = 0.0;
                for (int j = 0; j <= last; j++)
                    a += p[j] * k[(size_t)j * 2 * C + C + (size_t)h * HS + x];
                o[x] = a / sum;
            }
        }
    free(k);
    free(p);
}

static void check_case(const struct ops *o, const struct pcase *c, unsigned seed) {
    const int NH = c->NH, HS = c->HS, C = NH * HS, bs = c->bs, n = c->n;
    const int qs = C + 3, ks = 2 * C + 5, voff = C + 2;
    struct rng r;
    rng_seed(&r, seed);
    char name[96];
    snprintf(name, sizeof name, "%s: NH=%d HS=%d block=%d, %d sequences", o->name, NH, HS,
             bs, n);

    /* rows: a gap row, then the sequences in reverse order, then a gap */
    int qstart[MAXS], rows = 1, need = 0, maxb = 1, maxlen = 1;
    for (int s = n - 1; s >= 0; s--) {
        qstart[s] = rows;
        rows += c->nq[s];
    }
    rows++;
    for (int s = 0; s < n; s++) {
        need += blocks_for(c->kvlen[s], bs);
        maxb = blocks_for(c->kvlen[s], bs) > maxb ? blocks_for(c->kvlen[s], bs) : maxb;
        maxlen = c->kvlen[s] > maxlen ? c->kvlen[s] : maxlen;
    }
    const int max_blocks = maxb + 2, pool = need + 3;

    /* blocks: a random permutation of the pool, dealt out in order */
    int *perm = malloc((size_t)pool * sizeof *perm);
    int32_t *seqs = malloc((size_t)3 * n * sizeof *seqs);
    int32_t *tab = malloc((size_t)n * max_blocks * sizeof *tab);
    for (int b = 0; b < pool; b++)
        perm[b] = b;
    for (int b = pool - 1; b > 0; b--) {
        int x = rng_int(&r, 0, b), t = perm[b];
        perm[b] = perm[x];
        perm[x] = t;
    }
    for (int s = 0, next = 0; s < n; s++) {
        seqs[3 * s] = qstart[s];
        seqs[3 * s + 1] = c->nq[s];
        seqs[3 * s + 2] = c->kvlen[s];
        for (int b = 0; b < max_blocks; b++)
            tab[s * max_blocks + b] =
                b < blocks_for(c->kvlen[s], bs) ? perm[next++] : BAD_ID;
    }

    const size_t q_n = (size_t)rows * qs, kv_n = (size_t)pool * bs * ks;
    const size_t out_n = (size_t)rows * C;
    float *q = malloc(q_n * sizeof *q), *kv = malloc(kv_n * sizeof *kv);
    float *init = malloc(out_n * sizeof *init), *out = malloc(out_n * sizeof *out);
    float *alt = malloc(out_n * sizeof *alt);
    fill_uniform(&r, q, q_n, -c->qscale, c->qscale);
    fill_uniform(&r, kv, kv_n, -1.0f, 1.0f);
    for (size_t i = 0; i < out_n; i++)
        init[i] = SENTINEL;
    run_op(o, out, init, out_n, q, q_n, kv, kv_n, seqs, tab, n, rows, max_blocks, bs, NH,
           HS, qs, ks, voff);

    /* against the double reference; gap rows untouched */
    double worst = 0.0;
    for (int s = 0; s < n; s++) {
        double *ref = malloc((size_t)c->nq[s] * C * sizeof *ref);
        reference(ref, c, s, q, qs, qstart[s], kv, ks, voff, tab, max_blocks);
        double e = rel_err_fd(out + (size_t)qstart[s] * C, ref, (size_t)c->nq[s] * C,
                              1e-6, NULL);
        worst = e > worst ? e : worst;
        free(ref);
    }
    cr_expect(worst <= TOL, "%s: rel err %.3g", name, worst);
    for (int x = 0; x < C; x++) {
        cr_expect_eq(out[x], SENTINEL, "%s: row 0 written", name);
        cr_expect_eq(out[(size_t)(rows - 1) * C + x], SENTINEL, "%s: last row written",
                     name);
    }

    /* the same values with every sequence in one contiguous block */
    const size_t kv2_n = (size_t)n * maxlen * ks;
    float *kv2 = calloc(kv2_n, sizeof *kv2);
    int32_t *tab2 = malloc((size_t)n * sizeof *tab2);
    for (int s = 0; s < n; s++) {
        tab2[s] = s;
        for (int j = 0; j < c->kvlen[s]; j++)
            memcpy(kv2 + ((size_t)s * maxlen + j) * ks,
                   kv + ((size_t)tab[s * max_blocks + j / bs] * bs + j % bs) * ks,
                   (size_t)ks * sizeof *kv);
    }
    run_op(o, alt, init, out_n, q, q_n, kv2, kv2_n, seqs, tab2, n, rows, 1, maxlen, NH,
           HS, qs, ks, voff);
    cr_expect_eq(memcmp(out, alt, out_n * sizeof *out), 0,
                 "%s: contiguous blocks change the output bits", name);

    /* each sequence alone, and each of its query rows alone as a decode step */
    for (int s = 0; s < n; s++) {
        const int nq = c->nq[s];
        const float *qrow = q + (size_t)qstart[s] * qs;
        const int32_t *ts = tab + (size_t)s * max_blocks;
        int32_t one[3] = {0, nq, c->kvlen[s]};
        run_op(o, alt, init, (size_t)nq * C, qrow, (size_t)nq * qs, kv, kv_n, one, ts, 1,
               nq, max_blocks, bs, NH, HS, qs, ks, voff);
        cr_expect_eq(
            memcmp(out + (size_t)qstart[s] * C, alt, (size_t)nq * C * sizeof *out), 0,
            "%s: sequence %d alone differs", name, s);
        for (int i = 0; nq > 1 && i < nq; i++) {
            int32_t dec[3] = {0, 1, c->kvlen[s] - nq + i + 1};
            run_op(o, alt, init, (size_t)C, qrow + (size_t)i * qs, (size_t)qs, kv, kv_n,
                   dec, ts, 1, 1, max_blocks, bs, NH, HS, qs, ks, voff);
            cr_expect_eq(
                memcmp(out + (size_t)(qstart[s] + i) * C, alt, (size_t)C * sizeof *out),
                0, "%s: sequence %d row %d as a decode step differs", name, s, i);
        }
    }

    free(perm);
    free(seqs);
    free(tab);
    free(tab2);
    free(q);
    free(kv);
    free(kv2);
    free(init);
    free(out);
    free(alt);
}

static void test_cases(const struct ops *o) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(o, &cases[i], 100 + (unsigned)i);
}

Test(cpu, attention_paged_against_reference) { test_cases(ops_cpu()); }

/* No limit on the head size on the CPU. */
Test(cpu, attention_paged_wide_heads) {
    const struct pcase wide = {2, 300, 4, 2, {1, 3}, {9, 14}, 1.0f};
    check_case(ops_cpu(), &wide, 7);
}

#ifdef LLMPI_HAVE_CUDA
#include "ops_cuda.h"

static const struct ops *cuda_or_skip(void) {
    const struct ops *o = ops_cuda();
    if (!o) cr_skip_test("no usable CUDA device");
    return o;
}

Test(cuda, attention_paged_against_reference) {
    test_cases(cuda_or_skip());
    const char *e = cuda_last_error();
    cr_expect(e == NULL, "CUDA backend recorded an error: %s", e ? e : "");
}

/* Over the kernel's HS limit: a recorded error naming it, nothing written. */
Test(cuda, attention_paged_head_size_limit) {
    const struct ops *o = cuda_or_skip();
    float init[300], out[300], q[300] = {0}, kv[600] = {0};
    for (int i = 0; i < 300; i++)
        init[i] = SENTINEL;
    int32_t seqs[3] = {0, 1, 1}, tab[1] = {0};
    run_op(o, out, init, 300, q, 300, kv, 600, seqs, tab, 1, 1, 1, 1, 1, 300, 300, 600,
           300);
    const char *e = cuda_last_error();
    cr_assert(e && strstr(e, "HS=300"), "%s", e ? e : "no error recorded");
    cr_expect_eq(memcmp(out, init, sizeof out), 0);
}
#endif
