/* src/infer/redact.h — masking of personal data in text that is logged.
 *
 * The serving coordinator writes request logs and agent transcripts; before
 * any text reaches them it goes through redact(), which replaces e-mail
 * addresses, phone numbers, payment card numbers and IP addresses (v4 and
 * v6) with the tags [EMAIL], [PHONE], [CARD] and [IP]. Everything else,
 * including any UTF-8 around a match, is copied byte for byte.
 *
 * The patterns are ASCII (PCRE2, compiled once with JIT in redactor_init)
 * and every candidate is checked in C as well: card numbers need 13-19
 * digits, a leading digit 2-6 and a valid Luhn checksum; IPv4 octets must be
 * <= 255; IPv6 must parse with inet_pton. What is and is not masked, and the
 * known limits, are in docs/serving.md ("Redaction").
 *
 * A redactor is immutable after init, so one may be shared by threads.
 */
#ifndef LLMPI_REDACT_H
#define LLMPI_REDACT_H

#include <stddef.h>

enum redact_kind { REDACT_EMAIL, REDACT_PHONE, REDACT_CARD, REDACT_IP, REDACT_KINDS };

/* How many matches of each kind one redact() call replaced. */
struct redact_counts {
    size_t email, phone, card, ip;
};

struct redact_pattern; /* compiled PCRE2 pattern + validator (redact.c) */

struct redactor {
    struct redact_pattern *pat;
    int npat;
};

/* Compile the patterns. -1 + err_set on failure (then nothing to free). */
int redactor_init(struct redactor *r);
void redactor_free(struct redactor *r);

/* text[0..len) with every match replaced by its tag, as a malloc'd
 * NUL-terminated string (the caller frees it). Bytes in text may be any
 * value (invalid UTF-8 included) and are copied as they are; text may be
 * NULL when len is 0. *counts (when not NULL) is overwritten with the number
 * of replacements of each kind (overlapping matches count once).
 * NULL + err_set when out of memory or when PCRE2 fails. */
char *redact(const struct redactor *r, const char *text, size_t len,
             struct redact_counts *counts);

/* "[EMAIL]", "[PHONE]", "[CARD]", "[IP]". */
const char *redact_tag(enum redact_kind kind);

#endif
