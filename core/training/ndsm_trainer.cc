// The score-model methods of 004 (the loss arithmetic in ndsm.h, the model and its draws in score_sde.h):
//   ndsm:    Gaussian-mixture noising (Langevin dynamics toward a GMM fitted to the data, Alg. 1) and the
//            NDSM loss of Thm 3.1 (Eq. 9), eps = 0;
//   ndsm-cv: the same with the control variate eps(t_N) W of Thm 3.2: eps_phi(t) an MLP 1 -> 10, 10, 10 -> 1
//            updated every N_CV iterations by Adam on Eq. 22's gradient variance (Alg. 3), or a fixed eps
//            (cv_eps: 0 is ndsm, 1 undoes Thm 3.1's cancellation);
//   dsm:     the OU / VP-SDE baseline (beta linear 0.1 -> 20 on [0, 1]) with denoising score matching.
// The prior is fitted once, when the trainer is made (K given or chosen by BIC over 1..10, on at most 10000
// points, 004 Sec. 4; seeded by the run's seed), so a resumed run fits the same one; the time features'
// frequencies come from the seed too. An iteration draws a fresh batch and takes one Adam step on theta.
#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/gmm_fit.h"
#include "core/training/ndsm.h"

namespace sampled::training {
namespace {

constexpr uint64_t kFrequencySeed = 0x7469'6d65;  // "time": the features' stream, apart from the run's

}  // namespace

absl::Status MakeGmBatch(const Points& data, const Target& prior, const NoisingGrid& grid, int64_t paths, Rng& rng,
                         ScoreBatch* out) {
  const int64_t k = grid.times, d = data.cols(), rows = paths * k;
  Points y(paths, d);
  for (int64_t p = 0; p < paths; ++p) y.row(p) = data.row(rng.UniformInt(data.rows()));
  std::vector<int64_t> step(rows);  // N - 1: the path's step the loss's step leaves from
  int64_t last = 0;
  for (int64_t& n : step) last = std::max(last, n = rng.UniformInt(grid.steps));
  Points before(rows, d), score, z(paths, d);
  const double noise = std::sqrt(2 * grid.dt);
  for (int64_t n = 0;; ++n) {
    for (int64_t r = 0; r < rows; ++r) {
      if (step[r] == n) before.row(r) = y.row(r / k);
    }
    if (n == last) break;
    SAMPLED_RETURN_IF_ERROR(prior.Score(y, &score));  // -grad V
    rng.FillNormal(z.data(), z.size());
    y += grid.dt * score + noise * z;
  }
  SAMPLED_RETURN_IF_ERROR(prior.Score(before, &score));
  const Points mu = before + grid.dt_last * score;
  Points zn(rows, d);
  rng.FillNormal(zn.data(), zn.size());
  const double sigma = std::sqrt(2 * grid.dt_last);
  out->mu = mu.cast<float>();
  out->z = zn.cast<float>();
  const Points y_n = mu + sigma * zn;
  out->y = y_n.cast<float>();
  SAMPLED_RETURN_IF_ERROR(prior.Score(y_n, &score));
  out->stationary_y = score.cast<float>();
  SAMPLED_RETURN_IF_ERROR(prior.Score(mu, &score));
  out->stationary_mu = score.cast<float>();
  out->t.resize(rows);
  for (int64_t r = 0; r < rows; ++r) out->t(r) = static_cast<float>(static_cast<double>(step[r]) * grid.dt + grid.dt_last);
  out->sigma = Eigen::VectorXf::Constant(rows, static_cast<float>(sigma));
  return absl::OkStatus();
}

void MakeVpBatch(const Points& data, const ScoreSdeModel& model, const NoisingGrid& grid, int64_t rows, Rng& rng,
                 ScoreBatch* out) {
  const int64_t d = data.cols();
  out->y.resize(rows, d);
  out->z.resize(rows, d);
  out->t.resize(rows);
  out->sigma.resize(rows);
  out->mu.resize(0, d);
  rng.FillNormal(out->z.data(), out->z.size());
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = rng.UniformInt(data.rows());
    const double t = grid.t_min + (1 - grid.t_min) * rng.Uniform();
    const double alpha = VpAlpha(model, t), sigma = std::sqrt(std::max(0.0, 1 - alpha * alpha));
    out->y.row(r) = (alpha * data.row(i)).cast<float>() + static_cast<float>(sigma) * out->z.row(r);
    out->t(r) = static_cast<float>(t);
    out->sigma(r) = static_cast<float>(sigma);
  }
  out->stationary_y = -out->y;
}

