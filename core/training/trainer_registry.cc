// The registry of trainers and what every method shares: defaults (003 Sec. 4.1), validation, creation.
#include <cmath>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/parallel.h"
#include "core/common/status_macros.h"
#include "core/targets/gmm_fit.h"
#include "core/training/trainer.h"

namespace sampled::training {
namespace {

const std::vector<int64_t> kDefaultHidden = {400, 400, 400};

absl::Status CheckPositive(const char* name, double v) {
  if (!(v > 0) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be a finite number > 0, got ", v));
  }
  return absl::OkStatus();
}

absl::Status CheckShape(const char* network, const MlpShape& shape, const TrainLimits& limits) {
  if (shape.hidden.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(network, " needs at least one hidden layer"));
  }
  for (int64_t w : shape.hidden) {
    if (w <= 0) return absl::InvalidArgumentError(absl::StrCat(network, " hidden widths must be > 0, got ", w));
    if (limits.max_width > 0 && w > limits.max_width) {
      return absl::ResourceExhaustedError(absl::StrCat(network, " hidden width ", w, " is past the server's limit of ",
                                                       limits.max_width, " (--max-train-width)"));
    }
  }
  if (limits.max_layers > 0 && static_cast<int64_t>(shape.hidden.size()) > limits.max_layers) {
    return absl::ResourceExhaustedError(absl::StrCat(network, " has ", shape.hidden.size(),
                                                     " hidden layers, past the server's limit of ", limits.max_layers));
  }
  if (limits.max_parameters > 0 && shape.parameter_count() > limits.max_parameters) {
    return absl::ResourceExhaustedError(absl::StrCat(network, " has ", shape.parameter_count(),
                                                     " parameters, past the server's limit of ", limits.max_parameters));
  }
  return absl::OkStatus();
}

}  // namespace

void CommitIteration(const Rng& rng, const TrainStats& done, TrainingState& state, TrainStats* stats) {
  state.rng = rng;
  state.step = done.step;
  if (stats != nullptr) *stats = done;
}

bool AllFinite(const std::vector<float>& v) {
  float acc = 0;
  for (float f : v) acc += f * 0.0f;  // NaN for any NaN or infinity
  return acc == 0;
}

double Norm(const std::vector<float>& v) {
  double s = 0;
  for (float f : v) s += static_cast<double>(f) * f;
  return std::sqrt(s);
}

int ThreadsOf(const TrainSettings& settings) {
  return settings.threads > 0 ? settings.threads : DefaultComputeThreads();
}

absl::Status NonFiniteError(std::string_view message) {
  absl::Status s = absl::FailedPreconditionError(std::string(message));
  s.SetPayload(kNonFinitePayload, absl::Cord("1"));
  return s;
}

bool IsNonFinite(const absl::Status& status) { return status.GetPayload(kNonFinitePayload).has_value(); }

const char* ScoreLossName(ScoreLoss l) {
  switch (l) {
    case ScoreLoss::kSsm: return "ssm";
    case ScoreLoss::kSliced: return "sliced";
    case ScoreLoss::kDsm: return "dsm";
  }
  return "?";
}

