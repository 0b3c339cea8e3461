// 004's score-based generative models as plain values and the arithmetic they share: a score network
// s_theta(y, t) (an MLP on [y, t, sin(f_k t), cos(f_k t)]: Gaussian random Fourier time features, 004 Sec. 4),
// the forward noising dynamics that training simulates, and the reverse dynamics that draw from a trained model.
//
// Two noising dynamics:
//   gm: Langevin dynamics toward a Gaussian mixture prior eta_* fitted to the data (004 Eq. 3):
//       dY = -grad V(Y) ds + sqrt(2) dW, V = -log eta_*, simulated by Euler-Maruyama (Alg. 1); the prior's
//       Score is -grad V. Draws run Alg. 2 from x ~ eta_*:
//         SDE: x <- x + (grad V(x) + 2 s(x, T - t_n)) dt + sqrt(2 dt) Z
//         ODE: x <- x + (grad V(x) +   s(x, T - t_n)) dt          (the probability-flow ODE)
//   vp: the variance-preserving (OU) SDE of DSM, beta(t) = beta_min + (beta_max - beta_min) t on [0, 1]:
//       x_t = alpha(t) x_0 + sigma(t) eps, alpha(t) = exp(-1/2 int_0^t beta), sigma^2 = 1 - alpha^2. Draws
//       start at x ~ N(0, I) at t = 1 and step back to t_min:
//         SDE: x <- x + (beta/2 x + beta s(x, t)) dt + sqrt(beta dt) Z
//         ODE: x <- x + (beta/2 x + beta/2 s(x, t)) dt
//
// A draw of n points runs in blocks of kDrawBlockRows rows, block b from its own generator
// (DrawBlockSeed(seed, b)), so the draws of a seed do not depend on the chunking or the threads.
#ifndef SAMPLED_CORE_TRAINING_SCORE_SDE_H_
#define SAMPLED_CORE_TRAINING_SCORE_SDE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/common/rng.h"
#include "core/targets/params.h"
#include "core/targets/target.h"
#include "core/training/mlp.h"

namespace sampled::training {

enum class NoisingDynamics { kGaussianMixture, kVariancePreserving };
const char* NoisingDynamicsName(NoisingDynamics d);  // "gm" | "vp"
absl::StatusOr<NoisingDynamics> ParseNoisingDynamics(const std::string& name);

// What draws need besides the score network's weights.
struct ScoreSdeModel {
  NoisingDynamics dynamics = NoisingDynamics::kGaussianMixture;
  int64_t dim = 0;
  // gm: the prior's "mixture" parameters (weights, means, cov), as the mixture target family reads them.
  ParamMap prior;
  double t_end = 0;             // T: the time the reverse dynamics start from (gm: the training grid's last)
  double t_min = 0;             // vp: where the reverse dynamics stop (1e-3)
  double beta_min = 0.1, beta_max = 20;
  std::vector<float> frequencies;  // f_k = 2 pi w_k of the time features
  MlpShape shape;                  // in = dim + 1 + 2 x frequencies, out = dim
  int64_t default_steps = 1000;    // reverse steps when a draw does not say (004 Sec. 4: 1000)
  // s(y, t) = the noising's stationary score + the network (gm: the prior's, -grad V; vp: -y), instead of
  // the network alone: an untrained or extrapolating network then leaves the prior's own dynamics, where
  // 004's plain network lets the reverse drift's grad V term push points away from the modes.
  bool residual = false;

  friend bool operator==(const ScoreSdeModel& a, const ScoreSdeModel& b);
};

// The time features: m frequencies 2 pi w_k, w_k ~ N(0, (scale / T)^2) (T: the model's time span).
constexpr int64_t kTimeFeatures = 8;
constexpr double kTimeFeatureScale = 2;

// The noising's stationary score at y (gm: the prior's Score; vp: -y), what a residual model adds.
absl::Status StationaryScore(const ScoreSdeModel& m, const Target* prior, const PointsF& y, PointsF* out);

// The score network's inputs: rows [y_i, t_i, sin(f_k t_i), cos(f_k t_i)] (t: one per row).
void ScoreInputs(const PointsF& y, const Eigen::VectorXf& t, const std::vector<float>& frequencies, PointsF* in);
// m frequencies 2 pi w_k, w_k ~ N(0, scale^2), from `rng`.
std::vector<float> TimeFrequencies(int64_t m, double scale, Rng& rng);

// The VP schedule: alpha(t) and sigma(t) = sqrt(1 - alpha^2), beta(t).
double VpAlpha(const ScoreSdeModel& m, double t);
double VpBeta(const ScoreSdeModel& m, double t);

// The prior of a gm model, as a target (its Score is -grad V, its Sample draws x_0); null for vp.
absl::StatusOr<std::shared_ptr<const Target>> ScoreSdePrior(const ScoreSdeModel& m);

struct ReverseOptions {
  int64_t steps = 0;  // 0: the model's default_steps
  bool ode = false;   // the probability-flow ODE instead of the reverse SDE (noise only in x_0)
  const std::atomic<bool>* cancelled = nullptr;  // seen between steps: CANCELLED once it is set
};

// Rows [first_block * kDrawBlockRows, ...) of the seed's stream, `blocks` whole blocks, into `out`.
// `prior`: ScoreSdePrior(m) (built once by the caller).
absl::Status DrawScoreSdeBlocks(const ScoreSdeModel& m, const std::vector<float>& params, const Target* prior,
                                const ReverseOptions& options, uint64_t seed, int64_t first_block, int64_t blocks,
                                int threads, PointsF* out);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_SCORE_SDE_H_
