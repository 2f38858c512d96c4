/* src/common/safetensors.c — safetensors reader and writer (format and
 * validation rules in safetensors.h).
 *
 * The header is untrusted input: every number is checked to be a
 * non-negative integer before it is used as a size or an offset, products
 * are checked for overflow, and the data section must be covered exactly by
 * the tensors (the format forbids holes and overlaps), so a truncated or
 * crafted file fails at st_open with a message, never later with a short
 * read or an out-of-bounds access.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "err.h"

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* the safetensors library's limit */
#define ST_MAX_NAME 1024

static const struct {
    const char *name;
    int size;
} dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},    {"I64", 8},
    {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U64", 8},     {"U32", 4},
    {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void st_close(struct st_file *f) {
    if (f->fp) fclose(f->fp);
    for (int i = 0; i < f->count; i++)
        free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->meta_key);
    free(f->meta_val);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_metadata(struct st_file *f, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return err_set("%s: __metadata__ is not a JSON object", f->path);
    int n = cJSON_GetArraySize(meta);
    f->meta_key = calloc((size_t)n + 1, sizeof *f->meta_key);
    f->meta_val = calloc((size_t)n + 1, sizeof *f->meta_val);
    if (!f->meta_key || !f->meta_val) return err_set("%s: out of memory", f->path);
    for (const cJSON *e = meta->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return err_set("%s: __metadata__ value of '%s' is not a string", f->path,
                           e->string);
        f->meta_key[f->nmeta] = dupstr(e->string);
        f->meta_val[f->nmeta] = dupstr(e->valuestring);
        f->nmeta++;
        if (!f->meta_key[f->nmeta - 1] || !f->meta_val[f->nmeta - 1])
            return err_set("%s: out of memory", f->path);
    }
    return 0;
}

/* Fill *t from one header entry; data_size bounds the offsets. */
static int parse_entry(const char *path, const cJSON *e, uint64_t data_size,
                       struct st_tensor *t) {
    const char *name = e->string;
    if (!name[0]) return err_set("%s: a tensor has an empty name", path);
    if (strlen(name) > ST_MAX_NAME)
        return err_set("%s: a tensor name is longer than %d bytes", path, ST_MAX_NAME);
    if (!cJSON_IsObject(e))
        return err_set("%s: tensor '%s': entry is not an object", path, name);
    t->name = dupstr(name);
    if (!t->name) return err_set("%s: out of memory", path);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt))
        return err_set("%s: tensor '%s': dtype is missing", path, name);
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dt->valuestring, dtypes[i].name)) {
            strcpy(t->dtype, dtypes[i].name);
            t->elsize = dtypes[i].size;
        }
    if (!t->elsize)
        return err_set("%s: tensor '%s': unknown dtype '%s'", path, name,
                       dt->valuestring);

    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(sh))
        return err_set("%s: tensor '%s': shape is missing", path, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return err_set("%s: tensor '%s': %d dimensions (at most %d)", path, name, nd,
                       ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int k = 0;
    for (const cJSON *d = sh->child; d; d = d->next, k++) {
        uint64_t v;
        if (json_u64(d, &v))
            return err_set("%s: tensor '%s': shape[%d] is not a non-negative integer",
                           path, name, k);
        if (v && numel > UINT64_MAX / 8 / v)
            return err_set("%s: tensor '%s': shape is too large", path, name);
        numel *= v;
        t->shape[k] = (int64_t)v;
    }
    if (numel > SIZE_MAX / 8)
        return err_set("%s: tensor '%s': shape is too large", path, name);
    t->numel = (size_t)numel;

    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        json_u64(off->child, &t->begin) || json_u64(off->child->next, &t->end))
        return err_set(
            "%s: tensor '%s': data_offsets is not a pair of non-negative integers", path,
            name);
    if (t->begin > t->end || t->end > data_size)
        return err_set(
            "%s: tensor '%s': data_offsets [%llu, %llu] are out of range (the data "
            "section has %llu bytes)",
            path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
            (unsigned long long)data_size);
    if (t->end - t->begin != numel * (uint64_t)t->elsize)
        return err_set(
            "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but the "
            "shape and dtype %s need %llu",
            path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
            (unsigned long long)(t->end - t->begin), t->dtype,
            (unsigned long long)(numel * (uint64_t)t->elsize));
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* Duplicate names, and the data section covered exactly once. */
static int check_layout(struct st_file *f) {
    if (!f->count) {
        if (f->data_size)
            return err_set("%s: %llu data bytes but no tensors", f->path,
                           (unsigned long long)f->data_size);
        return 0;
    }
    struct st_tensor **order = malloc((size_t)f->count * sizeof *order);
    if (!order) return err_set("%s: out of memory", f->path);
    for (int i = 0; i < f->count; i++)
        order[i] = &f->t[i];
    int rc = 0;
    qsort(order, (size_t)f->count, sizeof *order, cmp_name);
    for (int i = 1; i < f->count && !rc; i++)
        if (!strcmp(order[i]->name, order[i - 1]->name))
            rc = err_set("%s: tensor '%s' appears twice in the header", f->path,
                         order[i]->name);
    qsort(order, (size_t)f->count, sizeof *order, cmp_begin);
    uint64_t pos = 0;
    for (int i = 0; i < f->count && !rc; i++) {
        const struct st_tensor *t = order[i];
        if (t->begin < pos)
            rc = err_set(
                "%s: tensor '%s': data_offsets [%llu, %llu] overlap another tensor",
                f->path, t->name, (unsigned long long)t->begin,
                (unsigned long long)t->end);
        else if (t->begin > pos)
            rc = err_set(
                "%s: tensor '%s': data_offsets [%llu, %llu] leave a hole at byte %llu "
                "of the data section",
                f->path, t->name, (unsigned long long)t->begin,
                (unsigned long long)t->end, (unsigned long long)pos);
        pos = t->end;
    }
    if (!rc && pos != f->data_size)
        rc = err_set("%s: the data section has %llu bytes but the tensors cover %llu "
                     "(truncated or trailing data)",
                     f->path, (unsigned long long)f->data_size, (unsigned long long)pos);
    free(order);
    return rc;
}

static int parse_header(struct st_file *f, const char *json, size_t len) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) return err_set("%s: the header is not valid JSON", f->path);
    int rc = 0;
    /* Only padding (spaces, as writers add) may follow the JSON object. */
    for (const char *p = end; p && p < json + len && !rc; p++)
        if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r' && *p != '\0')
            rc = err_set("%s: unexpected bytes after the header's JSON object", f->path);
    if (!rc && !cJSON_IsObject(root))
        rc = err_set("%s: the header is not a JSON object", f->path);
    int n = rc ? 0 : cJSON_GetArraySize(root);
    if (!rc && !(f->t = calloc((size_t)n + 1, sizeof *f->t)))
        rc = err_set("%s: out of memory", f->path);
    for (const cJSON *e = rc ? NULL : root->child; e && !rc; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (f->meta_key)
                rc = err_set("%s: __metadata__ appears twice", f->path);
            else
                rc = parse_metadata(f, e);
            continue;
        }
        rc = parse_entry(f->path, e, f->data_size, &f->t[f->count]);
        if (f->t[f->count].name) f->count++;
    }
    cJSON_Delete(root);
    return rc ? rc : check_layout(f);
}

