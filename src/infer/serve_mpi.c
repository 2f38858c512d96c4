/* src/infer/serve_mpi.c — serving messages over MPI (serve_mpi.h). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "serve_mpi.h"

int serve_outbox_take(struct serve_outbox *o, int dest, int tag, struct serve_buf *b) {
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 16;
        struct serve_buf *nb = realloc(o->buf, (size_t)cap * sizeof *nb);
        if (nb) o->buf = nb;
        MPI_Request *nr = realloc(o->req, (size_t)cap * sizeof *nr);
        if (nr) o->req = nr;
        if (!nb || !nr) {
            serve_buf_free(b);
            return err_set("out of memory");
        }
        o->cap = cap;
    }
    o->buf[o->n] = *b;
    memset(b, 0, sizeof *b);
    struct serve_buf *m = &o->buf[o->n];
    if (MPI_Isend(m->p, (int)m->len, MPI_BYTE, dest, tag, MPI_COMM_WORLD, &o->req[o->n]) !=
        MPI_SUCCESS) {
        serve_buf_free(m);
        return err_set("sending a serving message to rank %d failed", dest);
    }
    o->n++;
    return 0;
}

int serve_outbox_send(struct serve_outbox *o, int dest, int tag, const void *p,
                      size_t len) {
    struct serve_buf b = {0};
    if (len && !(b.p = malloc(len))) return err_set("out of memory");
    if (len) memcpy(b.p, p, len);
    b.len = b.cap = len;
    return serve_outbox_take(o, dest, tag, &b);
}

void serve_outbox_reap(struct serve_outbox *o, int wait) {
    int k = 0;
    for (int i = 0; i < o->n; i++) {
        int done = 1;
        if (wait)
            MPI_Wait(&o->req[i], MPI_STATUS_IGNORE);
        else
            MPI_Test(&o->req[i], &done, MPI_STATUS_IGNORE);
        if (done) {
            serve_buf_free(&o->buf[i]);
        } else {
            o->buf[k] = o->buf[i];
            o->req[k++] = o->req[i];
        }
    }
    o->n = k;
}

void serve_outbox_free(struct serve_outbox *o) {
    serve_outbox_reap(o, 1);
    free(o->buf);
    free(o->req);
    memset(o, 0, sizeof *o);
}

unsigned char *serve_recv_probed(const MPI_Status *st, int *len) {
    MPI_Get_count(st, MPI_BYTE, len);
    unsigned char *msg = malloc(*len > 0 ? (size_t)*len : 1);
    if (!msg) {
        err_set("out of memory receiving a %d-byte serving message", *len);
        return NULL;
    }
    MPI_Recv(msg, *len, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    return msg;
}
