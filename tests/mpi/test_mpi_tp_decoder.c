/* tests/mpi/test_mpi_tp_decoder.c — the tensor-parallel inference decoder
 * (decoder_create_tp, src/infer/decoder.h) against the single-rank one.
 *
 * Every rank of the world forms one TP group of size W and also builds the
 * plain decoder on the same full parameters (its reference). Over three
 * paged steps — two prompts of different lengths prefilled together, then
 * both decoding one token, then a third sequence joining with a prompt while
 * the others decode — with the block size 5 so that sequences span blocks,
 * every wanted logit row of the TP decoder (allgathered: the full
 * vocabulary) equals the reference's within 1e-5 of the row's max, and the
 * rows are bit-identical on every TP rank (so every rank samples the same
 * token). The model's vocabulary (67) splits unevenly. np 1 (no TP), 2, 3.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decoder.h"
#include "mpitest.h"
#include "rng.h"

static const struct gpt2_config CFG = {
    .vocab_size = 67, .max_seq = 32, .n_layer = 2, .n_head = 6, .n_embd = 48};

struct side {
    struct decoder d;
    struct kvpool p;
    struct kvpool_seq s[3];
};

static int side_init(struct side *x, const float *params, const struct comm *tp) {
    if (decoder_create_tp(&x->d, &CFG, ops_cpu(), params, 0, tp)) return -1;
    if (kvpool_create(&x->p, ops_cpu(), &x->d.kv_cfg, 1 << 20, 5)) return -1;
    for (int i = 0; i < 3; i++) {
        kvpool_seq_init(&x->s[i]);
        if (kvpool_seq_reserve(&x->p, &x->s[i], CFG.max_seq)) return -1;
    }
    return 0;
}

static void side_free(struct side *x) {
    for (int i = 0; i < 3; i++)
        kvpool_seq_release(&x->p, &x->s[i]);
    kvpool_destroy(&x->p);
    decoder_destroy(&x->d);
}

/* One step on both sides: sequences idx[0..n) with tokens tok[k][0..len[k]). */
static void step(struct side *ref, struct side *tp, int n, const int *idx,
                 int32_t tok[][16], const int *len, const char *what) {
    struct decoder_seq a[3], b[3];
    for (int k = 0; k < n; k++) {
        a[k] = (struct decoder_seq){&ref->s[idx[k]], tok[k], len[k], 1};
        b[k] = (struct decoder_seq){&tp->s[idx[k]], tok[k], len[k], 1};
    }
    float *la = calloc((size_t)n * CFG.vocab_size, sizeof(float));
    float *lb = calloc((size_t)n * CFG.vocab_size, sizeof(float));
    MT_CHECK(decoder_forward_paged(&ref->d, &ref->p, a, n, la) == 0, "%s", err_msg());
    MT_CHECK(decoder_forward_paged(&tp->d, &tp->p, b, n, lb) == 0, "%s", err_msg());
    for (int k = 0; k < n; k++) {
        double d = 0, m = 0;
        for (int v = 0; v < CFG.vocab_size; v++) {
            size_t i = (size_t)k * CFG.vocab_size + v;
            d = fmax(d, fabs((double)la[i] - lb[i]));
            m = fmax(m, fabs((double)la[i]));
        }
        MT_CHECK(d <= 1e-5 * m, "%s: sequence %d: logits differ by %.3g (max %.3g)", what,
                 idx[k], d, m);
    }
    float *r0 = malloc((size_t)n * CFG.vocab_size * sizeof(float));
    memcpy(r0, lb, (size_t)n * CFG.vocab_size * sizeof(float));
    MPI_Bcast(r0, n * CFG.vocab_size, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MT_CHECK(!memcmp(r0, lb, (size_t)n * CFG.vocab_size * sizeof(float)),
             "%s: TP ranks hold different logits", what);
    free(r0);
    free(la);
    free(lb);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    ops_cpu_set_threads(1);
    struct comm tpc;
    if (comm_dup(&tpc, MPI_COMM_WORLD, "tp")) {
        fprintf(stderr, "error: %s\n", err_msg());
        return 1;
    }
    struct param_table full;
    param_table_build(&CFG, &full);
    float *params = malloc(full.total * sizeof(float));
    param_init(&full, &CFG, params, 3);
    struct shard_table st;
    MT_CHECK(shard_table_build(&CFG, tpc.size, tpc.rank, &st) == 0, "%s", err_msg());
    float *local = malloc(st.local.total * sizeof(float));
    shard_extract(&full, params, &st, local);

    struct side ref, tp;
    MT_CHECK(side_init(&ref, params, NULL) == 0, "%s", err_msg());
    MT_CHECK(side_init(&tp, local, &tpc) == 0, "%s", err_msg());
    MT_CHECK(tp.d.kv_cfg.n_embd == CFG.n_embd / tpc.size, "a rank caches %d of %d columns",
             tp.d.kv_cfg.n_embd, CFG.n_embd);
    if (!mt_failures) {
        struct rng g;
        rng_seed(&g, 9);
        int32_t tok[3][16];
        for (int k = 0; k < 3; k++)
            for (int t = 0; t < 16; t++)
                tok[k][t] = (int32_t)(rng_u64(&g) % (uint64_t)CFG.vocab_size);
        /* two prompts prefilled together */
        step(&ref, &tp, 2, (int[]){0, 1}, tok, (int[]){7, 12}, "prefill");
        /* both decode a token */
        int32_t dec[3][16] = {{5}, {66}};
        step(&ref, &tp, 2, (int[]){0, 1}, dec, (int[]){1, 1}, "decode");
        /* a third joins with its prompt while the others decode */
        int32_t mix[3][16] = {{1}, {2}};
        memcpy(mix[2], tok[2], sizeof tok[2]);
        step(&ref, &tp, 3, (int[]){0, 1, 2}, mix, (int[]){1, 1, 9}, "join");
    }
    side_free(&ref);
    side_free(&tp);
    shard_table_free(&st);
    param_table_free(&full);
    free(params);
    free(local);
    comm_close(&tpc);
    return mt_finish("test_mpi_tp_decoder");
}
