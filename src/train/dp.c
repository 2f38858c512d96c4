/* src/train/dp.c — DP gradient buckets and ZeRO-1 (see dp.h for the why). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "err.h"
#include "timer.h"

static void on_grads_ready(void *ctx, size_t offset, size_t count);

int dp_init(struct dp *d, const struct comm *c, struct gpt2 *m, int zero,
            double bucket_mb) {
    memset(d, 0, sizeof *d);
    d->c = c;
    d->size = c->size;
    d->rank = c->rank;
    d->zero = zero;
    d->total = m->table.total;
    d->ops = m->ops;
    if (zero) {
        d->shard_n = (d->total + (size_t)d->size - 1) / (size_t)d->size;
        d->padded = d->shard_n * (size_t)d->size;
        d->lo = d->shard_n * (size_t)d->rank;
        d->hi = d->lo + d->shard_n;
        /* in the backend's memory, like the gradients (NCCL moves device
         * buffers, MPI host ones: comm.h) */
        d->pad = d->ops->alloc(d->padded * sizeof(float));
        d->gshard = d->ops->alloc((d->shard_n ? d->shard_n : 1) * sizeof(float));
        if (!d->pad || !d->gshard) {
            dp_free(d, m);
            return err_set("out of memory for ZeRO-1 buffers (%zu floats)", d->padded);
        }
        return 0;
    }
    d->lo = 0;
    d->hi = d->total;
    if (d->size == 1) return 0;
    double e = bucket_mb * 1048576.0 / sizeof(float);
    if (!(e >= 1.0)) e = 1.0;
    if (e > (double)c->max_count) e = (double)c->max_count;
    d->bucket_elems = (size_t)e;
    d->nbuckets = (int)((d->total + d->bucket_elems - 1) / d->bucket_elems);
    d->ready = calloc((size_t)d->nbuckets, sizeof *d->ready);
    d->req = calloc((size_t)d->nbuckets, sizeof *d->req);
    if (!d->ready || !d->req) {
        dp_free(d, m);
        return err_set("out of memory for %d gradient buckets", d->nbuckets);
    }
    d->grads = m->grads;
    m->grads_ready = on_grads_ready; /* d must stay where it is from now on */
    m->grads_ready_ctx = d;
    return 0;
}

void dp_free(struct dp *d, struct gpt2 *m) {
    if (d->req)
        for (int b = 0; b < d->nbuckets; b++)
            comm_wait(&d->req[b]); /* never free a buffer MPI still owns */
    if (m && m->grads_ready_ctx == d) {
        m->grads_ready = NULL;
        m->grads_ready_ctx = NULL;
    }
    if (d->pad) d->ops->free(d->pad);
    if (d->gshard) d->ops->free(d->gshard);
    free(d->ready);
    free(d->req);
    memset(d, 0, sizeof *d);
}

static size_t bucket_len(const struct dp *d, int b) {
    size_t lo = (size_t)b * d->bucket_elems;
    return d->total - lo < d->bucket_elems ? d->total - lo : d->bucket_elems;
}

/* gpt2's grads_ready hook: count the range into its buckets, start every
 * bucket that is now complete, and let MPI progress the ones in flight. */
static void on_grads_ready(void *ctx, size_t offset, size_t count) {
    struct dp *d = ctx;
    if (count == 0 || d->failed) return;
    int b0 = (int)(offset / d->bucket_elems);
    int b1 = (int)((offset + count - 1) / d->bucket_elems);
    for (int b = b0; b <= b1; b++) {
        size_t lo = (size_t)b * d->bucket_elems, hi = lo + bucket_len(d, b);
        size_t a = offset > lo ? offset : lo;
        size_t e = offset + count < hi ? offset + count : hi;
        d->ready[b] += e - a;
        if (d->ready[b] == hi - lo &&
            comm_iallreduce(d->c, d->grads + lo, hi - lo, COMM_F32, COMM_AVG,
                            &d->req[b])) {
            d->failed = 1;
            snprintf(d->errmsg, sizeof d->errmsg, "%s", err_msg());
            return;
        }
    }
    for (int b = 0; b < d->nbuckets; b++) {
        int done;
        if (d->ready[b] == bucket_len(d, b) && comm_test(&d->req[b], &done)) {
            d->failed = 1;
            snprintf(d->errmsg, sizeof d->errmsg, "%s", err_msg());
            return;
        }
    }
}

