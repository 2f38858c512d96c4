/* src/common/ckpt_write.c — ckpt_save: build a checkpoint as a temporary
 * file and publish it atomically. Layout: docs/checkpoints.md.
 *
 * Why it looks the way it does:
 *  - One dataset per parameter at its full logical shape, named by the
 *    parameter table (/params/<name>, contiguous layout, storage allocated
 *    when the dataset is created and never filled): the parallel save
 *    (ckpt_shard_write.c) builds the same file with these stages, then writes
 *    each rank's hyperslabs into the allocated storage, which changes no
 *    metadata.
 *  - A save is a sequence of stages (ckpt_h5.h: names, checks, write the
 *    temporary file, mark it complete, publish) so the parallel save shares
 *    them instead of copying them.
 *  - Atomicity comes from the file system, not from HDF5: the file is built
 *    as DIR/.NAME.tmp, closed, fsync'd, renamed over NAME, and the directory
 *    is fsync'd. A crash leaves at worst a stale .tmp (ignored, and pruned);
 *    the previous checkpoints are never opened for writing. The root
 *    "complete" attribute is written last so a file copied or produced by
 *    other means without finishing is still recognised as incomplete.
 *  - Strings: attributes are variable-length UTF-8 (h5py returns str), the
 *    tokenizer texts fixed-length scalar datasets (h5py returns bytes; no
 *    vlen heap for megabytes of text).
 */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_h5.h"
#include "err.h"

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
        rc = ckpt_h5_fail(file, what);
    }
    ckpt_h5_close(a);
    ckpt_h5_close(sp);
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
        ckpt_h5_close(t);
        return ckpt_h5_fail(file, "cannot make a string type");
    }
    int rc = attr_put(file, obj, where, name, t, t, 0, &s);
    ckpt_h5_close(t);
    return rc;
}

/* float32 dataset `name` (full path) of a table tensor: contiguous, storage
 * allocated now and never filled (ckpt_h5.h, ckpt_write_tmp); data (when
 * non-NULL) written into it. */
