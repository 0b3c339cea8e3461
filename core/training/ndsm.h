// 004's score-model losses, for the "ndsm", "ndsm-cv" and "dsm" trainers (ndsm_trainer.cc) and for the
// experiments that look inside them (Thm 3.1's variance reduction).
//
// A gm batch (Alg. 3, lines 2-4; Remark 3.1): `paths` data points are noised by Alg. 1 with dt for the steps
// before the loss's step N and dt_last for that step, and each path is read at `times` random steps N in
// {1..n_f}: Y_{N-1} on the path, mu = Y_{N-1} - grad V(Y_{N-1}) dt_last, sigma = sqrt(2 dt_last), a fresh Z,
// Y_N = mu + sigma Z, at time t_N = (N - 1) dt + dt_last. Per row (Eq. 9, Eq. 20):
//   L = 1/2 |s(Y_N, t_N)|^2 + Z . (s(Y_N, t_N) - s(mu, t_N)) / sigma,   W = s(mu, t_N) . Z / sigma,
// and the trained objective is the mean of L + eps(t_N) W (eps = 0: NDSM; eps = 1 undoes Thm 3.1's
// cancellation; ndsm-cv learns eps_phi(t) by Eq. 22).
// A vp batch (DSM, Vincent 2011 on the VP-SDE): x_0 from the data, t ~ U(t_min, 1), x_t = alpha x_0 +
// sigma eps, L = 1/2 |sigma s(x_t, t) + eps|^2 (the sigma^2-weighted DSM loss).
#ifndef SAMPLED_CORE_TRAINING_NDSM_H_
#define SAMPLED_CORE_TRAINING_NDSM_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/common/points.h"
#include "core/common/rng.h"
#include "core/targets/target.h"
#include "core/training/mlp.h"
#include "core/training/score_sde.h"
#include "core/training/trainer.h"

namespace sampled::training {


// One batch of the loss's inputs.
// The gm prior is fitted on at most this many data points (004 Sec. 4: "the GMM is learned from 10,000
// samples"); a random subset of larger data.
constexpr int64_t kPriorFitPoints = 10000;

struct ScoreBatch {
  PointsF y;        // Y_N (gm) or x_t (vp), rows
  PointsF mu;       // gm: mu_{N-1}; vp: unused
  PointsF z;        // gm: Z_N; vp: eps
  Eigen::VectorXf t;
  Eigen::VectorXf sigma;  // gm: sqrt(2 dt_last) on every row; vp: sigma(t)
  PointsF stationary_y, stationary_mu;  // the stationary score at y and mu: what a residual model adds
};

// A gm batch of `paths` x grid.times rows from `data` (the paths' starts drawn with replacement) and the
// prior (its Score is -grad V); row p * times + j is path p's j-th time.
absl::Status MakeGmBatch(const Points& data, const Target& prior, const NoisingGrid& grid, int64_t paths, Rng& rng,
                         ScoreBatch* out);
// A vp batch of `rows` rows (its stationary score at y: -y).
void MakeVpBatch(const Points& data, const ScoreSdeModel& model, const NoisingGrid& grid, int64_t rows, Rng& rng,
                 ScoreBatch* out);

// What the loss's passes reuse (capacities only grow). Not thread-safe.
struct ScoreLossWorkspace {
  PointsF y, in, s, dy, one_in, one_s, one_dy;
  Eigen::VectorXf t, one_t;
  MlpCache cache;
  std::vector<float> grad;
};

// The mean loss over the batch (gm: of L + eps_i W_i; vp: DSM's), and its gradient in theta (resized).
// `eps`: one per row (gm; empty: 0).
double ScoreLossAndGradient(const ScoreSdeModel& model, const std::vector<float>& params, const ScoreBatch& batch,
                            const Eigen::VectorXf& eps, int threads, ScoreLossWorkspace* ws, std::vector<float>* grad);

// Per-row gradients in theta of L_i (rows of `g`) and of W_i (rows of `w`), B x parameters (gm only).
void PerRowGradients(const ScoreSdeModel& model, const std::vector<float>& params, const ScoreBatch& batch,
                     ScoreLossWorkspace* ws, Eigen::MatrixXf* g, Eigen::MatrixXf* w);

// Thm 3.1's variance, measured: trace of the covariance over rows of the per-row gradients of L + eps W.
double GradientVariance(const Eigen::MatrixXf& g, const Eigen::MatrixXf& w, double eps);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_NDSM_H_
