/* src/train/bench_comm.c — `llmpi bench comm`: allreduce speed over the DP group.
 *
 * What: for every size from --min to --max (doubling), three ways to reduce a
 * float32 buffer over the data-parallel group are timed side by side:
 *   mpi       a bare MPI_Allreduce (sum, in place) on the DP communicator:
 *             what the MPI library alone reaches, the floor for the others
 *   comm      comm_allreduce(avg) (src/common/comm.h), as training calls it:
 *             the same allreduce plus the division by the group size
 *   bucketed  the DP training path (src/train/dp.c): the buffer cut into
 *             --bucket-mb MiB buckets, each started with comm_iallreduce(avg),
 *             then all waited; here nothing overlaps (no backward runs)
 * Per method and size: the time per call (the median over the timed calls on
 * each rank, then the largest over all ranks), and nccl-tests' bandwidths
 * (docs/performance.md):
 *   algbw = bytes / time
 *   busbw = algbw * 2 (n - 1) / n        (allreduce, n = DP group size)
 * busbw is the traffic each rank's link carries in an optimal ring, so it is
 * comparable across group sizes and with the hardware's peak; with n = 1
 * nothing crosses a link and busbw is 0.
 *
 * Why: gradient averaging is the only communication of data-parallel
 * training. This shows what the wrapper and the bucketing cost on top of MPI
 * and what the DP exchange can reach on a machine, size by size.
 *
 * Every call is checked: before each call every rank fills its buffer with
 * (dp_rank + 1) * (1 + i % 31), small integers whose sum over the group is
 * exact in float32 in any order (DP <= 1024), so the sum is exactly
 * S * (1 + i % 31) with S = DP (DP + 1) / 2 and the average exactly that
 * divided by DP the way comm.c divides. Any difference fails the run on every
 * rank with a message naming the method, size and element. For the tests,
 * LLMPI_BENCH_COMM_FAULT=R[:METHOD] corrupts one element of the result of
 * every call (of METHOD only, when given) on world rank R, so a test can see
 * that the check bites.
 *
 * Each timed call starts after a barrier over all ranks (every DP group at
 * once, as in training when TP > 1); the buffer refill and the check are not
 * timed. Flags are checked on every rank and agreed (one message, exit 1 on
 * every rank, dist.h); only rank 0 prints.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "args.h"
#include "comm.h"
#include "dist.h"
#include "err.h"
#include "subcommands.h"
#include "timer.h"
#include "topo.h"

#define MIB (1024.0 * 1024.0)
#define PERIOD 31             /* the fill pattern's period, in elements */
#define SCALE_BYTES (4 << 20) /* sizes above this get fewer iterations */
#define MAX_BUCKETS 65536
#define MAX_SIZES 40

static const char *bench_help =
    "usage: llmpi bench comm [options]\n"
    "\n"
    "Time float32 allreduce over the data-parallel group for sizes doubling from\n"
    "--min to --max, three ways side by side: a bare MPI_Allreduce (mpi), llmpi's\n"
    "comm_allreduce average as training calls it (comm), and the DP training path\n"
    "(bucketed: --bucket-mb buckets, each a comm_iallreduce, then all waited).\n"
    "Prints per size and method the time per call (median over the calls, the\n"
    "largest over the ranks) and nccl-tests' bandwidths: algbw = bytes / time,\n"
    "busbw = algbw * 2(n-1)/n for a DP group of n. Every call's result is checked\n"
    "exactly. Run it under mpirun / srun; alone it is a DP group of one (busbw 0).\n"
    "\n"
    "  --tp T           tensor-parallel size; the DP group is world / T (default 1)\n"
    "  --min SIZE       smallest message in bytes, K/M/G suffixes (binary: 4K is\n"
    "                   4096), a multiple of 4 (default 4K)\n"
    "  --max SIZE       largest message (default 256M, at most 2G)\n"
    "  --iters N        timed calls per size and method up to 4 MiB (default 50);\n"
    "                   larger sizes get N * 4 MiB / size, at least min(N, 10)\n"
    "  --warmup N       untimed calls first, scaled the same way, at least\n"
    "                   min(N, 1) (default 5)\n"
    "  --bucket-mb X    bucket size of the bucketed method in MiB (default 25, as\n"
    "                   llmpi train)\n"
    "  --csv FILE       also write the results as CSV to FILE\n"
    "  --json           print one JSON object instead of the table\n";

enum method { M_MPI, M_COMM, M_BUCKETED, N_METHODS };
static const char *method_name[N_METHODS] = {"mpi", "comm", "bucketed"};

