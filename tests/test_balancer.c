/* tests/test_balancer.c — the promises of each load-balancing policy.
 *
 * round-robin cycles over the up replicas; random is reproducible per seed
 * and uniform (chi-square with a fixed seed); weighted (smooth WRR) gives
 * exactly w_i picks per cycle of sum(w) and never picks weight 0 while a
 * positive weight is up; least-outstanding never picks a replica with more
 * requests in flight than another up replica (property test over random
 * start/finish/down/up sequences). For every policy a down replica is never
 * picked and "all down" is -1 with a message; timeouts take down only
 * silent replicas that have work in flight.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "balancer.h"
#include "err.h"
#include "rng.h"

static const enum balance_policy all_policies[] = {BALANCE_ROUND_ROBIN, BALANCE_RANDOM,
                                                   BALANCE_WEIGHTED,
                                                   BALANCE_LEAST_OUTSTANDING};

Test(balancer, parse_policy) {
    const char *names[] = {"round-robin", "random", "weighted", "least-outstanding"};
    for (int i = 0; i < 4; i++) {
        enum balance_policy p;
        cr_assert_eq(balancer_parse_policy(names[i], &p), 0, "%s", err_msg());
        cr_expect_eq(p, all_policies[i]);
        cr_expect_str_eq(balancer_policy_name(p), names[i]);
    }
    enum balance_policy p;
    cr_expect_eq(balancer_parse_policy("fastest", &p), -1);
    cr_expect(strstr(err_msg(), "fastest") != NULL, "%s", err_msg());
    for (int i = 0; i < 4; i++)
        cr_expect(strstr(err_msg(), names[i]) != NULL, "message lists %s: %s", names[i],
                  err_msg());
    cr_expect_eq(balancer_parse_policy("Round-Robin", &p), -1);
    cr_expect_eq(balancer_parse_policy("", &p), -1);
    cr_expect_eq(balancer_parse_policy(NULL, &p), -1);
}

Test(balancer, bad_init) {
    struct balancer b;
    cr_expect_eq(balancer_init(&b, 0, BALANCE_ROUND_ROBIN, NULL, 1), -1);
    cr_expect_eq(balancer_init(&b, -3, BALANCE_ROUND_ROBIN, NULL, 1), -1);
    double neg[] = {1, -1};
    cr_expect_eq(balancer_init(&b, 2, BALANCE_WEIGHTED, neg, 1), -1);
    cr_expect(strstr(err_msg(), "weight") != NULL, "%s", err_msg());
    double nan_w[] = {1, NAN};
    cr_expect_eq(balancer_init(&b, 2, BALANCE_WEIGHTED, nan_w, 1), -1);
    double inf_w[] = {INFINITY, 1};
    cr_expect_eq(balancer_init(&b, 2, BALANCE_WEIGHTED, inf_w, 1), -1);
    cr_expect_eq(balancer_init(&b, 2, (enum balance_policy)42, NULL, 1), -1);
    balancer_free(&b); /* safe after a failed init */
}

Test(balancer, bad_indices) {
    struct balancer b;
    cr_assert_eq(balancer_init(&b, 2, BALANCE_ROUND_ROBIN, NULL, 1), 0);
    cr_expect_eq(balancer_started(&b, 2, 0.0), -1);
    cr_expect_eq(balancer_started(&b, -1, 0.0), -1);
    cr_expect_eq(balancer_heard(&b, 5, 0.0), -1);
    cr_expect_eq(balancer_mark_down(&b, 2), -1);
    cr_expect_eq(balancer_mark_up(&b, -1), -1);
    cr_expect_eq(balancer_finished(&b, 0, 0.0), -1); /* nothing in flight */
    cr_expect(strstr(err_msg(), "none in flight") != NULL, "%s", err_msg());
    cr_expect_eq(balancer_set_weight(&b, 0, -2.0), -1);
    cr_expect_eq(balancer_check_timeouts(&b, 0.0, -1.0, NULL, 0), -1);
    balancer_free(&b);
}

Test(balancer, round_robin_cycles) {
    struct balancer b;
    cr_assert_eq(balancer_init(&b, 4, BALANCE_ROUND_ROBIN, NULL, 1), 0);
    for (int k = 0; k < 12; k++) cr_expect_eq(balancer_pick(&b), k % 4);
    cr_assert_eq(balancer_mark_down(&b, 1), 0);
    int want[] = {0, 2, 3};
    for (int k = 0; k < 9; k++)
        cr_expect_eq(balancer_pick(&b), want[k % 3], "pick %d", k);
    /* Back up: rejoins the cycle in index order. */
    cr_assert_eq(balancer_mark_up(&b, 1), 0);
    int seen[4] = {0};
    for (int k = 0; k < 40; k++) seen[balancer_pick(&b)]++;
    for (int i = 0; i < 4; i++) cr_expect_eq(seen[i], 10);
    /* Outstanding work does not matter to round-robin. */
    for (int k = 0; k < 5; k++) cr_assert_eq(balancer_started(&b, 0, 0.0), 0);
    for (int k = 0; k < 8; k++) cr_expect_eq(balancer_pick(&b), k % 4);
    balancer_free(&b);
}