double ScoreLossAndGradient(const ScoreSdeModel& model, const std::vector<float>& params, const ScoreBatch& batch,
                            const Eigen::VectorXf& eps, int threads, ScoreLossWorkspace* ws, std::vector<float>* grad) {
  const int64_t b = batch.y.rows(), d = batch.y.cols();
  const float inv_b = 1.0f / static_cast<float>(b);
  double total = 0;
  grad->clear();
  if (model.dynamics == NoisingDynamics::kVariancePreserving) {
    // L = 1/2 |sigma s + eps|^2, dL/ds = sigma (sigma s + eps).
    ScoreInputs(batch.y, batch.t, model.frequencies, &ws->in);
    MlpForward<float>(model.shape, params, ws->in, threads, &ws->cache, &ws->s);
    if (model.residual) ws->s += batch.stationary_y;  // constant in theta: the reverse pass is the network's
    ws->dy.resize(b, d);
    for (int64_t i = 0; i < b; ++i) {
      const auto r = (batch.sigma(i) * ws->s.row(i) + batch.z.row(i)).eval();
      total += 0.5 * r.cast<double>().squaredNorm();
      ws->dy.row(i) = (batch.sigma(i) * inv_b) * r;
    }
  } else {
    // One pass over [Y; mu]: L + eps W = 1/2 |s(Y)|^2 + Z . s(Y) / sigma + (eps - 1) Z . s(mu) / sigma.
    ws->y.resize(2 * b, d);
    ws->y.topRows(b) = batch.y;
    ws->y.bottomRows(b) = batch.mu;
    ws->t.resize(2 * b);
    ws->t.head(b) = batch.t;
    ws->t.tail(b) = batch.t;
    ScoreInputs(ws->y, ws->t, model.frequencies, &ws->in);
    MlpForward<float>(model.shape, params, ws->in, threads, &ws->cache, &ws->s);
    if (model.residual) {
      ws->s.topRows(b) += batch.stationary_y;
      ws->s.bottomRows(b) += batch.stationary_mu;
    }
    ws->dy.resize(2 * b, d);
    for (int64_t i = 0; i < b; ++i) {
      const float e = eps.size() > 0 ? eps(i) : 0.0f;
      const auto zs = (batch.z.row(i) / batch.sigma(i)).eval();
      const auto sy = ws->s.row(i), sm = ws->s.row(b + i);
      total += 0.5 * sy.cast<double>().squaredNorm() + zs.cast<double>().dot(sy.cast<double>()) +
               (e - 1.0) * zs.cast<double>().dot(sm.cast<double>());
      ws->dy.row(i) = inv_b * (sy + zs);
      ws->dy.row(b + i) = ((e - 1.0f) * inv_b) * zs;
    }
  }
  MlpBackward<float>(model.shape, params, ws->cache, ws->dy, {}, threads, grad, nullptr);
  return total / static_cast<double>(b);
}

void PerRowGradients(const ScoreSdeModel& model, const std::vector<float>& params, const ScoreBatch& batch,
                     ScoreLossWorkspace* ws, Eigen::MatrixXf* g, Eigen::MatrixXf* w) {
  const int64_t b = batch.y.rows(), n = model.shape.parameter_count();
  g->resize(b, n);
  w->resize(b, n);
  ws->one_t.resize(1);
  // One row at a time (one thread: these passes are tiny): a = the gradient of s(Y_i) . (s(Y_i) / 2 + Z_i /
  // sigma), c = that of s(mu_i) . Z_i / sigma; then grad L_i = a - c and grad W_i = c.
  const auto pass = [&](const PointsF& row, const Eigen::RowVectorXf& zs, const Eigen::RowVectorXf* stationary,
                        float* into) {
    ScoreInputs(row, ws->one_t, model.frequencies, &ws->one_in);
    MlpForward<float>(model.shape, params, ws->one_in, 1, &ws->cache, &ws->one_s);
    ws->one_dy = zs;
    if (stationary != nullptr) {  // the pass at Y: dL/ds = s(Y) + Z / sigma
      ws->one_dy += ws->one_s;
      if (model.residual) ws->one_dy += *stationary;
    }
    ws->grad.clear();
    MlpBackward<float>(model.shape, params, ws->cache, ws->one_dy, {}, 1, &ws->grad, nullptr);
    std::copy(ws->grad.begin(), ws->grad.end(), into);
  };
  Eigen::RowVectorXf a(n), c(n);
  PointsF row;
  for (int64_t i = 0; i < b; ++i) {
    ws->one_t(0) = batch.t(i);
    const Eigen::RowVectorXf zs = batch.z.row(i) / batch.sigma(i);
    row = batch.y.row(i);
    const Eigen::RowVectorXf stationary = batch.stationary_y.row(i);
    pass(row, zs, &stationary, a.data());
    row = batch.mu.row(i);
    pass(row, zs, nullptr, c.data());
    g->row(i) = a - c;
    w->row(i) = c;
  }
}

