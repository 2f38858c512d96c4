/* src/common/comm_nccl.h — the NCCL half of comm.h (internal to comm.c).
 *
 * comm.c routes a call here when its buffer is device memory and the comm has
 * NCCL attached (comm_nccl_attach, comm.h). Every function has the meaning of
 * its comm.h namesake, on device buffers, and returns 0 or -1 + err_set.
 * Builds without NCCL (LLMPI_HAVE_NCCL unset) get versions that report
 * "not built" and a comm_nccl_is_device() that always says host.
 */
#ifndef LLMPI_COMM_NCCL_H
#define LLMPI_COMM_NCCL_H

#include "comm.h"

/* 1 when buf is device (or managed) memory of the CUDA runtime, else 0. */
int comm_nccl_is_device(const void *buf);

void comm_nccl_detach(struct comm *c);

int comm_nccl_allreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                        enum comm_op op, const char *what);
int comm_nccl_allgather(const struct comm *c, const void *send, void *recv, size_t n,
                        enum comm_dtype t, const char *what);
int comm_nccl_reduce_scatter(const struct comm *c, const void *send, void *recv, size_t n,
                             enum comm_dtype t, enum comm_op op, const char *what);
int comm_nccl_broadcast(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                        int root, const char *what);
int comm_nccl_iallreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                         enum comm_op op, struct comm_request *req, const char *what);
int comm_nccl_test(struct comm_request *req, int *done);
int comm_nccl_wait(struct comm_request *req);

#endif
