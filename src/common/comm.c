/* src/common/comm.c — the MPI backend of comm.h: collectives over a group.
 *
 * Every call checks its arguments the same way on every rank (so a bad call
 * fails everywhere instead of leaving the others waiting), maps dtype and op
 * to MPI's, and reports MPI failures through comm_mpi_error(). Allreduce and
 * broadcast split buffers larger than c->max_count elements (MPI counts are
 * int); allgather and reduce-scatter refuse blocks that large instead (their
 * blocks are a per-rank share: INT_MAX elements is 8 GiB of float32).
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "comm_nccl.h"
#include "err.h"

size_t comm_dtype_size(enum comm_dtype t) {
    switch (t) {
    case COMM_F32:
        return 4;
    case COMM_F64:
        return 8;
    case COMM_I32:
        return 4;
    case COMM_I64:
        return 8;
    }
    return 0;
}

const char *comm_dtype_name(enum comm_dtype t) {
    switch (t) {
    case COMM_F32:
        return "float32";
    case COMM_F64:
        return "float64";
    case COMM_I32:
        return "int32";
    case COMM_I64:
        return "int64";
    }
    return "?";
}

const char *comm_op_name(enum comm_op op) {
    switch (op) {
    case COMM_SUM:
        return "sum";
    case COMM_AVG:
        return "avg";
    case COMM_MAX:
        return "max";
    case COMM_MIN:
        return "min";
    }
    return "?";
}

static MPI_Datatype mpi_type(enum comm_dtype t) {
    switch (t) {
    case COMM_F32:
        return MPI_FLOAT;
    case COMM_F64:
        return MPI_DOUBLE;
    case COMM_I32:
        return MPI_INT32_T;
    case COMM_I64:
        return MPI_INT64_T;
    }
    return MPI_DATATYPE_NULL;
}

static MPI_Op mpi_op(enum comm_op op) {
    switch (op) {
    case COMM_SUM:
    case COMM_AVG:
        return MPI_SUM;
    case COMM_MAX:
        return MPI_MAX;
    case COMM_MIN:
        return MPI_MIN;
    }
    return MPI_OP_NULL;
}

int comm_mpi_error(const struct comm *c, int mpi_rc, const char *what) {
    if (mpi_rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(mpi_rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error code %d", mpi_rc);
    return err_set("comm %s: %s failed on world rank %d (group rank %d of %d): %s",
                   c->name, what, c->world_rank, c->rank, c->size, msg);
}

int comm_adopt(struct comm *c, MPI_Comm mpi, const char *name) {
    memset(c, 0, sizeof *c);
    c->mpi = MPI_COMM_NULL;
    snprintf(c->name, sizeof c->name, "%s", name ? name : "?");
    c->backend = COMM_BACKEND_MPI;
    c->max_count = INT_MAX;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->world_rank);
    if (mpi == MPI_COMM_NULL)
        return err_set("comm %s: no communicator (MPI_COMM_NULL)", c->name);
    c->mpi = mpi;
    int rc = MPI_Comm_set_errhandler(mpi, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(mpi, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(mpi, &c->size);
    if (rc != MPI_SUCCESS) {
        comm_mpi_error(c, rc, "setup");
        MPI_Comm_free(&c->mpi);
        c->mpi = MPI_COMM_NULL;
        return -1;
    }
    return 0;
}

int comm_dup(struct comm *c, MPI_Comm parent, const char *name) {
    MPI_Comm mpi = MPI_COMM_NULL;
    int rc = MPI_Comm_dup(parent, &mpi);
    if (rc != MPI_SUCCESS) {
        comm_adopt(c, MPI_COMM_NULL,
                   name); /* a closed comm with name and ranks for the message */
        MPI_Comm_rank(parent, &c->rank);
        MPI_Comm_size(parent, &c->size);
        return comm_mpi_error(c, rc, "MPI_Comm_dup");
    }
    return comm_adopt(c, mpi, name);
}

