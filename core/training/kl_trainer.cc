// KL training (003 Sec. 3.1, Eq. 3): the gradient of KL(p_theta || q) in theta is
// E_z[(s_phi(x) - s_q(x))^T dx/dtheta] at x = g(z), with s_phi standing in for the sampler's own score.
// As a loss: mean_i <sg(s_phi(x_i) - s_q(x_i)), x_i>, so dL/dx_i = (s_phi(x_i) - s_q(x_i)) / B.
#include "core/common/status_macros.h"
#include "core/training/neural_sampler.h"

namespace sampled::training {
namespace {

template <typename T>
class KlObjective : public SamplerObjective<T> {
 public:
  explicit KlObjective(std::shared_ptr<const Target> target) : target_(std::move(target)) {}

  absl::Status Evaluate(const MlpShape& score_shape, const std::vector<T>& score_params, const PointsT<T>& x,
                        int threads, double* loss, PointsT<T>* dloss_dx) override {
    MlpForward<T>(score_shape, score_params, x, threads, nullptr, &s_phi_);
    SAMPLED_RETURN_IF_ERROR(TargetScore(*target_, x, &s_q_));
    *dloss_dx = s_phi_ - s_q_;
    double total = 0;
    for (int64_t i = 0; i < x.rows(); ++i) {
      total += dloss_dx->row(i).template cast<double>().dot(x.row(i).template cast<double>());
    }
    *loss = total / static_cast<double>(x.rows());
    *dloss_dx *= T(1) / static_cast<T>(x.rows());
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<const Target> target_;
  PointsT<T> s_phi_, s_q_;
};

}  // namespace

template <typename T>
absl::StatusOr<std::unique_ptr<SamplerObjective<T>>> MakeKlObjective(std::shared_ptr<const Target> target) {
  return std::unique_ptr<SamplerObjective<T>>(std::make_unique<KlObjective<T>>(std::move(target)));
}
template absl::StatusOr<std::unique_ptr<SamplerObjective<float>>> MakeKlObjective(std::shared_ptr<const Target>);
template absl::StatusOr<std::unique_ptr<SamplerObjective<double>>> MakeKlObjective(std::shared_ptr<const Target>);

const TrainMethod& KlTrainMethod() {
  static const TrainMethod method{
      "kl",
      "003 KL training (Eq. 3): an MLP sampler x = g(z) moved along E[(s_phi(x) - s_q(x)) dx/dtheta], s_phi fitted "
      "to the sampler's draws by score matching (K steps per sampler step)",
      /*needs_twice_differentiable_score=*/false,
      [](const TrainSettings& settings,
         std::shared_ptr<const Target> target) -> absl::StatusOr<std::unique_ptr<Trainer>> {
        SAMPLED_ASSIGN_OR_RETURN(auto objective, MakeKlObjective<float>(std::move(target)));
        return std::unique_ptr<Trainer>(std::make_unique<NeuralSamplerTrainer>(settings, std::move(objective)));
      }};
  return method;
}

}  // namespace sampled::training
