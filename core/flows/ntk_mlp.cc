#include "core/flows/ntk_mlp.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/rng.h"

namespace sampled {
namespace {

MatrixXd Apply(Activation a, const MatrixXd& z) {
  switch (a) {
    case Activation::kTanh: return z.array().tanh().matrix();
    case Activation::kRelu: return z.array().max(0.0).matrix();
    case Activation::kSilu: return (z.array() / (1.0 + (-z.array()).exp())).matrix();
  }
  return z;
}

MatrixXd Derivative(Activation a, const MatrixXd& z) {
  switch (a) {
    case Activation::kTanh: return (1.0 - z.array().tanh().square()).matrix();
    case Activation::kRelu: return (z.array() > 0).cast<double>().matrix();
    case Activation::kSilu: {
      const Eigen::ArrayXXd s = 1.0 / (1.0 + (-z.array()).exp());
      return (s + z.array() * s * (1.0 - s)).matrix();
    }
  }
  return z;
}

}  // namespace

NtkMlp::NtkMlp(int64_t input_dim, std::vector<int64_t> hidden, Activation activation, uint64_t seed)
    : activation_(activation) {
  Rng rng(seed);
  int64_t fan_in = input_dim;
  hidden.push_back(1);  // the scalar output layer
  for (int64_t width : hidden) {
    MatrixXd w(width, fan_in);
    rng.FillNormal(w.data(), w.size());
    w /= std::sqrt(static_cast<double>(fan_in));
    weights_.push_back(std::move(w));
    biases_.push_back(Eigen::VectorXd::Zero(width));
    parameters_ += width * fan_in + width;
    fan_in = width;
  }
}

Eigen::VectorXd NtkMlp::Output(const Points& x) const {
  MatrixXd a = x;
  for (size_t l = 0; l + 1 < weights_.size(); ++l) {
    a = Apply(activation_, (a * weights_[l].transpose()).rowwise() + biases_[l].transpose());
  }
  return (a * weights_.back().transpose()).col(0).array() + biases_.back()(0);
}

NtkMlp NtkMlp::WithParameters(std::vector<MatrixXd> weights, std::vector<Eigen::VectorXd> biases) const {
  NtkMlp copy = *this;
  copy.weights_ = std::move(weights);
  copy.biases_ = std::move(biases);
  return copy;
}

MatrixXd NtkMlp::Kernel(const Points& x) const {
  const int64_t n = x.rows(), layers = static_cast<int64_t>(weights_.size());
  // Forward: inputs[l] feeds layer l; pre[l] is its pre-activation (hidden layers only).
  std::vector<MatrixXd> inputs(layers), pre(layers - 1);
  inputs[0] = x;
  for (int64_t l = 0; l + 1 < layers; ++l) {
    pre[l] = (inputs[l] * weights_[l].transpose()).rowwise() + biases_[l].transpose();
    inputs[l + 1] = Apply(activation_, pre[l]);
  }
  // Backward: delta of the output layer is 1 for every sample; delta_l = (delta_{l+1} W_{l+1}) * sigma'(pre_l).
  // d f / d W_l = delta_l^T inputs_l and d f / d b_l = delta_l per sample, so
  // K = sum_l (delta_l delta_l^T) .* (inputs_l inputs_l^T + 1).
  // In the NTK parameterisation (Jacot et al. 2018) the weights of layer l carry a factor 1/sqrt(fan_in):
  // the same network, with the gradient of W_l scaled by that factor, so the gram term is divided by fan_in
  // and K stays of order one whatever the widths.
  MatrixXd delta = MatrixXd::Ones(n, 1);
  MatrixXd k = MatrixXd::Zero(n, n);
  for (int64_t l = layers - 1; l >= 0; --l) {
    const MatrixXd gram = inputs[l] * inputs[l].transpose() / static_cast<double>(inputs[l].cols());
    k.array() += (delta * delta.transpose()).array() * (gram.array() + 1.0);
    if (l > 0) delta = (delta * weights_[l]).cwiseProduct(Derivative(activation_, pre[l - 1]));
  }
  return k;
}

absl::StatusOr<std::vector<int64_t>> ParseHidden(const std::string& text) {
  std::vector<int64_t> widths;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t w;
    if (!absl::SimpleAtoi(part, &w) || w < 1 || w > 100000) {
      return absl::InvalidArgumentError(absl::StrCat("option 'hidden': '", part, "' is not a layer width"));
    }
    widths.push_back(w);
  }
  if (widths.empty()) return absl::InvalidArgumentError("option 'hidden': give at least one layer width, e.g. 64,64");
  return widths;
}

absl::StatusOr<Activation> ParseActivation(const std::string& name) {
  if (name == "tanh") return Activation::kTanh;
  if (name == "relu") return Activation::kRelu;
  if (name == "silu") return Activation::kSilu;
  return absl::InvalidArgumentError(absl::StrCat("option 'activation': '", name, "' is not tanh, relu or silu"));
}

}  // namespace sampled