static int put_tensor(const char *file, hid_t fid, const char *name,
                      const struct param_info *p, const float *data) {
    hsize_t dims[2] = {(hsize_t)p->shape[0], (hsize_t)p->shape[1]};
    hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    int rc = 0;
    if (sp < 0 || dcpl < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        (d = H5Dcreate2(fid, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) <
            0 ||
        (data &&
         H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)) {
        char what[256];
        snprintf(what, sizeof what, "cannot write dataset %s", name);
        rc = ckpt_h5_fail(file, what);
    }
    ckpt_h5_close(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    ckpt_h5_close(sp);
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
        rc = ckpt_h5_fail(file, what);
    }
out:
    free(buf);
    ckpt_h5_close(d);
    ckpt_h5_close(sp);
    ckpt_h5_close(t);
    return rc;
}

static int write_config(const char *f, hid_t fid, const struct gpt2_config *cfg) {
    hid_t g = ckpt_h5_group_new(f, fid, "/config");
    if (g < 0) return -1;
    const char *w = "/config";
    int rc = put_i64(f, g, w, "vocab_size", cfg->vocab_size) ||
             put_i64(f, g, w, "max_seq", cfg->max_seq) ||
             put_i64(f, g, w, "n_layer", cfg->n_layer) ||
             put_i64(f, g, w, "n_head", cfg->n_head) ||
             put_i64(f, g, w, "n_embd", cfg->n_embd);
    ckpt_h5_close(g);
    return rc ? -1 : 0;
}

static int write_tokenizer(const char *f, hid_t fid, const struct tokenizer *tok) {
    char *vj = NULL, *mg = NULL;
    size_t vl = 0, ml = 0;
    if (tokenizer_to_strings(tok, &vj, &vl, &mg, &ml)) return -1;
    int bytes = tokenizer_is_bytes(tok), rc = -1;
    hid_t g = ckpt_h5_group_new(f, fid, "/tokenizer");
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
    ckpt_h5_close(g);
    free(vj);
    free(mg);
    return rc;
}

/* /params, or /optimizer/m and /optimizer/v: one dataset per table entry
 * (base NULL: created, not written). */
static int write_tensors(const char *f, hid_t fid, const char *group,
                         const struct param_table *t, const float *base) {
    hid_t g = ckpt_h5_group_new(f, fid, group);
    if (g < 0) return -1;
    ckpt_h5_close(g);
    for (int i = 0; i < t->count; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s/%s", group, t->p[i].name);
        if (put_tensor(f, fid, name, &t->p[i], base ? base + t->p[i].offset : NULL))
            return -1;
    }
    return 0;
}

/* data = 0: the moment datasets are created, not written. */
static int write_train(const char *f, hid_t fid, const struct param_table *t,
                       const struct ckpt_train_state *s, int data) {
    hid_t g = ckpt_h5_group_new(f, fid, "/train");
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
    ckpt_h5_close(g);
    if (rc) return -1;
    g = ckpt_h5_group_new(f, fid, "/optimizer");
    if (g < 0) return -1;
    rc = put_str(f, g, "/optimizer", "kind", s->optimizer) ||
         put_i64(f, g, "/optimizer", "t", s->optim_t);
    ckpt_h5_close(g);
    if (rc || write_tensors(f, fid, "/optimizer/m", t, data ? s->m_state : NULL))
        return -1;
    if (s->v_state && write_tensors(f, fid, "/optimizer/v", t, data ? s->v_state : NULL))
        return -1;
    return 0;
}

/* fsync a file or directory by path. */
static int fsync_path(const char *path, int dir) {
    int fd = open(path, O_RDONLY | (dir ? O_DIRECTORY : 0));
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- the stages of a save (ckpt_h5.h) ------------------------------------- */

int ckpt_names_make(const char *path, struct ckpt_names *nm) {
    nm->tmp = nm->dir = NULL;
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    if (!*base) return err_set("%s: not a file name", path);
    nm->tmp = malloc(n + 8);
    nm->dir = malloc(dlen + 2);
    if (!nm->tmp || !nm->dir) {
        ckpt_names_free(nm);
        return err_set("out of memory");
    }
    if (slash) {
        memcpy(nm->dir, path, dlen);
        nm->dir[dlen] = '\0';
        if (dlen == 0) strcpy(nm->dir, "/");
    } else {
        strcpy(nm->dir, ".");
    }
    snprintf(nm->tmp, n + 8, "%.*s.%s.tmp", (int)(base - path), path, base);
    return 0;
}

void ckpt_names_free(struct ckpt_names *n) {
    free(n->tmp);
    free(n->dir);
    n->tmp = n->dir = NULL;
}

int ckpt_save_check(const char *path, const struct gpt2_config *cfg,
                    const struct tokenizer *tok, const struct ckpt_train_state *train) {
    if (!tok) return err_set("%s: no tokenizer to save", path);
    if (model_config_check(cfg)) return -1;
    if (train) {
        if (!ckpt_optimizer_known(train->optimizer))
            return err_set("%s: unknown optimizer '%.16s' in the training state", path,
                           train->optimizer);
        if (!train->m_state || (strcmp(train->optimizer, "sgd") && !train->v_state))
            return err_set("%s: optimizer state buffers missing", path);
    }
    return 0;
}

int ckpt_write_tmp(const char *path, const struct ckpt_names *n,
                   const struct gpt2_config *cfg, const float *params,
                   const struct tokenizer *tok, const struct ckpt_train_state *train,
                   int data, int complete) {
    const char *tmp = n->tmp;
    struct param_table t = {0};
    hid_t fid = -1;
    int rc = -1, created = 0;
    if (param_table_build(cfg, &t)) goto out;
    hid_t fapl = ckpt_h5_file_access();
    errno = 0;
    fid = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl < 0 ? H5P_DEFAULT : fapl);
    int create_errno = errno;
    if (fapl >= 0) H5Pclose(fapl);
    if (fid < 0) {
        /* HDF5's innermost message for a failed open(2) is often empty:
         * errno says what the file system said */
        char what[1024];
        snprintf(what, sizeof what, "cannot create the temporary checkpoint file %s%s%s",
                 tmp, create_errno ? ": " : "",
                 create_errno ? strerror(create_errno) : "");
        ckpt_h5_fail(path, what);
        goto out;
    }
    created = 1;
    const int64_t version = CKPT_VERSION;
    if (put_str(tmp, fid, "/", "format", CKPT_FORMAT) ||
        put_i64(tmp, fid, "/", "format_version", version) ||
        write_config(tmp, fid, cfg) || write_tokenizer(tmp, fid, tok) ||
        write_tensors(tmp, fid, "/params", &t, data ? params : NULL) ||
        (train && write_train(tmp, fid, &t, train, data)) ||
        (complete && put_i64(tmp, fid, "/", "complete", 1)))
        goto out;
    if (H5Fflush(fid, H5F_SCOPE_GLOBAL) < 0) {
        ckpt_h5_fail(tmp, "flush failed");
        goto out;
    }
    herr_t c = H5Fclose(fid);
    fid = -1;
    if (c < 0) {
        ckpt_h5_fail(tmp, "close failed");
        goto out;
    }
    rc = 0;
out:
    ckpt_h5_close(fid);
    if (rc && created) remove(tmp);
    param_table_free(&t);
    return rc;
}

int ckpt_mark_complete(const struct ckpt_names *n) {
    hid_t fapl = ckpt_h5_file_access();
    hid_t fid = H5Fopen(n->tmp, H5F_ACC_RDWR, fapl < 0 ? H5P_DEFAULT : fapl);
    if (fapl >= 0) H5Pclose(fapl);
    int rc = -1;
    if (fid < 0) {
        ckpt_h5_fail(n->tmp, "cannot reopen the temporary checkpoint file");
    } else if (!put_i64(n->tmp, fid, "/", "complete", 1)) {
        if (H5Fflush(fid, H5F_SCOPE_GLOBAL) < 0)
            ckpt_h5_fail(n->tmp, "flush failed");
        else
            rc = 0;
    }
    if (fid >= 0 && H5Fclose(fid) < 0 && rc == 0)
        rc = ckpt_h5_fail(n->tmp, "close failed");
    if (rc) remove(n->tmp);
    return rc;
}

int ckpt_publish(const char *path, const struct ckpt_names *n) {
    if (fsync_path(n->tmp, 0)) {
        err_set("%s: fsync failed: %s", n->tmp, strerror(errno));
        remove(n->tmp);
        return -1;
    }
    if (rename(n->tmp, path)) {
        err_set("cannot rename '%s' to '%s': %s", n->tmp, path, strerror(errno));
        remove(n->tmp);
        return -1;
    }
    if (fsync_path(n->dir, 1))
        return err_set("%s: fsync of the directory failed: %s", n->dir, strerror(errno));
    return 0;
}

/* ---- ckpt_save -------------------------------------------------------------- */

int ckpt_save(const char *path, const struct gpt2_config *cfg, const float *params,
              const struct tokenizer *tok, const struct ckpt_train_state *train) {
    ckpt_h5_quiet();
    if (!params) return err_set("%s: no parameters to save", path);
    if (ckpt_save_check(path, cfg, tok, train)) return -1;
    struct ckpt_names n;
    if (ckpt_names_make(path, &n)) return -1;
    int rc = ckpt_write_tmp(path, &n, cfg, params, tok, train, 1, 1);
    if (!rc) rc = ckpt_publish(path, &n);
    ckpt_names_free(&n);
    return rc;
}
