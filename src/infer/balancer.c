/* src/infer/balancer.c — replica choice and bookkeeping (see balancer.h).
 *
 * Smooth weighted round-robin: each pick adds every eligible replica's
 * weight to its `current`, takes the largest `current` (lowest index on a
 * tie) and subtracts the total weight from the winner. The currents always
 * sum to 0, and after W = sum(w) picks with integer weights every current
 * is back at 0 with replica i chosen exactly w_i times. Integer weights keep
 * the arithmetic exact in doubles; fractional weights give the right long-run
 * proportions up to rounding. Any change of the eligible set or of a weight
 * zeroes the currents, so the next cycle starts clean.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "err.h"

static const char *const policy_names[] = {"round-robin", "random", "weighted",
                                           "least-outstanding"};
#define NPOLICIES ((int)(sizeof policy_names / sizeof policy_names[0]))

int balancer_parse_policy(const char *name, enum balance_policy *p) {
    for (int i = 0; name && i < NPOLICIES; i++)
        if (strcmp(name, policy_names[i]) == 0) {
            *p = (enum balance_policy)i;
            return 0;
        }
    return err_set(
        "unknown balancing policy '%s' (expected round-robin, random, weighted "
        "or least-outstanding)",
        name ? name : "(null)");
}

const char *balancer_policy_name(enum balance_policy p) {
    return (int)p >= 0 && (int)p < NPOLICIES ? policy_names[p] : "unknown";
}

static int bad_weight(double w) { return !(w >= 0.0) || isinf(w); }

int balancer_init(struct balancer *b, int n_replicas, enum balance_policy p,
                  const double *weights, uint64_t seed) {
    memset(b, 0, sizeof *b);
    if (n_replicas < 1)
        return err_set("need at least one replica group (got %d)", n_replicas);
    if ((int)p < 0 || (int)p >= NPOLICIES)
        return err_set("bad balancing policy %d", (int)p);
    for (int i = 0; weights && i < n_replicas; i++)
        if (bad_weight(weights[i]))
            return err_set("weight of replica %d is %g: weights must be finite and >= 0",
                           i, weights[i]);
    b->r = calloc((size_t)n_replicas, sizeof *b->r);
    if (!b->r) return err_set("out of memory");
    b->n = n_replicas;
    b->policy = p;
    for (int i = 0; i < n_replicas; i++) {
        b->r[i].up = 1;
        b->r[i].weight = weights ? weights[i] : 1.0;
    }
    rng_seed(&b->rng, seed);
    return 0;
}

void balancer_free(struct balancer *b) {
    if (!b) return;
    free(b->r);
    b->r = NULL;
    b->n = 0;
}

int balancer_n_up(const struct balancer *b) {
    int k = 0;
    for (int i = 0; i < b->n; i++) k += b->r[i].up != 0;
    return k;
}

static void restart_cycle(struct balancer *b) {
    for (int i = 0; i < b->n; i++) b->r[i].current = 0.0;
}

static int check_index(const struct balancer *b, int r) {
    if (r < 0 || r >= b->n)
        return err_set("replica %d out of range (there are %d replica groups)", r, b->n);
    return 0;
}

/* First up replica at or after the cursor (cyclically) satisfying `want`
 * with argument `arg`; moves the cursor past it. */
static int next_up(struct balancer *b, int (*want)(const struct replica_state *, int),
                   int arg) {
    for (int k = 0; k < b->n; k++) {
        int i = (b->next + k) % b->n;
        if (b->r[i].up && (!want || want(&b->r[i], arg))) {
            b->next = (i + 1) % b->n;
            return i;
        }
    }
    return -1;
}

static int has_outstanding(const struct replica_state *s, int k) {
    return s->outstanding == k;
}

static int pick_random(struct balancer *b, int n_up) {
    int k = (int)(rng_uniform(&b->rng) * n_up); /* uniform < 1, so k < n_up */
    for (int i = 0; i < b->n; i++)
        if (b->r[i].up && k-- == 0) return i;
    return -1; /* cannot happen */
}

