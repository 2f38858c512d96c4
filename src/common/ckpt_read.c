/* src/common/ckpt_read.c — opening and checked loading of checkpoints:
 * ckpt_open / ckpt_is_complete, the config, the model (parameters +
 * tokenizer) and the training state. Layout: docs/checkpoints.md.
 *
 * Why it looks the way it does:
 *  - Nothing is trusted: every attribute's class and count and every
 *    dataset's type and shape are checked against the parameter table
 *    before reading, and each failure names the file and the field.
 *  - A file counts only when its root 'format', 'format_version' and
 *    'complete' attributes say so (ckpt_write.c writes 'complete' last), so
 *    a half-written or foreign file is refused with the reason.
 *  - String attributes are read whether variable- or fixed-length (the
 *    writer uses variable-length UTF-8; other tools may not).
 */
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "ckpt_h5.h"
#include "err.h"

#define WHY_LEN 1024

/* ---- reading -------------------------------------------------------------- */

/* Attribute `name` of obj (at `where`) as a scalar or an array of n values
 * of numeric class `cls`, converted to mtype. */
static int attr_get(const char *file, hid_t obj, const char *where, const char *name,
                    H5T_class_t cls, hid_t mtype, hssize_t n, void *buf) {
    char what[256];
    if (H5Aexists(obj, name) <= 0)
        return err_set("%s: attribute '%s' of %s is missing", file, name, where);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    int rc = -1;
    if (t < 0 || sp < 0) {
        snprintf(what, sizeof what, "cannot open attribute '%s' of %s", name, where);
        ckpt_h5_fail(file, what);
    } else if (H5Tget_class(t) != cls) {
        err_set("%s: attribute '%s' of %s has the wrong type (expected %s)", file, name,
                where, cls == H5T_FLOAT ? "a float" : "an integer");
    } else if (H5Sget_simple_extent_npoints(sp) != (n ? n : 1)) {
        err_set("%s: attribute '%s' of %s holds %lld values, expected %lld", file, name,
                where, (long long)H5Sget_simple_extent_npoints(sp),
                (long long)(n ? n : 1));
    } else if (H5Aread(a, mtype, buf) < 0) {
        snprintf(what, sizeof what, "cannot read attribute '%s' of %s", name, where);
        ckpt_h5_fail(file, what);
    } else {
        rc = 0;
    }
    ckpt_h5_close(sp);
    ckpt_h5_close(t);
    ckpt_h5_close(a);
    return rc;
}

static int get_i64(const char *file, hid_t obj, const char *where, const char *name,
                   int64_t *v) {
    return attr_get(file, obj, where, name, H5T_INTEGER, H5T_NATIVE_INT64, 0, v);
}

static int get_u64(const char *file, hid_t obj, const char *where, const char *name,
                   uint64_t *v, hssize_t n) {
    return attr_get(file, obj, where, name, H5T_INTEGER, H5T_NATIVE_UINT64, n, v);
}

static int get_f64(const char *file, hid_t obj, const char *where, const char *name,
                   double *v) {
    return attr_get(file, obj, where, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, 0, v);
}

/* A string attribute (variable- or fixed-length) into buf[cap]. */
static int get_str(const char *file, hid_t obj, const char *where, const char *name,
                   char *buf, size_t cap) {
    char what[256];
    if (H5Aexists(obj, name) <= 0)
        return err_set("%s: attribute '%s' of %s is missing", file, name, where);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    hid_t mt = -1;
    int rc = -1;
    if (t < 0 || sp < 0) {
        snprintf(what, sizeof what, "cannot open attribute '%s' of %s", name, where);
        ckpt_h5_fail(file, what);
    } else if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        err_set("%s: attribute '%s' of %s is not a string", file, name, where);
    } else if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        mt = H5Tcopy(t); /* same character set: HDF5 does not convert between them */
        if (mt < 0 || H5Aread(a, mt, &s) < 0) {
            snprintf(what, sizeof what, "cannot read attribute '%s' of %s", name, where);
            ckpt_h5_fail(file, what);
        } else {
            snprintf(buf, cap, "%s", s ? s : "");
            rc = 0;
        }
        if (s) H5free_memory(s);
    } else {
        size_t sz = H5Tget_size(t);
        char *s = calloc(sz + 1, 1);
        mt = H5Tcopy(t);
        if (!s || mt < 0 || H5Tset_size(mt, sz + 1) < 0 ||
            H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, s) < 0) {
            snprintf(what, sizeof what, "cannot read attribute '%s' of %s", name, where);
            ckpt_h5_fail(file, what);
        } else {
            snprintf(buf, cap, "%s", s);
            rc = 0;
        }
        free(s);
    }
    ckpt_h5_close(mt);
    ckpt_h5_close(sp);
    ckpt_h5_close(t);
    ckpt_h5_close(a);
    return rc;
}

