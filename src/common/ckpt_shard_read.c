/* src/common/ckpt_shard_read.c — ckpt_load_shard and ckpt_load_shard_meta:
 * one rank reads only its hyperslabs of a checkpoint (no MPI needed), so any
 * TP layout reads a file written by any other, or by the serial ckpt_save.
 * Interface: ckpt_shard.h; the why of the file layout: ckpt_shard_write.c
 * and docs/checkpoints.md, "Parallel checkpoints".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_h5.h"
#include "ckpt_shard.h"
#include "err.h"

#define MSG_LEN 1024

/* ---- ckpt_load_shard ------------------------------------------------------------ */

/* Check that the file's model (fc) is the one st was built from, naming the
 * first field that differs; on success *fst is fc's table for st's rank. */
static int match_file(const char *path, const struct gpt2_config *fc,
                      const struct shard_table *st, struct shard_table *fst) {
    const struct param_table *lt = &st->local;
    char msg[MSG_LEN];
    if (shard_table_build(fc, st->tp_size, st->tp_rank, fst)) {
        snprintf(msg, sizeof msg, "%s", err_msg());
        return err_set("%s: the checkpoint's model cannot be read at this layout: %s",
                       path, msg);
    }
    /* st's model, as far as its table tells: layers from the entry count,
     * width and context from the replicated wpe, heads from the heads held */
    int st_cfg[5] = {-1, -1, -1, -1, -1};
    if (lt->count >= 4 && (lt->count - 4) % LP_COUNT == 0) {
        st_cfg[1] = lt->p[PT_WPE].shape[0];
        st_cfg[2] = (lt->count - 4) / LP_COUNT;
        st_cfg[4] = lt->p[PT_WPE].shape[1];
    }
    st_cfg[3] = st->heads_local * st->tp_size;
    const int fv[5] = {fc->vocab_size, fc->max_seq, fc->n_layer, fc->n_head, fc->n_embd};
    for (int k = 1; k < 5; k++)
        if (st_cfg[k] >= 0 && st_cfg[k] != fv[k])
            return err_set(
                "%s: the checkpoint's model has %s %d but the shard table is for "
                "%s %d",
                path, ckpt_cfg_field[k], fv[k], ckpt_cfg_field[k], st_cfg[k]);
    if (fst->vocab_start != st->vocab_start || fst->vocab_local != st->vocab_local)
        return err_set(
            "%s: the checkpoint's model has vocab_size %d, whose rows for TP rank "
            "%d of %d are [%d, %d), but the shard table holds rows [%d, %d)",
            path, fc->vocab_size, st->tp_rank, st->tp_size, fst->vocab_start,
            fst->vocab_start + fst->vocab_local, st->vocab_start,
            st->vocab_start + st->vocab_local);
    int bad;
    if (!ckpt_shard_same(fst, st, &bad))
        return err_set(
            "%s: the checkpoint's model does not match the shard table (TP rank "
            "%d of %d)%s%s",
            path, st->tp_rank, st->tp_size, bad >= 0 ? ": tensor " : "",
            bad >= 0 ? lt->p[bad].name : "");
    return 0;
}

/* This rank's slabs of every tensor under `group` into local. */
static int read_group(const char *path, hid_t fid, const char *group,
                      const struct param_table *full, const struct shard_table *st,
                      float *local) {
    for (int i = 0; i < full->count; i++) {
        const struct param_info *lp = &st->local.p[i];
        char name[128], what[256];
        snprintf(name, sizeof name, "%s/%s", group, full->p[i].name);
        hid_t d = ckpt_h5_tensor_open(path, fid, name, &full->p[i]);
        if (d < 0) return -1;
        hsize_t n = lp->numel;
        hid_t fs = H5Dget_space(d);
        hid_t ms = H5Screate_simple(1, &n, NULL);
        int rc = 0;
        if (fs < 0 || ms < 0 || ckpt_h5_select_slabs(fs, &st->map[i], lp->ndim, lp->numel)) {
            snprintf(what, sizeof what,
                     "cannot select the TP rank %d slabs of dataset %s", st->tp_rank,
                     name);
            rc = ckpt_h5_fail(path, what);
        } else if (H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, local + lp->offset) <
                   0) {
            snprintf(what, sizeof what, "cannot read dataset %s", name);
            rc = ckpt_h5_fail(path, what);
        }
        ckpt_h5_close(ms);
        ckpt_h5_close(fs);
        ckpt_h5_close(d);
        if (rc) return -1;
    }
    return 0;
}

int ckpt_load_shard(const char *path, const struct shard_table *st, float *local_params,
                    float *local_m, float *local_v) {
    if (!st || !local_params)
        return err_set("%s: no %s to load into", path, st ? "buffer" : "shard table");
    hid_t fid = ckpt_h5_open_complete(path);
    if (fid < 0) return -1;
    struct gpt2_config fc;
    struct shard_table fst = {0};
    struct param_table full = {0};
    int rc = -1;
    if (ckpt_h5_read_config(path, fid, &fc) || match_file(path, &fc, st, &fst) ||
        param_table_build(&fc, &full) ||
        read_group(path, fid, "/params", &full, st, local_params))
        goto out;
    if ((local_m || local_v) && H5Lexists(fid, "/train", H5P_DEFAULT) <= 0) {
        err_set(
            "%s: no training state (group /train is missing: a model-only checkpoint)",
            path);
        goto out;
    }
    if (local_v && H5Lexists(fid, "/optimizer/v", H5P_DEFAULT) <= 0) {
        err_set("%s: no second moment (group /optimizer/v is missing: the checkpoint's "
                "optimizer keeps none)",
                path);
        goto out;
    }
    if ((local_m && read_group(path, fid, "/optimizer/m", &full, st, local_m)) ||
        (local_v && read_group(path, fid, "/optimizer/v", &full, st, local_v)))
        goto out;
    rc = 0;
out:
    param_table_free(&full);
    shard_table_free(&fst);
    H5Fclose(fid);
    return rc;
}

int ckpt_load_shard_meta(const char *path, struct gpt2_config *cfg,
                         struct tokenizer **tok, struct ckpt_train_state *train) {
    if (tok) *tok = NULL;
    if (train) memset(train, 0, sizeof *train);
    hid_t fid = ckpt_h5_open_complete(path);
    if (fid < 0) return -1;
    int rc = ckpt_h5_read_config(path, fid, cfg);
    if (!rc && train) rc = ckpt_h5_read_train(path, fid, NULL, train);
    if (!rc && tok && !(*tok = ckpt_h5_read_tokenizer(path, fid))) rc = -1;
    H5Fclose(fid);
    return rc ? -1 : 0;
}
