/* tests/cuda_emu/include/cublasLt.h — present so that an emulated file may
 * include it; cuBLASLt itself is not emulated (matmul.cu is left out of the
 * harness, tests/cuda_emu/README.md). */
#ifndef LLMPI_EMU_CUBLASLT_H
#define LLMPI_EMU_CUBLASLT_H

#include "cublas_v2.h"

struct cublasLtContext;
typedef struct cublasLtContext *cublasLtHandle_t;

#endif
