// Data-parallel loops for the numerical kernels. The range is cut into fixed blocks of `grain` items that
// threads take dynamically (a slow second vCPU does not hold the step back); a block's result must not
// depend on which thread computed it, so outputs do not depend on the thread count or on scheduling and
// a seeded flow gives the same particles on every run.
#ifndef SAMPLED_CORE_COMMON_PARALLEL_H_
#define SAMPLED_CORE_COMMON_PARALLEL_H_

#include <cstdint>

#include "absl/functional/function_ref.h"

namespace sampled {

// Calls fn(begin, end, thread_index) for the blocks [k*grain, min(n, (k+1)*grain)) of [0, n), on at most
// `threads` threads (0: DefaultComputeThreads()); thread_index < the thread count, so per-thread scratch
// can be indexed by it. Runs the blocks in order on the calling thread when there is one thread or one
// block. The blocks run with denormals flushed to zero (values below FLT_MIN / DBL_MIN become 0: as
// operands they cost ~100 cycles each). Thread-safe; fn must only write state owned by its block or its thread_index. Allocates nothing
// (fn is borrowed, not copied; the OpenMP team is reused). An exception fn throws (std::bad_alloc, ...)
// reaches the caller: the first one is rethrown after the blocks already running end, the rest skipped.
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
