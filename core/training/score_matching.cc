// The score phase's losses (003 Alg. 1, lines 3-6): score matching of s_phi on detached draws. Each is a
// mean over the batch; its gradient in phi comes from one reverse pass through the network, with the
// tangents' adjoints when the loss holds a derivative of s in x.
#include <cmath>

#include "core/training/neural_sampler.h"

namespace sampled::training {

template <typename T>
double ScoreMatchingLoss(const MlpShape& shape, const std::vector<T>& params, const PointsT<T>& x, ScoreLoss loss,
                         double dsm_sigma, const PointsT<T>& noise, int threads, ScoreWorkspace<T>& ws,
                         std::vector<T>* grad) {
  const int64_t batch = x.rows(), d = x.cols();
  const T inv_batch = T(1) / static_cast<T>(batch);
  double total = 0;
  if (grad != nullptr) grad->clear();
  if (loss == ScoreLoss::kDsm) {
    // |s(x + sigma e) + e / sigma|^2
    const T sigma = static_cast<T>(dsm_sigma);
    ws.perturbed = x + sigma * noise;
    MlpForward<T>(shape, params, ws.perturbed, threads, &ws.cache, &ws.y);
    ws.dy = ws.y + noise / sigma;
    for (int64_t i = 0; i < batch; ++i) total += ws.dy.row(i).template cast<double>().squaredNorm();
    ws.dy *= T(2) * inv_batch;
    if (grad != nullptr) MlpBackward<T>(shape, params, ws.cache, ws.dy, {}, threads, grad, nullptr);
    return total / static_cast<double>(batch);
  }
  // |s(x)|^2 + 2 tr(J) (ssm: tangents along each e_c) or + 2 v^T J v (sliced: one tangent along v).
  if (loss == ScoreLoss::kSsm) {
    UnitDirections(d, &ws.directions);
  } else {
    ws.directions.assign(1, noise);
  }
  MlpForwardWithTangents<T>(shape, params, x, ws.directions, threads, &ws.cache, &ws.y, &ws.tangents);
  for (int64_t i = 0; i < batch; ++i) {
    double term = ws.y.row(i).template cast<double>().squaredNorm();
    if (loss == ScoreLoss::kSsm) {
      for (int64_t c = 0; c < d; ++c) term += 2.0 * ws.tangents[c](i, c);
    } else {
      term += 2.0 * ws.tangents[0].row(i).template cast<double>().dot(noise.row(i).template cast<double>());
    }
    total += term;
  }
  if (grad != nullptr) {
    ws.dy = (T(2) * inv_batch) * ws.y;
    if (loss == ScoreLoss::kSsm) {
      DiagonalAdjoints(batch, d, static_cast<double>(T(2) * inv_batch), &ws.dtangents);
    } else {
      ws.dtangents.assign(1, (T(2) * inv_batch) * noise);
    }
    MlpBackward<T>(shape, params, ws.cache, ws.dy, ws.dtangents, threads, grad, nullptr);
  }
  return total / static_cast<double>(batch);
}

template double ScoreMatchingLoss<float>(const MlpShape&, const std::vector<float>&, const PointsF&, ScoreLoss,
                                         double, const PointsF&, int, ScoreWorkspace<float>&, std::vector<float>*);
template double ScoreMatchingLoss<double>(const MlpShape&, const std::vector<double>&, const Points&, ScoreLoss,
                                          double, const Points&, int, ScoreWorkspace<double>&, std::vector<double>*);

}  // namespace sampled::training
