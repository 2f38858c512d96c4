/* tests/cuda_emu/test_cuda_emu.cpp — the CUDA kernels (kernels/cuda, the
 * files without cuBLAS) run on the CPU through the emulation
 * (tests/cuda_emu/README.md) and checked against the CPU backend.
 *
 * The device under test is an op table whose entries are the emulated CUDA
 * ops, except matmul (cuBLAS: the CPU's); the reference is ops_cpu(). Each
 * op runs on both from the same random inputs at shapes small enough for
 * the emulation, regular and odd; outputs and accumulated gradients are
 * compared as max|dut - ref| / max|ref| (tolerance 1e-4, as the GPU suite,
 * src/train/backend_check.c; layouts and exactness promises at 0). Every
 * op also has to leave no CUDA error (cuda_last_error) and no emulator error
 * (a deadlock, a shuffle across exited lanes, a write past the dynamic
 * shared memory, ...), except where an error is the expected outcome (head
 * sizes above the kernels' limits).
 *
 * Then everything runs again with the scheduler's order reversed (blocks,
 * warps, lanes), and again shuffled: a correct kernel produces the same
 * bits, so a difference is a race (a result that depends on which thread
 * ran first).
 *
 *   test_cuda_emu [--quick] [--group NAME]... [--optin BYTES] [--drop SITE]
 *       the checks (all groups by default); --optin sets the device's
 *       opt-in shared memory limit (sm_86: 101376, the "attention_limits"
 *       group expects such a device); --drop switches one barrier off
 *   test_cuda_emu --backend-check  the GPU suite's checks
 *       (src/train/backend_check.c) with the emulated device
 *   test_cuda_emu --list-sites     barrier sites the quick checks execute
 *   test_cuda_emu --barriers       the barrier-removal test: for every
 *       __syncthreads site of the emulated sources, the quick checks of the
 *       groups that execute it, with that one barrier removed (a child
 *       process each), must fail; a site no check executes fails too
 * Exit status 0 when everything passed.
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "backend_check.h"
#include "ops.h"
}
#include "bf16.h"
#include "cuda_internal.h"
#include "emu.h"

extern char **environ;
/* reductions.cu, emu_selftest.cu */
extern "C" void emu_test_reductions(double *res, const float *in, int blocks,
                                    int threads);
extern "C" void emu_selftest(int which, void *out, const float *in, int threads,
                             size_t smem);

