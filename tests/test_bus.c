/* tests/test_bus.c — the coordinator's message bus (src/infer/bus.*).
 *
 * Fan-out (a copy per subscriber, never to the sender), per-topic sequence
 * numbers seen in order by every subscriber, FIFO queues, popping one
 * conversation's messages past others', direct messages, unsubscribe, and
 * publishers in several threads: no message lost, each queue in sequence
 * order, each publisher's own messages in the order it sent them.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "err.h"

Test(bus, fan_out_and_order) {
    struct bus *b = bus_create();
    cr_assert_not_null(b);
    const char *subs[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(bus_subscribe(b, subs[i], "news"), 0);
    cr_assert_eq(bus_subscribe(b, "a", "news"), 0); /* idempotent */
    cr_assert_eq(bus_subscribe(b, "c", "sport"), 0);
    cr_expect_eq(bus_n_subscribers(b, "news"), 3);
    uint64_t seq = 0;
    cr_expect_eq(bus_publish(b, "news", "user", "n1", 7, &seq), 3);
    cr_expect_eq(seq, 1);
    cr_expect_eq(bus_publish(b, "sport", "user", "s1", 7, &seq), 1);
    cr_expect_eq(seq, 1); /* per topic */
    cr_expect_eq(bus_publish(b, "news", "a", "n2 from a", 7, &seq),
                 2); /* not back to a */
    cr_expect_eq(seq, 2);
    cr_expect_eq(bus_publish(b, "news", "user", "n3", 7, &seq), 3);
    cr_expect_eq(bus_publish(b, "empty", "user", "void", 7, NULL), 0);
    cr_expect_eq(bus_pending(b, "a", BUS_ANY_CONV), 2);
    cr_expect_eq(bus_pending(b, "b", BUS_ANY_CONV), 3);
    cr_expect_eq(bus_pending(b, "c", BUS_ANY_CONV), 4);

    struct bus_msg m;
    const char *want_b[] = {"n1", "n2 from a", "n3"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(bus_pop(b, "b", BUS_ANY_CONV, &m), 1);
        cr_expect_str_eq(m.text, want_b[i]);
        cr_expect_str_eq(m.topic, "news");
        cr_expect_eq(m.seq, (uint64_t)i + 1);
        cr_expect_eq(m.conv, 7);
        bus_msg_free(&m);
    }
    cr_expect_eq(bus_pop(b, "b", BUS_ANY_CONV, &m), 0);
    /* c: news and sport interleaved in publish order */
    const char *want_c[] = {"n1", "s1", "n2 from a", "n3"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(bus_pop(b, "c", BUS_ANY_CONV, &m), 1);
        cr_expect_str_eq(m.text, want_c[i]);
        bus_msg_free(&m);
    }
    cr_assert_eq(bus_pop(b, "a", BUS_ANY_CONV, &m), 1);
    cr_expect_str_eq(m.text, "n1");
    cr_expect_str_eq(m.from, "user");
    bus_msg_free(&m);
    cr_expect_eq(bus_pop(b, "nobody", BUS_ANY_CONV, &m), -1);
    cr_expect(strstr(err_msg(), "no queue named 'nobody'"), "%s", err_msg());
    bus_free(b); /* frees n3 still queued for a */
}

