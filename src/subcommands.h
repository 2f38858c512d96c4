/* src/subcommands.h — entry points of the subcommands (src/train, src/infer).
 * Each returns the process exit code and prints its own errors. */
#ifndef LLMPI_SUBCOMMANDS_H
#define LLMPI_SUBCOMMANDS_H

int train_main(int argc, char **argv);
int prep_main(int argc, char **argv);      /* src/train/prep.c */
int convert_main(int argc, char **argv);   /* src/train/convert.c */
int generate_main(int argc, char **argv);  /* src/infer/generate.c */
int serve_main(int argc, char **argv);     /* src/infer/serve.c */
int bench_main(int argc, char **argv);     /* src/train/bench.c */
int selftest_main(int argc, char **argv);  /* src/train/selftest.c */
int bench_train_main(int argc, char **argv);
int bench_tokenizer_main(int argc, char **argv); /* src/train/bench_tokenizer.c */
int bench_generate_main(int argc, char **argv);  /* src/infer/bench_generate.c */
int bench_comm_main(int argc, char **argv);      /* src/train/bench_comm.c */
int bench_serve_main(int argc, char **argv);     /* src/infer/bench_serve.c */

#endif
