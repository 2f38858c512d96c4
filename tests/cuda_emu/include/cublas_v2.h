/* tests/cuda_emu/include/cublas_v2.h — the cuBLAS names that
 * kernels/cuda/cuda_internal.h declares with, for the CUDA emulation
 * (tests/cuda_emu/README.md). No cuBLAS function exists here: the matmul op
 * (matmul.cu) is not emulated; the harness takes the CPU backend's. */
#ifndef LLMPI_EMU_CUBLAS_V2_H
#define LLMPI_EMU_CUBLAS_V2_H

#include "cuda_runtime.h"

struct cublasContext;
typedef struct cublasContext *cublasHandle_t;

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
} cublasStatus_t;

#endif
