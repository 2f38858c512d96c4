/* src/infer/serve_proto.h — the messages between the serving coordinator
 * (rank 0) and the replica group leaders (docs/serving.md, "Protocol").
 *
 * What travels: the coordinator sends a request (token ids of the prompt and
 * its sampling settings) to one replica leader; the leader streams back, per
 * engine step, one message holding every event of that step for requests
 * from this coordinator (tokens produced, requests finished or failed).
 * Text stays on the coordinator: it encodes prompts and decodes tokens, so a
 * replica never needs the agents file and the wire carries only ids.
 *
 * Why a hand-packed byte format: a message is a few fixed fields and short
 * arrays; packing them little-endian into one MPI_BYTE buffer keeps one send
 * per message (no derived datatypes to commit and free), and the reader
 * checks every length against the buffer, so a truncated or corrupt message
 * is an error, never an overread.
 */
#ifndef LLMPI_SERVE_PROTO_H
#define LLMPI_SERVE_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* MPI tags on the world communicator. */
enum serve_tag {
    SERVE_TAG_REQUEST = 101,  /* coordinator -> leader: one request */
    SERVE_TAG_EVENTS = 102,   /* leader -> coordinator: one step's events */
    SERVE_TAG_SHUTDOWN = 103, /* coordinator -> leader: finish and exit */
    SERVE_TAG_CANCEL = 104,   /* coordinator -> leader: stop one request (its id) */
};

#define SERVE_MAX_STOP 4 /* stop strings per request */

struct serve_request {
    int64_t id;
    int32_t n_prompt;
    int32_t *prompt; /* n_prompt ids (owned after unpack) */
    int32_t max_tokens;
    float temperature, top_p, repetition_penalty;
    int32_t top_k;
    uint64_t seed;
    int32_t n_stop;
    char *stop[SERVE_MAX_STOP]; /* NUL-terminated (owned after unpack) */
};

enum serve_event_kind {
    SERVE_EV_TOKEN = 1, /* a sampled token (value = id) */
    SERVE_EV_DONE = 2,  /* finished normally (value = enum gen_stop) */
    SERVE_EV_ERROR = 3, /* failed on the replica (text = the message) */
    /* The replica's KV pool after the step (id SERVE_ID_POOL): blocks in
     * use, and blocks in all; sent with every step's events. */
    SERVE_EV_POOL_USED = 4,
    SERVE_EV_POOL_TOTAL = 5,
};
/* Event ids that are not requests: the replica group itself failed (ERROR
 * event), or the pool figures. */
#define SERVE_ID_REPLICA (-1)
#define SERVE_ID_POOL (-2)

struct serve_event {
    int64_t id;
    int32_t kind;
    int32_t value;
    const char *text; /* ERROR only; points into the message buffer */
    uint32_t text_len;
};

/* A growable byte buffer. */
struct serve_buf {
    unsigned char *p;
    size_t len, cap;
};
void serve_buf_free(struct serve_buf *b);

/* Append a request / an event to b (events: call once per event; the step's
 * message is the concatenation). -1 + err_set when out of memory. */
int serve_pack_request(struct serve_buf *b, const struct serve_request *r);
int serve_pack_event(struct serve_buf *b, const struct serve_event *e);

/* Parse a request message; the arrays are malloc'd (serve_request_free).
 * -1 + err_set for a malformed message. */
int serve_unpack_request(const void *msg, size_t len, struct serve_request *r);
void serve_request_free(struct serve_request *r);

/* Parse the next event of an events message at *off (advanced); 1 when one
 * was read, 0 at the end, -1 + err_set for a malformed message. The event's
 * text points into msg. */
int serve_unpack_event(const void *msg, size_t len, size_t *off, struct serve_event *e);

/* A cancel message: the id of the request to stop. */
int serve_pack_cancel(struct serve_buf *b, int64_t id);
int serve_unpack_cancel(const void *msg, size_t len, int64_t *id);

#endif
