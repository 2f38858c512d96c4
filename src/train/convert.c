/* src/train/convert.c — `llmpi convert`: Hugging Face GPT-2 <-> llmpi checkpoint.
 *
 *   llmpi convert --from-hf DIR --out FILE.h5   (DIR as save_pretrained writes it)
 *   llmpi convert --to-hf FILE.h5 --out DIR     (loads with from_pretrained(DIR))
 *
 * Why a converter: pretrained GPT-2 weights come in Hugging Face's layout,
 * and models trained here should be usable there. The architectures are the
 * same; the differences are bookkeeping:
 *  - HF's GPT-2 uses Conv1D, whose weight is [in, out]; llmpi's linear
 *    weights are [out, in] (kernels/ops.h), so every 2-D tensor but wte/wpe
 *    is transposed;
 *  - HF names carry a "transformer." prefix (GPT2LMHeadModel) or none
 *    (GPT2Model), and wte/wpe end in ".weight"; older files also hold the
 *    attention mask buffers attn.bias / attn.masked_bias, which are skipped;
 *  - the LM head is tied to wte: lm_head.weight may be absent, and when
 *    present must equal wte (llmpi has no separate head);
 *  - config.json options llmpi's GPT-2 cannot represent (another activation
 *    or LayerNorm epsilon, an inner MLP width other than 4 C, attention
 *    scaling variants, cross-attention, an untied head) are refused, naming
 *    the field, rather than converted into a model that computes something
 *    else.
 * Everything is validated before any output exists: the checkpoint is written
 * by ckpt_save (atomic), the HF directory is assembled under a temporary name
 * beside DIR and renamed into place at the end.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "safetensors.h"
#include "subcommands.h"
#include "tokenizer.h"

static const char *convert_help =
    "usage: llmpi convert --from-hf DIR --out FILE.h5\n"
    "       llmpi convert --to-hf FILE.h5 --out DIR\n"
    "\n"
    "Convert a Hugging Face GPT-2 to an llmpi checkpoint and back.\n"
    "\n"
    "  --from-hf DIR  a directory written by save_pretrained: config.json,\n"
    "                 model.safetensors (F32, F16 or BF16), vocab.json, merges.txt\n"
    "  --to-hf FILE   an llmpi checkpoint; writes DIR/model.safetensors,\n"
    "                 config.json, vocab.json, merges.txt, tokenizer_config.json\n"
    "                 (DIR must not exist or be empty)\n"
    "  --out PATH     the output checkpoint file or directory\n"
    "  -h, --help     this text\n"
    "\n"
    "Only GPT-2 as llmpi defines it converts: activation gelu_new, LayerNorm\n"
    "epsilon 1e-5, MLP width 4 x n_embd, LM head tied to wte. See docs/convert.md.\n";

#define HF_PREFIX "transformer."

/* ---- files ----------------------------------------------------------------- */

static char *read_text(const char *path, size_t max, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        err_set("%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, fp) : 0;
    int bad = !buf || ferror(fp);
    fclose(fp);
    if (bad || n > max) {
        err_set(bad ? "%s: cannot read" : "%s: larger than %zu bytes", path, max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return err_set("%s: %s", path, strerror(errno));
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, fp) != n || fflush(fp) || fsync(fileno(fp));
    if (fclose(fp)) bad = 1;
    return bad ? err_set("%s: write failed: %s", path, strerror(errno)) : 0;
}

static int path_join(char *out, size_t cap, const char *dir, const char *name) {
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return err_set("%s: path too long", dir);
    return 0;
}

/* Remove a directory this program created, with the plain files in it. */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                !path_join(p, sizeof p, dir, e->d_name))
                remove(p);
        closedir(d);
    }
    rmdir(dir);
}

/* ---- config.json ------------------------------------------------------------- */