void comm_close(struct comm *c) {
    comm_nccl_detach(c);
    if (c->mpi != MPI_COMM_NULL) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Comm_free(&c->mpi);
    }
    c->mpi = MPI_COMM_NULL;
}

/* Checks shared by every collective: an open MPI-backed comm, a buffer when
 * there is data, and for avg a float type. Fills `what` for messages. */
static int check(const struct comm *c, const char *opname, const void *buf, size_t n,
                 enum comm_dtype t, enum comm_op op, int has_op, char *what,
                 size_t wlen) {
    if (has_op)
        snprintf(what, wlen, "%s(%s, %s, n=%zu)", opname, comm_op_name(op),
                 comm_dtype_name(t), n);
    else
        snprintf(what, wlen, "%s(%s, n=%zu)", opname, comm_dtype_name(t), n);
    if (c->mpi == MPI_COMM_NULL)
        return err_set("comm %s: %s on a closed communicator", c->name, what);
    if (mpi_type(t) == MPI_DATATYPE_NULL || (has_op && mpi_op(op) == MPI_OP_NULL))
        return err_set("comm %s: %s: unknown type or operation", c->name, what);
    if (has_op && op == COMM_AVG && (t == COMM_I32 || t == COMM_I64))
        return err_set("comm %s: %s: avg needs a float type (sum integers and divide)",
                       c->name, what);
    if (n > 0 && !buf) return err_set("comm %s: %s: NULL buffer", c->name, what);
    return 0;
}

/* A device buffer on a comm with NCCL: the call goes to comm_nccl.c. Only
 * asked once NCCL is attached, so CPU runs never touch the CUDA runtime. */
static int on_device(const struct comm *c, const void *buf) {
    return c->nccl && comm_nccl_is_device(buf);
}

/* Elements per MPI call: max_count, within 1..INT_MAX. */
static size_t chunk(const struct comm *c) {
    if (c->max_count == 0) return 1;
    return c->max_count < (size_t)INT_MAX ? c->max_count : (size_t)INT_MAX;
}

/* buf[0..n) /= group size, after a sum (avg). */
static void divide(void *buf, size_t n, enum comm_dtype t, int size) {
    if (t == COMM_F32) {
        float *x = buf, d = (float)size;
        for (size_t i = 0; i < n; i++)
            x[i] /= d;
    } else if (t == COMM_F64) {
        double *x = buf, d = (double)size;
        for (size_t i = 0; i < n; i++)
            x[i] /= d;
    }
}

int comm_allreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                   enum comm_op op) {
    char what[96];
    if (check(c, "allreduce", buf, n, t, op, 1, what, sizeof what)) return -1;
    if (on_device(c, buf)) return comm_nccl_allreduce(c, buf, n, t, op, what);
    size_t es = comm_dtype_size(t), step = chunk(c);
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * es, (int)k, mpi_type(t),
                               mpi_op(op), c->mpi);
        if (rc != MPI_SUCCESS) return comm_mpi_error(c, rc, what);
    }
    if (op == COMM_AVG) divide(buf, n, t, c->size);
    return 0;
}

int comm_allgather(const struct comm *c, const void *send, void *recv, size_t n,
                   enum comm_dtype t) {
    char what[96];
    if (check(c, "allgather", recv, n, t, COMM_SUM, 0, what, sizeof what)) return -1;
    if (on_device(c, recv)) return comm_nccl_allgather(c, send, recv, n, t, what);
    if (n > chunk(c))
        return err_set("comm %s: %s: block larger than %zu elements", c->name, what,
                       chunk(c));
    if (n == 0) return 0;
    int rc = MPI_Allgather(send ? send : MPI_IN_PLACE, (int)n, mpi_type(t), recv, (int)n,
                           mpi_type(t), c->mpi);
    return comm_mpi_error(c, rc, what);
}

