/* kernels/cpu/fastmath.h — exp and tanh that the compiler can vectorise.
 *
 * glibc's expf/tanhf are scalar calls (libmvec's vector versions need
 * -ffast-math), and GELU calls tanh once per activation element: with the
 * scalar libm it took a quarter of a gpt2-mini training step. These are
 * branch-free, so `omp simd` loops turn into AVX-512 code.
 *
 * exp(x) = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]
 * (ln 2 split in a high and a low part so r is exact), e^r by its degree-6
 * Taylor polynomial (truncation error r^7/7! < 1.3e-7 relative), 2^n built
 * in the exponent bits. Relative error ~2 ulp over [-87, 88]; inputs are
 * clamped to that range.
 * tanh(u) = 1 - 2 / (exp(2u) + 1): absolute error ~1e-7 (relative error
 * grows near 0, where GELU only uses 1 + tanh and 1 - tanh^2).
 */
#ifndef LLMPI_FASTMATH_H
#define LLMPI_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float fast_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest by the 1.5 * 2^23 shifter: plain float adds that
     * vectorise, unlike a call to roundf */
    const float shifter = 12582912.0f;
    /* n comes from a NaN-free copy (converting NaN to an integer is undefined
     * behaviour); a NaN x still propagates through r into the result. */
    float x_num = x == x ? x : 0.0f;
    float n = (x_num * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693145751953125f; /* ln 2, high part (exact in fp32) */
    r = r - n * 1.428606765330187e-06f;   /* ln 2, low part */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* 2^n, n in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float fast_tanhf(float u) {
    return 1.0f - 2.0f / (fast_expf(2.0f * u) + 1.0f);
}

#endif
