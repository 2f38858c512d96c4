/* src/common/ckpt_shard_write.c — ckpt_save_sharded: a checkpoint written
 * by tensor-parallel ranks with parallel HDF5, each its hyperslabs
 * (collective); the per-rank read is ckpt_shard_read.c. Interface: ckpt_shard.h; docs/checkpoints.md, "Parallel
 * checkpoints".
 *
 * Why it looks the way it does:
 *  - Rank 0 creates the temporary file alone, with the serial driver and
 *    every piece of metadata: attributes, tokenizer, and each tensor's
 *    dataset at its full shape, contiguous, storage allocated at creation
 *    and never filled (ckpt_write_tmp, the stage ckpt_save uses). The
 *    parallel phase then only writes raw data into storage that already
 *    exists: no dataset is created, extended or allocated under MPI-IO, so
 *    none of parallel HDF5's collective-metadata rules (every rank must
 *    create every object, with identical arguments, in the same order) can
 *    be broken, and the tokenizer text never crosses MPI.
 *  - Every rank opens the file with the MPI-IO driver and walks the same
 *    datasets in the same order; each write is collective
 *    (H5FD_MPIO_COLLECTIVE) with the rank's union of slabs as the file
 *    selection and its contiguous local tensor as the memory space.
 *    Non-writers and, for replicated tensors, every writer but TP rank 0's
 *    select nothing, so each element is written by exactly one rank.
 *    Metadata reads are collective too (rank 0 reads, the others receive),
 *    which keeps thousands of ranks from all reading the same object
 *    headers.
 *  - Agreement: before and after each collective step every rank learns
 *    whether any rank failed (one allreduce) and takes the lowest failing
 *    rank's message (one broadcast, only on failure), so all return the
 *    same -1 and message and no rank enters a collective the others left.
 *  - Atomicity is ckpt_save's: 'complete' is written last, by rank 0 alone
 *    after the parallel close (which synced every rank's data), then fsync,
 *    rename and directory fsync, the same stages ckpt_save runs.
 *  - ckpt_load_shard needs no MPI: each rank opens the file read-only with
 *    the default driver and reads its hyperslabs, so it also serves a
 *    single process reading one shard, and any TP layout reads any file.
 *    ckpt_load_shard_meta gives the rest of a resume (config, tokenizer,
 *    training scalars) without reading a full tensor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_h5.h"
#include "ckpt_shard.h"
#include "err.h"

#define MSG_LEN 1024

/* ---- agreement ---------------------------------------------------------------- */

/* Collective over comm: 0 when rc == 0 on every rank; otherwise -1 on every
 * rank, with err_msg() set to the lowest failing rank's message (and that
 * rank named, unless it is rank 0). */
static int agree(MPI_Comm comm, int rc) {
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int mine = rc ? rank : size, lowest = size;
    if (MPI_Allreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return err_set(
            "checkpoint: MPI_Allreduce failed while the ranks agreed on a save");
    if (lowest == size) return 0;
    char msg[MSG_LEN] = "";
    if (rank == lowest) {
        if (lowest == 0)
            snprintf(msg, sizeof msg, "%s", err_msg());
        else
            snprintf(msg, sizeof msg, "%s (on rank %d)", err_msg(), lowest);
    }
    if (MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, lowest, comm) != MPI_SUCCESS)
        return err_set("checkpoint: rank %d failed, and MPI_Bcast of its message failed",
                       lowest);
    msg[sizeof msg - 1] = '\0';
    return err_set("%s", msg);
}

/* ---- ckpt_save_sharded: checks --------------------------------------------- */

/* What each rank tells the others before anything is written. */
enum {
    I_TP,
    I_TP_RANK,
    I_WRITER,
    I_CFG,              /* 5 ints: vocab_size, max_seq, n_layer, n_head, n_embd */
    I_BUFS = I_CFG + 5, /* bits: B_PARAMS, B_M, B_V (buffers this rank has) */
    I_STATE,            /* rank 0's decision: bits B_M (train), B_V (/optimizer/v) */
    I_COUNT
};
enum { B_PARAMS = 1, B_M = 2, B_V = 4 };

/* This rank's own checks: st was built from cfg; rank 0 also runs ckpt_save's
 * checks on what it writes. */
static int check_local(const char *path, int rank, const struct gpt2_config *cfg,
                       const struct shard_table *st, const struct tokenizer *tok,
                       const struct ckpt_train_state *train, int has_v) {
    if (!cfg || !st)
        return err_set("%s: no %s", path, cfg ? "shard table" : "model config");
    if (rank == 0) {
        struct ckpt_train_state t0;
        static float placeholder; /* the moments are not read from rank 0's struct */
        if (train) {
            t0 = *train;
            t0.m_state = &placeholder;
            t0.v_state = has_v ? &placeholder : NULL;
        }
        if (ckpt_save_check(path, cfg, tok, train ? &t0 : NULL)) return -1;
    } else if (model_config_check(cfg)) {
        return -1;
    }
    struct shard_table ref = {0};
    if (shard_table_build(cfg, st->tp_size, st->tp_rank, &ref)) {
        char msg[MSG_LEN];
        snprintf(msg, sizeof msg, "%s", err_msg());
        return err_set("%s: %s", path, msg);
    }
    int bad, same = ckpt_shard_same(&ref, st, &bad);
    shard_table_free(&ref);
    if (!same)
        return err_set(
            "%s: the shard table (TP rank %d of %d) was not built from this model "
            "config%s%s",
            path, st->tp_rank, st->tp_size, bad >= 0 ? ": tensor " : "",
            bad >= 0 ? st->local.p[bad].name : "");
    return 0;
}

