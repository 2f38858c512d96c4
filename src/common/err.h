/* src/common/err.h — error reporting for library code.
 *
 * Library functions never print or exit on bad input: they record a message
 * with err_set() and return a failure code (-1 or NULL). The program's edge
 * (a subcommand's main) prints err_msg() and chooses the exit code. The
 * message is per thread so concurrent callers do not overwrite each other.
 */
#ifndef LLMPI_ERR_H
#define LLMPI_ERR_H

#if defined(__GNUC__)
#define LLMPI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LLMPI_PRINTF(a, b)
#endif

/* Record an error message (printf-style). Always returns -1, so that
 * `return err_set("...")` reads naturally. */
int err_set(const char *fmt, ...) LLMPI_PRINTF(1, 2);

/* The last recorded message of this thread ("" if none). */
const char *err_msg(void);

#endif
