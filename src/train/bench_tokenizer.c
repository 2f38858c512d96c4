/* src/train/bench_tokenizer.c — PLACEHOLDER: `llmpi bench tokenizer` is being written (issue 3); this file
 * is replaced by the real implementation. */
#include <stdio.h>

#include "subcommands.h"

int bench_tokenizer_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llmpi bench tokenizer: not implemented yet\n");
    return 2;
}
