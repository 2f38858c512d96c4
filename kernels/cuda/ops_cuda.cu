/* kernels/cuda/ops_cuda.cu — the CUDA backend's `struct ops` table and state.
 *
 * State: one stream, one cuBLAS handle bound to it, one grow-only scratch
 * buffer, and the first recorded error. Created lazily on the first
 * ops_cuda() call (C++ function-local static: thread-safe, runs once); if no
 * device is usable the call returns NULL and every later call does too.
 * cuBLAS runs in CUBLAS_DEFAULT_MATH and the gemms ask for CUBLAS_COMPUTE_32F,
 * so no TF32: results track the CPU reference to fp32 rounding.
 * Launch shape: none (host code only).
 */
#include <mutex>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"

namespace {

cudaStream_t g_stream = nullptr;
cublasHandle_t g_cublas = nullptr;
void *g_scratch = nullptr;
size_t g_scratch_bytes = 0;

std::mutex g_err_mu;
bool g_have_err = false;
char g_err[512];

struct ops g_ops;

bool init_backend(void) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        (void)cudaGetLastError(); /* clear: "no device" is not an op error */
        return false;
    }
    /* the current device (0 unless the caller chose another, e.g. by rank) */
    if (cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking) !=
        cudaSuccess) {
        (void)cudaGetLastError();
        g_stream = nullptr;
        return false;
    }
    if (cublasCreate(&g_cublas) != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(g_stream);
        g_stream = nullptr;
        g_cublas = nullptr;
        return false;
    }
    if (cublasSetStream(g_cublas, g_stream) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(g_cublas, CUBLAS_DEFAULT_MATH) !=
            CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(g_cublas);
        cudaStreamDestroy(g_stream);
        g_stream = nullptr;
        g_cublas = nullptr;
        return false;
    }

    /* C++17 has no designated initialisers: fill field by field */
    memset(&g_ops, 0, sizeof g_ops);
    g_ops.name = "cuda";
    g_ops.alloc = cuda_alloc;
    g_ops.free = cuda_free;
    g_ops.zero = cuda_zero;
    g_ops.upload = cuda_upload;
    g_ops.download = cuda_download;
    g_ops.copy = cuda_copy;
    g_ops.sync = cuda_sync;
    g_ops.embedding_fwd = cuda_embedding_fwd;
    g_ops.embedding_bwd = cuda_embedding_bwd;
    g_ops.layernorm_fwd = cuda_layernorm_fwd;
    g_ops.layernorm_bwd = cuda_layernorm_bwd;
    g_ops.matmul_fwd = cuda_matmul_fwd;
    g_ops.matmul_bwd = cuda_matmul_bwd;
    g_ops.attention_fwd = cuda_attention_fwd;
    g_ops.attention_bwd = cuda_attention_bwd;
    g_ops.attention_paged_fwd = cuda_attention_paged_fwd;
    g_ops.gelu_fwd = cuda_gelu_fwd;
    g_ops.gelu_bwd = cuda_gelu_bwd;
    g_ops.residual_fwd = cuda_residual_fwd;
    g_ops.residual_bwd = cuda_residual_bwd;
    g_ops.xent_fwd = cuda_xent_fwd;
    g_ops.xent_bwd_inplace = cuda_xent_bwd_inplace;
    g_ops.xent_shard_stats = cuda_xent_shard_stats;
    g_ops.xent_shard_rescale = cuda_xent_shard_rescale;
    g_ops.xent_shard_loss = cuda_xent_shard_loss;
    g_ops.xent_shard_bwd_inplace = cuda_xent_shard_bwd_inplace;
    g_ops.sgd_update = cuda_sgd_update;
    g_ops.adam_update = cuda_adam_update;
    g_ops.sumsq = cuda_sumsq;
    g_ops.scale = cuda_scale;
    g_ops.set_matmul_dtype = cuda_set_matmul_dtype;
    g_ops.matmul_dtype = cuda_matmul_dtype;
    return true;
}

} // namespace

cudaStream_t cuda_stream(void) { return g_stream; }
extern "C" void *cuda_stream_handle(void) { return (void *)g_stream; }
cublasHandle_t cuda_cublas(void) { return g_cublas; }

void *cuda_scratch(size_t bytes) {
    if (bytes <= g_scratch_bytes) return g_scratch;
    if (g_scratch) {
        /* earlier queued work may still read the old buffer */
        CUDA_CHECK(cudaStreamSynchronize(g_stream));
        CUDA_CHECK(cudaFree(g_scratch));
        g_scratch = nullptr;
        g_scratch_bytes = 0;
    }
    size_t want = bytes + bytes / 4; /* some headroom against regrowth */
    want = (want + 255) & ~(size_t)255;
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        cuda_record_error(cudaGetErrorString(e), "cudaMalloc (scratch)",
                          __FILE__, __LINE__);
        return nullptr;
    }
    g_scratch = p;
    g_scratch_bytes = want;
    return g_scratch;
}

void cuda_record_error(const char *what, const char *expr, const char *file,
                       int line) {
    std::lock_guard<std::mutex> lock(g_err_mu);
    if (g_have_err) return;
    snprintf(g_err, sizeof g_err, "%s:%d: %s: %s", file, line, expr, what);
    g_have_err = true;
}

const char *cuda_cublas_status_string(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
    }
}

extern "C" const char *cuda_last_error(void) {
    std::lock_guard<std::mutex> lock(g_err_mu);
    return g_have_err ? g_err : NULL;
}

extern "C" const struct ops *ops_cuda(void) {
    static const bool ok = init_backend();
    return ok ? &g_ops : NULL;
}

extern "C" int cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError(); /* "no driver / no device" is not an op error */
        return 0;
    }
    return count;
}

extern "C" int cuda_bind_device(int dev) {
    if (cudaSetDevice(dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    return 0;
}

extern "C" int cuda_device_info(char *name, int cap, int *cc_major, int *cc_minor,
                                int *sm_count, int *clock_khz) {
    int dev = 0;
    cudaDeviceProp p;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(sm_count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(clock_khz, cudaDevAttrClockRate, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    snprintf(name, (size_t)cap, "%s", p.name);
    *cc_major = p.major;
    *cc_minor = p.minor;
    return 0;
}
