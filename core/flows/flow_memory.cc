#include "core/flows/flow_memory.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "core/flows/ntk_mlp.h"
#include "core/flows/options.h"

namespace sampled {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Saturating arithmetic: estimates of absurd requests must come out large, never negative.
int64_t Mul(int64_t a, int64_t b) {
  if (a <= 0 || b <= 0) return 0;
  return a > kMax / b ? kMax : a * b;
}
int64_t Add(int64_t a, int64_t b) { return a > kMax - b ? kMax : a + b; }

}  // namespace

int64_t EstimateFlowBytes(const FlowConfig& config, const Target& target, int64_t particles) {
  const int64_t m = std::max<int64_t>(particles, 1);
  const int64_t d = std::max<int64_t>(target.dim(), 1);
  const int64_t n = target.samples() != nullptr ? target.samples()->rows() : 0;
  const int64_t md = Mul(m, d);
  // Every method keeps up to ten particle-sized buffers (state, next, displacement, direction, memory,
  // scores, noise, ...) in float64, and the kernel flows two float64 copies of the targets (centred).
  int64_t bytes = Mul(md, 10 * 8);
  bytes = Add(bytes, Mul(Mul(n, d), 2 * 8));
  const std::string& method = config.method;
  if (method == "king" || method == "ntking" || method == "stein-king") {
    // Read as the methods read them (OptionReader, ParseHidden); a bad value counts as the default.
    OptionReader options(config.options, method);
    const int64_t default_basis = method == "stein-king" ? 50 : 200;
    const int64_t basis = options.Int("basis", default_basis, 1, 100000).value_or(default_basis);
    // Statistics per particle: the basis functions, plus the Gaussian's d + d(d+1)/2 as an upper bound.
    const int64_t k = Add(basis, Add(d, Mul(d, d + 1) / 2));
    const int64_t stats = method == "stein-king" ? Mul(d, basis) : k;
    // Values and Jacobians (M x K x d) of the statistics at the particles and the targets, their K x K
    // products.
    bytes = Add(bytes, Mul(Mul(Add(m, n), stats), Mul(d + 1, 8)));
    bytes = Add(bytes, Mul(Mul(stats, stats), 3 * 8));
    if (method == "ntking") {
      // The NTK Gram matrix over the particles (M x M, float64 and float32) and the MLP's activations.
      const std::vector<int64_t> hidden =
          ParseHidden(options.String("hidden", "64,64").value_or("64,64")).value_or(std::vector<int64_t>{64, 64});
      int64_t width = 0;
      for (int64_t w : hidden) width = Add(width, w);
      bytes = Add(bytes, Mul(Mul(m, m), 8 + 4));
      bytes = Add(bytes, Mul(Mul(m, Add(width, d)), 4 * 8));
      bytes = Add(bytes, Mul(Mul(m, 64), 2 * 8 * 2));  // per-thread row blocks of the sums (64 x M, two)
    }
  }
  return bytes;
}

}  // namespace sampled
