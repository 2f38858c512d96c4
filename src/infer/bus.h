/* src/infer/bus.h — the coordinator's message bus.
 *
 * Named queues (one per agent, or per outside client), FIFO each, and topics
 * with subscribers. Publishing to a topic gives the message the topic's next
 * sequence number and appends a copy to every subscriber's queue (not the
 * sender's own) in one step under the bus lock, so every queue sees a
 * topic's messages in sequence order. Delivery is asynchronous: publish only
 * appends and never waits for a consumer; consumers pop when they are ready.
 * Thread-safe (one mutex), so an HTTP thread can publish while the
 * coordinator pops. Queues are unbounded: whoever subscribes must pop.
 */
#ifndef LLMPI_BUS_H
#define LLMPI_BUS_H

#include <stddef.h>
#include <stdint.h>

/* Conversation id meaning "none" (bus_send/bus_publish) or "any" (bus_pop). */
#define BUS_ANY_CONV (-1)

struct bus_msg {
    char *topic;  /* NULL for a direct message (bus_send) */
    uint64_t seq; /* the topic's sequence number (1, 2, ...); direct: the queue's */
    char *from;   /* sender: an agent name, "user", or a client's name */
    char *text;
    int conv; /* conversation id, or BUS_ANY_CONV */
};
void bus_msg_free(struct bus_msg *m); /* frees the strings, zeroes *m */

struct bus;

struct bus *bus_create(void); /* NULL + err_set on out of memory */
void bus_free(struct bus *b);

/* Create the queue `name` if it does not exist (idempotent). 0 / -1. */
int bus_queue(struct bus *b, const char *name);
/* Subscribe queue `name` (created if needed) to `topic`; idempotent. 0 / -1. */
int bus_subscribe(struct bus *b, const char *name, const char *topic);
/* 0 (also when it was not subscribed) / -1 when there is no such queue. */
int bus_unsubscribe(struct bus *b, const char *name, const char *topic);

/* Publish to `topic`: a copy to each subscriber but the queue named `from`.
 * *seq (may be NULL) receives the message's sequence number. Returns the
 * number of queues it went to (0 when the topic has no other subscriber),
 * -1 + err_set on out of memory. */
int bus_publish(struct bus *b, const char *topic, const char *from, const char *text,
                int conv, uint64_t *seq);
/* A direct message to one queue. 0, or -1 + err_set when there is no such
 * queue or on out of memory. */
int bus_send(struct bus *b, const char *to, const char *from, const char *text, int conv);

/* Pop the oldest message of queue `name` that belongs to conversation `conv`
 * (BUS_ANY_CONV: any message). 1 with *out filled (free with bus_msg_free),
 * 0 when there is none, -1 + err_set when there is no such queue. */
int bus_pop(struct bus *b, const char *name, int conv, struct bus_msg *out);
/* Messages waiting in the queue for `conv` (BUS_ANY_CONV: all); 0 when
 * there is no such queue. */
size_t bus_pending(struct bus *b, const char *name, int conv);
/* Subscribers of a topic. */
int bus_n_subscribers(struct bus *b, const char *topic);

#endif