/* Open `path` as a complete llmpi checkpoint: the file id, or -1 with the
 * reason (naming the file) in why. */
static hid_t ckpt_open(const char *path, char *why, size_t whylen) {
    struct stat st;
    ckpt_h5_quiet();
    if (stat(path, &st) != 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s: is not a regular file", path);
        return -1;
    }
    hid_t fapl = ckpt_h5_file_access();
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, fapl < 0 ? H5P_DEFAULT : fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (fid < 0) {
        char d[200];
        ckpt_h5_detail(d);
        snprintf(why, whylen, "%s: not a readable HDF5 file: corrupt or truncated%s%s%s",
                 path, d[0] ? " (HDF5: " : "", d, d[0] ? ")" : "");
        return -1;
    }
    char fmt[64] = "";
    int64_t version = 0, complete = 0;
    if (H5Aexists(fid, "format") <= 0 ||
        get_str(path, fid, "/", "format", fmt, sizeof fmt) ||
        strcmp(fmt, CKPT_FORMAT) != 0) {
        snprintf(why, whylen,
                 "%s: not an llmpi checkpoint (root attribute 'format' is not '%s')",
                 path, CKPT_FORMAT);
    } else if (get_i64(path, fid, "/", "format_version", &version)) {
        snprintf(why, whylen, "%s", err_msg());
    } else if (version != CKPT_VERSION) {
        snprintf(why, whylen,
                 "%s: format_version %lld is not supported (this build reads %d)", path,
                 (long long)version, CKPT_VERSION);
    } else if (H5Aexists(fid, "complete") <= 0 ||
               get_i64(path, fid, "/", "complete", &complete) || complete != 1) {
        snprintf(why, whylen,
                 "%s: incomplete checkpoint (root attribute 'complete' not set: the save "
                 "did not finish)",
                 path);
    } else {
        return fid;
    }
    H5Fclose(fid);
    return -1;
}

/* ckpt_open that records the reason with err_set (ckpt_h5.h). */
hid_t ckpt_h5_open_complete(const char *path) {
    char why[WHY_LEN];
    hid_t fid = ckpt_open(path, why, sizeof why);
    if (fid < 0) err_set("%s", why);
    return fid;
}

int ckpt_is_complete(const char *path) {
    char why[WHY_LEN];
    hid_t fid = ckpt_open(path, why, sizeof why);
    if (fid < 0) return 0;
    H5Fclose(fid);
    return 1;
}

int ckpt_h5_read_config(const char *path, hid_t fid, struct gpt2_config *cfg) {
    hid_t g = ckpt_h5_group_open(path, fid, "/config");
    if (g < 0) return -1;
    const char *names[5] = {"vocab_size", "max_seq", "n_layer", "n_head", "n_embd"};
    int *dst[5] = {&cfg->vocab_size, &cfg->max_seq, &cfg->n_layer, &cfg->n_head,
                   &cfg->n_embd};
    int rc = 0;
    for (int i = 0; i < 5 && !rc; i++) {
        int64_t v;
        rc = get_i64(path, g, "/config", names[i], &v);
        if (!rc && (v < 1 || v > INT_MAX))
            rc = err_set("%s: /config attribute '%s' is %lld, out of range", path,
                         names[i], (long long)v);
        if (!rc) *dst[i] = (int)v;
    }
    ckpt_h5_close(g);
    if (rc) return -1;
    if (model_config_check(cfg)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err_msg());
        return err_set("%s: /config: %s", path, msg);
    }
    return 0;
}

/* Dataset `name` (full path), checked against table tensor p (ckpt_h5.h). */
hid_t ckpt_h5_tensor_open(const char *file, hid_t fid, const char *name,
                          const struct param_info *p) {
    char what[256];
    if (H5Lexists(fid, name, H5P_DEFAULT) <= 0) {
        err_set("%s: dataset %s is missing", file, name);
        return -1;
    }
    hid_t d = H5Dopen2(fid, name, H5P_DEFAULT);
    hid_t t = d < 0 ? -1 : H5Dget_type(d);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK] = {0};
    int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    int ok = 0;
    if (t < 0 || rank < 0) {
        snprintf(what, sizeof what, "cannot open dataset %s", name);
        ckpt_h5_fail(file, what);
    } else if (H5Tget_class(t) != H5T_FLOAT) {
        err_set("%s: dataset %s is not floating point", file, name);
    } else if (rank != p->ndim || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 ||
               dims[0] != (hsize_t)p->shape[0] ||
               (p->ndim == 2 && dims[1] != (hsize_t)p->shape[1])) {
        char got[64] = "[", want[64];
        for (int i = 0; i < rank && i < 2; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? ", " : "",
                     (unsigned long long)dims[i]);
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s]",
                 rank > 2 ? ", ..." : "");
        if (p->ndim == 2)
            snprintf(want, sizeof want, "[%d, %d]", p->shape[0], p->shape[1]);
        else
            snprintf(want, sizeof want, "[%d]", p->shape[0]);
        err_set("%s: dataset %s has shape %s, expected %s", file, name, got, want);
    } else {
        ok = 1;
    }
    ckpt_h5_close(sp);
    ckpt_h5_close(t);
    if (!ok) {
        ckpt_h5_close(d);
        return -1;
    }
    return d;
}

