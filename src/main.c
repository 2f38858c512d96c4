/* src/main.c — the llmpi executable: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "subcommands.h"

#define LLMPI_VERSION "0.1.0"

static const char *usage = "usage: llmpi <command> [options]   (llmpi <command> --help)\n"
                           "\n"
                           "commands:\n"
                           "  prep      text, directories or JSONL -> token shards\n"
                           "  train     train a GPT-2 (DP x TP under mpirun / srun)\n"
                           "  generate  sample text from a checkpoint\n"
                           "  serve     serve a checkpoint to agents (replica groups)\n"
                           "  convert   Hugging Face GPT-2 <-> llmpi checkpoint\n"
                           "  bench     benchmarks: train, comm, tokenizer, generate, serve\n"
                           "  selftest  check this machine's CUDA backend against the CPU\n"
                           "\n"
                           "  --version  print the version\n";

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("llmpi %s\n", LLMPI_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "prep")) return prep_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return train_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return generate_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return serve_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return convert_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return bench_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "selftest")) return selftest_main(argc - 1, argv + 1);
    fprintf(stderr, "llmpi: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
