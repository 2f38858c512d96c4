/* src/train/selftest.c — `llmpi selftest`: this machine's CUDA backend
 * checked against the CPU backend, with the checks of `ctest -L gpu`
 * (backend_check.h), printed as a table.
 */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "backend.h"
#include "backend_check.h"
#include "err.h"
#include "subcommands.h"

static const char *selftest_help =
    "usage: llmpi selftest [--quick] [--steps N] [--threads N] [--json]\n"
    "\n"
    "Check this machine's CUDA backend against the CPU backend with the checks\n"
    "of the GPU test suite (ctest -L gpu): every op, forward and backward, from\n"
    "the same random inputs at a regular shape and at odd ones, within 1e-4\n"
    "relative; then AdamW steps of the tiny and gpt2-mini models whose losses\n"
    "must follow the CPU's within 1e-3; then the bf16 matmuls (--dtype bf16)\n"
    "against the CPU's exact bf16 emulation (3e-4) and tiny's bf16 loss curve\n"
    "(5e-3). Prints one row per check. Exit status\n"
    "0 when every check passes, 1 when one fails; without a usable GPU (or a\n"
    "build without CUDA) there is nothing to check: a notice, and status 0.\n"
    "\n"
    "  --quick      the tiny model only (gpt2-mini takes longest)\n"
    "  --steps N    training steps per model (default 20)\n"
    "  --threads N  CPU threads for the reference (default: all cores)\n"
    "  --json       one JSON object instead of the table\n";

static void print_table(const char *gpu, const struct check_report *rep) {
    printf("llmpi selftest: cuda (%s) against cpu\n\n", gpu);
    printf("%-26s %-34s %11s %9s  %s\n", "check", "shape", "rel. error", "tolerance",
           "result");
    for (int i = 0; i < rep->n; i++) {
        const struct check_result *x = &rep->r[i];
        printf("%-26s %-34s %11.3g %9.0e  %s\n", x->what, x->shape, x->err, x->tol,
               x->pass ? "ok" : "FAIL");
    }
    int bad = check_report_failures(rep);
    printf("\n%d checks: %d passed, %d failed\n", rep->n, rep->n - bad, bad);
}

static void print_json(const char *gpu, const struct check_report *rep) {
    printf("{\"selftest\":\"cuda-vs-cpu\",\"gpu\":\"%s\",\"checks\":[", gpu);
    for (int i = 0; i < rep->n; i++) {
        const struct check_result *x = &rep->r[i];
        printf("%s{\"check\":\"%s\",\"shape\":\"%s\",\"error\":%.6g,\"tolerance\":%g,"
               "\"pass\":%s}",
               i ? "," : "", x->what, x->shape, x->err, x->tol,
               x->pass ? "true" : "false");
    }
    printf("],\"failed\":%d}\n", check_report_failures(rep));
}

int selftest_main(int argc, char **argv) {
    int quick = 0, json = 0, steps = 20, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(selftest_help, stdout);
            return 0;
        } else if (!strcmp(f, "--quick")) {
            quick = 1;
        } else if (!strcmp(f, "--json")) {
            json = 1;
        } else if (!strcmp(f, "--steps") || !strcmp(f, "--threads")) {
            if (!(v = args_value(argc, argv, &i)) ||
                args_int(f, v, 1, 1 << 20, !strcmp(f, "--steps") ? &steps : &threads))
                goto bad;
        } else {
            err_set("unknown option '%s' (see llmpi selftest --help)", f);
            goto bad;
        }
    }
    ops_cpu_set_threads(threads);
    const struct ops *gpu = backend_select_rank("cuda", 0, NULL);
    if (!gpu) {
        /* not a failure: there is no GPU here to check */
        printf("llmpi selftest: no GPU to check, the GPU checks are skipped (%s)\n",
               err_msg());
        return 0;
    }
    char name[256];
    backend_peak_flops(gpu, PEAK_FP32, name, sizeof name);
    struct check_report rep = {0};
    if (!json)
        fprintf(stderr, "llmpi selftest: checking the ops, then %s, then bf16 ...\n",
                quick ? "tiny" : "tiny and gpt2-mini");
    int rc = backend_check_ops(ops_cpu(), gpu, &rep);
    if (!rc) rc = backend_check_models(ops_cpu(), gpu, steps, quick, &rep);
    if (!rc) rc = backend_check_bf16(ops_cpu(), gpu, steps, &rep);
    if (rc) {
        fprintf(stderr, "llmpi selftest: error: %s\n", err_msg());
        check_report_free(&rep);
        return 1;
    }
    if (json)
        print_json(name, &rep);
    else
        print_table(name, &rep);
    int failed = check_report_failures(&rep);
    check_report_free(&rep);
    return failed ? 1 : 0;
bad:
    fprintf(stderr, "llmpi selftest: error: %s\n", err_msg());
    return 1;
}
