// Fisher training (003 Sec. 3.2, Eq. 9): minimise
//   mean_i 1/2 [ |s_q(x_i)|^2 - |s_phi(x_i)|^2 + 2 div (s_q - s_phi)(x_i) ],  x_i = g(z_i),
// s_phi's parameters frozen, the gradient flowing through x into theta. Its x-gradient needs the target's
// grad (1/2 |s_q|^2 + div s_q) (third derivatives of log q: the target's closed form where it has one, else
// autograd; target_terms.h) and the score
// network's grad_x (1/2 |s_phi|^2 + div s_phi): one forward pass with tangents along each e_c and one
// reverse pass with dL/ds = s_phi and dL/d(J e_c) = e_c, whose input adjoint is that gradient.
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/torch_density.h"
#include "core/training/neural_sampler.h"
#include "core/training/target_terms.h"

namespace sampled::training {
namespace {

template <typename T>
class FisherObjective : public SamplerObjective<T> {
 public:
  FisherObjective(std::shared_ptr<const Target> target, std::shared_ptr<const TorchLogDensity> density)
      : target_(std::move(target)), density_(std::move(density)) {}

  absl::Status Evaluate(const MlpShape& score_shape, const std::vector<T>& score_params, const PointsT<T>& x,
                        int threads, double* loss, PointsT<T>* dloss_dx) override {
    const int64_t batch = x.rows(), d = x.cols();
    SAMPLED_RETURN_IF_ERROR(ComputeFisherTargetTerms(*target_, *density_, x.template cast<double>(), &terms_));
    UnitDirections(d, &directions_);
    MlpForwardWithTangents<T>(score_shape, score_params, x, directions_, threads, &cache_, &s_phi_, &tangents_);
    double total = 0;
    for (int64_t i = 0; i < batch; ++i) {
      double div_phi = 0;
      for (int64_t c = 0; c < d; ++c) div_phi += tangents_[c](i, c);
      total += 0.5 * (terms_.score.row(i).squaredNorm() - s_phi_.row(i).template cast<double>().squaredNorm()) +
               terms_.laplacian(i) - div_phi;
    }
    *loss = total / static_cast<double>(batch);
    DiagonalAdjoints(batch, d, 1.0, &dtangents_);
    MlpBackward<T>(score_shape, score_params, cache_, s_phi_, dtangents_, threads, nullptr, &phi_gradient_);
    *dloss_dx = (terms_.gradient.template cast<T>() - phi_gradient_) * (T(1) / static_cast<T>(batch));
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<const Target> target_;
  std::shared_ptr<const TorchLogDensity> density_;
  FisherTargetTerms terms_;
  MlpCacheT<T> cache_;
  PointsT<T> s_phi_, phi_gradient_;
  std::vector<PointsT<T>> directions_, tangents_, dtangents_;
};

}  // namespace

template <typename T>
absl::StatusOr<std::unique_ptr<SamplerObjective<T>>> MakeFisherObjective(std::shared_ptr<const Target> target) {
  SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<const TorchLogDensity> density, target->torch_log_density());
  return std::unique_ptr<SamplerObjective<T>>(
      std::make_unique<FisherObjective<T>>(std::move(target), std::move(density)));
}
template absl::StatusOr<std::unique_ptr<SamplerObjective<float>>> MakeFisherObjective(std::shared_ptr<const Target>);
template absl::StatusOr<std::unique_ptr<SamplerObjective<double>>> MakeFisherObjective(
    std::shared_ptr<const Target>);

const TrainMethod& FisherTrainMethod() {
  static const TrainMethod method{
      "fisher",
      "003 Fisher training (Eq. 9): an MLP sampler x = g(z) minimising the Fisher divergence to q through x, "
      "s_phi frozen in that phase; the score network must be twice differentiable (not leaky-relu)",
      /*needs_twice_differentiable_score=*/true,
      [](const TrainSettings& settings,
         std::shared_ptr<const Target> target) -> absl::StatusOr<std::unique_ptr<Trainer>> {
        SAMPLED_ASSIGN_OR_RETURN(auto objective, MakeFisherObjective<float>(std::move(target)));
        return std::unique_ptr<Trainer>(std::make_unique<NeuralSamplerTrainer>(settings, std::move(objective)));
      }};
  return method;
}

}  // namespace sampled::training
