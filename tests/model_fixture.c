/* tests/model_fixture.c — see model_fixture.h. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "err.h"
#include "model_fixture.h"

float *random_params(const struct gpt2_config *cfg, struct param_table *t,
                     unsigned long long seed, float scale) {
    cr_assert_eq(param_table_build(cfg, t), 0, "%s", err_msg());
    float *p = malloc(t->total * sizeof *p);
    cr_assert_not_null(p);
    param_init(t, cfg, p, seed);
    for (int i = 0; i < t->count; i++) {
        const struct param_info *pi = &t->p[i];
        if (pi->init == INIT_NORMAL || pi->init == INIT_NORMAL_RESID)
            for (size_t j = 0; j < pi->numel; j++)
                p[pi->offset + j] *= scale;
        if (pi->init == INIT_ZEROS) /* non-zero biases exercise the bias paths */
            for (size_t j = 0; j < pi->numel; j++)
                p[pi->offset + j] = 0.01f * (float)((j * 7 + i) % 13) - 0.06f;
    }
    return p;
}
