/* src/common/args.c — strict number parsing for command-line flags. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "args.h"
#include "err.h"

int args_int(const char *flag, const char *text, long min, long max, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0')
        return err_set("%s: '%s' is not an integer", flag, text);
    if (v < min || v > max)
        return err_set("%s: %ld is out of range [%ld, %ld]", flag, v, min, max);
    *out = (int)v;
    return 0;
}

int args_u64(const char *flag, const char *text, uint64_t *out) {
    char *end;
    errno = 0;
    if (text[0] == '-')
        return err_set("%s: '%s' is not a non-negative integer", flag, text);
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end)
        return err_set("%s: '%s' is not a non-negative integer", flag, text);
    *out = v;
    return 0;
}

int args_float(const char *flag, const char *text, double min, double max, float *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(v))
        return err_set("%s: '%s' is not a finite number", flag, text);
    if (v < min || v > max)
        return err_set("%s: %g is out of range [%g, %g]", flag, v, min, max);
    *out = (float)v;
    return 0;
}

const char *args_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        err_set("%s needs a value", argv[*i]);
        return NULL;
    }
    *i += 1;
    return argv[*i];
}
