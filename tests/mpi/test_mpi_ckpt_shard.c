/* tests/mpi/test_mpi_ckpt_shard.c — parallel HDF5 checkpoints
 * (src/common/ckpt_shard_*.c, docs/checkpoints.md "Parallel checkpoints").
 *
 * The model has a vocabulary (67) that no TP size of 2 or 4 divides, so the
 * uneven wte split is written and read. Full buffers of distinct values
 * (parameters, m, v) are the truth. At every layout the world allows (TP 1,
 * 2, 4 dividing the world; the rest DP), each rank shard_extracts its part
 * and ckpt_save_sharded writes it (writers: the DP-rank-0 replica;
 * non-writers hold different values, which must not reach the file). Then:
 *   (a) ckpt_load_model gives the full parameters bit for bit,
 *       ckpt_load_train the full m and v and every scalar, and the file is
 *       complete; a model-only save and an SGD save (no /optimizer/v) too;
 *       ckpt_load_shard_meta gives the config, tokenizer and scalars;
 *   (b) ckpt_load_shard at every TP size the model allows (1, 2, 4), every
 *       TP rank, gives shard_extract of the truth bit for bit (params, m, v),
 *       also for a file written by the serial ckpt_save;
 *   (c) no temporary file is left and the directory holds exactly the saves;
 *   (d) failures give -1 on every rank with the same message, and create
 *       nothing: a path in a missing directory (the message names it), two
 *       writers for one TP rank, one writer lacking its moment buffer (a
 *       failure seen by one rank only); ckpt_load_shard refuses a shard table
 *       of another model (naming the field), a TP size that does not divide
 *       the file's heads, and moments from a model-only file.
 * Run with np 1, 2 and 4.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_shard.h"
#include "model.h"
#include "mpitest.h"
#include "shard_table.h"
#include "tokenizer.h"

static const struct gpt2_config CFG = {
    .vocab_size = 67, .max_seq = 16, .n_layer = 2, .n_head = 4, .n_embd = 32};
static const int TP_SIZES[] = {1, 2, 4};
#define N_TP 3

static int rank, size;
static char dir[256];
static struct param_table full;
static float *P, *M, *V; /* the truth */

/* Distinct exact floats per buffer: k-th buffer, element i. */
static float *truth(int k) {
    float *x = malloc(full.total * sizeof *x);
    for (size_t i = 0; i < full.total; i++)
        x[i] = (k == 0 ? 1.0f : k == 1 ? -1.0f : 0.25f) * (float)(i + 1);
    return x;
}

static struct ckpt_train_state train_state(const char *opt, float *m, float *v) {
    struct ckpt_train_state s = {
        .step = 7,
        .total_steps = 30,
        .seed = 0x0123456789abcdefULL,
        .rng = {11, 0xffffffffffffffffULL, 13, 0x8000000000000000ULL},
        .data_cursor = 4242,
        .data_train_tokens = 99999,
        .optim_t = 7,
        .hp = {.lr = 3e-4,
               .min_lr_frac = 0.1,
               .weight_decay = 0.01,
               .momentum = 0.9,
               .beta1 = 0.9,
               .beta2 = 0.95,
               .eps = 1e-8,
               .grad_clip = 1.0,
               .val_fraction = 0.05,
               .warmup = 3,
               .batch = 4,
               .seq = 16,
               .eval_every = 5,
               .eval_batches = 2},
        .m_state = m,
        .v_state = v,
    };
    snprintf(s.optimizer, sizeof s.optimizer, "%s", opt);
    return s;
}

/* Names in dir (sorted not needed): count, and whether any is a .tmp. */
static int list_dir(const char *d, int *tmp_files) {
    DIR *dd = opendir(d);
    int n = 0;
    *tmp_files = 0;
    if (!dd) return -1;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".tmp")) (*tmp_files)++;
    }
    closedir(dd);
    return n;
}