/* Checks over the gathered info (identical on every rank): one model and TP
 * size, exactly one writer per TP rank, writers holding the buffers that go
 * to the file. */
static int check_layout(const char *path, const int *info, int size) {
    const int *r0 = info;
    int tp = r0[I_TP];
    for (int r = 1; r < size; r++) {
        const int *x = info + (size_t)r * I_COUNT;
        for (int k = 0; k < 5; k++)
            if (x[I_CFG + k] != r0[I_CFG + k])
                return err_set("%s: rank %d's model has %s %d but rank 0's has %d", path,
                               r, ckpt_cfg_field[k], x[I_CFG + k], r0[I_CFG + k]);
        if (x[I_TP] != tp)
            return err_set(
                "%s: rank %d's shard table is for TP size %d but rank 0's for %d", path,
                r, x[I_TP], tp);
    }
    int *writers = calloc((size_t)tp, sizeof *writers);
    if (!writers) return err_set("out of memory");
    int rc = 0;
    for (int r = 0; r < size && !rc; r++) {
        const int *x = info + (size_t)r * I_COUNT;
        if (!x[I_WRITER]) continue;
        writers[x[I_TP_RANK]]++;
        int need = B_PARAMS | (r0[I_STATE] & (B_M | B_V));
        int miss = need & ~x[I_BUFS];
        if (miss)
            rc = err_set("%s: rank %d writes TP rank %d but has no %s buffer", path, r,
                         x[I_TP_RANK],
                         miss & B_PARAMS ? "parameter"
                         : miss & B_M    ? "optimizer m_state"
                                         : "optimizer v_state");
    }
    for (int k = 0; k < tp && !rc; k++)
        if (writers[k] != 1)
            rc = err_set(
                "%s: TP rank %d has %d writers (exactly one rank per TP rank, the "
                "DP-rank-0 replica, passes writer = 1)",
                path, k, writers[k]);
    free(writers);
    return rc;
}

/* ---- ckpt_save_sharded: the parallel write ---------------------------------- */

/* Collective: tensor i of `group`, this rank's slabs (mine) or nothing. */
static int write_tensor(MPI_Comm comm, const char *tmp, hid_t fid, hid_t dxpl,
                        const char *group, const struct shard_table *st, int i, int mine,
                        const float *local) {
    static const float nothing; /* a valid buffer for an empty selection */
    const struct param_info *lp = &st->local.p[i];
    char name[128], what[256];
    snprintf(name, sizeof name, "%s/%s", group, lp->name);
    hsize_t n = lp->numel;
    hid_t d = H5Dopen2(fid, name, H5P_DEFAULT);
    hid_t fs = d < 0 ? -1 : H5Dget_space(d);
    hid_t ms = H5Screate_simple(1, &n, NULL);
    int rc = 0;
    if (d < 0 || fs < 0 || ms < 0) {
        snprintf(what, sizeof what, "cannot open dataset %s", name);
        rc = ckpt_h5_fail(tmp, what);
    } else if (mine ? ckpt_h5_select_slabs(fs, &st->map[i], lp->ndim, lp->numel) != 0
                    : H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0) {
        snprintf(what, sizeof what, "cannot select the TP rank %d slabs of dataset %s",
                 st->tp_rank, name);
        rc = ckpt_h5_fail(tmp, what);
    }
    rc = agree(comm, rc);
    if (!rc) {
        if (H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, dxpl,
                     mine ? local + lp->offset : &nothing) < 0) {
            snprintf(what, sizeof what, "cannot write dataset %s", name);
            rc = ckpt_h5_fail(tmp, what);
        }
        rc = agree(comm, rc);
    }
    ckpt_h5_close(ms);
    ckpt_h5_close(fs);
    ckpt_h5_close(d);
    return rc;
}

/* Collective: open n->tmp with MPI-IO, write every group's slabs, flush,
 * close. groups[g] / bufs[g]: "/params" and the moments that exist. */
