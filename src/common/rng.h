/* src/common/rng.h — deterministic random numbers (xoshiro256** seeded by
 * splitmix64). The whole state is four words so it can be saved in a
 * checkpoint and a resumed run draws the same numbers. */
#ifndef LLMPI_RNG_H
#define LLMPI_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_u64(struct rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(struct rng *r);
/* Standard normal (Box-Muller; one draw per call, no cached pair, so the
 * state alone determines the sequence). */
double rng_normal(struct rng *r);

#endif