namespace {

constexpr double TOL = 1e-4;       /* fp32 ops: only the order of summation differs */
constexpr double TOL_SUMSQ = 1e-6; /* double on both sides */

/* ---- the device under test ---------------------------------------------------- */

struct ops make_emu_ops() {
    struct ops o = *ops_cpu(); /* matmul and its dtype: the CPU's */
    o.name = "cuda-emu";
    o.alloc = cuda_alloc;
    o.free = cuda_free;
    o.zero = cuda_zero;
    o.upload = cuda_upload;
    o.download = cuda_download;
    o.copy = cuda_copy;
    o.sync = cuda_sync;
    o.embedding_fwd = cuda_embedding_fwd;
    o.embedding_bwd = cuda_embedding_bwd;
    o.layernorm_fwd = cuda_layernorm_fwd;
    o.layernorm_bwd = cuda_layernorm_bwd;
    o.attention_fwd = cuda_attention_fwd;
    o.attention_bwd = cuda_attention_bwd;
    o.attention_paged_fwd = cuda_attention_paged_fwd;
    o.gelu_fwd = cuda_gelu_fwd;
    o.gelu_bwd = cuda_gelu_bwd;
    o.residual_fwd = cuda_residual_fwd;
    o.residual_bwd = cuda_residual_bwd;
    o.xent_fwd = cuda_xent_fwd;
    o.xent_bwd_inplace = cuda_xent_bwd_inplace;
    o.xent_shard_stats = cuda_xent_shard_stats;
    o.xent_shard_rescale = cuda_xent_shard_rescale;
    o.xent_shard_loss = cuda_xent_shard_loss;
    o.xent_shard_bwd_inplace = cuda_xent_shard_bwd_inplace;
    o.sgd_update = cuda_sgd_update;
    o.adam_update = cuda_adam_update;
    o.sumsq = cuda_sumsq;
    o.scale = cuda_scale;
    return o;
}

/* ---- checks ------------------------------------------------------------------- */

struct result {
    std::string group, what, shape, note;
    double err, tol;
    bool pass;
};

struct rng {
    uint64_t s;
    uint64_t next() { /* splitmix64 */
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
    int below(int n) { return (int)(next() % (uint64_t)n); }
};

struct ctx {
    const struct ops *ref, *dut;
    rng r;
    std::string group;
    bool quick;
    std::vector<result> results;
    /* the device's outputs in check order, bit for bit, with the check each
     * stretch belongs to: the order-independence comparison */
    std::vector<uint32_t> bits;
    std::vector<std::pair<size_t, std::string>> marks;
};

void add(ctx &k, const std::string &what, const std::string &shape, double err,
         double tol, const std::string &note = "") {
    k.results.push_back({k.group, what, shape, note, err, tol, err <= tol});
}

/* A CUDA error or emulator error after a device op that should have none:
 * recorded as a failed check, then cleared. */
bool clean(ctx &k, const std::string &what, const std::string &shape) {
    const char *ce = cuda_last_error();
    std::vector<std::string> ee = emu::errors();
    if (!ce && ee.empty()) return true;
    std::string note = ce ? std::string("CUDA error: ") + ce : "";
    for (const auto &e : ee)
        note += (note.empty() ? "" : "; ") + std::string("emulator: ") + e;
    add(k, what, shape, NAN, 0.0, note);
    emu_cuda_clear_error();
    emu::clear_errors();
    return false;
}

/* No error, recorded as a passed check. */
void expect_clean(ctx &k, const std::string &what, const std::string &shape) {
    if (clean(k, what, shape)) add(k, what, shape, 0.0, 0.0);
}

/* A tensor on both backends with its host values. */
struct tensor {
    ctx &k;
    std::vector<float> h;
    float *a, *b;
    size_t n;
    tensor(ctx &kk, size_t count, float scale) : k(kk), h(count), n(count) {
        for (auto &x : h)
            x = (float)(scale * (2.0 * k.r.uniform() - 1.0));
        a = (float *)k.ref->alloc(n * 4);
        b = (float *)k.dut->alloc(n * 4);
        k.ref->upload(a, h.data(), n * 4);
        k.dut->upload(b, h.data(), n * 4);
    }
    ~tensor() {
        k.ref->free(a);
        k.dut->free(b);
    }
    tensor(const tensor &) = delete;
    tensor &operator=(const tensor &) = delete;
    std::vector<float> get_a() const {
        std::vector<float> v(n);
        k.ref->download(v.data(), a, n * 4);
        return v;
    }
    std::vector<float> get_b() const {
        std::vector<float> v(n);
        k.dut->sync();
        k.dut->download(v.data(), b, n * 4);
        return v;
    }
};

struct itensor {
    ctx &k;
    int32_t *a, *b;
    itensor(ctx &kk, const std::vector<int32_t> &v) : k(kk) {
        a = (int32_t *)k.ref->alloc(v.size() * 4);
        b = (int32_t *)k.dut->alloc(v.size() * 4);
        k.ref->upload(a, v.data(), v.size() * 4);
        k.dut->upload(b, v.data(), v.size() * 4);
    }
    ~itensor() {
        k.ref->free(a);
        k.dut->free(b);
    }
    itensor(const itensor &) = delete;
    itensor &operator=(const itensor &) = delete;
};

double rel_diff(const std::vector<float> &a, const std::vector<float> &b) {
    double num = 0.0, den = 1e-30;
    for (size_t i = 0; i < a.size(); i++) {
        if (a[i] == b[i]) continue; /* also the same infinity */
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) num = d; /* a NaN sticks */
        if (std::isfinite(a[i]) && fabs(a[i]) > den) den = fabs(a[i]);
    }
    return num / den;
}

void record_bits(ctx &k, const std::string &label, const std::vector<float> &v) {
    k.marks.push_back({k.bits.size(), label});
    size_t at = k.bits.size();
    k.bits.resize(at + v.size());
    if (!v.empty()) memcpy(&k.bits[at], v.data(), v.size() * 4);
}

void compare(ctx &k, const tensor &t, const std::string &what, const std::string &shape,
             double tol = TOL) {
    if (!clean(k, what, shape)) return;
    std::vector<float> a = t.get_a(), b = t.get_b();
    record_bits(k, what + " " + shape, b);
    add(k, what, shape, rel_diff(a, b), tol);
}

/* The device must have recorded an error naming `needle`, and nothing else
 * may have gone wrong. */
void expect_error(ctx &k, const std::string &what, const std::string &shape,
                  const std::string &needle) {
    const char *ce = cuda_last_error();
    std::vector<std::string> ee = emu::errors();
    bool ok = ce && strstr(ce, needle.c_str()) && ee.empty();
    std::string note = ce ? std::string("recorded: ") + ce : "no error recorded";
    for (const auto &e : ee)
        note += "; emulator: " + e;
    add(k, what, shape, ok ? 0.0 : 1.0, 0.0, ok ? "" : note);
    emu_cuda_clear_error();
    emu::clear_errors();
}

/* The device left t untouched (bit for bit). */
void unchanged(ctx &k, const tensor &t, const std::string &what,
               const std::string &shape) {
    std::vector<float> b = t.get_b();
    add(k, what, shape, memcmp(b.data(), t.h.data(), t.n * 4) ? 1.0 : 0.0, 0.0);
}

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...) {
    char buf[160];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

/* ---- groups ------------------------------------------------------------------- */

/* alloc / zero / upload / download / copy (memory.cu), overlapping copies
 * with memmove semantics */
void g_memory(ctx &k) {
    void *z = k.dut->alloc(0);
    add(k, "alloc(0) is a valid pointer", "", z ? 0.0 : 1.0, 0.0);
    k.dut->free(z);
    const size_t n = 1000;
    tensor t(k, n, 1);
    k.ref->copy(t.a + 10, t.a + 3, 500 * 4);
    k.dut->copy(t.b + 10, t.b + 3, 500 * 4);
    compare(k, t, "copy, overlapping upwards", "n=500", 0.0);
    k.ref->copy(t.a + 3, t.a + 10, 600 * 4);
    k.dut->copy(t.b + 3, t.b + 10, 600 * 4);
    compare(k, t, "copy, overlapping downwards", "n=600", 0.0);
    k.ref->copy(t.a + 600, t.a, 300 * 4);
    k.dut->copy(t.b + 600, t.b, 300 * 4);
    compare(k, t, "copy, disjoint", "n=300", 0.0);
    k.ref->zero(t.a + 7, 101 * 4);
    k.dut->zero(t.b + 7, 101 * 4);
    compare(k, t, "zero", "n=101", 0.0);
}

/* fp32 -> bf16 (cast.cu) against the CPU's rounding (kernels/cpu/bf16.h) */
void g_cast(ctx &k) {
    std::vector<float> x(5000);
    for (auto &v : x)
        v = (float)((2.0 * k.r.uniform() - 1.0) * pow(2.0, k.r.below(60) - 30));
    const float special[] = {0.0f,          -0.0f,  INFINITY, -INFINITY,   NAN,
                             3.4028235e38f, 1e-45f, -1e-40f,  1.00390625f, 1.01171875f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        x[i] = special[i];
    float *src = (float *)k.dut->alloc(x.size() * 4);
    __nv_bfloat16 *dst = (__nv_bfloat16 *)k.dut->alloc(x.size() * 2);
    k.dut->upload(src, x.data(), x.size() * 4);
    cuda_f32_to_bf16(dst, src, x.size());
    std::vector<uint16_t> got(x.size());
    k.dut->download(got.data(), dst, x.size() * 2);
    if (clean(k, "f32 -> bf16", "n=5000")) {
        size_t bad = 0;
        for (size_t i = 0; i < x.size(); i++) {
            float want = bf16_round(x[i]), have = __bfloat162float(__nv_bfloat16{got[i]});
            bool same = std::isnan(want) ? std::isnan(have)
                                         : memcmp(&want, &have, sizeof want) == 0;
            bad += !same;
        }
        add(k, "f32 -> bf16", "n=5000", (double)bad, 0.0);
    }
    k.dut->free(src);
    k.dut->free(dst);
}

void g_embedding(ctx &k) {
    static const int all[][6] = {
        {2, 16, 64, 0, 0, 256}, {3, 37, 33, 5, 100, 77}, {2, 300, 20, 3, 0, 7}};
    static const int quick[][6] = {{2, 300, 20, 3, 0, 7}};
    const int(*shapes)[6] = k.quick ? quick : all;
    const int ns = k.quick ? 1 : 3;
    for (int s = 0; s < ns; s++) {
        const int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2],
                  pos0 = shapes[s][3];
        const int v0 = shapes[s][4], V = shapes[s][5];
        const std::string sh = fmt("B=%d T=%d C=%d V=%d", B, T, C, V);
        const size_t N = (size_t)B * T;
        std::vector<int32_t> tok(N);
        for (auto &t : tok)
            t = k.r.below(v0 + V + 20); /* some outside the shard */
        itensor tk(k, tok);
        tensor wte(k, (size_t)V * C, 1), wpe(k, (size_t)(pos0 + T) * C, 1);
        tensor out(k, N * C, 0), dout(k, N * C, 1);
        k.ref->embedding_fwd(out.a, tk.a, wte.a, wpe.a, B, T, C, pos0, v0, V);
        k.dut->embedding_fwd(out.b, tk.b, wte.b, wpe.b, B, T, C, pos0, v0, V);
        compare(k, out, "embedding forward", sh);
        k.ref->embedding_bwd(wte.a, wpe.a, dout.a, tk.a, B, T, C, pos0, v0, V);
        k.dut->embedding_bwd(wte.b, wpe.b, dout.b, tk.b, B, T, C, pos0, v0, V);
        /* bit-equal to the CPU (embedding.cu: same addition order) */
        compare(k, wte, "embedding dwte", sh, 0.0);
        compare(k, wpe, "embedding dwpe", sh);
        if (s == ns - 1) { /* no position term (TP ranks but one) */
            k.ref->embedding_fwd(out.a, tk.a, wte.a, nullptr, B, T, C, pos0, v0, V);
            k.dut->embedding_fwd(out.b, tk.b, wte.b, nullptr, B, T, C, pos0, v0, V);
            compare(k, out, "embedding forward, no wpe", sh);
            k.ref->embedding_bwd(wte.a, nullptr, dout.a, tk.a, B, T, C, pos0, v0, V);
            k.dut->embedding_bwd(wte.b, nullptr, dout.b, tk.b, B, T, C, pos0, v0, V);
            compare(k, wte, "embedding dwte, no dwpe", sh, 0.0);
        }
    }
}

void g_layernorm(ctx &k) {
    static const int all[][2] = {{64, 128}, {37, 33}, {5, 1000}, {300, 45}};
    static const int quick[][2] = {{300, 45}};
    const int(*shapes)[2] = k.quick ? quick : all;
    const int ns = k.quick ? 1 : 4;
    for (int s = 0; s < ns; s++) {
        const int N = shapes[s][0], C = shapes[s][1];
        const std::string sh = fmt("N=%d C=%d", N, C);
        const size_t NC = (size_t)N * C;
        tensor x(k, NC, 2), w(k, C, 1), b(k, C, 1), out(k, NC, 0), mean(k, N, 0),
            rstd(k, N, 0);
        tensor dout(k, NC, 1), dx(k, NC, 1), dw(k, C, 1), db(k, C, 1);
        k.ref->layernorm_fwd(out.a, mean.a, rstd.a, x.a, w.a, b.a, N, C);
        k.dut->layernorm_fwd(out.b, mean.b, rstd.b, x.b, w.b, b.b, N, C);
        compare(k, out, "layernorm forward", sh);
        compare(k, mean, "layernorm mean", sh);
        compare(k, rstd, "layernorm rstd", sh);
        k.ref->layernorm_bwd(dx.a, dw.a, db.a, dout.a, x.a, w.a, mean.a, rstd.a, N, C);
        k.dut->layernorm_bwd(dx.b, dw.b, db.b, dout.b, x.b, w.b, mean.b, rstd.b, N, C);
        compare(k, dx, "layernorm dinp", sh);
        compare(k, dw, "layernorm dw", sh);
        compare(k, db, "layernorm db", sh);
        if (s == ns - 1) { /* inference: no mean/rstd; backward pieces skipped */
            k.ref->layernorm_fwd(out.a, nullptr, nullptr, x.a, w.a, b.a, N, C);
            k.dut->layernorm_fwd(out.b, nullptr, nullptr, x.b, w.b, b.b, N, C);
            compare(k, out, "layernorm forward, no mean/rstd", sh);
            k.ref->layernorm_bwd(nullptr, dw.a, nullptr, dout.a, x.a, w.a, mean.a, rstd.a,
                                 N, C);
            k.dut->layernorm_bwd(nullptr, dw.b, nullptr, dout.b, x.b, w.b, mean.b, rstd.b,
                                 N, C);
            compare(k, dw, "layernorm dw only", sh);
            k.ref->layernorm_bwd(dx.a, nullptr, nullptr, dout.a, x.a, w.a, mean.a, rstd.a,
                                 N, C);
            k.dut->layernorm_bwd(dx.b, nullptr, nullptr, dout.b, x.b, w.b, mean.b, rstd.b,
                                 N, C);
            compare(k, dx, "layernorm dinp only", sh);
        }
    }
}

/* One attention shape. Training layout (packed q|k|v, Tq = Tk) or decode
 * layout (Tq < Tk, k|v packed in their own buffer). what: 0 everything,
 * 1 forward without lse, 2 backward with dq only, 3 backward with dk, dv
 * only. */
void attention_case(ctx &k, int B, int Tq, int Tk, int NH, int HS, int what = 0) {
    const int C = NH * HS, packed = Tq == Tk;
    const int qs = packed ? 3 * C : C, ks = packed ? 3 * C : 2 * C;
    static const char *const tag[] = {"", " (no lse)", " (dq only)", " (dk, dv only)"};
    const std::string sh =
        fmt("B=%d Tq=%d Tk=%d NH=%d HS=%d%s", B, Tq, Tk, NH, HS, tag[what]);
    tensor q(k, (size_t)B * Tq * qs, 1), kv(k, packed ? 1 : (size_t)B * Tk * ks, 1);
    tensor out(k, (size_t)B * Tq * C, 0), lse(k, (size_t)B * NH * Tq, 0);
    tensor dout(k, (size_t)B * Tq * C, 1), dq(k, q.n, 1), dkv(k, kv.n, 1);
    float *ka = packed ? q.a + C : kv.a, *kb = packed ? q.b + C : kv.b;
    float *va = packed ? q.a + 2 * C : kv.a + C, *vb = packed ? q.b + 2 * C : kv.b + C;
    float *dka = packed ? dq.a + C : dkv.a, *dkb = packed ? dq.b + C : dkv.b;
    float *dva = packed ? dq.a + 2 * C : dkv.a + C,
          *dvb = packed ? dq.b + 2 * C : dkv.b + C;
    if (what == 1) {
        k.ref->attention_fwd(out.a, nullptr, q.a, ka, va, B, Tq, Tk, NH, HS, qs, ks);
        k.dut->attention_fwd(out.b, nullptr, q.b, kb, vb, B, Tq, Tk, NH, HS, qs, ks);
        compare(k, out, "attention forward", sh);
        return;
    }
    k.ref->attention_fwd(out.a, lse.a, q.a, ka, va, B, Tq, Tk, NH, HS, qs, ks);
    k.dut->attention_fwd(out.b, lse.b, q.b, kb, vb, B, Tq, Tk, NH, HS, qs, ks);
    if (what == 0) {
        compare(k, out, "attention forward", sh);
        compare(k, lse, "attention lse", sh);
    }
    const bool wq = what != 3, wkv = what != 2;
    k.ref->attention_bwd(wq ? dq.a : nullptr, wkv ? dka : nullptr, wkv ? dva : nullptr,
                         dout.a, out.a, lse.a, q.a, ka, va, B, Tq, Tk, NH, HS, qs, ks);
    k.dut->attention_bwd(wq ? dq.b : nullptr, wkv ? dkb : nullptr, wkv ? dvb : nullptr,
                         dout.b, out.b, lse.b, q.b, kb, vb, B, Tq, Tk, NH, HS, qs, ks);
    compare(k, dq, packed ? "attention dqkv" : "attention dq", sh);
    if (!packed) compare(k, dkv, "attention dk|dv", sh);
}

/* Odd head sizes in every bucket (HS <= 32, 64, 128) and at their edges,
 * Tq = 1, Tq < Tk, T off every tile size, Tq on both sides of the forward's
 * 32-row switch, several key and query tiles; the NULL-gradient and no-lse
 * paths; the recorded errors for HS > 128 and Tq > Tk. */
void g_attention(ctx &k) {
    static const int all[][5] = {
        {2, 64, 64, 4, 16},   {3, 37, 37, 3, 11},    {2, 1, 29, 2, 8},
        {1, 5, 70, 5, 64},    {1, 20, 20, 2, 40},    {2, 100, 100, 2, 72},
        {1, 33, 95, 2, 100},  {1, 1, 200, 2, 128},   {1, 130, 130, 1, 128},
        {1, 129, 200, 1, 32}, {1, 65, 65, 1, 65},    {1, 32, 32, 1, 33},
        {1, 33, 33, 1, 1},    {1, 257, 257, 2, 100}, {2, 200, 330, 2, 48}};
    static const int quick[][5] = {{1, 100, 100, 2, 72}, {1, 9, 70, 1, 24}};
    const int(*shapes)[5] = k.quick ? quick : all;
    const int ns = k.quick ? 2 : (int)(sizeof all / sizeof all[0]);
    for (int s = 0; s < ns; s++)
        attention_case(k, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3],
                       shapes[s][4]);
    if (k.quick) return;
    for (int what = 1; what <= 3; what++)
        attention_case(k, 2, 37, 37, 2, 24, what);
    attention_case(k, 1, 3, 80, 2, 24, 3);

    /* HS above 128: an error in the record, nothing written */
    {
        const int B = 1, T = 3, NH = 1, HS = 129, C = NH * HS;
        tensor q(k, (size_t)B * T * 3 * C, 1), out(k, (size_t)B * T * C, 1), lse(k, 3, 1);
        tensor dout(k, out.n, 1), dq(k, q.n, 1);
        const std::string sh = "B=1 T=3 NH=1 HS=129";
        k.dut->attention_fwd(out.b, lse.b, q.b, q.b + C, q.b + 2 * C, B, T, T, NH, HS,
                             3 * C, 3 * C);
        expect_error(k, "attention forward refuses HS > 128", sh, "HS=129");
        unchanged(k, out, "attention forward HS > 128 writes nothing", sh);
        k.dut->attention_bwd(dq.b, dq.b + C, dq.b + 2 * C, dout.b, out.b, lse.b, q.b,
                             q.b + C, q.b + 2 * C, B, T, T, NH, HS, 3 * C, 3 * C);
        expect_error(k, "attention backward refuses HS > 128", sh, "HS=129");
        unchanged(k, dq, "attention backward HS > 128 writes nothing", sh);
    }
    {
        const int HS = 8;
        tensor q(k, 5 * HS, 1), kv(k, 3 * 2 * HS, 1), out(k, 5 * HS, 1);
        k.dut->attention_fwd(out.b, nullptr, q.b, kv.b, kv.b + HS, 1, 5, 3, 1, HS, HS,
                             2 * HS);
        expect_error(k, "attention refuses Tq > Tk", "Tq=5 Tk=3", "Tq=5");
        unchanged(k, out, "attention Tq > Tk writes nothing", "Tq=5 Tk=3");
        k.dut->attention_fwd(out.b, nullptr, q.b, kv.b, kv.b + HS, 0, 5, 5, 1, HS, HS,
                             2 * HS);
        expect_clean(k, "attention B=0 is no error", "B=0");
        unchanged(k, out, "attention B=0 writes nothing", "B=0");
    }
}

