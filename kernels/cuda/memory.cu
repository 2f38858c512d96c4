/* kernels/cuda/memory.cu — device memory for the CUDA backend.
 *
 *   alloc: cudaMalloc (>= 256 bytes, so alloc(0) is still a valid pointer);
 *          NULL on failure (not recorded as an error: the caller checks NULL)
 *   free: cudaFree;  zero: cudaMemsetAsync on the backend stream
 *   upload / download: cudaMemcpyAsync on the backend stream, then
 *          cudaStreamSynchronize, so they are ordered after queued ops (the
 *          stream is non-blocking, so a plain cudaMemcpy on the legacy
 *          default stream would not wait for it) and the host buffer may be
 *          reused / read as soon as they return
 *   copy: device-to-device cudaMemcpyAsync on the stream (not synchronised);
 *         overlapping ranges go through the scratch buffer (memmove semantics)
 *   sync: cudaStreamSynchronize on the backend stream
 * Launch shape: none (runtime calls only).
 */
#include "cuda_internal.h"

extern "C" void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes < 256 ? 256 : bytes) != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is reported by NULL */
        return NULL;
    }
    return p;
}

extern "C" void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

extern "C" void cuda_zero(void *p, size_t bytes) {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
}

extern "C" void cuda_upload(void *dst, const void *host_src, size_t bytes) {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice,
                               cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}

extern "C" void cuda_download(void *host_dst, const void *src, size_t bytes) {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost,
                               cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}

extern "C" void cuda_copy(void *dst, const void *src, size_t bytes) {
    if (bytes == 0 || dst == src) return;
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {
        /* overlapping (memmove semantics, like the CPU backend): bounce
         * through the scratch buffer, since cudaMemcpy does not promise to
         * handle overlap */
        void *tmp = cuda_scratch(bytes);
        if (!tmp) return;
        CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice,
                                   cuda_stream()));
        src = tmp;
    }
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                               cuda_stream()));
}

extern "C" void cuda_sync(void) {
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}
