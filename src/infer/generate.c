/* src/infer/generate.c — PLACEHOLDER: `llmpi generate` is being written (issue 3); this file
 * is replaced by the real implementation. */
#include <stdio.h>

#include "subcommands.h"

int generate_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llmpi generate: not implemented yet\n");
    return 2;
}