double GradientVariance(const Eigen::MatrixXf& g, const Eigen::MatrixXf& w, double eps) {
  const Eigen::MatrixXd r = g.cast<double>() + eps * w.cast<double>();
  const Eigen::RowVectorXd mean = r.colwise().mean();
  return (r.rowwise() - mean).squaredNorm() / static_cast<double>(r.rows());
}

namespace {

class ScoreModelTrainer final : public Trainer {
 public:
  ScoreModelTrainer(const TrainSettings& settings, std::shared_ptr<const Target> target, ScoreSdeModel model,
                    std::shared_ptr<const Target> prior)
      : settings_(settings),
        target_(std::move(target)),
        data_(*target_->samples()),
        model_(std::move(model)),
        prior_(std::move(prior)),
        threads_(ThreadsOf(settings)) {}

  absl::Status Step(TrainingState& state, TrainStats* stats) override {
    const int64_t iteration = state.step + 1;
    Rng rng = state.rng;  // committed only when the whole iteration is finite
    Network net = state.sampler, cv = state.score;
    const bool gm = model_.dynamics == NoisingDynamics::kGaussianMixture;
    const bool learned = settings_.score.in > 0;  // eps_phi(t)
    if (gm) {
      SAMPLED_RETURN_IF_ERROR(
          MakeGmBatch(data_, *prior_, settings_.grid, settings_.batch / settings_.grid.times, rng, &batch_));
    } else {
      MakeVpBatch(data_, model_, settings_.grid, settings_.batch, rng, &batch_);
    }
    const int64_t b = batch_.y.rows();
    if (gm && learned) {
      t_in_ = batch_.t;
      MlpForward<float>(settings_.score, cv.params, t_in_, threads_, &cv_cache_, &eps_out_);
      eps_ = eps_out_.col(0);
    } else if (gm) {
      eps_ = Eigen::VectorXf::Constant(b, static_cast<float>(settings_.cv_eps));
    } else {
      eps_.resize(0);
    }
    const double loss = ScoreLossAndGradient(model_, net.params, batch_, eps_, threads_, &ws_, &grad_);
    if (!std::isfinite(loss) || !AllFinite(grad_)) {
      return NonFiniteError(absl::StrCat("the score model's loss or gradient turned non-finite at iteration ",
                                         iteration, " (loss ", loss, "); lower lr, or raise dt_last"));
    }
    double cv_objective = 0;
    if (gm && learned && iteration % settings_.cv_every == 0) {
      // Eq. 22: J = mean_i |g_i + eps_i w_i - mean_j g_j|^2, dJ/deps_i = 2 (g_i + eps_i w_i - gbar) . w_i / B.
      PerRowGradients(model_, net.params, batch_, &ws_, &g_, &w_);
      const Eigen::RowVectorXf mean = g_.colwise().mean();
      deps_.resize(b, 1);
      for (int64_t i = 0; i < b; ++i) {
        const Eigen::RowVectorXf r = g_.row(i) + eps_(i) * w_.row(i) - mean;
        cv_objective += r.cast<double>().squaredNorm();
        deps_(i, 0) = 2.0f * r.dot(w_.row(i)) / static_cast<float>(b);
      }
      cv_objective /= static_cast<double>(b);
      cv_grad_.clear();
      MlpBackward<float>(settings_.score, cv.params, cv_cache_, deps_, {}, threads_, &cv_grad_, nullptr);
      if (!std::isfinite(cv_objective) || !AllFinite(cv_grad_)) {
        return NonFiniteError(absl::StrCat("the control variate's objective (Eq. 22) turned non-finite at iteration ",
                                           iteration, "; lower lr"));
      }
      AdamStep(settings_.score_adam, cv_grad_, cv.adam, cv.params);
    }
    const double grad_norm = Norm(grad_);
    AdamStep(settings_.sampler_adam, grad_, net.adam, net.params);
    if (!AllFinite(net.params) || !AllFinite(cv.params)) {
      return NonFiniteError(absl::StrCat("the score model's weights turned non-finite at iteration ", iteration,
                                         "; lower lr"));
    }
    state.sampler = std::move(net);
    state.score = std::move(cv);
    CommitIteration(rng, {iteration, cv_objective, loss, grad_norm}, state, stats);
    return absl::OkStatus();
  }

