/* src/train/metrics_file.c — --metrics FILE.partial, the carry-over of a
 * resumed run's earlier lines, and the final rename (metrics_file.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics_file.h"

/* Whole file into memory (NULL + *len 0 when it cannot be read). */
static char *slurp(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

FILE *metrics_open(const char *file, char *partial, size_t plen, long carry_upto,
                   long *carried) {
    *carried = 0;
    if ((size_t)snprintf(partial, plen, "%s.partial", file) >= plen) {
        err_set("--metrics '%s': path too long", file);
        partial[0] = '\0';
        return NULL;
    }
    size_t len = 0;
    char *old = NULL;
    if (carry_upto > 0) {
        old = slurp(partial, &len); /* an interrupted run's record is the newest */
        if (!old) old = slurp(file, &len);
    }
    FILE *f = fopen(partial, "w");
    if (!f) {
        free(old);
        err_set("--metrics '%s': cannot create '%s'", file, partial);
        partial[0] = '\0';
        return NULL;
    }
    /* complete lines {"step":N,... with N = 1, 2, ..., carry_upto; anything
     * short of that (a record of another run, a gap) is not carried */
    size_t pos = 0;
    long step = 0;
    while (old && step < carry_upto && pos < len) {
        char *nl = memchr(old + pos, '\n', len - pos);
        long s;
        if (!nl || sscanf(old + pos, "{\"step\":%ld,", &s) != 1 || s != step + 1) break;
        step = s;
        pos = (size_t)(nl - old) + 1;
    }
    if (step == carry_upto && pos > 0) {
        fwrite(old, 1, pos, f);
        *carried = step;
    }
    free(old);
    fflush(f);
    return f;
}

int metrics_finish(FILE *f, const char *partial, const char *file) {
    if (fclose(f) != 0) return err_set("--metrics '%s': write failed", partial);
    if (rename(partial, file) != 0)
        return err_set("--metrics: cannot rename '%s' to '%s'", partial, file);
    return 0;
}