struct bench_args {
    int tp, iters, warmup, json;
    size_t min, max; /* bytes */
    float bucket_mb;
    const char *csv;
};

struct result {
    size_t bytes;
    enum method m;
    int iters;
    double secs; /* per call: median over calls, max over ranks */
};

struct bench {
    struct bench_args a;
    struct topo topo;
    float *buf;                /* a.max bytes */
    size_t bucket_elems;       /* elements per bucket of the bucketed method */
    struct comm_request *reqs; /* one per bucket of the largest size */
    double *times;             /* a.iters per-call times */
    FILE *csv;                 /* rank 0 */
    int fault;                 /* 1: corrupt results (LLMPI_BENCH_COMM_FAULT) */
    int fault_method;          /* ... of this method only; -1: of every method */
    struct result res[MAX_SIZES * N_METHODS];
    int nres;
};

/* ---- arguments ---------------------------------------------------------- */

static const char *size_str(size_t bytes, char *s, size_t len);

/* Bytes: digits and an optional K, M or G (x 1024^k), optionally followed by
 * B or iB ("4K", "4KiB", "256M", "1048576"); a multiple of 4 in [4, 2 GiB]. */
static int parse_size(const char *flag, const char *text, size_t *out) {
    const char *p = text;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return err_set("%s: '%s' is not a size (bytes, or with K/M/G)", flag, text);
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > ((uint64_t)1 << 40)) return err_set("%s: '%s' is too large", flag, text);
    }
    int shift = 0;
    if (*p == 'K' || *p == 'k') shift = 10;
    if (*p == 'M' || *p == 'm') shift = 20;
    if (*p == 'G' || *p == 'g') shift = 30;
    if (shift) p++;
    if (shift && p[0] == 'i' && p[1] == 'B')
        p += 2;
    else if (*p == 'B')
        p++;
    if (*p) return err_set("%s: '%s' is not a size (bytes, or with K/M/G)", flag, text);
    if (v > (((uint64_t)2 << 30) >> shift) || (v << shift) < 4)
        return err_set("%s: %s is out of range [4, 2G] bytes", flag, text);
    v <<= shift;
    if (v % 4)
        return err_set("%s: %s is not a multiple of 4 bytes (float32)", flag, text);
    *out = (size_t)v;
    return 0;
}

static int parse(int argc, char **argv, struct bench_args *a) {
    *a = (struct bench_args){.tp = 1,
                             .iters = 50,
                             .warmup = 5,
                             .min = 4096,
                             .max = (size_t)256 << 20,
                             .bucket_mb = 25.0f};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        if (!strcmp(f, "--json")) {
            a->json = 1;
            continue;
        }
        if (strncmp(f, "--", 2) != 0 ||
            (strcmp(f, "--tp") && strcmp(f, "--min") && strcmp(f, "--max") &&
             strcmp(f, "--iters") && strcmp(f, "--warmup") && strcmp(f, "--bucket-mb") &&
             strcmp(f, "--csv")))
            return err_set("unknown option '%s' (see llmpi bench comm --help)", f);
        if (!(v = args_value(argc, argv, &i))) return -1;
        int rc = 0;
        if (!strcmp(f, "--tp"))
            rc = args_int(f, v, 1, 1 << 20, &a->tp);
        else if (!strcmp(f, "--min"))
            rc = parse_size(f, v, &a->min);
        else if (!strcmp(f, "--max"))
            rc = parse_size(f, v, &a->max);
        else if (!strcmp(f, "--iters"))
            rc = args_int(f, v, 1, 1 << 20, &a->iters);
        else if (!strcmp(f, "--warmup"))
            rc = args_int(f, v, 0, 1 << 20, &a->warmup);
        else if (!strcmp(f, "--bucket-mb"))
            rc = args_float(f, v, 1e-3, 1e6, &a->bucket_mb);
        else
            a->csv = v;
        if (rc) return -1;
    }
    if (a->min > a->max) {
        char lo[32], hi[32];
        return err_set("--min %s is larger than --max %s",
                       size_str(a->min, lo, sizeof lo), size_str(a->max, hi, sizeof hi));
    }
    return 0;
}

/* ---- sizes and iteration counts ----------------------------------------- */

