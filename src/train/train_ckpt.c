/* src/train/train_ckpt.c — locate, check, restore and save the trainer's
 * checkpoints (see train_ckpt.h; the format: src/common/ckpt.h, docs/checkpoints.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "ckpt_shard.h"
#include "train_ckpt.h"

int train_ckpt_locate(const char *resume, const char *ckpt_dir, char *path, size_t len) {
    struct stat st;
    if (!resume) {
        if (!ckpt_dir || stat(ckpt_dir, &st) != 0) return 1;
        int r = ckpt_find_latest(ckpt_dir, path, len);
        if (r < 0) return -1;
        if (r == 0)
            return err_set(
                "--ckpt-dir '%s' already holds checkpoints (newest '%s'): pass "
                "--resume to continue that run, or choose another directory",
                ckpt_dir, path);
        return 1;
    }
    if (!resume[0]) {
        if (!ckpt_dir) return err_set("--resume without a path needs --ckpt-dir");
        if (stat(ckpt_dir, &st) != 0 && errno == ENOENT) return 1;
        int r = ckpt_find_latest(ckpt_dir, path, len);
        return r < 0 ? -1 : r;
    }
    if (stat(resume, &st) != 0)
        return err_set("--resume '%s': %s", resume, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        int r = ckpt_find_latest(resume, path, len);
        if (r < 0) return -1;
        if (r == 1)
            return err_set("--resume '%s': the directory holds no complete checkpoint",
                           resume);
        return 0;
    }
    if (strlen(resume) >= len) return err_set("--resume '%s': path too long", resume);
    memcpy(path, resume, strlen(resume) + 1);
    return 0;
}

int train_ckpt_check_model(const char *file, const struct gpt2_config *ck,
                           const struct gpt2_config *want) {
    const struct {
        const char *field, *flag;
        int ck, want;
    } f[] = {
        {"n_layer", "--layers", ck->n_layer, want->n_layer},
        {"n_embd", "--width", ck->n_embd, want->n_embd},
        {"n_head", "--heads", ck->n_head, want->n_head},
        {"vocab_size", "--vocab", ck->vocab_size, want->vocab_size},
        {"max_seq", "--context", ck->max_seq, want->max_seq},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].ck != f[i].want)
            return err_set(
                "%s: the checkpoint's model has %s %d but the command line asks "
                "for %d (%s / --model); leave the model flags out to use the "
                "checkpoint's",
                file, f[i].field, f[i].ck, f[i].want, f[i].flag);
    return 0;
}

int train_ckpt_restore(const char *file, struct gpt2 *m, struct optim *o,
                       int64_t optim_t) {
    size_t n = m->table.total;
    float *params = malloc(n * sizeof(float)), *mom = malloc(n * sizeof(float));
    float *vel = o->v ? malloc(n * sizeof(float)) : NULL;
    int rc = -1;
    if (!params || !mom || (o->v && !vel)) {
        err_set("out of memory restoring %s", file);
        goto out;
    }
    if (ckpt_load_shard(file, &m->shard, params, mom, vel)) goto out;
    /* the state's range: everything, or a ZeRO-1 shard (its padding stays 0) */
    size_t end = o->hi < n ? o->hi : n;
    size_t bytes = end > o->lo ? (end - o->lo) * sizeof(float) : 0;
    gpt2_set_params(m, params);
    if (bytes) o->ops->upload(o->m, mom + o->lo, bytes);
    if (bytes && vel) o->ops->upload(o->v, vel + o->lo, bytes);
    o->t = (int)optim_t;
    o->ops->sync();
    rc = 0;
out:
    free(params);
    free(mom);
    free(vel);
    return rc;
}

int train_ckpt_save(const char *dir, int keep, const struct train_ckpt_io *io,
                    const struct gpt2 *m, const struct optim *o,
                    const struct tokenizer *tok, float *params_host, float *m_host,
                    float *v_host, struct ckpt_train_state *st, char *out,
                    size_t outlen) {
    size_t bytes = m->table.total * sizeof(float);
    o->ops->sync();
    gpt2_get_params(m, params_host);
    if (o->lo == 0 && o->hi == m->table.total) { /* else the caller gathered it */
        o->ops->download(m_host, o->m, bytes);
        if (o->v) o->ops->download(v_host, o->v, bytes);
    }
    snprintf(st->optimizer, sizeof st->optimizer, "%s", optim_kind_name(o->cfg.kind));
    st->optim_t = o->t;
    st->m_state = m_host;
    st->v_state = o->v ? v_host : NULL;
    ckpt_path_for_step(dir, st->step, out, outlen);
    if (ckpt_save_sharded(out, io->comm, io->writer, &m->cfg, &m->shard, params_host, tok,
                          st))
        return -1;
    return io->leader ? ckpt_prune(dir, keep) : 0;
}
