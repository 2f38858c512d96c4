/* src/common/args.h — strict parsing of command-line values.
 * Each returns 0 on success, or -1 with err_set() naming the flag and the
 * offending text ("--steps: 'ten' is not an integer"). */
#ifndef LLMPI_ARGS_H
#define LLMPI_ARGS_H

#include <stdint.h>

int args_int(const char *flag, const char *text, long min, long max, int *out);
/* A non-negative decimal integer up to 2^64 - 1 (seeds). */
int args_u64(const char *flag, const char *text, uint64_t *out);
int args_float(const char *flag, const char *text, double min, double max, float *out);
/* For a flag at argv[*i] that takes a value: the value, advancing *i, or NULL
 * with an error when the value is missing. */
const char *args_value(int argc, char **argv, int *i);

#endif
