/* tests/model_fixture.h — a model with random weights for the decoder,
 * KV-pool and engine tests (test_generate.c, test_kvpool.c, test_engine.c).
 */
#ifndef LLMPI_TEST_MODEL_FIXTURE_H
#define LLMPI_TEST_MODEL_FIXTURE_H

#include "model.h"

/* Builds *t for cfg and returns malloc'd parameters: param_init(seed), the
 * matrices scaled by `scale` (larger logits, sharper distributions), and
 * every zero-initialised tensor (biases, LN shifts) set to small distinct
 * non-zero values so that the bias paths are exercised. Asserts (Criterion)
 * on failure. */
float *random_params(const struct gpt2_config *cfg, struct param_table *t,
                     unsigned long long seed, float scale);

#endif
