/* kernels/cuda/ops_cuda.h — the CUDA backend of `struct ops` (kernels/ops.h).
 *
 * ops_cuda() returns the table, or NULL when no CUDA device can be used
 * (cudaGetDeviceCount fails or reports 0, or the stream / cuBLAS handle
 * cannot be created). The first call creates the backend's one stream and one
 * cuBLAS handle; every op is queued on that stream. All pointers passed to the
 * ops are device pointers obtained from the table's alloc.
 *
 * Errors: the backend never exits. The first CUDA / cuBLAS error is recorded
 * and cuda_last_error() returns its text (NULL while none has occurred); later
 * errors are ignored so the root cause is what gets reported. Since work is
 * asynchronous, an error in a kernel may only be seen at the next sync,
 * download or sumsq.
 */
#ifndef LLMPI_OPS_CUDA_H
#define LLMPI_OPS_CUDA_H

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

const struct ops *ops_cuda(void);
const char *cuda_last_error(void);
/* The backend's stream (a cudaStream_t), for work that must be ordered with
 * the ops, e.g. NCCL collectives (comm.h); NULL before ops_cuda(). */
void *cuda_stream_handle(void);

/* GPUs this process can see (0 when none, or when the driver fails). */
int cuda_device_count(void);
/* Make GPU dev this process's device: call before ops_cuda(), whose stream
 * and cuBLAS handle live on the device current at its first call. 0, or -1
 * (the driver refused; cuda_last_error() is not set, this is not an op
 * error). */
int cuda_bind_device(int dev);
/* The current device: its name (into name[0..cap)), compute capability,
 * SM count and peak clock in kHz (peak_flops.h). 0, or -1 when the driver
 * cannot say. */
int cuda_device_info(char *name, int cap, int *cc_major, int *cc_minor, int *sm_count,
                     int *clock_khz);

#ifdef __cplusplus
}
#endif

#endif
