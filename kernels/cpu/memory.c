/* kernels/cpu/memory.c — host memory for the CPU backend.
 * Buffers are 64-byte aligned so that AVX-512 loads never split cache lines. */
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, rounded ? rounded : 64);
}

void cpu_free(void *p) { free(p); }

void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }

void cpu_copy(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }

void cpu_sync(void) {}
