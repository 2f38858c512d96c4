/* src/common/shard.c — token shard reading and writing (format in shard.h).
 * Integers are encoded byte by byte so the files are little-endian on any
 * host. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "shard.h"

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- writer ------------------------------------------------------------------- */

struct shard_writer {
    FILE *f;
    char path[PATH_MAX], tmp[PATH_MAX];
    uint32_t vocab_size, dtype;
    uint64_t count;
    unsigned char buf[1 << 16];
    size_t buf_len;
};

struct shard_writer *shard_writer_open(const char *path, uint32_t vocab_size) {
    struct shard_writer *w = calloc(1, sizeof *w);
    if (!w) {
        err_set("out of memory");
        return NULL;
    }
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path ||
        snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path) >= (int)sizeof w->tmp) {
        free(w);
        err_set("%s: path too long", path);
        return NULL;
    }
    if (vocab_size == 0) {
        free(w);
        err_set("%s: vocabulary size 0", path);
        return NULL;
    }
    w->vocab_size = vocab_size;
    w->dtype = vocab_size <= 65536 ? 2 : 4;
    w->f = fopen(w->tmp, "w+b");
    if (!w->f) {
        err_set("%s: cannot create: %s", w->tmp, strerror(errno));
        free(w);
        return NULL;
    }
    unsigned char zero[SHARD_HEADER_BYTES] = {0};
    if (fwrite(zero, 1, sizeof zero, w->f) != sizeof zero) {
        err_set("%s: write error", w->tmp);
        shard_writer_abort(w);
        return NULL;
    }
    return w;
}

static int flush_buf(struct shard_writer *w) {
    if (w->buf_len && fwrite(w->buf, 1, w->buf_len, w->f) != w->buf_len)
        return err_set("%s: write error: %s", w->tmp, strerror(errno));
    w->buf_len = 0;
    return 0;
}

int shard_writer_append(struct shard_writer *w, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= w->vocab_size)
            return err_set("%s: token %d is outside the vocabulary [0, %u)", w->path, ids[i],
                           w->vocab_size);
        if (w->buf_len + 4 > sizeof w->buf && flush_buf(w)) return -1;
        unsigned char *p = w->buf + w->buf_len;
        if (w->dtype == 2) {
            p[0] = (unsigned char)ids[i];
            p[1] = (unsigned char)(ids[i] >> 8);
        } else {
            put_u32(p, (uint32_t)ids[i]);
        }
        w->buf_len += w->dtype;
    }
    w->count += n;
    return 0;
}

uint64_t shard_writer_count(const struct shard_writer *w) { return w->count; }

int shard_writer_move_tail(struct shard_writer *from, struct shard_writer *to, uint64_t n) {
    if (n > from->count) return err_set("%s: cannot move %llu of %llu tokens", from->path,
                                        (unsigned long long)n, (unsigned long long)from->count);
    if (flush_buf(from)) return -1;
    uint64_t keep = from->count - n;
    off_t at = (off_t)(SHARD_HEADER_BYTES + keep * from->dtype);
    int32_t ids[4096];
    unsigned char raw[4096 * 4];
    uint64_t moved = 0;
    while (moved < n) {
        size_t k = n - moved < 4096 ? (size_t)(n - moved) : 4096;
        if (fseeko(from->f, at + (off_t)(moved * from->dtype), SEEK_SET) != 0 ||
            fread(raw, from->dtype, k, from->f) != k)
            return err_set("%s: read-back error", from->tmp);
        for (size_t i = 0; i < k; i++)
            ids[i] = from->dtype == 2 ? (int32_t)(raw[2 * i] | raw[2 * i + 1] << 8)
                                      : (int32_t)get_u32(raw + 4 * i);
        if (shard_writer_append(to, ids, k)) return -1;
        moved += k;
    }
    if (fflush(from->f) != 0 || ftruncate(fileno(from->f), at) != 0 ||
        fseeko(from->f, 0, SEEK_END) != 0)
        return err_set("%s: cannot truncate: %s", from->tmp, strerror(errno));
    from->count = keep;
    return 0;
}

int shard_writer_close(struct shard_writer *w) {
    unsigned char h[SHARD_HEADER_BYTES] = {0};
    memcpy(h, SHARD_MAGIC, 8);
    put_u32(h + 8, SHARD_VERSION);
    put_u32(h + 12, w->vocab_size);
    put_u64(h + 16, w->count);
    put_u32(h + 24, w->dtype);
    int rc = flush_buf(w);
    if (rc == 0 && (fseeko(w->f, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, w->f) != sizeof h))
        rc = err_set("%s: cannot write the header", w->tmp);
    if (fclose(w->f) != 0 && rc == 0) rc = err_set("%s: write error", w->tmp);
    w->f = NULL;
    if (rc == 0 && rename(w->tmp, w->path) != 0)
        rc = err_set("%s: cannot rename to %s: %s", w->tmp, w->path, strerror(errno));
    if (rc) remove(w->tmp);
    free(w);
    return rc;
}

