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