static int cfg_int(const char *path, const cJSON *root, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return err_set("%s: field '%s' is missing", path, key);
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble ||
        v->valuedouble < 1 || v->valuedouble > 1e9)
        return err_set("%s: field '%s' must be a positive integer", path, key);
    *out = (int)v->valuedouble;
    return 0;
}

/* An optional boolean field that llmpi can represent only at `want`. */
static int cfg_bool_must(const char *path, const cJSON *root, const char *key, int want,
                         const char *why) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v))
        return err_set("%s: field '%s' must be true or false", path, key);
    if (cJSON_IsTrue(v) != want)
        return err_set("%s: field '%s' is %s; llmpi's GPT-2 supports only %s (%s)", path,
                       key, want ? "false" : "true", want ? "true" : "false", why);
    return 0;
}

static int hf_parse_config(const char *path, const cJSON *root, struct gpt2_config *cfg) {
    if (!cJSON_IsObject(root)) return err_set("%s: not a JSON object", path);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !(cJSON_IsString(mt) && !strcmp(mt->valuestring, "gpt2")))
        return err_set("%s: field 'model_type' is %s; only \"gpt2\" converts", path,
                       cJSON_IsString(mt) ? mt->valuestring : "not a string");
    if (cfg_int(path, root, "vocab_size", &cfg->vocab_size) ||
        cfg_int(path, root, "n_positions", &cfg->max_seq) ||
        cfg_int(path, root, "n_layer", &cfg->n_layer) ||
        cfg_int(path, root, "n_head", &cfg->n_head) ||
        cfg_int(path, root, "n_embd", &cfg->n_embd))
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "n_ctx");
    if (v && !(cJSON_IsNumber(v) && v->valuedouble == cfg->max_seq))
        return err_set("%s: field 'n_ctx' differs from n_positions %d", path,
                       cfg->max_seq);
    v = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (v && !(cJSON_IsString(v) && (!strcmp(v->valuestring, "gelu_new") ||
                                     !strcmp(v->valuestring, "gelu_pytorch_tanh"))))
        return err_set(
            "%s: field 'activation_function' is '%s'; llmpi's GPT-2 uses the tanh "
            "GELU, 'gelu_new'",
            path, cJSON_IsString(v) ? v->valuestring : "not a string");
    v = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (v && !(cJSON_IsNumber(v) && fabs(v->valuedouble - 1e-5) <= 1e-12))
        return err_set(
            "%s: field 'layer_norm_epsilon' is %g; llmpi's LayerNorm uses 1e-5", path,
            cJSON_IsNumber(v) ? v->valuedouble : NAN);
    v = cJSON_GetObjectItemCaseSensitive(root, "n_inner");
    if (v && !cJSON_IsNull(v) &&
        !(cJSON_IsNumber(v) && v->valuedouble == 4.0 * cfg->n_embd))
        return err_set("%s: field 'n_inner' is %g; llmpi's MLP width is 4 x n_embd = %d",
                       path, cJSON_IsNumber(v) ? v->valuedouble : NAN, 4 * cfg->n_embd);
    if (cfg_bool_must(path, root, "scale_attn_weights", 1,
                      "scores scaled by 1/sqrt(head size)") ||
        cfg_bool_must(path, root, "scale_attn_by_inverse_layer_idx", 0,
                      "no per-layer score scaling") ||
        cfg_bool_must(path, root, "add_cross_attention", 0, "a decoder-only model") ||
        cfg_bool_must(path, root, "tie_word_embeddings", 1, "the LM head is wte") ||
        cfg_bool_must(path, root, "is_encoder_decoder", 0, "a decoder-only model"))
        return -1;
    if (model_config_check(cfg)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err_msg());
        return err_set("%s: %s", path, msg);
    }
    return 0;
}

static int hf_read_config(const char *path, struct gpt2_config *cfg) {
    size_t len;
    char *text = read_text(path, 1 << 20, &len);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return err_set("%s: not valid JSON", path);
    int rc = hf_parse_config(path, root, cfg);
    cJSON_Delete(root);
    return rc;
}

