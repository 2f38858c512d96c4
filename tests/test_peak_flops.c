/* tests/test_peak_flops.c — GPU peaks for MFU (src/common/peak_flops.c)
 * against NVIDIA's published dense figures: by name for the listed parts,
 * and derived (SMs x clock x FLOPs per SM per cycle) for the rest, where
 * the derivation must reproduce the published figure at the published
 * clock. */
#include <criterion/criterion.h>

#include "peak_flops.h"

#define TF 1e12

static double peak(const char *name, int ma, int mi, int sms, int khz, enum peak_dtype dt) {
    struct gpu_desc g = {name, ma, mi, sms, khz};
    return peak_flops(&g, dt);
}

Test(peak_flops, published_parts_by_name) {
    /* the names cudaGetDeviceProperties reports; clocks as reported (max boost) */
    cr_expect_float_eq(peak("NVIDIA H100 80GB HBM3", 9, 0, 132, 1980000, PEAK_BF16), 989.4 * TF, 1);
    cr_expect_float_eq(peak("NVIDIA H100 80GB HBM3", 9, 0, 132, 1980000, PEAK_FP32), 66.9 * TF, 1);
    cr_expect_float_eq(peak("NVIDIA H100 PCIe", 9, 0, 114, 1755000, PEAK_BF16), 756.0 * TF, 1);
    cr_expect_float_eq(peak("NVIDIA H200", 9, 0, 132, 1980000, PEAK_BF16), 989.4 * TF, 1);
    cr_expect_float_eq(peak("NVIDIA A100-SXM4-80GB", 8, 0, 108, 1410000, PEAK_BF16), 312.0 * TF, 1);
    cr_expect_float_eq(peak("NVIDIA A100 80GB PCIe", 8, 0, 108, 1410000, PEAK_FP32), 19.5 * TF, 1);
}

Test(peak_flops, derived_from_the_architecture) {
    /* A100 at its published 1410 MHz: 108 SMs x 2048 = 312 TFLOP/s bf16 */
    cr_expect_float_eq(peak("some sm_80 part", 8, 0, 108, 1410000, PEAK_BF16), 311.9 * TF,
                       0.1 * TF);
    /* H100 SXM at the 1830 MHz its published 989.4 TFLOP/s assume */
    cr_expect_float_eq(peak("some sm_90 part", 9, 0, 132, 1830000, PEAK_BF16), 989.4 * TF,
                       0.2 * TF);
    /* H200 NVL is not listed by name: derived from what the runtime says */
    cr_expect_float_eq(peak("NVIDIA H200 NVL", 9, 0, 132, 1785000, PEAK_FP32),
                       256.0 * 132 * 1785e6, 1);
    /* L40S (sm_89): 142 SMs at 2520 MHz, 362 TFLOP/s bf16 dense */
    cr_expect_float_eq(peak("NVIDIA L40S", 8, 9, 142, 2520000, PEAK_BF16), 366.4 * TF,
                       0.1 * TF);
}

Test(peak_flops, unknown_is_zero) {
    cr_expect_eq(peak("NVIDIA B200", 10, 0, 148, 1965000, PEAK_BF16), 0.0);
    cr_expect_eq(peak("Tesla V100-SXM2-16GB", 7, 0, 80, 1530000, PEAK_BF16), 0.0);
    cr_expect_eq(peak(NULL, 9, 0, 0, 0, PEAK_FP32), 0.0);
    cr_expect_str_eq(peak_dtype_name(PEAK_BF16), "bf16");
}