/* Dataset `name` (full path) of table tensor p into data, checking shape. */
static int get_tensor(const char *file, hid_t fid, const char *name,
                      const struct param_info *p, float *data) {
    hid_t d = ckpt_h5_tensor_open(file, fid, name, p);
    if (d < 0) return -1;
    int rc = 0;
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        char what[256];
        snprintf(what, sizeof what, "cannot read dataset %s", name);
        rc = ckpt_h5_fail(file, what);
    }
    ckpt_h5_close(d);
    return rc;
}

/* All tensors of the table under `group` into a new buffer. */
static float *read_tensors(const char *file, hid_t fid, const char *group,
                           const struct param_table *t) {
    float *buf = malloc((t->total ? t->total : 1) * sizeof(float));
    if (!buf) {
        err_set("%s: out of memory for %zu floats of %s", file, t->total, group);
        return NULL;
    }
    for (int i = 0; i < t->count; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s/%s", group, t->p[i].name);
        if (get_tensor(file, fid, name, &t->p[i], buf + t->p[i].offset)) {
            free(buf);
            return NULL;
        }
    }
    return buf;
}

/* Scalar fixed-length string dataset into a malloc'd NUL-terminated text. */
static int get_text(const char *file, hid_t fid, const char *name, char **text,
                    size_t *len) {
    char what[256];
    *text = NULL;
    if (H5Lexists(fid, name, H5P_DEFAULT) <= 0)
        return err_set("%s: dataset %s is missing", file, name);
    hid_t d = H5Dopen2(fid, name, H5P_DEFAULT);
    hid_t t = d < 0 ? -1 : H5Dget_type(d);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hid_t mt = -1;
    int rc = -1;
    if (t < 0 || sp < 0) {
        snprintf(what, sizeof what, "cannot open dataset %s", name);
        ckpt_h5_fail(file, what);
    } else if (H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) != 0 ||
               H5Sget_simple_extent_npoints(sp) != 1) {
        err_set("%s: dataset %s is not a fixed-length string", file, name);
    } else {
        size_t sz = H5Tget_size(t);
        char *s = calloc(sz + 1, 1);
        mt = H5Tcopy(t);
        if (!s) {
            err_set("%s: out of memory for %s", file, name);
        } else if (mt < 0 || H5Tset_size(mt, sz + 1) < 0 ||
                   H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
                   H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) < 0) {
            snprintf(what, sizeof what, "cannot read dataset %s", name);
            ckpt_h5_fail(file, what);
            free(s);
        } else {
            *text = s;
            *len = strlen(s);
            rc = 0;
        }
    }
    ckpt_h5_close(mt);
    ckpt_h5_close(sp);
    ckpt_h5_close(t);
    ckpt_h5_close(d);
    return rc;
}

struct tokenizer *ckpt_h5_read_tokenizer(const char *path, hid_t fid) {
    char kind[32];
    hid_t g = ckpt_h5_group_open(path, fid, "/tokenizer");
    if (g < 0) return NULL;
    int rc = get_str(path, g, "/tokenizer", "kind", kind, sizeof kind);
    ckpt_h5_close(g);
    if (rc) return NULL;
    if (!strcmp(kind, "bytes")) return tokenizer_bytes();
    if (strcmp(kind, "bpe") != 0) {
        err_set("%s: /tokenizer attribute 'kind' is '%s' (expected 'bytes' or 'bpe')",
                path, kind);
        return NULL;
    }
    char *vj = NULL, *mg = NULL;
    size_t vl = 0, ml = 0;
    struct tokenizer *tok = NULL;
    if (!get_text(path, fid, "/tokenizer/vocab.json", &vj, &vl) &&
        !get_text(path, fid, "/tokenizer/merges.txt", &mg, &ml)) {
        tok = tokenizer_load_strings(vj, vl, mg, ml);
        if (!tok) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", err_msg());
            err_set("%s: /tokenizer: %s", path, msg);
        }
    }
    free(vj);
    free(mg);
    return tok;
}

int ckpt_read_config(const char *path, struct gpt2_config *cfg) {
    hid_t fid = ckpt_h5_open_complete(path);
    if (fid < 0) return -1;
    int rc = ckpt_h5_read_config(path, fid, cfg);
    H5Fclose(fid);
    return rc;
}

