/* src/infer/metrics.h — the serving metrics in Prometheus' text format.
 *
 * A small registry: metrics are declared once (name, type, help, and for a
 * histogram its bucket upper bounds), then updated from any thread and
 * rendered for `GET /metrics` in the text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/):
 *
 *   # HELP llmpi_http_requests_total HTTP requests answered, by endpoint and status.
 *   # TYPE llmpi_http_requests_total counter
 *   llmpi_http_requests_total{code="200",endpoint="/v1/models"} 3
 *
 * A metric holds one series per label set. Labels are given as a flat list
 * of key, value strings (NULL-terminated); values are escaped here (\\, \"
 * and \n), keys must be valid label names. Histograms are rendered as the
 * cumulative _bucket{le="..."} series (le="+Inf" last), _sum and _count.
 *
 * Thread-safe: one mutex around every update and the rendering, so the
 * coordinator updates while HTTP threads render. Names are checked at
 * declaration ([a-zA-Z_:][a-zA-Z0-9_:]*); updating an undeclared name, or
 * with the wrong type, is an error (-1 + err_set), never a crash.
 */
#ifndef LLMPI_METRICS_H
#define LLMPI_METRICS_H

#include <stddef.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;

struct metrics *metrics_create(void); /* NULL + err_set when out of memory */
void metrics_free(struct metrics *m);

/* Declare a metric. Histograms take n_buckets > 0 finite upper bounds in
 * increasing order (copied); others pass NULL, 0. help may be NULL (no
 * HELP line). -1 + err_set on a bad name, a name declared twice (or one
 * that a histogram's _bucket/_sum/_count samples would clash with), bad
 * buckets, or out of memory. */
int metrics_declare(struct metrics *m, const char *name, enum metric_type type,
                    const char *help, const double *buckets, int n_buckets);

/* labels: NULL, or "key1", "value1", "key2", "value2", ..., NULL. The series
 * of a label set is created on first use (label sets compare as given, in
 * order: pass a metric's keys always in the same order). A key given twice,
 * a key without a value, or "le" on a histogram is an error. */
int metrics_counter_add(struct metrics *m, const char *name, const char *const *labels,
                        double v); /* v >= 0 and finite */
int metrics_gauge_set(struct metrics *m, const char *name, const char *const *labels,
                      double v);
int metrics_histogram_observe(struct metrics *m, const char *name,
                              const char *const *labels, double v); /* not NaN */

/* The whole registry as exposition text (malloc'd, NUL-terminated, *len its
 * length when len is not NULL), metrics in declaration order, series in
 * creation order. A metric with no series yet shows its unlabelled series
 * at 0 (a histogram: every bucket, _sum and _count 0) until the first update
 * creates a real one, labelled or not. NULL + err_set when out of memory. */
char *metrics_render(struct metrics *m, size_t *len);

#endif
