/* src/common/timer.h — monotonic wall clock in seconds. */
#ifndef LLMPI_TIMER_H
#define LLMPI_TIMER_H

#include <time.h>

static inline double timer_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
