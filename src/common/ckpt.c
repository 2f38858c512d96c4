/* src/common/ckpt.c — HDF5 checkpoints: atomic save, checked load, and the
 * checkpoint directory (latest, prune). Layout: docs/checkpoints.md.
 *
 * Why it looks the way it does:
 *  - One dataset per parameter at its full logical shape, named by the
 *    parameter table (/params/<name>, contiguous layout): a later parallel
 *    HDF5 build only changes each write/read into a per-rank hyperslab.
 *  - Atomicity comes from the file system, not from HDF5: the file is built
 *    as DIR/.NAME.tmp, closed, fsync'd, renamed over NAME, and the directory
 *    is fsync'd. A crash leaves at worst a stale .tmp (ignored, and pruned);
 *    the previous checkpoints are never opened for writing. The root
 *    "complete" attribute is written last so a file copied or produced by
 *    other means without finishing is still recognised as incomplete.
 *  - HDF5 prints its error stack by default; we switch that off and turn the
 *    innermost HDF5 message into our own error naming the file and field.
 *  - HDF5's file locking is off (when the library has the switch): the
 *    rename protocol already keeps readers off files in progress, and flock
 *    fails on some cluster file systems (NFS, Lustre mounts without it).
 *  - Strings: attributes are variable-length UTF-8 (h5py returns str), the
 *    tokenizer texts fixed-length scalar datasets (h5py returns bytes; no
 *    vlen heap for megabytes of text).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "err.h"

#define CKPT_FORMAT "llmpi-checkpoint"
#define CKPT_VERSION 1
#define WHY_LEN 1024

/* ---- HDF5 error handling ------------------------------------------------ */

static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data) {
    if (n == 0 && e->desc) snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

/* The innermost message of the current HDF5 error stack ("" if none). */
static const char *h5_detail(char buf[200]) {
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, buf);
    return buf;
}

/* err_set("FILE: WHAT (HDF5 detail)") */
static int h5_fail(const char *file, const char *what) {
    char d[200];
    h5_detail(d);
    if (d[0]) return err_set("%s: %s (%s)", file, what, d);
    return err_set("%s: %s", file, what);
}

static void close_id(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE:
        H5Fclose(id);
        break;
    case H5I_GROUP:
        H5Gclose(id);
        break;
    case H5I_DATASET:
        H5Dclose(id);
        break;
    case H5I_DATASPACE:
        H5Sclose(id);
        break;
    case H5I_DATATYPE:
        H5Tclose(id);
        break;
    case H5I_ATTR:
        H5Aclose(id);
        break;
    default:
        break;
    }
}

/* File access properties: default driver, no file locking (see the top). */
static hid_t file_access(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    if (fapl >= 0) H5Pset_file_locking(fapl, 0, 1);
#endif
    return fapl;
}

/* ---- writing -------------------------------------------------------------- */

/* Attribute `name` on obj: n values (n == 0: a scalar). */
static int attr_put(const char *file, hid_t obj, const char *where, const char *name,
                    hid_t ftype, hid_t mtype, hsize_t n, const void *buf) {
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Awrite(a, mtype, buf) < 0) {
        char what[256];
        snprintf(what, sizeof what, "cannot write attribute '%s' of %s", name, where);
        rc = h5_fail(file, what);
    }
    close_id(a);
    close_id(sp);
    return rc;
}

static int put_i64(const char *file, hid_t obj, const char *where, const char *name,
                   int64_t v) {
    return attr_put(file, obj, where, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &v);
}

static int put_u64(const char *file, hid_t obj, const char *where, const char *name,
                   const uint64_t *v, hsize_t n) {
    return attr_put(file, obj, where, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, n, v);
}

static int put_f64(const char *file, hid_t obj, const char *where, const char *name,
                   double v) {
    return attr_put(file, obj, where, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v);
}

static int put_str(const char *file, hid_t obj, const char *where, const char *name,
                   const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        close_id(t);
        return h5_fail(file, "cannot make a string type");
    }
    int rc = attr_put(file, obj, where, name, t, t, 0, &s);
    close_id(t);
    return rc;
}

