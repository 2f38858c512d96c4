/* src/infer/bus.c — queues and topics behind one mutex.
 *
 * Queues and topics live in growable arrays and refer to each other by
 * index; a queue is a singly linked list of messages. A publish builds every
 * copy first and then links them all in, so it either reaches every
 * subscriber or (out of memory) none.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "err.h"

struct node {
    struct node *next;
    struct bus_msg m;
};

struct queue {
    char *name;
    struct node *head, *tail;
    uint64_t direct_seq;
};

struct topic {
    char *name;
    uint64_t seq;
    int *subs; /* queue indices */
    int n_subs, cap;
};

struct bus {
    pthread_mutex_t mu;
    struct queue *q;
    int nq, capq;
    struct topic *t;
    int nt, capt;
};

void bus_msg_free(struct bus_msg *m) {
    free(m->topic);
    free(m->from);
    free(m->text);
    memset(m, 0, sizeof *m);
}

struct bus *bus_create(void) {
    struct bus *b = calloc(1, sizeof *b);
    if (!b || pthread_mutex_init(&b->mu, NULL)) {
        free(b);
        err_set("bus: out of memory");
        return NULL;
    }
    return b;
}

void bus_free(struct bus *b) {
    if (!b) return;
    for (int i = 0; i < b->nq; i++) {
        for (struct node *n = b->q[i].head, *next; n; n = next) {
            next = n->next;
            bus_msg_free(&n->m);
            free(n);
        }
        free(b->q[i].name);
    }
    for (int i = 0; i < b->nt; i++) {
        free(b->t[i].name);
        free(b->t[i].subs);
    }
    free(b->q);
    free(b->t);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static int find_queue(const struct bus *b, const char *name) {
    for (int i = 0; i < b->nq; i++)
        if (!strcmp(b->q[i].name, name)) return i;
    return -1;
}

static int find_topic(const struct bus *b, const char *name) {
    for (int i = 0; i < b->nt; i++)
        if (!strcmp(b->t[i].name, name)) return i;
    return -1;
}

/* Grow an array of `size`-byte elements to hold one more. */
static int grow(void **arr, int n, int *cap, size_t size) {
    if (n < *cap) return 0;
    int c = *cap ? 2 * *cap : 8;
    void *p = realloc(*arr, (size_t)c * size);
    if (!p) return err_set("bus: out of memory");
    *arr = p;
    *cap = c;
    return 0;
}

static int queue_locked(struct bus *b, const char *name) {
    int i = find_queue(b, name);
    if (i >= 0) return i;
    char *copy = strdup(name);
    if (!copy || grow((void **)&b->q, b->nq, &b->capq, sizeof *b->q)) {
        free(copy);
        return err_set("bus: out of memory");
    }
    memset(&b->q[b->nq], 0, sizeof *b->q);
    b->q[b->nq].name = copy;
    return b->nq++;
}

static int topic_locked(struct bus *b, const char *name) {
    int i = find_topic(b, name);
    if (i >= 0) return i;
    char *copy = strdup(name);
    if (!copy || grow((void **)&b->t, b->nt, &b->capt, sizeof *b->t)) {
        free(copy);
        return err_set("bus: out of memory");
    }
    memset(&b->t[b->nt], 0, sizeof *b->t);
    b->t[b->nt].name = copy;
    return b->nt++;
}

int bus_queue(struct bus *b, const char *name) {
    pthread_mutex_lock(&b->mu);
    int rc = queue_locked(b, name) < 0 ? -1 : 0;
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int bus_subscribe(struct bus *b, const char *name, const char *topic) {
    pthread_mutex_lock(&b->mu);
    int rc = -1, q = queue_locked(b, name), t = q < 0 ? -1 : topic_locked(b, topic);
    if (t >= 0) {
        struct topic *tp = &b->t[t];
        rc = 0;
        for (int i = 0; i < tp->n_subs; i++)
            if (tp->subs[i] == q) goto out;
        if (grow((void **)&tp->subs, tp->n_subs, &tp->cap, sizeof *tp->subs)) {
            rc = -1;
            goto out;
        }
        tp->subs[tp->n_subs++] = q;
    }
out:
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int bus_unsubscribe(struct bus *b, const char *name, const char *topic) {
    pthread_mutex_lock(&b->mu);
    int q = find_queue(b, name), t = find_topic(b, topic);
    if (q >= 0 && t >= 0) {
        struct topic *tp = &b->t[t];
        for (int i = 0; i < tp->n_subs; i++)
            if (tp->subs[i] == q) {
                memmove(&tp->subs[i], &tp->subs[i + 1],
                        (size_t)(tp->n_subs - i - 1) * sizeof(int));
                tp->n_subs--;
                break;
            }
    }
    pthread_mutex_unlock(&b->mu);
    return q < 0 ? err_set("bus: no queue named '%s'", name) : 0;
}

static struct node *make_node(const char *topic, uint64_t seq, const char *from,
                              const char *text, int conv) {
    struct node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->m.seq = seq;
    n->m.conv = conv;
    n->m.topic = topic ? strdup(topic) : NULL;
    n->m.from = strdup(from);
    n->m.text = strdup(text);
    if ((topic && !n->m.topic) || !n->m.from || !n->m.text) {
        bus_msg_free(&n->m);
        free(n);
        return NULL;
    }
    return n;
}

static void append(struct queue *q, struct node *n) {
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

int bus_publish(struct bus *b, const char *topic, const char *from, const char *text,
                int conv, uint64_t *seq) {
    pthread_mutex_lock(&b->mu);
    int t = topic_locked(b, topic), sender = find_queue(b, from), count = 0, rc = -1;
    struct node **copies = NULL;
    if (t < 0) goto out;
    struct topic *tp = &b->t[t];
    copies = calloc((size_t)tp->n_subs + 1, sizeof *copies);
    if (!copies) goto oom;
    for (int i = 0; i < tp->n_subs; i++)
        if (tp->subs[i] != sender &&
            !(copies[count++] = make_node(topic, tp->seq + 1, from, text, conv)))
            goto oom;
    tp->seq++;
    for (int i = 0, k = 0; i < tp->n_subs; i++)
        if (tp->subs[i] != sender) append(&b->q[tp->subs[i]], copies[k++]);
    if (seq) *seq = tp->seq;
    rc = count;
    goto out;
oom:
    for (int i = 0; copies && i < count; i++)
        if (copies[i]) {
            bus_msg_free(&copies[i]->m);
            free(copies[i]);
        }
    err_set("bus: out of memory publishing to '%s'", topic);
out:
    free(copies);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int bus_send(struct bus *b, const char *to, const char *from, const char *text,
             int conv) {
    pthread_mutex_lock(&b->mu);
    int q = find_queue(b, to), rc = 0;
    if (q < 0)
        rc = err_set("bus: no queue named '%s'", to);
    else {
        struct node *n = make_node(NULL, b->q[q].direct_seq + 1, from, text, conv);
        if (!n)
            rc = err_set("bus: out of memory sending to '%s'", to);
        else {
            b->q[q].direct_seq++;
            append(&b->q[q], n);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static int matches(const struct bus_msg *m, int conv) {
    return conv == BUS_ANY_CONV || m->conv == conv;
}

int bus_pop(struct bus *b, const char *name, int conv, struct bus_msg *out) {
    pthread_mutex_lock(&b->mu);
    int qi = find_queue(b, name), rc = 0;
    if (qi < 0) {
        rc = err_set("bus: no queue named '%s'", name);
        goto out;
    }
    struct queue *q = &b->q[qi];
    for (struct node *n = q->head, *prev = NULL; n; prev = n, n = n->next) {
        if (!matches(&n->m, conv)) continue;
        if (prev)
            prev->next = n->next;
        else
            q->head = n->next;
        if (q->tail == n) q->tail = prev;
        *out = n->m;
        free(n);
        rc = 1;
        break;
    }
out:
    pthread_mutex_unlock(&b->mu);
    return rc;
}

size_t bus_pending(struct bus *b, const char *name, int conv) {
    pthread_mutex_lock(&b->mu);
    size_t count = 0;
    int qi = find_queue(b, name);
    for (struct node *n = qi < 0 ? NULL : b->q[qi].head; n; n = n->next)
        count += matches(&n->m, conv);
    pthread_mutex_unlock(&b->mu);
    return count;
}

int bus_n_subscribers(struct bus *b, const char *topic) {
    pthread_mutex_lock(&b->mu);
    int t = find_topic(b, topic), n = t < 0 ? 0 : b->t[t].n_subs;
    pthread_mutex_unlock(&b->mu);
    return n;
}
