/* tests/test_metrics.c — the Prometheus registry (src/infer/metrics.*).
 *
 * The exposition text of a small registry byte for byte (label escaping,
 * HELP escaping, cumulative histogram buckets with observations on and
 * between bounds, metrics declared but never updated), how numbers are
 * written, every kind of misuse answered with -1 and a message, and
 * updates from several threads while another renders: no increment lost.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics.h"

Test(metrics, exposition_text) {
    struct metrics *m = metrics_create();
    cr_assert_not_null(m);
    static const double lat[] = {0.005, 0.25, 1};
    cr_assert_eq(metrics_declare(m, "llmpi_http_requests_total", METRIC_COUNTER,
                                 "HTTP requests answered, by endpoint and status.", NULL,
                                 0),
                 0, "%s", err_msg());
    cr_assert_eq(metrics_declare(m, "llmpi_queue_depth", METRIC_GAUGE,
                                 "Requests waiting.\nA \\ in help.", NULL, 0),
                 0, "%s", err_msg());
    cr_assert_eq(metrics_declare(m, "llmpi_latency_seconds", METRIC_HISTOGRAM,
                                 "Time to answer.", lat, 3),
                 0, "%s", err_msg());
    cr_assert_eq(metrics_declare(m, "llmpi_errors_total", METRIC_COUNTER,
                                 "Never happened.", NULL, 0),
                 0, "%s", err_msg());
    cr_assert_eq(metrics_declare(m, "llmpi:idle_hist", METRIC_HISTOGRAM, NULL, lat, 1), 0,
                 "%s", err_msg());

    const char *const ok[] = {"code", "200", "endpoint", "/v1/models", NULL};
    const char *const odd[] = {"code", "500", "endpoint", "a\"b\\c\nd", NULL};
    cr_assert_eq(metrics_counter_add(m, "llmpi_http_requests_total", ok, 1), 0, "%s",
                 err_msg());
    cr_assert_eq(metrics_counter_add(m, "llmpi_http_requests_total", odd, 1), 0, "%s",
                 err_msg());
    cr_assert_eq(metrics_counter_add(m, "llmpi_http_requests_total", ok, 2), 0, "%s",
                 err_msg());
    cr_assert_eq(metrics_gauge_set(m, "llmpi_queue_depth", NULL, 7.5), 0);
    cr_assert_eq(metrics_gauge_set(m, "llmpi_queue_depth", NULL, 2), 0);
    /* on a bound, between bounds, on the last bound, above every bound */
    const double obs[] = {0.25, 0.5, 1, 4};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(metrics_histogram_observe(m, "llmpi_latency_seconds", NULL, obs[i]),
                     0, "%s", err_msg());

    const char *want =
        "# HELP llmpi_http_requests_total HTTP requests answered, by endpoint and "
        "status.\n"
        "# TYPE llmpi_http_requests_total counter\n"
        "llmpi_http_requests_total{code=\"200\",endpoint=\"/v1/models\"} 3\n"
        "llmpi_http_requests_total{code=\"500\",endpoint=\"a\\\"b\\\\c\\nd\"} 1\n"
        "# HELP llmpi_queue_depth Requests waiting.\\nA \\\\ in help.\n"
        "# TYPE llmpi_queue_depth gauge\n"
        "llmpi_queue_depth 2\n"
        "# HELP llmpi_latency_seconds Time to answer.\n"
        "# TYPE llmpi_latency_seconds histogram\n"
        "llmpi_latency_seconds_bucket{le=\"0.005\"} 0\n"
        "llmpi_latency_seconds_bucket{le=\"0.25\"} 1\n"
        "llmpi_latency_seconds_bucket{le=\"1\"} 3\n"
        "llmpi_latency_seconds_bucket{le=\"+Inf\"} 4\n"
        "llmpi_latency_seconds_sum 5.75\n"
        "llmpi_latency_seconds_count 4\n"
        "# HELP llmpi_errors_total Never happened.\n"
        "# TYPE llmpi_errors_total counter\n"
        "llmpi_errors_total 0\n"
        "# TYPE llmpi:idle_hist histogram\n"
        "llmpi:idle_hist_bucket{le=\"0.005\"} 0\n"
        "llmpi:idle_hist_bucket{le=\"+Inf\"} 0\n"
        "llmpi:idle_hist_sum 0\n"
        "llmpi:idle_hist_count 0\n";
    size_t len = 0;
    char *text = metrics_render(m, &len);
    cr_assert_not_null(text, "%s", err_msg());
    cr_expect_str_eq(text, want, "got:\n%s", text);
    cr_expect_eq(len, strlen(want));
    free(text);
    metrics_free(m);
}

