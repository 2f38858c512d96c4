/* tests/cuda_emu/emu_runtime.cpp — the CUDA emulation's runtime: launches,
 * the block scheduler, barriers and warp operations, device memory, the
 * device's limits (tests/cuda_emu/README.md).
 *
 * A launch validates its configuration as a device would (block <= 1024
 * threads, grid limits, dynamic shared memory <= 48 KB unless the kernel
 * opted in through cudaFuncSetAttribute), then runs the blocks one after
 * the other on the calling host thread. A block's threads are fibers (one
 * stack each; a hand-written register switch on x86-64, ucontext
 * elsewhere), resumed by the scheduler and giving control back only at a
 * synchronisation point. Scheduling: warps in turn, each run as far as it
 * gets (until all its lanes wait at a block barrier or have exited), its
 * lanes in turn up to each warp operation; the order of blocks, warps and
 * lanes is forward, reverse or shuffled (emu::set_order). A block barrier releases when
 * every thread of the block has arrived at it, a warp operation when every lane of its
 * mask has. No runnable fiber while some have not finished is a deadlock, reported with
 * who waits where.
 *
 * Shared state between host threads (limits, errors, statistics) is behind
 * one mutex; the scheduler itself is per host thread.
 */
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda_runtime.h"
#include "emu.h"

/* ---- context switching -----------------------------------------------------
 * x86-64: a hand-written switch (the callee-saved registers, MXCSR and the
 * x87 control word pushed on the old stack, its stack pointer stored, the new
 * one loaded and popped): no system call, where swapcontext also saves and
 * restores the signal mask, and ASan's swapcontext interceptor clears the
 * shadow of the whole target stack on every switch. Elsewhere, or with
 * EMU_UCONTEXT defined, makecontext/swapcontext. Either way ASan is told
 * about every switch (__sanitizer_start/finish_switch_fiber). */
