/* tests/mpi/test_mpi_comm.c — collectives (src/common/comm.h) against values
 * computed locally.
 *
 * Every rank contributes data that depends on its rank and the element index;
 * the values are small integers (also in float32), so each sum is exact and
 * compared with ==. Run under mpirun -np 1, 2, 3, 4: the world, and with an
 * even world also the TP and DP groups of a DP x 2 grid. Also: allreduce and
 * broadcast split into pieces (max_count), in-place allgather, int64 sums
 * beyond 2^32, argument errors on every rank (no hang), MPI error messages.
 */
#include <stdint.h>

#include "mpitest.h"
#include "topo.h"

#define N 1000

/* rank r's element i: (r + 1) * (i % 7) + r */
static double contrib(int r, size_t i) { return (double)(r + 1) * (double)(i % 7) + r; }

static void test_allreduce(struct comm *c) {
    int r = c->rank, n = c->size;
    static float f[N];
    static double d[N];
    double s1 = n * (n + 1) / 2.0, s0 = n * (n - 1) / 2.0; /* sums of r+1 and of r */

    for (size_t chunk_case = 0; chunk_case < 2; chunk_case++) {
        size_t saved = c->max_count;
        if (chunk_case) c->max_count = 7; /* 143 pieces of 7 and one of 6 */
        for (size_t i = 0; i < N; i++)
            f[i] = (float)contrib(r, i);
        MT_CHECK(comm_allreduce(c, f, N, COMM_F32, COMM_SUM) == 0, "%s", err_msg());
        int bad = 0;
        for (size_t i = 0; i < N; i++)
            bad += f[i] != (float)((double)(i % 7) * s1 + s0);
        MT_CHECK(!bad, "%s: f32 sum (max_count %zu): %d wrong, f[1]=%g", c->name,
                 c->max_count, bad, f[1]);
        c->max_count = saved;
    }

    /* avg: rank r gives 2r + i; the average is (n - 1) + i, exactly */
    for (size_t i = 0; i < N; i++) {
        f[i] = (float)(2 * r + (int)i);
        d[i] = 2.0 * r + (double)i;
    }
    MT_CHECK(comm_allreduce(c, f, N, COMM_F32, COMM_AVG) == 0, "%s", err_msg());
    MT_CHECK(comm_allreduce(c, d, N, COMM_F64, COMM_AVG) == 0, "%s", err_msg());
    int bad = 0;
    for (size_t i = 0; i < N; i++)
        bad += f[i] != (float)(n - 1 + (int)i) || d[i] != (double)(n - 1 + (int)i);
    MT_CHECK(!bad, "%s: avg: %d wrong, f[0]=%g d[0]=%g", c->name, bad, f[0], d[0]);

    /* int64 beyond 32 bits, int32 max/min, f64 sum */
    int64_t big[3] = {INT64_C(1000000000000) + r, -(int64_t)r * INT64_C(5000000000), r};
    MT_CHECK(comm_allreduce(c, big, 3, COMM_I64, COMM_SUM) == 0, "%s", err_msg());
    MT_CHECK(big[0] == INT64_C(1000000000000) * n + (int64_t)s0 &&
                 big[1] == -(int64_t)s0 * INT64_C(5000000000) && big[2] == (int64_t)s0,
             "%s: i64 sum %lld %lld %lld", c->name, (long long)big[0], (long long)big[1],
             (long long)big[2]);
    int32_t mx[2] = {r * 3, r * 3}, mn[2] = {r - 5, r - 5};
    MT_CHECK(comm_allreduce(c, mx, 2, COMM_I32, COMM_MAX) == 0, "%s", err_msg());
    MT_CHECK(comm_allreduce(c, mn, 2, COMM_I32, COMM_MIN) == 0, "%s", err_msg());
    MT_CHECK(mx[0] == 3 * (n - 1) && mx[1] == mx[0] && mn[0] == -5 && mn[1] == -5,
             "%s: max %d min %d", c->name, mx[0], mn[0]);
    double g = 0.25 * r; /* e.g. a grad-norm partial sum of squares */
    MT_CHECK(comm_allreduce(c, &g, 1, COMM_F64, COMM_SUM) == 0, "%s", err_msg());
    MT_CHECK(g == 0.25 * s0, "%s: f64 sum %g", c->name, g);

    /* n = 0 is a no-op, not an error */
    MT_CHECK(comm_allreduce(c, NULL, 0, COMM_F32, COMM_SUM) == 0, "%s", err_msg());
}

static void test_allgather(struct comm *c) {
    int r = c->rank, n = c->size;
    enum { B = 5 };
    float send[B], recv[8 * B];
    for (int j = 0; j < B; j++)
        send[j] = (float)(r * 100 + j);
    MT_CHECK(comm_allgather(c, send, recv, B, COMM_F32) == 0, "%s", err_msg());
    int bad = 0;
    for (int q = 0; q < n; q++)
        for (int j = 0; j < B; j++)
            bad += recv[q * B + j] != (float)(q * 100 + j);
    MT_CHECK(!bad, "%s: allgather f32: %d wrong", c->name, bad);

    int64_t in_place[8 * 2];
    for (int j = 0; j < 2 * n; j++)
        in_place[j] = -1;
    in_place[2 * r] = (int64_t)r << 40;
    in_place[2 * r + 1] = r;
    MT_CHECK(comm_allgather(c, NULL, in_place, 2, COMM_I64) == 0, "%s", err_msg());
    bad = 0;
    for (int q = 0; q < n; q++)
        bad += in_place[2 * q] != (int64_t)q << 40 || in_place[2 * q + 1] != q;
    MT_CHECK(!bad, "%s: allgather in place i64: %d wrong", c->name, bad);
}