/* "4 KiB", "256 MiB", or bytes when not a whole number of KiB. */
static const char *size_str(size_t bytes, char *s, size_t len) {
    if (bytes >= (1u << 30) && bytes % (1u << 30) == 0)
        snprintf(s, len, "%zu GiB", bytes >> 30);
    else if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(s, len, "%zu MiB", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(s, len, "%zu KiB", bytes >> 10);
    else
        snprintf(s, len, "%zu B", bytes);
    return s;
}

/* n calls up to SCALE_BYTES, then n * SCALE_BYTES / bytes, at least min(n, floor). */
static int scaled(int n, int floor, size_t bytes) {
    if (bytes <= SCALE_BYTES) return n;
    double k = (double)n * SCALE_BYTES / (double)bytes;
    int lo = n < floor ? n : floor;
    return k < lo ? lo : (int)k;
}

static int n_buckets(const struct bench *b, size_t n) {
    return (int)((n + b->bucket_elems - 1) / b->bucket_elems);
}

/* ---- the fill pattern and the check ------------------------------------- */

static void fill(float *x, size_t n, int dp_rank) {
    float v[PERIOD];
    for (int k = 0; k < PERIOD; k++)
        v[k] = (float)((dp_rank + 1) * (k + 1));
    for (size_t i = 0; i < n; i += PERIOD) {
        size_t m = n - i < PERIOD ? n - i : PERIOD;
        memcpy(x + i, v, m * sizeof(float));
    }
}

/* 0, or -1 + err_set naming the first element that differs from the exact
 * sum (mpi) or average (comm, bucketed) of every rank's fill. */
static int check(const float *x, size_t n, enum method m, int dp, int call) {
    float want[PERIOD];
    float s = (float)dp * (float)(dp + 1) / 2.0f; /* exact: an integer < 2^24 */
    for (int k = 0; k < PERIOD; k++) {
        want[k] = s * (float)(k + 1);
        if (m != M_MPI) want[k] /= (float)dp; /* as comm.c's divide() */
    }
    for (size_t i = 0; i < n; i += PERIOD) {
        size_t len = n - i < PERIOD ? n - i : PERIOD;
        if (memcmp(x + i, want, len * sizeof(float)) == 0) continue;
        for (size_t k = 0; k < len; k++)
            if (x[i + k] != want[k]) {
                char sz[32];
                return err_set("result check failed: %s allreduce of %s, call %d: "
                               "element %zu is %.9g, expected %.9g",
                               method_name[m], size_str(n * sizeof(float), sz, sizeof sz),
                               call, i + k, (double)x[i + k], (double)want[k]);
            }
    }
    return 0;
}

/* ---- one call of each method -------------------------------------------- */

static int call_method(struct bench *b, enum method m, size_t n) {
    const struct comm *dp = &b->topo.dp_group;
    if (m == M_MPI) {
        int rc = MPI_Allreduce(MPI_IN_PLACE, b->buf, (int)n, MPI_FLOAT, MPI_SUM, dp->mpi);
        return comm_mpi_error(dp, rc, "MPI_Allreduce");
    }
    if (m == M_COMM) return comm_allreduce(dp, b->buf, n, COMM_F32, COMM_AVG);
    int nb = n_buckets(b, n);
    for (int k = 0; k < nb; k++) {
        size_t lo = (size_t)k * b->bucket_elems;
        size_t len = n - lo < b->bucket_elems ? n - lo : b->bucket_elems;
        if (comm_iallreduce(dp, b->buf + lo, len, COMM_F32, COMM_AVG, &b->reqs[k]))
            return -1;
    }
    for (int k = 0; k < nb; k++)
        if (comm_wait(&b->reqs[k])) return -1;
    return 0;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

/* Run warmup + iters calls of method m on n elements, each refilled, timed
 * after a barrier and checked. Returns this rank's median call time; *bad
 * is set (and err_set) at the first wrong result. MPI failures end the job
 * (dist_fail): they are this rank's own and the others may be waiting. */
static double time_method(struct bench *b, enum method m, size_t n, int warmup, int iters,
                          int *bad) {
    for (int it = 0; it < warmup + iters; it++) {
        fill(b->buf, n, b->topo.dp_rank);
        int rc = MPI_Barrier(b->topo.world.mpi);
        if (comm_mpi_error(&b->topo.world, rc, "MPI_Barrier")) dist_fail("%s", err_msg());
        double t0 = timer_now();
        if (call_method(b, m, n)) dist_fail("%s", err_msg());
        double t = timer_now() - t0;
        if (it >= warmup) b->times[it - warmup] = t;
        if (b->fault && (b->fault_method < 0 || b->fault_method == (int)m))
            b->buf[n / 2] += 1.0f;
        if (!*bad && check(b->buf, n, m, b->topo.dp, it + 1)) *bad = 1;
    }
    qsort(b->times, (size_t)iters, sizeof(double), cmp_double);
    return iters % 2 ? b->times[iters / 2]
                     : 0.5 * (b->times[iters / 2 - 1] + b->times[iters / 2]);
}

/* ---- output (rank 0) ---------------------------------------------------- */

static double algbw(const struct result *r) { return (double)r->bytes / r->secs / 1e9; }

static double busbw(const struct result *r, int dp) {
    return algbw(r) * 2.0 * (dp - 1) / dp;
}

static void print_header(const struct bench *b) {
    const struct topo *t = &b->topo;
    printf("llmpi bench comm: float32 allreduce over the DP group, %d rank%s = DP %d x "
           "TP %d, buckets %g MiB\n"
           "time: median per call over the timed calls, the largest over the ranks; "
           "GB/s = 1e9 bytes/s\n",
           t->size, t->size == 1 ? "" : "s", t->dp, t->tp, (double)b->a.bucket_mb);
    if (t->dp == 1)
        printf("DP 1: a group of one exchanges nothing; busbw = algbw * 2(n-1)/n is 0\n");
    printf("\n%10s  %-8s %6s %12s %8s %13s %13s  %s\n", "size", "method", "iters",
           "time (us)", "vs mpi", "algbw (GB/s)", "busbw (GB/s)", "check");
}

/* r: a result; mpi: the mpi method's result of the same size. */
static void print_row(const struct bench *b, const struct result *r,
                      const struct result *mpi) {
    char sz[32];
    printf("%10s  %-8s %6d %12.2f %7.2fx %13.3f %13.3f  ok\n",
           size_str(r->bytes, sz, sizeof sz), method_name[r->m], r->iters, r->secs * 1e6,
           r->secs / mpi->secs, algbw(r), busbw(r, b->topo.dp));
    fflush(stdout);
}

static void write_csv(const struct bench *b) {
    fprintf(b->csv,
            "bytes,method,world,dp,tp,iters,time_us,algbw_gbps,busbw_gbps,verified\n");
    for (int i = 0; i < b->nres; i++) {
        const struct result *r = &b->res[i];
        fprintf(b->csv, "%zu,%s,%d,%d,%d,%d,%.3f,%.6f,%.6f,1\n", r->bytes,
                method_name[r->m], b->topo.size, b->topo.dp, b->topo.tp, r->iters,
                r->secs * 1e6, algbw(r), busbw(r, b->topo.dp));
    }
}

static void print_json(const struct bench *b) {
    printf("{\"bench\":\"comm\",\"world\":%d,\"dp\":%d,\"tp\":%d,\"bucket_mb\":%g,"
           "\"verified\":true,\"results\":[",
           b->topo.size, b->topo.dp, b->topo.tp, (double)b->a.bucket_mb);
    for (int i = 0; i < b->nres; i++) {
        const struct result *r = &b->res[i];
        printf("%s{\"bytes\":%zu,\"method\":\"%s\",\"iters\":%d,\"time_us\":%.3f,"
               "\"algbw_gbps\":%.6f,\"busbw_gbps\":%.6f}",
               i ? "," : "", r->bytes, method_name[r->m], r->iters, r->secs * 1e6,
               algbw(r), busbw(r, b->topo.dp));
    }
    printf("]}\n");
}

/* ---- set-up, agreement, the sweep --------------------------------------- */

/* Every rank must run the same sweep, or the collectives mismatch and hang:
 * compare the settings (max of v and of -v) over the world. */
static int settings_agree(const struct bench *b) {
    int64_t v[12] = {(int64_t)b->a.min, (int64_t)b->a.max,        b->a.iters,
                     b->a.warmup,       (int64_t)b->bucket_elems, b->a.json};
    for (int k = 0; k < 6; k++)
        v[6 + k] = -v[k];
    if (comm_allreduce(&b->topo.world, v, 12, COMM_I64, COMM_MAX)) return -1;
    for (int k = 0; k < 6; k++)
        if (v[k] != -v[6 + k])
            return err_set("the ranks were started with different options "
                           "(compare the mpirun / srun arguments)");
    return 0;
}

/* The test hook: "R" or "R:METHOD" (see the top of the file). */
static void set_fault(struct bench *b, const char *spec) {
    b->fault_method = -1;
    if (!spec || !*spec) return;
    const char *colon = strchr(spec, ':');
    b->fault = atoi(spec) == b->topo.rank;
    if (colon)
        for (int m = 0; m < N_METHODS; m++)
            if (!strcmp(colon + 1, method_name[m])) b->fault_method = m;
}

static int setup(struct bench *b) {
    const struct bench_args *a = &b->a;
    if (b->topo.dp > 1024)
        return err_set("DP %d: the exact result check needs a DP group of at most 1024",
                       b->topo.dp);
    double e = (double)a->bucket_mb * MIB / sizeof(float);
    if (e < 1.0) e = 1.0;
    if (e > (double)INT_MAX) e = (double)INT_MAX;
    b->bucket_elems = (size_t)e;
    if (settings_agree(b)) return -1;
    size_t n = a->max / sizeof(float);
    if (n_buckets(b, n) > MAX_BUCKETS)
        return err_set("--bucket-mb %g cuts --max into %d buckets (at most %d)",
                       (double)a->bucket_mb, n_buckets(b, n), MAX_BUCKETS);
    b->buf = malloc(a->max);
    b->reqs = calloc((size_t)n_buckets(b, n), sizeof *b->reqs);
    b->times = malloc((size_t)a->iters * sizeof(double));
    if (!b->buf || !b->reqs || !b->times)
        return err_set("out of memory for a %zu-byte buffer", a->max);
    set_fault(b, getenv("LLMPI_BENCH_COMM_FAULT"));
    if (b->topo.rank == 0 && a->csv && !(b->csv = fopen(a->csv, "w")))
        return err_set("cannot write --csv %s", a->csv);
    return 0;
}

static void bench_free(struct bench *b) {
    if (b->csv) fclose(b->csv);
    free(b->buf);
    free(b->reqs);
    free(b->times);
    topo_free(&b->topo);
}

/* A check every rank makes: when any failed, drop the CSV file (rank 0) and
 * end every rank with one message (dist_exit_if_any). */
static void agree(struct bench *b, int failed) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err_msg());
    int any = dist_any(failed);
    if (any < 0) dist_fail("agreeing on failure: %s", err_msg());
    if (!any) return;
    if (b->csv) {
        fclose(b->csv);
        b->csv = NULL;
        remove(b->a.csv);
    }
    dist_exit_if_any(failed, msg);
}

