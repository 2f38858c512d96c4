/* src/common/ckpt_h5.c — the HDF5 plumbing shared by the checkpoint writer
 * (ckpt_write.c) and reader (ckpt_read.c); declared in ckpt_h5.h.
 *
 * Why it looks the way it does:
 *  - HDF5 prints its error stack by default; we switch that off and turn the
 *    innermost HDF5 message into our own error naming the file and field.
 *  - HDF5's file locking is off (when the library has the switch): the
 *    rename protocol already keeps readers off files in progress, and flock
 *    fails on some cluster file systems (NFS, Lustre mounts without it).
 */
#include <stdio.h>
#include <string.h>

#include "ckpt_h5.h"
#include "err.h"

/* ---- HDF5 error handling ------------------------------------------------ */

void ckpt_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data) {
    if (n == 0 && e->desc) snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

/* The innermost message of the current HDF5 error stack ("" if none). */
const char *ckpt_h5_detail(char buf[200]) {
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, buf);
    return buf;
}

/* err_set("FILE: WHAT (HDF5 detail)") */
int ckpt_h5_fail(const char *file, const char *what) {
    char d[200];
    ckpt_h5_detail(d);
    if (d[0]) return err_set("%s: %s (%s)", file, what, d);
    return err_set("%s: %s", file, what);
}

void ckpt_h5_close(hid_t id) {
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
hid_t ckpt_h5_file_access(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    if (fapl >= 0) H5Pset_file_locking(fapl, 0, 1);
#endif
    return fapl;
}

/* ---- groups --------------------------------------------------------------- */

hid_t ckpt_h5_group_new(const char *file, hid_t loc, const char *name) {
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        char what[256];
        snprintf(what, sizeof what, "cannot create group %s", name);
        ckpt_h5_fail(file, what);
    }
    return g;
}

hid_t ckpt_h5_group_open(const char *file, hid_t fid, const char *name) {
    if (H5Lexists(fid, name, H5P_DEFAULT) <= 0) {
        err_set("%s: group %s is missing", file, name);
        return -1;
    }
    hid_t g = H5Gopen2(fid, name, H5P_DEFAULT);
    if (g < 0) {
        char what[256];
        snprintf(what, sizeof what, "cannot open group %s", name);
        ckpt_h5_fail(file, what);
    }
    return g;
}

/* ---- format --------------------------------------------------------------- */

int ckpt_optimizer_known(const char *k) {
    return !strcmp(k, "sgd") || !strcmp(k, "adam") || !strcmp(k, "adamw");
}

/* ---- tensor-parallel shards (ckpt_shard_write.c, ckpt_shard_read.c) ---- */

const char *const ckpt_cfg_field[5] = {"vocab_size", "max_seq", "n_layer", "n_head",
                                       "n_embd"};

/* Select map's slabs (OR-ed) on the full-shape file space fs of an ndim
 * dataset; the selection's size must be the local tensor's numel. */
int ckpt_h5_select_slabs(hid_t fs, const struct shard_map *m, int ndim, size_t numel) {
    size_t n = 0;
    for (int k = 0; k < m->nslabs; k++) {
        const struct shard_slab *s = &m->slab[k];
        hsize_t start[2] = {s->start[0], s->start[1]},
                count[2] = {s->count[0], s->count[1]};
        if (ndim == 1 && (s->start[1] != 0 || s->count[1] != 1)) return -1;
        if (H5Sselect_hyperslab(fs, k ? H5S_SELECT_OR : H5S_SELECT_SET, start, NULL,
                                count, NULL) < 0)
            return -1;
        n += s->count[0] * s->count[1];
    }
    hssize_t got = H5Sget_select_npoints(fs);
    return m->nslabs > 0 && n == numel && got >= 0 && (size_t)got == numel ? 0 : -1;
}

/* 1 when shard tables a and b describe the same local layout of the same
 * tensors (names, local shapes and offsets, slabs). */
int ckpt_shard_same(const struct shard_table *a, const struct shard_table *b,
                      int *bad) {
    *bad = -1;
    if (a->tp_size != b->tp_size || a->tp_rank != b->tp_rank ||
        a->local.count != b->local.count || a->local.total != b->local.total)
        return 0;
    for (int i = 0; i < a->local.count; i++) {
        const struct param_info *p = &a->local.p[i], *q = &b->local.p[i];
        const struct shard_map *m = &a->map[i], *n = &b->map[i];
        int same = !strcmp(p->name, q->name) && p->ndim == q->ndim &&
                   p->shape[0] == q->shape[0] && p->shape[1] == q->shape[1] &&
                   p->offset == q->offset && p->numel == q->numel && p->tp == q->tp &&
                   m->nslabs == n->nslabs;
        for (int k = 0; same && k < m->nslabs; k++)
            same = !memcmp(&m->slab[k], &n->slab[k], sizeof m->slab[k]);
        if (!same) {
            *bad = i;
            return 0;
        }
    }
    return 1;
}
