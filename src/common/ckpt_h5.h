/* src/common/ckpt_h5.h — INTERNAL to the checkpoint module (ckpt_h5.c,
 * ckpt_write.c, ckpt_read.c). Nothing outside those files includes it; the
 * public interface is ckpt.h.
 *
 * What the writer and the reader share: the format's name and version, HDF5
 * error quieting and reporting, id closing, the file-access property list,
 * group create/open, and the list of known optimizers. The names carry a
 * ckpt_ prefix because they are no longer static to one file.
 */
#ifndef LLMPI_CKPT_H5_H
#define LLMPI_CKPT_H5_H

#include <hdf5.h>

/* The root attributes 'format' and 'format_version' of every checkpoint. */
#define CKPT_FORMAT "llmpi-checkpoint"
#define CKPT_VERSION 1

/* Switch off HDF5's default printing of its error stack (we report errors
 * ourselves through err_set). */
void ckpt_h5_quiet(void);

/* The innermost message of the current HDF5 error stack ("" if none). */
const char *ckpt_h5_detail(char buf[200]);

/* err_set("FILE: WHAT (HDF5 detail)"); returns -1. */
int ckpt_h5_fail(const char *file, const char *what);

/* Close any HDF5 id by its type; ids < 0 are ignored. */
void ckpt_h5_close(hid_t id);

/* File access properties: default driver, no file locking (see ckpt_h5.c).
 * -1 on failure (callers then use H5P_DEFAULT). */
hid_t ckpt_h5_file_access(void);

/* Create / open group `name` under loc; -1 with err_set naming the file. */
hid_t ckpt_h5_group_new(const char *file, hid_t loc, const char *name);
hid_t ckpt_h5_group_open(const char *file, hid_t fid, const char *name);

/* 1 for the optimizer kinds a checkpoint may hold: sgd, adam, adamw. */
int ckpt_optimizer_known(const char *k);

#endif
