/* tests/cuda_emu/emu_backend.cpp — the backend state that
 * kernels/cuda/ops_cuda.cu provides to the op files (stream, scratch, error
 * record), for the CUDA emulation. ops_cuda.cu itself is not compiled: it
 * creates cuBLAS handles (tests/cuda_emu/README.md).
 *
 * The scratch buffer is stricter than the real one: every cuda_scratch call
 * frees the previous buffer and returns a fresh one of exactly the bytes
 * asked for, filled with NaN (all bits set). Its contract ("valid until the
 * next cuda_scratch call", contents unspecified) allows that, and it turns
 * a kernel reading scratch it did not write, or past what it asked for, or a
 * pointer kept across calls, into wrong results or an ASan report.
 */
#include <mutex>
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"
#include "emu.h"

namespace {

struct CUstream_st *g_stream = nullptr;
void *g_scratch = nullptr;

std::mutex g_err_mu;
bool g_have_err = false;
char g_err[512];

} // namespace

cudaStream_t cuda_stream(void) {
    if (!g_stream) cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
    return g_stream;
}

extern "C" void *cuda_stream_handle(void) { return (void *)cuda_stream(); }

cublasHandle_t cuda_cublas(void) { return nullptr; }

void *cuda_scratch(size_t bytes) {
    if (g_scratch) CUDA_CHECK(cudaFree(g_scratch));
    g_scratch = nullptr;
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cuda_record_error(cudaGetErrorString(e), "cudaMalloc (scratch)", __FILE__,
                          __LINE__);
        return nullptr;
    }
    memset(p, 0xff, bytes ? bytes : 1);
    g_scratch = p;
    return p;
}

void cuda_record_error(const char *what, const char *expr, const char *file, int line) {
    std::lock_guard<std::mutex> lock(g_err_mu);
    if (g_have_err) return;
    snprintf(g_err, sizeof g_err, "%s:%d: %s: %s", file, line, expr, what);
    g_have_err = true;
}

const char *cuda_cublas_status_string(cublasStatus_t) { return "cuBLAS is not emulated"; }

extern "C" const char *cuda_last_error(void) {
    std::lock_guard<std::mutex> lock(g_err_mu);
    return g_have_err ? g_err : NULL;
}

extern "C" void emu_cuda_clear_error(void) {
    std::lock_guard<std::mutex> lock(g_err_mu);
    g_have_err = false;
    g_err[0] = 0;
}