static hid_t group_new(const char *file, hid_t loc, const char *name) {
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        char what[256];
        snprintf(what, sizeof what, "cannot create group %s", name);
        h5_fail(file, what);
    }
    return g;
}

/* float32 dataset `name` (full path) of a table tensor. */
static int put_tensor(const char *file, hid_t fid, const char *name,
                      const struct param_info *p, const float *data) {
    hsize_t dims[2] = {(hsize_t)p->shape[0], (hsize_t)p->shape[1]};
    hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
    hid_t d = sp < 0 ? -1
                     : H5Dcreate2(fid, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                                  H5P_DEFAULT);
    int rc = 0;
    if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        char what[256];
        snprintf(what, sizeof what, "cannot write dataset %s", name);
        rc = h5_fail(file, what);
    }
    close_id(d);
    close_id(sp);
    return rc;
}

/* Scalar fixed-length string dataset holding text[0..len) (NUL-terminated
 * in the file; the texts never contain NUL). */
static int put_text(const char *file, hid_t loc, const char *name, const char *text,
                    size_t len) {
    hid_t t = H5Tcopy(H5T_C_S1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t d = -1;
    char *buf = malloc(len + 1);
    int rc = 0;
    if (!buf) {
        rc = err_set("%s: out of memory for %s", file, name);
        goto out;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (t < 0 || sp < 0 || H5Tset_size(t, len + 1) < 0 ||
        H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0 ||
        (d = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        char what[256];
        snprintf(what, sizeof what, "cannot write dataset /tokenizer/%s", name);
        rc = h5_fail(file, what);
    }
out:
    free(buf);
    close_id(d);
    close_id(sp);
    close_id(t);
    return rc;
}

static int write_config(const char *f, hid_t fid, const struct gpt2_config *cfg) {
    hid_t g = group_new(f, fid, "/config");
    if (g < 0) return -1;
    const char *w = "/config";
    int rc = put_i64(f, g, w, "vocab_size", cfg->vocab_size) ||
             put_i64(f, g, w, "max_seq", cfg->max_seq) ||
             put_i64(f, g, w, "n_layer", cfg->n_layer) ||
             put_i64(f, g, w, "n_head", cfg->n_head) ||
             put_i64(f, g, w, "n_embd", cfg->n_embd);
    close_id(g);
    return rc ? -1 : 0;
}

static int write_tokenizer(const char *f, hid_t fid, const struct tokenizer *tok) {
    char *vj = NULL, *mg = NULL;
    size_t vl = 0, ml = 0;
    if (tokenizer_to_strings(tok, &vj, &vl, &mg, &ml)) return -1;
    int bytes = tokenizer_is_bytes(tok), rc = -1;
    hid_t g = group_new(f, fid, "/tokenizer");
    if (g < 0) goto out;
    const char *w = "/tokenizer";
    if (put_str(f, g, w, "kind", bytes ? "bytes" : "bpe") ||
        put_i64(f, g, w, "vocab_size", tokenizer_vocab_size(tok)))
        goto out;
    if (!bytes) {
        if (!vj || !mg) {
            err_set("%s: the BPE tokenizer gave no vocab.json / merges.txt text", f);
            goto out;
        }
        if (put_text(f, g, "vocab.json", vj, vl) || put_text(f, g, "merges.txt", mg, ml))
            goto out;
    }
    rc = 0;
out:
    close_id(g);
    free(vj);
    free(mg);
    return rc;
}

/* /params, or /optimizer/m and /optimizer/v: one dataset per table entry. */
static int write_tensors(const char *f, hid_t fid, const char *group,
                         const struct param_table *t, const float *base) {
    hid_t g = group_new(f, fid, group);
    if (g < 0) return -1;
    close_id(g);
    for (int i = 0; i < t->count; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s/%s", group, t->p[i].name);
        if (put_tensor(f, fid, name, &t->p[i], base + t->p[i].offset)) return -1;
    }
    return 0;
}

static int write_train(const char *f, hid_t fid, const struct param_table *t,
                       const struct ckpt_train_state *s) {
    hid_t g = group_new(f, fid, "/train");
    if (g < 0) return -1;
    const char *w = "/train";
    const struct ckpt_hparams *h = &s->hp;
    int rc =
        put_i64(f, g, w, "step", s->step) ||
        put_i64(f, g, w, "total_steps", s->total_steps) ||
        put_u64(f, g, w, "seed", &s->seed, 0) || put_u64(f, g, w, "rng", s->rng, 4) ||
        put_u64(f, g, w, "data_cursor", &s->data_cursor, 0) ||
        put_u64(f, g, w, "data_train_tokens", &s->data_train_tokens, 0) ||
        put_f64(f, g, w, "lr", h->lr) ||
        put_f64(f, g, w, "min_lr_frac", h->min_lr_frac) ||
        put_i64(f, g, w, "warmup", h->warmup) ||
        put_f64(f, g, w, "weight_decay", h->weight_decay) ||
        put_f64(f, g, w, "momentum", h->momentum) ||
        put_f64(f, g, w, "beta1", h->beta1) || put_f64(f, g, w, "beta2", h->beta2) ||
        put_f64(f, g, w, "eps", h->eps) || put_f64(f, g, w, "grad_clip", h->grad_clip) ||
        put_i64(f, g, w, "batch", h->batch) || put_i64(f, g, w, "seq", h->seq) ||
        put_f64(f, g, w, "val_fraction", h->val_fraction) ||
        put_i64(f, g, w, "eval_every", h->eval_every) ||
        put_i64(f, g, w, "eval_batches", h->eval_batches);
    close_id(g);
    if (rc) return -1;
    g = group_new(f, fid, "/optimizer");
    if (g < 0) return -1;
    rc = put_str(f, g, "/optimizer", "kind", s->optimizer) ||
         put_i64(f, g, "/optimizer", "t", s->optim_t);
    close_id(g);
    if (rc || write_tensors(f, fid, "/optimizer/m", t, s->m_state)) return -1;
    if (s->v_state && write_tensors(f, fid, "/optimizer/v", t, s->v_state)) return -1;
    return 0;
}

static int optimizer_known(const char *k) {
    return !strcmp(k, "sgd") || !strcmp(k, "adam") || !strcmp(k, "adamw");
}

/* fsync a file or directory by path. */
static int fsync_path(const char *path, int dir) {
    int fd = open(path, O_RDONLY | (dir ? O_DIRECTORY : 0));
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ckpt_save(const char *path, const struct gpt2_config *cfg, const float *params,
              const struct tokenizer *tok, const struct ckpt_train_state *train) {
    h5_quiet();
    if (!params || !tok)
        return err_set("%s: no %s to save", path, params ? "tokenizer" : "parameters");
    if (model_config_check(cfg)) return -1;
    if (train) {
        if (!optimizer_known(train->optimizer))
            return err_set("%s: unknown optimizer '%.16s' in the training state", path,
                           train->optimizer);
        if (!train->m_state || (strcmp(train->optimizer, "sgd") && !train->v_state))
            return err_set("%s: optimizer state buffers missing", path);
    }
    /* DIR/.NAME.tmp and DIR */
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    if (!*base) return err_set("%s: not a file name", path);
    char *tmp = malloc(n + 8), *dir = malloc(dlen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return err_set("out of memory");
    }
    if (slash) {
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
        if (dlen == 0) strcpy(dir, "/");
    } else {
        strcpy(dir, ".");
    }
    snprintf(tmp, n + 8, "%.*s.%s.tmp", (int)(base - path), path, base);

    struct param_table t = {0};
    hid_t fid = -1;
    int rc = -1, created = 0;
    if (param_table_build(cfg, &t)) goto out;
    hid_t fapl = file_access();
    fid = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl < 0 ? H5P_DEFAULT : fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (fid < 0) {
        h5_fail(tmp, "cannot create the temporary checkpoint file");
        goto out;
    }
    created = 1;
    const int64_t version = CKPT_VERSION;
    if (put_str(tmp, fid, "/", "format", CKPT_FORMAT) ||
        put_i64(tmp, fid, "/", "format_version", version) ||
        write_config(tmp, fid, cfg) || write_tokenizer(tmp, fid, tok) ||
        write_tensors(tmp, fid, "/params", &t, params) ||
        (train && write_train(tmp, fid, &t, train)) ||
        put_i64(tmp, fid, "/", "complete", 1))
        goto out;
    if (H5Fflush(fid, H5F_SCOPE_GLOBAL) < 0) {
        h5_fail(tmp, "flush failed");
        goto out;
    }
    herr_t c = H5Fclose(fid);
    fid = -1;
    if (c < 0) {
        h5_fail(tmp, "close failed");
        goto out;
    }
    if (fsync_path(tmp, 0)) {
        err_set("%s: fsync failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path)) {
        err_set("cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto out;
    }
    created = 0;
    if (fsync_path(dir, 1)) {
        err_set("%s: fsync of the directory failed: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    close_id(fid);
    if (created) remove(tmp);
    param_table_free(&t);
    free(tmp);
    free(dir);
    return rc;
}

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
        h5_fail(file, what);
    } else if (H5Tget_class(t) != cls) {
        err_set("%s: attribute '%s' of %s has the wrong type (expected %s)", file, name,
                where, cls == H5T_FLOAT ? "a float" : "an integer");
    } else if (H5Sget_simple_extent_npoints(sp) != (n ? n : 1)) {
        err_set("%s: attribute '%s' of %s holds %lld values, expected %lld", file, name,
                where, (long long)H5Sget_simple_extent_npoints(sp),
                (long long)(n ? n : 1));
    } else if (H5Aread(a, mtype, buf) < 0) {
        snprintf(what, sizeof what, "cannot read attribute '%s' of %s", name, where);
        h5_fail(file, what);
    } else {
        rc = 0;
    }
    close_id(sp);
    close_id(t);
    close_id(a);
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
        h5_fail(file, what);
    } else if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        err_set("%s: attribute '%s' of %s is not a string", file, name, where);
    } else if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        mt = H5Tcopy(t); /* same character set: HDF5 does not convert between them */
        if (mt < 0 || H5Aread(a, mt, &s) < 0) {
            snprintf(what, sizeof what, "cannot read attribute '%s' of %s", name, where);
            h5_fail(file, what);
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
            h5_fail(file, what);
        } else {
            snprintf(buf, cap, "%s", s);
            rc = 0;
        }
        free(s);
    }
    close_id(mt);
    close_id(sp);
    close_id(t);
    close_id(a);
    return rc;
}

static hid_t group_open(const char *file, hid_t fid, const char *name) {
    if (H5Lexists(fid, name, H5P_DEFAULT) <= 0) {
        err_set("%s: group %s is missing", file, name);
        return -1;
    }
    hid_t g = H5Gopen2(fid, name, H5P_DEFAULT);
    if (g < 0) {
        char what[256];
        snprintf(what, sizeof what, "cannot open group %s", name);
        h5_fail(file, what);
    }
    return g;
}

/* Open `path` as a complete llmpi checkpoint: the file id, or -1 with the
 * reason (naming the file) in why. */
static hid_t ckpt_open(const char *path, char *why, size_t whylen) {
    struct stat st;
    h5_quiet();
    if (stat(path, &st) != 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s: is not a regular file", path);
        return -1;
    }
    hid_t fapl = file_access();
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, fapl < 0 ? H5P_DEFAULT : fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (fid < 0) {
        char d[200];
        h5_detail(d);
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

/* ckpt_open that records the reason with err_set. */
static hid_t ckpt_open_err(const char *path) {
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

static int read_config(const char *path, hid_t fid, struct gpt2_config *cfg) {
    hid_t g = group_open(path, fid, "/config");
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
    close_id(g);
    if (rc) return -1;
    if (model_config_check(cfg)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err_msg());
        return err_set("%s: /config: %s", path, msg);
    }
    return 0;
}

/* Dataset `name` (full path) of table tensor p into data, checking shape. */
static int get_tensor(const char *file, hid_t fid, const char *name,
                      const struct param_info *p, float *data) {
    char what[256];
    if (H5Lexists(fid, name, H5P_DEFAULT) <= 0)
        return err_set("%s: dataset %s is missing", file, name);
    hid_t d = H5Dopen2(fid, name, H5P_DEFAULT);
    hid_t t = d < 0 ? -1 : H5Dget_type(d);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK] = {0};
    int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    int rc = -1;
    if (t < 0 || rank < 0) {
        snprintf(what, sizeof what, "cannot open dataset %s", name);
        h5_fail(file, what);
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
    } else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        snprintf(what, sizeof what, "cannot read dataset %s", name);
        h5_fail(file, what);
    } else {
        rc = 0;
    }
    close_id(sp);
    close_id(t);
    close_id(d);
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
        h5_fail(file, what);
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
            h5_fail(file, what);
            free(s);
        } else {
            *text = s;
            *len = strlen(s);
            rc = 0;
        }
    }
    close_id(mt);
    close_id(sp);
    close_id(t);
    close_id(d);
    return rc;
}

static struct tokenizer *read_tokenizer(const char *path, hid_t fid) {
    char kind[32];
    hid_t g = group_open(path, fid, "/tokenizer");
    if (g < 0) return NULL;
    int rc = get_str(path, g, "/tokenizer", "kind", kind, sizeof kind);
    close_id(g);
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
    hid_t fid = ckpt_open_err(path);
    if (fid < 0) return -1;
    int rc = read_config(path, fid, cfg);
    H5Fclose(fid);
    return rc;
}

int ckpt_load_model(const char *path, struct gpt2_config *cfg, float **params,
                    struct tokenizer **tok) {
    *params = NULL;
    if (tok) *tok = NULL;
    hid_t fid = ckpt_open_err(path);
    if (fid < 0) return -1;
    struct param_table t = {0};
    int rc = -1;
    if (read_config(path, fid, cfg) || param_table_build(cfg, &t)) goto out;
    *params = read_tensors(path, fid, "/params", &t);
    if (!*params) goto out;
    if (tok && !(*tok = read_tokenizer(path, fid))) {
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

static int read_train(const char *f, hid_t fid, const struct param_table *t,
                      struct ckpt_train_state *s) {
    if (H5Lexists(fid, "/train", H5P_DEFAULT) <= 0)
        return err_set("%s: no training state (group /train is missing: a model-only "
                       "checkpoint)",
                       f);
    hid_t g = group_open(f, fid, "/train");
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
    close_id(g);
    if (rc) return -1;
    if (s->step < 0 || s->total_steps < 1 || s->step > s->total_steps)
        return err_set(
            "%s: /train attributes step %lld and total_steps %lld are inconsistent", f,
            (long long)s->step, (long long)s->total_steps);
    g = group_open(f, fid, "/optimizer");
    if (g < 0) return -1;
    rc = get_str(f, g, "/optimizer", "kind", s->optimizer, sizeof s->optimizer) ||
         get_i64(f, g, "/optimizer", "t", &s->optim_t);
    close_id(g);
    if (rc) return -1;
    if (!optimizer_known(s->optimizer))
        return err_set(
            "%s: /optimizer attribute 'kind' is '%s' (expected sgd, adam or adamw)", f,
            s->optimizer);
    if (s->optim_t < 0 || s->optim_t > INT_MAX)
        return err_set("%s: /optimizer attribute 't' is %lld, out of range", f,
                       (long long)s->optim_t);
    if (!(s->m_state = read_tensors(f, fid, "/optimizer/m", t))) return -1;
    if (strcmp(s->optimizer, "sgd") &&
        !(s->v_state = read_tensors(f, fid, "/optimizer/v", t)))
        return -1;
    return 0;
}

int ckpt_load_train(const char *path, const struct gpt2_config *cfg,
                    struct ckpt_train_state *train) {
    memset(train, 0, sizeof *train);
    hid_t fid = ckpt_open_err(path);
    if (fid < 0) return -1;
    struct param_table t = {0};
    int rc = param_table_build(cfg, &t);
    if (!rc) rc = read_train(path, fid, &t, train);
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
