/* src/common/comm_nccl.c — NCCL collectives on device buffers (comm.h).
 *
 * Set-up (comm_nccl_attach): group rank 0 asks NCCL for a unique id and
 * broadcasts it over the group's MPI communicator; every member then joins
 * ncclCommInitRank on the GPU it is bound to. Each group (TP, DP) gets its
 * own NCCL communicator, so the id travels within the group only.
 *
 * Streams: blocking collectives are queued on the CUDA backend's one compute
 * stream, so they are ordered after the kernels that produced their buffers
 * and before the ones that read them, with no host round trip of the data.
 * Nonblocking allreduces (the DP gradient buckets) go on a side stream that
 * first waits for an event recorded on the compute stream; when the request
 * completes, the compute stream waits for it in turn. Backward therefore
 * keeps computing while earlier buckets travel.
 *
 * Never a hang: a peer that dies or stalls leaves NCCL's kernels spinning
 * on the GPU forever, and a host that then synchronises with the stream
 * would wait with them. So nothing here waits blindly: the host polls the
 * completion event, checks ncclCommGetAsyncError between polls, and gives up
 * after LLMPI_NCCL_TIMEOUT seconds (default 600) without completion. Either
 * failure aborts the communicator (ncclCommAbort frees the stream) and
 * returns -1 with a message naming the group, the call and the rank; the
 * program's edge then takes the whole job down (dist.h). The price: a
 * blocking collective also waits for the compute work queued before it (one
 * host synchronisation per TP collective).
 */
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm_nccl.h"
#include "err.h"

#ifdef LLMPI_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

