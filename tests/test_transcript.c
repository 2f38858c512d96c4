/* tests/test_transcript.c — the --transcript JSON lines (src/infer/transcript.*).
 *
 * Every line parses as JSON (cJSON) with the documented fields and types;
 * the time is ISO-8601 UTC with milliseconds; a line is in the file as soon
 * as transcript_write returns (read back before closing); texts with
 * newlines and quotes stay on one line; the filter hook rewrites texts and
 * its failure fails the write.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "transcript.h"

static char path[64];

static void setup(void) {
    snprintf(path, sizeof path, "/tmp/llmpi_test_transcript_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
}

static void teardown(void) { unlink(path); }

TestSuite(transcript, .init = setup, .fini = teardown);

/* The lines of the file, parsed; returns the count. */
static int read_lines(cJSON **out, int max) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert_lt(n, max);
        size_t len = strlen(line);
        cr_assert(len && line[len - 1] == '\n', "line %d not terminated", n);
        out[n] = cJSON_Parse(line);
        cr_assert_not_null(out[n], "line %d is not JSON: %s", n, line);
        n++;
    }
    fclose(f);
    return n;
}

static int valid_when(const char *s) {
    /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (strlen(s) != strlen(shape)) return 0;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i]) return 0;
    return 1;
}

Test(transcript, lines_are_json_with_the_fields) {
    struct transcript *t = transcript_open(path, 0);
    cr_assert_not_null(t, "%s", err_msg());
    struct transcript_entry u = {
        3, "customer-service", 0, "user", 1, "Hi \"there\"\nsecond line", 0, -1, -1.0, 0};
    struct transcript_entry a = {
        3, "customer-service", 1, "billing", 0, "Sure.", 17, 2, 0.8125, 1700000000.25};
    cr_assert_eq(transcript_write(t, &u), 0, "%s", err_msg());
    cr_assert_eq(transcript_write(t, &a), 0, "%s", err_msg());
    /* on disk before close: nothing buffered in the process */
    cJSON *l[4];
    cr_assert_eq(read_lines(l, 4), 2);
    cJSON *o = l[0];
    cr_expect_eq(cJSON_GetObjectItem(o, "conv")->valueint, 3);
    cr_expect_str_eq(cJSON_GetObjectItem(o, "scenario")->valuestring, "customer-service");
    cr_expect_eq(cJSON_GetObjectItem(o, "turn")->valueint, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(o, "who")->valuestring, "user");
    cr_expect_str_eq(cJSON_GetObjectItem(o, "role")->valuestring, "user");
    cr_expect_str_eq(cJSON_GetObjectItem(o, "text")->valuestring,
                     "Hi \"there\"\nsecond line");
    cr_expect_eq(cJSON_GetObjectItem(o, "tokens")->valueint, 0);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(o, "replica")));
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(o, "latency_ms")));
    cr_expect(valid_when(cJSON_GetObjectItem(o, "when")->valuestring), "%s",
              cJSON_GetObjectItem(o, "when")->valuestring);
    o = l[1];
    cr_expect_str_eq(cJSON_GetObjectItem(o, "who")->valuestring, "billing");
    cr_expect_str_eq(cJSON_GetObjectItem(o, "role")->valuestring, "agent");
    cr_expect_eq(cJSON_GetObjectItem(o, "turn")->valueint, 1);
    cr_expect_eq(cJSON_GetObjectItem(o, "tokens")->valueint, 17);
    cr_expect_eq(cJSON_GetObjectItem(o, "replica")->valueint, 2);
    cr_expect_float_eq(cJSON_GetObjectItem(o, "latency_ms")->valuedouble, 812.5, 1e-9);
    cr_expect_str_eq(cJSON_GetObjectItem(o, "when")->valuestring,
                     "2023-11-14T22:13:20.250Z");
    for (int i = 0; i < 2; i++)
        cJSON_Delete(l[i]);
    cr_expect_eq(transcript_close(t), 0);

    /* append keeps the lines; truncate drops them */
    t = transcript_open(path, 1);
    cr_assert_eq(transcript_write(t, &a), 0);
    transcript_close(t);
    cr_expect_eq(read_lines(l, 4), 3);
    for (int i = 0; i < 3; i++)
        cJSON_Delete(l[i]);
    t = transcript_open(path, 0);
    transcript_close(t);
    cr_expect_eq(read_lines(l, 4), 0);
}

static char *redact(void *ctx, const char *text) {
    (*(int *)ctx)++;
    char *s = strdup(text);
    for (char *p = strstr(s, "555-1234"); p; p = strstr(p, "555-1234"))
        memcpy(p, "XXX-XXXX", 8);
    return s;
}

static char *broken(void *ctx, const char *text) {
    (void)ctx;
    (void)text;
    return NULL;
}

Test(transcript, filter_hook) {
    struct transcript *t = transcript_open(path, 0);
    int calls = 0;
    transcript_set_filter(t, redact, &calls);
    struct transcript_entry e = {1, NULL, 2, "a", 0, "call me at 555-1234", 3, 0, 0.1, 0};
    cr_assert_eq(transcript_write(t, &e), 0);
    cr_expect_eq(calls, 1);
    transcript_set_filter(t, broken, NULL);
    cr_expect_eq(transcript_write(t, &e), -1);
    cr_expect(strstr(err_msg(), "filter failed"), "%s", err_msg());
    transcript_close(t);
    cJSON *l[2];
    cr_assert_eq(read_lines(l, 2), 1);
    cr_expect_str_eq(cJSON_GetObjectItem(l[0], "text")->valuestring,
                     "call me at XXX-XXXX");
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(l[0], "scenario")));
    cJSON_Delete(l[0]);
}

Test(transcript, time_format_and_bad_path) {
    char buf[32];
    transcript_time(0.0, buf);
    cr_expect_str_eq(buf, "1970-01-01T00:00:00.000Z");
    transcript_time(951782400.999, buf); /* 2000-02-29 */
    cr_expect_str_eq(buf, "2000-02-29T00:00:00.999Z");
    cr_expect_null(transcript_open("/no/such/dir/t.jsonl", 0));
    cr_expect(strstr(err_msg(), "/no/such/dir/t.jsonl: cannot open"), "%s", err_msg());
}