static void test_reduce_scatter(struct comm *c) {
    int r = c->rank, n = c->size;
    enum { B = 6 };
    float send[8 * B], recv[B];
    double dsend[8 * B], drecv[B];
    /* rank q's element j of block b: q + 10 b + j. Block r summed over q:
     * s0 + n (10 r + j); averaged: s0 / n + 10 r + j (s0 / n = (n-1)/2, exact in binary)
     */
    for (int b = 0; b < n; b++)
        for (int j = 0; j < B; j++)
            dsend[b * B + j] = send[b * B + j] = (float)(r + 10 * b + j);
    MT_CHECK(comm_reduce_scatter(c, send, recv, B, COMM_F32, COMM_SUM) == 0, "%s",
             err_msg());
    MT_CHECK(comm_reduce_scatter(c, dsend, drecv, B, COMM_F64, COMM_AVG) == 0, "%s",
             err_msg());
    double s0 = n * (n - 1) / 2.0;
    int bad = 0;
    for (int j = 0; j < B; j++)
        bad += recv[j] != (float)(s0 + n * (10.0 * r + j)) ||
               drecv[j] != s0 / n + 10.0 * r + j;
    MT_CHECK(!bad, "%s: reduce_scatter: %d wrong, recv[0]=%g drecv[0]=%g", c->name, bad,
             recv[0], drecv[0]);
}

static void test_broadcast(struct comm *c) {
    int root = c->size - 1;
    static float f[N];
    size_t saved = c->max_count;
    c->max_count = 64;
    for (size_t i = 0; i < N; i++)
        f[i] = c->rank == root ? (float)i * 3.0f + 0.5f : -1.0f;
    MT_CHECK(comm_broadcast(c, f, N, COMM_F32, root) == 0, "%s", err_msg());
    c->max_count = saved;
    int bad = 0;
    for (size_t i = 0; i < N; i++)
        bad += f[i] != (float)i * 3.0f + 0.5f;
    MT_CHECK(!bad, "%s: broadcast from %d: %d wrong", c->name, root, bad);
    int64_t step = c->rank == 0 ? 123456789012345 : 0;
    MT_CHECK(comm_broadcast(c, &step, 1, COMM_I64, 0) == 0 && step == 123456789012345,
             "%s: broadcast i64 %lld: %s", c->name, (long long)step, err_msg());
    MT_CHECK(comm_barrier(c) == 0, "%s", err_msg());
}

/* Calls that fail their argument checks fail on every rank, before any MPI. */
static void test_errors(struct comm *c) {
    float x = 1;
    int64_t k = 1;
    MT_CHECK(comm_broadcast(c, &x, 1, COMM_F32, c->size) == -1 &&
                 strstr(err_msg(), "root") && strstr(err_msg(), c->name),
             "bad root: %s", err_msg());
    MT_CHECK(comm_allreduce(c, &k, 1, COMM_I64, COMM_AVG) == -1 &&
                 strstr(err_msg(), "allreduce(avg, int64, n=1)"),
             "avg of int64: %s", err_msg());
    MT_CHECK(comm_allreduce(c, NULL, 3, COMM_F32, COMM_SUM) == -1 &&
                 strstr(err_msg(), "NULL"),
             "NULL buffer: %s", err_msg());
    struct comm closed = *c;
    closed.mpi = MPI_COMM_NULL;
    MT_CHECK(comm_barrier(&closed) == -1 && strstr(err_msg(), "closed"), "closed: %s",
             err_msg());

    /* How an MPI failure reads: group, operation, world and group rank, MPI's text. */
    char want[64];
    snprintf(want, sizeof want, "failed on world rank %d (group rank %d of %d)",
             c->world_rank, c->rank, c->size);
    MT_CHECK(comm_mpi_error(c, MPI_ERR_TRUNCATE, "allreduce(sum, float32, n=8)") == -1 &&
                 strstr(err_msg(), "allreduce(sum, float32, n=8)") &&
                 strstr(err_msg(), want) && strstr(err_msg(), "trunc"),
             "mpi error: %s", err_msg());
    MT_CHECK(comm_mpi_error(c, MPI_SUCCESS, "x") == 0, "MPI_SUCCESS is not an error");
}

static void test_group(struct comm *c) {
    test_allreduce(c);
    test_allgather(c);
    test_reduce_scatter(c);
    test_broadcast(c);
    test_errors(c);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    struct comm world;
    if (comm_dup(&world, MPI_COMM_WORLD, "world") != 0) {
        MT_CHECK(0, "%s", err_msg());
        return mt_finish("test_mpi_comm");
    }
    MT_CHECK(world.size <= 8, "this test handles up to 8 ranks, not %d", world.size);
    if (world.size <= 8) test_group(&world);
    comm_close(&world);
    comm_close(&world); /* twice: harmless */

    if (dist_size() % 2 == 0 && dist_size() <= 8) {
        struct topo t;
        if (topo_init(&t, MPI_COMM_WORLD, &(struct topo_opts){.tp = 2}) != 0) {
            MT_CHECK(0, "%s", err_msg());
        } else {
            test_group(&t.tp_group);
            test_group(&t.dp_group);
            /* the DP average of a TP-sharded gradient: each TP column averages alone */
            float gsh = (float)(t.dp_rank * 2 + t.tp_rank * 100);
            MT_CHECK(comm_allreduce(&t.dp_group, &gsh, 1, COMM_F32, COMM_AVG) == 0, "%s",
                     err_msg());
            MT_CHECK(gsh == (float)(t.dp - 1 + t.tp_rank * 100), "dp avg of shard: %g",
                     gsh);
            topo_free(&t);
        }
    }
    return mt_finish("test_mpi_comm");
}
