#include "core/common/parallel.h"

#include <algorithm>
#include <atomic>

#include <omp.h>

namespace sampled {
namespace {
std::atomic<int> default_threads{1};
}  // namespace

void SetDefaultComputeThreads(int threads) { default_threads.store(std::max(1, threads)); }
int DefaultComputeThreads() { return default_threads.load(); }
int ResolveThreads(int threads) { return threads > 0 ? threads : DefaultComputeThreads(); }

void ParallelFor(int64_t n, int64_t grain, int threads,
                 absl::FunctionRef<void(int64_t, int64_t, int)> fn) {
  if (n <= 0) return;
  threads = ResolveThreads(threads);
  grain = std::max<int64_t>(1, grain);
  const int64_t blocks = (n + grain - 1) / grain;
  const int team = static_cast<int>(std::min<int64_t>(threads, blocks));
  if (team <= 1) {
    for (int64_t b = 0; b < blocks; ++b) fn(b * grain, std::min(n, (b + 1) * grain), 0);
    return;
  }
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; ++b) {
    fn(b * grain, std::min(n, (b + 1) * grain), omp_get_thread_num());
  }
}

}  // namespace sampled