/* Every rank has the same message as rank 0. */
static void same_message_everywhere(const char *what) {
    char m0[1024];
    snprintf(m0, sizeof m0, "%s", err_msg());
    MPI_Bcast(m0, sizeof m0, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("expected failure (%s): %s\n", what, m0);
    if (strcmp(m0, err_msg()) != 0) {
        fprintf(stderr, "rank 0 says: %s\nrank %d says: %s\n", m0, rank, err_msg());
        MT_CHECK(0, "%s: the ranks' messages differ", what);
    }
}

/* This rank's shards of the truth at (tp, tp_rank). */
struct shard {
    struct shard_table st;
    float *p, *m, *v;
};

static int shard_make(struct shard *s, int tp, int tp_rank) {
    memset(s, 0, sizeof *s);
    if (shard_table_build(&CFG, tp, tp_rank, &s->st)) return -1;
    size_t n = s->st.local.total;
    s->p = malloc(n * sizeof(float));
    s->m = malloc(n * sizeof(float));
    s->v = malloc(n * sizeof(float));
    if (shard_extract(&full, P, &s->st, s->p) || shard_extract(&full, M, &s->st, s->m) ||
        shard_extract(&full, V, &s->st, s->v))
        return -1;
    return 0;
}

static void shard_free(struct shard *s) {
    shard_table_free(&s->st);
    free(s->p);
    free(s->m);
    free(s->v);
}

/* (a) the full reads of a file saved from the truth. */
static void check_full(const char *path, const char *opt) {
    MT_CHECK(ckpt_is_complete(path), "%s is not complete", path);
    struct gpt2_config c;
    float *p = NULL;
    struct tokenizer *tok = NULL;
    MT_CHECK(ckpt_load_model(path, &c, &p, &tok) == 0, "%s", err_msg());
    if (!p) return;
    MT_CHECK(!memcmp(&c, &CFG, sizeof c), "config differs");
    MT_CHECK(!memcmp(p, P, full.total * sizeof(float)), "%s: parameters differ", path);
    MT_CHECK(tok && tokenizer_is_bytes(tok), "tokenizer");
    free(p);
    tokenizer_free(tok);
    /* the metadata of a sharded resume, without any full tensor */
    struct ckpt_train_state meta;
    tok = NULL;
    memset(&c, 0, sizeof c);
    MT_CHECK(ckpt_load_shard_meta(path, &c, &tok, NULL) == 0, "%s", err_msg());
    MT_CHECK(!memcmp(&c, &CFG, sizeof c) && tok && tokenizer_is_bytes(tok), "meta");
    tokenizer_free(tok);
    if (!opt) {
        struct ckpt_train_state s;
        MT_CHECK(ckpt_load_train(path, &CFG, &s) == -1 && strstr(err_msg(), "model-only"),
                 "a model-only file gave training state: %s", err_msg());
        MT_CHECK(ckpt_load_shard_meta(path, &c, NULL, &meta) == -1 &&
                     strstr(err_msg(), "model-only"),
                 "meta of a model-only file: %s", err_msg());
        return;
    }
    struct ckpt_train_state s, want = train_state(opt, NULL, NULL);
    MT_CHECK(ckpt_load_shard_meta(path, &c, NULL, &meta) == 0, "%s", err_msg());
    MT_CHECK(!strcmp(meta.optimizer, opt) && meta.step == want.step &&
                 meta.total_steps == want.total_steps && meta.seed == want.seed &&
                 !memcmp(meta.rng, want.rng, sizeof meta.rng) &&
                 meta.data_cursor == want.data_cursor &&
                 meta.data_train_tokens == want.data_train_tokens &&
                 meta.optim_t == want.optim_t &&
                 !memcmp(&meta.hp, &want.hp, sizeof meta.hp) && !meta.m_state &&
                 !meta.v_state,
             "ckpt_load_shard_meta: training scalars differ");
    MT_CHECK(ckpt_load_train(path, &CFG, &s) == 0, "%s", err_msg());
    if (!s.m_state) return;
    MT_CHECK(!strcmp(s.optimizer, opt), "optimizer %s", s.optimizer);
    MT_CHECK(s.step == want.step && s.total_steps == want.total_steps &&
                 s.seed == want.seed && !memcmp(s.rng, want.rng, sizeof s.rng) &&
                 s.data_cursor == want.data_cursor &&
                 s.data_train_tokens == want.data_train_tokens &&
                 s.optim_t == want.optim_t && !memcmp(&s.hp, &want.hp, sizeof s.hp),
             "training scalars differ");
    MT_CHECK(!memcmp(s.m_state, M, full.total * sizeof(float)), "%s: m differs", path);
    if (strcmp(opt, "sgd"))
        MT_CHECK(s.v_state && !memcmp(s.v_state, V, full.total * sizeof(float)),
                 "%s: v differs", path);
    else
        MT_CHECK(!s.v_state, "sgd file has a v");
    ckpt_train_state_free(&s);
}

/* (b) every TP size and TP rank reads its shard of the truth. The (T, r)
 * pairs are spread over the ranks. */
static void check_shards(const char *path, int moments, int with_v) {
    int job = 0;
    for (int k = 0; k < N_TP; k++)
        for (int r = 0; r < TP_SIZES[k]; r++, job++) {
            if (job % size != rank) continue;
            struct shard want;
            MT_CHECK(shard_make(&want, TP_SIZES[k], r) == 0, "%s", err_msg());
            size_t n = want.st.local.total;
            float *p = malloc(n * sizeof *p), *m = malloc(n * sizeof *m),
                  *v = malloc(n * sizeof *v);
            memset(p, 0xff, n * sizeof *p);
            memset(m, 0xff, n * sizeof *m);
            memset(v, 0xff, n * sizeof *v);
            int rc = ckpt_load_shard(path, &want.st, p, moments ? m : NULL,
                                     moments && with_v ? v : NULL);
            MT_CHECK(rc == 0, "load_shard tp %d rank %d: %s", TP_SIZES[k], r, err_msg());
            MT_CHECK(!memcmp(p, want.p, n * sizeof *p), "%s tp %d rank %d: params differ",
                     path, TP_SIZES[k], r);
            if (moments)
                MT_CHECK(!memcmp(m, want.m, n * sizeof *m), "%s tp %d rank %d: m differs",
                         path, TP_SIZES[k], r);
            if (moments && with_v)
                MT_CHECK(!memcmp(v, want.v, n * sizeof *v), "%s tp %d rank %d: v differs",
                         path, TP_SIZES[k], r);
            free(p);
            free(m);
            free(v);
            shard_free(&want);
        }
}

/* ckpt_save_sharded at TP size tp over the world; opt NULL: model only.
 * Non-writers hold other values (never written). Returns the rc. */
static int save_at(const char *path, int tp, const char *opt, int writer_override,
                   int drop_m_on_last) {
    int tp_rank = rank % tp, writer = rank / tp == 0;
    if (writer_override >= 0) writer = writer_override;
    struct shard s;
    MT_CHECK(shard_make(&s, tp, tp_rank) == 0, "%s", err_msg());
    if (!writer)
        for (size_t i = 0; i < s.st.local.total; i++)
            s.p[i] = s.m[i] = s.v[i] = -7777.0f;
    struct tokenizer *tok = rank == 0 ? tokenizer_bytes() : NULL;
    struct ckpt_train_state t =
        train_state(opt ? opt : "adamw", s.m, opt && strcmp(opt, "sgd") ? s.v : NULL);
    if (drop_m_on_last && rank == size - 1) t.m_state = NULL;
    int rc = ckpt_save_sharded(path, MPI_COMM_WORLD, writer, &CFG, &s.st, s.p, tok,
                               opt ? &t : NULL);
    tokenizer_free(tok);
    shard_free(&s);
    return rc;
}

static void bcast_dir(void) {
    if (rank == 0) {
        snprintf(dir, sizeof dir, "/tmp/llmpi_test_ckpt_shard_XXXXXX");
        if (!mkdtemp(dir)) dir[0] = '\0';
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
}

static void remove_dir(void) {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        DIR *d = opendir(dir);
        struct dirent *e;
        char p[600];
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
        }
        if (d) closedir(d);
        rmdir(dir);
    }
}