void shard_writer_abort(struct shard_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    remove(w->tmp);
    free(w);
}

/* ---- reader -------------------------------------------------------------------- */

static int parse_header(const char *path, const unsigned char *h, uint64_t file_size,
                        struct shard_header *out) {
    if (memcmp(h, SHARD_MAGIC, 8) != 0)
        return err_set("%s: magic: not a token shard (expected \"%s\")", path, SHARD_MAGIC);
    out->version = get_u32(h + 8);
    out->vocab_size = get_u32(h + 12);
    out->ntokens = get_u64(h + 16);
    out->dtype = get_u32(h + 24);
    if (out->version != SHARD_VERSION)
        return err_set("%s: version: %u, this llmpi reads version %u", path, out->version,
                       SHARD_VERSION);
    if (out->dtype != 2 && out->dtype != 4)
        return err_set("%s: dtype: %u (expected 2 = uint16 or 4 = int32)", path, out->dtype);
    if (out->vocab_size == 0 || (out->dtype == 2 && out->vocab_size > 65536) ||
        out->vocab_size > INT32_MAX)
        return err_set("%s: vocab size: %u does not fit dtype %u", path, out->vocab_size,
                       out->dtype);
    uint64_t body = file_size - SHARD_HEADER_BYTES;
    if (out->ntokens > body / out->dtype || body != out->ntokens * out->dtype)
        return err_set("%s: token count: the header says %llu tokens (%llu bytes), the file "
                       "holds %llu bytes after the header",
                       path, (unsigned long long)out->ntokens,
                       (unsigned long long)(out->ntokens * out->dtype), (unsigned long long)body);
    return 0;
}

static FILE *open_shard(const char *path, struct shard_header *h) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set("%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    unsigned char raw[SHARD_HEADER_BYTES];
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        err_set("%s: not a regular file", path);
    } else if (st.st_size < SHARD_HEADER_BYTES || fread(raw, 1, sizeof raw, f) != sizeof raw) {
        err_set("%s: header: shorter than %d bytes", path, SHARD_HEADER_BYTES);
    } else if (parse_header(path, raw, (uint64_t)st.st_size, h) == 0) {
        return f;
    }
    fclose(f);
    return NULL;
}

int shard_is_shard(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[8];
    int yes = fread(magic, 1, 8, f) == 8 && !memcmp(magic, SHARD_MAGIC, 8);
    fclose(f);
    return yes;
}

int shard_read_header(const char *path, struct shard_header *h) {
    FILE *f = open_shard(path, h);
    if (!f) return -1;
    fclose(f);
    return 0;
}

int shard_read(const char *path, int32_t **tokens, size_t *n, struct shard_header *h) {
    *tokens = NULL;
    *n = 0;
    FILE *f = open_shard(path, h);
    if (!f) return -1;
    if (h->ntokens > SIZE_MAX / sizeof(int32_t)) {
        fclose(f);
        return err_set("%s: token count: %llu tokens do not fit in memory", path,
                       (unsigned long long)h->ntokens);
    }
    size_t count = (size_t)h->ntokens;
    int32_t *t = malloc(count * sizeof *t + 1);
    unsigned char *raw = malloc((size_t)1 << 20);
    int rc = 0;
    if (!t || !raw) rc = err_set("%s: out of memory for %zu tokens", path, count);
    size_t done = 0;
    while (rc == 0 && done < count) {
        size_t k = (count - done) < ((size_t)1 << 20) / h->dtype ? count - done
                                                                 : ((size_t)1 << 20) / h->dtype;
        if (fread(raw, h->dtype, k, f) != k) {
            rc = err_set("%s: read error", path);
            break;
        }
        for (size_t i = 0; i < k; i++) {
            uint32_t v = h->dtype == 2 ? (uint32_t)(raw[2 * i] | raw[2 * i + 1] << 8)
                                       : get_u32(raw + 4 * i);
            if (v >= h->vocab_size) {
                rc = err_set("%s: token %zu is %u, not below the vocab size %u", path, done + i,
                             v, h->vocab_size);
                break;
            }
            t[done + i] = (int32_t)v;
        }
        done += k;
    }
    fclose(f);
    free(raw);
    if (rc) {
        free(t);
        return -1;
    }
    *tokens = t;
    *n = count;
    return 0;
}