  const TrainSettings& settings() const override { return settings_; }
  const ScoreSdeModel* score_model() const override { return &model_; }

 private:
  const TrainSettings settings_;
  const std::shared_ptr<const Target> target_;
  const Points& data_;
  const ScoreSdeModel model_;
  const std::shared_ptr<const Target> prior_;  // gm: the fitted mixture; vp: null
  const int threads_;
  // Scratch reused by every iteration.
  ScoreBatch batch_;
  ScoreLossWorkspace ws_;
  MlpCache cv_cache_;
  PointsF t_in_, eps_out_, deps_;
  Eigen::VectorXf eps_;
  Eigen::MatrixXf g_, w_;
  std::vector<float> grad_, cv_grad_;
};

absl::StatusOr<std::unique_ptr<Trainer>> CreateScoreModelTrainer(const TrainSettings& settings,
                                                                 std::shared_ptr<const Target> target,
                                                                 NoisingDynamics dynamics) {
  if (target->samples() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(settings.method, " trains from a data target's points"));
  }
  const int64_t d = target->dim();
  ScoreSdeModel model;
  model.dynamics = dynamics;
  model.dim = d;
  model.shape = settings.sampler;
  model.default_steps = settings.sample_steps;
  model.residual = settings.score_form == "residual";
  std::shared_ptr<const Target> prior;
  if (dynamics == NoisingDynamics::kGaussianMixture) {
    GmmFitOptions o;
    o.components = settings.gmm_components;
    SAMPLED_ASSIGN_OR_RETURN(o.covariance, ParseCovarianceType(settings.gmm_covariance));
    o.max_points = kPriorFitPoints;
    o.seed = settings.seed;
    absl::StatusOr<GmmFit> fit = FitGaussianMixture(*target->samples(), o);
    if (!fit.ok()) {
      return absl::Status(fit.status().code(),
                          absl::StrCat("fitting the Gaussian-mixture prior: ", fit.status().message()));
    }
    SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<Target> mixture, MixtureOfFit(*fit));
    model.prior = mixture->params();
    prior = std::move(mixture);
    model.t_end = settings.grid.t_end();
    model.t_min = 0;
  } else {
    model.t_end = 1;
    model.t_min = 1e-3;
  }
  Rng frequencies(settings.seed ^ kFrequencySeed);
  model.frequencies = TimeFrequencies(kTimeFeatures, kTimeFeatureScale / model.t_end, frequencies);
  return std::unique_ptr<Trainer>(
      std::make_unique<ScoreModelTrainer>(settings, std::move(target), std::move(model), std::move(prior)));
}

}  // namespace

namespace {

TrainMethod ScoreModelMethod(const char* name, const char* summary, NoisingDynamics dynamics) {
  return TrainMethod{name, summary, /*needs_twice_differentiable_score=*/false,
                     [dynamics](const TrainSettings& s, std::shared_ptr<const Target> t) {
                       return CreateScoreModelTrainer(s, std::move(t), dynamics);
                     },
                     TrainKind::kScoreModel};
}

}  // namespace

const TrainMethod& NdsmTrainMethod() {
  static const TrainMethod method = ScoreModelMethod(
      "ndsm",
      "004 Thm 3.1: a score model s(y, t) trained by nonlinear denoising score matching (Eq. 9) on Langevin noising "
      "toward a Gaussian mixture fitted to the data; drawn by the reverse SDE or probability-flow ODE (data targets)",
      NoisingDynamics::kGaussianMixture);
  return method;
}

const TrainMethod& NdsmCvTrainMethod() {
  static const TrainMethod method = ScoreModelMethod(
      "ndsm-cv",
      "004 Thm 3.2, Alg. 3: ndsm with the neural control variate eps_phi(t) W, eps_phi updated every cv_every "
      "iterations to minimise the gradient's variance (Eq. 22), or a fixed cv_eps (data targets)",
      NoisingDynamics::kGaussianMixture);
  return method;
}

const TrainMethod& DsmTrainMethod() {
  static const TrainMethod method = ScoreModelMethod(
      "dsm",
      "the OU / VP-SDE baseline of 004 (beta linear 0.1 -> 20, T = 1): a score model trained by denoising score "
      "matching, drawn from N(0, I) by the reverse SDE or probability-flow ODE (data targets)",
      NoisingDynamics::kVariancePreserving);
  return method;
}

}  // namespace sampled::training