struct comm_nccl {
    ncclComm_t nc;       /* NULL once aborted */
    cudaStream_t stream; /* the backend's compute stream (not owned) */
    cudaStream_t side;   /* nonblocking allreduces (owned) */
    cudaEvent_t done;    /* end of the last blocking collective */
    double timeout_s;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ncclDataType_t nccl_type(enum comm_dtype t) {
    switch (t) {
    case COMM_F32:
        return ncclFloat32;
    case COMM_F64:
        return ncclFloat64;
    case COMM_I32:
        return ncclInt32;
    case COMM_I64:
        return ncclInt64;
    }
    return ncclFloat32;
}

static ncclRedOp_t nccl_op(enum comm_op op) {
    switch (op) {
    case COMM_SUM:
        return ncclSum;
    case COMM_AVG:
        return ncclAvg;
    case COMM_MAX:
        return ncclMax;
    case COMM_MIN:
        return ncclMin;
    }
    return ncclSum;
}

static int fail(const struct comm *c, const char *what, const char *why) {
    return err_set("comm %s: NCCL %s failed on world rank %d (group rank %d of %d): %s",
                   c->name, what, c->world_rank, c->rank, c->size, why);
}

/* Abort the communicator (stops its kernels) and report. */
static int abort_comm(const struct comm *c, const char *what, const char *why) {
    struct comm_nccl *x = c->nccl;
    if (x->nc) ncclCommAbort(x->nc);
    x->nc = NULL;
    return err_set("comm %s: NCCL %s failed on world rank %d (group rank %d of %d): %s; "
                   "communicator aborted",
                   c->name, what, c->world_rank, c->rank, c->size, why);
}

/* One look at `ev`: *done = 1 once it has fired; -1 (communicator aborted)
 * when the event or the communicator reports an error. The one check both
 * watch() and comm_nccl_test() make. */
static int poll_once(const struct comm *c, cudaEvent_t ev, const char *what, int *done) {
    *done = 0;
    /* after an abort an event may fire over incomplete data: never trust it */
    if (!c->nccl->nc)
        return fail(c, what, "the communicator was aborted by an earlier error");
    cudaError_t e = cudaEventQuery(ev);
    if (e == cudaSuccess) {
        *done = 1;
        return 0;
    }
    if (e != cudaErrorNotReady) return abort_comm(c, what, cudaGetErrorString(e));
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(c->nccl->nc, &async);
    if (r != ncclSuccess) return abort_comm(c, what, ncclGetErrorString(r));
    if (async != ncclSuccess && async != ncclInProgress)
        return abort_comm(c, what, ncclGetErrorString(async));
    return 0;
}

/* Poll until `ev` completes, the communicator reports an error, or the
 * timeout passes. */
static int watch(const struct comm *c, cudaEvent_t ev, const char *what) {
    struct comm_nccl *x = c->nccl;
    double t0 = now_s();
    for (unsigned polls = 0;; polls++) {
        int done;
        if (poll_once(c, ev, what, &done)) return -1;
        if (done) return 0;
        if (now_s() - t0 > x->timeout_s) {
            char why[160];
            snprintf(why, sizeof why,
                     "not complete after %.0f s (LLMPI_NCCL_TIMEOUT): a peer rank died "
                     "or stalls",
                     x->timeout_s);
            return abort_comm(c, what, why);
        }
        /* spin briefly (collectives of a step take microseconds), then doze */
        if (polls < 256) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

/* The common tail of a blocking collective queued on the compute stream. */
static int finish(const struct comm *c, ncclResult_t r, const char *what) {
    if (r != ncclSuccess) return abort_comm(c, what, ncclGetErrorString(r));
    cudaError_t e = cudaEventRecord(c->nccl->done, c->nccl->stream);
    if (e != cudaSuccess) return abort_comm(c, what, cudaGetErrorString(e));
    return watch(c, c->nccl->done, what);
}

static int usable(const struct comm *c, const char *what) {
    if (!c->nccl->nc) return fail(c, what, "the communicator was aborted by an earlier error");
    return 0;
}

static double timeout_from_env(void) {
    const char *s = getenv("LLMPI_NCCL_TIMEOUT");
    if (s && *s) {
        char *end;
        double v = strtod(s, &end);
        if (*end == '\0' && v > 0) return v;
    }
    return 600.0;
}

int comm_nccl_attach(struct comm *c, void *cuda_stream) {
    if (c->nccl) return 0;
    if (c->mpi == MPI_COMM_NULL)
        return err_set("comm %s: NCCL attach on a closed communicator", c->name);
    /* rank 0's id (or its failure) reaches every member, so all fail alike */
    struct {
        int ok;
        ncclUniqueId id;
    } msg;
    memset(&msg, 0, sizeof msg);
    if (c->rank == 0) msg.ok = ncclGetUniqueId(&msg.id) == ncclSuccess;
    int rc = MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, 0, c->mpi);
    if (rc != MPI_SUCCESS) return comm_mpi_error(c, rc, "broadcast of the NCCL id");
    if (!msg.ok)
        return err_set("comm %s: ncclGetUniqueId failed on the group's rank 0", c->name);
    struct comm_nccl *x = calloc(1, sizeof *x);
    if (!x) return err_set("comm %s: out of memory", c->name);
    x->stream = (cudaStream_t)cuda_stream;
    x->timeout_s = timeout_from_env();
    cudaError_t e = cudaStreamCreateWithFlags(&x->side, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&x->done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        if (x->side) cudaStreamDestroy(x->side);
        free(x);
        return fail(c, "set-up", cudaGetErrorString(e));
    }
    ncclResult_t r = ncclCommInitRank(&x->nc, c->size, msg.id, c->rank);
    if (r != ncclSuccess) {
        cudaEventDestroy(x->done);
        cudaStreamDestroy(x->side);
        free(x);
        return fail(c, "ncclCommInitRank", ncclGetErrorString(r));
    }
    c->nccl = x;
    c->backend = COMM_BACKEND_NCCL;
    return 0;
}

void comm_nccl_detach(struct comm *c) {
    struct comm_nccl *x = c->nccl;
    if (!x) return;
    if (x->nc) ncclCommDestroy(x->nc);
    cudaEventDestroy(x->done);
    cudaStreamDestroy(x->side);
    free(x);
    c->nccl = NULL;
    c->backend = COMM_BACKEND_MPI;
}

int comm_nccl_is_device(const void *buf) {
    struct cudaPointerAttributes a;
    if (!buf || cudaPointerGetAttributes(&a, buf) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error of a failed query */
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

int comm_nccl_allreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                        enum comm_op op, const char *what) {
    if (usable(c, what)) return -1;
    if (n == 0) return 0;
    struct comm_nccl *x = c->nccl;
    return finish(c, ncclAllReduce(buf, buf, n, nccl_type(t), nccl_op(op), x->nc, x->stream),
                  what);
}

int comm_nccl_allgather(const struct comm *c, const void *send, void *recv, size_t n,
                        enum comm_dtype t, const char *what) {
    if (usable(c, what)) return -1;
    if (n == 0) return 0;
    struct comm_nccl *x = c->nccl;
    /* in place: NCCL's rule is sendbuff == recvbuff + rank * count */
    const void *from = send ? send : (const char *)recv + (size_t)c->rank * n * comm_dtype_size(t);
    return finish(c, ncclAllGather(from, recv, n, nccl_type(t), x->nc, x->stream), what);
}

int comm_nccl_reduce_scatter(const struct comm *c, const void *send, void *recv, size_t n,
                             enum comm_dtype t, enum comm_op op, const char *what) {
    if (usable(c, what)) return -1;
    if (n == 0) return 0;
    struct comm_nccl *x = c->nccl;
    return finish(c,
                  ncclReduceScatter(send, recv, n, nccl_type(t), nccl_op(op), x->nc, x->stream),
                  what);
}

int comm_nccl_broadcast(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                        int root, const char *what) {
    if (usable(c, what)) return -1;
    if (n == 0) return 0;
    struct comm_nccl *x = c->nccl;
    return finish(c, ncclBroadcast(buf, buf, n, nccl_type(t), root, x->nc, x->stream), what);
}

int comm_nccl_iallreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                         enum comm_op op, struct comm_request *req, const char *what) {
    if (usable(c, what)) return -1;
    if (n == 0) return 0;
    struct comm_nccl *x = c->nccl;
    cudaEvent_t ready = NULL, done = NULL;
    cudaError_t e = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
    /* the side stream starts once the compute stream has produced buf */
    if (e == cudaSuccess) e = cudaEventRecord(ready, x->stream);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(x->side, ready, 0);
    if (e != cudaSuccess) {
        if (ready) cudaEventDestroy(ready);
        if (done) cudaEventDestroy(done);
        return fail(c, what, cudaGetErrorString(e));
    }
    cudaEventDestroy(ready); /* released once it has fired */
    ncclResult_t r = ncclAllReduce(buf, buf, n, nccl_type(t), nccl_op(op), x->nc, x->side);
    if (r == ncclSuccess) e = cudaEventRecord(done, x->side);
    if (r != ncclSuccess || e != cudaSuccess) {
        cudaEventDestroy(done);
        return abort_comm(c, what,
                          r != ncclSuccess ? ncclGetErrorString(r) : cudaGetErrorString(e));
    }
    req->nccl_done = done;
    req->done = 0;
    return 0;
}

/* Completed: later compute-stream work sees the reduced buffer. */
static int complete(struct comm_request *req) {
    cudaEvent_t done = (cudaEvent_t)req->nccl_done;
    cudaError_t e = cudaStreamWaitEvent(req->c->nccl->stream, done, 0);
    cudaEventDestroy(done);
    req->nccl_done = NULL;
    req->done = 1;
    return e == cudaSuccess ? 0 : fail(req->c, "iallreduce", cudaGetErrorString(e));
}

int comm_nccl_test(struct comm_request *req, int *done) {
    if (poll_once(req->c, (cudaEvent_t)req->nccl_done, "iallreduce", done)) {
        req->done = 1;
        return -1;
    }
    return *done ? complete(req) : 0;
}

int comm_nccl_wait(struct comm_request *req) {
    if (watch(req->c, (cudaEvent_t)req->nccl_done, "iallreduce")) {
        req->done = 1;
        return -1;
    }
    return complete(req);
}

#else /* no NCCL in this build: device buffers never reach here */

static int not_built(const struct comm *c, const char *what) {
    return err_set("comm %s: %s: this build has no NCCL (configure with the CUDA backend "
                   "and NCCL installed)",
                   c->name, what);
}

int comm_nccl_attach(struct comm *c, void *cuda_stream) {
    (void)cuda_stream;
    return not_built(c, "NCCL attach");
}

void comm_nccl_detach(struct comm *c) { (void)c; }

int comm_nccl_is_device(const void *buf) {
    (void)buf;
    return 0;
}

int comm_nccl_allreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                        enum comm_op op, const char *what) {
    (void)buf, (void)n, (void)t, (void)op;
    return not_built(c, what);
}

int comm_nccl_allgather(const struct comm *c, const void *send, void *recv, size_t n,
                        enum comm_dtype t, const char *what) {
    (void)send, (void)recv, (void)n, (void)t;
    return not_built(c, what);
}

int comm_nccl_reduce_scatter(const struct comm *c, const void *send, void *recv, size_t n,
                             enum comm_dtype t, enum comm_op op, const char *what) {
    (void)send, (void)recv, (void)n, (void)t, (void)op;
    return not_built(c, what);
}

int comm_nccl_broadcast(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                        int root, const char *what) {
    (void)buf, (void)n, (void)t, (void)root;
    return not_built(c, what);
}

int comm_nccl_iallreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                         enum comm_op op, struct comm_request *req, const char *what) {
    (void)buf, (void)n, (void)t, (void)op, (void)req;
    return not_built(c, what);
}

int comm_nccl_test(struct comm_request *req, int *done) {
    *done = 1;
    req->done = 1;
    return not_built(req->c, "iallreduce");
}

int comm_nccl_wait(struct comm_request *req) {
    req->done = 1;
    return not_built(req->c, "iallreduce");
}

#endif