#if defined(__x86_64__) && !defined(EMU_UCONTEXT)
extern "C" void emu_ctx_switch(void **save_sp, void *load_sp);
asm(R"(
    .text
    .globl emu_ctx_switch
    .type emu_ctx_switch, @function
emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_ctx_switch, .-emu_ctx_switch
)");
namespace {
struct context {
    void *sp;
};
/* A fresh stack as emu_ctx_switch leaves one: the FP control words, six
 * zero registers, then `entry` as the return address, with the stack
 * aligned as at a function's entry (rsp + 8 a multiple of 16). */
void ctx_init(context &c, char *stack, size_t size, void (*entry)()) {
    uint64_t *top = (uint64_t *)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
    uint64_t *sp = top - 9;
    uint32_t mxcsr;
    uint16_t fpucw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    sp[0] = (uint64_t)mxcsr | (uint64_t)fpucw << 32;
    for (int i = 1; i <= 6; i++)
        sp[i] = 0;                      /* r15 .. rbp */
    sp[7] = (uint64_t)(uintptr_t)entry; /* popped by ret */
    sp[8] = 0;                          /* entry's own return address */
    c.sp = sp;
}
void ctx_switch(context &from, context &to) { emu_ctx_switch(&from.sp, to.sp); }
} // namespace
#else
namespace {
struct context {
    ucontext_t uc;
};
void ctx_init(context &c, char *stack, size_t size, void (*entry)()) {
    static thread_local ucontext_t tmpl;
    static thread_local bool have = false;
    if (!have) {
        getcontext(&tmpl);
        have = true;
    }
    c.uc = tmpl;
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
void ctx_switch(context &from, context &to) { swapcontext(&from.uc, &to.uc); }
} // namespace
#endif

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

__thread uint3 threadIdx;
__thread uint3 blockIdx;
__thread dim3 blockDim;
__thread dim3 gridDim;

namespace emu {
namespace {

constexpr int kMaxThreads = 1024;
constexpr size_t kDefaultSmem = 48 * 1024; /* without an opt-in */
/* fiber stacks: the kernels keep their register tiles there (ASan's
 * redzones make frames several times larger) */
#ifdef EMU_ASAN
constexpr size_t kStack = 1024 * 1024;
constexpr size_t kStackTop = 16 * 1024; /* a finished fiber's live frames */
#else
constexpr size_t kStack = 256 * 1024;
#endif
/* guard bytes after the dynamic shared memory, NaN like it: a read past the
 * end gets NaN, a write past it is reported after the block */
constexpr size_t kCanary = 64;
constexpr unsigned char kCanaryByte = 0xff;

/* ---- state shared by all host threads ------------------------------------ */
std::mutex g_mu;
int g_optin = 232448;
std::map<const void *, int> g_func_smem; /* kernel -> opted-in dynamic smem */
std::string g_drop_base;                 /* dropped barrier site, base name */
int g_drop_line = -1;
std::map<std::pair<std::string, int>, unsigned long long> g_sites;
std::vector<std::string> g_errors;
stats g_stats;
order g_order = order::forward;
unsigned g_seed = 0;
std::map<uintptr_t, size_t> g_allocs; /* device allocations: start -> bytes */

thread_local cudaError_t t_last = cudaSuccess;

const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- the scheduler (one per host thread) ----------------------------------- */
enum class fstate : unsigned char { ready, running, wait_block, wait_warp, done };

struct fiber {
    context ctx;
    char *stack; /* usable part, kStack bytes above a guard page */
    fstate state;
    bool abandoned; /* left mid-kernel by a failed launch */
    unsigned wait_gen;
    uint3 tid;
};

struct warp_sync {
    unsigned gen, arrived, mask, present, exited;
    int op; /* kind | width << 8, or the ballot / syncwarp codes */
    const char *op_name;
    uint64_t slot[2][32]; /* the values of two consecutive operations */
    unsigned ballot_acc, ballot_res[2];
};

struct block_sync {
    unsigned gen;
    int arrived, acc, res[2];
    const char *file;
    int line;
};

constexpr int kOpBallot = 1 << 16, kOpSyncwarp = 2 << 16;

struct sched {
    fiber *f = nullptr;
    int nfibers = 0; /* fibers with stacks */
    warp_sync w[kMaxThreads / 32];
    block_sync b;
    context main_ctx;
    int nthreads = 0, nwarps = 0, cur = -1, live = 0;
    bool in_block = false, failed = false;
    void (*body)(void *) = nullptr;
    void *arg = nullptr;
    void *smem = nullptr;
    const launch_cfg *cfg = nullptr;
    unsigned long long switches = 0;
    std::mt19937 rng;
#ifdef EMU_ASAN
    const void *main_bottom = nullptr;
    size_t main_size = 0;
#endif
};

thread_local sched *t_s = nullptr;

sched &S() {
    if (!t_s) t_s = new sched;
    return *t_s;
}

void add_error(const std::string &msg) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_errors.push_back(msg);
}

std::string vformat(const char *fmt, va_list ap) {
    char buf[768];
    vsnprintf(buf, sizeof buf, fmt, ap);
    return buf;
}

std::string where(const sched &s) {
    char buf[320];
    snprintf(buf, sizeof buf, "%s (launched at %s:%d), block (%u,%u,%u)", s.cfg->name,
             base_name(s.cfg->file), s.cfg->line, blockIdx.x, blockIdx.y, blockIdx.z);
    return buf;
}

/* A launch-level error found by the scheduler (outside any fiber). */
void block_error(sched &s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void block_error(sched &s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    add_error(where(s) + ": " + vformat(fmt, ap));
    va_end(ap);
    s.failed = true;
}

void to_main(sched &s, fiber &me, bool dying) {
#ifdef EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(dying ? nullptr : &fake, s.main_bottom, s.main_size);
#else
    (void)dying;
#endif
    ctx_switch(me.ctx, s.main_ctx);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

/* Misuse found inside a thread: recorded, and the thread never runs again
 * (the launch is abandoned). */
[[noreturn]] void thread_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
[[noreturn]] void thread_error(const char *fmt, ...) {
    sched &s = S();
    va_list ap;
    va_start(ap, fmt);
    char t[64];
    snprintf(t, sizeof t, ", thread (%u,%u,%u): ", threadIdx.x, threadIdx.y, threadIdx.z);
    add_error(where(s) + t + vformat(fmt, ap));
    va_end(ap);
    s.failed = true;
    fiber &me = s.f[s.cur];
    me.state = fstate::done;
    for (;;)
        to_main(s, me, true);
}

sched &in_kernel(const char *what) {
    sched &s = S();
    if (!s.in_block || s.cur < 0) {
        add_error(std::string(what) + " called outside a kernel");
        abort();
    }
    return s;
}

/* Give control back to the scheduler until the awaited generation moves. */
void wait(sched &s, fstate st, unsigned gen) {
    fiber &me = s.f[s.cur];
    me.state = st;
    me.wait_gen = gen;
    to_main(s, me, false);
}

void fiber_entry() {
    sched &s = S();
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &s.main_bottom, &s.main_size);
#endif
    s.body(s.arg);
    /* the thread has finished */
    fiber &me = s.f[s.cur];
    const int lane = s.cur & 31;
    warp_sync &ws = s.w[s.cur >> 5];
    me.state = fstate::done;
    s.live--;
    ws.exited |= 1u << lane;
    if (ws.arrived && (ws.mask >> lane & 1u)) {
        char t[64];
        snprintf(t, sizeof t, ", thread (%u,%u,%u): ", threadIdx.x, threadIdx.y,
                 threadIdx.z);
        char m[200];
        snprintf(m, sizeof m,
                 "exited while lanes 0x%08x of its warp wait for it at %s (mask 0x%08x)",
                 ws.arrived, ws.op_name, ws.mask);
        add_error(where(s) + t + m);
        s.failed = true;
    }
    for (;;)
        to_main(s, me, true);
}

bool ensure_fibers(sched &s, int n) {
    if (n <= s.nfibers) return true;
    if (!s.f) s.f = new fiber[kMaxThreads](); /* zeroed: not abandoned */
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int i = s.nfibers; i < n; i++) {
        void *m = mmap(nullptr, kStack + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return false;
        mprotect(m, page, PROT_NONE); /* a stack overflow faults */
        s.f[i].stack = (char *)m + page;
        s.nfibers = i + 1;
    }
    return true;
}

void make_order(sched &s, int *v, int n) {
    for (int i = 0; i < n; i++)
        v[i] = g_order == order::reverse ? n - 1 - i : i;
    if (g_order == order::shuffled) std::shuffle(v, v + n, s.rng);
}

bool runnable(const sched &s, int t) {
    const fiber &f = s.f[t];
    switch (f.state) {
    case fstate::ready:
        return true;
    case fstate::wait_block:
        return s.b.gen != f.wait_gen;
    case fstate::wait_warp:
        return s.w[t >> 5].gen != f.wait_gen;
    default:
        return false;
    }
}

void resume(sched &s, int t) {
    fiber &f = s.f[t];
    s.cur = t;
    threadIdx = f.tid;
    f.state = fstate::running;
    s.switches++;
#ifdef EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, kStack);
#endif
    ctx_switch(s.main_ctx, f.ctx);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    s.cur = -1;
}

void report_deadlock(sched &s) {
    std::string msg = "deadlock:";
    int at_block = 0, done = 0;
    for (int t = 0; t < s.nthreads; t++) {
        at_block += s.f[t].state == fstate::wait_block;
        done += s.f[t].state == fstate::done;
    }
    char buf[256];
    if (at_block) {
        snprintf(buf, sizeof buf, " %d of %d threads wait at __syncthreads (%s:%d);",
                 at_block, s.nthreads, base_name(s.b.file), s.b.line);
        msg += buf;
    }
    if (done) {
        snprintf(buf, sizeof buf, " %d threads have exited;", done);
        msg += buf;
    }
    for (int w = 0; w < s.nwarps; w++)
        if (s.w[w].arrived) {
            snprintf(buf, sizeof buf, " warp %d: lanes 0x%08x wait at %s (mask 0x%08x);",
                     w, s.w[w].arrived, s.w[w].op_name, s.w[w].mask);
            msg += buf;
        }
    block_error(s, "%s", msg.c_str());
}

/* A failed block's fibers are never resumed. */
void abandon(sched &s) {
    for (int t = 0; t < s.nthreads; t++)
        s.f[t].abandoned = true;
}

/* Run the current block (blockIdx etc. set) to its end; false on an error. */
bool run_block(sched &s, const dim3 &bd) {
    const int n = s.nthreads;
    for (int t = 0; t < n; t++) {
        fiber &f = s.f[t];
        f.state = fstate::ready;
        f.tid = uint3{(unsigned)t % bd.x, ((unsigned)t / bd.x) % bd.y,
                      (unsigned)t / (bd.x * bd.y)};
#ifdef EMU_ASAN
        /* a finished fiber never returns from its first frames, so their
         * redzones are still poisoned (all of its frames after a failed
         * launch): clear the shadow before the stack is reused */
        if (f.abandoned)
            ASAN_UNPOISON_MEMORY_REGION(f.stack, kStack);
        else
            ASAN_UNPOISON_MEMORY_REGION(f.stack + kStack - kStackTop, kStackTop);
#endif
        ctx_init(f.ctx, f.stack, kStack, fiber_entry);
        f.abandoned = false;
    }
    for (int w = 0; w < s.nwarps; w++) {
        warp_sync &ws = s.w[w];
        const int lanes = std::min(32, n - 32 * w);
        ws.gen = ws.arrived = ws.mask = ws.exited = 0;
        ws.present = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
        ws.op = 0;
        ws.op_name = "";
        ws.ballot_acc = 0;
    }
    s.b = block_sync{0, 0, 0, {0, 0}, "", 0};
    s.live = n;
    s.failed = false;
    int worder[kMaxThreads / 32], lorder[32];
    while (s.live > 0) {
        bool progressed = false;
        make_order(s, worder, s.nwarps);
        for (int wi = 0; wi < s.nwarps; wi++) {
            const int w = worder[wi], lanes = std::min(32, n - 32 * w);
            bool again = true;
            while (again) {
                again = false;
                make_order(s, lorder, lanes);
                for (int li = 0; li < lanes; li++) {
                    const int t = 32 * w + lorder[li];
                    if (!runnable(s, t)) continue;
                    resume(s, t);
                    if (s.failed) {
                        abandon(s);
                        return false;
                    }
                    again = progressed = true;
                }
            }
        }
        if (!progressed && s.live > 0) {
            abandon(s);
            report_deadlock(s);
            return false;
        }
    }
    return true;
}

void set_last(cudaError_t e) {
    if (e != cudaSuccess) t_last = e;
}

/* [p, p + bytes) inside the device allocation holding p, if p is in one. */
bool in_bounds(const void *p, size_t bytes, const char *what) {
    std::lock_guard<std::mutex> lock(g_mu);
    uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return true;
    --it;
    if (a >= it->first + it->second) return true; /* not device memory: unchecked */
    if (a + bytes <= it->first + it->second) return true;
    char buf[200];
    snprintf(buf, sizeof buf, "%s of %zu bytes at offset %zu of a %zu-byte allocation",
             what, bytes, (size_t)(a - it->first), it->second);
    g_errors.push_back(buf);
    return false;
}

} // namespace

/* ---- launches -------------------------------------------------------------- */

void launch(const void *kernel, const launch_cfg &c, void (*body)(void *), void *arg) {
    sched &s = S();
    if (s.in_block) {
        add_error(std::string(c.name) + ": launched from inside a kernel (not emulated)");
        set_last(cudaErrorLaunchFailure);
        return;
    }
    const dim3 g = c.grid, b = c.block;
    const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 ||
        g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 ||
        g.z > 65535) {
        set_last(cudaErrorInvalidConfiguration);
        return;
    }
    size_t limit = kDefaultSmem;
    order ord;
    unsigned seed;
    {
        std::lock_guard<std::mutex> lock(g_mu);
        auto it = g_func_smem.find(kernel);
        if (it != g_func_smem.end() && (size_t)it->second > limit)
            limit = (size_t)it->second;
        g_stats.launches++;
        ord = g_order;
        seed = g_seed;
    }
    if (c.smem > limit) {
        set_last(cudaErrorInvalidValue); /* what a device says: "invalid argument" */
        return;
    }
    if (!ensure_fibers(s, (int)threads)) {
        add_error(std::string(c.name) + ": cannot map fiber stacks");
        set_last(cudaErrorLaunchOutOfResources);
        return;
    }
    unsigned char *smem = (unsigned char *)malloc(c.smem + kCanary);
    if (!smem) {
        set_last(cudaErrorMemoryAllocation);
        return;
    }
    s.nthreads = (int)threads;
    s.nwarps = (s.nthreads + 31) / 32;
    s.body = body;
    s.arg = arg;
    s.smem = smem;
    s.cfg = &c;
    s.rng.seed(seed * 7919u + 17u);
    const unsigned long long nblocks = (unsigned long long)g.x * g.y * g.z;
    /* the block order: forward, reverse, or shuffled (a permutation when the
     * grid is small enough, else a random rotation) */
    std::vector<unsigned long long> perm;
    unsigned long long rot = 0;
    if (ord == order::shuffled) {
        if (nblocks <= (1u << 20)) {
            perm.resize(nblocks);
            for (unsigned long long i = 0; i < nblocks; i++)
                perm[i] = i;
            std::shuffle(perm.begin(), perm.end(), s.rng);
        } else {
            rot = s.rng() % nblocks;
        }
    }
    gridDim = g;
    blockDim = b;
    s.in_block = true;
    bool ok = true;
    unsigned long long done_blocks = 0;
    for (unsigned long long i = 0; i < nblocks && ok; i++) {
        unsigned long long id = ord == order::reverse ? nblocks - 1 - i
                                : !perm.empty()       ? perm[i]
                                                      : (i + rot) % nblocks;
        blockIdx = uint3{(unsigned)(id % g.x), (unsigned)((id / g.x) % g.y),
                         (unsigned)(id / ((unsigned long long)g.x * g.y))};
        memset(smem, 0xff, c.smem + kCanary); /* NaN in every float / double */
        ok = run_block(s, b);
        done_blocks++;
        for (size_t k = 0; ok && k < kCanary; k++)
            if (smem[c.smem + k] != kCanaryByte) {
                block_error(s, "wrote past its %zu bytes of dynamic shared memory",
                            c.smem);
                ok = false;
            }
    }
    s.in_block = false;
    s.cur = -1;
    free(smem);
    s.smem = nullptr;
    {
        std::lock_guard<std::mutex> lock(g_mu);
        g_stats.blocks += done_blocks;
        g_stats.threads += done_blocks * threads;
        g_stats.switches += s.switches;
        s.switches = 0;
    }
    if (!ok) set_last(cudaErrorLaunchFailure);
}

void *dynamic_shared(void) { return in_kernel("dynamic shared memory").smem; }

/* ---- block barriers ------------------------------------------------------------ */

static bool dropped(const char *file, int line) {
    if (line != g_drop_line) return false; /* racy read: set before any launch */
    return g_drop_base == base_name(file);
}

int syncthreads(int pred, const char *file, int line) {
    sched &s = in_kernel("__syncthreads");
    const bool plain = pred < 0; /* the removable kind, counted as a site */
    if (plain) {
        if (dropped(file, line)) {
            if (s.cur == 0) {
                std::lock_guard<std::mutex> lock(g_mu);
                g_sites[{base_name(file), line}]++;
            }
            return 0;
        }
        pred = 0;
    }
    block_sync &b = s.b;
    if (b.arrived == 0) {
        b.file = file;
        b.line = line;
    } else if (b.line != line || strcmp(b.file, file) != 0) {
        thread_error(
            "threads meet at different __syncthreads: %s:%d and %s:%d (a barrier in "
            "divergent code)",
            base_name(b.file), b.line, base_name(file), line);
    }
    const unsigned gen = b.gen;
    b.acc += pred != 0;
    if (++b.arrived == s.nthreads) {
        b.res[gen & 1] = b.acc;
        b.acc = 0;
        b.arrived = 0;
        b.gen++;
        if (plain) {
            std::lock_guard<std::mutex> lock(g_mu);
            g_sites[{base_name(file), line}]++;
        }
    }
    wait(s, fstate::wait_block, gen);
    return b.res[gen & 1];
}

/* ---- warp operations ----------------------------------------------------------- */

static unsigned warp_arrive(sched &s, unsigned mask, int op, const char *name,
                            uint64_t bits, int pred) {
    const int lane = s.cur & 31;
    warp_sync &ws = s.w[s.cur >> 5];
    const unsigned bit = 1u << lane;
    if (!(mask & bit))
        thread_error("%s by lane %d, which is not in its mask 0x%08x", name, lane, mask);
    if (mask & ~ws.present)
        thread_error(
            "%s: mask 0x%08x names lanes that do not exist (the warp has 0x%08x)", name,
            mask, ws.present);
    if (mask & ws.exited)
        thread_error("%s: mask 0x%08x names lanes that have exited (0x%08x)", name, mask,
                     mask & ws.exited);
    if (ws.arrived == 0) {
        ws.mask = mask;
        ws.op = op;
        ws.op_name = name;
    } else if (ws.mask != mask || ws.op != op) {
        thread_error(
            "lanes of warp %d meet at different warp operations: %s (mask 0x%08x) and "
            "%s (mask 0x%08x)",
            s.cur >> 5, ws.op_name, ws.mask, name, mask);
    }
    const unsigned gen = ws.gen;
    ws.slot[gen & 1][lane] = bits;
    if (pred) ws.ballot_acc |= bit;
    ws.arrived |= bit;
    if (ws.arrived == ws.mask) {
        ws.ballot_res[gen & 1] = ws.ballot_acc;
        ws.ballot_acc = 0;
        ws.arrived = 0;
        ws.gen++;
    }
    wait(s, fstate::wait_warp, gen);
    return gen;
}

void syncwarp(unsigned mask) {
    sched &s = in_kernel("__syncwarp");
    warp_arrive(s, mask, kOpSyncwarp, "__syncwarp", 0, 0);
}

uint64_t shfl(unsigned mask, uint64_t bits, shfl_kind kind, int arg, int width) {
    static const char *const names[] = {"__shfl_sync", "__shfl_up_sync",
                                        "__shfl_down_sync", "__shfl_xor_sync"};
    sched &s = in_kernel(names[kind]);
    if (width <= 0 || width > 32 || (width & (width - 1)))
        thread_error("%s with width %d (a power of two <= 32)", names[kind], width);
    const unsigned gen = warp_arrive(s, mask, kind | width << 8, names[kind], bits, 0);
    const int lane = s.cur & 31, seg = lane & ~(width - 1);
    int src = lane;
    switch (kind) {
    case SHFL_IDX:
        src = seg + (arg & (width - 1));
        break;
    case SHFL_UP:
        src = arg >= 0 && (lane - seg) >= arg ? lane - arg : lane;
        break;
    case SHFL_DOWN:
        src = arg >= 0 && (lane - seg) + arg < width ? lane + arg : lane;
        break;
    case SHFL_XOR:
        src = lane ^ arg;
        /* a later width-group (or outside the warp) gives the caller's own value */
        if (src < 0 || src > 31 || src > (seg | (width - 1))) src = lane;
        break;
    }
    if (!(mask >> src & 1u))
        thread_error("%s reads lane %d, which is not in the mask 0x%08x", names[kind],
                     src, mask);
    return s.w[s.cur >> 5].slot[gen & 1][src];
}

unsigned ballot(unsigned mask, int pred) {
    sched &s = in_kernel("__ballot_sync");
    const unsigned gen = warp_arrive(s, mask, kOpBallot, "__ballot_sync", 0, pred != 0);
    return s.w[s.cur >> 5].ballot_res[gen & 1] & mask;
}

unsigned activemask(void) {
    sched &s = in_kernel("__activemask");
    const warp_sync &ws = s.w[s.cur >> 5];
    return ws.present & ~ws.exited;
}

/* ---- controls (emu.h) ----------------------------------------------------------- */

void set_order(order o, unsigned seed) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_order = o;
    g_seed = seed;
}

