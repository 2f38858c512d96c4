/* src/infer/utf8.h — keeping generated text valid UTF-8.
 *
 * A byte-level model can emit any bytes: a multi-byte character split over
 * two tokens, stray continuation bytes, even NUL. Transcripts, JSON answers
 * and server-sent events must carry valid UTF-8 without NUL (JSON strings
 * through cJSON are NUL-terminated), so text is cleaned on the way out:
 * whole answers with utf8_sanitize, streams piece by piece, each piece cut
 * where no character is left incomplete (utf8_stream_cut) and then
 * sanitized.
 */
#ifndef LLMPI_UTF8_H
#define LLMPI_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at p[0..n) (n >= 1), 0 when there is
 * none (a stray continuation byte, an overlong form, a surrogate, a code
 * point past U+10FFFF, or a sequence cut by the end). NUL counts as valid
 * here (length 1). */
size_t utf8_len(const unsigned char *p, size_t n);

/* Replace every byte that does not start a valid sequence, and every NUL,
 * with U+FFFD. *s (malloc'd, NUL-terminated, *len bytes) is replaced only
 * when something changes. -1 + err_set when out of memory. */
int utf8_sanitize(char **s, size_t *len);

/* How many of p[0..n) a stream may send now: all of it except a trailing
 * sequence that is valid so far but incomplete (more bytes may finish it).
 * At the end of a stream, send everything (sanitized). */
size_t utf8_stream_cut(const unsigned char *p, size_t n);

#endif
