/* tests/mpi/test_mpi_iallreduce.c — comm_iallreduce / comm_test / comm_wait
 * (the nonblocking allreduce behind the DP gradient buckets): several
 * requests in flight at once, completed out of order, sum and avg against
 * locally computed values (exact: small integers), progress by comm_test,
 * a zeroed request, and the argument errors. Any world size.
 */
#include <stdint.h>

#include "comm.h"
#include "mpitest.h"

#define NB 5
#define N 1000

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    struct comm c;
    MT_CHECK(comm_dup(&c, MPI_COMM_WORLD, "world") == 0, "%s", err_msg());
    int r = c.rank, n = c.size;
    static float buf[NB][N];
    struct comm_request req[NB];
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < N; i++)
            buf[b][i] = (float)((r + 1) * (i % 5) + b);
    for (int b = 0; b < NB; b++) /* buckets 0, 2, 4 summed, 1, 3 averaged */
        MT_CHECK(comm_iallreduce(&c, buf[b], N, COMM_F32, b % 2 ? COMM_AVG : COMM_SUM,
                                 &req[b]) == 0,
                 "%s", err_msg());
    int done = 0, spins = 0;
    while (!done && spins++ < 1000000) { /* progress by testing, last first */
        MT_CHECK(comm_test(&req[NB - 1], &done) == 0, "%s", err_msg());
    }
    MT_CHECK(done, "request %d never completed", NB - 1);
    for (int b = NB - 1; b >= 0; b--)
        MT_CHECK(comm_wait(&req[b]) == 0, "%s", err_msg());
    MT_CHECK(comm_wait(&req[0]) == 0, "a second wait is a no-op: %s", err_msg());
    int bad = 0;
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < N; i++) {
            double sum = (double)n * (n + 1) / 2 * (i % 5) + (double)n * b;
            double want = b % 2 ? sum / n : sum;
            bad += buf[b][i] != (float)want;
        }
    MT_CHECK(bad == 0, "%d wrong elements", bad);
    struct comm_request zero;
    memset(&zero, 0, sizeof zero);
    MT_CHECK(comm_wait(&zero) == 0, "a zeroed request: %s", err_msg());
    /* errors, the same on every rank */
    int32_t k = 1;
    MT_CHECK(comm_iallreduce(&c, &k, 1, COMM_I32, COMM_AVG, &req[0]) == -1 &&
                 strstr(err_msg(), "iallreduce(avg, int32, n=1)"),
             "%s", err_msg());
    c.max_count = 10;
    MT_CHECK(comm_iallreduce(&c, buf[0], 11, COMM_F32, COMM_SUM, &req[0]) == -1 &&
                 strstr(err_msg(), "more than 10 elements"),
             "%s", err_msg());
    MT_CHECK(comm_wait(&req[0]) == 0, "wait after a refused start: %s", err_msg());
    comm_close(&c);
    return mt_finish("test_mpi_iallreduce");
}
