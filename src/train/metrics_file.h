/* src/train/metrics_file.h — the --metrics JSON-lines file of `llmpi train`.
 *
 * Written as FILE.partial and renamed to FILE when the run completes, so a
 * file named FILE is always a finished run. A resumed run first copies the
 * lines of steps 1..carry_upto from the previous record (FILE.partial left
 * by an interrupted run if there is one, else FILE) so that FILE ends up
 * holding every step once, as an uninterrupted run would have written it.
 * A previous record that lacks some of steps 1..carry_upto is not carried
 * (the file then starts at carry_upto + 1).
 */
#ifndef LLMPI_METRICS_FILE_H
#define LLMPI_METRICS_FILE_H

#include <stddef.h>
#include <stdio.h>

/* Open FILE.partial (its name goes to partial) for writing; with
 * carry_upto > 0, after copying the previous lines of steps 1..carry_upto
 * (*carried: carry_upto, or 0 when not carried). NULL + err_set. */
FILE *metrics_open(const char *file, char *partial, size_t plen, long carry_upto,
                   long *carried);

/* Close and rename FILE.partial to FILE: 0, or -1 + err_set. */
int metrics_finish(FILE *f, const char *partial, const char *file);

#endif
