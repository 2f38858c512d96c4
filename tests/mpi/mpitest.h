/* tests/mpi/mpitest.h — checks for the multi-rank test programs.
 *
 * Each program runs under mpirun (or alone, a world of one). A failed check
 * prints "rank R: FAIL file:line: condition: detail" and is counted;
 * mt_finish() agrees over the world whether any rank failed, so every rank
 * exits with the same status and nothing waits for a rank that gave up.
 */
#ifndef LLMPI_MPITEST_H
#define LLMPI_MPITEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "err.h"

static int mt_failures;

#define MT_CHECK(cond, ...)                                                              \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            char mt_detail_[512];                                                        \
            snprintf(mt_detail_, sizeof mt_detail_, __VA_ARGS__);                        \
            fprintf(stderr, "rank %d: FAIL %s:%d: %s: %s\n", dist_rank(), __FILE__,      \
                    __LINE__, #cond, mt_detail_);                                        \
            mt_failures++;                                                               \
        }                                                                                \
    } while (0)

/* Start MPI or exit 1 with the reason. */
static inline void mt_init(int *argc, char ***argv) {
    if (dist_init(argc, argv) != 0) {
        fprintf(stderr, "error: %s\n", err_msg());
        exit(1);
    }
}

/* Agree on the outcome, finalise, and return the exit status for main. */
static inline int mt_finish(const char *name) {
    int any = dist_any(mt_failures != 0);
    if (dist_rank() == 0)
        printf("%s: world of %d: %s\n", name, dist_size(), any == 0 ? "ok" : "FAILED");
    dist_finalize();
    return any == 0 ? 0 : 1;
}

#endif
