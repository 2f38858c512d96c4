/* tests/mpi/test_mpi_signal.c MODE ... — stop signals agreed across ranks.
 *
 *   self SIG STEP   the last rank raises SIG (USR1 or TERM) on itself during
 *                   step STEP; every rank calls dist_stop_requested() once per
 *                   step and all must see the stop at step STEP, not before
 *                   and not later; only the last rank saw the signal itself.
 *   wait DIR        (signal_test.sh) each rank writes DIR/rank.R.pid, then
 *                   steps every 20 ms until a stop is agreed, prints
 *                   "rank R: stop requested at step S (signal N here)" and
 *                   exits DIST_EXIT_REQUEUE (75), as training will after its
 *                   checkpoint. Gives up with status 1 after 20 s.
 */
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "mpitest.h"

static void sleep_ms(long ms) {
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000},
              NULL);
}

static int self_test(int sig, int at) {
    int rank = dist_rank(), last = dist_size() - 1;
    int stopped_at = -1;
    for (int step = 0; step < at + 5 && stopped_at < 0; step++) {
        if (step == at && rank == last) raise(sig);
        sleep_ms(2);
        int stop = dist_stop_requested();
        MT_CHECK(stop >= 0, "%s", err_msg());
        if (stop == 1) stopped_at = step;
    }
    MT_CHECK(stopped_at == at, "stop seen at step %d, signal raised at step %d",
             stopped_at, at);
    MT_CHECK(dist_stop_signal() == (rank == last ? sig : 0), "local signal %d",
             dist_stop_signal());
    return mt_finish("test_mpi_signal");
}

static int wait_test(const char *dir) {
    int rank = dist_rank();
    char path[512], tmp[520];
    snprintf(path, sizeof path, "%s/rank.%d.pid", dir, rank);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0)
        dist_fail("cannot write %s", path);
    for (int step = 0; step < 1000; step++) {
        sleep_ms(20);
        int stop = dist_stop_requested();
        if (stop < 0) dist_fail("%s", err_msg());
        if (stop) {
            printf("rank %d: stop requested at step %d (signal %d here)\n", rank, step,
                   dist_stop_signal());
            fflush(stdout);
            dist_finalize();
            return DIST_EXIT_REQUEUE;
        }
    }
    dist_fail("no stop signal within 20 s");
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    if (dist_catch_stop_signals() != 0) dist_fail("%s", err_msg());
    if (argc == 4 && !strcmp(argv[1], "self"))
        return self_test(!strcmp(argv[2], "TERM") ? SIGTERM : SIGUSR1, atoi(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "wait")) return wait_test(argv[2]);
    dist_fail("usage: test_mpi_signal self USR1|TERM STEP | wait DIR");
}
