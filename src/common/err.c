/* src/common/err.c — per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

static _Thread_local char last_error[1024];

int err_set(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *err_msg(void) { return last_error; }
