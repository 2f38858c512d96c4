/* tests/testutil.c — see testutil.h */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- RNG: splitmix64 ------------------------------------------------------ */
void rng_seed(struct rng *r, uint64_t seed) { r->s = seed; }

uint64_t rng_u64(struct rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double rng_uniform(struct rng *r)
{
    return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); /* 2^53 */
}

double rng_range(struct rng *r, double lo, double hi)
{
    return lo + (hi - lo) * rng_uniform(r);
}

int rng_int(struct rng *r, int lo, int hi)
{
    return lo + (int)(rng_u64(r) % (uint64_t)(hi - lo + 1));
}

void fill_uniform(struct rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)rng_range(r, lo, hi);
}

/* ---- metrics -------------------------------------------------------------- */
double rel_err_fd(const float *a, const double *ref, size_t n, double floor,
                  size_t *argmax)
{
    double maxdiff = 0.0, maxref = 0.0;
    size_t arg = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (isnan(d)) {
            d = INFINITY;
        }
        if (d > maxdiff) {
            maxdiff = d;
            arg = i;
        }
        if (fabs(ref[i]) > maxref)
            maxref = fabs(ref[i]);
    }
    if (argmax)
        *argmax = arg;
    return maxdiff / (maxref > floor ? maxref : floor);
}

double rel_err_ff(const float *a, const float *ref, size_t n, double floor,
                  size_t *argmax)
{
    double *r = malloc((n ? n : 1) * sizeof *r);
    if (!r)
        return INFINITY;
    for (size_t i = 0; i < n; i++)
        r[i] = ref[i];
    double e = rel_err_fd(a, r, n, floor, argmax);
    free(r);
    return e;
}

double max_abs_f(const float *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m)
            m = fabs((double)x[i]);
    return m;
}

/* ---- buffers -------------------------------------------------------------- */
int buf_alloc(const struct ops *o, struct buf *b, size_t n)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    b->n = n;
    b->h = calloc(n ? n : 1, sizeof(float));
    b->d = o->alloc(bytes);
    if (!b->h || !b->d) {
        free(b->h);
        if (b->d)
            o->free(b->d);
        b->h = NULL;
        b->d = NULL;
        return -1;
    }
    return 0;
}

int buf_rand(const struct ops *o, struct buf *b, size_t n, struct rng *r,
             float lo, float hi)
{
    if (buf_alloc(o, b, n))
        return -1;
    fill_uniform(r, b->h, n, lo, hi);
    buf_push(o, b);
    return 0;
}

int buf_zeros(const struct ops *o, struct buf *b, size_t n)
{
    if (buf_alloc(o, b, n))
        return -1;
    buf_push(o, b);
    return 0;
}

int buf_from(const struct ops *o, struct buf *b, const float *host, size_t n)
{
    if (buf_alloc(o, b, n))
        return -1;
    if (n)
        memcpy(b->h, host, n * sizeof(float));
    buf_push(o, b);
    return 0;
}

void buf_push(const struct ops *o, struct buf *b)
{
    if (b->n)
        o->upload(b->d, b->h, b->n * sizeof(float));
}

void buf_pull(const struct ops *o, struct buf *b)
{
    o->sync();
    if (b->n)
        o->download(b->h, b->d, b->n * sizeof(float));
}

void buf_free(const struct ops *o, struct buf *b)
{
    if (b->d)
        o->free(b->d);
    free(b->h);
    b->d = NULL;
    b->h = NULL;
    b->n = 0;
}

int32_t *dev_i32(const struct ops *o, const int32_t *host, size_t n)
{
    int32_t *d = o->alloc((n ? n : 1) * sizeof(int32_t));
    if (d && n)
        o->upload(d, host, n * sizeof(int32_t));
    return d;
}

double dev_dot(const struct ops *o, const float *d, const float *r, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        return NAN;
    o->sync();
    o->download(h, d, n * sizeof(float));
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)h[i] * (double)r[i];
    free(h);
    return s;
}

void fd_grad(const struct ops *o, scalar_fn f, void *ctx, struct buf *x,
             double h, double *g, const size_t *idx, size_t count)
{
    size_t m = idx ? count : x->n;
    for (size_t k = 0; k < m; k++) {
        size_t i = idx ? idx[k] : k;
        float x0 = x->h[i];
        float xp = (float)((double)x0 + h);
        float xm = (float)((double)x0 - h);
        o->upload(x->d + i, &xp, sizeof(float));
        double fp = f(ctx);
        o->upload(x->d + i, &xm, sizeof(float));
        double fm = f(ctx);
        o->upload(x->d + i, &x0, sizeof(float));
        g[i] = (fp - fm) / ((double)xp - (double)xm);
    }
}
