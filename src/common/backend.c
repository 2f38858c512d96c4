/* src/common/backend.c — --device cpu|cuda|auto. */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "err.h"
#ifdef LLMPI_HAVE_CUDA
#include "ops_cuda.h"
#endif

static const struct ops *cuda_or_null(void) {
#ifdef LLMPI_HAVE_CUDA
    return ops_cuda();
#else
    return NULL;
#endif
}

const struct ops *backend_select(const char *device) {
    if (strcmp(device, "cpu") == 0) return ops_cpu();
    if (strcmp(device, "cuda") == 0) {
        const struct ops *o = cuda_or_null();
        if (!o) {
#ifdef LLMPI_HAVE_CUDA
            err_set("--device cuda: no usable CUDA device found");
#else
            err_set("--device cuda: this build has no CUDA backend "
                    "(configure with -DLLMPI_CUDA=ON)");
#endif
        }
        return o;
    }
    if (strcmp(device, "auto") == 0) {
        const struct ops *o = cuda_or_null();
        if (o) return o;
        fprintf(stderr, "llmpi: no CUDA device, running on the CPU\n");
        return ops_cpu();
    }
    err_set("--device: unknown device '%s' (cpu, cuda or auto)", device);
    return NULL;
}