/* With a device that allows 99 KB of shared memory per block (sm_86, sm_89;
 * run with --optin 101376): the forward at HS = 128 still fits (86,528
 * bytes), the backward at HS = 128 (123,904) is refused with an error
 * naming the sizes, the backward at HS = 64 (74,752) runs. */
void g_attention_limits(ctx &k) {
    attention_case(k, 1, 70, 70, 1, 128, 1);
    attention_case(k, 1, 70, 70, 1, 64);
    const int T = 40, HS = 128, C = HS;
    tensor q(k, (size_t)T * 3 * C, 1), out(k, (size_t)T * C, 0), lse(k, T, 0);
    tensor dout(k, out.n, 1), dq(k, q.n, 1);
    k.dut->attention_fwd(out.b, lse.b, q.b, q.b + C, q.b + 2 * C, 1, T, T, 1, HS, 3 * C,
                         3 * C);
    expect_clean(k, "attention forward HS=128 fits 99 KB", "T=40 HS=128");
    k.dut->attention_bwd(dq.b, dq.b + C, dq.b + 2 * C, dout.b, out.b, lse.b, q.b, q.b + C,
                         q.b + 2 * C, 1, T, T, 1, HS, 3 * C, 3 * C);
    expect_error(
        k, "attention backward HS=128 refused on a 99 KB device", "T=40 HS=128",
        "needs 123904 bytes of shared memory per block, the device allows 101376");
    unchanged(k, dq, "attention backward refused writes nothing", "T=40 HS=128");
}