static void failures(int *n_files) {
    char path[600];
    int tmps, n;
    /* a missing directory */
    snprintf(path, sizeof path, "%s/missing/ckpt.h5", dir);
    MT_CHECK(save_at(path, 1, "adamw", -1, 0) == -1, "save into a missing dir succeeded");
    same_message_everywhere("missing dir");
    char want[600];
    snprintf(want, sizeof want, "%s/missing/", dir);
    MT_CHECK(strstr(err_msg(), want) && strstr(err_msg(), "ckpt.h5"),
             "message does not name the path: %s", err_msg());
    struct stat sb;
    MT_CHECK(stat(want, &sb) != 0, "the missing directory was created");
    MT_CHECK((n = list_dir(dir, &tmps)) == *n_files && tmps == 0,
             "files after a failed save: %d (expected %d), %d tmp", n, *n_files, tmps);

    if (size > 1) {
        /* every rank a writer at TP 1: TP rank 0 has `size` writers */
        snprintf(path, sizeof path, "%s/two_writers.h5", dir);
        MT_CHECK(save_at(path, 1, "adamw", 1, 0) == -1, "two writers accepted");
        same_message_everywhere("two writers");
        MT_CHECK(strstr(err_msg(), "TP rank 0 has") != NULL, "%s", err_msg());
        /* the last rank, a writer at TP = size, lacks m: only it sees it */
        snprintf(path, sizeof path, "%s/no_m.h5", dir);
        MT_CHECK(save_at(path, size, "adam", -1, 1) == -1, "a writer without m accepted");
        same_message_everywhere("missing m");
        MT_CHECK(strstr(err_msg(), "m_state") != NULL, "%s", err_msg());
        MT_CHECK((n = list_dir(dir, &tmps)) == *n_files && tmps == 0,
                 "files after failed saves: %d (expected %d), %d tmp", n, *n_files, tmps);
    }

    /* ckpt_load_shard refusals (each rank on its own) */
    char good[600];
    snprintf(good, sizeof good, "%s/ckpt_tp1_adamw.h5", dir);
    struct gpt2_config other = CFG;
    other.n_embd = 48;
    struct shard_table st;
    MT_CHECK(shard_table_build(&other, 2, rank % 2, &st) == 0, "%s", err_msg());
    float *buf = malloc(st.local.total * sizeof *buf);
    MT_CHECK(ckpt_load_shard(good, &st, buf, NULL, NULL) == -1 &&
                 strstr(err_msg(), "n_embd 32") && strstr(err_msg(), "n_embd 48") &&
                 strstr(err_msg(), good),
             "other width: %s", err_msg());
    free(buf);
    shard_table_free(&st);
    other = CFG;
    other.n_head = 6;
    other.n_embd = 48;
    MT_CHECK(shard_table_build(&other, 3, rank % 3, &st) == 0, "%s", err_msg());
    buf = malloc(st.local.total * sizeof *buf);
    MT_CHECK(ckpt_load_shard(good, &st, buf, NULL, NULL) == -1 &&
                 strstr(err_msg(), "does not divide the heads"),
             "tp 3: %s", err_msg());
    free(buf);
    shard_table_free(&st);
    other = CFG;
    other.vocab_size = 68;
    MT_CHECK(shard_table_build(&other, 4, 3, &st) == 0, "%s", err_msg());
    buf = malloc(st.local.total * sizeof *buf);
    MT_CHECK(ckpt_load_shard(good, &st, buf, NULL, NULL) == -1 &&
                 strstr(err_msg(), "vocab_size 67"),
             "vocab: %s", err_msg());
    free(buf);
    shard_table_free(&st);
    struct shard s;
    MT_CHECK(shard_make(&s, 2, rank % 2) == 0, "%s", err_msg());
    snprintf(path, sizeof path, "%s/ckpt_model_only.h5", dir);
    MT_CHECK(ckpt_load_shard(path, &s.st, s.p, s.m, NULL) == -1 &&
                 strstr(err_msg(), "model-only"),
             "moments from a model-only file: %s", err_msg());
    snprintf(path, sizeof path, "%s/ckpt_sgd.h5", dir);
    MT_CHECK(ckpt_load_shard(path, &s.st, s.p, s.m, s.v) == -1 &&
                 strstr(err_msg(), "/optimizer/v"),
             "v from an sgd file: %s", err_msg());
    snprintf(path, sizeof path, "%s/nonexistent.h5", dir);
    MT_CHECK(ckpt_load_shard(path, &s.st, s.p, NULL, NULL) == -1 &&
                 strstr(err_msg(), "nonexistent.h5"),
             "missing file: %s", err_msg());
    shard_free(&s);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    bcast_dir();
    if (!dir[0] || param_table_build(&CFG, &full)) {
        MT_CHECK(0, "setup failed");
        return mt_finish("test_mpi_ckpt_shard");
    }
    P = truth(0);
    M = truth(1);
    V = truth(2);
    char path[600];
    int n_files = 0, tmps, n;

    for (int k = 0; k < N_TP; k++) {
        int tp = TP_SIZES[k];
        if (size % tp) continue;
        snprintf(path, sizeof path, "%s/ckpt_tp%d_adamw.h5", dir, tp);
        int rc = save_at(path, tp, "adamw", -1, 0);
        MT_CHECK(rc == 0, "save at tp %d: %s", tp, err_msg());
        n_files++;
        MPI_Barrier(MPI_COMM_WORLD);
        check_full(path, "adamw");
        check_shards(path, 1, 1);
    }
    /* model only and sgd, at the largest TP size the world allows */
    int tpmax = size % 4 == 0 ? 4 : size % 2 == 0 ? 2 : 1;
    snprintf(path, sizeof path, "%s/ckpt_model_only.h5", dir);
    MT_CHECK(save_at(path, tpmax, NULL, -1, 0) == 0, "model-only: %s", err_msg());
    n_files++;
    MPI_Barrier(MPI_COMM_WORLD);
    check_full(path, NULL);
    check_shards(path, 0, 0);
    snprintf(path, sizeof path, "%s/ckpt_sgd.h5", dir);
    MT_CHECK(save_at(path, tpmax, "sgd", -1, 0) == 0, "sgd: %s", err_msg());
    n_files++;
    MPI_Barrier(MPI_COMM_WORLD);
    check_full(path, "sgd");
    check_shards(path, 1, 0);
    /* a file from the serial writer reads per shard the same */
    snprintf(path, sizeof path, "%s/ckpt_serial.h5", dir);
    if (rank == 0) {
        struct tokenizer *tok = tokenizer_bytes();
        struct ckpt_train_state t = train_state("adam", M, V);
        MT_CHECK(ckpt_save(path, &CFG, P, tok, &t) == 0, "%s", err_msg());
        tokenizer_free(tok);
    }
    n_files++;
    MPI_Barrier(MPI_COMM_WORLD);
    check_shards(path, 1, 1);
    /* (c) */
    MT_CHECK((n = list_dir(dir, &tmps)) == n_files && tmps == 0,
             "directory holds %d files (expected %d), %d tmp", n, n_files, tmps);
    MPI_Barrier(MPI_COMM_WORLD);
    failures(&n_files);

    free(P);
    free(M);
    free(V);
    param_table_free(&full);
    remove_dir();
    return mt_finish("test_mpi_ckpt_shard");
}
