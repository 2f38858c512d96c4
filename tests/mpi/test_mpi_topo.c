/* tests/mpi/test_mpi_topo.c — the DP x TP grid (src/common/topo.h).
 *
 * Run under mpirun -np 1, 2, 4 and alone (a singleton world of one). For
 * every --tp in {1, 2, 3, 4, 8}: when it divides the world, the coordinates
 * (TP innermost), group sizes and ranks, that a TP group is consecutive
 * ranks and a DP group every tp-th rank (allgathered world ranks), the node
 * placement (one machine: one node) and device binding; when it does not,
 * that every rank fails with a message naming both numbers. Then: ranks
 * started with different --tp fail together, --tp 0, and with fake nodes of
 * 2 ranks (np 4) TP groups inside a node pass and a TP group across nodes
 * fails unless allowed.
 */
#include "mpitest.h"
#include "topo.h"

static void check_grid(const struct topo *t, int tp, int rank, int size) {
    MT_CHECK(t->rank == rank && t->size == size, "rank %d size %d", t->rank, t->size);
    MT_CHECK(t->tp == tp && t->dp == size / tp, "tp %d dp %d", t->tp, t->dp);
    MT_CHECK(t->tp_rank == rank % tp && t->dp_rank == rank / tp,
             "tp %d: coords (dp %d, tp %d)", tp, t->dp_rank, t->tp_rank);
    MT_CHECK(t->tp_group.size == tp && t->tp_group.rank == t->tp_rank, "tp group %d/%d",
             t->tp_group.rank, t->tp_group.size);
    MT_CHECK(t->dp_group.size == t->dp && t->dp_group.rank == t->dp_rank,
             "dp group %d/%d", t->dp_group.rank, t->dp_group.size);
    MT_CHECK(t->world.size == size && t->world.rank == rank, "world %d/%d", t->world.rank,
             t->world.size);

    /* Who is in my groups: world ranks gathered in group order. */
    int members[8] = {0};
    if (comm_allgather(&t->tp_group, &rank, members, 1, COMM_I32) != 0)
        MT_CHECK(0, "%s", err_msg());
    for (int i = 0; i < tp; i++)
        MT_CHECK(members[i] == t->dp_rank * tp + i, "tp %d: TP member %d is rank %d", tp,
                 i, members[i]);
    if (comm_allgather(&t->dp_group, &rank, members, 1, COMM_I32) != 0)
        MT_CHECK(0, "%s", err_msg());
    for (int j = 0; j < t->dp; j++)
        MT_CHECK(members[j] == j * tp + t->tp_rank, "tp %d: DP member %d is rank %d", tp,
                 j, members[j]);

    /* One machine: every rank on node 0, local rank = rank (block placement). */
    MT_CHECK(t->n_nodes == 1 && t->node == 0, "nodes %d, node %d", t->n_nodes, t->node);
    MT_CHECK(t->local_size == size && t->local_rank == rank, "local %d/%d", t->local_rank,
             t->local_size);
    MT_CHECK(!t->tp_spans_nodes, "tp_spans_nodes set on one node");
    MT_CHECK(topo_device(t, 2) == rank % 2, "device %d", topo_device(t, 2));
    MT_CHECK(topo_device(t, 0) == -1 && strstr(err_msg(), "no devices"), "device(0): %s",
             err_msg());
}

static void expect_error(int rc, const char *a, const char *b) {
    MT_CHECK(rc == -1, "expected an error containing \"%s\"", a);
    if (rc == -1)
        MT_CHECK(strstr(err_msg(), a) && (!b || strstr(err_msg(), b)), "message: %s",
                 err_msg());
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    int rank = dist_rank(), size = dist_size();
    char want_tp[32], want_world[32];

    const int tps[] = {1, 2, 3, 4, 8};
    for (size_t i = 0; i < sizeof tps / sizeof tps[0]; i++) {
        int tp = tps[i];
        struct topo t;
        int rc = topo_init(&t, MPI_COMM_WORLD, &(struct topo_opts){.tp = tp});
        if (size % tp == 0) {
            MT_CHECK(rc == 0, "tp %d of %d: %s", tp, size, err_msg());
            if (rc == 0) check_grid(&t, tp, rank, size);
            topo_free(&t);
        } else {
            snprintf(want_tp, sizeof want_tp, "--tp %d", tp);
            snprintf(want_world, sizeof want_world, "world size %d", size);
            expect_error(rc, want_tp, want_world);
        }
    }

    struct topo t;
    expect_error(topo_init(&t, MPI_COMM_WORLD, &(struct topo_opts){.tp = 0}),
                 "at least 1", NULL);
    if (size >= 2) /* rank 0 says 1, the others 2: all fail, none hangs */
        expect_error(
            topo_init(&t, MPI_COMM_WORLD, &(struct topo_opts){.tp = rank ? 2 : 1}),
            "disagree", NULL);

    if (size == 4) { /* two fake nodes of two ranks: {0,1} {2,3} */
        int rc = topo_init(&t, MPI_COMM_WORLD,
                           &(struct topo_opts){.tp = 2, .fake_node_size = 2});
        MT_CHECK(rc == 0, "fake nodes, tp 2: %s", err_msg());
        if (rc == 0) {
            MT_CHECK(t.n_nodes == 2 && t.node == rank / 2, "nodes %d node %d", t.n_nodes,
                     t.node);
            MT_CHECK(t.local_size == 2 && t.local_rank == rank % 2, "local %d/%d",
                     t.local_rank, t.local_size);
            MT_CHECK(t.node_group.size == 2 && !t.tp_spans_nodes, "node group %d",
                     t.node_group.size);
            topo_free(&t);
        }
        expect_error(topo_init(&t, MPI_COMM_WORLD,
                               &(struct topo_opts){.tp = 4, .fake_node_size = 2}),
                     "TP group 0 (ranks 0-3) spans more than one node", NULL);
        rc = topo_init(&t, MPI_COMM_WORLD,
                       &(struct topo_opts){
                           .tp = 4, .fake_node_size = 2, .allow_tp_across_nodes = 1});
        MT_CHECK(rc == 0 && t.tp_spans_nodes == 1, "allowed across nodes: rc %d: %s", rc,
                 err_msg());
        if (rc == 0) topo_free(&t);
        /* DP x TP = 2 x 2 with nodes of 1 rank: every TP group spans; the first is named.
         */
        expect_error(topo_init(&t, MPI_COMM_WORLD,
                               &(struct topo_opts){.tp = 2, .fake_node_size = 1}),
                     "TP group 0 (ranks 0-1)", NULL);
    }
    topo_free(&t); /* freed already: must be harmless */
    return mt_finish("test_mpi_topo");
}
