// 002 Alg. 2's pieces for the "sd-generator" trainer (sd_generator_trainer.cc), templates on the parameters'
// type: training runs them in float32, the numerics check against ../shared/bench/peer_train.py also in float64,
// through the same code.
//
// An iteration: y = g(xi) for a fresh latent batch; the SD step moves y to
//   y' = y + eta/2 (m_x(z) - m_y(z)),  z = y + sigma eps,
// m_x and m_y the Gaussian-kernel (bandwidth h) weighted means of a data batch x and of the generated batch y
// seen from z (002 Eq. 17-18, the SD flow's fused kernel sums); then the generator regresses on y' held
// fixed: 1/2 sum_i |g(xi_i) - y'_i|^2.
#ifndef SAMPLED_CORE_TRAINING_SD_GENERATOR_H_
#define SAMPLED_CORE_TRAINING_SD_GENERATOR_H_

#include <vector>

#include <Eigen/Core>

#include "core/common/points.h"
#include "core/kernels/kernel_sums.h"
#include "core/training/mlp.h"
#include "core/training/trainer.h"

namespace sampled::training {

template <typename T>
class SdGeneratorGradients {
 public:
  explicit SdGeneratorGradients(const TrainSettings& settings);
  // y = g(xi) (B x d), kept with what the reverse pass needs.
  void Forward(const std::vector<T>& params, const PointsT<T>& xi);
  const PointsT<T>& output() const { return y_; }
  // y' of the last forward pass's y against the data batch `data` (rows), noise `eps` (B x d; unused when
  // noise = 0), kernel bandwidth `bandwidth`, in coordinates centred on y's mean.
  void Goal(const PointsT<T>& data, const PointsT<T>& eps, double bandwidth, double noise, PointsT<T>* goal);
  // 1/2 sum_i |y_i - goal_i|^2 at the last forward pass, and its gradient in theta (resized).
  double Regression(const std::vector<T>& params, const PointsT<T>& goal, std::vector<T>* grad);

 private:
  const TrainSettings settings_;
  const int threads_;
  MlpCacheT<T> cache_;
  PointsT<T> y_, yc_, z_, xc_, dy_;
  Points scratch_, direction_;
  Eigen::RowVectorXd center_;
  KernelWorkspace<T> ws_;
};

// The factor F of a noise rule nearest-mean:F (0 for the SD flow's rules); INVALID_ARGUMENT for a bad one.
absl::StatusOr<double> NearestMeanFactor(const std::string& noise);
// Mean over the rows y_i of min_j |y_i - x_j|, in float64.
double MeanNearestDistance(const Points& y, const Points& x);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_SD_GENERATOR_H_