absl::StatusOr<ScoreLoss> ParseScoreLoss(const std::string& name) {
  for (ScoreLoss l : {ScoreLoss::kSsm, ScoreLoss::kSliced, ScoreLoss::kDsm}) {
    if (name == ScoreLossName(l)) return l;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown score_loss '", name, "'; known: ssm, sliced, dsm"));
}

const std::vector<const TrainMethod*>& TrainMethods() {
  static const std::vector<const TrainMethod*> methods = {&KlTrainMethod(),   &FisherTrainMethod(),
                                                          &SdGeneratorTrainMethod(), &NdsmTrainMethod(),
                                                          &NdsmCvTrainMethod(), &DsmTrainMethod(),
                                                          &IngdTrainMethod()};
  return methods;
}

std::vector<std::pair<std::string, std::string>> TrainFieldDocs(const TrainMethod& method) {
  if (method.kind == TrainKind::kScoreModel) {
    std::vector<std::pair<std::string, std::string>> docs = {
        {"hidden", "the score network's hidden widths; default 32,32,32,32,32,32,32 (004 Sec. 4)"},
        {"activation", "the score network's: gelu | elu | silu | tanh | leaky-relu; default gelu"},
        {"batch", "rows per minibatch; default 250 (004 Sec. 4)"},
        {"lr", "Adam's learning rate; default 1e-3"},
        {"sample_steps", "reverse steps of a draw that does not give its own; default 1000"},
        {"score_form", "residual (s = the noising's stationary score + the network) | plain (the network, as 004); "
                       "default residual, plain for dsm"},
    };
    if (method.name != "dsm") {
      docs.insert(docs.end(), {
          {"gmm_components", "the Gaussian-mixture prior's K; default 0: chosen by BIC over 1..10 (on at most 10000 points)"},
          {"gmm_covariance", "the prior's covariances: full | diag | spherical; default full"},
          {"noise_steps", "n_f, the noising steps a path takes; default 50"},
          {"dt", "Delta t_n of the noising steps before the loss's; default 0.00998"},
          {"dt_last", "Delta t_N of the loss's step; default 1e-3"},
          {"times", "random times read per trajectory (trajectories per batch: batch / times); default 5"},
      });
    }
    if (method.name == "ndsm-cv") {
      docs.insert(docs.end(), {
          {"cv_every", "N_CV: iterations between updates of eps_phi (Eq. 22); default 20"},
          {"cv_eps", "a fixed eps instead of the learned eps_phi(t) (0: ndsm; 1 undoes Thm 3.1's cancellation)"},
      });
    }
    return docs;
  }
  if (method.kind == TrainKind::kDriftChain) {
    return {
        {"stats", "the sufficient statistics T: gaussian ([x, x x^T]) | rbf | rbf+pairs (KiNG's); default rbf"},
        {"basis", "RBF basis points, redrawn each step from the cloud and the data batch; default 100"},
        {"feature_bandwidth", "the RBF features' bandwidth: a value or a median rule; default median-scaled:0.5"},
        {"pairs", "rbf+pairs: the coordinate pairs of the pairwise statistics x_i x_j, e.g. 0-1,2-5"},
        {"epsilon", "the time step of a drift (x <- x + epsilon h(x)); default 0.1"},
        {"inner_steps", "Adam steps fitting each drift to Eq. 7, from the last drift's weights; default 100"},
        {"lr", "the drift fit's Adam learning rate; default 1e-2"},
        {"ridge", "added to the diagonal of F = Cov_q[T] (Eq. 7's metric); default 1e-3"},
        {"hidden", "each drift network's hidden widths; default 67 (000 Fig. 2)"},
        {"activation", "the drift networks': elu | gelu | silu | tanh | leaky-relu; default elu"},
        {"batch", "the particle cloud (fixed latents pushed through the drifts) and the data batch per step; default 1000"},
    };
  }
  if (method.kind == TrainKind::kGenerator) {
    return {
        {"generator", "mlp | linear (x = B xi + mu, 002 App. C.4); default mlp"},
        {"latent", "latent dimension of xi ~ N(0, I); default: the data's dimension"},
        {"hidden", "the mlp generator's hidden widths; default 400,400,400"},
        {"activation", "the mlp generator's: elu | gelu | silu | tanh | leaky-relu; default elu"},
        {"eta", "the SD step of 002 Alg. 2 (y' = y + eta/2 (m_data - m_gen)); default 1"},
        {"noise", "the noise rule (the SD flow's: S, median, median-scaled:F, ...; no cosine yet) or nearest-mean:F (sigma^2 = F x "
                  "the initial output's mean distance to its nearest data point, held; 002 App. C.4: nearest-mean:10); "
                  "default median (002 footnote 15)"},
        {"bandwidth", "the kernel bandwidth rule; default: equal to the noise level (002 Eq. 17)"},
        {"optimizer", "sgd (on 1/2 sum |g(xi) - y'|^2, as Alg. 2 writes it) | adam; default sgd for linear, adam for mlp"},
        {"lr", "the generator's learning rate; default 1e-3 (002 App. C.4)"},
        {"steps_per_batch", "regression steps on one batch's targets y'; default 1"},
        {"init_std", "initial weights ~ N(0, init_std^2) and biases 0 (App. C.4: 0.1); default torch.nn.Linear's"},
        {"batch", "generated points and data points per iteration (a fresh batch of each); default 1024"},
    };
  }
  return {
      {"latent", "latent dimension of z ~ N(0, I); default: the target's dimension"},
      {"hidden", "the sampler's hidden widths; default 400,400,400 (four linear layers, 003 Sec. 4.1)"},
      {"activation", "elu | gelu (exact erf) | silu | tanh | leaky-relu (slope 0.2); default elu"},
      {"score_hidden", "the score network's hidden widths; default: the sampler's"},
      {"score_activation", "default: the sampler's (fisher refuses leaky-relu: no second derivative)"},
      {"score_steps", "score-matching steps per sampler step (003: 5); default 5"},
      {"score_loss", "ssm (exact divergence) | sliced (one projection) | dsm; default ssm up to 16 dims, else sliced"},
      {"dsm_sigma", "dsm's noise level; default 0.1"},
      {"batch", "draws per phase (each phase draws its own); default 5000"},
      {"lr", "the sampler's Adam learning rate; default 2e-5"},
      {"score_lr", "the score network's; default: lr"},
  };
}

absl::StatusOr<const TrainMethod*> FindTrainMethod(const std::string& name) {
  std::vector<std::string> names;
  for (const TrainMethod* m : TrainMethods()) {
    if (m->name == name) return m;
    names.push_back(m->name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown training method '", name, "'; known: ", absl::StrJoin(names, ", ")));
}

bool TrainsDriftChain(const std::string& method) {
  const absl::StatusOr<const TrainMethod*> m = FindTrainMethod(method);
  return m.ok() && (*m)->kind == TrainKind::kDriftChain;
}

namespace {

// A field given to a method that does not read it is refused, not ignored.
absl::Status RefuseUnused(const TrainMethod& m, const TrainConfig& c) {
  std::vector<std::string> given;
  const auto check = [&](bool has, const char* name) {
    if (has) given.push_back(name);
  };
  const bool sampler = m.kind == TrainKind::kNeuralSampler, generator = m.kind == TrainKind::kGenerator;
  const bool score_model = m.kind == TrainKind::kScoreModel, gm = score_model && m.name != "dsm";
  const bool drift = m.kind == TrainKind::kDriftChain;
  if (!drift) {
    check(c.stats.has_value(), "stats");
    check(c.basis.has_value(), "basis");
    check(c.pairs.has_value(), "pairs");
    check(c.feature_bandwidth.has_value(), "feature_bandwidth");
    check(c.epsilon.has_value(), "epsilon");
    check(c.inner_steps.has_value(), "inner_steps");
    check(c.ridge.has_value(), "ridge");
  } else {
    check(c.latent.has_value(), "latent");  // the latent is x_0 ~ N(0, I_d)
  }
  if (!sampler) {
    check(c.score_hidden.has_value(), "score_hidden");
    check(c.score_activation.has_value(), "score_activation");
    check(c.score_steps.has_value(), "score_steps");
    check(c.score_loss.has_value(), "score_loss");
    check(c.dsm_sigma.has_value(), "dsm_sigma");
    check(c.score_lr.has_value(), "score_lr");
  }
  if (!generator) {
    check(c.generator.has_value(), "generator");
    check(c.eta.has_value(), "eta");
    check(c.noise.has_value(), "noise");
    check(c.bandwidth.has_value(), "bandwidth");
    check(c.optimizer.has_value(), "optimizer");
    check(c.steps_per_batch.has_value(), "steps_per_batch");
    check(c.init_std.has_value(), "init_std");
  }
  if (score_model) check(c.latent.has_value(), "latent");
  if (!score_model) check(c.sample_steps.has_value(), "sample_steps");
  if (!score_model) check(c.score_form.has_value(), "score_form");
  if (!gm) {
    check(c.gmm_components.has_value(), "gmm_components");
    check(c.gmm_covariance.has_value(), "gmm_covariance");
    check(c.noise_steps.has_value(), "noise_steps");
    check(c.dt.has_value(), "dt");
    check(c.dt_last.has_value(), "dt_last");
    check(c.times.has_value(), "times");
  }
  if (m.name != "ndsm-cv") {
    check(c.cv_every.has_value(), "cv_every");
    check(c.cv_eps.has_value(), "cv_eps");
  }
  if (given.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      absl::StrJoin(given, ", "), given.size() == 1 ? " is" : " are", " not used by method '", m.name,
      "' (samplectl train methods lists each method's parameters)"));
}

// The score models' part (004 Sec. 4's defaults): the score network on [y, t, time features], the noising
// grid, the prior and the control variate.
absl::Status ResolveScoreModel(const TrainMethod& method, const TrainConfig& config, Activation act, int64_t d,
                               const TrainLimits& limits, TrainSettings& s) {
  s.sampler = MlpShape{d + 1 + 2 * kTimeFeatures, d, config.hidden.value_or(std::vector<int64_t>(7, 32)), act};
  SAMPLED_RETURN_IF_ERROR(CheckShape("the score network", s.sampler, limits));
  s.score = MlpShape{0, 0, {}, act};  // no eps_phi unless ndsm-cv learns one
  s.batch = config.batch.value_or(250);
  s.sampler_adam.lr = config.lr.value_or(1e-3);
  s.sample_steps = config.sample_steps.value_or(1000);
  // gm: the prior's score plus a network by default (docs/api.md: 004's plain network lets grad V push
  // points off the modes where it is wrong); dsm: 004's baseline as written.
  s.score_form = config.score_form.value_or(method.name == "dsm" ? "plain" : "residual");
  if (s.score_form != "residual" && s.score_form != "plain") {
    return absl::InvalidArgumentError(absl::StrCat("unknown score_form '", s.score_form, "'; known: residual, plain"));
  }
  if (s.sample_steps < 1 || s.sample_steps > 100000) {
    return absl::InvalidArgumentError(absl::StrCat("sample_steps must be between 1 and 100000, got ", s.sample_steps));
  }
  NoisingGrid& g = s.grid;
  g.steps = config.noise_steps.value_or(g.steps);
  g.dt = config.dt.value_or(g.dt);
  g.dt_last = config.dt_last.value_or(g.dt_last);
  g.times = config.times.value_or(g.times);
  if (g.steps < 1 || g.steps > 100000) {
    return absl::InvalidArgumentError(absl::StrCat("noise_steps must be between 1 and 100000, got ", g.steps));
  }
  SAMPLED_RETURN_IF_ERROR(CheckPositive("dt", g.dt));
  SAMPLED_RETURN_IF_ERROR(CheckPositive("dt_last", g.dt_last));
  if (g.times < 1 || s.batch % g.times != 0) {
    return absl::InvalidArgumentError(absl::StrCat("times must be >= 1 and divide batch (", s.batch,
                                                   " rows = trajectories x times), got ", g.times));
  }
  s.gmm_components = config.gmm_components.value_or(0);
  if (s.gmm_components < 0 || s.gmm_components > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("gmm_components must be between 0 (BIC over 1..10) and 1000, got ", s.gmm_components));
  }
  s.gmm_covariance = config.gmm_covariance.value_or("full");
  if (s.gmm_covariance == "diagonal") s.gmm_covariance = "diag";
  SAMPLED_RETURN_IF_ERROR(ParseCovarianceType(s.gmm_covariance).status());
  s.cv_every = config.cv_every.value_or(20);
  if (s.cv_every < 1) return absl::InvalidArgumentError(absl::StrCat("cv_every must be >= 1, got ", s.cv_every));
  if (config.cv_eps.has_value()) {
    if (!std::isfinite(*config.cv_eps)) return absl::InvalidArgumentError("cv_eps must be finite");
    s.cv_eps = *config.cv_eps;
  } else if (method.name == "ndsm-cv") {
    // eps_phi(t): 004 Sec. 4's 3 x 10 (ReLU there; elu here, the nearest activation the networks have).
    s.score = MlpShape{1, 1, {10, 10, 10}, Activation::kElu};
  }
  s.score_adam.lr = s.sampler_adam.lr;
  return absl::OkStatus();
}

// sd-generator's part: the generator, the SD step and the regression (002 Alg. 2, App. C.4's defaults).
absl::Status ResolveGenerator(const TrainConfig& config, int64_t latent, Activation act, int64_t d,
                              const TrainLimits& limits, TrainSettings& s) {
  s.generator = config.generator.value_or("mlp");
  if (s.generator == "linear") {
    if (config.hidden.has_value() || config.activation.has_value()) {
      return absl::InvalidArgumentError(
          "generator linear (x = B xi + mu) has no hidden layers or activation; leave hidden and activation unset, "
          "or use generator mlp");
    }
    s.sampler = MlpShape{latent, d, {}, act};
    if (limits.max_parameters > 0 && s.sampler.parameter_count() > limits.max_parameters) {
      return absl::ResourceExhaustedError(absl::StrCat("the generator has ", s.sampler.parameter_count(),
                                                       " parameters, past the server's limit of ",
                                                       limits.max_parameters));
    }
  } else if (s.generator == "mlp") {
    s.sampler = MlpShape{latent, d, config.hidden.value_or(kDefaultHidden), act};
    SAMPLED_RETURN_IF_ERROR(CheckShape("the generator", s.sampler, limits));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown generator '", s.generator, "'; known: mlp, linear"));
  }
  s.score = MlpShape{0, 0, {}, act};  // no score network
  s.eta = config.eta.value_or(1.0);
  SAMPLED_RETURN_IF_ERROR(CheckPositive("eta", s.eta));
  s.noise = config.noise.value_or("");
  s.bandwidth = config.bandwidth.value_or("");
  // Plain SGD on the summed loss, as Alg. 2 writes it, for the linear generator (002 App. C.4); Adam for an
  // MLP, where SGD at 1e-3 on a sum over 1024 rows diverged within 5 iterations on 2-D data (docs/api.md).
  const std::string optimizer = config.optimizer.value_or(s.generator == "linear" ? "sgd" : "adam");
  if (optimizer != "sgd" && optimizer != "adam") {
    return absl::InvalidArgumentError(absl::StrCat("unknown optimizer '", optimizer, "'; known: sgd, adam"));
  }
  s.sgd = optimizer == "sgd";
  s.steps_per_batch = config.steps_per_batch.value_or(1);
  if (s.steps_per_batch < 1 || s.steps_per_batch > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps_per_batch must be between 1 and 1000, got ", s.steps_per_batch));
  }
  if (config.init_std.has_value()) {
    SAMPLED_RETURN_IF_ERROR(CheckPositive("init_std", *config.init_std));
    s.init_std = *config.init_std;
  }
  s.batch = config.batch.value_or(1024);
  s.sampler_adam.lr = config.lr.value_or(1e-3);
  return absl::OkStatus();
}

// ingd's part: the drift network, the statistics and the fit (000 Alg. 1, Eq. 7).
absl::Status ResolveDriftChain(const TrainConfig& config, Activation act, int64_t d, const TrainLimits& limits,
                               TrainSettings& s) {
  s.sampler = MlpShape{d, d, config.hidden.value_or(std::vector<int64_t>{67}), act};
  SAMPLED_RETURN_IF_ERROR(CheckShape("the drift network", s.sampler, limits));
  s.score = MlpShape{0, 0, {}, act};
  const auto put = [&](const char* key, const std::optional<std::string>& v) {
    if (v) s.statistics[key] = *v;
  };
  put("stats", config.stats);
  put("pairs", config.pairs);
  put("feature_bandwidth", config.feature_bandwidth);
  if (config.basis) s.statistics["basis"] = absl::StrCat(*config.basis);
  s.epsilon = config.epsilon.value_or(0.1);
  SAMPLED_RETURN_IF_ERROR(CheckPositive("epsilon", s.epsilon));
  s.inner_steps = config.inner_steps.value_or(100);
  if (s.inner_steps < 1 || s.inner_steps > 100000) {
    return absl::InvalidArgumentError(absl::StrCat("inner_steps must be between 1 and 100000, got ", s.inner_steps));
  }
  s.ridge = config.ridge.value_or(1e-3);
  if (!(s.ridge >= 0) || !std::isfinite(s.ridge)) {
    return absl::InvalidArgumentError(absl::StrCat("ridge must be a finite number >= 0, got ", s.ridge));
  }
  s.batch = config.batch.value_or(1000);
  s.sampler_adam.lr = config.lr.value_or(1e-2);
  return absl::OkStatus();
}

// kl and fisher's part: the sampler and its score network (003 Sec. 4.1's defaults).
absl::Status ResolveNeuralSampler(const TrainMethod& method, const TrainConfig& config, int64_t latent,
                                  Activation act, int64_t d, const TrainLimits& limits, TrainSettings& s) {
  SAMPLED_ASSIGN_OR_RETURN(const Activation score_act,
                           ParseActivation(config.score_activation.value_or(ActivationName(act))));
  s.sampler = MlpShape{latent, d, config.hidden.value_or(kDefaultHidden), act};
  s.score = MlpShape{d, d, config.score_hidden.value_or(s.sampler.hidden), score_act};
  SAMPLED_RETURN_IF_ERROR(CheckShape("the sampler", s.sampler, limits));
  SAMPLED_RETURN_IF_ERROR(CheckShape("the score network", s.score, limits));
  if (method.needs_twice_differentiable_score && !IsTwiceDifferentiable(score_act)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "method '", method.name, "' differentiates the score network twice in x (003 Sec. 3.2: the gradient of its "
        "divergence); score_activation '", ActivationName(score_act),
        "' has no second derivative. Use elu, gelu, silu or tanh for the score network"));
  }
  s.score_steps = config.score_steps.value_or(5);
  if (s.score_steps < 0) {
    return absl::InvalidArgumentError(absl::StrCat("score_steps must be >= 0, got ", s.score_steps));
  }
  if (config.score_loss) {
    SAMPLED_ASSIGN_OR_RETURN(s.score_loss, ParseScoreLoss(*config.score_loss));
  } else {
    s.score_loss = d <= kExactDivergenceMaxDim ? ScoreLoss::kSsm : ScoreLoss::kSliced;
  }
  s.dsm_sigma = config.dsm_sigma.value_or(0.1);
  SAMPLED_RETURN_IF_ERROR(CheckPositive("dsm_sigma", s.dsm_sigma));
  if (config.dsm_sigma && s.score_loss != ScoreLoss::kDsm) {
    return absl::InvalidArgumentError("dsm_sigma is used only with score_loss dsm");
  }
  s.batch = config.batch.value_or(5000);
  s.sampler_adam.lr = config.lr.value_or(2e-5);
  s.score_adam.lr = config.score_lr.value_or(s.sampler_adam.lr);
  SAMPLED_RETURN_IF_ERROR(CheckPositive("score_lr", s.score_adam.lr));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainSettings> ResolveTrainConfig(const TrainConfig& config, const Target& target,
                                                 const TrainLimits& limits) {
  SAMPLED_ASSIGN_OR_RETURN(const TrainMethod* method, FindTrainMethod(config.method));
  if (method->needs_samples() && target.samples() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training method '", method->name, "' trains from data: give a data target (uploaded samples); this target is ",
        "defined by ", target.family(), " (train kl or fisher on a density, or upload samples of it)"));
  }
  if (!method->needs_samples() && !target.has_density()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training method '", method->name, "' needs a target with a density (its score); this target is defined by ",
        target.family(), " (train a generator or a score model on data targets instead: sd-generator, ingd, ndsm, "
        "ndsm-cv, dsm)"));
  }
  SAMPLED_RETURN_IF_ERROR(RefuseUnused(*method, config));
  TrainSettings s;
  s.method = method->name;
  const int64_t d = target.dim();
  const int64_t latent = config.latent.value_or(d);
  if (latent <= 0) return absl::InvalidArgumentError(absl::StrCat("latent must be > 0, got ", latent));
  if (limits.max_width > 0 && latent > limits.max_width) {
    return absl::ResourceExhaustedError(
        absl::StrCat("latent ", latent, " is past the server's limit of ", limits.max_width, " (--max-train-width)"));
  }
  const bool score_model = method->kind == TrainKind::kScoreModel;
  SAMPLED_ASSIGN_OR_RETURN(const Activation act,
                           ParseActivation(config.activation.value_or(score_model ? "gelu" : "elu")));
  if (score_model) {
    SAMPLED_RETURN_IF_ERROR(ResolveScoreModel(*method, config, act, d, limits, s));
  } else if (method->kind == TrainKind::kGenerator) {
    SAMPLED_RETURN_IF_ERROR(ResolveGenerator(config, latent, act, d, limits, s));
  } else if (method->kind == TrainKind::kDriftChain) {
    SAMPLED_RETURN_IF_ERROR(ResolveDriftChain(config, act, d, limits, s));
  } else {
    SAMPLED_RETURN_IF_ERROR(ResolveNeuralSampler(*method, config, latent, act, d, limits, s));
  }
  if (s.batch <= 0) return absl::InvalidArgumentError(absl::StrCat("batch must be > 0, got ", s.batch));
  if (limits.max_batch > 0 && s.batch > limits.max_batch) {
    return absl::ResourceExhaustedError(
        absl::StrCat("batch ", s.batch, " is past the server's limit of ", limits.max_batch, " (--max-train-batch)"));
  }
  SAMPLED_RETURN_IF_ERROR(CheckPositive("lr", s.sampler_adam.lr));
  s.seed = config.seed;
  s.threads = config.threads;
  return s;
}

absl::StatusOr<std::unique_ptr<Trainer>> CreateTrainer(const TrainSettings& settings,
                                                       std::shared_ptr<const Target> target) {
  SAMPLED_ASSIGN_OR_RETURN(const TrainMethod* method, FindTrainMethod(settings.method));
  return method->create(settings, std::move(target));
}

}  // namespace sampled::training
