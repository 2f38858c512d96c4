/* tests/llfx.h — reader for LLFX fixture files (written by
 * tests/golden/make_fixtures.py; format in tests/golden/README.md). */
#ifndef LLMPI_LLFX_H
#define LLMPI_LLFX_H

#include <stddef.h>
#include <stdint.h>

struct llfx_tensor {
    char *name;
    int dtype; /* 0 float32, 1 int32 */
    int ndim;
    uint32_t dims[4];
    size_t numel;
    void *data;
};

struct llfx {
    int count;
    struct llfx_tensor *t;
};

/* 0 on success; -1 (with a message on stderr) on a missing or malformed file. */
int llfx_load(const char *path, struct llfx *f);
void llfx_free(struct llfx *f);
/* The tensor of that name, or NULL. */
const struct llfx_tensor *llfx_get(const struct llfx *f, const char *name);

#endif
