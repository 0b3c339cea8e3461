// The Bayesian logistic-regression posterior of 003 Sec. 4.2 over an uploaded data target, as a density
// target ("blr"): sampled in theta = (w, log alpha), w in R^p, with
//   p(y_i | x_i, w) = Bernoulli(sigmoid(x_i . w)),  w | alpha ~ N(0, alpha^-1 I_p),  alpha ~ Gamma(a0, b0)
// (shape a0 = 1, rate b0 = 0.01 by default) and the log-Jacobian log alpha of alpha = e^s:
//   log q(w, s) = (n / B) sum_{i in batch} [y_i t_i - log(1 + e^{t_i})] - e^s (|w|^2 / 2 + b0) + s (p / 2 + a0),
// t_i = x_i . w, up to a constant. No intercept is added: give X a column of ones for one.
//
// The data target holds X and y as one N x (p + 1) array, the labels (0 or 1) in the last column.
// With `batch` B in 1..N-1 each evaluation uses B rows drawn without replacement, the likelihood scaled by
// N / B; the rows are chosen by a generator seeded from the bytes of the points evaluated, so the same
// points always see the same rows (LogDensity and Score of one state agree, runs are reproducible) while
// every new state sees a fresh batch. A minibatched density is a stochastic estimate: MALA and HMC on it do
// not target the exact posterior.
#ifndef SAMPLED_CORE_TARGETS_BLR_TARGET_H_
#define SAMPLED_CORE_TARGETS_BLR_TARGET_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/targets/target_family.h"

namespace sampled {

// The data and prior a BLR posterior is built from; shared (immutable) by the target and its autograd form.
struct BlrModel {
  Points features;           // X, n x p
  Eigen::VectorXd labels;    // y, n, each 0 or 1
  double prior_shape = 1.0;  // a0
  double prior_rate = 0.01;  // b0
  int64_t batch = 0;         // rows per evaluation; 0 (or >= n): all

  int64_t p() const { return features.cols(); }
  int64_t n() const { return features.rows(); }
  // The rows an evaluation at the points `x` (rows of theta, as doubles) uses: empty for all of them.
  std::vector<int64_t> BatchRows(const double* x, int64_t values) const;

  // What an evaluation at the points `x` uses: its rows of X and y and the likelihood's scale N / B (the
  // target and its autograd form both take it from here).
  struct Batch {
    Points x;
    Eigen::RowVectorXd y;
    double scale = 1.0;
  };
  Batch BatchAt(const double* x, int64_t values) const;
};

// The autograd form of the posterior's log density (torch_forms.cc).
std::shared_ptr<const TorchLogDensity> BlrTorchLogDensity(std::shared_ptr<const BlrModel> model);

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_BLR_TARGET_H_
