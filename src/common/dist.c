/* src/common/dist.c — MPI start-up and shutdown, job-wide failure, stop
 * signals (dist.h).
 *
 * A private duplicate of MPI_COMM_WORLD carries this module's agreements, so
 * they never match a collective of the training code by accident. The stop
 * handlers write one sig_atomic_t and nothing else: the agreement (an
 * allreduce) happens later, at a point the program chooses.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm.h"
#include "dist.h"

static struct comm dist_world = {.mpi = MPI_COMM_NULL};
static int dist_we_initialised; /* MPI_Init was ours: finalise it */
static const char *dist_prog;
static volatile sig_atomic_t dist_signal;

static int mpi_live(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

int dist_init(int *argc, char ***argv) {
    if (!mpi_live()) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized) return err_set("dist_init: MPI was already finalised");
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return err_set("dist_init: MPI_Init_thread failed");
        dist_we_initialised = 1;
    }
    if (MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return err_set("dist_init: MPI_Comm_set_errhandler failed");
    if (dist_world.mpi == MPI_COMM_NULL &&
        comm_dup(&dist_world, MPI_COMM_WORLD, "dist") != 0)
        return -1;
    return 0;
}

int dist_finalize(void) {
    if (!mpi_live()) return 0;
    comm_close(&dist_world);
    if (dist_we_initialised) {
        dist_we_initialised = 0;
        if (MPI_Finalize() != MPI_SUCCESS)
            return err_set("dist_finalize: MPI_Finalize failed");
    }
    return 0;
}

int dist_rank(void) {
    int r = 0;
    if (mpi_live()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int dist_size(void) {
    int n = 1;
    if (mpi_live()) MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

void dist_set_prog(const char *prog) { dist_prog = prog; }

/* "[prog: ][rank R: ]error: msg\n" as one write, so lines of different ranks
 * do not interleave mid-line. */
static void print_error(const char *msg) {
    char head[160] = "";
    int n = 0;
    if (dist_prog) n = snprintf(head, sizeof head, "%s: ", dist_prog);
    if (dist_size() > 1 && n >= 0 && (size_t)n < sizeof head)
        snprintf(head + n, sizeof head - (size_t)n, "rank %d: ", dist_rank());
    fflush(stdout);
    fprintf(stderr, "%serror: %s\n", head, msg);
    fflush(stderr);
}

_Noreturn void dist_fail(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error(msg);
    /* Alone, there is nobody to take down: skip MPI_Abort and its banner. */
    if (mpi_live() && dist_size() > 1) MPI_Abort(MPI_COMM_WORLD, DIST_EXIT_FAIL);
    exit(DIST_EXIT_FAIL); /* a world of one, no MPI, or MPI_Abort returned */
}

int dist_any(int flag) {
    int v = flag != 0;
    if (!mpi_live()) return v; /* a process without MPI agrees with itself */
    if (dist_world.mpi == MPI_COMM_NULL)
        return err_set("dist_any: dist_init has not been called");
    if (comm_allreduce(&dist_world, &v, 1, COMM_I32, COMM_MAX) != 0) return -1;
    return v;
}

void dist_exit_if_any(int failed, const char *msg) {
    int me = dist_rank(), n = dist_size();
    int first = failed ? me : n; /* lowest failing rank, n when none */
    if (mpi_live() && dist_world.mpi != MPI_COMM_NULL &&
        comm_allreduce(&dist_world, &first, 1, COMM_I32, COMM_MIN) != 0)
        dist_fail("agreeing on failure: %s", err_msg()); /* cannot agree: abort */
    if (first >= n) return;
    if (me == first) print_error(msg && *msg ? msg : "failed");
    dist_finalize();
    exit(DIST_EXIT_FAIL);
}

static void on_stop_signal(int sig) { dist_signal = sig; }

int dist_catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags =
        SA_RESTART; /* blocking MPI/IO calls resume instead of failing with EINTR */
    if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return err_set("dist_catch_stop_signals: sigaction failed");
    return 0;
}

int dist_stop_signal(void) { return dist_signal; }

int dist_stop_requested(void) { return dist_any(dist_signal != 0); }
