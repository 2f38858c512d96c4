/* src/infer/bench_generate.c — PLACEHOLDER: `llmpi bench generate` is being written (issue 3); this file
 * is replaced by the real implementation. */
#include <stdio.h>

#include "subcommands.h"

int bench_generate_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llmpi bench generate: not implemented yet\n");
    return 2;
}