/* ---- tensor names --------------------------------------------------------- */

/* A Conv1D weight in HF, i.e. stored [in, out]: every matrix but wte/wpe. */
static int is_conv1d(const struct param_table *t, int i) {
    return i != PT_WTE && i != PT_WPE && t->p[i].ndim == 2;
}

/* HF name without "transformer." -> table index; -1 if not a parameter. */
static int hf_index(const struct param_table *t, const char *s) {
    if (!strcmp(s, "wte.weight")) return PT_WTE;
    if (!strcmp(s, "wpe.weight")) return PT_WPE;
    if (!strcmp(s, "wte") || !strcmp(s, "wpe")) return -1;
    return param_table_find(t, s);
}

/* The name save_pretrained gives table entry i. */
static void hf_name(const struct param_table *t, int i, char *out, size_t cap) {
    const char *n = t->p[i].name;
    snprintf(out, cap, HF_PREFIX "%s%s", n,
             (i == PT_WTE || i == PT_WPE) ? ".weight" : "");
}

/* h.<digits>.attn.bias / h.<digits>.attn.masked_bias: the causal mask buffers. */
static int is_mask_buffer(const char *s) {
    if (strncmp(s, "h.", 2)) return 0;
    s += 2;
    if (*s < '0' || *s > '9') return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    return !strcmp(s, ".attn.bias") || !strcmp(s, ".attn.masked_bias");
}