void set_smem_optin(int bytes) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_optin = bytes;
}

void drop_sync_site(const std::string &site) {
    std::lock_guard<std::mutex> lock(g_mu);
    size_t colon = site.rfind(':');
    if (site.empty() || colon == std::string::npos) {
        g_drop_base.clear();
        g_drop_line = -1;
        return;
    }
    g_drop_base = site.substr(0, colon);
    g_drop_line = atoi(site.c_str() + colon + 1);
}

std::vector<site_count> sync_sites() {
    std::lock_guard<std::mutex> lock(g_mu);
    std::vector<site_count> v;
    for (const auto &kv : g_sites)
        v.push_back({kv.first.first + ":" + std::to_string(kv.first.second), kv.second});
    return v;
}

void reset_sync_sites() {
    std::lock_guard<std::mutex> lock(g_mu);
    g_sites.clear();
}

std::vector<std::string> errors() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_errors;
}

void clear_errors() {
    std::lock_guard<std::mutex> lock(g_mu);
    g_errors.clear();
}

stats get_stats() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_stats;
}

cudaError_t func_set_attribute(const void *fn, cudaFuncAttribute attr, int value) {
    std::lock_guard<std::mutex> lock(g_mu);
    cudaError_t e = cudaSuccess;
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > g_optin)
            e = cudaErrorInvalidValue;
        else
            g_func_smem[fn] = value;
    } else if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) {
        if (value < -1 || value > 100) e = cudaErrorInvalidValue;
    } else {
        e = cudaErrorInvalidValue;
    }
    set_last(e);
    return e;
}

} // namespace emu

