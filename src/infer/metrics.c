/* src/infer/metrics.c — the Prometheus registry (see metrics.h).
 *
 * Metrics live in a growable array in declaration order and are found by a
 * linear search: a server declares a few dozen, so a hash table would not
 * pay for itself. A series is keyed by its rendered label text
 * (`code="200",endpoint="/v1/models"`): escaping is injective, so equal
 * text means an equal label set as given, and rendering reuses it as is.
 * That text is built and checked before the lock is taken, so the critical
 * section of an update is a search and an add (plus one allocation the
 * first time a label set is seen).
 *
 * Counters and gauges hold a double; histograms hold per-bucket counts (not
 * cumulative: an observation touches one bucket) that rendering sums up, a
 * double _sum and an integer _count. Numbers are written in the shortest
 * form that reads back as the same double ("0.005", not
 * "0.0050000000000000001"), integers without an exponent up to 1e15, and
 * NaN / +Inf / -Inf as Prometheus spells them. printf / strtod follow
 * LC_NUMERIC: llmpi never calls setlocale, so that is the "C" locale.
 *
 * A metric that has no series yet renders as its unlabelled series at zero
 * (histogram: every bucket 0, _sum 0, _count 0), so that a scraper sees it
 * start from 0 and rate() counts the first increment. The registry cannot
 * know at declaration whether a metric will carry labels: once any series
 * exists (labelled or not), only real series are rendered.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "metrics.h"

struct series {
    char *labels;     /* rendered label pairs without braces; "" when none */
    double value;     /* counter, gauge */
    uint64_t *counts; /* histogram: n_buckets + 1 (the last is +Inf), not cumulative */
    double sum;
    uint64_t count;
};

struct metric {
    char *name, *help;
    enum metric_type type;
    double *bounds;
    int n_bounds;
    struct series *s;
    int ns, caps;
};

struct metrics {
    pthread_mutex_t mu;
    struct metric *m;
    int n, cap;
};

/* ---- names, labels, numbers ---------------------------------------------- */

static int is_alpha_(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names (colon 1), without ':' for
 * label names (colon 0). */
static int valid_name(const char *s, int colon) {
    if (!s || !*s || is_digit(*s)) return 0;
    for (; *s; s++)
        if (!is_alpha_(*s) && !is_digit(*s) && !(colon && *s == ':')) return 0;
    return 1;
}

/* Shortest of %.15g..%.17g that reads back as v; buf holds at least 32. */
static void fmt_num(char *buf, size_t size, double v) {
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v) return;
    }
}

/* A growable text buffer; ok drops to 0 on the first failed allocation and
 * every later append is a no-op. */
struct buf {
    char *p;
    size_t len, cap;
    int ok;
};

