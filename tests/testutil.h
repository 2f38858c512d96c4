/*
 * tests/testutil.h — small helpers shared by the op tests.
 *
 *  - a deterministic RNG (splitmix64) so every run sees the same inputs;
 *  - error metrics: max|a - ref| / max(max|ref|, floor);
 *  - "buffers": a backend allocation plus a host mirror, moved only through
 *    the struct ops table (alloc/upload/download/free), so the same tests run
 *    unchanged on any backend.
 *
 * Nothing here depends on the test framework.
 */
#ifndef LLMPI_TESTUTIL_H
#define LLMPI_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

/* ---- deterministic RNG ---------------------------------------------------- */
struct rng {
    uint64_t s;
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_u64(struct rng *r);
double rng_uniform(struct rng *r);                    /* [0, 1) */
double rng_range(struct rng *r, double lo, double hi); /* [lo, hi) */
int rng_int(struct rng *r, int lo, int hi);           /* [lo, hi] */
void fill_uniform(struct rng *r, float *x, size_t n, float lo, float hi);

/* ---- error metrics -------------------------------------------------------- */
/* max_i |a[i] - ref[i]| / max(max_i |ref[i]|, floor). Writes the index of the
 * largest absolute difference to *argmax when argmax is not NULL. A NaN in a
 * yields +inf. */
double rel_err_fd(const float *a, const double *ref, size_t n, double floor,
                  size_t *argmax);
double rel_err_ff(const float *a, const float *ref, size_t n, double floor,
                  size_t *argmax);
/* max_i |x[i]| (0 for n == 0) */
double max_abs_f(const float *x, size_t n);

/* ---- backend buffers with a host mirror ----------------------------------- */
struct buf {
    float *d; /* backend memory */
    float *h; /* host mirror    */
    size_t n; /* floats         */
};

/* Allocate n floats on the backend and on the host; host zero-filled, backend
 * left unset. Returns 0 on success. */
int buf_alloc(const struct ops *o, struct buf *b, size_t n);
/* buf_alloc + fill the host with uniform [lo, hi) + push. */
int buf_rand(const struct ops *o, struct buf *b, size_t n, struct rng *r,
             float lo, float hi);
/* buf_alloc + zero both sides. */
int buf_zeros(const struct ops *o, struct buf *b, size_t n);
/* buf_alloc + copy of host data + push. */
int buf_from(const struct ops *o, struct buf *b, const float *host, size_t n);
void buf_push(const struct ops *o, struct buf *b); /* host -> backend */
void buf_pull(const struct ops *o, struct buf *b); /* backend -> host (syncs) */
void buf_free(const struct ops *o, struct buf *b);

/* Backend int32 array from host data (for token / target ids). NULL on
 * failure. Free with o->free. */
int32_t *dev_i32(const struct ops *o, const int32_t *host, size_t n);

/* Download n floats from backend memory d and return sum_i d[i] * r[i] in
 * double precision (the scalar loss L used by the finite-difference checks). */
double dev_dot(const struct ops *o, const float *d, const float *r, size_t n);

/* Central finite differences of a scalar function of one backend tensor.
 * x is a buffer whose host mirror holds the current (unperturbed) values; for
 * each i in idx[0..count) (or every i < x->n when idx is NULL, count ignored),
 * x[i] is set to fl(x+h) and fl(x-h) on the backend (single-element upload),
 * f(ctx) evaluated, and g[i] = (f+ - f-) / (fl(x+h) - fl(x-h)) in double; the
 * original value is restored afterwards. Entries of g not visited are left
 * untouched. */
typedef double (*scalar_fn)(void *ctx);
void fd_grad(const struct ops *o, scalar_fn f, void *ctx, struct buf *x,
             double h, double *g, const size_t *idx, size_t count);

#endif
