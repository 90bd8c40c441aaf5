// Host emulation of the CUDA C subset kernels.cu uses, so that the same source runs on a CPU
// under g++ (tests and sanitizer builds; never used on a GPU).
//
// Two ways to run a block's threads:
// - default: cooperative fibers (ucontext), one block after another. __syncthreads switches
//   fibers; fast and deterministic. A barrier reached by only some threads of a block
//   aborts with a message, as it would hang or misbehave on a GPU.
// - EMULATION_OS_THREADS: one std::thread per CUDA thread, every block at once, a
//   std::barrier per block. Slow, but real concurrency, for ThreadSanitizer and
//   AddressSanitizer builds (which do not follow fiber stack switches).
// Shared memory is poisoned (all bits set: NaN for floats) before every block, so a kernel
// that reads what it never wrote produces NaNs the tests see.
#pragma once
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>
#ifndef EMULATION_OS_THREADS
#include <ucontext.h>
#endif

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

using std::exp;
using std::log;
using std::log1p;
using std::pow;
using std::sqrt;

typedef _Float16 __half;
inline float __half2float(__half v) { return static_cast<float>(v); }
struct __nv_bfloat16 {
    std::uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 v) {
    const std::uint32_t word = static_cast<std::uint32_t>(v.bits) << 16;
    float out;
    std::memcpy(&out, &word, sizeof out);
    return out;
}

namespace emulation {
[[noreturn]] inline void fail(const char* message) {
    std::fprintf(stderr, "cuda emulation: %s\n", message);
    std::abort();
}

struct SharedBlock {
    std::vector<std::max_align_t> words;
    void poison(size_t bytes) {
        words.assign(bytes / sizeof(std::max_align_t) + 1, std::max_align_t{});
        std::memset(static_cast<void*>(words.data()), 0xFF, words.size() * sizeof(std::max_align_t));
    }
    unsigned char* data() { return reinterpret_cast<unsigned char*>(words.data()); }
};

#ifdef EMULATION_OS_THREADS
inline std::vector<SharedBlock> shared_blocks;
inline std::vector<std::unique_ptr<std::barrier<>>> block_barriers;
inline unsigned char* shared_memory() { return shared_blocks[blockIdx.x].data(); }
inline void sync_block() { block_barriers[blockIdx.x]->arrive_and_wait(); }

inline void run_grid(unsigned grid, unsigned block, size_t smem, const std::function<void()>& body) {
    shared_blocks.assign(grid, SharedBlock{});
    block_barriers.clear();
    for (unsigned b = 0; b < grid; ++b) {
        shared_blocks[b].poison(smem);
        block_barriers.push_back(std::make_unique<std::barrier<>>(block));
    }
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(grid) * block);
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([&body, b, t] {
                blockIdx = {b, 0, 0};
                threadIdx = {t, 0, 0};
                body();
            });
    for (auto& thread : threads) thread.join();
}
#else
enum class FiberState { ready, at_barrier, done };
constexpr size_t kFiberStack = 256 * 1024;

struct Fiber {
    ucontext_t context;
    std::unique_ptr<char[]> stack;
    FiberState state = FiberState::ready;
};

inline SharedBlock current_shared;
inline std::vector<Fiber> fibers;
inline ucontext_t scheduler;
inline Fiber* running = nullptr;
inline const std::function<void()>* current_body = nullptr;

inline unsigned char* shared_memory() { return current_shared.data(); }

inline void sync_block() {
    Fiber* self = running;
    self->state = FiberState::at_barrier;
    swapcontext(&self->context, &scheduler);
}

inline void fiber_entry() {
    (*current_body)();
    running->state = FiberState::done;  // uc_link returns to the scheduler
}

inline void run_grid(unsigned grid, unsigned block, size_t smem, const std::function<void()>& body) {
    current_body = &body;
    if (fibers.size() < block) fibers.resize(block);
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        current_shared.poison(smem);
        for (unsigned t = 0; t < block; ++t) {
            Fiber& fiber = fibers[t];
            if (!fiber.stack) fiber.stack = std::make_unique<char[]>(kFiberStack);
            getcontext(&fiber.context);
            fiber.context.uc_stack.ss_sp = fiber.stack.get();
            fiber.context.uc_stack.ss_size = kFiberStack;
            fiber.context.uc_link = &scheduler;
            makecontext(&fiber.context, fiber_entry, 0);
            fiber.state = FiberState::ready;
        }
        for (;;) {
            for (unsigned t = 0; t < block; ++t) {
                Fiber& fiber = fibers[t];
                if (fiber.state == FiberState::done) continue;
                fiber.state = FiberState::ready;
                threadIdx = {t, 0, 0};
                running = &fiber;
                swapcontext(&scheduler, &fiber.context);
            }
            unsigned done = 0, waiting = 0;
            for (unsigned t = 0; t < block; ++t) {
                done += fibers[t].state == FiberState::done;
                waiting += fibers[t].state == FiberState::at_barrier;
            }
            if (done == block) break;
            if (waiting != block) fail("__syncthreads reached by only some threads of a block");
        }
    }
    running = nullptr;
}
#endif
}  // namespace emulation

inline void __syncthreads() { emulation::sync_block(); }

// Device atomics: std::atomic_ref, so that OS-thread builds see real atomic operations.
template <typename T>
inline T atomicAdd(T* address, T value) {
    std::atomic_ref<T> target(*address);
    T old = target.load();
    while (!target.compare_exchange_weak(old, old + value)) {
    }
    return old;
}
inline int atomicExch(int* address, int value) { return std::atomic_ref<int>(*address).exchange(value); }

#define SHARED_MEMORY(T, name) T* name = reinterpret_cast<T*>(emulation::shared_memory())

// kernel<<<grid, block, smem>>>(args...) for one-dimensional launches.
template <typename... P, typename... A>
void emulated_launch(void (*kernel)(P...), unsigned grid, unsigned block, size_t smem, A... args) {
    if (grid == 0 || block == 0) emulation::fail("empty launch");
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    const std::function<void()> body = [&] { kernel(args...); };
    emulation::run_grid(grid, block, smem, body);
}

// cuLaunchKernel's calling convention: params[i] points at argument i. The Python launcher
// packs arguments once this way for both backends.
template <typename... P, std::size_t... I>
void emulated_launch_params(void (*kernel)(P...), unsigned grid, unsigned block, size_t smem,
                            void** params, std::index_sequence<I...>) {
    emulated_launch(kernel, grid, block, smem, *static_cast<std::remove_reference_t<P>*>(params[I])...);
}
template <typename... P>
void emulated_launch_params(void (*kernel)(P...), unsigned grid, unsigned block, size_t smem,
                            void** params) {
    emulated_launch_params(kernel, grid, block, smem, params, std::index_sequence_for<P...>{});
}
