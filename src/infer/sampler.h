/* src/infer/sampler.h — choosing the next token from a row of logits.
 *
 * Per-request state: the settings and the request's own RNG, so requests
 * that share a batch (serving) never perturb each other's random streams and
 * the same seed gives the same text whatever else runs.
 *
 * Semantics, applied in this order to logits z over ids [0, n):
 *  1. repetition penalty r (1 = off; CTRL / Hugging Face rule): for every
 *     distinct id in the request's history, z = z > 0 ? z / r : z * r;
 *  2. greedy when temperature == 0 or top_k == 1: the argmax (lowest id on
 *     ties), no random number drawn;
 *  3. top-k (0 = off): keep the k largest z (ties broken by lower id);
 *  4. temperature T: p_i proportional to exp((z_i - max z) / T) over the kept ids;
 *  5. top-p (1 = off): sort the kept ids by p (descending, ties by lower id)
 *     and keep the shortest prefix whose mass is >= top_p;
 *  6. draw one id from the kept ids, with probabilities renormalised.
 * Logits are not modified (the sampler works on its own copy).
 */
#ifndef LLMPI_SAMPLER_H
#define LLMPI_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

struct sampler_params {
    float temperature;        /* >= 0; 0 = greedy */
    int top_k;                /* >= 0; 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float repetition_penalty; /* >= 1 in practice; 1 = off; must be > 0 */
    uint64_t seed;
};

/* temperature 1, top-k off, top-p off, no penalty, seed 0 */
struct sampler_params sampler_defaults(void);

/* Check the settings: -1 + err_set naming the field when out of range. */
int sampler_params_check(const struct sampler_params *p);

/* A candidate token: its id and a key (logit, then unnormalised probability). */
struct sampler_cand {
    double key;
    int32_t id;
};

struct sampler {
    struct sampler_params p;
    struct rng rng;
    int vocab; /* largest n accepted */
    /* scratch [vocab] */
    float *z;
    struct sampler_cand *cand;
    unsigned char *seen;
};

/* Per-request sampler over rows of up to `vocab` logits. -1 + err_set on bad
 * settings or out of memory. */
int sampler_init(struct sampler *s, const struct sampler_params *p, int vocab);
void sampler_free(struct sampler *s);

/* The next token from logits[0..n) (host memory, n <= vocab). history
 * (may be NULL when n_history == 0) feeds the repetition penalty. Returns the
 * id, or -1 + err_set when n is out of range or a logit is NaN. */
int32_t sampler_sample(struct sampler *s, const float *logits, int n,
                       const int32_t *history, size_t n_history);

#endif