/* Paged attention (as backend_check.c, smaller): sequences of different
 * lengths, blocks scattered over a pool, decode rows and prefill chunks,
 * query rows in reverse sequence order after a row of no sequence (whose
 * random initial out values must survive); then the layout promise: each
 * sequence in one contiguous block gives the same bits. */
void g_paged(ctx &k) {
    struct shape {
        int NH, HS, bs, n, nq[8], kvlen[8];
    };
    static const shape all[] = {
        {2, 64, 16, 5, {1, 1, 1, 1, 1}, {1, 17, 130, 65, 33}},
        {3, 13, 5, 4, {1, 7, 1, 33}, {1, 40, 130, 33}},
        {1, 256, 7, 2, {2, 1}, {100, 65}},
        {1, 1, 1, 3, {1, 2, 3}, {4, 9, 3}},
        {2, 130, 32, 3, {1, 1, 17}, {33, 140, 17}},
    };
    static const shape quick[] = {{2, 13, 5, 3, {1, 7, 1}, {1, 40, 70}}};
    const shape *shapes = k.quick ? quick : all;
    const int ncase = k.quick ? 1 : (int)(sizeof all / sizeof all[0]);
    for (int c = 0; c < ncase; c++) {
        const shape &S = shapes[c];
        const int NH = S.NH, HS = S.HS, bs = S.bs, n = S.n, C = NH * HS;
        const int qs = C + 3, ks = 2 * C, voff = C;
        const std::string sh = fmt("seqs=%d NH=%d HS=%d block=%d", n, NH, HS, bs);
        int rows = 1, need = 0, maxb = 1, maxlen = 1;
        for (int i = 0; i < n; i++) {
            int nb = (S.kvlen[i] + bs - 1) / bs;
            need += nb;
            maxb = std::max(maxb, nb);
            maxlen = std::max(maxlen, S.kvlen[i]);
            rows += S.nq[i];
        }
        const int pool = need + 5;
        std::vector<int32_t> desc((size_t)n * (3 + maxb + 1));
        int32_t *tab = desc.data() + 3 * n, *tab2 = tab + (size_t)n * maxb;
        std::vector<int> perm(pool);
        for (int b = 0; b < pool; b++)
            perm[b] = b;
        for (int b = pool - 1; b > 0; b--)
            std::swap(perm[b], perm[k.r.below(b + 1)]);
        for (int i = n - 1, row = 1, next = 0; i >= 0; i--) {
            desc[3 * i] = row;
            desc[3 * i + 1] = S.nq[i];
            desc[3 * i + 2] = S.kvlen[i];
            row += S.nq[i];
            tab2[i] = i;
            int nb = (S.kvlen[i] + bs - 1) / bs;
            for (int b = 0; b < maxb; b++)
                tab[(size_t)i * maxb + b] = b < nb ? perm[next++] : 0;
        }
        tensor q(k, (size_t)rows * qs, 1), kv(k, (size_t)pool * bs * ks, 1);
        tensor out(k, (size_t)rows * C, 1), out2(k, (size_t)rows * C, 1);
        tensor kv2(k, (size_t)n * maxlen * ks, 0);
        itensor d(k, desc);
        k.ref->attention_paged_fwd(out.a, q.a, kv.a, d.a, d.a + 3 * n, n, rows, maxb, bs,
                                   NH, HS, qs, ks, voff);
        k.dut->attention_paged_fwd(out.b, q.b, kv.b, d.b, d.b + 3 * n, n, rows, maxb, bs,
                                   NH, HS, qs, ks, voff);
        compare(k, out, "attention paged", sh);
        /* the same keys, each sequence contiguous in block i of kv2 */
        std::vector<float> h2(kv2.n, 0.0f);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < S.kvlen[i]; j++)
                memcpy(&h2[((size_t)i * maxlen + j) * ks],
                       &kv.h[((size_t)tab[(size_t)i * maxb + j / bs] * bs + j % bs) * ks],
                       (size_t)ks * 4);
        k.dut->upload(kv2.b, h2.data(), h2.size() * 4);
        k.dut->upload(out2.b, out.h.data(), out.n * 4);
        k.dut->attention_paged_fwd(out2.b, q.b, kv2.b, d.b,
                                   d.b + 3 * n + (size_t)n * maxb, n, rows, 1, maxlen, NH,
                                   HS, qs, ks, voff);
        if (clean(k, "attention paged layout", sh))
            add(k, "attention paged layout", sh, rel_diff(out.get_b(), out2.get_b()),
                0.0);
    }
    if (k.quick) return;
    /* HS above 256: an error in the record, nothing written */
    const int HS = 257;
    std::vector<int32_t> desc = {0, 1, 1, 0};
    itensor d(k, desc);
    tensor q(k, HS, 1), kv(k, 2 * HS, 1), out(k, HS, 1);
    k.dut->attention_paged_fwd(out.b, q.b, kv.b, d.b, d.b + 3, 1, 1, 1, 1, 1, HS, HS,
                               2 * HS, HS);
    expect_error(k, "attention paged refuses HS > 256", "HS=257", "HS=257");
    unchanged(k, out, "attention paged HS > 256 writes nothing", "HS=257");
}

