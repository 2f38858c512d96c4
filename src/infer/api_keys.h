/* src/infer/api_keys.h — API keys of the HTTP API (`llmpi serve --api-keys`).
 *
 * The file: one key per line, "NAME KEY MODELS", fields separated by spaces
 * or tabs; '#' starts a comment, blank lines are skipped:
 *
 *   # name    key                                 models it may use
 *   ops       sk-llmpi-2c1e7f0a9b8d4e6f8a1b3c5d  *
 *   game      sk-llmpi-77aa01bd9e3c4f21aa09be4c  innkeeper,blacksmith
 *
 * NAME ([A-Za-z0-9_.-], 1..64) is what logs and metrics show: a key itself
 * never appears in a log line or an error message. KEY is 16..256
 * characters of [A-Za-z0-9_.-]. MODELS is "*" (every agent and the bare
 * model) or a comma list of model names (agent names, or the bare model's
 * name as `GET /v1/models` lists it). Names and keys must be unique.
 * Errors name the file and line ("keys.txt:3: the key is shorter than 16
 * characters"), never the key.
 *
 * Lookup compares the presented key with every key of the file in constant
 * time per key (no early exit on the first differing byte), so response
 * times do not reveal how much of a key was right.
 * Immutable after loading: shared by the HTTP threads without a lock.
 */
#ifndef LLMPI_API_KEYS_H
#define LLMPI_API_KEYS_H

#include <stddef.h>

struct api_key {
    char *name;
    char *key;
    int all_models; /* "*" */
    char **models;  /* when not all_models */
    int n_models;
};

struct api_keys {
    struct api_key *keys;
    int n;
};

/* Parse keys from text[0..len) (`path` only names the source in errors).
 * -1 + err_set on the first bad line (nothing to free then). An empty file
 * (no keys) is an error too: it would lock every client out. */
int api_keys_parse(const char *text, size_t len, const char *path, struct api_keys *out);
/* Read and parse a file (at most 1 MiB). */
int api_keys_load(const char *path, struct api_keys *out);
void api_keys_free(struct api_keys *k);

/* The key whose KEY equals `presented` (length n), or NULL. */
const struct api_key *api_keys_find(const struct api_keys *k, const char *presented,
                                    size_t n);
/* The token of an "Authorization: Bearer TOKEN" header value (scheme
 * case-insensitive, spaces around TOKEN skipped): *tok, *n; 0, or -1 (with
 * err_set, never quoting the header) when the header is not a bearer
 * credential, has no token, or has a space inside the token. */
int api_bearer_token(const char *header, const char **tok, size_t *n);

/* 1 when key may use model `model` (an agent's name or the bare model's). */
int api_key_allows(const struct api_key *key, const char *model);

#endif
