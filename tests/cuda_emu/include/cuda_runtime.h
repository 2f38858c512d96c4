/* tests/cuda_emu/include/cuda_runtime.h — the part of the CUDA runtime and of
 * the device language that llmpi's kernels use, for compiling
 * the kernels/cuda .cu files as host C++ and running them on the CPU (the CUDA
 * emulation harness; tests/cuda_emu/README.md). Not NVIDIA's header: only
 * what the kernel files need, with the semantics documented in the CUDA
 * programming guide, and checks where the device would misbehave.
 *
 * Execution model (emu_runtime.cpp): a launch runs its grid one block at a
 * time; the threads of a block are fibers (ucontext) on the calling thread,
 * switched only at the synchronisation points (__syncthreads, the warp
 * shuffles / votes, __syncwarp). The scheduler runs one warp as far as it
 * can get (to a block barrier or its end) before the next warp starts, lane
 * by lane: a legal schedule of a real GPU, and an adversarial one, since any
 * missing barrier lets a warp read what another warp has not written yet (or
 * overwrite what it has not read yet). Dynamic shared memory is refilled with
 * NaN (all bits set) before every block. Misuse a GPU would not report (a
 * barrier some threads skip, a shuffle naming an exited lane, lanes of a
 * warp meeting different warp operations) is reported by the emulator and
 * fails the launch.
 *
 * Device pointers are host pointers; "device" memory is malloc'd.
 * __CUDACC__ is defined so that kernels/cuda/cuda_internal.h compiles its
 * device helpers; __CUDA_ARCH__ is not (there is one compilation pass).
 */
#ifndef LLMPI_EMU_CUDA_RUNTIME_H
#define LLMPI_EMU_CUDA_RUNTIME_H

#ifndef __cplusplus
#error "the CUDA emulation is C++ (the kernels/cuda .cu files compiled as C++17)"
#endif

#ifndef __CUDACC__
#define __CUDACC__ 1
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

/* ---- qualifiers ------------------------------------------------------------
 * __shared__ variables declared in a kernel body are static: one instance
 * shared by the fibers of the running block (blocks run one at a time).
 * `extern __shared__ T name[];` (dynamic shared memory) is rewritten by
 * emu_rewrite.py into a pointer to the launch's dynamic buffer. */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
/* __restrict__ is a GNU C++ keyword already */

/* ---- built-in variables ---------------------------------------------------- */
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
/* set by the scheduler before it resumes a thread's fiber */
extern __thread uint3 threadIdx;
extern __thread uint3 blockIdx;
extern __thread dim3 blockDim;
extern __thread dim3 gridDim;
constexpr int warpSize = 32;

/* ---- runtime types ---------------------------------------------------------- */
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;

struct CUstream_st;
typedef struct CUstream_st *cudaStream_t;
#define cudaStreamDefault 0x0
#define cudaStreamNonBlocking 0x1

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrClockRate = 13,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

/* ---- runtime API (emu_runtime.cpp) ------------------------------------------
 * Synchronous: work "queued on a stream" is done when the call returns. The
 * last error is per host thread, returned and cleared by cudaGetLastError
 * (launch errors included), as on a device. */
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <typename T> cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes,
                            cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);

namespace emu {
cudaError_t func_set_attribute(const void *fn, cudaFuncAttribute attr, int value);
}
/* Recorded per kernel: a launch asking for more than 48 KB of dynamic shared
 * memory fails unless the kernel opted in to at least that much, and the
 * opt-in fails above the device's cudaDevAttrMaxSharedMemoryPerBlockOptin. */
template <typename F>
cudaError_t cudaFuncSetAttribute(F *fn, cudaFuncAttribute attr, int value) {
    return emu::func_set_attribute(reinterpret_cast<const void *>(fn), attr, value);
}

/* ---- synchronisation (emu_runtime.cpp; the only points where the scheduler
 * switches threads) --------------------------------------------------------- */
namespace emu {
enum shfl_kind { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR };
/* A block barrier; returns how many threads passed pred != 0. pred < 0: a
 * plain __syncthreads, which the barrier-removal test may switch off. */
int syncthreads(int pred, const char *file, int line);
void syncwarp(unsigned mask);
uint64_t shfl(unsigned mask, uint64_t bits, shfl_kind kind, int arg, int width);
unsigned ballot(unsigned mask, int pred);
unsigned activemask(void);
void *dynamic_shared(void);

template <typename T> T shfl_as(unsigned mask, T v, shfl_kind kind, int arg, int width) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8,
                  "warp shuffles move values of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = shfl(mask, b, kind, arg, width);
    memcpy(&v, &b, sizeof v);
    return v;
}
} // namespace emu

/* the call site identifies the barrier (diagnostics; the barrier-removal test
 * of test_cuda_emu.cpp switches single sites off) */
