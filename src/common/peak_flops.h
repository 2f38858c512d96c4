/* src/common/peak_flops.h — a GPU's peak FLOP/s, the denominator of MFU
 * (model FLOPs utilisation: the model's FLOPs per second over what the
 * hardware could do in the dtype the matmuls run in).
 *
 * Dense peaks (no 2:4 sparsity), as NVIDIA publishes them for the parts
 * llmpi is run on; for another part of a known architecture, SMs x clock x
 * the architecture's FLOPs per SM per cycle (an upper bound: the published
 * tensor figures assume the lower clock the card sustains under tensor
 * load). 0 when neither is known (the caller then reports no MFU). Pure
 * functions: tests/test_peak_flops.c checks them against the published
 * figures.
 */
#ifndef LLMPI_PEAK_FLOPS_H
#define LLMPI_PEAK_FLOPS_H

enum peak_dtype { PEAK_FP32, PEAK_BF16 };

/* What the CUDA runtime says about a device (cudaDeviceProp.name, compute
 * capability, cudaDevAttrMultiProcessorCount, cudaDevAttrClockRate). */
struct gpu_desc {
    const char *name;
    int cc_major, cc_minor;
    int sm_count;
    int clock_khz;
};

/* FLOP/s; 0 when unknown. */
double peak_flops(const struct gpu_desc *g, enum peak_dtype dt);

/* "fp32" / "bf16". */
const char *peak_dtype_name(enum peak_dtype dt);

#endif
