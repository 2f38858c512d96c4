/* src/train/subcommands.h — entry points of the training-side subcommands.
 * Each returns the process exit code and prints its own errors. */
#ifndef LLMPI_SUBCOMMANDS_H
#define LLMPI_SUBCOMMANDS_H

int train_main(int argc, char **argv);
int bench_main(int argc, char **argv);

#endif
