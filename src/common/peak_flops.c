/* src/common/peak_flops.c — published and derived GPU peaks (peak_flops.h). */
#include <stddef.h>
#include <string.h>

#include "peak_flops.h"

/* Published dense peaks, matched by a substring of the device name (the
 * first match wins: more specific names first). */
static const struct {
    const char *match, *also; /* also: a second substring required, or NULL */
    double fp32, bf16;        /* TFLOP/s */
} published[] = {
    {"H100", "PCIe", 51.2, 756.0},  /* H100 PCIe */
    {"H100", "NVL", 0.0, 0.0},      /* H100 NVL: derived below */
    {"H100", NULL, 66.9, 989.4},    /* H100 SXM5 ("NVIDIA H100 80GB HBM3") */
    {"H200", "NVL", 0.0, 0.0},      /* H200 NVL: lower power; derived below */
    {"H200", NULL, 66.9, 989.4},    /* H200 SXM */
    {"A100", NULL, 19.5, 312.0},    /* A100 SXM4 and PCIe */
};

/* FLOPs per SM per clock cycle (an FMA counts 2), dense. */
static int per_sm_cycle(int major, int minor, enum peak_dtype dt) {
    if (major == 8 && minor == 0) return dt == PEAK_FP32 ? 128 : 2048; /* A100 */
    if (major == 8) return dt == PEAK_FP32 ? 256 : 1024;               /* A10, L40S */
    if (major == 9) return dt == PEAK_FP32 ? 256 : 4096;               /* H100, H200 */
    return 0;
}

double peak_flops(const struct gpu_desc *g, enum peak_dtype dt) {
    const char *name = g->name ? g->name : "";
    for (size_t i = 0; i < sizeof published / sizeof *published; i++) {
        if (!strstr(name, published[i].match)) continue;
        if (published[i].also && !strstr(name, published[i].also)) continue;
        double t = dt == PEAK_FP32 ? published[i].fp32 : published[i].bf16;
        if (t > 0) return t * 1e12;
        break; /* listed as "derive it" */
    }
    int k = per_sm_cycle(g->cc_major, g->cc_minor, dt);
    if (k == 0 || g->sm_count <= 0 || g->clock_khz <= 0) return 0.0;
    return (double)k * g->sm_count * g->clock_khz * 1e3;
}

const char *peak_dtype_name(enum peak_dtype dt) {
    return dt == PEAK_FP32 ? "fp32" : "bf16";
}