Test(bus, conversation_filter_direct_and_unsubscribe) {
    struct bus *b = bus_create();
    cr_assert_eq(bus_subscribe(b, "a", "t"), 0);
    cr_assert_eq(bus_publish(b, "t", "user", "c1-first", 1, NULL), 1);
    cr_assert_eq(bus_publish(b, "t", "user", "c2-first", 2, NULL), 1);
    cr_assert_eq(bus_publish(b, "t", "user", "c1-second", 1, NULL), 1);
    cr_expect_eq(bus_pending(b, "a", 1), 2);
    cr_expect_eq(bus_pending(b, "a", 2), 1);
    struct bus_msg m;
    cr_assert_eq(bus_pop(b, "a", 2, &m), 1); /* past conversation 1's first */
    cr_expect_str_eq(m.text, "c2-first");
    cr_expect_eq(m.seq, 2);
    bus_msg_free(&m);
    cr_assert_eq(bus_pop(b, "a", 2, &m), 0);
    cr_assert_eq(bus_pop(b, "a", 1, &m), 1);
    cr_expect_str_eq(m.text, "c1-first");
    bus_msg_free(&m);
    cr_assert_eq(bus_send(b, "a", "boss", "direct", BUS_ANY_CONV), 0);
    cr_expect_eq(bus_send(b, "ghost", "boss", "x", BUS_ANY_CONV), -1);
    cr_assert_eq(bus_pop(b, "a", BUS_ANY_CONV, &m), 1);
    cr_expect_str_eq(m.text, "c1-second");
    bus_msg_free(&m);
    cr_assert_eq(bus_pop(b, "a", BUS_ANY_CONV, &m), 1);
    cr_expect_str_eq(m.text, "direct");
    cr_expect_null(m.topic);
    cr_expect_eq(m.seq, 1);
    bus_msg_free(&m);
    cr_assert_eq(bus_unsubscribe(b, "a", "t"), 0);
    cr_expect_eq(bus_publish(b, "t", "user", "gone", 1, NULL), 0);
    cr_expect_eq(bus_pending(b, "a", BUS_ANY_CONV), 0);
    cr_expect_eq(bus_queue(b, "fresh"), 0);
    cr_expect_eq(bus_pending(b, "fresh", BUS_ANY_CONV), 0);
    bus_free(b);
}

#define PER_THREAD 2000

struct pub_arg {
    struct bus *b;
    const char *name;
};

static void *publisher(void *p) {
    struct pub_arg *a = p;
    char text[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(text, sizeof text, "%s %d", a->name, i);
        if (bus_publish(a->b, "t", a->name, text, 0, NULL) < 0) return p;
    }
    return NULL;
}

/* What a queue received: sequence numbers increasing, every publisher's
 * messages in its own order, none lost. */
struct seen {
    uint64_t last;
    int next[3], n;
};

static void check(struct seen *s, const struct bus_msg *m) {
    int who = m->from[1] - '0', idx;
    cr_assert_gt(m->seq, s->last, "seq %llu after %llu", (unsigned long long)m->seq,
                 (unsigned long long)s->last);
    s->last = m->seq;
    cr_assert_eq(sscanf(m->text + 3, "%d", &idx), 1);
    cr_assert_eq(idx, s->next[who], "%s out of order", m->text);
    s->next[who]++;
    s->n++;
}

Test(bus, concurrent_publishers) {
    struct bus *b = bus_create();
    cr_assert_eq(bus_subscribe(b, "x", "t"), 0);
    cr_assert_eq(bus_subscribe(b, "y", "t"), 0);
    pthread_t th[3];
    struct pub_arg args[3] = {{b, "p0"}, {b, "p1"}, {b, "p2"}};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, publisher, &args[i]), 0);
    /* x is consumed while they publish (publishing never waits for it), y after */
    struct seen x = {0}, y = {0};
    struct bus_msg m;
    while (x.n < 3 * PER_THREAD / 2) {
        int rc = bus_pop(b, "x", BUS_ANY_CONV, &m);
        cr_assert_geq(rc, 0);
        if (!rc) continue;
        check(&x, &m);
        bus_msg_free(&m);
    }
    for (int i = 0; i < 3; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        cr_assert_null(ret);
    }
    while (bus_pop(b, "x", BUS_ANY_CONV, &m) == 1) {
        check(&x, &m);
        bus_msg_free(&m);
    }
    while (bus_pop(b, "y", BUS_ANY_CONV, &m) == 1) {
        check(&y, &m);
        bus_msg_free(&m);
    }
    cr_expect_eq(x.n, 3 * PER_THREAD);
    cr_expect_eq(y.n, 3 * PER_THREAD);
    cr_expect_eq(y.last, 3 * PER_THREAD);
    bus_free(b);
}
