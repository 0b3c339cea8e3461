// 003 Alg. 1, the loop both neural-sampler trainers share: K score steps (score matching of s_phi on fresh,
// detached draws of the sampler), then one sampler step whose gradient flows from an objective's
// x-gradient through x = g(z) into theta. A method supplies only its objective (kl_trainer.cc,
// fisher_trainer.cc); the score phase's losses are in score_matching.cc.
#ifndef SAMPLED_CORE_TRAINING_NEURAL_SAMPLER_H_
#define SAMPLED_CORE_TRAINING_NEURAL_SAMPLER_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "core/common/points.h"
#include "core/targets/target.h"
#include "core/training/mlp.h"
#include "core/training/trainer.h"

namespace sampled::training {

// The sampler objective L(x) of a batch of draws x (B x d) with s_phi held fixed: its value and dL/dx.
class SamplerObjective {
 public:
  virtual ~SamplerObjective() = default;
  virtual absl::Status Evaluate(const MlpShape& score_shape, const std::vector<float>& score_params,
                                const PointsF& x, int threads, double* loss, PointsF* dloss_dx) = 0;
};

// The score-matching loss of s_phi at detached draws x (B x d) and its gradient in phi (resized).
// `noise` (B x d): the projections v of sliced score matching, the perturbation e of dsm; unused by ssm.
struct ScoreWorkspace {
  MlpCache cache;
  PointsF y, perturbed, dy;
  std::vector<PointsF> directions, tangents, dtangents;
};
double ScoreMatchingLoss(const MlpShape& shape, const std::vector<float>& params, const PointsF& x, ScoreLoss loss,
                         double dsm_sigma, const PointsF& noise, int threads, ScoreWorkspace& ws,
                         std::vector<float>* grad);

class NeuralSamplerTrainer : public Trainer {
 public:
  NeuralSamplerTrainer(const TrainSettings& settings, std::shared_ptr<const Target> target,
                       std::unique_ptr<SamplerObjective> objective);
  absl::Status Step(TrainingState& state, TrainStats* stats) override;
  const TrainSettings& settings() const override { return settings_; }

  // The pieces of an iteration at given inputs (the numerics check against peer_train.py uses them): the
  // score loss and its gradient at draws x with `noise`; the sampler objective, its theta-gradient and the
  // draws x = g(z).
  double ScoreGradient(const std::vector<float>& score_params, const PointsF& x, const PointsF& noise,
                       std::vector<float>* grad);
  absl::Status SamplerGradient(const TrainingState& state, const PointsF& z, double* loss, std::vector<float>* grad,
                               PointsF* x);

 private:
  // Draws B latents from `rng` and their images under g (no reverse pass follows when cache is null).
  void Draw(const std::vector<float>& sampler_params, Rng& rng, MlpCache* cache);
  // Fills noise_ with what the score loss needs from `rng` (nothing for ssm).
  void DrawScoreNoise(Rng& rng);

  TrainSettings settings_;
  std::shared_ptr<const Target> target_;
  std::unique_ptr<SamplerObjective> objective_;
  int threads_;
  ScoreWorkspace score_ws_;
  MlpCache sampler_cache_;
  PointsF z_, x_, noise_, dloss_dx_;
  std::vector<float> grad_;
};

// Writes the score of the target at the rows of x (float32 in, float64 evaluation, float32 out).
absl::Status TargetScore(const Target& target, const PointsF& x, PointsF* out);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_NEURAL_SAMPLER_H_
