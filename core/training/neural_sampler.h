// 003 Alg. 1, the loop both neural-sampler trainers share: K score steps (score matching of s_phi on fresh,
// detached draws of the sampler), then one sampler step whose gradient flows from an objective's
// x-gradient through x = g(z) into theta. A method supplies only its objective (kl_trainer.cc,
// fisher_trainer.cc); the score phase's losses are in score_matching.cc.
//
// The gradients are templates on the parameters' type: training runs in float32; the numerics check
// against peer_train.py also runs them in float64 (to 1e-9), through the same code.
#ifndef SAMPLED_CORE_TRAINING_NEURAL_SAMPLER_H_
#define SAMPLED_CORE_TRAINING_NEURAL_SAMPLER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/targets/target.h"
#include "core/training/mlp.h"
#include "core/training/trainer.h"

namespace sampled::training {

// The sampler objective L(x) of a batch of draws x (B x d) with s_phi held fixed: its value and dL/dx.
template <typename T>
class SamplerObjective {
 public:
  virtual ~SamplerObjective() = default;
  virtual absl::Status Evaluate(const MlpShape& score_shape, const std::vector<T>& score_params, const PointsT<T>& x,
                                int threads, double* loss, PointsT<T>* dloss_dx) = 0;
};

// The methods' objectives (one per file; float and double instantiated there), and by method name.
template <typename T>
absl::StatusOr<std::unique_ptr<SamplerObjective<T>>> MakeKlObjective(std::shared_ptr<const Target> target);
template <typename T>
absl::StatusOr<std::unique_ptr<SamplerObjective<T>>> MakeFisherObjective(std::shared_ptr<const Target> target);
template <typename T>
absl::StatusOr<std::unique_ptr<SamplerObjective<T>>> MakeSamplerObjective(const std::string& method,
                                                                         std::shared_ptr<const Target> target);

// The score-matching loss of s_phi at detached draws x (B x d) and its gradient in phi (resized).
// `noise` (B x d): the projections v of sliced score matching, the perturbation e of dsm; unused by ssm.
template <typename T>
struct ScoreWorkspace {
  MlpCacheT<T> cache;
  PointsT<T> y, perturbed, dy;
  std::vector<PointsT<T>> directions, tangents, dtangents;
};
template <typename T>
double ScoreMatchingLoss(const MlpShape& shape, const std::vector<T>& params, const PointsT<T>& x, ScoreLoss loss,
                         double dsm_sigma, const PointsT<T>& noise, int threads, ScoreWorkspace<T>& ws,
                         std::vector<T>* grad);

// The two gradients of an iteration at given inputs, with the scratch memory they reuse.
template <typename T>
class NeuralSamplerGradients {
 public:
  NeuralSamplerGradients(const TrainSettings& settings, std::unique_ptr<SamplerObjective<T>> objective);
  // The score loss at draws x with `noise`, and its gradient in phi.
  double Score(const std::vector<T>& score_params, const PointsT<T>& x, const PointsT<T>& noise,
               std::vector<T>* grad);
  // The sampler objective at x = g(z) (written to *x) with s_phi = score_params fixed, and its gradient in
  // theta.
  absl::Status Sampler(const std::vector<T>& sampler_params, const std::vector<T>& score_params,
                       const PointsT<T>& z, double* loss, std::vector<T>* grad, PointsT<T>* x);

 private:
  TrainSettings settings_;
  std::unique_ptr<SamplerObjective<T>> objective_;
  int threads_;
  ScoreWorkspace<T> score_ws_;
  MlpCacheT<T> sampler_cache_;
  PointsT<T> dloss_dx_;
};

class NeuralSamplerTrainer : public Trainer {
 public:
  NeuralSamplerTrainer(const TrainSettings& settings, std::unique_ptr<SamplerObjective<float>> objective);
  absl::Status Step(TrainingState& state, TrainStats* stats) override;
  const TrainSettings& settings() const override { return settings_; }

 private:
  // Draws B latents from `rng` into z_ (and, in Draw, their images under g into x_).
  void DrawLatents(Rng& rng);
  void Draw(const std::vector<float>& sampler_params, Rng& rng);
  // Fills noise_ with what the score loss needs from `rng` (nothing for ssm).
  void DrawScoreNoise(Rng& rng);

  TrainSettings settings_;
  int threads_;
  NeuralSamplerGradients<float> gradients_;
  PointsF z_, x_, noise_;
  std::vector<float> grad_;
};

// Writes the score of the target at the rows of x (evaluated in float64).
template <typename T>
absl::Status TargetScore(const Target& target, const PointsT<T>& x, PointsT<T>* out);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_NEURAL_SAMPLER_H_
