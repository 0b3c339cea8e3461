// The one interface every trainer implements, the value a training run's state is, and the registry that
// maps a method name to its factory: the same shape as core/flows/flow.h. A training step lives in
// core/training/<method>_trainer.cc; the score phase the neural samplers share in score_matching.cc; a new
// method is a new file plus one line in trainer_registry.cc.
//
// 003 Alg. 1: a neural implicit sampler x = g(z), z ~ N(0, I_latent), trained against an unnormalised
// density q with a score network s_phi(x) that tracks the sampler's own score. Each iteration runs K score
// steps (score matching on a fresh, detached batch of draws each) and then one sampler step on a fresh
// latent batch.
#ifndef SAMPLED_CORE_TRAINING_TRAINER_H_
#define SAMPLED_CORE_TRAINING_TRAINER_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/rng.h"
#include "core/targets/target.h"
#include "core/training/adam.h"
#include "core/training/mlp.h"
#include "core/training/sampler.h"
#include "core/training/score_sde.h"

namespace sampled::training {

// How the score phase fits s_phi to the sampler's draws x (each a mean over the batch):
//   ssm:    |s(x)|^2 + 2 div s(x), the divergence exact (d forward-mode tangents; 003 Alg. 1)
//   sliced: |s(x)|^2 + 2 v^T J_s(x) v, one v ~ N(0, I) per draw (Song et al. 2019; one tangent for any d)
//   dsm:    |s(x + sigma e) + e / sigma|^2, e ~ N(0, I) (Vincent 2011; no derivative in x)
enum class ScoreLoss { kSsm, kSliced, kDsm };
const char* ScoreLossName(ScoreLoss l);
absl::StatusOr<ScoreLoss> ParseScoreLoss(const std::string& name);

// Above this dimension the default score loss is sliced instead of ssm (ssm's cost grows with d).
constexpr int64_t kExactDivergenceMaxDim = 16;

// What a caller asks of a trainer; unset fields take the defaults of 003 Sec. 4.1 (documented in
// docs/api.md and by `samplectl train methods`).
struct TrainConfig {
  std::string method;                              // "kl" | "fisher"
  std::optional<int64_t> latent;                   // default: the target's dimension
  std::optional<std::vector<int64_t>> hidden;      // sampler's hidden widths; default 400, 400, 400
  std::optional<std::string> activation;           // default "elu"
  std::optional<std::vector<int64_t>> score_hidden;  // default: the sampler's
  std::optional<std::string> score_activation;     // default: the sampler's
  std::optional<int64_t> score_steps;              // K; default 5
  std::optional<std::string> score_loss;           // default ssm up to kExactDivergenceMaxDim, else sliced
  std::optional<double> dsm_sigma;                 // default 0.1
  std::optional<int64_t> batch;                    // default 5000
  std::optional<double> lr;                        // sampler's Adam step; default 2e-5
  std::optional<double> score_lr;                  // default: lr
  // Generators trained from data (sd-generator; docs/api.md lists which method takes which).
  std::optional<std::string> generator;            // "mlp" (default) | "linear": x = B xi + mu
  std::optional<double> eta;                       // the SD step of 002 Alg. 2; default 1
  std::optional<std::string> noise;                // a noise rule (core/flows/schedule.h) or nearest-mean:F
  std::optional<std::string> bandwidth;            // a bandwidth rule; default: follows the noise
  std::optional<std::string> optimizer;            // "sgd" (002 Alg. 2, the default there) | "adam"
  std::optional<int64_t> steps_per_batch;          // regression steps on one batch's targets; default 1
  std::optional<double> init_std;                  // generator weights ~ N(0, init_std^2), biases 0
  // Score models trained from data (ndsm, ndsm-cv, dsm; 004). hidden and activation are the score network's.
  std::optional<int64_t> gmm_components;           // the prior's K; default 0: chosen by BIC over 1..10
  std::optional<std::string> gmm_covariance;       // full (default) | diag | spherical
  std::optional<int64_t> noise_steps;              // n_f; default 50
  std::optional<double> dt;                        // Delta t_n for n < N; default 0.00998
  std::optional<double> dt_last;                   // Delta t_N; default 1e-3
  std::optional<int64_t> times;                    // random times read per trajectory; default 5
  std::optional<int64_t> cv_every;                 // N_CV; default 20
  std::optional<double> cv_eps;                    // ndsm-cv: a fixed eps instead of the learned eps_phi(t)
  std::optional<int64_t> sample_steps;             // reverse steps of a draw that does not say; default 1000
  std::optional<std::string> score_form;           // residual (gm default) | plain (004's network; dsm default)
  // Natural-gradient generators (ingd; 000 Alg. 1 with the drift model). hidden, activation, lr and batch are
  // the drift network's and the particle cloud's.
  std::optional<std::string> stats;                // gaussian | rbf (default) | rbf+pairs: KiNG's statistics
  std::optional<int64_t> basis;                    // RBF basis points; default 100
  std::optional<std::string> pairs;                // rbf+pairs: "0-1,2-5"
  std::optional<std::string> feature_bandwidth;    // RBF bandwidth rule; default median-scaled:0.5
  std::optional<double> epsilon;                   // the time step of a drift; default 0.1
  std::optional<int64_t> inner_steps;              // Adam steps fitting each drift (Eq. 7); default 100
  std::optional<double> ridge;                     // added to F = Cov_q[T]'s diagonal; default 1e-3
  uint64_t seed = 0;
  int threads = 0;                                 // 0: DefaultComputeThreads()
};

// The forward noising of a gm batch (004 Alg. 1, Remark 3.1; the defaults of 004 Sec. 4) and the vp batch's
// smallest time.
struct NoisingGrid {
  int64_t steps = 50;     // n_f
  double dt = 0.00998;    // Delta t_n for n < N
  double dt_last = 1e-3;  // Delta t_N
  int64_t times = 5;      // random times read per trajectory (trajectories per batch: batch / times)
  double t_min = 1e-5;    // vp: the smallest training time
  // T: the time of a path's last step (the reverse dynamics start there).
  double t_end() const { return static_cast<double>(steps - 1) * dt + dt_last; }
};

// The configuration with every default filled in and checked: what a run used (provenance).
struct TrainSettings {
  std::string method;
  MlpShape sampler;  // latent -> d
  MlpShape score;    // d -> d
  int64_t score_steps = 5;
  ScoreLoss score_loss = ScoreLoss::kSsm;
  double dsm_sigma = 0.1;
  int64_t batch = 5000;
  AdamConfig sampler_adam, score_adam;
  // Generators trained from data.
  std::string generator = "mlp";
  double eta = 1.0;
  std::string noise, bandwidth;  // as given (empty: the method's default), resolved by the trainer
  bool sgd = false;              // the generator's optimiser: plain SGD at sampler_adam.lr instead of Adam
  int64_t steps_per_batch = 1;
  double init_std = 0;           // 0: torch.nn.Linear's initialisation
  // Score models (004): the score network is `sampler` (in: d + 1 + 2 x time features), eps_phi is `score`
  // (ndsm-cv with a learned eps: 1 -> 10, 10, 10 -> 1; otherwise in = 0, none).
  NoisingGrid grid;
  int64_t gmm_components = 0;
  std::string gmm_covariance = "full";
  int64_t cv_every = 20;
  double cv_eps = 0;             // the fixed eps (ndsm: 0); unused when eps_phi is learned
  int64_t sample_steps = 1000;
  std::string score_form = "plain";  // "residual": s = the noising's stationary score + the network
  // ingd: `sampler` is one drift's network (d -> d); the statistics as KiNG's options (stats, basis, pairs,
  // feature_bandwidth; core/flows/king_common.h reads them).
  std::map<std::string, std::string> statistics;
  double epsilon = 0.1;
  int64_t inner_steps = 100;
  double ridge = 1e-3;
  uint64_t seed = 0;
  int threads = 0;
};

// Limits a server puts on what one run may ask for (zero: unlimited).
struct TrainLimits {
  int64_t max_width = 0;       // any hidden width or the latent dimension
  int64_t max_layers = 0;      // hidden layers per network
  int64_t max_batch = 0;
  int64_t max_parameters = 0;  // per network
};

// A network's trainable part.
struct Network {
  std::vector<float> params;
  AdamState adam;
  friend bool operator==(const Network& a, const Network& b) { return a.params == b.params && a.adam == b.adam; }
};

// A run's whole mutable state as a plain value: copy it to snapshot, serialise it to checkpoint.
struct TrainingState {
  Network sampler;  // g
  Network score;    // s_phi
  Rng rng;
  int64_t step = 0;  // iterations (score phase + sampler step) taken
  // The best checkpoint so far by the caller's evaluation metric (lower is better); empty before one.
  std::vector<float> best_params;
  int64_t best_step = -1;
  double best_metric = std::numeric_limits<double>::quiet_NaN();
  // Scalars a method fixes once and keeps (sd-generator's nearest-mean noise level).
  std::map<std::string, double> values;
  // ingd: the drifts taken so far, one network after another (`sampler` is the last, where the next starts).
  std::vector<float> chain;
};

// Statistics of one iteration.
struct TrainStats {
  int64_t step = 0;          // the iteration number after it (1 for the first)
  double score_loss = 0;     // the score phase's last loss
  double sampler_loss = 0;   // the sampler step's objective (KL: the surrogate's value; Fisher: Eq. 9)
  double sampler_grad_norm = 0;
};

// A configured trainer bound to its target, with the scratch memory its steps reuse. Not thread-safe.
class Trainer {
 public:
  virtual ~Trainer() = default;
  // One iteration. On error (FAILED_PRECONDITION: a loss or gradient turned non-finite, naming which and
  // where) `state` is left unchanged, so its weights are the last finite ones.
  virtual absl::Status Step(TrainingState& state, TrainStats* stats) = 0;
  virtual const TrainSettings& settings() const = 0;
  // A score model's draws (004): what a sampler of its weights needs besides them; null for the
  // generators and neural samplers (draws x = g(z)).
  virtual const ScoreSdeModel* score_model() const { return nullptr; }
  // What a sampler of the run's state is made of: the sampler network's weights, or (ingd) the chain of drifts,
  // whose settings drift_chain() gives (nullopt for every other method).
  virtual const std::vector<float>& SamplerWeights(const TrainingState& state) const { return state.sampler.params; }
  virtual std::optional<DriftChain> drift_chain() const { return std::nullopt; }
};

// What a method learns and from what (each kind reads its own TrainConfig fields; TrainFieldDocs lists them):
//   kNeuralSampler: a sampler x = g(z) and a score network, from a density (kl, fisher)
//   kGenerator:     a generator x = g(xi), from data (sd-generator)
//   kScoreModel:    a score network s(y, t) drawn from by reverse dynamics, from data (ndsm, ndsm-cv, dsm)
//   kDriftChain:    a chain of drift networks from x_0 ~ N(0, I), from data (ingd)
enum class TrainKind { kNeuralSampler, kGenerator, kScoreModel, kDriftChain };

struct TrainMethod {
  std::string name;
  std::string summary;
  bool needs_twice_differentiable_score = false;  // the objective differentiates s_phi in x twice
  std::function<absl::StatusOr<std::unique_ptr<Trainer>>(const TrainSettings&, std::shared_ptr<const Target>)>
      create;
  TrainKind kind = TrainKind::kNeuralSampler;
  bool needs_samples() const { return kind != TrainKind::kNeuralSampler; }  // trains from a data target's points
};

// Every built-in method, in a fixed order.
const std::vector<const TrainMethod*>& TrainMethods();
// The TrainConfig fields a method takes, with what they do and their defaults, for listings.
std::vector<std::pair<std::string, std::string>> TrainFieldDocs(const TrainMethod& method);
// INVALID_ARGUMENT naming the known methods.
absl::StatusOr<const TrainMethod*> FindTrainMethod(const std::string& name);
// Whether `method` is a known method of kind kDriftChain (its sampler is a chain that grows a drift a step).
bool TrainsDriftChain(const std::string& method);

// Fills in the defaults and checks `config` against its method, the target and `limits`: INVALID_ARGUMENT
// for an unknown method, activation or score loss, or a value out of range (RESOURCE_EXHAUSTED past a
// limit, naming it); FAILED_PRECONDITION for a target without a density, or a score network that the
// method needs twice differentiable with an activation that is not (saying why).
absl::StatusOr<TrainSettings> ResolveTrainConfig(const TrainConfig& config, const Target& target,
                                                 const TrainLimits& limits = {});
absl::StatusOr<std::unique_ptr<Trainer>> CreateTrainer(const TrainSettings& settings,
                                                       std::shared_ptr<const Target> target);

// The state at step 0: both networks initialised as torch.nn.Linear does, from Rng(seed), which the state
// then keeps. `from_sampler` (continue training): start the sampler from these weights instead (they must
// fit settings.sampler; INVALID_ARGUMENT otherwise).
absl::StatusOr<TrainingState> MakeInitialTrainingState(const TrainSettings& settings,
                                                       const std::vector<float>* from_sampler = nullptr);

// A versioned little-endian binary encoding of the whole state, and back (INVALID_ARGUMENT for bytes that
// are not one).
std::string SerializeTrainingState(const TrainingState& state);
absl::StatusOr<TrainingState> ParseTrainingState(std::string_view bytes);

// The FAILED_PRECONDITION a Step returns when a loss or gradient turned non-finite carries a payload
// (kNonFinitePayload), so that a caller can tell it from other failures.
constexpr char kNonFinitePayload[] = "sampled.dev/non-finite";
absl::Status NonFiniteError(std::string_view message);
bool IsNonFinite(const absl::Status& status);

// The methods, one per file.
const TrainMethod& KlTrainMethod();
const TrainMethod& FisherTrainMethod();
const TrainMethod& SdGeneratorTrainMethod();
const TrainMethod& NdsmTrainMethod();
const TrainMethod& NdsmCvTrainMethod();
const TrainMethod& DsmTrainMethod();
const TrainMethod& IngdTrainMethod();

// What the trainers share.
// The end of every trainer's iteration, once it is known to be finite (the caller has moved its networks in):
// the generator it used is committed, the step count becomes done.step, and `stats` (when not null) gets
// `done`.
void CommitIteration(const Rng& rng, const TrainStats& done, TrainingState& state, TrainStats* stats);
bool AllFinite(const std::vector<float>& v);
double Norm(const std::vector<float>& v);
int ThreadsOf(const TrainSettings& settings);  // settings.threads, or DefaultComputeThreads()

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_TRAINER_H_
