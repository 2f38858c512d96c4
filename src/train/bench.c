/* src/train/bench.c — `llmpi bench <what>`: dispatch to one benchmark. */
#include <stdio.h>
#include <string.h>

#include "subcommands.h"

static const char *bench_usage =
    "usage: llmpi bench <benchmark> [options]   (llmpi bench <benchmark> --help)\n"
    "\n"
    "benchmarks:\n"
    "  train      training-step throughput (tokens/s, model GFLOP/s)\n"
    "  tokenizer  BPE encode throughput (MB/s)\n"
    "  generate   decode throughput (tokens/s) from a checkpoint\n"
    "  comm       allreduce time, algbw and busbw over the DP group (under mpirun)\n"
    "  serve      serving tokens/s, TTFT and TPOT per balancing policy vs naive\n";

int bench_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(bench_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return bench_train_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tokenizer")) return bench_tokenizer_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "generate")) return bench_generate_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "comm")) return bench_comm_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "serve")) return bench_serve_main(argc - 1, argv + 1);
    fprintf(stderr, "llmpi bench: unknown benchmark '%s'\n\n%s", argv[1], bench_usage);
    return 2;
}
