/* src/infer/transcript.c — one JSON object a line, written with cJSON.
 *
 * Lines are built in memory (cJSON_PrintUnformatted never emits a newline:
 * newlines in texts are escaped) and handed to write(2) whole under a mutex,
 * on a descriptor opened with O_APPEND: nothing is buffered in the process,
 * so a crash after transcript_write returns loses nothing of that line.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "transcript.h"

struct transcript {
    int fd;
    char *path;
    pthread_mutex_t mu;
    transcript_filter_fn filter;
    void *filter_ctx;
};

struct transcript *transcript_open(const char *path, int append) {
    struct transcript *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path)) || pthread_mutex_init(&t->mu, NULL)) {
        if (t) free(t->path);
        free(t);
        err_set("transcript %s: out of memory", path);
        return NULL;
    }
    t->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | (append ? 0 : O_TRUNC), 0644);
    if (t->fd < 0) {
        err_set("transcript %s: cannot open: %s", path, strerror(errno));
        pthread_mutex_destroy(&t->mu);
        free(t->path);
        free(t);
        return NULL;
    }
    return t;
}

int transcript_close(struct transcript *t) {
    if (!t) return 0;
    int rc =
        close(t->fd) ? err_set("transcript %s: close: %s", t->path, strerror(errno)) : 0;
    pthread_mutex_destroy(&t->mu);
    free(t->path);
    free(t);
    return rc;
}

void transcript_set_filter(struct transcript *t, transcript_filter_fn fn, void *ctx) {
    pthread_mutex_lock(&t->mu);
    t->filter = fn;
    t->filter_ctx = ctx;
    pthread_mutex_unlock(&t->mu);
}

double transcript_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void transcript_time(double when, char *buf) {
    long long total_ms =
        llround(when * 1000.0); /* nearest ms: 0.999 is not 0.998999... */
    time_t secs = (time_t)(total_ms / 1000);
    int ms = (int)(total_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03dZ", ms);
}

static int write_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static char *build_line(const struct transcript_entry *e, const char *text,
                        const char *when) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "conv", e->conv);
    if (e->scenario)
        cJSON_AddStringToObject(o, "scenario", e->scenario);
    else
        cJSON_AddNullToObject(o, "scenario");
    cJSON_AddNumberToObject(o, "turn", e->turn);
    cJSON_AddStringToObject(o, "who", e->who ? e->who : "");
    cJSON_AddStringToObject(o, "role", e->is_user ? "user" : "agent");
    cJSON_AddStringToObject(o, "when", when);
    cJSON_AddStringToObject(o, "text", text ? text : "");
    cJSON_AddNumberToObject(o, "tokens", e->tokens);
    if (e->replica >= 0)
        cJSON_AddNumberToObject(o, "replica", e->replica);
    else
        cJSON_AddNullToObject(o, "replica");
    if (e->latency_s >= 0)
        cJSON_AddNumberToObject(o, "latency_ms", round(e->latency_s * 1e6) / 1e3);
    else
        cJSON_AddNullToObject(o, "latency_ms");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int transcript_write(struct transcript *t, const struct transcript_entry *e) {
    char when[32];
    transcript_time(e->when > 0 ? e->when : transcript_now(), when);
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    char *filtered = NULL, *line = NULL;
    if (t->filter) {
        err_set("transcript %s: the text filter failed", t->path);
        if (!(filtered = t->filter(t->filter_ctx, e->text ? e->text : ""))) {
            rc = -1;
            goto out;
        }
    }
    if (!(line = build_line(e, filtered ? filtered : e->text, when))) {
        rc = err_set("transcript %s: out of memory", t->path);
        goto out;
    }
    size_t n = strlen(line);
    line[n] = '\n'; /* cJSON's terminator becomes the newline */
    if (write_all(t->fd, line, n + 1))
        rc = err_set("transcript %s: write: %s", t->path, strerror(errno));
out:
    pthread_mutex_unlock(&t->mu);
    free(filtered);
    cJSON_free(line);
    return rc;
}