int ckpt_load_model(const char *path, struct gpt2_config *cfg, float **params,
                    struct tokenizer **tok) {
    *params = NULL;
    if (tok) *tok = NULL;
    hid_t fid = ckpt_h5_open_complete(path);
    if (fid < 0) return -1;
    struct param_table t = {0};
    int rc = -1;
    if (ckpt_h5_read_config(path, fid, cfg) || param_table_build(cfg, &t)) goto out;
    *params = read_tensors(path, fid, "/params", &t);
    if (!*params) goto out;
    if (tok && !(*tok = ckpt_h5_read_tokenizer(path, fid))) {
        free(*params);
        *params = NULL;
        goto out;
    }
    rc = 0;
out:
    param_table_free(&t);
    H5Fclose(fid);
    return rc;
}

/* The training state; the moments too when t is non-NULL (ckpt_h5.h). */
int ckpt_h5_read_train(const char *f, hid_t fid, const struct param_table *t,
                       struct ckpt_train_state *s) {
    if (H5Lexists(fid, "/train", H5P_DEFAULT) <= 0)
        return err_set("%s: no training state (group /train is missing: a model-only "
                       "checkpoint)",
                       f);
    hid_t g = ckpt_h5_group_open(f, fid, "/train");
    if (g < 0) return -1;
    const char *w = "/train";
    struct ckpt_hparams *h = &s->hp;
    int rc = get_i64(f, g, w, "step", &s->step) ||
             get_i64(f, g, w, "total_steps", &s->total_steps) ||
             get_u64(f, g, w, "seed", &s->seed, 0) ||
             get_u64(f, g, w, "rng", s->rng, 4) ||
             get_u64(f, g, w, "data_cursor", &s->data_cursor, 0) ||
             get_u64(f, g, w, "data_train_tokens", &s->data_train_tokens, 0) ||
             get_f64(f, g, w, "lr", &h->lr) ||
             get_f64(f, g, w, "min_lr_frac", &h->min_lr_frac) ||
             get_i64(f, g, w, "warmup", &h->warmup) ||
             get_f64(f, g, w, "weight_decay", &h->weight_decay) ||
             get_f64(f, g, w, "momentum", &h->momentum) ||
             get_f64(f, g, w, "beta1", &h->beta1) ||
             get_f64(f, g, w, "beta2", &h->beta2) || get_f64(f, g, w, "eps", &h->eps) ||
             get_f64(f, g, w, "grad_clip", &h->grad_clip) ||
             get_i64(f, g, w, "batch", &h->batch) || get_i64(f, g, w, "seq", &h->seq) ||
             get_f64(f, g, w, "val_fraction", &h->val_fraction) ||
             get_i64(f, g, w, "eval_every", &h->eval_every) ||
             get_i64(f, g, w, "eval_batches", &h->eval_batches);
    ckpt_h5_close(g);
    if (rc) return -1;
    if (s->step < 0 || s->total_steps < 1 || s->step > s->total_steps)
        return err_set(
            "%s: /train attributes step %lld and total_steps %lld are inconsistent", f,
            (long long)s->step, (long long)s->total_steps);
    g = ckpt_h5_group_open(f, fid, "/optimizer");
    if (g < 0) return -1;
    rc = get_str(f, g, "/optimizer", "kind", s->optimizer, sizeof s->optimizer) ||
         get_i64(f, g, "/optimizer", "t", &s->optim_t);
    ckpt_h5_close(g);
    if (rc) return -1;
    if (!ckpt_optimizer_known(s->optimizer))
        return err_set(
            "%s: /optimizer attribute 'kind' is '%s' (expected sgd, adam or adamw)", f,
            s->optimizer);
    if (s->optim_t < 0 || s->optim_t > INT_MAX)
        return err_set("%s: /optimizer attribute 't' is %lld, out of range", f,
                       (long long)s->optim_t);
    if (!t) return 0;
    if (!(s->m_state = read_tensors(f, fid, "/optimizer/m", t))) return -1;
    if (strcmp(s->optimizer, "sgd") &&
        !(s->v_state = read_tensors(f, fid, "/optimizer/v", t)))
        return -1;
    return 0;
}

int ckpt_load_train(const char *path, const struct gpt2_config *cfg,
                    struct ckpt_train_state *train) {
    memset(train, 0, sizeof *train);
    hid_t fid = ckpt_h5_open_complete(path);
    if (fid < 0) return -1;
    struct param_table t = {0};
    int rc = param_table_build(cfg, &t);
    if (!rc) rc = ckpt_h5_read_train(path, fid, &t, train);
    if (rc) ckpt_train_state_free(train);
    param_table_free(&t);
    H5Fclose(fid);
    return rc ? -1 : 0;
}

void ckpt_train_state_free(struct ckpt_train_state *train) {
    free(train->m_state);
    free(train->v_state);
    train->m_state = train->v_state = NULL;
}
