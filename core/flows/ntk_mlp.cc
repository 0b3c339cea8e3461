#include "core/flows/ntk_mlp.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/common/parallel.h"
#include "core/common/rng.h"

namespace sampled {
namespace {

template <typename S>
using Mat = PointsT<S>;

template <typename S>
Mat<S> Apply(Activation a, const Mat<S>& z) {
  switch (a) {
    case Activation::kTanh: return z.array().tanh().matrix();
    case Activation::kRelu: return z.array().max(S(0)).matrix();
    case Activation::kSilu: return (z.array() / (S(1) + (-z.array()).exp())).matrix();
  }
  return z;
}

template <typename S>
Mat<S> Derivative(Activation a, const Mat<S>& z) {
  switch (a) {
    case Activation::kTanh: return (S(1) - z.array().tanh().square()).matrix();
    case Activation::kRelu: return (z.array() > S(0)).template cast<S>().matrix();
    case Activation::kSilu: {
      const Eigen::Array<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> sig = S(1) / (S(1) + (-z.array()).exp());
      return (sig + z.array() * sig * (S(1) - sig)).matrix();
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
  Points a = x;
  for (size_t l = 0; l + 1 < weights_.size(); ++l) {
    a = Apply<double>(activation_, (a * weights_[l].transpose()).rowwise() + biases_[l].transpose());
  }
  return (a * weights_.back().transpose()).col(0).array() + biases_.back()(0);
}

NtkMlp NtkMlp::WithParameters(std::vector<MatrixXd> weights, std::vector<Eigen::VectorXd> biases) const {
  NtkMlp copy = *this;
  copy.weights_ = std::move(weights);
  copy.biases_ = std::move(biases);
  return copy;
}

template <typename S>
void NtkMlp::KernelInto(const Points& x, int threads, PointsT<S>* out) const {
  const int64_t n = x.rows(), layers = static_cast<int64_t>(weights_.size());
  // Forward: inputs[l] feeds layer l; pre[l] is its pre-activation (hidden layers only).
  std::vector<Mat<S>> inputs(layers), pre(layers - 1), deltas(layers);
  inputs[0] = x.template cast<S>();
  for (int64_t l = 0; l + 1 < layers; ++l) {
    const Mat<S> w = weights_[l].template cast<S>();
    pre[l] = (inputs[l] * w.transpose()).rowwise() + biases_[l].transpose().template cast<S>();
    inputs[l + 1] = Apply(activation_, pre[l]);
  }
  // Backward: delta of the output layer is 1 for every sample; delta_l = (delta_{l+1} W_{l+1}) * sigma'(pre_l).
  // d f / d W_l = delta_l^T inputs_l and d f / d b_l = delta_l per sample, so
  // K = sum_l (delta_l delta_l^T) .* (inputs_l inputs_l^T + 1).
  // In the NTK parameterisation (Jacot et al. 2018) the weights of layer l carry a factor 1/sqrt(fan_in):
  // the same network, with the gradient of W_l scaled by that factor, so the gram term is divided by fan_in
  // and K stays of order one whatever the widths.
  deltas[layers - 1] = Mat<S>::Ones(n, 1);
  for (int64_t l = layers - 1; l > 0; --l) {
    deltas[l - 1] = (deltas[l] * weights_[l].template cast<S>()).cwiseProduct(Derivative(activation_, pre[l - 1]));
  }
  // The n x n sums by blocks of rows (each block's result depends only on its rows: thread-count free).
  out->resize(n, n);
  ParallelFor(n, 64, threads, [&](int64_t i0, int64_t i1, int) {
    const int64_t r = i1 - i0;
    Mat<S> dd(r, n), gram(r, n);
    auto block = out->middleRows(i0, r);
    block.setZero();
    for (int64_t l = layers - 1; l >= 0; --l) {
      dd.noalias() = deltas[l].middleRows(i0, r) * deltas[l].transpose();
      gram.noalias() = inputs[l].middleRows(i0, r) * inputs[l].transpose();
      block.array() += dd.array() * (gram.array() / static_cast<S>(inputs[l].cols()) + S(1));
    }
  });
}

MatrixXd NtkMlp::Kernel(const Points& x) const {
  Points k;
  KernelInto(x, 1, &k);
  return k;
}

template void NtkMlp::KernelInto<float>(const Points&, int, PointsF*) const;
template void NtkMlp::KernelInto<double>(const Points&, int, Points*) const;

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
