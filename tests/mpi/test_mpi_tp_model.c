/* tests/mpi/test_mpi_tp_model.c — the tensor-parallel GPT-2 against the
 * single-rank one (src/common/gpt2.h, docs/distributed.md).
 *
 * Every rank of the world forms one TP group of size W (the whole world) and
 * also builds the plain single-rank model on the same parameters and batch,
 * its reference. Checked, for a model whose vocabulary (67) does not divide
 * evenly over the ranks and a batch with masked targets (-1):
 *   - loss: the same mean loss on every TP rank, equal to the reference's
 *     (relative 1e-5);
 *   - logits: this rank's vocabulary columns equal the reference logits';
 *   - gradients: every local gradient tensor equals the reference gradient's
 *     shard (shard_extract), max|diff| <= 1e-5 max|ref| per tensor;
 *   - replicated tensors (layernorms, wpe, row-parallel biases): bit-identical
 *     gradients on every TP rank;
 *   - a second forward/backward on a smaller batch (buffers re-carved) too.
 * A world that does not divide the heads (6) checks instead that
 * gpt2_create_tp refuses with a message naming the heads.
 * Run with np 1 (TP of one: the code path without collectives), 2, 3, 4.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"
#include "mpitest.h"
#include "rng.h"

static const struct gpt2_config CFG = {
    .vocab_size = 67, .max_seq = 16, .n_layer = 2, .n_head = 6, .n_embd = 48};

/* max|a-b| / max|b| over n floats (0 when b is all zero and a equals it). */
static double rel_err(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
    }
    return r > 0 ? d / r : d;
}

static void one_batch(struct gpt2 *ref, struct gpt2 *tp, int B, int T, uint64_t seed) {
    const struct shard_table *st = &tp->shard;
    struct rng g;
    rng_seed(&g, seed);
    int N = B * T;
    int32_t *tok = malloc(N * sizeof *tok), *tgt = malloc(N * sizeof *tgt);
    for (int i = 0; i < N; i++) {
        tok[i] = (int32_t)(rng_u64(&g) % (uint64_t)CFG.vocab_size);
        tgt[i] = i % 7 == 3 ? -1 : (int32_t)(rng_u64(&g) % (uint64_t)CFG.vocab_size);
    }
    double l_ref = 0, l_tp = 0;
    MT_CHECK(gpt2_forward(ref, tok, tgt, B, T, &l_ref) == 0, "%s", err_msg());
    MT_CHECK(gpt2_forward(tp, tok, tgt, B, T, &l_tp) == 0, "%s", err_msg());
    MT_CHECK(fabs(l_tp - l_ref) <= 1e-5 * fabs(l_ref), "loss %.9g vs reference %.9g", l_tp,
             l_ref);
    double l_max = l_tp, l_min = l_tp;
    MPI_Allreduce(MPI_IN_PLACE, &l_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &l_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MT_CHECK(l_max == l_min, "TP ranks disagree on the loss: %.9g .. %.9g", l_min, l_max);

    /* this rank's vocabulary columns of the reference logits */
    const int V = CFG.vocab_size, Vl = st->vocab_local, v0 = st->vocab_start;
    double worst = 0;
    for (int n = 0; n < N; n++)
        worst = fmax(worst, rel_err(tp->logits + (size_t)n * Vl,
                                    ref->logits + (size_t)n * V + v0, (size_t)Vl));
    MT_CHECK(worst <= 1e-5, "logits differ from the reference's columns: %.3g", worst);

    MT_CHECK(gpt2_backward(ref) == 0, "%s", err_msg());
    MT_CHECK(gpt2_backward(tp) == 0, "%s", err_msg());
    float *want = malloc(tp->table.total * sizeof(float));
    MT_CHECK(shard_extract(&ref->full, ref->grads, st, want) == 0, "%s", err_msg());
    for (int i = 0; i < tp->table.count; i++) {
        const struct param_info *p = &tp->table.p[i];
        double e = rel_err(tp->grads + p->offset, want + p->offset, p->numel);
        MT_CHECK(e <= 1e-5, "gradient of %s (B=%d): max rel diff %.3g", p->name, B, e);
        if (st->map[i].tp_grad == SHARD_GRAD_TP_SYNC) {
            float *r0 = malloc(p->numel * sizeof(float));
            memcpy(r0, tp->grads + p->offset, p->numel * sizeof(float));
            MPI_Bcast(r0, (int)p->numel, MPI_FLOAT, 0, MPI_COMM_WORLD);
            MT_CHECK(!memcmp(r0, tp->grads + p->offset, p->numel * sizeof(float)),
                     "replicated gradient %s differs from TP rank 0's", p->name);
            free(r0);
        }
    }
    free(want);
    free(tok);
    free(tgt);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    struct comm tpc;
    if (comm_dup(&tpc, MPI_COMM_WORLD, "tp")) {
        fprintf(stderr, "error: %s\n", err_msg());
        return 1;
    }
    struct gpt2 ref, tp;
    if (CFG.n_head % tpc.size != 0) {
        MT_CHECK(gpt2_create_tp(&tp, &CFG, ops_cpu(), &tpc) == -1,
                 "a TP size of %d must not split %d heads", tpc.size, CFG.n_head);
        MT_CHECK(strstr(err_msg(), "does not divide the heads") != NULL, "message: %s",
                 err_msg());
        comm_close(&tpc);
        return mt_finish("test_mpi_tp_model");
    }
    ops_cpu_set_threads(1);
    MT_CHECK(gpt2_create(&ref, &CFG, ops_cpu()) == 0, "%s", err_msg());
    MT_CHECK(gpt2_create_tp(&tp, &CFG, ops_cpu(), &tpc) == 0, "%s", err_msg());
    if (mt_failures) return mt_finish("test_mpi_tp_model");
    MT_CHECK((tp.tp != NULL) == (tpc.size > 1), "TP active with a group of %d", tpc.size);

    /* the same full parameters everywhere (the training init: float rounding
     * differences stay near 1e-7 relative; scaled up tenfold, the network is
     * so ill-conditioned that they grow to 1e-4 through the layers) */
    float *full = malloc(ref.table.total * sizeof(float));
    param_init(&ref.table, &CFG, full, 7);
    gpt2_set_params(&ref, full);
    float *local = malloc(tp.table.total * sizeof(float));
    MT_CHECK(shard_extract(&ref.full, full, &tp.shard, local) == 0, "%s", err_msg());
    gpt2_set_params(&tp, local);

    one_batch(&ref, &tp, 3, 16, 11);
    one_batch(&ref, &tp, 2, 5, 12);
    if (tp.tp)
        MT_CHECK(tp.tp_comm_s > 0, "no time recorded in TP collectives");

    free(full);
    free(local);
    gpt2_destroy(&ref);
    gpt2_destroy(&tp);
    comm_close(&tpc);
    return mt_finish("test_mpi_tp_model");
}