static int pick_seq(uint64_t seed, int *out, int n) {
    struct balancer b;
    if (balancer_init(&b, 7, BALANCE_RANDOM, NULL, seed)) return -1;
    for (int k = 0; k < n; k++) out[k] = balancer_pick(&b);
    balancer_free(&b);
    return 0;
}

Test(balancer, random_reproducible) {
    int a[200], b2[200], c[200];
    cr_assert_eq(pick_seq(1234, a, 200), 0);
    cr_assert_eq(pick_seq(1234, b2, 200), 0);
    cr_assert_eq(pick_seq(1235, c, 200), 0);
    cr_expect_arr_eq(a, b2, sizeof a, "same seed, same picks");
    cr_expect(memcmp(a, c, sizeof a) != 0, "another seed, other picks");
    for (int k = 0; k < 200; k++) cr_expect(a[k] >= 0 && a[k] < 7);
}

/* Chi-square of observed counts against equal expectation. With 5 up
 * replicas (4 degrees of freedom) P(chi2 > 18.47) = 0.001; the seed is
 * fixed, so this is deterministic and only catches real bias. */
Test(balancer, random_uniform) {
    struct balancer b;
    cr_assert_eq(balancer_init(&b, 6, BALANCE_RANDOM, NULL, 42), 0);
    cr_assert_eq(balancer_mark_down(&b, 3), 0);
    int n = 60000, cnt[6] = {0};
    for (int k = 0; k < n; k++) {
        int r = balancer_pick(&b);
        cr_assert(r >= 0 && r < 6);
        cnt[r]++;
    }
    cr_expect_eq(cnt[3], 0, "a down replica is never picked");
    double e = n / 5.0, chi2 = 0.0;
    for (int i = 0; i < 6; i++)
        if (i != 3) chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
    cr_expect(chi2 < 18.47, "chi2 = %.2f (counts %d %d %d %d %d)", chi2, cnt[0], cnt[1],
              cnt[2], cnt[4], cnt[5]);
    balancer_free(&b);
}

Test(balancer, weighted_exact_per_cycle) {
    struct balancer b;
    double w[] = {5, 1, 1};
    cr_assert_eq(balancer_init(&b, 3, BALANCE_WEIGHTED, w, 1), 0);
    /* nginx's smooth sequence for 5,1,1: a a b a c a a */
    int want[] = {0, 0, 1, 0, 2, 0, 0};
    for (int cycle = 0; cycle < 3; cycle++)
        for (int k = 0; k < 7; k++) cr_expect_eq(balancer_pick(&b), want[k]);
    balancer_free(&b);

    double w2[] = {3, 0, 2, 1, 4};
    cr_assert_eq(balancer_init(&b, 5, BALANCE_WEIGHTED, w2, 1), 0);
    for (int cycle = 0; cycle < 5; cycle++) {
        int cnt[5] = {0};
        for (int k = 0; k < 10; k++) cnt[balancer_pick(&b)]++;
        for (int i = 0; i < 5; i++)
            cr_expect_eq(cnt[i], (int)w2[i], "cycle %d replica %d: %d picks", cycle, i,
                         cnt[i]);
    }
    /* Down replica 4: cycles of 3+2+1 over the rest, from a clean start even
     * though the change came mid-cycle. */
    cr_assert_eq(balancer_pick(&b), 4);
    cr_assert_eq(balancer_mark_down(&b, 4), 0);
    for (int cycle = 0; cycle < 3; cycle++) {
        int cnt[5] = {0};
        for (int k = 0; k < 6; k++) cnt[balancer_pick(&b)]++;
        int want2[] = {3, 0, 2, 1, 0};
        for (int i = 0; i < 5; i++) cr_expect_eq(cnt[i], want2[i], "replica %d", i);
    }
    /* A new weight applies from the next pick, again exactly per cycle. */
    cr_assert_eq(balancer_set_weight(&b, 1, 2.0), 0);
    int cnt[5] = {0};
    for (int k = 0; k < 8; k++) cnt[balancer_pick(&b)]++;
    cr_expect(cnt[0] == 3 && cnt[1] == 2 && cnt[2] == 2 && cnt[3] == 1 && cnt[4] == 0);
    balancer_free(&b);
}