static void shape_str(const int64_t *shape, int ndim, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", d ? ", " : "",
                              (long long)shape[d]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

/* The shape HF stores table entry i with. */
static int hf_shape(const struct param_table *t, int i, int64_t shape[2]) {
    const struct param_info *p = &t->p[i];
    shape[0] = is_conv1d(t, i) ? p->shape[1] : p->shape[0];
    shape[1] = is_conv1d(t, i) ? p->shape[0] : p->shape[1];
    return p->ndim;
}

static int check_shape(const struct st_file *f, const struct st_tensor *st,
                       const struct param_table *t, int i) {
    int64_t want[2];
    int nd = hf_shape(t, i, want);
    int ok = st->ndim == nd;
    for (int d = 0; d < nd && ok; d++)
        ok = st->shape[d] == want[d];
    if (ok) return 0;
    char got_s[128], want_s[64];
    shape_str(st->shape, st->ndim, got_s, sizeof got_s);
    shape_str(want, nd, want_s, sizeof want_s);
    return err_set("%s: tensor '%s' has shape %s; config.json implies %s", f->path,
                   st->name, got_s, want_s);
}

/* ---- HF -> llmpi --------------------------------------------------------------- */

/* Map every tensor of f onto the table (names, shapes, presence) without
 * reading data. src[i] = the file tensor for table entry i; *lm_head = the
 * lm_head.weight tensor or NULL. */
static int hf_map(const struct st_file *f, const struct param_table *t,
                  const struct st_tensor **src, const struct st_tensor **lm_head) {
    *lm_head = NULL;
    for (int k = 0; k < f->count; k++) {
        const struct st_tensor *st = &f->t[k];
        const char *s = st->name;
        if (!strcmp(s, "lm_head.weight")) {
            *lm_head = st;
            continue;
        }
        if (!strncmp(s, HF_PREFIX, strlen(HF_PREFIX))) s += strlen(HF_PREFIX);
        if (is_mask_buffer(s)) continue;
        int i = hf_index(t, s);
        if (i < 0)
            return err_set(
                "%s: tensor '%s' is not a parameter of llmpi's GPT-2 (config.json: "
                "n_layer %d); only GPT2LMHeadModel / GPT2Model weights convert",
                f->path, st->name, t->count > 4 ? (t->count - 4) / LP_COUNT : 0);
        if (src[i])
            return err_set("%s: tensors '%s' and '%s' are the same parameter", f->path,
                           src[i]->name, st->name);
        if (!st_is_float(st))
            return err_set("%s: tensor '%s' has dtype %s; expected F32, F16 or BF16",
                           f->path, st->name, st->dtype);
        if (check_shape(f, st, t, i)) return -1;
        src[i] = st;
    }
    for (int i = 0; i < t->count; i++)
        if (!src[i]) {
            char n[96];
            hf_name(t, i, n, sizeof n);
            return err_set("%s: tensor '%s' is missing", f->path, n);
        }
    if (*lm_head) {
        const struct st_tensor *h = *lm_head;
        if (!st_is_float(h))
            return err_set("%s: tensor '%s' has dtype %s; expected F32, F16 or BF16",
                           f->path, h->name, h->dtype);
        if (check_shape(f, h, t, PT_WTE)) return -1;
    }
    return 0;
}

/* Read f's weights into params (table layout, [out, in] matrices). */
static int hf_load_weights(struct st_file *f, const struct param_table *t,
                           float *params) {
    const struct st_tensor **src = calloc((size_t)t->count, sizeof *src);
    const struct st_tensor *lm_head = NULL;
    if (!src) return err_set("out of memory");
    int rc = hf_map(f, t, src, &lm_head);
    size_t maxn = t->p[PT_WTE].numel;
    for (int i = 0; i < t->count; i++)
        if (t->p[i].numel > maxn) maxn = t->p[i].numel;
    float *scratch = rc ? NULL : malloc(maxn * sizeof *scratch);
    if (!rc && !scratch) rc = err_set("out of memory");
    for (int i = 0; i < t->count && !rc; i++) {
        float *dst = params + t->p[i].offset;
        if (!is_conv1d(t, i)) {
            rc = st_read_f32(f, src[i], dst);
            continue;
        }
        rc = st_read_f32(f, src[i], scratch);
        size_t O = (size_t)t->p[i].shape[0], I = (size_t)t->p[i].shape[1];
        for (size_t o = 0; o < O && !rc; o++) /* scratch is [I, O] */
            for (size_t k = 0; k < I; k++)
                dst[o * I + k] = scratch[k * O + o];
    }
    if (!rc && lm_head) {
        rc = st_read_f32(f, lm_head, scratch);
        if (!rc && memcmp(scratch, params + t->p[PT_WTE].offset,
                          t->p[PT_WTE].numel * sizeof(float)))
            rc = err_set(
                "%s: tensor 'lm_head.weight' differs from '%s': llmpi ties the LM "
                "head to the token embedding",
                f->path, src[PT_WTE]->name);
    }
    free(scratch);
    free(src);
    return rc;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A clear message for directories without model.safetensors. */
static int no_safetensors(const char *dir, const char *st_path) {
    char p[4096];
    if (!path_join(p, sizeof p, dir, "model.safetensors.index.json") && file_exists(p))
        return err_set(
            "%s: sharded checkpoints are not supported; merge the shards into one "
            "model.safetensors",
            p);
    if (!path_join(p, sizeof p, dir, "pytorch_model.bin") && file_exists(p))
        return err_set("%s: missing; only safetensors weights convert (re-save with "
                       "save_pretrained(..., safe_serialization=True))",
                       st_path);
    return err_set("%s: %s", st_path, strerror(ENOENT));
}

static int from_hf(const char *dir, const char *out) {
    char cfg_path[4096], st_path[4096], vocab_path[4096], merges_path[4096];
    struct stat sb;
    if (stat(dir, &sb)) return err_set("%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return err_set("%s: not a directory", dir);
    if (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode))
        return err_set("--out %s: is a directory; give the checkpoint file name", out);
    if (path_join(cfg_path, sizeof cfg_path, dir, "config.json") ||
        path_join(st_path, sizeof st_path, dir, "model.safetensors") ||
        path_join(vocab_path, sizeof vocab_path, dir, "vocab.json") ||
        path_join(merges_path, sizeof merges_path, dir, "merges.txt"))
        return -1;

    struct gpt2_config cfg;
    if (hf_read_config(cfg_path, &cfg)) return -1;
    if (!file_exists(st_path)) return no_safetensors(dir, st_path);
    for (int k = 0; k < 2; k++) {
        const char *p = k ? merges_path : vocab_path;
        if (!file_exists(p))
            return err_set(
                "%s: %s (the GPT-2 tokenizer files vocab.json and merges.txt are "
                "needed)",
                p, strerror(ENOENT));
    }
    struct param_table t;
    if (param_table_build(&cfg, &t)) return -1;
    struct st_file f;
    float *params = NULL;
    struct tokenizer *tok = NULL;
    int rc = st_open(st_path, &f);
    if (!rc && !(params = malloc(t.total * sizeof *params)))
        rc = err_set("out of memory");
    if (!rc) rc = hf_load_weights(&f, &t, params);
    st_close(&f);
    if (!rc && !(tok = tokenizer_load_files(vocab_path, merges_path))) rc = -1;
    if (!rc && tokenizer_vocab_size(tok) > cfg.vocab_size)
        rc = err_set("%s: %d tokens, more than config.json's vocab_size %d", vocab_path,
                     tokenizer_vocab_size(tok), cfg.vocab_size);
    if (!rc) rc = ckpt_save(out, &cfg, params, tok, NULL);
    if (!rc)
        printf("llmpi convert: %s -> %s (GPT-2: %d layers, width %d, %d heads, vocab %d, "
               "context %d; %zu parameters)\n",
               dir, out, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.vocab_size, cfg.max_seq,
               model_num_params(&t));
    tokenizer_free(tok);
    free(params);
    param_table_free(&t);
    return rc;
}

/* ---- llmpi -> HF --------------------------------------------------------------- */

static int write_json(const char *path, cJSON *root) {
    char *s = root ? cJSON_Print(root) : NULL;
    size_t n = s ? strlen(s) : 0;
    char *t = s ? malloc(n + 2) : NULL;
    int rc = -1;
    if (t) {
        memcpy(t, s, n);
        memcpy(t + n, "\n", 2);
        rc = write_text(path, t);
    } else {
        err_set("%s: out of memory", path);
    }
    free(t);
    cJSON_free(s);
    cJSON_Delete(root);
    return rc;
}

static int write_config(const char *path, const struct gpt2_config *cfg, int32_t eot) {
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddItemToObject(r, "architectures", arch);
    cJSON_AddStringToObject(r, "model_type", "gpt2");
    cJSON_AddNumberToObject(r, "vocab_size", cfg->vocab_size);
    cJSON_AddNumberToObject(r, "n_positions", cfg->max_seq);
    cJSON_AddNumberToObject(r, "n_embd", cfg->n_embd);
    cJSON_AddNumberToObject(r, "n_layer", cfg->n_layer);
    cJSON_AddNumberToObject(r, "n_head", cfg->n_head);
    cJSON_AddNullToObject(r, "n_inner");
    cJSON_AddStringToObject(r, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(r, "layer_norm_epsilon", 1e-5);
    cJSON_AddBoolToObject(r, "scale_attn_weights", 1);
    cJSON_AddBoolToObject(r, "scale_attn_by_inverse_layer_idx", 0);
    cJSON_AddBoolToObject(r, "reorder_and_upcast_attn", 0);
    cJSON_AddBoolToObject(r, "add_cross_attention", 0);
    cJSON_AddBoolToObject(r, "tie_word_embeddings", 1);
    if (eot >= 0) {
        cJSON_AddNumberToObject(r, "bos_token_id", eot);
        cJSON_AddNumberToObject(r, "eos_token_id", eot);
    } else { /* HF's defaults (50256) would point outside a small vocabulary */
        cJSON_AddNullToObject(r, "bos_token_id");
        cJSON_AddNullToObject(r, "eos_token_id");
    }
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    return write_json(path, r);
}

/* GPT-2's byte -> printable code point table (bytes_to_unicode). */
static unsigned byte_codepoint(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (unsigned)b;
    unsigned n = 0; /* the n-th byte outside those ranges maps to 256 + n */
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) ||
              (c >= 0xAE && c <= 0xFF)))
            n++;
    return 256 + n;
}

