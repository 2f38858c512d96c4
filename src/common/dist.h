/* src/common/dist.h — the MPI process edge: start-up, shutdown, failure.
 *
 * What: MPI initialisation (a plain process becomes a world of one), the
 * rules for ending a job — one rank's failure ends every rank promptly with
 * a non-zero exit and a message naming the rank; a validation failure that
 * every rank sees ends them together with one message — and Slurm-friendly
 * stop signals that every rank agrees on.
 *
 * Why: an MPI job whose ranks disagree about stopping hangs in its next
 * collective. These helpers are for a program's edge (a subcommand's main and
 * its loop); library code keeps returning -1 + err_set() and never calls the
 * exiting ones. See docs/distributed.md.
 */
#ifndef LLMPI_DIST_H
#define LLMPI_DIST_H

#include "err.h"

/* Exit codes. DIST_EXIT_REQUEUE is sysexits.h's EX_TEMPFAIL ("temporary
 * failure, try again"): a stop signal was honoured after a checkpoint and a
 * batch script should requeue the job (docs/distributed.md). */
#define DIST_EXIT_FAIL 1
#define DIST_EXIT_REQUEUE 75

/* MPI_Init_thread (MPI_THREAD_FUNNELED) unless MPI is already initialised,
 * MPI_ERRORS_RETURN on MPI_COMM_WORLD, and a private duplicate of the world
 * for dist_any(). Without mpirun/srun this is a world of one. -1 + err_set. */
int dist_init(int *argc, char ***argv);

/* Free the private communicator and MPI_Finalize (when dist_init initialised
 * MPI). Collective. Safe to call twice or without dist_init. */
int dist_finalize(void);

/* Rank and size in MPI_COMM_WORLD (0 and 1 before dist_init). */
int dist_rank(void);
int dist_size(void);

/* Optional prefix for dist_fail/dist_exit_if_any messages, e.g. "llmpi train"
 * gives "llmpi train: rank 3: error: ...". The string is not copied. */
void dist_set_prog(const char *prog);

/* This rank gives up: prints "[prog: ]rank R: error: MESSAGE" on stderr (no
 * "rank R: " in a world of one) and takes the whole job down with
 * MPI_Abort(MPI_COMM_WORLD, DIST_EXIT_FAIL). For errors only one rank sees
 * (a crash of its own state, an I/O error); not collective. */
_Noreturn void dist_fail(const char *fmt, ...) LLMPI_PRINTF(1, 2);

/* Collective over the world: 1 when `flag` is non-zero on any rank, else 0;
 * -1 + err_set when the allreduce fails. Every rank gets the same answer. */
int dist_any(int flag);

/* Collective over the world: when `failed` is non-zero on any rank, the
 * lowest failing rank prints "[prog: ]rank R: error: MSG" (its own `msg`,
 * typically err_msg()), and every rank finalises MPI and exits
 * DIST_EXIT_FAIL — one message, no abort banner, nobody left waiting.
 * Returns when no rank failed. For checks every rank makes together
 * (arguments, config, topology). */
void dist_exit_if_any(int failed, const char *msg);

/* Install handlers for SIGUSR1 and SIGTERM that only record the signal
 * (async-signal-safe). -1 + err_set when sigaction fails. */
int dist_catch_stop_signals(void);

/* The stop signal this rank received (SIGUSR1/SIGTERM), or 0. Local. */
int dist_stop_signal(void);

/* Collective over the world: 1 when any rank has received a stop signal,
 * else 0 (-1 + err_set on MPI failure). Call it at the same point of every
 * step on every rank; all ranks then stop after the same step. */
int dist_stop_requested(void);

#endif