/* One size, every method: time, check (agreed), reduce the time over ranks,
 * record and print. */
static void bench_size(struct bench *b, size_t bytes) {
    size_t n = bytes / sizeof(float);
    int iters = scaled(b->a.iters, 10, bytes), warmup = scaled(b->a.warmup, 1, bytes);
    for (int m = 0; m < N_METHODS; m++) {
        int bad = 0;
        double secs = time_method(b, (enum method)m, n, warmup, iters, &bad);
        agree(b, bad);
        if (comm_allreduce(&b->topo.world, &secs, 1, COMM_F64, COMM_MAX))
            dist_fail("%s", err_msg());
        struct result *r = &b->res[b->nres++];
        *r = (struct result){bytes, (enum method)m, iters, secs};
        if (b->topo.rank == 0 && !b->a.json) print_row(b, r, r - m);
    }
    if (b->topo.rank == 0 && b->a.json) {
        char sz[32];
        fprintf(stderr, "llmpi bench comm: %s done\n", size_str(bytes, sz, sizeof sz));
    }
}

int bench_comm_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(bench_help, stdout);
            return 0;
        }
    }
    dist_set_prog("llmpi bench comm");
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "llmpi bench comm: error: %s\n", err_msg());
        return 1;
    }
    static struct bench B; /* the results table; static keeps it off the stack */
    struct bench *b = &B;
    memset(b, 0, sizeof *b);
    dist_exit_if_any(parse(argc, argv, &b->a) != 0, err_msg());
    int failed =
        topo_init(&b->topo, MPI_COMM_WORLD, &(struct topo_opts){.tp = b->a.tp}) != 0;
    dist_exit_if_any(failed, err_msg());
    agree(b, setup(b) != 0);

    int rank0 = b->topo.rank == 0;
    if (rank0 && !b->a.json) print_header(b);
    for (size_t s = b->a.min; s <= b->a.max && b->nres < MAX_SIZES * N_METHODS; s *= 2)
        bench_size(b, s);
    if (rank0) {
        if (b->a.json)
            print_json(b);
        else
            printf("\nall results verified: %d sizes x %d methods, every call exact\n",
                   b->nres / N_METHODS, N_METHODS);
        if (b->csv) write_csv(b);
    }
    failed = b->csv && (fflush(b->csv) != 0 || ferror(b->csv));
    if (failed) err_set("writing --csv %s failed", b->a.csv);
    agree(b, failed);
    bench_free(b);
    dist_finalize();
    return 0;
}
