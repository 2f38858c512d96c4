/* src/infer/serve_mpi.h — moving serving messages over MPI: nonblocking
 * sends that own their buffers, and receiving a probed message.
 *
 * The coordinator, the replica leaders and `llmpi bench serve` all send
 * without waiting (MPI_Isend), so none of them stalls on a slow peer. MPI
 * owns a send buffer until the request completes; the outbox keeps each
 * buffer with its request and frees it once MPI is done (serve_outbox_reap,
 * called now and then in the sender's loop, and with wait = 1 at the end).
 */
#ifndef LLMPI_SERVE_MPI_H
#define LLMPI_SERVE_MPI_H

#include <stddef.h>

#include <mpi.h>

#include "serve_proto.h"

struct serve_outbox {
    struct serve_buf *buf;
    MPI_Request *req;
    int n, cap;
};

/* Send b's bytes to world rank dest with tag; the outbox takes b over (b is
 * left empty). -1 + err_set when out of memory or MPI fails (b is freed). */
int serve_outbox_take(struct serve_outbox *o, int dest, int tag, struct serve_buf *b);
/* The same for a copy of p[0..len) (len may be 0). */
int serve_outbox_send(struct serve_outbox *o, int dest, int tag, const void *p,
                      size_t len);
/* Free the buffers of completed sends; wait = 1 waits for all first. */
void serve_outbox_reap(struct serve_outbox *o, int wait);
/* Wait for every send, then free everything. */
void serve_outbox_free(struct serve_outbox *o);

/* Receive the message st describes (from MPI_Probe / MPI_Iprobe on
 * MPI_COMM_WORLD) into a malloc'd buffer of *len bytes; NULL + err_set when
 * out of memory (the message is then left unreceived). */
unsigned char *serve_recv_probed(const MPI_Status *st, int *len);

#endif
