// The registry of trainers and what every method shares: defaults (003 Sec. 4.1), validation, creation.
#include <cmath>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
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
  static const std::vector<const TrainMethod*> methods = {&KlTrainMethod(), &FisherTrainMethod()};
  return methods;
}

std::vector<std::pair<std::string, std::string>> TrainFieldDocs() {
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

absl::StatusOr<TrainSettings> ResolveTrainConfig(const TrainConfig& config, const Target& target,
                                                 const TrainLimits& limits) {
  SAMPLED_ASSIGN_OR_RETURN(const TrainMethod* method, FindTrainMethod(config.method));
  if (!target.has_density()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training method '", method->name, "' needs a target with a density (its score); this target is defined by ",
        target.family(), " (train a generator on data targets instead)"));
  }
  TrainSettings s;
  s.method = method->name;
  const int64_t d = target.dim();
  const int64_t latent = config.latent.value_or(d);
  if (latent <= 0) return absl::InvalidArgumentError(absl::StrCat("latent must be > 0, got ", latent));
  if (limits.max_width > 0 && latent > limits.max_width) {
    return absl::ResourceExhaustedError(
        absl::StrCat("latent ", latent, " is past the server's limit of ", limits.max_width, " (--max-train-width)"));
  }
  SAMPLED_ASSIGN_OR_RETURN(const Activation act, ParseActivation(config.activation.value_or("elu")));
  SAMPLED_ASSIGN_OR_RETURN(const Activation score_act,
                           ParseActivation(config.score_activation.value_or(ActivationName(act))));
  s.sampler = MlpShape{latent, d, config.hidden.value_or(kDefaultHidden), act};
  s.score = MlpShape{d, d, config.score_hidden.value_or(s.sampler.hidden), score_act};
  SAMPLED_RETURN_IF_ERROR(CheckShape("the sampler", s.sampler, limits));
  SAMPLED_RETURN_IF_ERROR(CheckShape("the score network", s.score, limits));
  if (method->needs_twice_differentiable_score && !IsTwiceDifferentiable(score_act)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "method '", method->name, "' differentiates the score network twice in x (003 Sec. 3.2: the gradient of its "
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
  if (s.batch <= 0) return absl::InvalidArgumentError(absl::StrCat("batch must be > 0, got ", s.batch));
  if (limits.max_batch > 0 && s.batch > limits.max_batch) {
    return absl::ResourceExhaustedError(
        absl::StrCat("batch ", s.batch, " is past the server's limit of ", limits.max_batch, " (--max-train-batch)"));
  }
  s.sampler_adam.lr = config.lr.value_or(2e-5);
  s.score_adam.lr = config.score_lr.value_or(s.sampler_adam.lr);
  SAMPLED_RETURN_IF_ERROR(CheckPositive("lr", s.sampler_adam.lr));
  SAMPLED_RETURN_IF_ERROR(CheckPositive("score_lr", s.score_adam.lr));
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