void dp_begin_backward(struct dp *d) {
    if (d->nbuckets == 0) return;
    for (int b = 0; b < d->nbuckets; b++) {
        d->ready[b] = 0;
        d->req[b] = (struct comm_request){.mpi = MPI_REQUEST_NULL};
    }
    d->failed = 0;
}

int dp_finish_grads(struct dp *d, struct gpt2 *m) {
    double t0 = timer_now();
    d->wait_s = 0.0;
    if (d->zero) {
        d->ops->copy(d->pad, m->grads, d->total * sizeof(float));
        d->ops->zero(d->pad + d->total, (d->padded - d->total) * sizeof(float));
        if (comm_reduce_scatter(d->c, d->pad, d->gshard, d->shard_n, COMM_F32,
                                COMM_AVG))
            return -1;
        size_t end = d->hi < d->total ? d->hi : d->total;
        if (end > d->lo)
            d->ops->copy(m->grads + d->lo, d->gshard, (end - d->lo) * sizeof(float));
        d->wait_s = timer_now() - t0;
        return 0;
    }
    if (d->nbuckets == 0) return 0;
    if (d->failed) return err_set("%s", d->errmsg);
    for (int b = 0; b < d->nbuckets; b++) {
        if (d->ready[b] != bucket_len(d, b))
            return err_set("gradient bucket %d: %zu of %zu elements reported by "
                           "backward (a gpt2_backward hook bug)",
                           b, d->ready[b], bucket_len(d, b));
        if (comm_wait(&d->req[b])) return -1;
    }
    d->wait_s = timer_now() - t0;
    return 0;
}

int dp_clip_grads(struct dp *d, struct gpt2 *m, double clip, double *norm) {
    /* This rank's part of the global sum of squares: its ZeRO-1 shard (or,
     * every DP rank holding the same averaged gradients, everything), with
     * TP-replicated tensors counted on TP rank 0 only. The DP group adds the
     * shards, the TP group the slices. */
    double sumsq = optim_grad_sumsq(m, d->lo, d->hi);
    if (d->zero && comm_allreduce(d->c, &sumsq, 1, COMM_F64, COMM_SUM)) return -1;
    if (m->tp && comm_allreduce(m->tp, &sumsq, 1, COMM_F64, COMM_SUM)) return -1;
    *norm = sqrt(sumsq);
    size_t end = d->hi < d->total ? d->hi : d->total;
    if (clip > 0.0 && *norm > clip && end > d->lo)
        m->ops->scale(m->grads + d->lo, end - d->lo, (float)(clip / *norm));
    return 0;
}

/* Allgather a shard (shard_n floats at `shard`, backend memory) into full
 * (total floats): backend memory, or host memory when to_host. */
static int gather(struct dp *d, const float *shard, float *full, int to_host) {
    d->ops->copy(d->pad + d->lo, shard, d->shard_n * sizeof(float));
    if (comm_allgather(d->c, NULL, d->pad, d->shard_n, COMM_F32)) return -1;
    if (to_host)
        d->ops->download(full, d->pad, d->total * sizeof(float));
    else
        d->ops->copy(full, d->pad, d->total * sizeof(float));
    return 0;
}

int dp_after_step(struct dp *d, struct gpt2 *m) {
    if (!d->zero) return 0;
    /* this rank's params are current in [lo, min(hi, total)); pad the rest */
    size_t end = d->hi < d->total ? d->hi : d->total;
    d->ops->zero(d->gshard, d->shard_n * sizeof(float));
    if (end > d->lo)
        d->ops->copy(d->gshard, m->params + d->lo, (end - d->lo) * sizeof(float));
    return gather(d, d->gshard, m->params, 0);
}

int dp_gather_state(struct dp *d, const struct optim *o, float *m_host, float *v_host) {
    if (!d->zero) return 0;
    if (gather(d, o->m, m_host, 1)) return -1;
    if (o->v && gather(d, o->v, v_host, 1)) return -1;
    return 0;
}
