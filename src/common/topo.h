/* src/common/topo.h — ranks -> a DP x TP grid, its groups, node placement.
 *
 * What: the ranks of a base communicator (MPI_COMM_WORLD for training) form
 * a grid of DP rows by TP columns with TP innermost:
 *     rank = dp_rank * tp + tp_rank
 * so a TP group is `tp` consecutive ranks and a DP group is every tp-th rank.
 * topo_init builds a comm (comm.h) for each: the TP group, the DP group, the
 * ranks of this node, and a duplicate of the whole base. The node split
 * (MPI_Comm_split_type, shared memory) gives each rank its local rank for
 * device binding.
 *
 * Why: TP exchanges activations every layer and must stay on fast intra-node
 * links; consecutive ranks share a node under mpirun's and Slurm's default
 * block placement. A TP group that spans nodes is therefore an error unless
 * the caller allows it (then `tp_spans_nodes` says so and the caller warns):
 * it is correct but slow, usually a placement mistake (docs/distributed.md).
 *
 * topo_init is collective over the base communicator, and every check that
 * fails fails on every rank with the same message (the TP size is agreed
 * first, so ranks started with different --tp fail together too).
 */
#ifndef LLMPI_TOPO_H
#define LLMPI_TOPO_H

#include "comm.h"

struct topo_opts {
    int tp;                    /* TP group size (--tp), >= 1, divides the world */
    int allow_tp_across_nodes; /* 0: a TP group spanning nodes is an error */
    int fake_node_size;        /* tests: > 0 pretends each block of this many
                                  consecutive ranks is one node */
};

struct topo {
    int rank, size;             /* in the base communicator */
    int tp, dp;                 /* grid sizes, size == dp * tp */
    int tp_rank, dp_rank;       /* coordinates, rank == dp_rank * tp + tp_rank */
    int local_rank, local_size; /* place among the ranks on this node */
    int node, n_nodes;          /* node index, ordered by each node's lowest rank */
    int tp_spans_nodes;         /* 1: some TP group spans nodes (only when allowed) */
    struct comm world;          /* the whole base, duplicated */
    struct comm tp_group;       /* rank order == tp_rank */
    struct comm dp_group;       /* rank order == dp_rank */
    struct comm node_group;     /* rank order == local_rank */
};

/* Collective over `base`. 0, or -1 + err_set (and nothing left to free):
 * MPI not initialised, --tp below 1, ranks disagreeing on --tp, --tp not
 * dividing the world size, a TP group spanning nodes (unless allowed), or an
 * MPI failure. */
int topo_init(struct topo *t, MPI_Comm base, const struct topo_opts *opts);

/* Free the groups (collective). Safe on a zeroed or freed topo. */
void topo_free(struct topo *t);

/* The device this rank binds to among n_devices on its node: local_rank
 * modulo n_devices (ranks share devices round-robin when there are more
 * ranks than devices). -1 + err_set when n_devices < 1. */
int topo_device(const struct topo *t, int n_devices);

#endif
