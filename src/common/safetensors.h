/* src/common/safetensors.h — reading and writing the safetensors format.
 *
 * Hugging Face's weight files: u64 little-endian header length N, N bytes of
 * JSON ({"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [begin,
 * end]}, ..., optional "__metadata__": {string: string}}), then the data
 * section, which the offsets index relative to its start. It is the one
 * format `llmpi convert` exchanges with `transformers`; it is kept apart
 * from the GPT-2 name mapping so that other tools (a future export, tests)
 * can use it.
 *
 * Reading validates the whole header before any data is touched: the header
 * length against the file size, the JSON, every entry's dtype, shape and
 * offsets (in range, byte size = numel * dtype size, the data section covered
 * exactly once with no holes or overlaps, as the format requires), duplicate
 * names and the metadata. Tensors are then read one at a time, so a large
 * file never needs two copies in memory. Every error names the file and,
 * where there is one, the tensor.
 *
 * Writing produces float32 tensors in name order, the header padded with
 * spaces to a multiple of 8 bytes (as the safetensors library does), written
 * to a temporary name and renamed into place.
 *
 * Data is little-endian on disk; like the rest of llmpi this assumes a
 * little-endian host (checked at run time).
 */
#ifndef LLMPI_SAFETENSORS_H
#define LLMPI_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ST_MAX_DIMS 8

struct st_tensor {
    char *name;
    char dtype[8]; /* as written: "F32", "F16", "BF16", "BOOL", ... */
    int elsize;    /* bytes per element */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    uint64_t begin, end; /* byte offsets into the data section */
};

struct st_file {
    char *path;
    FILE *fp;
    uint64_t data_start; /* 8 + header length */
    uint64_t data_size;
    int count;
    struct st_tensor *t; /* in header order */
    int nmeta;
    char **meta_key, **meta_val;
};

/* Open and validate `path`. On failure -1 with err_set() and *f is left
 * closed (st_close is still safe to call). */
int st_open(const char *path, struct st_file *f);
void st_close(struct st_file *f);

/* The tensor called `name`, or NULL. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);
/* A metadata value, or NULL. */
const char *st_meta(const struct st_file *f, const char *key);

/* Whether st_read_f32 can convert this tensor's dtype (F32, F16, BF16, F64). */
int st_is_float(const struct st_tensor *t);
/* Read a tensor as float32 into dst (t->numel floats). -1 + err_set for a
 * non-float dtype or a read error. */
int st_read_f32(struct st_file *f, const struct st_tensor *t, float *dst);
/* Read a tensor's bytes as stored (t->end - t->begin bytes). */
int st_read_raw(struct st_file *f, const struct st_tensor *t, void *dst);

/* A float32 tensor to write. With transpose set, a 2-D tensor is written
 * with shape {shape[0], shape[1]} from data laid out [shape[1], shape[0]]
 * (row-major), i.e. as the transpose of what data holds. */
struct st_out_tensor {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
    int transpose;
};

/* Write the tensors (F32, sorted by name) and `nmeta` metadata pairs
 * (meta[2i] = key, meta[2i+1] = value) to `path`, atomically: path.tmp,
 * flush + fsync, rename. Names must be distinct. */
int st_write(const char *path, const struct st_out_tensor *tensors, int n,
             const char *const *meta, int nmeta);

#endif