/* The "bytes" tokenizer as GPT-2 files: 256 single-byte tokens, no merges. */
static int write_bytes_tokenizer(const char *dir) {
    char vp[4096], mp[4096];
    if (path_join(vp, sizeof vp, dir, "vocab.json") ||
        path_join(mp, sizeof mp, dir, "merges.txt"))
        return -1;
    cJSON *v = cJSON_CreateObject();
    for (int b = 0; b < 256 && v; b++) {
        unsigned cp = byte_codepoint(b);
        char s[4];
        if (cp < 0x80)
            s[0] = (char)cp, s[1] = 0;
        else
            s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F)), s[2] = 0;
        cJSON_AddNumberToObject(v, s, b);
    }
    char *s = v ? cJSON_PrintUnformatted(v) : NULL;
    cJSON_Delete(v);
    int rc = s ? write_text(vp, s) : err_set("%s: out of memory", vp);
    cJSON_free(s);
    return rc ? rc : write_text(mp, "#version: 0.2\n");
}

static int write_tokenizer(const char *dir, const struct tokenizer *tok, int max_len) {
    char p[4096];
    if (path_join(p, sizeof p, dir, "tokenizer_config.json")) return -1;
    int rc = tokenizer_is_bytes(tok) ? write_bytes_tokenizer(dir)
                                     : tokenizer_save_files(tok, dir);
    if (rc) return rc;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "tokenizer_class", "GPT2Tokenizer");
    cJSON_AddNumberToObject(r, "model_max_length", max_len);
    cJSON_AddBoolToObject(r, "add_prefix_space", 0);
    int32_t eot = tokenizer_eot(tok);
    size_t n = 0;
    const char *eb = eot >= 0 ? tokenizer_token_bytes(tok, eot, &n) : NULL;
    char e[64] = "";
    if (eb && n < sizeof e) {
        memcpy(e, eb, n);
        e[n] = '\0';
    }
    /* GPT2Tokenizer's special tokens default to <|endoftext|>, which it would
     * append as a new id when the vocabulary lacks it: name ours, or none. */
    static const char *const special[] = {"bos_token", "eos_token", "unk_token"};
    for (int i = 0; i < 3; i++) {
        if (e[0] && strlen(e) == n)
            cJSON_AddStringToObject(r, special[i], e);
        else
            cJSON_AddNullToObject(r, special[i]);
    }
    return write_json(p, r);
}

