// Data-parallel loops for the numerical kernels. The range is cut into fixed blocks of `grain` items that
// threads take dynamically (a slow second vCPU does not hold the step back); a block's result must not
// depend on which thread computed it, so outputs do not depend on the thread count or on scheduling and
// a seeded flow gives the same particles on every run.
#ifndef SAMPLED_CORE_COMMON_PARALLEL_H_
#define SAMPLED_CORE_COMMON_PARALLEL_H_

#include <atomic>
#include <cstdint>
#include <exception>

#include "absl/functional/function_ref.h"

namespace sampled {

// Thrown by ParallelFor on the calling thread when the thread's stop flag (ScopedStopFlag) is set: the
// blocks already running end, the rest are skipped. A flow or training step computes into scratch and
// commits at its end, so a step stopped this way leaves its state as it was.
struct StopRequested : std::exception {
  const char* what() const noexcept override { return "stopped on request"; }
};

// While in scope, ParallelFor calls on this thread poll `flag` before each block (a relaxed load) and
// throw StopRequested once it is true: how a cancel or a shutdown stops a long step between blocks.
// Nests (the innermost flag applies); `flag` must outlive the scope.
class ScopedStopFlag {
 public:
  explicit ScopedStopFlag(const std::atomic<bool>* flag);
  ~ScopedStopFlag();
  ScopedStopFlag(const ScopedStopFlag&) = delete;
  ScopedStopFlag& operator=(const ScopedStopFlag&) = delete;

 private:
  const std::atomic<bool>* previous_;
};

// Throws StopRequested when the calling thread's stop flag is set (for loops that do not use ParallelFor).
void ThrowIfStopRequested();

// Calls fn(begin, end, thread_index) for the blocks [k*grain, min(n, (k+1)*grain)) of [0, n), on at most
// `threads` threads (0: DefaultComputeThreads()); thread_index < the thread count, so per-thread scratch
// can be indexed by it. Runs the blocks in order on the calling thread when there is one thread or one
// block. The blocks run with denormals flushed to zero (values below FLT_MIN / DBL_MIN become 0: as
// operands they cost ~100 cycles each). Thread-safe; fn must only write state owned by its block or its thread_index. Allocates nothing
// (fn is borrowed, not copied; the OpenMP team is reused). An exception fn throws (std::bad_alloc, ...)
// reaches the caller: the first one is rethrown after the blocks already running end, the rest skipped.
// Polls the calling thread's stop flag before each block (see ScopedStopFlag).
void ParallelFor(int64_t n, int64_t grain, int threads,
                 absl::FunctionRef<void(int64_t begin, int64_t end, int thread_index)> fn);

// The number of threads ParallelFor uses for `threads` (resolves 0 to the default).
int ResolveThreads(int threads);

// Threads the kernels use when a caller passes threads = 0: set once at start-up from configuration
// (the server's --torch-threads), 1 until then.
void SetDefaultComputeThreads(int threads);
int DefaultComputeThreads();

}  // namespace sampled

#endif  // SAMPLED_CORE_COMMON_PARALLEL_H_
