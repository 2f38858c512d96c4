/* src/infer/stopstr.h — stop strings over a streamed byte output.
 *
 * Generation streams bytes as tokens are produced, but a stop string may
 * arrive split across tokens ("\n\nUs" + "er:"). The matcher holds back the
 * shortest tail of the output that could still become a stop string and
 * releases everything before it: released bytes can never be part of a match,
 * so the text a client sees never contains (a prefix of) the stop string.
 *
 * Per-request state (serving keeps one per request). Bytes only: a stop
 * string is matched on the decoded bytes, independent of tokenisation.
 */
#ifndef LLMPI_STOPSTR_H
#define LLMPI_STOPSTR_H

#include <stddef.h>

#define STOPSTR_MAX 8

struct stopstr {
    int n;                /* stop strings */
    char *s[STOPSTR_MAX]; /* owned copies */
    size_t len[STOPSTR_MAX];
    char *pending; /* held-back bytes */
    size_t npending, cap;
    char *emit; /* bytes released by the last call */
    size_t ecap;
    int matched; /* index of the stop string found, -1 if none */
};

/* Copy up to STOPSTR_MAX non-empty strings. -1 + err_set when there are too
 * many, one is empty, or out of memory. */
int stopstr_init(struct stopstr *m, const char *const *strings, int n);
void stopstr_free(struct stopstr *m);

/* Append bytes of output. *out / *out_len receive the bytes that are now
 * safe to emit (pointing into the matcher, valid until the next call).
 * Returns 1 when a stop string completed (then *out holds the text before
 * it, and the request should end), 0 otherwise, -1 + err_set on out of memory. */
int stopstr_feed(struct stopstr *m, const char *bytes, size_t len, const char **out,
                 size_t *out_len);

/* At the end of a request that did not match: the held-back bytes. */
void stopstr_flush(struct stopstr *m, const char **out, size_t *out_len);

#endif