int st_open(const char *path, struct st_file *f) {
    memset(f, 0, sizeof *f);
    if (!host_is_little_endian())
        return err_set("%s: safetensors needs a little-endian host", path);
    f->path = dupstr(path);
    if (!f->path) return err_set("%s: out of memory", path);
    f->fp = fopen(path, "rb");
    if (!f->fp) {
        err_set("%s: %s", path, strerror(errno));
        st_close(f);
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f->fp), &sb) || !S_ISREG(sb.st_mode)) {
        err_set("%s: is not a regular file", path);
        st_close(f);
        return -1;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char lenbuf[8];
    if (fsize < 8 || fread(lenbuf, 1, 8, f->fp) != 8) {
        err_set("%s: truncated: %llu bytes, too short for the 8-byte header length", path,
                (unsigned long long)fsize);
        st_close(f);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenbuf[i];
    if (hlen > ST_MAX_HEADER || hlen > fsize - 8) {
        if (hlen > fsize - 8)
            err_set("%s: header length %llu exceeds the file (%llu bytes): truncated or "
                    "not a "
                    "safetensors file",
                    path, (unsigned long long)hlen, (unsigned long long)fsize);
        else
            err_set("%s: header length %llu exceeds the %u-byte limit: not a safetensors "
                    "file",
                    path, (unsigned long long)hlen, ST_MAX_HEADER);
        st_close(f);
        return -1;
    }
    f->data_start = 8 + hlen;
    f->data_size = fsize - f->data_start;
    char *json = malloc((size_t)hlen + 1);
    int rc = 0;
    if (!json)
        rc = err_set("%s: out of memory", path);
    else if (fread(json, 1, (size_t)hlen, f->fp) != (size_t)hlen)
        rc = err_set("%s: cannot read the header: %s", path, strerror(errno));
    else if (hlen == 0 || json[0] != '{')
        rc = err_set("%s: the header does not start with '{': not a safetensors file",
                     path);
    else {
        json[hlen] = '\0';
        rc = parse_header(f, json, (size_t)hlen);
    }
    free(json);
    if (rc) st_close(f);
    return rc;
}

const struct st_tensor *st_find(const struct st_file *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *st_meta(const struct st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_key[i], key)) return f->meta_val[i];
    return NULL;
}