Test(balancer, weighted_smooth_and_fractional) {
    struct balancer b;
    double w[] = {0.5, 1.5, 1.0};
    cr_assert_eq(balancer_init(&b, 3, BALANCE_WEIGHTED, w, 1), 0);
    int n = 30000, cnt[3] = {0}, last = -1, run = 0, longest = 0;
    for (int k = 0; k < n; k++) {
        int r = balancer_pick(&b);
        cnt[r]++;
        run = r == last ? run + 1 : 1;
        last = r;
        longest = run > longest ? run : longest;
    }
    for (int i = 0; i < 3; i++)
        cr_expect(fabs(cnt[i] / (double)n - w[i] / 3.0) < 0.001, "replica %d: %d", i,
                  cnt[i]);
    cr_expect(longest <= 2, "smooth: no long bursts (longest run %d)", longest);
    balancer_free(&b);
}

Test(balancer, weighted_zero_weight) {
    struct balancer b;
    double w[] = {0, 2, 0, 1};
    cr_assert_eq(balancer_init(&b, 4, BALANCE_WEIGHTED, w, 1), 0);
    for (int k = 0; k < 300; k++) {
        int r = balancer_pick(&b);
        cr_expect(r == 1 || r == 3, "weight 0 picked: %d", r);
    }
    /* Only zero-weight replicas left: they take turns rather than fail. */
    cr_assert_eq(balancer_mark_down(&b, 1), 0);
    cr_assert_eq(balancer_mark_down(&b, 3), 0);
    int cnt[4] = {0};
    for (int k = 0; k < 10; k++) {
        int r = balancer_pick(&b);
        cr_assert(r >= 0, "%s", err_msg());
        cnt[r]++;
    }
    cr_expect(cnt[0] == 5 && cnt[2] == 5, "%d %d", cnt[0], cnt[2]);
    /* One positive weight back: only it is picked. */
    cr_assert_eq(balancer_mark_up(&b, 3), 0);
    for (int k = 0; k < 10; k++) cr_expect_eq(balancer_pick(&b), 3);
    balancer_free(&b);
}

static int min_outstanding_up(const struct balancer *b) {
    int m = -1;
    for (int i = 0; i < b->n; i++)
        if (b->r[i].up && (m < 0 || b->r[i].outstanding < m)) m = b->r[i].outstanding;
    return m;
}

/* Random interleavings of picks (each followed by started), finishes of a
 * random in-flight request, and replicas going down and up. */
Test(balancer, least_outstanding_property) {
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct balancer b;
        int n = 1 + (int)(seed % 7);
        cr_assert_eq(balancer_init(&b, n, BALANCE_LEAST_OUTSTANDING, NULL, seed), 0);
        struct rng g;
        rng_seed(&g, seed * 7919);
        int picks = 0;
        for (int step = 0; step < 20000; step++) {
            double u = rng_uniform(&g);
            int r = (int)(rng_uniform(&g) * n);
            if (u < 0.5) {
                int p = balancer_pick(&b);
                if (balancer_n_up(&b) == 0) {
                    cr_assert_eq(p, -1);
                    continue;
                }
                cr_assert(p >= 0 && p < n && b.r[p].up, "seed %llu step %d: picked %d",
                          (unsigned long long)seed, step, p);
                cr_assert_eq(b.r[p].outstanding, min_outstanding_up(&b),
                             "seed %llu step %d: picked %d with %d in flight, min is %d",
                             (unsigned long long)seed, step, p, b.r[p].outstanding,
                             min_outstanding_up(&b));
                cr_assert_eq(balancer_started(&b, p, step), 0);
                picks++;
            } else if (u < 0.9) {
                if (b.r[r].outstanding > 0)
                    cr_assert_eq(balancer_finished(&b, r, step), 0);
            } else if (u < 0.95) {
                cr_assert_eq(balancer_mark_down(&b, r), 0);
            } else {
                cr_assert_eq(balancer_mark_up(&b, r), 0);
            }
        }
        cr_expect(picks > 1000);
        balancer_free(&b);
    }
}

Test(balancer, least_outstanding_ties_round_robin) {
    struct balancer b;
    cr_assert_eq(balancer_init(&b, 3, BALANCE_LEAST_OUTSTANDING, NULL, 1), 0);
    /* Requests that finish at once: all tied at 0, so they rotate. */
    for (int k = 0; k < 9; k++) {
        int r = balancer_pick(&b);
        cr_expect_eq(r, k % 3);
        cr_assert_eq(balancer_started(&b, r, k), 0);
        cr_assert_eq(balancer_finished(&b, r, k), 0);
    }
    /* Requests that stay: fill each replica level by level. */
    for (int k = 0; k < 9; k++) {
        int r = balancer_pick(&b);
        cr_assert_eq(balancer_started(&b, r, k), 0);
    }
    for (int i = 0; i < 3; i++) cr_expect_eq(b.r[i].outstanding, 3);
    balancer_free(&b);
}

