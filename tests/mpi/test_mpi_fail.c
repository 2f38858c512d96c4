/* tests/mpi/test_mpi_fail.c MODE [RANK] — one rank fails; the job must end.
 *
 * Run by fail_test.sh under mpirun with a time limit. Every rank loops over
 * world allreduces (a training step's collectives); at step 2 rank RANK
 *   fail   calls dist_fail(): "rank RANK: error: injected failure at step 2"
 *          and MPI_Abort
 *   exit   exits with status 3 without MPI_Finalize (an unhandled error)
 *   kill   raises SIGKILL (a crash or the OOM killer)
 * while the others are waiting in the next allreduce: mpirun must end the
 * whole job with a non-zero status. And the collective check:
 *   check  ranks >= RANK fail a validation together: dist_exit_if_any makes
 *          rank RANK alone print its message and every rank exit 1
 *   pass   no rank fails the check: dist_exit_if_any returns, exit 0
 */
#include <signal.h>
#include <time.h>

#include "comm.h"
#include "mpitest.h"

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    dist_set_prog("test_mpi_fail");
    const char *mode = argc > 1 ? argv[1] : "fail";
    int victim = argc > 2 ? atoi(argv[2]) : 1;
    int rank = dist_rank();

    if (!strcmp(mode, "check") || !strcmp(mode, "pass")) {
        int failed = !strcmp(mode, "check") && rank >= victim;
        if (failed) err_set("bad setting seen by rank %d", rank);
        dist_exit_if_any(failed, err_msg());
        printf("rank %d: check passed\n", rank);
        dist_finalize();
        return 0;
    }

    struct comm world;
    if (comm_dup(&world, MPI_COMM_WORLD, "world") != 0) dist_fail("%s", err_msg());
    for (int step = 0; step < 50; step++) {
        if (step == 2 && rank == victim) {
            if (!strcmp(mode, "fail")) dist_fail("injected failure at step %d", step);
            if (!strcmp(mode, "exit")) exit(3);
            if (!strcmp(mode, "kill")) raise(SIGKILL);
        }
        float x = (float)rank;
        if (comm_allreduce(&world, &x, 1, COMM_F32, COMM_SUM) != 0)
            dist_fail("%s", err_msg());
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    }
    /* Not reached when the failure works: the others are stuck at step 2. */
    fprintf(stderr, "rank %d: survived 50 steps: the failure did not end the job\n",
            rank);
    comm_close(&world);
    dist_finalize();
    return 0;
}