static void put(struct buf *b, const char *s, size_t n) {
    if (!b->ok) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->ok = 0;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

/* Label values escape \, " and newline; HELP text escapes \ and newline. */
static void put_escaped(struct buf *b, const char *s, int quote) {
    for (; *s; s++) {
        if (*s == '\\')
            puts_(b, "\\\\");
        else if (*s == '\n')
            puts_(b, "\\n");
        else if (quote && *s == '"')
            puts_(b, "\\\"");
        else
            put(b, s, 1);
    }
}

/* The rendered label text of `labels` (malloc'd; "" for NULL or an empty
 * list), or NULL + err_set on a bad list. `hist` reserves "le". */
static char *label_text(const char *name, const char *const *labels, int hist) {
    struct buf b = {NULL, 0, 0, 1};
    put(&b, "", 0);
    for (int i = 0; labels && labels[i]; i += 2) {
        const char *k = labels[i], *v = labels[i + 1];
        if (!v) {
            free(b.p);
            err_set("metrics: %s: label '%s' has no value", name, k);
            return NULL;
        }
        if (!valid_name(k, 0)) {
            free(b.p);
            err_set("metrics: %s: bad label name '%s' (use [a-zA-Z_][a-zA-Z0-9_]*)", name,
                    k);
            return NULL;
        }
        if (hist && !strcmp(k, "le")) {
            free(b.p);
            err_set("metrics: %s: 'le' is reserved for histogram buckets", name);
            return NULL;
        }
        for (int j = 0; j < i; j += 2)
            if (!strcmp(labels[j], k)) {
                free(b.p);
                err_set("metrics: %s: label '%s' given twice", name, k);
                return NULL;
            }
        if (i) puts_(&b, ",");
        puts_(&b, k);
        puts_(&b, "=\"");
        put_escaped(&b, v, 1);
        puts_(&b, "\"");
    }
    if (!b.ok) {
        free(b.p);
        err_set("metrics: out of memory");
        return NULL;
    }
    return b.p;
}

/* ---- the registry -------------------------------------------------------- */

struct metrics *metrics_create(void) {
    struct metrics *m = calloc(1, sizeof *m);
    if (!m || pthread_mutex_init(&m->mu, NULL)) {
        free(m);
        err_set("metrics: out of memory");
        return NULL;
    }
    return m;
}

static void metric_free(struct metric *x) {
    for (int i = 0; i < x->ns; i++) {
        free(x->s[i].labels);
        free(x->s[i].counts);
    }
    free(x->s);
    free(x->name);
    free(x->help);
    free(x->bounds);
}

void metrics_free(struct metrics *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++)
        metric_free(&m->m[i]);
    free(m->m);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static const char *const hist_suffix[] = {"_bucket", "_sum", "_count"};

/* 1 when `name` is `base` followed by one of the histogram suffixes. */
static int is_hist_part(const char *name, const char *base) {
    size_t n = strlen(base);
    if (strncmp(name, base, n)) return 0;
    for (int i = 0; i < 3; i++)
        if (!strcmp(name + n, hist_suffix[i])) return 1;
    return 0;
}

/* Another metric whose samples would share a name with this one's. Called
 * with the lock held. */
static const char *clash(const struct metrics *m, const char *name,
                         enum metric_type type) {
    for (int i = 0; i < m->n; i++) {
        const struct metric *x = &m->m[i];
        if (!strcmp(x->name, name) ||
            (x->type == METRIC_HISTOGRAM && is_hist_part(name, x->name)) ||
            (type == METRIC_HISTOGRAM && is_hist_part(x->name, name)))
            return x->name;
    }
    return NULL;
}

int metrics_declare(struct metrics *m, const char *name, enum metric_type type,
                    const char *help, const double *buckets, int n_buckets) {
    if (!valid_name(name, 1))
        return err_set("metrics: bad metric name '%s' (use [a-zA-Z_:][a-zA-Z0-9_:]*)",
                       name ? name : "(null)");
    if (type != METRIC_COUNTER && type != METRIC_GAUGE && type != METRIC_HISTOGRAM)
        return err_set("metrics: %s: unknown metric type %d", name, (int)type);
    if (type == METRIC_HISTOGRAM) {
        if (!buckets || n_buckets <= 0)
            return err_set("metrics: %s: a histogram needs at least one bucket", name);
        for (int i = 0; i < n_buckets; i++) {
            if (!isfinite(buckets[i]))
                return err_set("metrics: %s: bucket %d is not finite", name, i);
            if (i && !(buckets[i] > buckets[i - 1]))
                return err_set("metrics: %s: bucket %d (%g) is not above bucket %d (%g)",
                               name, i, buckets[i], i - 1, buckets[i - 1]);
        }
    } else if (buckets || n_buckets) {
        return err_set("metrics: %s: only histograms take buckets", name);
    }

    struct metric x = {0};
    x.type = type;
    x.name = strdup(name);
    x.help = help ? strdup(help) : NULL;
    if (type == METRIC_HISTOGRAM) {
        x.bounds = malloc((size_t)n_buckets * sizeof *x.bounds);
        if (x.bounds) memcpy(x.bounds, buckets, (size_t)n_buckets * sizeof *x.bounds);
        x.n_bounds = n_buckets;
    }
    if (!x.name || (help && !x.help) || (type == METRIC_HISTOGRAM && !x.bounds)) {
        metric_free(&x);
        return err_set("metrics: out of memory");
    }

    int rc = 0;
    pthread_mutex_lock(&m->mu);
    const char *other = clash(m, name, type);
    if (other) {
        rc = !strcmp(other, name)
                 ? err_set("metrics: %s is declared twice", name)
                 : err_set("metrics: %s clashes with histogram samples of %s", name,
                           strlen(other) < strlen(name) ? other : name);
    } else if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 16;
        struct metric *p = realloc(m->m, (size_t)cap * sizeof *p);
        if (!p)
            rc = err_set("metrics: out of memory");
        else {
            m->m = p;
            m->cap = cap;
        }
    }
    if (!rc) m->m[m->n++] = x;
    pthread_mutex_unlock(&m->mu);
    if (rc) metric_free(&x);
    return rc;
}

/* The series of `labels` (label text lt, taken over when a series is
 * created; *taken says so), created on first use. Lock held. */
