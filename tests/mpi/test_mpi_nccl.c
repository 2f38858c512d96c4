/* tests/mpi/test_mpi_nccl.c — comm.h's NCCL path on device buffers (ctest -L
 * gpu): every collective on GPU buffers against the same call on host
 * buffers (which MPI carries), over the TP and DP groups of a topo and the
 * world. Exits 77 (ctest: skipped) with a message where there is no GPU.
 *
 * Values are small integers held in floats, so sums are exact whatever order
 * NCCL and MPI add them in, and the two results must be bit-identical. One
 * GPU runs a world of one (NCCL refuses two ranks on one GPU); that still
 * checks the unique-id hand-off, stream ordering, in-place allgather offsets
 * and the nonblocking request's events.
 */
#include <math.h>

#include "backend.h"
#include "comm.h"
#include "mpitest.h"
#include "ops_cuda.h"
#include "topo.h"

static const struct ops *gpu;

static float value(int rank, size_t i) { return (float)((int)(i % 97) - 40 + 3 * rank); }

/* Fill a host buffer and its device twin with this rank's values. */
static void fill(const struct comm *c, float *host, float *dev, size_t n) {
    for (size_t i = 0; i < n; i++)
        host[i] = value(c->rank, i);
    gpu->upload(dev, host, n * sizeof(float));
}

static void same(const char *what, const struct comm *c, const float *host,
                 const float *dev, size_t n) {
    float *back = malloc(n * sizeof *back);
    gpu->download(back, dev, n * sizeof(float));
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (back[i] != host[i]) bad = i;
    MT_CHECK(bad == n, "%s on %s: element %zu: device %g, host (MPI) %g", what, c->name, bad,
             bad < n ? back[bad] : 0.0, bad < n ? host[bad] : 0.0);
    free(back);
}

static void check_group(const struct comm *c) {
    const size_t n = 1000003; /* odd, and larger than one NCCL chunk */
    const size_t bytes = n * (size_t)c->size * sizeof(float);
    float *h = malloc(bytes), *h2 = malloc(bytes);
    float *d = gpu->alloc(bytes), *d2 = gpu->alloc(bytes);
    MT_CHECK(h && h2 && d && d2, "out of memory");
    if (!h || !h2 || !d || !d2) return;
    static const enum comm_op ops[] = {COMM_SUM, COMM_AVG, COMM_MAX, COMM_MIN};
    for (int k = 0; k < 4; k++) {
        fill(c, h, d, n);
        int rh = comm_allreduce(c, h, n, COMM_F32, ops[k]);
        int rd = comm_allreduce(c, d, n, COMM_F32, ops[k]);
        MT_CHECK(rh == 0 && rd == 0, "allreduce %s: %s", comm_op_name(ops[k]), err_msg());
        same(comm_op_name(ops[k]), c, h, d, n);
    }
    /* in-place allgather: this rank's block already sits at rank * n */
    fill(c, h + (size_t)c->rank * n, d + (size_t)c->rank * n, n);
    MT_CHECK(comm_allgather(c, NULL, h, n, COMM_F32) == 0, "%s", err_msg());
    MT_CHECK(comm_allgather(c, NULL, d, n, COMM_F32) == 0, "%s", err_msg());
    same("allgather in place", c, h, d, n * (size_t)c->size);
    /* reduce-scatter of size blocks, avg */
    fill(c, h, d, n * (size_t)c->size);
    MT_CHECK(comm_reduce_scatter(c, h, h2, n, COMM_F32, COMM_AVG) == 0, "%s", err_msg());
    MT_CHECK(comm_reduce_scatter(c, d, d2, n, COMM_F32, COMM_AVG) == 0, "%s", err_msg());
    same("reduce_scatter avg", c, h2, d2, n);
    /* broadcast from the last rank */
    fill(c, h, d, n);
    MT_CHECK(comm_broadcast(c, h, n, COMM_F32, c->size - 1) == 0, "%s", err_msg());
    MT_CHECK(comm_broadcast(c, d, n, COMM_F32, c->size - 1) == 0, "%s", err_msg());
    same("broadcast", c, h, d, n);
    /* nonblocking: one request driven by comm_test, one finished by comm_wait,
     * while a kernel queued before the start (the scale) must be seen by it */
    for (int by_test = 0; by_test < 2; by_test++) {
        fill(c, h, d, n);
        for (size_t i = 0; i < n; i++)
            h[i] *= 2.0f;
        gpu->scale(d, n, 2.0f);
        struct comm_request rq;
        MT_CHECK(comm_iallreduce(c, h, n, COMM_F32, COMM_AVG, &rq) == 0, "%s", err_msg());
        MT_CHECK(comm_wait(&rq) == 0, "%s", err_msg());
        MT_CHECK(comm_iallreduce(c, d, n, COMM_F32, COMM_AVG, &rq) == 0, "%s", err_msg());
        int done = 0;
        for (long polls = 0; by_test && !done && polls < 100000000L; polls++)
            MT_CHECK(comm_test(&rq, &done) == 0, "%s", err_msg());
        MT_CHECK(comm_wait(&rq) == 0, "%s", err_msg());
        same(by_test ? "iallreduce (comm_test)" : "iallreduce (comm_wait)", c, h, d, n);
    }
    /* a host buffer on a group with NCCL still goes through MPI */
    double s = 1.5 * (c->rank + 1);
    MT_CHECK(comm_allreduce(c, &s, 1, COMM_F64, COMM_SUM) == 0, "%s", err_msg());
    MT_CHECK(s == 1.5 * c->size * (c->size + 1) / 2, "host double sum %g", s);
    gpu->free(d);
    gpu->free(d2);
    free(h);
    free(h2);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    struct topo t;
    MT_CHECK(topo_init(&t, MPI_COMM_WORLD, &(struct topo_opts){.tp = 1}) == 0, "%s",
             err_msg());
    gpu = backend_select_rank("cuda", t.local_rank, NULL);
    int have = dist_any(gpu == NULL) == 0;
    if (!have) {
        if (dist_rank() == 0) printf("test_mpi_nccl: no CUDA device: skipped\n");
        topo_free(&t);
        dist_finalize();
        return 77;
    }
    struct comm *groups[] = {&t.tp_group, &t.dp_group, &t.world};
    for (int g = 0; g < 3; g++) {
        int rc = backend_attach_comm(gpu, groups[g]);
        MT_CHECK(rc == 0, "attach %s: %s", groups[g]->name, err_msg());
        if (rc) dist_fail("%s", err_msg());
        check_group(groups[g]);
    }
    const char *e = cuda_last_error();
    MT_CHECK(e == NULL, "CUDA backend error: %s", e ? e : "");
    topo_free(&t);
    return mt_finish("test_mpi_nccl");
}