void g_elementwise(ctx &k) {
    static const size_t all[] = {1000, 4097, 12345};
    static const size_t quick[] = {4097};
    const size_t *sizes = k.quick ? quick : all;
    const int ns = k.quick ? 1 : 3;
    for (int s = 0; s < ns; s++) {
        const size_t n = sizes[s];
        const std::string sh = fmt("n=%zu", n);
        tensor a(k, n, 4), b(k, n, 1), out(k, n, 0), dout(k, n, 1), da(k, n, 1),
            db(k, n, 1);
        k.ref->gelu_fwd(out.a, a.a, n);
        k.dut->gelu_fwd(out.b, a.b, n);
        compare(k, out, "gelu forward", sh);
        k.ref->gelu_bwd(da.a, dout.a, a.a, n);
        k.dut->gelu_bwd(da.b, dout.b, a.b, n);
        compare(k, da, "gelu backward", sh);
        k.ref->residual_fwd(out.a, a.a, b.a, n);
        k.dut->residual_fwd(out.b, a.b, b.b, n);
        compare(k, out, "residual forward", sh);
        k.ref->residual_bwd(da.a, db.a, dout.a, n);
        k.dut->residual_bwd(da.b, db.b, dout.b, n);
        compare(k, da, "residual da", sh);
        compare(k, db, "residual db", sh);
        k.ref->residual_bwd(da.a, da.a, dout.a, n); /* da == db: both updates */
        k.dut->residual_bwd(da.b, da.b, dout.b, n);
        compare(k, da, "residual da == db", sh);
        double sa = k.ref->sumsq(a.a, n), sb = k.dut->sumsq(a.b, n);
        if (clean(k, "sumsq", sh)) add(k, "sumsq", sh, fabs(sa - sb) / sa, TOL_SUMSQ);
        k.ref->scale(a.a, n, 0.37f);
        k.dut->scale(a.b, n, 0.37f);
        compare(k, a, "scale", sh);
    }
    if (k.quick) return;
    /* more than 1024 x 256 elements: the first stage's grid is capped and
     * strides; the final block adds 1024 partials */
    const size_t n = 300000;
    tensor a(k, n, 1);
    double sa = k.ref->sumsq(a.a, n), sb = k.dut->sumsq(a.b, n);
    if (clean(k, "sumsq", "n=300000"))
        add(k, "sumsq", "n=300000", fabs(sa - sb) / sa, TOL_SUMSQ);
    add(k, "sumsq of nothing is 0", "n=0", k.dut->sumsq(a.b, 0) == 0.0 ? 0.0 : 1.0, 0.0);
}

void g_xent(ctx &k) {
    static const int all[][2] = {{64, 256}, {37, 5003}, {3, 33}};
    static const int quick[][2] = {{5, 1500}};
    const int(*shapes)[2] = k.quick ? quick : all;
    const int ns = k.quick ? 1 : 3;
    for (int s = 0; s < ns; s++) {
        const int N = shapes[s][0], V = shapes[s][1];
        const std::string sh = fmt("N=%d V=%d", N, V);
        std::vector<int32_t> tgt(N);
        for (int i = 0; i < N; i++)
            tgt[i] = i == 1 ? -1 : k.r.below(V); /* row 1: no loss */
        itensor t(k, tgt);
        tensor z(k, (size_t)N * V, 5), loss(k, N, 0), dloss(k, N, 1);
        k.ref->xent_fwd(loss.a, z.a, t.a, N, V);
        k.dut->xent_fwd(loss.b, z.b, t.b, N, V);
        compare(k, loss, "cross-entropy forward", sh);
        k.ref->xent_bwd_inplace(z.a, t.a, dloss.a, N, V);
        k.dut->xent_bwd_inplace(z.b, t.b, dloss.b, N, V);
        compare(k, z, "cross-entropy backward", sh);
    }
}

/* The vocabulary split into shards (one of them empty); the host plays the
 * allreduces between the stages, for each backend from its own values.
 * Each stage against the CPU's, and the loss against the fused op's. */
void g_xent_shard(ctx &k) {
    const int N = k.quick ? 5 : 37, V = k.quick ? 1500 : 5003;
    const int starts[] = {0, V / 3, 2 * V / 3, V, V};
    const int nsh = 4;
    const std::string sh = fmt("N=%d V=%d, %d shards", N, V, nsh);
    std::vector<int32_t> tgt(N);
    for (int i = 0; i < N; i++)
        tgt[i] = i == 1 ? -1 : k.r.below(V);
    itensor t(k, tgt);
    tensor z(k, (size_t)N * V, 5), dloss(k, N, 1), loss(k, N, 0), full(k, N, 0);
    struct shard_bufs {
        std::unique_ptr<tensor> z, m, s, zt;
    };
    std::vector<shard_bufs> sb(nsh);
    std::vector<float> Ma(N, -INFINITY), Mb(N, -INFINITY);
    for (int r = 0; r < nsh; r++) {
        const int v0 = starts[r], Vs = starts[r + 1] - starts[r];
        sb[r].z.reset(new tensor(k, (size_t)N * std::max(Vs, 1), 0));
        std::vector<float> zs((size_t)N * std::max(Vs, 1), 0.0f);
        for (int n = 0; n < N; n++)
            for (int v = 0; v < Vs; v++)
                zs[(size_t)n * Vs + v] = z.h[(size_t)n * V + v0 + v];
        k.ref->upload(sb[r].z->a, zs.data(), zs.size() * 4);
        k.dut->upload(sb[r].z->b, zs.data(), zs.size() * 4);
        sb[r].m.reset(new tensor(k, N, 0));
        sb[r].s.reset(new tensor(k, N, 0));
        sb[r].zt.reset(new tensor(k, N, 0));
        const std::string rs = fmt("%s, shard [%d, %d)", sh.c_str(), v0, v0 + Vs);
        k.ref->xent_shard_stats(sb[r].m->a, sb[r].s->a, sb[r].zt->a, sb[r].z->a, t.a, N,
                                Vs, v0);
        k.dut->xent_shard_stats(sb[r].m->b, sb[r].s->b, sb[r].zt->b, sb[r].z->b, t.b, N,
                                Vs, v0);
        compare(k, *sb[r].m, "xent shard max", rs);
        compare(k, *sb[r].s, "xent shard sumexp", rs);
        compare(k, *sb[r].zt, "xent shard target logit", rs);
        std::vector<float> ma = sb[r].m->get_a(), mb = sb[r].m->get_b();
        for (int n = 0; n < N; n++) {
            Ma[n] = std::max(Ma[n], ma[n]);
            Mb[n] = std::max(Mb[n], mb[n]);
        }
    }
    tensor M(k, N, 0), S(k, N, 0), ZT(k, N, 0);
    k.ref->upload(M.a, Ma.data(), N * 4);
    k.dut->upload(M.b, Mb.data(), N * 4);
    std::vector<float> Sa(N, 0.0f), Sb(N, 0.0f), Za(N, 0.0f), Zb(N, 0.0f);
    for (int r = 0; r < nsh; r++) {
        const std::string rs = fmt("%s, shard %d", sh.c_str(), r);
        k.ref->xent_shard_rescale(sb[r].s->a, sb[r].m->a, M.a, N);
        k.dut->xent_shard_rescale(sb[r].s->b, sb[r].m->b, M.b, N);
        compare(k, *sb[r].s, "xent shard rescale", rs);
        std::vector<float> sa = sb[r].s->get_a(), sbv = sb[r].s->get_b();
        std::vector<float> za = sb[r].zt->get_a(), zb = sb[r].zt->get_b();
        for (int n = 0; n < N; n++) {
            Sa[n] += sa[n];
            Sb[n] += sbv[n];
            Za[n] += za[n];
            Zb[n] += zb[n];
        }
    }
    k.ref->upload(S.a, Sa.data(), N * 4);
    k.dut->upload(S.b, Sb.data(), N * 4);
    k.ref->upload(ZT.a, Za.data(), N * 4);
    k.dut->upload(ZT.b, Zb.data(), N * 4);
    k.ref->xent_shard_loss(loss.a, M.a, S.a, ZT.a, t.a, N);
    k.dut->xent_shard_loss(loss.b, M.b, S.b, ZT.b, t.b, N);
    compare(k, loss, "xent shard loss", sh);
    k.ref->xent_fwd(full.a, z.a, t.a, N, V);
    if (clean(k, "xent shard loss = fused loss", sh))
        add(k, "xent shard loss = fused loss", sh, rel_diff(full.get_a(), loss.get_b()),
            TOL);
    for (int r = 0; r < nsh; r++) {
        const int v0 = starts[r], Vs = starts[r + 1] - starts[r];
        const std::string rs = fmt("%s, shard [%d, %d)", sh.c_str(), v0, v0 + Vs);
        k.ref->xent_shard_bwd_inplace(sb[r].z->a, t.a, dloss.a, M.a, S.a, N, Vs, v0);
        k.dut->xent_shard_bwd_inplace(sb[r].z->b, t.b, dloss.b, M.b, S.b, N, Vs, v0);
        compare(k, *sb[r].z, "xent shard backward", rs);
    }
}