static int pick_weighted(struct balancer *b) {
    double total = 0.0;
    for (int i = 0; i < b->n; i++)
        if (b->r[i].up && b->r[i].weight > 0.0) total += b->r[i].weight;
    if (total == 0.0) return next_up(b, NULL, 0); /* only zero weights are up */
    int best = -1;
    for (int i = 0; i < b->n; i++) {
        struct replica_state *s = &b->r[i];
        if (!s->up || s->weight <= 0.0) continue;
        s->current += s->weight;
        if (best < 0 || s->current > b->r[best].current) best = i;
    }
    b->r[best].current -= total;
    return best;
}

static int pick_least(struct balancer *b) {
    int least = -1;
    for (int i = 0; i < b->n; i++)
        if (b->r[i].up && (least < 0 || b->r[i].outstanding < least))
            least = b->r[i].outstanding;
    return next_up(b, has_outstanding, least);
}

int balancer_pick(struct balancer *b) {
    int n_up = balancer_n_up(b);
    if (n_up == 0)
        return err_set(
            "no replica group is up (all %d are down); cannot place the request", b->n);
    switch (b->policy) {
    case BALANCE_ROUND_ROBIN: return next_up(b, NULL, 0);
    case BALANCE_RANDOM: return pick_random(b, n_up);
    case BALANCE_WEIGHTED: return pick_weighted(b);
    case BALANCE_LEAST_OUTSTANDING: return pick_least(b);
    }
    return err_set("bad balancing policy %d", (int)b->policy);
}

int balancer_started(struct balancer *b, int r, double now) {
    if (check_index(b, r)) return -1;
    if (b->r[r].outstanding == 0) b->r[r].busy_since = now;
    b->r[r].outstanding++;
    return 0;
}

int balancer_heard(struct balancer *b, int r, double now) {
    if (check_index(b, r)) return -1;
    if (now > b->r[r].last_heard) b->r[r].last_heard = now;
    return 0;
}

int balancer_finished(struct balancer *b, int r, double now) {
    if (check_index(b, r)) return -1;
    if (b->r[r].outstanding == 0)
        return err_set("replica %d finished a request but had none in flight", r);
    b->r[r].outstanding--;
    return balancer_heard(b, r, now);
}

int balancer_check_timeouts(struct balancer *b, double now, double timeout,
                            int *newly_down, int max) {
    if (!(timeout >= 0.0))
        return err_set("timeout must be >= 0 seconds (got %g)", timeout);
    if (newly_down && max < 0) return err_set("max must be >= 0 (got %d)", max);
    int k = 0;
    for (int i = 0; i < b->n && (!newly_down || k < max); i++) {
        struct replica_state *s = &b->r[i];
        if (!s->up || s->outstanding == 0) continue;
        double since = s->last_heard > s->busy_since ? s->last_heard : s->busy_since;
        if (now - since > timeout) {
            s->up = 0;
            if (newly_down) newly_down[k] = i;
            k++;
        }
    }
    if (k > 0) restart_cycle(b);
    return k;
}

int balancer_mark_down(struct balancer *b, int r) {
    if (check_index(b, r)) return -1;
    if (b->r[r].up) restart_cycle(b);
    b->r[r].up = 0;
    return 0;
}

int balancer_mark_up(struct balancer *b, int r) {
    if (check_index(b, r)) return -1;
    if (!b->r[r].up) restart_cycle(b);
    b->r[r].up = 1;
    return 0;
}

int balancer_set_weight(struct balancer *b, int r, double weight) {
    if (check_index(b, r)) return -1;
    if (bad_weight(weight))
        return err_set("weight of replica %d is %g: weights must be finite and >= 0", r,
                       weight);
    b->r[r].weight = weight;
    restart_cycle(b);
    return 0;
}
