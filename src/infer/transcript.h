/* src/infer/transcript.h — the --transcript file of `llmpi serve`.
 *
 * JSON lines, one per conversation message:
 *   {"conv":3,"scenario":"customer-service","turn":2,"who":"billing",
 *    "role":"agent","when":"2026-11-24T10:15:02.318Z","text":"...",
 *    "tokens":41,"replica":1,"latency_ms":812.5}
 * "role" is "agent" or "user"; user lines have "tokens":0 and null replica
 * and latency_ms. Each line goes out in one write(2) on a file opened with
 * O_APPEND, so a crash never loses or tears a line already written, and
 * writers in several threads never interleave within a line.
 *
 * An optional filter rewrites each text before it is written (the PII
 * redaction hook); none by default.
 */
#ifndef LLMPI_TRANSCRIPT_H
#define LLMPI_TRANSCRIPT_H

/* Returns a malloc'd replacement for `text` (the transcript frees it), or
 * NULL to fail the write (transcript_write then returns -1; the filter may
 * err_set why, else the message says the filter failed). */
typedef char *(*transcript_filter_fn)(void *ctx, const char *text);

struct transcript_entry {
    int conv;             /* conversation id */
    const char *scenario; /* NULL writes null */
    int turn;             /* 0 = the opening, then 1, 2, ... */
    const char *who;      /* agent name or "user" */
    int is_user;          /* role "user" instead of "agent" */
    const char *text;
    int tokens;       /* generated tokens (0 for user lines) */
    int replica;      /* replica group that generated it, -1 writes null */
    double latency_s; /* request latency, < 0 writes null */
    double when;      /* seconds since the Unix epoch; 0 = now */
};

struct transcript;

/* Open (create) `path`; append = 0 truncates it first. NULL + err_set. */
struct transcript *transcript_open(const char *path, int append);
/* Close; -1 + err_set when closing reports an error. NULL is fine. */
int transcript_close(struct transcript *t);

void transcript_set_filter(struct transcript *t, transcript_filter_fn fn, void *ctx);

/* Write one line. 0, or -1 + err_set (write error, filter failure). */
int transcript_write(struct transcript *t, const struct transcript_entry *e);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) for `when` seconds since the epoch into
 * buf (at least 32 bytes). */
void transcript_time(double when, char *buf);
/* Seconds since the epoch now (CLOCK_REALTIME). */
double transcript_now(void);

#endif
