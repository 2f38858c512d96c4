/* src/train/convert.c — PLACEHOLDER: `llmpi convert` is being written (issue 3); this file
 * is replaced by the real implementation. */
#include <stdio.h>

#include "subcommands.h"

int convert_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llmpi convert: not implemented yet\n");
    return 2;
}