static int write_safetensors(const char *path, const struct param_table *t,
                             const float *params) {
    struct st_out_tensor *o = calloc((size_t)t->count, sizeof *o);
    char(*names)[96] = calloc((size_t)t->count, sizeof *names);
    int rc = (!o || !names) ? err_set("out of memory") : 0;
    for (int i = 0; i < t->count && !rc; i++) {
        hf_name(t, i, names[i], sizeof names[i]);
        o[i].name = names[i];
        o[i].ndim = hf_shape(t, i, o[i].shape);
        o[i].data = params + t->p[i].offset;
        o[i].transpose = is_conv1d(t, i);
    }
    static const char *const meta[] = {"format", "pt"};
    if (!rc) rc = st_write(path, o, t->count, meta, 1);
    free(names);
    free(o);
    return rc;
}

/* A temporary directory beside `out`: PARENT/.BASENAME.tmp-XXXXXX. */
static int make_tmp_dir(const char *out, char *tmp, size_t cap) {
    char copy[4096];
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        n--; /* "dir/" names "dir" */
    if (n >= sizeof copy) return err_set("%s: path too long", out);
    memcpy(copy, out, n);
    copy[n] = '\0';
    char *slash = strrchr(copy, '/');
    const char *parent = ".", *base = copy;
    if (slash) {
        *slash = '\0';
        parent = copy; /* "" for a file in "/" */
        base = slash + 1;
    }
    if ((size_t)snprintf(tmp, cap, "%s/.%s.tmp-XXXXXX", parent, base) >= cap)
        return err_set("%s: path too long", out);
    if (!mkdtemp(tmp))
        return err_set("%s: cannot create a temporary directory: %s", tmp,
                       strerror(errno));
    mode_t mask = umask(0); /* mkdtemp makes 0700; give DIR the usual mode */
    umask(mask);
    if (chmod(tmp, 0777 & ~mask)) {
        err_set("%s: chmod: %s", tmp, strerror(errno));
        rmdir(tmp);
        return -1;
    }
    return 0;
}