/* SGD, Adam, AdamW over a flat buffer with few runs and with more runs than
 * one launch takes (128), 3 steps each. */
void g_optimizer(ctx &k) {
    static const char *const names[] = {"sgd", "adam", "adamw"};
    const size_t n = k.quick ? 3001 : 10007;
    const int many = k.quick ? 150 : 300;
    const std::vector<ops_decay_run> few = {
        {n / 3, 0.1f}, {n / 3 + 7, 0.0f}, {n - 100, 0.1f}, {n, 0.0f}};
    std::vector<ops_decay_run> lots(many);
    for (int r = 0; r < many; r++)
        lots[r] = {r == many - 1 ? n : (size_t)(r + 1) * (n / many - 1),
                   r % 2 ? 0.0f : 0.05f * (float)(1 + r % 3)};
    const std::vector<ops_decay_run> *tables[] = {&few, &lots};
    for (int tb = k.quick ? 1 : 0; tb < 2; tb++)
        for (int kind = 0; kind < 3; kind++) {
            if (k.quick && kind == 1) continue;
            const std::vector<ops_decay_run> &runs = *tables[tb];
            const int nr = (int)runs.size();
            const std::string sh = fmt("n=%zu, %d runs, 3 steps", n, nr);
            tensor p(k, n, 1), m(k, n, 0), v(k, n, 0);
            for (int t = 1; t <= 3; t++) {
                tensor g(k, n, 1);
                if (kind == 0) {
                    k.ref->sgd_update(p.a, g.a, m.a, n, runs.data(), nr, 0.1f, 0.9f);
                    k.dut->sgd_update(p.b, g.b, m.b, n, runs.data(), nr, 0.1f, 0.9f);
                } else {
                    k.ref->adam_update(p.a, g.a, m.a, v.a, n, runs.data(), nr, 1e-2f,
                                       0.9f, 0.95f, 1e-8f, t, kind == 2);
                    k.dut->adam_update(p.b, g.b, m.b, v.b, n, runs.data(), nr, 1e-2f,
                                       0.9f, 0.95f, 1e-8f, t, kind == 2);
                }
            }
            compare(k, p, std::string(names[kind]) + " params", sh);
            compare(k, m, std::string(names[kind]) + " first moment", sh);
            if (kind) compare(k, v, std::string(names[kind]) + " second moment", sh);
        }
}

/* The warp and block reductions of cuda_internal.h (reductions.cu), each
 * helper called after another one on the same scratch, at block sizes from
 * one warp to 1024 threads: every thread's result against a double sum /
 * exact max of the block's (warp's) inputs, and all threads given the same
 * bits. */
void g_reductions(ctx &k) {
    static const int all[] = {32, 96, 256, 1024}, quick[] = {96};
    const int *sizes = k.quick ? quick : all;
    const int ns = k.quick ? 1 : 4, blocks = 3;
    for (int s = 0; s < ns; s++) {
        const int T = sizes[s];
        const std::string sh = fmt("%d blocks of %d threads", blocks, T);
        std::vector<float> in((size_t)blocks * T * 2);
        for (size_t i = 0; i < in.size(); i++) /* block 1 all negative */
            in[i] = (float)(2.0 * k.r.uniform() - 1.0) - (i / (2 * T) == 1 ? 2.0f : 0.0f);
        float *din = (float *)k.dut->alloc(in.size() * 4);
        double *dres = (double *)k.dut->alloc((size_t)blocks * T * 8 * 8);
        k.dut->upload(din, in.data(), in.size() * 4);
        emu_test_reductions(dres, din, blocks, T);
        std::vector<double> res((size_t)blocks * T * 8);
        k.dut->download(res.data(), dres, res.size() * 8);
        k.dut->free(din);
        k.dut->free(dres);
        if (!clean(k, "block and warp reductions", sh)) continue;
        double bad = 0.0, disagree = 0.0; /* counts of values */
        for (int b = 0; b < blocks; b++) {
            const float *x = &in[(size_t)b * T * 2], *y = x + T;
            for (int t = 0; t < T; t++) {
                const double *r = &res[((size_t)b * T + t) * 8];
                const double *r0 = &res[(size_t)b * T * 8];               /* thread 0 */
                const double *rw = &res[((size_t)b * T + (t & ~31)) * 8]; /* its lane 0 */
                double want[8] = {0, -INFINITY, 0, -INFINITY, 0, 0, 0, -INFINITY},
                       mag[8] = {0};
                for (int i = 0; i < T; i++) {
                    want[0] += x[i], mag[0] += fabs(x[i]);
                    want[1] = std::max(want[1], (double)x[i]);
                    want[2] += y[i], mag[2] += fabs(y[i]);
                    want[3] = std::max(want[3], (double)y[i]);
                }
                for (int i = t & ~31; i < (t & ~31) + 32; i++) {
                    want[6] += x[i], mag[6] += fabs(x[i]);
                    want[7] = std::max(want[7], (double)y[i]);
                }
                want[4] = want[0], want[5] = want[2], mag[4] = mag[0], mag[5] = mag[2];
                for (int q = 0; q < 8; q++) {
                    /* sums in float: 1e-5 of the magnitude; in double: 1e-12 */
                    double tol = q == 1 || q == 3 || q == 7
                                     ? 0.0
                                     : (q == 4 || q == 5 ? 1e-12 : 1e-5);
                    bad += !(fabs(r[q] - want[q]) <= tol * mag[q]); /* NaN is bad */
                    disagree += memcmp(&r[q], q < 6 ? &r0[q] : &rw[q], 8) != 0;
                }
            }
        }
        add(k, "block and warp reductions (values off)", sh, bad, 0.0);
        add(k, "every thread gets the same result (values differing)", sh, disagree, 0.0);
    }
}