static struct series *get_series(struct metric *x, char *lt, int *taken) {
    for (int i = 0; i < x->ns; i++)
        if (!strcmp(x->s[i].labels, lt)) return &x->s[i];
    if (x->ns == x->caps) {
        int cap = x->caps ? 2 * x->caps : 4;
        struct series *p = realloc(x->s, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        x->s = p;
        x->caps = cap;
    }
    struct series s = {0};
    if (x->type == METRIC_HISTOGRAM &&
        !(s.counts = calloc((size_t)x->n_bounds + 1, sizeof *s.counts)))
        return NULL;
    s.labels = lt;
    *taken = 1;
    x->s[x->ns] = s;
    return &x->s[x->ns++];
}

static const char *type_word(enum metric_type t) {
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

/* One update: find the metric, check its type, apply to its series. */
static int update(struct metrics *m, const char *name, const char *const *labels,
                  enum metric_type type, double v) {
    if (!name) return err_set("metrics: no metric name");
    char *lt = label_text(name, labels, type == METRIC_HISTOGRAM);
    if (!lt) return -1;
    int rc = 0, taken = 0;
    pthread_mutex_lock(&m->mu);
    struct metric *x = NULL;
    for (int i = 0; i < m->n && !x; i++)
        if (!strcmp(m->m[i].name, name)) x = &m->m[i];
    struct series *s = NULL;
    if (!x)
        rc = err_set("metrics: %s is not declared", name);
    else if (x->type != type)
        rc = err_set("metrics: %s is a %s, not a %s", name, type_word(x->type),
                     type_word(type));
    else if (!(s = get_series(x, lt, &taken)))
        rc = err_set("metrics: out of memory");
    else if (type == METRIC_COUNTER)
        s->value += v;
    else if (type == METRIC_GAUGE)
        s->value = v;
    else {
        int b = 0;
        while (b < x->n_bounds && !(v <= x->bounds[b]))
            b++;
        s->counts[b]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&m->mu);
    if (!taken) free(lt);
    return rc;
}

int metrics_counter_add(struct metrics *m, const char *name, const char *const *labels,
                        double v) {
    if (!(v >= 0) || isinf(v))
        return err_set("metrics: %s: a counter only goes up by a finite v >= 0 (got %g)",
                       name ? name : "(null)", v);
    return update(m, name, labels, METRIC_COUNTER, v);
}

int metrics_gauge_set(struct metrics *m, const char *name, const char *const *labels,
                      double v) {
    return update(m, name, labels, METRIC_GAUGE, v);
}

int metrics_histogram_observe(struct metrics *m, const char *name,
                              const char *const *labels, double v) {
    if (isnan(v))
        return err_set("metrics: %s: cannot observe NaN", name ? name : "(null)");
    return update(m, name, labels, METRIC_HISTOGRAM, v);
}

/* ---- rendering ----------------------------------------------------------- */

/* name+suffix{labels[,extra]} value\n */
static void sample(struct buf *b, const char *name, const char *suffix, const char *lt,
                   const char *extra, double v) {
    char num[32];
    puts_(b, name);
    puts_(b, suffix);
    if (*lt || extra) {
        puts_(b, "{");
        puts_(b, lt);
        if (*lt && extra) puts_(b, ",");
        if (extra) puts_(b, extra);
        puts_(b, "}");
    }
    puts_(b, " ");
    fmt_num(num, sizeof num, v);
    puts_(b, num);
    puts_(b, "\n");
}

static void render_histogram(struct buf *b, const struct metric *x,
                             const struct series *s) {
    char le[48], num[32];
    uint64_t cum = 0;
    for (int i = 0; i <= x->n_bounds; i++) {
        cum += s->counts ? s->counts[i] : 0;
        if (i < x->n_bounds) fmt_num(num, sizeof num, x->bounds[i]);
        snprintf(le, sizeof le, "le=\"%s\"", i < x->n_bounds ? num : "+Inf");
        sample(b, x->name, "_bucket", s->labels, le, (double)cum);
    }
    sample(b, x->name, "_sum", s->labels, NULL, s->sum);
    sample(b, x->name, "_count", s->labels, NULL, (double)s->count);
}

char *metrics_render(struct metrics *m, size_t *len) {
    struct buf b = {NULL, 0, 0, 1};
    put(&b, "", 0);
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++) {
        const struct metric *x = &m->m[i];
        if (x->help) {
            puts_(&b, "# HELP ");
            puts_(&b, x->name);
            puts_(&b, " ");
            put_escaped(&b, x->help, 0);
            puts_(&b, "\n");
        }
        puts_(&b, "# TYPE ");
        puts_(&b, x->name);
        puts_(&b, " ");
        puts_(&b, type_word(x->type));
        puts_(&b, "\n");
        static const struct series zero = {(char *)"", 0, NULL, 0, 0};
        int ns = x->ns ? x->ns : 1;
        for (int j = 0; j < ns; j++) {
            const struct series *s = x->ns ? &x->s[j] : &zero;
            if (x->type == METRIC_HISTOGRAM)
                render_histogram(&b, x, s);
            else
                sample(&b, x->name, "", s->labels, NULL, s->value);
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (!b.ok) {
        free(b.p);
        err_set("metrics: out of memory");
        return NULL;
    }
    if (len) *len = b.len;
    return b.p;
}