static int check_out_dir(const char *out) {
    struct stat sb;
    if (stat(out, &sb)) return 0;
    if (!S_ISDIR(sb.st_mode))
        return err_set("--out %s: exists and is not a directory", out);
    DIR *d = opendir(out);
    if (!d) return err_set("--out %s: %s", out, strerror(errno));
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty ? 0 : err_set("--out %s: exists and is not empty", out);
}

static int to_hf(const char *in, const char *out) {
    if (check_out_dir(out)) return -1;
    struct gpt2_config cfg;
    float *params = NULL;
    struct tokenizer *tok = NULL;
    if (ckpt_load_model(in, &cfg, &params, &tok)) return -1;
    struct param_table t;
    char tmp[4096], p[4096];
    int rc = param_table_build(&cfg, &t);
    if (rc) goto done_free;
    rc = make_tmp_dir(out, tmp, sizeof tmp);
    if (rc) goto done_table;
    rc = path_join(p, sizeof p, tmp, "model.safetensors");
    if (!rc) rc = write_safetensors(p, &t, params);
    if (!rc) rc = path_join(p, sizeof p, tmp, "config.json");
    if (!rc) rc = write_config(p, &cfg, tok ? tokenizer_eot(tok) : -1);
    if (!rc && tok) rc = write_tokenizer(tmp, tok, cfg.max_seq);
    if (!rc && rename(tmp, out))
        rc = err_set("--out %s: cannot rename %s into place: %s", out, tmp,
                     strerror(errno));
    if (rc)
        remove_tree(tmp);
    else
        printf("llmpi convert: %s -> %s (GPT-2: %d layers, width %d, %d heads, vocab %d, "
               "context %d)\n",
               in, out, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.vocab_size, cfg.max_seq);
done_table:
    param_table_free(&t);
done_free:
    tokenizer_free(tok);
    free(params);
    return rc;
}

/* ---- command line ------------------------------------------------------------- */

static int run(int argc, char **argv) {
    const char *from = NULL, *to = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char **dst = !strcmp(f, "--from-hf") ? &from
                           : !strcmp(f, "--to-hf") ? &to
                           : !strcmp(f, "--out")   ? &out
                                                   : NULL;
        if (!dst) return err_set("unknown option '%s' (see llmpi convert --help)", f);
        if (!(*dst = args_value(argc, argv, &i))) return -1;
    }
    if (!from == !to)
        return err_set(
            "give exactly one of --from-hf DIR or --to-hf FILE (see llmpi convert "
            "--help)");
    if (!out) return err_set("--out PATH is required (see llmpi convert --help)");
    return from ? from_hf(from, out) : to_hf(to, out);
}

int convert_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(convert_help, stdout);
            return 0;
        }
    if (run(argc, argv)) {
        fprintf(stderr, "llmpi convert: error: %s\n", err_msg());
        return 1;
    }
    return 0;
}
