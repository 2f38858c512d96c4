/* tests/cuda_emu/include/cuda_bf16.h — __nv_bfloat16 for the CUDA emulation
 * (tests/cuda_emu/README.md): the storage type and the fp32 conversions the
 * kernels use. */
#ifndef LLMPI_EMU_CUDA_BF16_H
#define LLMPI_EMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
    uint16_t __x;
};

/* round to nearest, ties to even; a NaN becomes the canonical NaN 0x7fff, as
 * CUDA's __float2bfloat16_rn does */
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u)
        r.__x = 0x7fff;
    else
        r.__x = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }

inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.__x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