int st_is_float(const struct st_tensor *t) {
    return !strcmp(t->dtype, "F32") || !strcmp(t->dtype, "F16") ||
           !strcmp(t->dtype, "BF16") || !strcmp(t->dtype, "F64");
}

static int seek_read(struct st_file *f, const struct st_tensor *t, uint64_t skip,
                     void *dst, size_t n) {
    if (!f->fp)
        return err_set("%s: file is not open", f->path ? f->path : "(safetensors)");
    if (fseeko(f->fp, (off_t)(f->data_start + t->begin + skip), SEEK_SET))
        return err_set("%s: tensor '%s': seek failed: %s", f->path, t->name,
                       strerror(errno));
    if (fread(dst, 1, n, f->fp) != n)
        return err_set("%s: tensor '%s': short read (file changed or truncated)", f->path,
                       t->name);
    return 0;
}

int st_read_raw(struct st_file *f, const struct st_tensor *t, void *dst) {
    size_t n = (size_t)(t->end - t->begin);
    return n ? seek_read(f, t, 0, dst, n) : 0;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        float v = ldexpf((float)man, -24); /* zero or subnormal */
        return sign ? -v : v;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

int st_read_f32(struct st_file *f, const struct st_tensor *t, float *dst) {
    if (!st_is_float(t))
        return err_set("%s: tensor '%s' has dtype %s; expected F32, F16, BF16 or F64",
                       f->path, t->name, t->dtype);
    if (!strcmp(t->dtype, "F32")) return st_read_raw(f, t, dst);
    /* Convert in chunks through a small buffer. */
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc((size_t)CHUNK * 8);
    if (!buf) return err_set("%s: out of memory", f->path);
    int rc = 0;
    for (size_t i = 0; i < t->numel && !rc; i += CHUNK) {
        size_t n = t->numel - i < CHUNK ? t->numel - i : CHUNK;
        rc = seek_read(f, t, (uint64_t)i * (uint64_t)t->elsize, buf,
                       n * (size_t)t->elsize);
        for (size_t j = 0; j < n && !rc; j++) {
            if (t->elsize == 8) {
                double d;
                memcpy(&d, buf + 8 * j, 8);
                dst[i + j] = (float)d;
            } else {
                uint16_t h;
                memcpy(&h, buf + 2 * j, 2);
                if (t->dtype[0] == 'B') {
                    uint32_t bits = (uint32_t)h << 16;
                    memcpy(&dst[i + j], &bits, 4);
                } else {
                    dst[i + j] = half_to_float(h);
                }
            }
        }
    }
    free(buf);
    return rc;
}

/* ---- writing --------------------------------------------------------------- */

static int cmp_out(const void *a, const void *b) {
    const struct st_out_tensor *x = *(const struct st_out_tensor *const *)a;
    const struct st_out_tensor *y = *(const struct st_out_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static size_t out_numel(const struct st_out_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

static cJSON *json_uint(uint64_t v) {
    char s[32];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return cJSON_CreateRaw(s);
}

/* The header JSON (unpadded, malloc'd) for tensors in `order`. */
static char *build_header(const char *path, struct st_out_tensor **order, int n,
                          const char *const *meta, int nmeta) {
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && nmeta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; i < nmeta && ok; i++)
            ok = cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]) != NULL;
    }
    uint64_t pos = 0;
    for (int i = 0; i < n && ok; i++) {
        const struct st_out_tensor *t = order[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *off = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = off && cJSON_AddStringToObject(e, "dtype", "F32");
        for (int d = 0; d < t->ndim && ok; d++)
            ok = cJSON_AddItemToArray(shape, json_uint((uint64_t)t->shape[d]));
        uint64_t bytes = (uint64_t)out_numel(t) * 4u;
        ok = ok && cJSON_AddItemToArray(off, json_uint(pos)) &&
             cJSON_AddItemToArray(off, json_uint(pos + bytes));
        pos += bytes;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) err_set("%s: out of memory building the header", path);
    return s;
}

static int write_tensor(FILE *fp, const struct st_out_tensor *t, float **scratch,
                        size_t *scap) {
    size_t n = out_numel(t);
    const float *src = t->data;
    if (t->transpose) {
        if (n > *scap) {
            float *p = realloc(*scratch, n * sizeof *p);
            if (!p) return -1;
            *scratch = p;
            *scap = n;
        }
        size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
        /* out[r][c] = data[c][r]; data is [cols, rows] */
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                (*scratch)[r * cols + c] = t->data[c * rows + r];
        src = *scratch;
    }
    return n && fwrite(src, sizeof(float), n, fp) != n ? -1 : 0;
}

static int check_out(const char *path, const struct st_out_tensor *t) {
    if (!t->name || !t->name[0] || !strcmp(t->name, "__metadata__"))
        return err_set("%s: invalid tensor name '%s'", path,
                       t->name ? t->name : "(null)");
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || (t->transpose && t->ndim != 2))
        return err_set("%s: tensor '%s': bad dimension count %d", path, t->name, t->ndim);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0)
            return err_set("%s: tensor '%s': negative shape", path, t->name);
    if (out_numel(t) && !t->data)
        return err_set("%s: tensor '%s': no data", path, t->name);
    return 0;
}