Test(balancer, down_never_picked_all_down_fails) {
    for (int pi = 0; pi < 4; pi++) {
        struct balancer b;
        double w[] = {1, 2, 3, 4, 5};
        cr_assert_eq(balancer_init(&b, 5, all_policies[pi], w, 9), 0);
        cr_assert_eq(balancer_mark_down(&b, 0), 0);
        cr_assert_eq(balancer_mark_down(&b, 3), 0);
        for (int k = 0; k < 500; k++) {
            int r = balancer_pick(&b);
            cr_assert(r == 1 || r == 2 || r == 4, "%s picked %d",
                      balancer_policy_name(all_policies[pi]), r);
            if (k % 3 == 0) cr_assert_eq(balancer_started(&b, r, k), 0);
        }
        cr_expect_eq(balancer_n_up(&b), 3);
        for (int i = 0; i < 5; i++) cr_assert_eq(balancer_mark_down(&b, i), 0);
        cr_expect_eq(balancer_n_up(&b), 0);
        cr_expect_eq(balancer_pick(&b), -1);
        cr_expect(strstr(err_msg(), "no replica") != NULL, "%s", err_msg());
        cr_assert_eq(balancer_mark_up(&b, 2), 0);
        cr_expect_eq(balancer_pick(&b), 2);
        balancer_free(&b);
    }
}

Test(balancer, timeouts) {
    struct balancer b;
    cr_assert_eq(balancer_init(&b, 4, BALANCE_ROUND_ROBIN, NULL, 1), 0);
    /* r0: busy since 10, silent. r1: busy, heard at 18. r2: idle, silent.
     * r3: busy since 10, finished one at 17, still has one. */
    cr_assert_eq(balancer_started(&b, 0, 10.0), 0);
    cr_assert_eq(balancer_started(&b, 1, 10.0), 0);
    cr_assert_eq(balancer_heard(&b, 1, 18.0), 0);
    cr_assert_eq(balancer_started(&b, 3, 10.0), 0);
    cr_assert_eq(balancer_started(&b, 3, 11.0), 0);
    cr_assert_eq(balancer_finished(&b, 3, 17.0), 0);
    int down[4] = {-1, -1, -1, -1};
    cr_expect_eq(balancer_check_timeouts(&b, 14.0, 5.0, down, 4), 0, "not yet");
    cr_expect_eq(balancer_check_timeouts(&b, 20.0, 5.0, down, 4), 1);
    cr_expect_eq(down[0], 0);
    cr_expect(!b.r[0].up && b.r[1].up && b.r[2].up && b.r[3].up);
    cr_expect_eq(balancer_check_timeouts(&b, 20.0, 5.0, down, 4), 0, "already down");
    cr_expect_eq(balancer_check_timeouts(&b, 24.0, 5.0, down, 4), 2);
    cr_expect(down[0] == 1 && down[1] == 3);
    cr_expect(b.r[2].up, "idle replicas are never timed out");
    /* Silence before work started does not count: idle since 0, busy at 100. */
    cr_assert_eq(balancer_started(&b, 2, 100.0), 0);
    cr_expect_eq(balancer_check_timeouts(&b, 101.0, 5.0, down, 4), 0);
    cr_expect_eq(balancer_check_timeouts(&b, 106.0, 5.0, down, 4), 1);
    cr_expect_eq(down[0], 2);
    cr_expect_eq(b.r[2].outstanding, 1, "in-flight count kept when marked down");
    balancer_free(&b);

    /* At most max per call; the rest on the next call. */
    cr_assert_eq(balancer_init(&b, 3, BALANCE_LEAST_OUTSTANDING, NULL, 1), 0);
    for (int i = 0; i < 3; i++) cr_assert_eq(balancer_started(&b, i, 0.0), 0);
    cr_expect_eq(balancer_check_timeouts(&b, 10.0, 1.0, down, 2), 2);
    cr_expect(down[0] == 0 && down[1] == 1);
    cr_expect(b.r[2].up);
    cr_expect_eq(balancer_check_timeouts(&b, 10.0, 1.0, NULL, 0), 1, "NULL: no limit");
    cr_expect_eq(balancer_n_up(&b), 0);
    cr_expect_eq(balancer_pick(&b), -1);
    /* Back up and heard: not timed out again at once. */
    cr_assert_eq(balancer_mark_up(&b, 1), 0);
    cr_assert_eq(balancer_heard(&b, 1, 10.0), 0);
    cr_expect_eq(balancer_check_timeouts(&b, 10.5, 1.0, down, 3), 0);
    cr_expect_eq(balancer_pick(&b), 1);
    balancer_free(&b);
}
