/* src/common/backend.c — --device cpu|cuda|auto. */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "comm.h"
#include "err.h"
#ifdef LLMPI_HAVE_CUDA
#include "ops_cuda.h"
#endif

/* The CUDA backend on GPU local_rank % count, or NULL when there is no
 * usable GPU (or no CUDA in this build). */
static const struct ops *cuda_or_null(int local_rank, int *gpu) {
#ifdef LLMPI_HAVE_CUDA
    int n = cuda_device_count();
    if (n <= 0) return NULL;
    int dev = local_rank % n;
    if (cuda_bind_device(dev)) return NULL;
    const struct ops *o = ops_cuda();
    if (o && gpu) *gpu = dev;
    return o;
#else
    (void)local_rank;
    (void)gpu;
    return NULL;
#endif
}

double backend_peak_flops(const struct ops *ops, enum peak_dtype dt, char *name, size_t cap) {
    if (cap) snprintf(name, cap, "%s", ops->name);
#ifdef LLMPI_HAVE_CUDA
    if (strcmp(ops->name, "cuda") == 0) {
        char gpu[256];
        struct gpu_desc g = {.name = gpu};
        if (cuda_device_info(gpu, (int)sizeof gpu, &g.cc_major, &g.cc_minor, &g.sm_count,
                             &g.clock_khz))
            return 0.0;
        for (char *p = gpu; *p; p++) /* printable in JSON and logs as it is */
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = '?';
        if (cap) snprintf(name, cap, "%s", gpu);
        return peak_flops(&g, dt);
    }
#else
    (void)dt;
#endif
    return 0.0;
}

int backend_attach_comm(const struct ops *ops, struct comm *c) {
#ifdef LLMPI_HAVE_CUDA
    if (strcmp(ops->name, "cuda") == 0) return comm_nccl_attach(c, cuda_stream_handle());
#else
    (void)c;
#endif
    (void)ops;
    return 0;
}

int backend_dtype_parse(const char *value, enum ops_dtype *dt) {
    if (!strcmp(value, "fp32"))
        *dt = OPS_F32;
    else if (!strcmp(value, "bf16"))
        *dt = OPS_BF16;
    else
        return err_set("--dtype: unknown '%s' (fp32 or bf16)", value);
    return 0;
}

const char *backend_dtype_name(enum ops_dtype dt) {
    return dt == OPS_BF16 ? "bf16" : "fp32";
}

int backend_set_dtype(const struct ops *ops, enum ops_dtype dt) {
    if (ops->set_matmul_dtype && ops->set_matmul_dtype(dt) == 0) return 0;
    if (dt == OPS_F32 && !ops->set_matmul_dtype) return 0; /* fp32 is every backend's */
    return err_set("--dtype %s: the %s backend cannot run its matmuls in %s%s",
                   backend_dtype_name(dt), ops->name, backend_dtype_name(dt),
                   strcmp(ops->name, "cuda") == 0 ? " on this GPU (needs compute "
                                                    "capability 8.0 or newer)"
                                                  : "");
}

const struct ops *backend_select(const char *device) {
    return backend_select_rank(device, 0, NULL);
}

const struct ops *backend_select_rank(const char *device, int local_rank, int *gpu) {
    if (gpu) *gpu = -1;
    if (strcmp(device, "cpu") == 0) return ops_cpu();
    if (strcmp(device, "cuda") == 0) {
        const struct ops *o = cuda_or_null(local_rank, gpu);
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
        const struct ops *o = cuda_or_null(local_rank, gpu);
        if (o) return o;
        if (local_rank == 0) fprintf(stderr, "llmpi: no CUDA device, running on the CPU\n");
        return ops_cpu();
    }
    err_set("--device: unknown device '%s' (cpu, cuda or auto)", device);
    return NULL;
}