int st_write(const char *path, const struct st_out_tensor *tensors, int n,
             const char *const *meta, int nmeta) {
    if (!host_is_little_endian())
        return err_set("%s: safetensors needs a little-endian host", path);
    struct st_out_tensor **order = malloc(((size_t)n + 1) * sizeof *order);
    if (!order) return err_set("%s: out of memory", path);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        order[i] = (struct st_out_tensor *)&tensors[i];
        rc = check_out(path, &tensors[i]);
    }
    if (!rc) qsort(order, (size_t)n, sizeof *order, cmp_out);
    for (int i = 1; i < n && !rc; i++)
        if (!strcmp(order[i]->name, order[i - 1]->name))
            rc = err_set("%s: tensor '%s' given twice", path, order[i]->name);
    char *hdr = rc ? NULL : build_header(path, order, n, meta, nmeta);
    if (!rc && !hdr) rc = -1;

    char tmp[4096];
    FILE *fp = NULL;
    if (!rc && (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        rc = err_set("%s: path too long", path);
    if (!rc && !(fp = fopen(tmp, "wb"))) rc = err_set("%s: %s", tmp, strerror(errno));
    if (!rc) {
        size_t hl = strlen(hdr), padded = (hl + 8 + 7) / 8 * 8 - 8;
        unsigned char lenbuf[8];
        for (int i = 0; i < 8; i++)
            lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
        int bad = fwrite(lenbuf, 1, 8, fp) != 8 || fwrite(hdr, 1, hl, fp) != hl;
        for (size_t i = hl; i < padded && !bad; i++)
            bad = fputc(' ', fp) == EOF;
        float *scratch = NULL;
        size_t scap = 0;
        for (int i = 0; i < n && !bad; i++)
            bad = write_tensor(fp, order[i], &scratch, &scap);
        free(scratch);
        if (bad || fflush(fp) || fsync(fileno(fp)))
            rc = err_set("%s: write failed: %s", tmp,
                         errno ? strerror(errno) : "out of memory");
        if (fclose(fp) && !rc) rc = err_set("%s: close failed: %s", tmp, strerror(errno));
        if (!rc && rename(tmp, path))
            rc = err_set("%s: rename failed: %s", path, strerror(errno));
        if (rc) remove(tmp);
    }
    cJSON_free(hdr);
    free(order);
    return rc;
}
