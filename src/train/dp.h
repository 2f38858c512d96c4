/* src/train/dp.h — data parallelism for `llmpi train`: gradient averaging
 * over the DP group in buckets that overlap backward, and ZeRO-1.
 *
 * Why buckets: averaging one gradient buffer after backward leaves the
 * network idle during backward and the cores idle during the allreduce.
 * gpt2_backward reports each tensor as soon as its gradient is final
 * (gpt2.grads_ready); the flat gradient buffer is cut into fixed buckets of
 * --bucket-mb, and a bucket's MPI_Iallreduce (average) starts the moment its
 * last element is reported, while backward computes the layers below it.
 * MPI only progresses inside MPI calls (no progress thread), so every report
 * also tests the requests in flight. dp_finish_grads waits for the rest.
 * Every rank reports the same tensors in the same order, so every rank
 * starts the same buckets in the same order (MPI's rule for nonblocking
 * collectives).
 *
 * ZeRO-1 (--zero 1): the flat buffer, padded to a multiple of DP, is cut
 * into DP equal shards; rank r owns [r*S, (r+1)*S). Gradients are
 * reduce-scattered (each rank receives the average of its shard only), the
 * optimizer (optim_create_range) keeps m/v for that shard alone and updates
 * those parameters, and an allgather gives every rank all parameters again.
 * Here the reduce-scatter is one call after backward (no bucket overlap).
 * Checkpoints gather the optimizer state (dp_gather_state) so a file holds
 * the full state and loads under any layout.
 *
 * Gradient norm: the DP average leaves every DP rank the same gradients (or
 * ZeRO-1 shards of them, summed over the DP group); under TP, layernorm
 * parameters, wpe and row-parallel biases are identical on every TP rank, so
 * the sum over the TP group counts them on TP rank 0 only (optim.h).
 *
 * Buffers live in the backend's memory: on the CUDA backend the DP group
 * has NCCL attached (backend_attach_comm) and gradients never leave the GPU;
 * buckets then overlap backward on a side stream (comm_nccl.c). All calls
 * are collective over the DP group.
 */
#ifndef LLMPI_DP_H
#define LLMPI_DP_H

#include <stddef.h>

#include "comm.h"
#include "gpt2.h"
#include "optim.h"

struct dp {
    const struct comm *c; /* the DP group (not owned) */
    const struct ops *ops; /* the model's backend: pad/gshard live there */
    int size, rank, zero;
    size_t total;            /* parameters */
    size_t shard_n, lo, hi;  /* ZeRO-1 shard: [lo, hi), hi - lo == shard_n */
    size_t padded;           /* shard_n * size */
    float *pad, *gshard;     /* ZeRO-1 scratch: padded floats, shard_n floats */
    /* buckets of the flat gradient buffer (DP > 1, no ZeRO) */
    float *grads;
    size_t bucket_elems;
    int nbuckets;
    size_t *ready; /* elements reported per bucket */
    struct comm_request *req;
    int failed; /* a hook could not start a request: message in errmsg */
    char errmsg[512];
    double wait_s; /* time blocked in dp_finish_grads in the last step */
};

/* Set up for model m over DP group c (c->size 1 is fine: averaging is then
 * a no-op, ZeRO-1 a shard of everything). bucket_mb: bucket size in MiB
 * (> 0). Installs the backward hook when DP > 1 without ZeRO. -1 + err_set
 * (same on every rank, no communication). */
int dp_init(struct dp *d, const struct comm *c, struct gpt2 *m, int zero,
            double bucket_mb);
void dp_free(struct dp *d, struct gpt2 *m);

/* Before each gpt2_backward. */
void dp_begin_backward(struct dp *d);

/* After gpt2_backward: the gradients averaged over the group: all of
 * m->grads without ZeRO, the shard [lo, hi) with ZeRO-1. */
int dp_finish_grads(struct dp *d, struct gpt2 *m);

/* Global gradient norm of the averaged gradients (the same on every rank),
 * and clip (scale the gradients this rank will use) when clip > 0 and the
 * norm exceeds it. */
int dp_clip_grads(struct dp *d, struct gpt2 *m, double clip, double *norm);

/* After optim_step: ZeRO-1 allgathers the updated shards so every rank
 * holds all parameters; otherwise nothing. */
int dp_after_step(struct dp *d, struct gpt2 *m);

/* ZeRO-1: the whole optimizer state into m_host / v_host (table.total floats
 * each; v_host for Adam only) on every rank, for a checkpoint. Without ZeRO:
 * nothing (train_ckpt_save downloads the local, full state). */
int dp_gather_state(struct dp *d, const struct optim *o, float *m_host, float *v_host);

#endif
