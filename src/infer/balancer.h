/* src/infer/balancer.h — choosing a replica group for each request.
 *
 * The serving coordinator (rank 0) sends every generation request to one of
 * R replica groups. This is the choice and the bookkeeping behind it, as
 * pure logic (no MPI, no clock: the caller passes times in seconds), so the
 * promises of each policy can be tested directly:
 *
 *   round-robin        up replicas in index order, cyclically.
 *   random             uniform over up replicas; the same seed gives the
 *                      same sequence of picks for the same calls.
 *   weighted           smooth weighted round-robin (nginx's): over any run
 *                      of W = sum of integer weights picks with no change of
 *                      the up set, replica i is chosen exactly w_i times,
 *                      interleaved rather than in bursts. Weight 0 means
 *                      never chosen while a replica of positive weight is up;
 *                      if only zero-weight replicas are up they take turns.
 *   least-outstanding  a replica with the fewest requests in flight; ties go
 *                      round-robin (the first tied replica after the last
 *                      pick), so idle replicas share the work.
 *
 * Down replicas are never picked. A replica goes down by balancer_mark_down
 * or by balancer_check_timeouts (outstanding work and silent too long), and
 * comes back only by balancer_mark_up. Picking does not count a request as
 * in flight: call balancer_started once it is sent and balancer_finished
 * when its last reply arrives. One balancer is used from one thread.
 */
#ifndef LLMPI_BALANCER_H
#define LLMPI_BALANCER_H

#include <stdint.h>

#include "rng.h"

enum balance_policy {
    BALANCE_ROUND_ROBIN,
    BALANCE_RANDOM,
    BALANCE_WEIGHTED,
    BALANCE_LEAST_OUTSTANDING,
};

struct replica_state {
    int up;             /* 1 = may be picked */
    int outstanding;    /* requests in flight */
    double weight;      /* >= 0 (used by the weighted policy) */
    double last_heard;  /* time of the last message from it */
    double busy_since;  /* time its outstanding count last rose from 0 */
    double current;     /* smooth weighted round-robin state */
};

struct balancer {
    int n;
    enum balance_policy policy;
    struct replica_state *r;
    int next; /* round-robin cursor: where the next search starts */
    struct rng rng;
};

/* n_replicas >= 1 replicas, all up, idle, last heard at time 0. weights:
 * n_replicas finite values >= 0, or NULL for all 1. seed drives the random
 * policy. -1 + err_set on bad arguments or out of memory. */
int balancer_init(struct balancer *b, int n_replicas, enum balance_policy p,
                  const double *weights, uint64_t seed);
void balancer_free(struct balancer *b);

/* "round-robin", "random", "weighted", "least-outstanding". -1 + err_set
 * (listing the names) for anything else. */
int balancer_parse_policy(const char *name, enum balance_policy *p);
const char *balancer_policy_name(enum balance_policy p);

/* The replica for the next request, or -1 + err_set when none is up. */
int balancer_pick(struct balancer *b);

/* A request was sent to replica r at time now / its last reply arrived
 * (which counts as hearing from r). -1 + err_set when r is out of range or,
 * for finished, r has nothing in flight. */
int balancer_started(struct balancer *b, int r, double now);
int balancer_finished(struct balancer *b, int r, double now);

/* Any message from replica r at time now (tokens, heartbeat). */
int balancer_heard(struct balancer *b, int r, double now);

/* Mark down every up replica that has requests in flight and has been
 * silent for more than timeout seconds (counting from the later of its last
 * message and the moment it became busy), at most max of them; their
 * indices go to newly_down[0..). newly_down may be NULL: then max is ignored
 * and all such replicas are marked. Returns how many were marked down (call
 * again when it returns max), or -1 + err_set on bad arguments. Idle
 * replicas are never timed out: silence is expected when there is no work. */
int balancer_check_timeouts(struct balancer *b, double now, double timeout,
                            int *newly_down, int max);

/* Take replica r out of / back into rotation. Its in-flight count is kept:
 * the coordinator still calls balancer_finished for each request it retires
 * (answered late or re-sent elsewhere). A change of the up set restarts the
 * weighted cycle. A replica brought back with work still in flight is timed
 * out again unless balancer_heard is called for it as well. -1 + err_set
 * when r is out of range. */
int balancer_mark_down(struct balancer *b, int r);
int balancer_mark_up(struct balancer *b, int r);

/* Change replica r's weight (finite, >= 0); restarts the weighted cycle. */
int balancer_set_weight(struct balancer *b, int r, double weight);

/* Number of up replicas. */
int balancer_n_up(const struct balancer *b);

#endif
