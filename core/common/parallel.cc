#include "core/common/parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>

#include <omp.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace sampled {
namespace {
std::atomic<int> default_threads{1};
thread_local const std::atomic<bool>* stop_flag = nullptr;

bool Stopped(const std::atomic<bool>* flag) { return flag != nullptr && flag->load(std::memory_order_relaxed); }

// Flush-to-zero and denormals-are-zero while a block runs, the previous mode restored after. Values below
// FLT_MIN (1.2e-38; DBL_MIN in float64) are noise beside the kernel sums' and solves' magnitudes, but as
// operands or results they take a microcode assist of ~100 cycles each: a KiNG step whose particles had
// spread out ran 2.2x slower (29 ms instead of 13 at 1024 x 1024 in 2-D) on float32 kernel weights of
// 1e-40. Every block runs under the same mode, so results still do not depend on the thread count.
class ScopedFlushDenormals {
 public:
#if defined(__SSE__)
  ScopedFlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushBits); }
  ~ScopedFlushDenormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFlushBits = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
  unsigned saved_;
#endif
};

}  // namespace

ScopedStopFlag::ScopedStopFlag(const std::atomic<bool>* flag) : previous_(stop_flag) { stop_flag = flag; }
ScopedStopFlag::~ScopedStopFlag() { stop_flag = previous_; }

void ThrowIfStopRequested() {
  if (Stopped(stop_flag)) throw StopRequested();
}

void SetDefaultComputeThreads(int threads) { default_threads.store(std::max(1, threads)); }
int DefaultComputeThreads() { return default_threads.load(); }
int ResolveThreads(int threads) { return threads > 0 ? threads : DefaultComputeThreads(); }

void ParallelFor(int64_t n, int64_t grain, int threads,
                 absl::FunctionRef<void(int64_t, int64_t, int)> fn) {
  if (n <= 0) return;
  threads = ResolveThreads(threads);
  grain = std::max<int64_t>(1, grain);
  const int64_t blocks = (n + grain - 1) / grain;
#ifdef SAMPLED_SERIAL_PARALLEL_FOR
  // The TSan build (deploy/sanitizers.sh): Debian's libgomp is not instrumented, so its team's
  // synchronisation would be reported as races; the blocks run in order on the calling thread.
  const int team = 1;
  (void)threads;
#else
  const int team = static_cast<int>(std::min<int64_t>(threads, blocks));
#endif
  const std::atomic<bool>* stop = stop_flag;  // the caller's: the team's threads have their own
  if (team <= 1) {
    ScopedFlushDenormals flush;
    for (int64_t b = 0; b < blocks; ++b) {
      if (Stopped(stop)) throw StopRequested();
      fn(b * grain, std::min(n, (b + 1) * grain), 0);
    }
    return;
  }
  // An exception must not leave an OpenMP region (that is std::terminate): the first one a block throws
  // (std::bad_alloc from a workspace, say) is kept, the blocks not yet started are skipped, and it is
  // rethrown on the calling thread once the team is done.
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(team)
  {
    ScopedFlushDenormals flush;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      if (failed.load(std::memory_order_relaxed)) continue;
      if (Stopped(stop)) {
        failed.store(true, std::memory_order_relaxed);
        continue;
      }
      try {
        fn(b * grain, std::min(n, (b + 1) * grain), omp_get_thread_num());
      } catch (...) {
#pragma omp critical(sampled_parallel_for_error)
        {
          if (!error) error = std::current_exception();
        }
        failed.store(true, std::memory_order_relaxed);
      }
    }
  }
  if (error) std::rethrow_exception(error);
  if (failed.load() && Stopped(stop)) throw StopRequested();
}

}  // namespace sampled