/* An emulator error naming `needle` (and the launch failed): recorded as
 * passed, then both error records cleared. */
void expect_emu_error(ctx &k, const std::string &what, const std::string &needle) {
    std::vector<std::string> ee = emu::errors();
    const char *ce = cuda_last_error();
    bool found = false;
    for (const auto &e : ee)
        found = found || e.find(needle) != std::string::npos;
    std::string note = ee.empty() ? "no emulator error" : "emulator: " + ee[0];
    const bool ok = found && ce && strstr(ce, "launch failure");
    add(k, what, "", ok ? 0.0 : 1.0, 0.0, ok ? "" : note);
    emu_cuda_clear_error();
    emu::clear_errors();
}

/* The emulator itself (emu_selftest.cu): misuse reported, a missing
 * barrier visible in the results, invalid launches refused as a device
 * refuses them, and the primitives' values as CUDA defines them. */
void g_emulator(ctx &k) {
    const int T = 96;
    std::vector<float> in(T);
    for (int t = 0; t < T; t++)
        in[t] = (float)t;
    float *din = (float *)k.dut->alloc(T * 4);
    void *out = k.dut->alloc((size_t)256 * 8 * 4);
    k.dut->upload(din, in.data(), T * 4);
    emu_selftest(0, out, din, T, 0);
    expect_emu_error(k, "barrier in divergent code reported", "different __syncthreads");
    emu_selftest(1, out, din, T, 0);
    expect_emu_error(k, "barrier after an early return: deadlock", "have exited");
    emu_selftest(2, out, din, T, 0);
    expect_emu_error(k, "shuffle naming exited lanes reported", "exited");
    emu_selftest(3, out, din, T, 0);
    expect_emu_error(k, "shuffle reading outside its mask reported", "not in the mask");
    emu_selftest(4, out, din, 256, 250 * 4);
    expect_emu_error(k, "write past the dynamic shared memory reported", "wrote past");
    /* a missing barrier: threads read slots not written yet (NaN) */
    emu_selftest(5, out, din, T, T * 4);
    if (clean(k, "missing barrier seen in the results", "")) {
        std::vector<float> o(T);
        k.dut->download(o.data(), out, T * 4);
        int wrong = 0;
        for (int t = 0; t < T; t++)
            wrong += !(o[t] == in[(t + 37) % T]);
        add(k, "missing barrier seen in the results", fmt("%d of %d wrong", wrong, T),
            wrong ? 0.0 : 1.0, 0.0);
    }
    /* launches a device refuses */
    emu_selftest(6, out, din, 1025, 0);
    expect_error(k, "1025 threads refused", "", "invalid configuration");
    emu_selftest(5, out, din, T, 48 * 1024 + 4); /* a kernel never opted in */
    expect_error(k, "more than 48 KB without opt-in refused", "", "invalid argument");
    emu_selftest(7, out, din, T, 300 * 1024);
    expect_error(k, "opt-in above the device's limit refused", "", "invalid argument");
    emu_selftest(7, out, din, T, 100 * 1024);
    expect_clean(k, "more than 48 KB after opt-in", "");
    /* the primitives' values */
    std::vector<int> r((size_t)T * 8);
    k.dut->download(r.data(), out, r.size() * 4);
    int bad = 0;
    for (int t = 0; t < T; t++) {
        const int l = t & 31;
        const int want[8] = {(T + 2) / 3,
                             T > 77,
                             1,
                             (int)0xaaaaaaaau,
                             l % 8 >= 3 ? l - 3 : l,
                             l % 16 + 2 < 16 ? l + 2 : l,
                             (l & ~7) + ((5 + l) & 7),
                             (l & 4) ? l ^ 4 : l};
        for (int q = 0; q < 8; q++)
            bad += r[(size_t)t * 8 + q] != want[q];
    }
    add(k, "syncthreads_count/or/and, ballot, shuffles with width", fmt("%d threads", T),
        (double)bad, 0.0);
    k.dut->free(din);
    k.dut->free(out);
}

struct group {
    const char *name;
    void (*run)(ctx &);
    bool by_default; /* in the plain run of all groups */
};
const group kGroups[] = {
    {"memory", g_memory, true},       {"cast", g_cast, true},
    {"embedding", g_embedding, true}, {"layernorm", g_layernorm, true},
    {"attention", g_attention, true}, {"attention_limits", g_attention_limits, false},
    {"paged", g_paged, true},         {"elementwise", g_elementwise, true},
    {"xent", g_xent, true},           {"xent_shard", g_xent_shard, true},
    {"optimizer", g_optimizer, true}, {"reductions", g_reductions, true},
    {"emulator", g_emulator, true},
};

/* Run one group in the current scheduling order. */
ctx run_group(const group &g, bool quick, const struct ops *dut) {
    ctx k;
    k.ref = ops_cpu();
    k.dut = dut;
    k.r.s = 0x1234u + std::hash<std::string>()(g.name);
    k.group = g.name;
    k.quick = quick;
    emu_cuda_clear_error();
    emu::clear_errors();
    g.run(k);
    clean(k, "no error left at the end", "");
    return k;
}

/* The label of the check that produced bits[i]. */
std::string label_at(const ctx &k, size_t i) {
    std::string l = "?";
    for (const auto &m : k.marks)
        if (m.first <= i) l = m.second;
    return l;
}

struct options {
    bool quick = false, list_sites = false, barriers = false;
    std::vector<std::string> groups;
    int optin = 0;
    std::string drop;
};

