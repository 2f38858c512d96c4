/* tests/cuda_emu/emu.h — controls of the CUDA emulation for the tests
 * (tests/cuda_emu/README.md). The CUDA API the kernels see is in
 * include/cuda_runtime.h; this is the harness's side: scheduling order,
 * device limits, barrier sites, the emulator's own error list, statistics.
 */
#ifndef LLMPI_EMU_H
#define LLMPI_EMU_H

#include <string>
#include <vector>

namespace emu {

/* The order in which the scheduler runs the blocks of a grid, the warps of
 * a block and the lanes of a warp: forward (0, 1, ...), reverse, or a
 * permutation drawn from `seed` for each block / pass. A correct kernel
 * gives bitwise the same results in every order. */
enum class order { forward, reverse, shuffled };
void set_order(order o, unsigned seed = 0);

/* cudaDevAttrMaxSharedMemoryPerBlockOptin of the emulated device (default
 * 232448 = 227 KB, sm_90; sm_80 has 166912, sm_86/sm_89 101376). */
void set_smem_optin(int bytes);

/* A barrier site is "file:line" of a plain __syncthreads(), with the file's
 * base name, e.g. "attention.cu:178" (one site per line). drop_sync_site
 * makes that __syncthreads a no-op (the barrier-removal test); "" drops
 * none. (__syncthreads_or and the like are not sites: they carry a value.) */
void drop_sync_site(const std::string &site);
struct site_count {
    std::string site;
    unsigned long long count; /* block-wide arrivals completed */
};
/* every site that completed a barrier since the last reset, sorted */
std::vector<site_count> sync_sites();
void reset_sync_sites();

/* Errors the emulator detected (a deadlocked block, a shuffle naming an
 * exited lane, a write past the dynamic shared memory, ...), each failing
 * its launch with cudaErrorLaunchFailure. */
std::vector<std::string> errors();
void clear_errors();

struct stats {
    unsigned long long launches, blocks, threads, switches;
};
stats get_stats();

} // namespace emu

/* The backend state ops_cuda.cu would provide (emu_backend.cpp) */
extern "C" void emu_cuda_clear_error(void);

#endif