Test(metrics, labelled_histogram_and_series_order) {
    struct metrics *m = metrics_create();
    cr_assert_not_null(m);
    static const double b[] = {0.1, 10};
    cr_assert_eq(metrics_declare(m, "h", METRIC_HISTOGRAM, "h.", b, 2), 0);
    const char *const x[] = {"agent", "innkeeper", NULL};
    const char *const y[] = {"agent", "smith", NULL};
    const char *const none[] = {NULL}; /* an empty list is the unlabelled series */
    cr_assert_eq(metrics_histogram_observe(m, "h", y, 0.1), 0);
    cr_assert_eq(metrics_histogram_observe(m, "h", x, 20), 0);
    cr_assert_eq(metrics_histogram_observe(m, "h", none, 5), 0);
    cr_assert_eq(metrics_histogram_observe(m, "h", NULL, -INFINITY), 0);
    char *text = metrics_render(m, NULL);
    cr_assert_not_null(text);
    cr_expect_str_eq(text,
                     "# HELP h h.\n"
                     "# TYPE h histogram\n"
                     "h_bucket{agent=\"smith\",le=\"0.1\"} 1\n"
                     "h_bucket{agent=\"smith\",le=\"10\"} 1\n"
                     "h_bucket{agent=\"smith\",le=\"+Inf\"} 1\n"
                     "h_sum{agent=\"smith\"} 0.1\n"
                     "h_count{agent=\"smith\"} 1\n"
                     "h_bucket{agent=\"innkeeper\",le=\"0.1\"} 0\n"
                     "h_bucket{agent=\"innkeeper\",le=\"10\"} 0\n"
                     "h_bucket{agent=\"innkeeper\",le=\"+Inf\"} 1\n"
                     "h_sum{agent=\"innkeeper\"} 20\n"
                     "h_count{agent=\"innkeeper\"} 1\n"
                     "h_bucket{le=\"0.1\"} 1\n"
                     "h_bucket{le=\"10\"} 2\n"
                     "h_bucket{le=\"+Inf\"} 2\n"
                     "h_sum -Inf\n"
                     "h_count 2\n",
                     "got:\n%s", text);
    free(text);
    metrics_free(m);
}

/* A labelled metric with no series yet renders its unlabelled zero; the
 * first real series replaces it. An empty registry renders "". */
Test(metrics, never_updated) {
    struct metrics *m = metrics_create();
    cr_assert_not_null(m);
    size_t len = 99;
    char *text = metrics_render(m, &len);
    cr_assert_not_null(text);
    cr_expect_str_eq(text, "");
    cr_expect_eq(len, 0);
    free(text);
    cr_assert_eq(metrics_declare(m, "c_total", METRIC_COUNTER, "c.", NULL, 0), 0);
    text = metrics_render(m, NULL);
    cr_expect_str_eq(text, "# HELP c_total c.\n# TYPE c_total counter\nc_total 0\n");
    free(text);
    const char *const l[] = {"k", "v", NULL};
    cr_assert_eq(metrics_counter_add(m, "c_total", l, 0), 0);
    text = metrics_render(m, NULL);
    cr_expect_str_eq(text,
                     "# HELP c_total c.\n# TYPE c_total counter\nc_total{k=\"v\"} 0\n");
    free(text);
    metrics_free(m);
}

static void expect_gauge_text(struct metrics *m, double v, const char *want) {
    cr_assert_eq(metrics_gauge_set(m, "g", NULL, v), 0);
    char *text = metrics_render(m, NULL);
    cr_assert_not_null(text);
    const char *line = strstr(text, "\ng ");
    cr_assert_not_null(line, "%s", text);
    char got[64];
    size_t n = strcspn(line + 3, "\n");
    cr_assert_lt(n, sizeof got);
    memcpy(got, line + 3, n);
    got[n] = '\0';
    cr_expect_str_eq(got, want, "value %.17g", v);
    free(text);
}

Test(metrics, numbers) {
    struct metrics *m = metrics_create();
    cr_assert_not_null(m);
    cr_assert_eq(metrics_declare(m, "g", METRIC_GAUGE, "g.", NULL, 0), 0);
    expect_gauge_text(m, 3, "3");
    expect_gauge_text(m, -42, "-42");
    expect_gauge_text(m, 123456789012345.0, "123456789012345");
    expect_gauge_text(m, 0.005, "0.005");
    expect_gauge_text(m, 0.1 + 0.2, "0.30000000000000004");
    expect_gauge_text(m, 1e20, "1e+20");
    expect_gauge_text(m, 2.5e-7, "2.5e-07");
    expect_gauge_text(m, NAN, "NaN");
    expect_gauge_text(m, INFINITY, "+Inf");
    expect_gauge_text(m, -INFINITY, "-Inf");
    metrics_free(m);
}