int run_checks(const options &opt) {
    const struct ops dut = make_emu_ops();
    if (opt.optin > 0) emu::set_smem_optin(opt.optin);
    if (!opt.drop.empty()) emu::drop_sync_site(opt.drop);
    std::vector<const group *> sel;
    for (const group &g : kGroups)
        if (opt.groups.empty() ? g.by_default
                               : std::find(opt.groups.begin(), opt.groups.end(),
                                           g.name) != opt.groups.end())
            sel.push_back(&g);
    if (sel.size() != (opt.groups.empty() ? sel.size() : opt.groups.size())) {
        fprintf(stderr, "unknown group; the groups are:");
        for (const group &g : kGroups)
            fprintf(stderr, " %s", g.name);
        fprintf(stderr, "\n");
        return 2;
    }
    const auto t0 = std::chrono::steady_clock::now();
    int checks = 0, fails = 0;
    std::map<std::string, std::set<std::string>> site_groups;
    for (const group *g : sel) {
        emu::set_order(emu::order::forward);
        emu::reset_sync_sites();
        ctx fw = run_group(*g, opt.quick, &dut);
        for (const auto &s : emu::sync_sites())
            site_groups[s.site].insert(g->name);
        std::vector<result> res = fw.results;
        /* again in reverse and in shuffled order: the same bits, or a race */
        static const std::pair<emu::order, const char *> others[] = {
            {emu::order::reverse, "reverse"}, {emu::order::shuffled, "shuffled"}};
        for (const auto &o : others) {
            emu::set_order(o.first, 1);
            ctx rv = run_group(*g, opt.quick, &dut);
            for (const auto &r : rv.results)
                if (!r.pass) { /* e.g. an error only this order provokes */
                    result x = r;
                    x.what += std::string(" [") + o.second + " order]";
                    res.push_back(x);
                }
            size_t diff = 0;
            while (diff < fw.bits.size() && diff < rv.bits.size() &&
                   fw.bits[diff] == rv.bits[diff])
                diff++;
            const bool same = diff == fw.bits.size() && diff == rv.bits.size();
            res.push_back({g->name, std::string("same bits in ") + o.second + " order",
                           "", same ? "" : "first difference in: " + label_at(fw, diff),
                           same ? 0.0 : 1.0, 0.0, same});
        }
        emu::set_order(emu::order::forward);
        for (const auto &r : res) {
            checks++;
            fails += !r.pass;
            if (opt.list_sites) continue;
            printf("%s %-12s %-40s %-38s %.2e (tol %.0e)%s%s\n", r.pass ? "ok  " : "FAIL",
                   r.group.c_str(), r.what.c_str(), r.shape.c_str(), r.err, r.tol,
                   r.note.empty() ? "" : "  ", r.note.c_str());
        }
    }
    if (opt.list_sites) {
        for (const auto &sg : site_groups) {
            printf("%s", sg.first.c_str());
            for (const auto &g : sg.second)
                printf(" %s", g.c_str());
            printf("\n");
        }
        return fails ? 1 : 0;
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const emu::stats st = emu::get_stats();
    printf("\n%d checks, %d failed (%.1f s; emulated %llu launches, %llu blocks, %llu "
           "threads, "
           "%llu thread switches)\n",
           checks, fails, secs, st.launches, st.blocks, st.threads, st.switches);
    return fails ? 1 : 0;
}

/* ---- the barrier-removal test -------------------------------------------------- */

/* Run this program with args; its output into `out`. Exit status, or 128 +
 * the signal, or -1 on a timeout (killed). */
int spawn_self(const std::vector<std::string> &args, std::string *out, int timeout_s) {
    char tmpl[] = "/tmp/cuda_emu_XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return -2;
    unlink(tmpl);
    std::vector<char *> argv;
    static char self[] = "/proc/self/exe";
    argv.push_back(self);
    for (const auto &a : args)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        close(fd);
        return -2;
    }
    int status = 0, waited = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (waited >= timeout_s * 100) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, nullptr);
        waited++;
    }
    out->clear();
    lseek(fd, 0, SEEK_SET);
    char buf[4096];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0)
        out->append(buf, (size_t)got);
    close(fd);
    if (status == -1) return -1;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* "__syncthreads();" lines of the emulated sources (EMU_SOURCES, separated
 * by |): base:line */
std::set<std::string> barrier_sites_in_sources() {
    std::set<std::string> sites;
    std::stringstream list(EMU_SOURCES);
    std::string path;
    while (std::getline(list, path, '|')) {
        std::ifstream f(path);
        std::string line, base = path.substr(path.rfind('/') + 1);
        for (int no = 1; std::getline(f, line); no++)
            if (line.find("__syncthreads();") != std::string::npos)
                sites.insert(base + ":" + std::to_string(no));
    }
    return sites;
}

int run_barriers() {
    std::string out;
    int rc = spawn_self({"--list-sites"}, &out, 600);
    if (rc != 0) {
        printf("FAIL the quick checks do not pass with every barrier in place (status "
               "%d):\n%s\n",
               rc, out.c_str());
        return 1;
    }
    std::map<std::string, std::vector<std::string>> executed;
    std::stringstream ls(out);
    std::string line;
    while (std::getline(ls, line)) {
        std::stringstream w(line);
        std::string site, g;
        if (!(w >> site) || site.find(':') == std::string::npos) continue;
        while (w >> g)
            executed[site].push_back(g);
    }
    /* the sites of the kernel sources (the tests' own kernels, whose
     * barriers are wrong on purpose or not the subject, are left out) */
    const std::set<std::string> sites = barrier_sites_in_sources();
    int bad = 0, caught = 0;
    for (const auto &s : sites)
        if (!executed.count(s)) {
            printf("FAIL %-28s no check executes this barrier\n", s.c_str());
            bad++;
        }
    for (const auto &ex : executed) {
        if (!sites.count(ex.first)) continue;
        std::vector<std::string> args = {"--quick", "--drop", ex.first};
        for (const auto &g : ex.second) {
            args.push_back("--group");
            args.push_back(g);
        }
        const auto t0 = std::chrono::steady_clock::now();
        rc = spawn_self(args, &out, 300);
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::string how;
        if (rc == 0) {
            how = "SURVIVED: every check passes without it";
        } else if (rc == -1) {
            how = "caught: the checks hang";
        } else if (rc > 128) {
            how = fmt("caught: the checks crash (signal %d)", rc - 128);
        } else {
            /* the first failed check says how */
            size_t at = out.find("FAIL ");
            how = "caught: " + (at == std::string::npos
                                    ? fmt("status %d", rc)
                                    : out.substr(at + 5, out.find('\n', at) - at - 5));
            how.erase(std::unique(how.begin(), how.end(),
                                  [](char a, char b) { return a == ' ' && b == ' '; }),
                      how.end());
        }
        const bool ok = rc != 0;
        caught += ok;
        bad += !ok;
        std::string groups;
        for (const auto &g : ex.second)
            groups += (groups.empty() ? "" : ",") + g;
        printf("%s %-26s [%s, %.1f s] %s\n", ok ? "ok  " : "FAIL", ex.first.c_str(),
               groups.c_str(), secs, how.substr(0, 230).c_str());
        fflush(stdout);
    }
    printf("\n%d barrier sites: %d removals caught, %d problems\n", (int)sites.size(),
           caught, bad);
    return bad ? 1 : 0;
}

} // namespace

/* The GPU suite's own checks (src/train/backend_check.c), unchanged, with
 * the emulated ops as the device: every op, then 5 AdamW steps of `tiny`
 * (the suite's quick model check takes 20; each step is ~0.5 s here). */
int run_backend_check() {
    const struct ops dut = make_emu_ops();
    struct check_report rep = {nullptr, 0, 0};
    const auto t0 = std::chrono::steady_clock::now();
    int rc = backend_check_ops(ops_cpu(), &dut, &rep);
    if (!rc) rc = backend_check_models(ops_cpu(), &dut, 5, 1, &rep);
    int fails = 0;
    for (int i = 0; i < rep.n; i++) {
        const check_result &r = rep.r[i];
        fails += !r.pass;
        printf("%s %-34s %-34s %.2e (tol %.0e)\n", r.pass ? "ok  " : "FAIL", r.what,
               r.shape, r.err, r.tol);
    }
    const char *ce = cuda_last_error();
    std::vector<std::string> ee = emu::errors();
    if (ce) printf("FAIL CUDA error: %s\n", ce);
    for (const auto &e : ee)
        printf("FAIL emulator: %s\n", e.c_str());
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("\nbackend_check: %d checks, %d failed (%.1f s)\n", rep.n, fails, secs);
    check_report_free(&rep);
    return rc || fails || ce || !ee.empty() ? 1 : 0;
}

int main(int argc, char **argv) {
    options opt;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--quick")
            opt.quick = true;
        else if (a == "--list-sites")
            opt.list_sites = opt.quick = true;
        else if (a == "--barriers")
            opt.barriers = true;
        else if (a == "--backend-check")
            return ops_cpu_set_threads(1), run_backend_check();
        else if (a == "--group" && i + 1 < argc)
            opt.groups.push_back(argv[++i]);
        else if (a == "--optin" && i + 1 < argc)
            opt.optin = atoi(argv[++i]);
        else if (a == "--drop" && i + 1 < argc)
            opt.drop = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--quick] [--group NAME]... [--optin BYTES] [--drop "
                    "FILE:LINE] | "
                    "--list-sites | --barriers\n",
                    argv[0]);
            return 2;
        }
    }
    /* one host thread for the CPU reference: the emulation is the slow part,
     * and the tests run next to others */
    ops_cpu_set_threads(1);
    return opt.barriers ? run_barriers() : run_checks(opt);
}
