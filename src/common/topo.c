/* src/common/topo.c — the DP x TP grid and its groups (topo.h).
 *
 * Order of work: agree on --tp (a max-allreduce of tp and -tp), check it
 * divides the world, split off the node group (shared memory, or blocks of
 * fake_node_size ranks in tests), number the nodes, split the TP and DP
 * groups, then check with two allreduces that no TP group spans nodes. Every
 * decision that can fail is taken from allreduced values, so all ranks take
 * it alike.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "topo.h"

static void topo_zero(struct topo *t) {
    memset(t, 0, sizeof *t);
    t->world.mpi = t->tp_group.mpi = t->dp_group.mpi = t->node_group.mpi = MPI_COMM_NULL;
}

void topo_free(struct topo *t) {
    comm_close(&t->tp_group);
    comm_close(&t->dp_group);
    comm_close(&t->node_group);
    comm_close(&t->world);
}

/* comm_adopt(MPI_Comm_split(world, color, key)). */
static int split(struct topo *t, struct comm *out, int color, const char *name) {
    MPI_Comm m = MPI_COMM_NULL;
    char what[64];
    snprintf(what, sizeof what, "MPI_Comm_split (%s group)", name);
    if (comm_mpi_error(&t->world, MPI_Comm_split(t->world.mpi, color, t->rank, &m), what))
        return -1;
    return comm_adopt(out, m, name);
}

/* The node group, local rank and size, node index and count. */
static int split_nodes(struct topo *t, int fake_node_size) {
    if (fake_node_size > 0) {
        if (split(t, &t->node_group, t->rank / fake_node_size, "node")) return -1;
    } else {
        MPI_Comm m = MPI_COMM_NULL;
        int rc = MPI_Comm_split_type(t->world.mpi, MPI_COMM_TYPE_SHARED, t->rank,
                                     MPI_INFO_NULL, &m);
        if (comm_mpi_error(&t->world, rc, "MPI_Comm_split_type (node group)") ||
            comm_adopt(&t->node_group, m, "node"))
            return -1;
    }
    t->local_rank = t->node_group.rank;
    t->local_size = t->node_group.size;
    /* Node index: how many node leaders (local rank 0) come before mine. */
    int leader = t->rank; /* local rank 0 has the lowest rank of the node (key = rank) */
    if (comm_broadcast(&t->node_group, &leader, 1, COMM_I32, 0)) return -1;
    int *is_leader = calloc((size_t)t->size, sizeof *is_leader);
    if (!is_leader) return err_set("topo: out of memory");
    is_leader[t->rank] = t->local_rank == 0;
    int rc = comm_allgather(&t->world, NULL, is_leader, 1, COMM_I32);
    if (rc == 0) {
        t->node = t->n_nodes = 0;
        for (int r = 0; r < t->size; r++) {
            t->n_nodes += is_leader[r];
            if (r < leader) t->node += is_leader[r];
        }
    }
    free(is_leader);
    return rc;
}

/* Error unless every TP group lies on one node (or it is allowed). */
static int check_tp_nodes(struct topo *t, int allow) {
    int lo_hi[2] = {t->node, -t->node}; /* max of both: highest node, -lowest node */
    if (comm_allreduce(&t->tp_group, lo_hi, 2, COMM_I32, COMM_MAX)) return -1;
    int spans = lo_hi[0] != -lo_hi[1];
    int first =
        spans ? t->dp_rank : INT_MAX; /* lowest spanning TP group, for the message */
    if (comm_allreduce(&t->world, &first, 1, COMM_I32, COMM_MIN)) return -1;
    t->tp_spans_nodes = first != INT_MAX;
    if (t->tp_spans_nodes && !allow)
        return err_set(
            "topo: TP group %d (ranks %d-%d) spans more than one node: with --tp %d "
            "every "
            "node needs a multiple of %d consecutive ranks; place ranks by node (e.g. "
            "srun --ntasks-per-node, mpirun --map-by core) or lower --tp",
            first, first * t->tp, first * t->tp + t->tp - 1, t->tp, t->tp);
    return 0;
}

int topo_init(struct topo *t, MPI_Comm base, const struct topo_opts *opts) {
    topo_zero(t);
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin)
        return err_set("topo: MPI is not initialised (call dist_init first)");
    if (comm_dup(&t->world, base, "world")) return -1;
    t->rank = t->world.rank;
    t->size = t->world.size;

    /* Agree on --tp before judging it: ranks with different configs fail together. */
    int tp = opts->tp, mm[2] = {tp, -tp};
    if (comm_allreduce(&t->world, mm, 2, COMM_I32, COMM_MAX)) goto fail;
    if (mm[0] != -mm[1]) {
        err_set("topo: ranks disagree on --tp (values from %d to %d): start every rank "
                "with the "
                "same arguments",
                -mm[1], mm[0]);
        goto fail;
    }
    if (tp < 1) {
        err_set("topo: --tp must be at least 1 (got %d)", tp);
        goto fail;
    }
    if (t->size % tp != 0) {
        err_set("topo: --tp %d does not divide the world size %d (DP = world size / TP "
                "must be "
                "a whole number)",
                tp, t->size);
        goto fail;
    }
    t->tp = tp;
    t->dp = t->size / tp;
    t->tp_rank = t->rank % tp;
    t->dp_rank = t->rank / tp;

    if (split_nodes(t, opts->fake_node_size) ||
        split(t, &t->tp_group, t->dp_rank, "tp") ||
        split(t, &t->dp_group, t->tp_rank, "dp") ||
        check_tp_nodes(t, opts->allow_tp_across_nodes))
        goto fail;
    return 0;
fail:
    topo_free(t);
    return -1;
}

int topo_device(const struct topo *t, int n_devices) {
    if (n_devices < 1) return err_set("topo: no devices to bind rank %d to", t->rank);
    return t->local_rank % n_devices;
}
