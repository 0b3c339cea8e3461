// The process's LibTorch settings, applied once from configuration. The only place core/ talks to the
// Torch runtime directly; model code (later) goes through it too.
#ifndef SAMPLED_CORE_COMMON_TORCH_RUNTIME_H_
#define SAMPLED_CORE_COMMON_TORCH_RUNTIME_H_

#include <string>

namespace sampled {

// Sets LibTorch's intra-op thread count (LibTorch 1.13 defaults to 1 on a 2-core machine) and the thread
// count of our own kernels to `threads` (>= 1). Call once at start-up, before any work.
void ConfigureComputeThreads(int threads);

// LibTorch's version string, for build info.
std::string TorchVersion();

// The BLAS this process mapped: Debian's LibTorch calls whatever libblas.so.3 the system's alternatives
// point at. `name` is "openblas", "blis", "mkl", "reference" (netlib's, 30-50x slower matrix products) or
// "unknown"; `path` is the mapped file ("" when none was found).
struct BlasInfo {
  std::string name;
  std::string path;
};
BlasInfo MappedBlas();

}  // namespace sampled

#endif  // SAMPLED_CORE_COMMON_TORCH_RUNTIME_H_
