/* src/common/ckpt_dir.c — the checkpoint directory: DIR/ckpt_<step>.h5
 * names, finding the newest complete checkpoint, and pruning.
 *
 * Why it looks the way it does:
 *  - Only our own canonical names (ckpt_<8 digits>.h5 and the writer's
 *    .ckpt_<8 digits>.h5.tmp) are ever considered, so other files in the
 *    directory are never read or deleted.
 *  - A checkpoint counts only when it opens as complete (ckpt_is_complete):
 *    a stale or interrupted file neither wins "latest" nor uses up a "keep"
 *    slot. Temporary files are deleted only up to the newest complete step,
 *    since a newer one may still be being written.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "err.h"

/* ---- the checkpoint directory --------------------------------------------- */

void ckpt_path_for_step(const char *dir, int64_t step, char *out, size_t outlen) {
    snprintf(out, outlen, "%s/ckpt_%08lld.h5", dir, (long long)step);
}

/* "<prefix><digits><suffix>" exactly: the step, or -1. */
static int64_t name_step(const char *name, const char *prefix, const char *suffix) {
    size_t pl = strlen(prefix), sl = strlen(suffix), n = strlen(name);
    if (n <= pl + sl || strncmp(name, prefix, pl) || strcmp(name + n - sl, suffix))
        return -1;
    int64_t step = 0;
    for (size_t i = pl; i < n - sl; i++) {
        if (name[i] < '0' || name[i] > '9' || i - pl >= 18) return -1;
        step = step * 10 + (name[i] - '0');
    }
    return step;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* Steps of the names in dir matching prefix<digits>suffix, newest first. */
static int list_steps(const char *dir, const char *prefix, const char *suffix,
                      int64_t **steps, size_t *n) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set("checkpoint directory '%s': %s", dir, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = name_step(e->d_name, prefix, suffix);
        char canon[64];
        snprintf(canon, sizeof canon, "%s%08lld%s", prefix, (long long)s, suffix);
        if (s < 0 || strcmp(canon, e->d_name) != 0) continue; /* only our own names */
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *p = realloc(*steps, cap * sizeof *p);
            if (!p) {
                closedir(d);
                free(*steps);
                *steps = NULL;
                return err_set("out of memory");
            }
            *steps = p;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (*n) qsort(*steps, *n, sizeof **steps, cmp_desc);
    return 0;
}

int ckpt_find_latest(const char *dir, char *out, size_t outlen) {
    int64_t *steps;
    size_t n;
    if (list_steps(dir, "ckpt_", ".h5", &steps, &n)) return -1;
    int rc = 1;
    for (size_t i = 0; i < n && rc == 1; i++) {
        char path[4096];
        ckpt_path_for_step(dir, steps[i], path, sizeof path);
        if (!ckpt_is_complete(path)) continue;
        if (strlen(path) >= outlen) {
            rc = err_set("checkpoint path '%s' is too long", path);
            break;
        }
        memcpy(out, path, strlen(path) + 1);
        rc = 0;
    }
    free(steps);
    return rc;
}

int ckpt_prune(const char *dir, int keep) {
    int64_t *steps, *tmps;
    size_t n, ntmp;
    if (list_steps(dir, "ckpt_", ".h5", &steps, &n)) return -1;
    if (list_steps(dir, ".ckpt_", ".h5.tmp", &tmps, &ntmp)) {
        free(steps);
        return -1;
    }
    int rc = 0, kept = 0;
    int64_t newest = -1;
    char path[4096];
    for (size_t i = 0; i < n && !rc; i++) {
        ckpt_path_for_step(dir, steps[i], path, sizeof path);
        if (!ckpt_is_complete(path)) continue; /* not ours to judge or count */
        if (newest < 0) newest = steps[i];
        if (keep <= 0 || kept < keep) {
            kept++;
            continue;
        }
        if (remove(path) != 0)
            rc = err_set("cannot delete '%s': %s", path, strerror(errno));
    }
    /* temporary files of interrupted saves at or before the newest complete
     * step: nobody is writing them any more */
    for (size_t i = 0; i < ntmp && !rc; i++) {
        if (newest < 0 || tmps[i] > newest) continue;
        snprintf(path, sizeof path, "%s/.ckpt_%08lld.h5.tmp", dir, (long long)tmps[i]);
        if (remove(path) != 0 && errno != ENOENT)
            rc = err_set("cannot delete '%s': %s", path, strerror(errno));
    }
    free(steps);
    free(tmps);
    return rc;
}