static int write_parallel(MPI_Comm comm, const char *tmp, int writer,
                          const struct shard_table *st, int ngroups,
                          const char *const *groups, const float *const *bufs) {
    hid_t fapl = ckpt_h5_file_access();
    int rc = 0;
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
        H5Pset_all_coll_metadata_ops(fapl, 1) < 0)
        rc = ckpt_h5_fail(tmp, "cannot set up MPI-IO file access");
    hid_t fid = -1;
    if (!agree(comm, rc)) {
        fid = H5Fopen(tmp, H5F_ACC_RDWR, fapl);
        rc = agree(comm, fid < 0
                             ? ckpt_h5_fail(tmp, "cannot open the temporary checkpoint "
                                                 "file with MPI-IO")
                             : 0);
    } else {
        rc = -1;
    }
    if (fapl >= 0) H5Pclose(fapl);
    if (rc) {
        ckpt_h5_close(fid);
        return -1;
    }
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    rc = dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0
             ? ckpt_h5_fail(tmp, "cannot set up collective transfers")
             : 0;
    rc = agree(comm, rc);
    for (int g = 0; g < ngroups && !rc; g++)
        for (int i = 0; i < st->local.count && !rc; i++) {
            int mine = writer && (st->local.p[i].tp != TP_REPLICATED || st->tp_rank == 0);
            rc = write_tensor(comm, tmp, fid, dxpl, groups[g], st, i, mine, bufs[g]);
        }
    if (!rc)
        rc = agree(comm, H5Fflush(fid, H5F_SCOPE_GLOBAL) < 0
                             ? ckpt_h5_fail(tmp, "flush failed")
                             : 0);
    if (dxpl >= 0) H5Pclose(dxpl);
    int closed = H5Fclose(fid) < 0 ? ckpt_h5_fail(tmp, "close failed") : 0;
    closed = agree(comm, closed);
    return rc || closed ? -1 : 0;
}

int ckpt_save_sharded(const char *path, MPI_Comm comm, int writer,
                      const struct gpt2_config *cfg, const struct shard_table *st,
                      const float *local_params, const struct tokenizer *tok,
                      const struct ckpt_train_state *train) {
    ckpt_h5_quiet();
    int rank = 0, size = 1;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS ||
        MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return err_set("%s: the communicator is not usable", path);
    writer = writer != 0;
    int has_v = train && (strcmp(train->optimizer, "sgd") != 0 || train->v_state);
    struct ckpt_names n = {0};
    int *info = NULL, rc;

    /* 1. each rank's own checks; then the layout, from everyone's info */
    rc = check_local(path, rank, cfg, st, tok, train, has_v);
    if (!rc) rc = ckpt_names_make(path, &n);
    if ((rc = agree(comm, rc))) goto out;
    int mine[I_COUNT] = {0};
    mine[I_TP] = st->tp_size;
    mine[I_TP_RANK] = st->tp_rank;
    mine[I_WRITER] = writer;
    const int *cv[5] = {&cfg->vocab_size, &cfg->max_seq, &cfg->n_layer, &cfg->n_head,
                        &cfg->n_embd};
    for (int k = 0; k < 5; k++)
        mine[I_CFG + k] = *cv[k];
    mine[I_BUFS] = (local_params ? B_PARAMS : 0) | (train && train->m_state ? B_M : 0) |
                   (train && train->v_state ? B_V : 0);
    mine[I_STATE] = (train ? B_M : 0) | (has_v ? B_V : 0);
    info = malloc((size_t)size * I_COUNT * sizeof *info);
    rc = info ? 0 : err_set("out of memory");
    if ((rc = agree(comm, rc))) goto out;
    if (MPI_Allgather(mine, I_COUNT, MPI_INT, info, I_COUNT, MPI_INT, comm) !=
        MPI_SUCCESS) {
        rc = err_set("%s: MPI_Allgather of the ranks' layouts failed", path);
        goto out;
    }
    if ((rc = agree(comm, check_layout(path, info, size)))) goto out;
    int has_train = info[I_STATE] & B_M;
    has_v = (info[I_STATE] & B_V) != 0;

    /* 2. rank 0 creates the file with every piece of metadata */
    if (rank == 0) {
        struct ckpt_train_state t0;
        static float placeholder; /* data = 0: not read, only tested for NULL */
        if (train) {
            t0 = *train;
            t0.m_state = &placeholder;
            t0.v_state = has_v ? &placeholder : NULL;
        }
        rc = ckpt_write_tmp(path, &n, cfg, NULL, tok, train ? &t0 : NULL, 0, 0);
    }
    if ((rc = agree(comm, rc))) goto out;

    /* 3. everyone writes its slabs */
    const char *groups[3] = {"/params", "/optimizer/m", "/optimizer/v"};
    const float *bufs[3] = {local_params, train ? train->m_state : NULL,
                            train ? train->v_state : NULL};
    rc = write_parallel(comm, n.tmp, writer, st, has_train ? (has_v ? 3 : 2) : 1, groups,
                        bufs);
    if (rc) {
        if (rank == 0) remove(n.tmp);
        goto out;
    }

    /* 4. rank 0 marks it complete and publishes it */
    if (rank == 0) rc = ckpt_mark_complete(&n) || ckpt_publish(path, &n) ? -1 : 0;
    rc = agree(comm, rc);
out:
    free(info);
    ckpt_names_free(&n);
    return rc ? -1 : 0;
}