int comm_reduce_scatter(const struct comm *c, const void *send, void *recv, size_t n,
                        enum comm_dtype t, enum comm_op op) {
    char what[96];
    if (check(c, "reduce_scatter", recv, n, t, op, 1, what, sizeof what)) return -1;
    if (n > 0 && !send) return err_set("comm %s: %s: NULL send buffer", c->name, what);
    if (on_device(c, recv)) return comm_nccl_reduce_scatter(c, send, recv, n, t, op, what);
    if (n > chunk(c))
        return err_set("comm %s: %s: block larger than %zu elements", c->name, what,
                       chunk(c));
    if (n == 0) return 0;
    int rc =
        MPI_Reduce_scatter_block(send, recv, (int)n, mpi_type(t), mpi_op(op), c->mpi);
    if (rc != MPI_SUCCESS) return comm_mpi_error(c, rc, what);
    if (op == COMM_AVG) divide(recv, n, t, c->size);
    return 0;
}

int comm_broadcast(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                   int root) {
    char what[96];
    if (check(c, "broadcast", buf, n, t, COMM_SUM, 0, what, sizeof what)) return -1;
    if (root < 0 || root >= c->size)
        return err_set("comm %s: %s: root %d is not a rank of this group of %d", c->name,
                       what, root, c->size);
    if (on_device(c, buf)) return comm_nccl_broadcast(c, buf, n, t, root, what);
    size_t es = comm_dtype_size(t), step = chunk(c);
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        int rc = MPI_Bcast((char *)buf + off * es, (int)k, mpi_type(t), root, c->mpi);
        if (rc != MPI_SUCCESS) return comm_mpi_error(c, rc, what);
    }
    return 0;
}

int comm_barrier(const struct comm *c) {
    if (c->mpi == MPI_COMM_NULL)
        return err_set("comm %s: barrier on a closed communicator", c->name);
    return comm_mpi_error(c, MPI_Barrier(c->mpi), "barrier");
}

/* Nonblocking allreduce (comm.h): one MPI_Iallreduce; the avg division
 * happens on completion, in comm_test or comm_wait. */
static int request_what(const struct comm_request *r, char *what, size_t len) {
    return snprintf(what, len, "iallreduce(%s, %s, n=%zu)", comm_op_name(r->op),
                    comm_dtype_name(r->t), r->n);
}

int comm_iallreduce(const struct comm *c, void *buf, size_t n, enum comm_dtype t,
                    enum comm_op op, struct comm_request *req) {
    char what[96];
    *req = (struct comm_request){.mpi = MPI_REQUEST_NULL, .c = c, .buf = buf, .n = n,
                                 .t = t, .op = op, .done = 1};
    if (check(c, "iallreduce", buf, n, t, op, 1, what, sizeof what)) return -1;
    if (on_device(c, buf)) return comm_nccl_iallreduce(c, buf, n, t, op, req, what);
    if (n > chunk(c))
        return err_set("comm %s: %s: more than %zu elements in one request", c->name,
                       what, chunk(c));
    if (n == 0) return 0;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, mpi_type(t), mpi_op(op), c->mpi,
                            &req->mpi);
    if (rc != MPI_SUCCESS) return comm_mpi_error(c, rc, what);
    req->done = 0;
    return 0;
}

static void request_complete(struct comm_request *r) {
    r->done = 1;
    r->mpi = MPI_REQUEST_NULL;
    if (r->op == COMM_AVG) divide(r->buf, r->n, r->t, r->c->size);
}

int comm_test(struct comm_request *req, int *done) {
    *done = 1;
    if (req->done || !req->c) return 0;
    if (req->nccl_done) return comm_nccl_test(req, done);
    int flag = 0;
    int rc = MPI_Test(&req->mpi, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        char what[96];
        request_what(req, what, sizeof what);
        req->done = 1;
        return comm_mpi_error(req->c, rc, what);
    }
    if (flag) request_complete(req);
    *done = flag;
    return 0;
}

int comm_wait(struct comm_request *req) {
    if (req->done || !req->c) return 0;
    if (req->nccl_done) return comm_nccl_wait(req);
    int rc = MPI_Wait(&req->mpi, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        char what[96];
        request_what(req, what, sizeof what);
        req->done = 1;
        return comm_mpi_error(req->c, rc, what);
    }
    request_complete(req);
    return 0;
}
