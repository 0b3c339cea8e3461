// A small multilayer perceptron R^d -> R at its initial weights, for the empirical neural tangent kernel
// K(x, y) = grad_beta f(x) . grad_beta f(y) that ntKiNG uses (000 Eq. 11, with the diagonal scalar-kernel
// form), in the NTK parameterisation: layer l computes W_l a / sqrt(fan_in_l) + b_l with W_l ~ N(0, 1), so
// K is of order one whatever the widths. Computed from the layers' activations and back-propagated deltas,
// without forming per-sample gradients.
#ifndef SAMPLED_CORE_FLOWS_NTK_MLP_H_
#define SAMPLED_CORE_FLOWS_NTK_MLP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/points.h"

namespace sampled {

enum class Activation { kTanh, kRelu, kSilu };

// Immutable after construction; thread-safe.
class NtkMlp {
 public:
  // Weights drawn from `seed` (stored as W_l / sqrt(fan_in), i.e. the equivalent standard-parameterisation
  // weights), biases 0.
  NtkMlp(int64_t input_dim, std::vector<int64_t> hidden, Activation activation, uint64_t seed);

  int64_t parameter_count() const { return parameters_; }
  // The layers (the last is the 1 x h output layer) and the network's output f(x) per row.
  const std::vector<MatrixXd>& weights() const { return weights_; }
  const std::vector<Eigen::VectorXd>& biases() const { return biases_; }
  Eigen::VectorXd Output(const Points& x) const;
  // The same network with other parameters (for tests that differentiate it numerically).
  NtkMlp WithParameters(std::vector<MatrixXd> weights, std::vector<Eigen::VectorXd> biases) const;
  // The n x n kernel matrix of the rows of x.
  MatrixXd Kernel(const Points& x) const;
  // The same in precision Scalar (float or double), its rows computed on `threads` threads (0: default).
  template <typename Scalar>
  void KernelInto(const Points& x, int threads, PointsT<Scalar>* out) const;

 private:
  std::vector<MatrixXd> weights_;  // layer l: h_l x h_{l-1}; the last is the 1 x h_L output layer
  std::vector<Eigen::VectorXd> biases_;
  Activation activation_;
  int64_t parameters_ = 0;
};

// "64,64" -> {64, 64}; INVALID_ARGUMENT for anything but positive integers.
absl::StatusOr<std::vector<int64_t>> ParseHidden(const std::string& text);
absl::StatusOr<Activation> ParseActivation(const std::string& name);

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_NTK_MLP_H_
