/* src/common/backend.h — choosing the op backend from --device. */
#ifndef LLMPI_BACKEND_H
#define LLMPI_BACKEND_H

#include <stddef.h>

#include "ops.h"
#include "peak_flops.h"

/* "cpu", "cuda" or "auto" (CUDA when this build has it and a GPU is present,
 * else CPU with a one-line notice on stderr). NULL + err_set when the named
 * device is unavailable. A single process: GPU 0 (or whichever
 * CUDA_VISIBLE_DEVICES shows first). */
const struct ops *backend_select(const char *device);

/* The same for the rank that is local_rank-th on its node (topo.h): with
 * CUDA the process first binds to GPU local_rank % (GPUs it can see), so
 * the ranks of a node spread over its GPUs, sharing them round-robin when
 * there are more ranks than GPUs. Must come before any other CUDA work of
 * the process. *gpu (may be NULL) receives the GPU bound, -1 on the CPU.
 * The "auto" notice is printed by local rank 0 only. */
const struct ops *backend_select_rank(const char *device, int local_rank, int *gpu);

/* The peak FLOP/s in dtype dt of the device `ops` runs on (peak_flops.h),
 * and the device's name into name[0..cap) (cap may be 0); 0 on the CPU or
 * for a GPU whose peak is not known: then no MFU is reported. */
struct comm;
/* Make group c carry ops' buffers: on the CUDA backend, attach NCCL on the
 * backend's stream (comm_nccl_attach; collective over c); nothing to do on
 * the CPU, whose host buffers MPI moves. 0, or -1 + err_set. */
int backend_attach_comm(const struct ops *ops, struct comm *c);

double backend_peak_flops(const struct ops *ops, enum peak_dtype dt, char *name, size_t cap);

/* --dtype fp32|bf16: the precision of the matmuls' operands (ops.h,
 * set_matmul_dtype). Parse: 0, or -1 + err_set naming the flag and value. */
int backend_dtype_parse(const char *value, enum ops_dtype *dt);
/* "fp32" / "bf16". */
const char *backend_dtype_name(enum ops_dtype dt);
/* Put ops' matmuls in dt (the whole backend, for the rest of the process):
 * 0, or -1 + err_set when this backend or device cannot. */
int backend_set_dtype(const struct ops *ops, enum ops_dtype dt);

#endif
