/* src/infer/serve_proto.c — packing and checked unpacking of the serving
 * messages (serve_proto.h). Integers little-endian, floats as their IEEE
 * bits; every read is bounds-checked against the message length. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "serve_proto.h"

void serve_buf_free(struct serve_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int put(struct serve_buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return err_set("out of memory packing a serving message");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static int put_u64(struct serve_buf *b, uint64_t v) {
    unsigned char x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(v >> (8 * i));
    return put(b, x, 8);
}
static int put_u32(struct serve_buf *b, uint32_t v) {
    unsigned char x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (unsigned char)(v >> (8 * i));
    return put(b, x, 4);
}
static int put_f32(struct serve_buf *b, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    return put_u32(b, v);
}

/* A reader over one message. */
struct rd {
    const unsigned char *p;
    size_t len, off;
};
static int get(struct rd *r, void *dst, size_t n) {
    if (n > r->len - r->off)
        return err_set("malformed serving message: %zu bytes needed at offset %zu of "
                       "%zu",
                       n, r->off, r->len);
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return 0;
}
static int get_u64(struct rd *r, uint64_t *v) {
    unsigned char x[8] = {0};
    if (get(r, x, 8)) return -1;
    *v = 0;
    for (int i = 0; i < 8; i++)
        *v |= (uint64_t)x[i] << (8 * i);
    return 0;
}
static int get_u32(struct rd *r, uint32_t *v) {
    unsigned char x[4] = {0};
    if (get(r, x, 4)) return -1;
    *v = (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 |
         (uint32_t)x[3] << 24;
    return 0;
}
static int get_i32(struct rd *r, int32_t *v) {
    uint32_t u;
    if (get_u32(r, &u)) return -1;
    memcpy(v, &u, 4);
    return 0;
}
static int get_f32(struct rd *r, float *f) {
    uint32_t u;
    if (get_u32(r, &u)) return -1;
    memcpy(f, &u, 4);
    return 0;
}

int serve_pack_request(struct serve_buf *b, const struct serve_request *r) {
    if (r->n_prompt < 0 || r->n_stop < 0 || r->n_stop > SERVE_MAX_STOP)
        return err_set("serving request %lld: bad counts", (long long)r->id);
    int rc = put_u64(b, (uint64_t)r->id) || put_u32(b, (uint32_t)r->n_prompt) ||
             put_u32(b, (uint32_t)r->max_tokens) || put_f32(b, r->temperature) ||
             put_f32(b, r->top_p) || put_f32(b, r->repetition_penalty) ||
             put_u32(b, (uint32_t)r->top_k) || put_u64(b, r->seed) ||
             put_u32(b, (uint32_t)r->n_stop);
    for (int i = 0; !rc && i < r->n_prompt; i++)
        rc = put_u32(b, (uint32_t)r->prompt[i]);
    for (int i = 0; !rc && i < r->n_stop; i++) {
        size_t n = strlen(r->stop[i]);
        rc = put_u32(b, (uint32_t)n) || put(b, r->stop[i], n);
    }
    return rc ? -1 : 0;
}

void serve_request_free(struct serve_request *r) {
    free(r->prompt);
    for (int i = 0; i < SERVE_MAX_STOP; i++)
        free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

int serve_unpack_request(const void *msg, size_t len, struct serve_request *r) {
    memset(r, 0, sizeof *r);
    struct rd d = {msg, len, 0};
    uint64_t id;
    uint32_t np, nstop;
    if (get_u64(&d, &id) || get_u32(&d, &np) || get_i32(&d, &r->max_tokens) ||
        get_f32(&d, &r->temperature) || get_f32(&d, &r->top_p) ||
        get_f32(&d, &r->repetition_penalty) || get_i32(&d, &r->top_k) ||
        get_u64(&d, &r->seed) || get_u32(&d, &nstop))
        return -1;
    r->id = (int64_t)id;
    if (np > (len - d.off) / 4 || nstop > SERVE_MAX_STOP)
        return err_set("malformed serving request %lld: %u prompt ids, %u stop strings "
                       "in %zu bytes",
                       (long long)id, np, nstop, len);
    r->n_prompt = (int32_t)np;
    r->prompt = malloc((np ? np : 1) * sizeof *r->prompt);
    if (!r->prompt) return err_set("out of memory");
    for (uint32_t i = 0; i < np; i++)
        if (get_i32(&d, &r->prompt[i])) goto bad;
    for (uint32_t i = 0; i < nstop; i++) {
        uint32_t n;
        if (get_u32(&d, &n)) goto bad;
        if (n > len - d.off) {
            err_set("malformed serving request %lld: stop string of %u bytes", (long long)id,
                    n);
            goto bad;
        }
        r->stop[i] = malloc(n + 1);
        if (!r->stop[i]) {
            err_set("out of memory");
            goto bad;
        }
        r->n_stop = (int32_t)i + 1;
        if (get(&d, r->stop[i], n)) goto bad;
        r->stop[i][n] = '\0';
    }
    return 0;
bad:
    serve_request_free(r);
    return -1;
}

int serve_pack_event(struct serve_buf *b, const struct serve_event *e) {
    uint32_t n = e->text ? e->text_len : 0;
    if (put_u64(b, (uint64_t)e->id) || put_u32(b, (uint32_t)e->kind) ||
        put_u32(b, (uint32_t)e->value) || put_u32(b, n) || (n && put(b, e->text, n)))
        return -1;
    return 0;
}

int serve_unpack_event(const void *msg, size_t len, size_t *off, struct serve_event *e) {
    if (*off == len) return 0;
    struct rd d = {msg, len, *off};
    uint64_t id;
    uint32_t n;
    if (get_u64(&d, &id) || get_i32(&d, &e->kind) || get_i32(&d, &e->value) ||
        get_u32(&d, &n))
        return -1;
    if (n > len - d.off)
        return err_set("malformed serving event: %u text bytes past the end", n);
    e->id = (int64_t)id;
    e->text = n ? (const char *)d.p + d.off : NULL;
    e->text_len = n;
    d.off += n;
    if (e->kind < SERVE_EV_TOKEN || e->kind > SERVE_EV_POOL_TOTAL)
        return err_set("malformed serving event: kind %d", e->kind);
    *off = d.off;
    return 1;
}

int serve_pack_cancel(struct serve_buf *b, int64_t id) {
    return put_u64(b, (uint64_t)id);
}

int serve_unpack_cancel(const void *msg, size_t len, int64_t *id) {
    struct rd d = {msg, len, 0};
    uint64_t v;
    if (get_u64(&d, &v)) return -1;
    if (d.off != len) return err_set("malformed cancel message: %zu bytes", len);
    *id = (int64_t)v;
    return 0;
}