Test(metrics, errors) {
    struct metrics *m = metrics_create();
    cr_assert_not_null(m);
    static const double b[] = {1, 2};
    static const double same[] = {1, 1}, down[] = {2, 1}, inf[] = {1, INFINITY};
    const char *bad_names[] = {"", "9lives", "a-b", "a b", "é", NULL};
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(metrics_declare(m, bad_names[i], METRIC_COUNTER, "x", NULL, 0), -1,
                     "name '%s'", bad_names[i] ? bad_names[i] : "(null)");
        cr_expect_not_null(strstr(err_msg(), "bad metric name"), "%s", err_msg());
    }
    cr_assert_eq(metrics_declare(m, "c_total", METRIC_COUNTER, "c", NULL, 0), 0);
    cr_expect_eq(metrics_declare(m, "c_total", METRIC_GAUGE, "again", NULL, 0), -1);
    cr_expect_str_eq(err_msg(), "metrics: c_total is declared twice");
    cr_expect_eq(metrics_declare(m, "h", METRIC_HISTOGRAM, "h", same, 2), -1);
    cr_expect_not_null(strstr(err_msg(), "bucket 1 (1) is not above bucket 0 (1)"), "%s",
                       err_msg());
    cr_expect_eq(metrics_declare(m, "h", METRIC_HISTOGRAM, "h", down, 2), -1);
    cr_expect_eq(metrics_declare(m, "h", METRIC_HISTOGRAM, "h", inf, 2), -1);
    cr_expect_not_null(strstr(err_msg(), "not finite"), "%s", err_msg());
    cr_expect_eq(metrics_declare(m, "h", METRIC_HISTOGRAM, "h", b, 0), -1);
    cr_expect_eq(metrics_declare(m, "h", METRIC_HISTOGRAM, "h", NULL, 2), -1);
    cr_expect_eq(metrics_declare(m, "g", METRIC_GAUGE, "g", b, 2), -1);
    cr_expect_eq(metrics_declare(m, "g", (enum metric_type)7, "g", NULL, 0), -1);
    cr_assert_eq(metrics_declare(m, "h", METRIC_HISTOGRAM, "h", b, 2), 0);
    cr_assert_eq(metrics_declare(m, "g", METRIC_GAUGE, "g", NULL, 0), 0);
    /* samples h_count / c_total_sum would collide with a histogram's */
    cr_expect_eq(metrics_declare(m, "h_count", METRIC_COUNTER, "x", NULL, 0), -1);
    cr_expect_not_null(strstr(err_msg(), "clashes"), "%s", err_msg());
    cr_assert_eq(metrics_declare(m, "x_bucket", METRIC_GAUGE, "x", NULL, 0), 0);
    cr_expect_eq(metrics_declare(m, "x", METRIC_HISTOGRAM, "x", b, 2), -1);

    cr_expect_eq(metrics_counter_add(m, "nope_total", NULL, 1), -1);
    cr_expect_str_eq(err_msg(), "metrics: nope_total is not declared");
    cr_expect_eq(metrics_gauge_set(m, "c_total", NULL, 1), -1);
    cr_expect_str_eq(err_msg(), "metrics: c_total is a counter, not a gauge");
    cr_expect_eq(metrics_histogram_observe(m, "g", NULL, 1), -1);
    cr_expect_str_eq(err_msg(), "metrics: g is a gauge, not a histogram");
    cr_expect_eq(metrics_counter_add(m, "h", NULL, 1), -1);
    cr_expect_eq(metrics_counter_add(m, "c_total", NULL, -1), -1);
    cr_expect_eq(metrics_counter_add(m, "c_total", NULL, NAN), -1);
    cr_expect_eq(metrics_counter_add(m, "c_total", NULL, INFINITY), -1);
    cr_expect_eq(metrics_histogram_observe(m, "h", NULL, NAN), -1);

    const char *const bad_key[] = {"1code", "200", NULL};
    const char *const colon_key[] = {"a:b", "1", NULL};
    const char *const no_value[] = {"code", NULL};
    const char *const twice[] = {"a", "1", "a", "2", NULL};
    const char *const le[] = {"le", "1", NULL};
    cr_expect_eq(metrics_counter_add(m, "c_total", bad_key, 1), -1);
    cr_expect_not_null(strstr(err_msg(), "bad label name '1code'"), "%s", err_msg());
    cr_expect_eq(metrics_counter_add(m, "c_total", colon_key, 1), -1);
    cr_expect_eq(metrics_counter_add(m, "c_total", no_value, 1), -1);
    cr_expect_not_null(strstr(err_msg(), "no value"), "%s", err_msg());
    cr_expect_eq(metrics_counter_add(m, "c_total", twice, 1), -1);
    cr_expect_eq(metrics_histogram_observe(m, "h", le, 1), -1);
    cr_expect_eq(metrics_gauge_set(m, "g", le, 1), 0); /* only histograms reserve le */

    /* nothing above changed a value */
    char *text = metrics_render(m, NULL);
    cr_assert_not_null(text);
    cr_expect_not_null(strstr(text, "\nc_total 0\n"), "%s", text);
    cr_expect_not_null(strstr(text, "\nh_count 0\n"), "%s", text);
    free(text);
    metrics_free(m);
}

