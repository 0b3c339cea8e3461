#include "core/common/torch_runtime.h"

#include <algorithm>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "core/common/parallel.h"

namespace sampled {

void ConfigureComputeThreads(int threads) {
  threads = std::max(1, threads);
  at::set_num_threads(threads);
  SetDefaultComputeThreads(threads);
}

std::string TorchVersion() { return TORCH_VERSION; }

}  // namespace sampled
