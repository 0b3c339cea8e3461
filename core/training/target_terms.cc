#include "core/training/target_terms.h"

#include <vector>

#include <torch/autograd.h>

namespace sampled::training {

absl::Status ComputeFisherTargetTerms(const Target& target, const TorchLogDensity& density, const Points& x,
                                      FisherTargetTerms* out) {
  const absl::Status closed = target.FisherTerms(x, &out->score, &out->laplacian, &out->gradient);
  if (closed.code() != absl::StatusCode::kUnimplemented) return closed;
  return ComputeFisherTargetTerms(density, x, out);
}

absl::Status ComputeFisherTargetTerms(const TorchLogDensity& density, const Points& x, FisherTargetTerms* out) {
  return TorchCall([&] {
    const int64_t n = x.rows(), d = x.cols();
    // Rows of a row-major array are contiguous: the tensor views it directly, then owns a copy.
    at::Tensor tx = at::from_blob(const_cast<double*>(x.data()), {n, d}, at::kDouble).clone().requires_grad_(true);
    const at::Tensor log_q = density(tx);
    const at::Tensor score = torch::autograd::grad({log_q.sum()}, {tx}, {}, true, true)[0];
    at::Tensor laplacian = at::zeros({n}, at::kDouble);
    for (int64_t c = 0; c < d; ++c) {
      laplacian = laplacian + torch::autograd::grad({score.select(1, c).sum()}, {tx}, {}, true, true)[0].select(1, c);
    }
    const at::Tensor fisher = 0.5 * (score * score).sum(1) + laplacian;
    const at::Tensor gradient = torch::autograd::grad({fisher.sum()}, {tx})[0];
    auto copy = [&](const at::Tensor& t, double* dst) {
      const at::Tensor c = t.detach().contiguous();
      std::copy(c.data_ptr<double>(), c.data_ptr<double>() + c.numel(), dst);
    };
    out->score.resize(n, d);
    out->laplacian.resize(n);
    out->gradient.resize(n, d);
    copy(score, out->score.data());
    copy(laplacian, out->laplacian.data());
    copy(gradient, out->gradient.data());
    return absl::OkStatus();
  });
}

}  // namespace sampled::training
