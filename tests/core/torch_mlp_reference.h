// Test helpers: a float64 LibTorch copy of an MLP (autograd is the reference for our hand-written
// derivatives) and conversions between our arrays and tensors.
#ifndef SAMPLED_TESTS_CORE_TORCH_MLP_REFERENCE_H_
#define SAMPLED_TESTS_CORE_TORCH_MLP_REFERENCE_H_

#include <cstdint>
#include <type_traits>
#include <vector>

#include <torch/torch.h>

#include "core/common/rng.h"
#include "core/training/mlp.h"

namespace sampled::training {

inline PointsF Random(int64_t rows, int64_t cols, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  PointsF m(rows, cols);
  rng.FillNormal(m.data(), m.size());
  return m * scale;
}

template <typename T>
torch::Tensor ToTorch(const PointsT<T>& m) {
  const auto type = std::is_same_v<T, float> ? torch::kFloat32 : torch::kFloat64;
  return torch::from_blob(const_cast<T*>(m.data()), {m.rows(), m.cols()}, type).to(torch::kFloat64).clone();
}

inline torch::Tensor Act(Activation a, const torch::Tensor& x) {
  switch (a) {
    case Activation::kElu: return torch::elu(x);
    case Activation::kGelu: return torch::gelu(x);
    case Activation::kSilu: return torch::silu(x);
    case Activation::kTanh: return torch::tanh(x);
    case Activation::kLeakyRelu: return torch::leaky_relu(x, 0.2);
  }
  return x;
}

// The reference: the same network in float64 LibTorch with autograd.
struct Reference {
  std::vector<torch::Tensor> w, b;
  torch::Tensor Forward(const torch::Tensor& x, const MlpShape& s) const {
    torch::Tensor h = x;
    for (int64_t l = 0; l < s.layers(); ++l) {
      h = torch::matmul(h, w[l].t()) + b[l];
      if (l + 1 < s.layers()) h = Act(s.activation, h);
    }
    return h;
  }
};

template <typename T>
Reference MakeReference(const MlpShape& s, const std::vector<T>& p) {
  Reference r;
  for (int64_t l = 0; l < s.layers(); ++l) {
    std::vector<double> w(p.begin() + s.weight_offset(l), p.begin() + s.bias_offset(l));
    std::vector<double> b(p.begin() + s.bias_offset(l), p.begin() + s.bias_offset(l) + s.out_of(l));
    r.w.push_back(torch::tensor(w, torch::kFloat64).reshape({s.out_of(l), s.in_of(l)}).requires_grad_(true));
    r.b.push_back(torch::tensor(b, torch::kFloat64).requires_grad_(true));
  }
  return r;
}

inline double MaxRelError(const torch::Tensor& ours, const torch::Tensor& ref) {
  return ((ours - ref).abs().max() / (ref.abs().max() + 1e-12)).item<double>();
}


// Parameter gradients of a reference network as one flat vector in our layout.
inline std::vector<double> FlatGradient(const Reference& r) {
  std::vector<double> out;
  for (size_t l = 0; l < r.w.size(); ++l) {
    for (const torch::Tensor& t : {r.w[l], r.b[l]}) {
      const torch::Tensor g = t.grad().contiguous();
      out.insert(out.end(), g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
    }
  }
  return out;
}

template <typename T>
double MaxRelError(const std::vector<T>& ours, const std::vector<double>& ref) {
  return MaxRelError(torch::tensor(std::vector<double>(ours.begin(), ours.end()), torch::kFloat64),
                     torch::tensor(ref, torch::kFloat64));
}

}  // namespace sampled::training

#endif  // SAMPLED_TESTS_CORE_TORCH_MLP_REFERENCE_H_
