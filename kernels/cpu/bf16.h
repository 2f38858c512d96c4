/* kernels/cpu/bf16.h — fp32 -> bf16 rounding, for the CPU's emulation of
 * bf16 matmuls (kernels/cpu/matmul.c).
 *
 * bf16 is the upper 16 bits of an fp32 (sign, the same 8-bit exponent, 7
 * mantissa bits). Rounding to nearest, ties to even, on the bits: add
 * 0x7fff plus the lowest kept bit, then drop the low 16 bits. A carry out of
 * the mantissa moves to the next binade, and past the largest finite bf16
 * to infinity, as IEEE rounding does (and CUDA's __float2bfloat16_rn).
 * Subnormals round the same way (pure integer arithmetic, no flush to
 * zero). A NaN stays a NaN: its quiet bit is set first, so dropping the low
 * bits cannot turn it into infinity. The result is returned as the fp32 with
 * the same value, which is what the emulation multiplies: a product of two
 * bf16 values (8-bit significands) is exact in fp32, so an fp32 gemm over
 * rounded operands is a bf16 gemm with fp32 accumulation.
 */
#ifndef LLMPI_CPU_BF16_H
#define LLMPI_CPU_BF16_H

#include <stdint.h>
#include <string.h>

static inline float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        u |= 0x00400000u; /* NaN: quiet, so some mantissa bit survives */
    else
        u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

#endif
