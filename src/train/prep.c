/* src/train/prep.c — PLACEHOLDER: `llmpi prep` is being written (issue 3); this file
 * is replaced by the real implementation. */
#include <stdio.h>

#include "subcommands.h"

int prep_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llmpi prep: not implemented yet\n");
    return 2;
}