/* ---- the runtime API ---------------------------------------------------------- */

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError:
        return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration:
        return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDeviceFunction:
        return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice:
        return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
        return "cudaErrorInvalidDevice";
    case cudaErrorIllegalAddress:
        return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources:
        return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure:
        return "cudaErrorLaunchFailure";
    }
    return "cudaError(unknown)";
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInitializationError:
        return "initialization error";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDeviceFunction:
        return "invalid device function";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorIllegalAddress:
        return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources:
        return "too many resources requested for launch";
    case cudaErrorLaunchFailure:
        return "unspecified launch failure (emulator: see the emulator's error list)";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu::t_last;
    emu::t_last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return emu::t_last; }

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev) {
    if (dev != 0) {
        emu::set_last(cudaErrorInvalidDevice);
        return cudaErrorInvalidDevice;
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev) {
    if (dev != 0) {
        emu::set_last(cudaErrorInvalidDevice);
        return cudaErrorInvalidDevice;
    }
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
        *value = 1024;
        break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
        *value = 48 * 1024;
        break;
    case cudaDevAttrClockRate:
        *value = 1980000;
        break;
    case cudaDevAttrMultiProcessorCount:
        *value = 132;
        break;
    case cudaDevAttrComputeCapabilityMajor:
        *value = 9;
        break;
    case cudaDevAttrComputeCapabilityMinor:
        *value = 0;
        break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: {
        std::lock_guard<std::mutex> lock(emu::g_mu);
        *value = emu::g_optin;
        break;
    }
    default:
        emu::set_last(cudaErrorInvalidValue);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = nullptr;
    if (bytes == 0) return cudaSuccess;
    void *m = nullptr;
    if (posix_memalign(&m, 256, bytes) != 0) {
        emu::set_last(cudaErrorMemoryAllocation);
        return cudaErrorMemoryAllocation;
    }
    std::lock_guard<std::mutex> lock(emu::g_mu);
    emu::g_allocs[(uintptr_t)m] = bytes;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(emu::g_mu);
        auto it = emu::g_allocs.find((uintptr_t)p);
        if (it == emu::g_allocs.end()) {
            emu::set_last(cudaErrorInvalidValue);
            return cudaErrorInvalidValue;
        }
        emu::g_allocs.erase(it);
    }
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
    if (bytes == 0) return cudaSuccess;
    if ((unsigned)kind > cudaMemcpyDefault || !dst || !src ||
        !emu::in_bounds(dst, bytes, "cudaMemcpy destination") ||
        !emu::in_bounds(src, bytes, "cudaMemcpy source")) {
        emu::set_last(cudaErrorInvalidValue);
        return cudaErrorInvalidValue;
    }
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {
        /* cudaMemcpy does not promise memmove semantics */
        emu::add_error("cudaMemcpy between overlapping ranges");
        emu::set_last(cudaErrorInvalidValue);
        return cudaErrorInvalidValue;
    }
    memcpy(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t) {
    if (bytes == 0) return cudaSuccess;
    if (!p || !emu::in_bounds(p, bytes, "cudaMemset")) {
        emu::set_last(cudaErrorInvalidValue);
        return cudaErrorInvalidValue;
    }
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    return cudaMemsetAsync(p, value, bytes, nullptr);
}

struct CUstream_st {
    int id;
};

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
    *s = new CUstream_st{1};
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