/* ---- threads ------------------------------------------------------------- */

#define N_THREADS 4
#define N_ADDS 10000

static struct metrics *shared;
static const char *const worker_labels[N_THREADS][3] = {
    {"w", "0", NULL}, {"w", "1", NULL}, {"w", "2", NULL}, {"w", "3", NULL}};

static void *worker(void *arg) {
    int id = (int)(size_t)arg;
    const char *const same[] = {"w", "all", NULL};
    for (int i = 0; i < N_ADDS; i++) {
        if (metrics_counter_add(shared, "t_total", same, 1)) return arg;
        if (metrics_counter_add(shared, "t_total", worker_labels[id], 1)) return arg;
        if (metrics_histogram_observe(shared, "t_hist", NULL, (i % 4) * 0.5)) return arg;
        if (metrics_gauge_set(shared, "t_gauge", NULL, i)) return arg;
    }
    return NULL;
}

static volatile int stop_render;
static void *renderer(void *arg) {
    (void)arg;
    while (!stop_render) {
        char *t = metrics_render(shared, NULL);
        if (!t) return (void *)1;
        free(t);
    }
    return NULL;
}

Test(metrics, threads) {
    shared = metrics_create();
    cr_assert_not_null(shared);
    static const double b[] = {0.5, 1};
    cr_assert_eq(metrics_declare(shared, "t_total", METRIC_COUNTER, "t", NULL, 0), 0);
    cr_assert_eq(metrics_declare(shared, "t_hist", METRIC_HISTOGRAM, "t", b, 2), 0);
    cr_assert_eq(metrics_declare(shared, "t_gauge", METRIC_GAUGE, "t", NULL, 0), 0);
    pthread_t th[N_THREADS], r;
    stop_render = 0;
    cr_assert_eq(pthread_create(&r, NULL, renderer, NULL), 0);
    for (int i = 0; i < N_THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, worker, (void *)(size_t)i), 0);
    for (int i = 0; i < N_THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        cr_expect_null(ret, "worker %d failed", i);
    }
    stop_render = 1;
    void *ret;
    pthread_join(r, &ret);
    cr_expect_null(ret);

    char *text = metrics_render(shared, NULL);
    cr_assert_not_null(text);
    cr_expect_not_null(strstr(text, "t_total{w=\"all\"} 40000\n"), "%s", text);
    for (int i = 0; i < N_THREADS; i++) {
        char line[64];
        snprintf(line, sizeof line, "t_total{w=\"%d\"} 10000\n", i);
        cr_expect_not_null(strstr(text, line), "%s", text);
    }
    /* per thread: 2500 each of 0, 0.5, 1, 1.5 */
    cr_expect_not_null(strstr(text, "t_hist_bucket{le=\"0.5\"} 20000\n"), "%s", text);
    cr_expect_not_null(strstr(text, "t_hist_bucket{le=\"1\"} 30000\n"), "%s", text);
    cr_expect_not_null(strstr(text, "t_hist_bucket{le=\"+Inf\"} 40000\n"), "%s", text);
    cr_expect_not_null(strstr(text, "t_hist_sum 30000\n"), "%s", text);
    cr_expect_not_null(strstr(text, "t_hist_count 40000\n"), "%s", text);
    cr_expect_not_null(strstr(text, "t_gauge 9999\n"), "%s", text);
    free(text);
    metrics_free(shared);
}