#define __syncthreads() ((void)emu::syncthreads(-1, __FILE__, __LINE__))
#define __syncthreads_count(p) emu::syncthreads((p) != 0, __FILE__, __LINE__)
#define __syncthreads_or(p) (emu::syncthreads((p) != 0, __FILE__, __LINE__) != 0)
#define __syncthreads_and(p)                                                             \
    (emu::syncthreads((p) != 0, __FILE__, __LINE__) ==                                   \
     (int)(blockDim.x * blockDim.y * blockDim.z))

inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::syncwarp(mask); }
template <typename T> T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return emu::shfl_as(mask, v, emu::SHFL_IDX, src, width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return emu::shfl_as(mask, v, emu::SHFL_UP, (int)delta, width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return emu::shfl_as(mask, v, emu::SHFL_DOWN, (int)delta, width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return emu::shfl_as(mask, v, emu::SHFL_XOR, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return emu::ballot(mask, pred); }
inline int __any_sync(unsigned mask, int pred) { return emu::ballot(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return emu::ballot(mask, pred) == mask; }
inline unsigned __activemask(void) { return emu::activemask(); }
inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* ---- atomics (one host thread runs a block's fibers; atomic anyway) ------- */
template <typename T> T atomicAdd(T *p, T v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
template <typename T> T atomicSub(T *p, T v) {
    return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED);
}
template <typename T> T atomicAnd(T *p, T v) {
    return __atomic_fetch_and(p, v, __ATOMIC_RELAXED);
}
template <typename T> T atomicOr(T *p, T v) {
    return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}
template <typename T> T atomicXor(T *p, T v) {
    return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED);
}
template <typename T> T atomicExch(T *p, T v) {
    return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
}
template <typename T> T atomicCAS(T *p, T expect, T v) {
    __atomic_compare_exchange_n(p, &expect, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return expect;
}
template <typename T> T atomicMin(T *p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
    return old;
}
template <typename T> T atomicMax(T *p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v > old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {
    }
    return old;
}
inline float atomicAdd(float *p, float v) {
    float old = *p;
    *p = old + v;
    return old;
}
inline double atomicAdd(double *p, double v) {
    double old = *p;
    *p = old + v;
    return old;
}

/* ---- device math -----------------------------------------------------------
 * The fast intrinsics are computed exactly (host libm); the _rn arithmetic is
 * plain IEEE arithmetic (this target compiles with -ffp-contract=off, so no
 * multiply is fused into an add behind the kernel's back). */
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int __float_as_int(float x) {
    int i;
    memcpy(&i, &x, sizeof i);
    return i;
}
inline unsigned __float_as_uint(float x) {
    unsigned i;
    memcpy(&i, &x, sizeof i);
    return i;
}
inline float __int_as_float(int i) {
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}
inline float __uint_as_float(unsigned i) {
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) {
    return x ? __builtin_clzll((unsigned long long)x) : 64;
}
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++, x >>= 1)
        r = (r << 1) | (x & 1u);
    return r;
}
template <typename T> T __ldg(const T *p) { return *p; }

/* CUDA's global min/max overloads (the same-type ones; a mixed-type call
 * that CUDA would resolve by promotion is ambiguous here: cast it, or add
 * the overload) */
#define EMU_MINMAX(T)                                                                    \
    inline T min(T a, T b) { return a < b ? a : b; }                                     \
    inline T max(T a, T b) { return a > b ? a : b; }
EMU_MINMAX(int)
EMU_MINMAX(unsigned)
EMU_MINMAX(long)
EMU_MINMAX(unsigned long)
EMU_MINMAX(long long)
EMU_MINMAX(unsigned long long)
#undef EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

/* ---- kernel launches ---------------------------------------------------------
 * emu_rewrite.py turns `kernel<<<grid, block, smem, stream>>>(args...)` into
 * `emu_launch(kernel, emu::cfg("kernel", __FILE__, __LINE__, grid, block,
 * smem, stream), args...)`. The arguments are converted to the kernel's
 * parameter types once (as a launch copies them), and every thread calls
 * the kernel with its own copy. */
namespace emu {
struct launch_cfg {
    const char *name, *file;
    int line;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
};
inline launch_cfg cfg(const char *name, const char *file, int line, dim3 grid, dim3 block,
                      size_t smem = 0, cudaStream_t stream = nullptr) {
    return launch_cfg{name, file, line, grid, block, smem, stream};
}
void launch(const void *kernel, const launch_cfg &c, void (*body)(void *), void *arg);
} // namespace emu

template <typename... P, typename... A>
void emu_launch(void (*kernel)(P...), const emu::launch_cfg &c, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A),
                  "kernel launched with a wrong argument count");
    struct frame {
        void (*k)(P...);
        std::tuple<typename std::decay<P>::type...> params;
    };
    frame f{kernel,
            std::tuple<typename std::decay<P>::type...>(std::forward<A>(args)...)};
    emu::launch(
        reinterpret_cast<const void *>(kernel), c,
        [](void *p) {
            frame *fr = static_cast<frame *>(p);
            std::apply(fr->k, fr->params);
        },
        &f);
}

#endif
