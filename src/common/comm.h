/* src/common/comm.h — collectives over a group of ranks, one interface.
 *
 * What: a `struct comm` wraps one MPI communicator (a TP group, a DP group,
 * the world) and offers allreduce (sum, avg, max, min), allgather,
 * reduce-scatter (equal blocks), broadcast and barrier for float32, float64,
 * int32 and int64 buffers.
 *
 * Why: training code says "average these gradients over my DP group" and
 * does not care how. Host buffers go through MPI. Once NCCL is attached to a
 * group (comm_nccl_attach, on a CUDA run), device buffers given to the same
 * calls go through NCCL on the GPU, never staged through the host
 * (comm_nccl.c: streams, and how a dead peer becomes an error, not a hang). The communicator is owned and set to MPI_ERRORS_RETURN, so an MPI
 * failure comes back as -1 with an err_set() message naming the group, the
 * operation and the rank, like every other library error (the program's edge
 * decides to abort: see dist.h).
 *
 * All calls are collective over the group: every member calls them in the
 * same order with the same count, type, op and root, or the job hangs (MPI's
 * rule). Argument checks that fail (bad root, avg of integers) fail on every
 * rank alike, before any communication.
 */
#ifndef LLMPI_COMM_H
#define LLMPI_COMM_H

#include <stddef.h>

#include <mpi.h>

enum comm_backend {
    COMM_BACKEND_MPI = 0,  /* host buffers only, MPI collectives */
    COMM_BACKEND_NCCL = 1, /* also device buffers, through NCCL (attached) */
};

struct comm_nccl; /* comm_nccl.c */

enum comm_dtype { COMM_F32, COMM_F64, COMM_I32, COMM_I64 };

/* COMM_AVG is the sum divided by the group size (float types only). */
enum comm_op { COMM_SUM, COMM_AVG, COMM_MAX, COMM_MIN };

struct comm {
    MPI_Comm mpi; /* owned; MPI_COMM_NULL when closed */
    enum comm_backend backend;
    int rank, size;   /* this rank's place in the group, group size */
    int world_rank;   /* rank in MPI_COMM_WORLD, for messages */
    size_t max_count; /* most elements per MPI call (INT_MAX); allreduce
                         and broadcast split larger buffers. Tests lower
                         it to exercise the split. */
    char name[16];    /* "tp", "dp", "world", ...: for messages */
    struct comm_nccl *nccl; /* NULL: MPI only */
};

/* A new group with the members of `parent` (MPI_Comm_dup; collective over
 * parent). -1 + err_set on failure. */
int comm_dup(struct comm *c, MPI_Comm parent, const char *name);

/* Take ownership of `mpi` (e.g. from MPI_Comm_split): sets MPI_ERRORS_RETURN
 * and caches rank and size. comm_close frees it. */
int comm_adopt(struct comm *c, MPI_Comm mpi, const char *name);

/* Give the group an NCCL communicator for device buffers (collective over
 * the group; each member already bound to its GPU). cuda_stream is the CUDA
 * backend's stream (backend_cuda_stream): collectives are ordered on it with
 * the kernels. Afterwards every call below takes device buffers too (found
 * by cudaPointerGetAttributes) and sends them through NCCL; host buffers
 * still go through MPI. Idempotent. -1 + err_set when NCCL is not built in
 * or fails to start (the same on every member when rank 0's id fails). */
int comm_nccl_attach(struct comm *c, void *cuda_stream);

/* Free the communicator (collective); safe on a closed or zeroed comm. */
void comm_close(struct comm *c);

/* In place: buf[0..n) becomes the reduction over the group. */
int comm_allreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                   enum comm_op op);

/* recv[r*n .. r*n+n) = rank r's send[0..n), for every rank r of the group.
 * send == NULL: in place (this rank's block is already in recv). */
int comm_allgather(const struct comm *c, const void *send, void *recv, size_t n,
                   enum comm_dtype t);

/* send holds size*n elements in size blocks; recv[0..n) becomes the reduction
 * over the group of block `rank` (this rank's block). op: any. */
int comm_reduce_scatter(const struct comm *c, const void *send, void *recv, size_t n,
                        enum comm_dtype t, enum comm_op op);

/* buf[0..n) of group rank `root` is copied to every rank. */
int comm_broadcast(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                   int root);

int comm_barrier(const struct comm *c);

/* A nonblocking allreduce in flight (comm_iallreduce .. comm_wait). */
struct comm_request {
    MPI_Request mpi; /* MPI_REQUEST_NULL when idle or complete */
    const struct comm *c;
    void *buf;
    size_t n;
    enum comm_dtype t;
    enum comm_op op;
    int done; /* completed (and, for avg, divided) */
    void *nccl_done; /* NCCL requests: the cudaEvent_t that marks completion */
};

/* Start an in-place allreduce of buf[0..n) (MPI_Iallreduce) and return at
 * once; the buffer must not be touched until comm_wait. Collective: every
 * member starts its nonblocking collectives on a comm in the same order.
 * For overlap with computation (DP gradient buckets). One MPI call, so n
 * must not exceed c->max_count (an error otherwise, on every rank alike). */
int comm_iallreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                    enum comm_op op, struct comm_request *req);

/* Drive progress: *done = 1 when the request has completed (then as after
 * comm_wait). MPI makes progress only inside MPI calls unless it has a
 * progress thread, so calling this now and then during computation is what
 * moves the data. */
int comm_test(struct comm_request *req, int *done);

/* Block until the request completes; for avg, divide by the group size.
 * Safe on a completed or never-started (zeroed) request. */
int comm_wait(struct comm_request *req);

/* Turn an MPI return code into err_set("comm NAME: WHAT failed on world rank
 * R (group rank r of n): MPI message"); returns 0 for MPI_SUCCESS, else -1.
 * Other modules that call MPI on a comm (MPI-IO, bench) use it too. */
int comm_mpi_error(const struct comm *c, int mpi_rc, const char *what);

size_t comm_dtype_size(enum comm_dtype t);
const char *comm_dtype_name(enum comm_dtype t);
const char *comm_op_name(enum comm_op op);

#endif
