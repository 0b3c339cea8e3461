#include "core/common/torch_runtime.h"

#include <algorithm>
#include <fstream>
#include <string>

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

BlasInfo MappedBlas() {
  // The folder of the mapped file names the implementation (Debian: openblas-pthread/, blis-openmp/,
  // blas/ for the reference), as ../shared/bench/peer_flows.py reads it.
  std::ifstream maps("/proc/self/maps");
  std::string line;
  BlasInfo found{"unknown", ""};
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("libblas.so") == std::string::npos && path.find("libopenblas") == std::string::npos &&
        path.find("mkl") == std::string::npos) {
      continue;
    }
    for (const auto& [key, name] : {std::pair<const char*, const char*>{"openblas", "openblas"},
                                    {"blis", "blis"}, {"mkl", "mkl"}, {"/blas/", "reference"}}) {
      if (path.find(key) != std::string::npos) return {name, path};
    }
    found.path = path;
  }
  return found;
}

}  // namespace sampled
