#include "core/training/adam.h"

#include <cmath>

namespace sampled::training {

void AdamStep(const AdamConfig& config, const std::vector<float>& grad, AdamState& state, std::vector<float>& params) {
  const size_t n = params.size();
  if (state.m.size() != n) {
    state.m.assign(n, 0.0f);
    state.v.assign(n, 0.0f);
    state.t = 0;
  }
  ++state.t;
  const double bias1 = 1.0 - std::pow(config.beta1, static_cast<double>(state.t));
  const double bias2 = 1.0 - std::pow(config.beta2, static_cast<double>(state.t));
  const float step_size = static_cast<float>(config.lr / bias1);
  const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  const float b1 = static_cast<float>(config.beta1), b2 = static_cast<float>(config.beta2);
  const float eps = static_cast<float>(config.eps);
  float* m = state.m.data();
  float* v = state.v.data();
  float* p = params.data();
  const float* g = grad.data();
  // torch: m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2); p.addcdiv_(m, v.sqrt() / bias2_sqrt + eps, -step)
  for (size_t i = 0; i < n; ++i) {
    m[i] += (g[i] - m[i]) * (1.0f - b1);
    v[i] = v[i] * b2 + (1.0f - b2) * g[i] * g[i];
    const float denom = std::sqrt(v[i]) / bias2_sqrt + eps;
    p[i] -= step_size * (m[i] / denom);
  }
}

}  // namespace sampled::training
