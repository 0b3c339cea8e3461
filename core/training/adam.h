// Adam (Kingma and Ba 2015) with torch.optim.Adam's arithmetic, in float32: the optimiser of 003 Sec. 4.1
// for both networks. Its moments are part of the training state.
#ifndef SAMPLED_CORE_TRAINING_ADAM_H_
#define SAMPLED_CORE_TRAINING_ADAM_H_

#include <cstdint>
#include <vector>

namespace sampled::training {

struct AdamConfig {
  double lr = 2e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

struct AdamState {
  std::vector<float> m, v;  // first and second moments (empty before the first step)
  int64_t t = 0;            // steps taken
  friend bool operator==(const AdamState& a, const AdamState& b) { return a.m == b.m && a.v == b.v && a.t == b.t; }
};

// One step on `params` with gradient `grad` (same length):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// as torch computes it (bias corrections in double, the update in float32).
void AdamStep(const AdamConfig& config, const std::vector<float>& grad, AdamState& state, std::vector<float>& params);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_ADAM_H_
