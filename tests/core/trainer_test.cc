#include "core/training/trainer.h"

#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/LU>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"
#include "core/targets/torch_density.h"
#include "core/training/neural_sampler.h"
#include "tests/core/torch_mlp_reference.h"

namespace sampled::training {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Target> Family(const std::string& name) {
  auto t = CreateAnalyticTarget(name, 2, {});
  EXPECT_TRUE(t.ok()) << t.status();
  return std::shared_ptr<const Target>(std::move(*t));
}

TrainConfig SmallConfig(const std::string& method) {
  TrainConfig c;
  c.method = method;
  c.hidden = std::vector<int64_t>{16, 16};
  c.batch = 300;
  c.score_steps = 2;
  c.seed = 7;
  c.threads = 2;
  return c;
}

// The divergence of f (n x d) in x by autograd, keeping the graph (as peer_train.py computes it).
torch::Tensor Divergence(const torch::Tensor& f, const torch::Tensor& x) {
  torch::Tensor div = torch::zeros({x.size(0)}, torch::kFloat64);
  for (int64_t c = 0; c < x.size(1); ++c) {
    div = div + torch::autograd::grad({f.select(1, c).sum()}, {x}, {}, true, true)[0].select(1, c);
  }
  return div;
}

class ScoreLossTest : public ::testing::TestWithParam<ScoreLoss> {};

// A score loss and its gradient in phi computed in T, against float64 autograd of the formula on the same
// inputs (relative `bound`).
template <typename T>
void CheckScoreLoss(ScoreLoss kind, double bound) {
  const MlpShape shape{2, 2, {16, 16}, Activation::kElu};
  Rng rng(3);
  const std::vector<float> init = InitialParameters(shape, rng);
  const std::vector<T> params(init.begin(), init.end());
  const PointsT<T> x = Random(300, 2, 4, 1.5f).cast<T>(), noise = Random(300, 2, 5).cast<T>();
  ScoreWorkspace<T> ws;
  std::vector<T> grad;
  const double loss = ScoreMatchingLoss(shape, params, x, kind, 0.3, noise, 2, ws, &grad);

  Reference ref = MakeReference(shape, params);
  torch::Tensor tx = ToTorch(x).requires_grad_(true), tn = ToTorch(noise);
  torch::Tensor tloss;
  if (kind == ScoreLoss::kDsm) {
    tloss = (ref.Forward(tx + 0.3 * tn, shape) + tn / 0.3).pow(2).sum(1).mean();
  } else {
    const torch::Tensor s = ref.Forward(tx, shape);
    torch::Tensor term;
    if (kind == ScoreLoss::kSsm) {
      term = Divergence(s, tx);
    } else {  // v^T J v = v . grad_x <s, v>
      term = (torch::autograd::grad({(s * tn).sum()}, {tx}, {}, true, true)[0] * tn).sum(1);
    }
    tloss = (s.pow(2).sum(1) + 2 * term).mean();
  }
  tloss.backward();
  const std::string what = std::string(ScoreLossName(kind)) + (std::is_same_v<T, float> ? " float32" : " float64");
  EXPECT_NEAR(loss, tloss.item<double>(), bound * (1 + std::abs(loss))) << what;
  EXPECT_LT(MaxRelError(grad, FlatGradient(ref)), bound) << what;
}

TEST_P(ScoreLossTest, MatchesAutograd) {
  CheckScoreLoss<float>(GetParam(), 1e-4);
  CheckScoreLoss<double>(GetParam(), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(EveryLoss, ScoreLossTest,
                         ::testing::Values(ScoreLoss::kSsm, ScoreLoss::kSliced, ScoreLoss::kDsm),
                         [](const auto& info) { return std::string(ScoreLossName(info.param)); });

class SamplerGradientTest : public ::testing::TestWithParam<std::string> {};

// The sampler step's objective and theta-gradient computed in T against float64 autograd of peer_train.py's
// sampler_loss on the same weights and latents: KL: mean <sg(s_phi(x) - s_q(x)), x>; Fisher: Eq. 9 with
// s_phi frozen (relative `bound`).
template <typename T>
void CheckSamplerGradient(const std::string& method, double bound) {
  for (const std::string family : {"mixture", "rosenbrock", "funnel"}) {
    auto target = Family(family);
    TrainConfig config = SmallConfig(method);
    config.activation = "gelu";
    auto settings = ResolveTrainConfig(config, *target);
    ASSERT_TRUE(settings.ok()) << settings.status();
    auto state = MakeInitialTrainingState(*settings);
    ASSERT_TRUE(state.ok());
    auto objective = MakeSamplerObjective<T>(method, target);
    ASSERT_TRUE(objective.ok()) << objective.status();
    NeuralSamplerGradients<T> gradients(*settings, *std::move(objective));
    const std::vector<T> gen(state->sampler.params.begin(), state->sampler.params.end());
    const std::vector<T> score(state->score.params.begin(), state->score.params.end());
    const PointsT<T> z = Random(300, 2, 11, 0.5f).cast<T>();
    double loss;
    std::vector<T> grad;
    PointsT<T> x;
    ASSERT_TRUE(gradients.Sampler(gen, score, z, &loss, &grad, &x).ok());

    Reference g = MakeReference(settings->sampler, gen);
    Reference s = MakeReference(settings->score, score);
    auto density = target->torch_log_density();
    ASSERT_TRUE(density.ok());
    const torch::Tensor tx = g.Forward(ToTorch(z), settings->sampler);
    torch::Tensor tloss;
    if (method == "kl") {
      const torch::Tensor xd = tx.detach().requires_grad_(true);
      const torch::Tensor sq = torch::autograd::grad({(**density)(xd).sum()}, {xd})[0];
      const torch::Tensor direction = (s.Forward(xd, settings->score) - sq).detach();
      tloss = (direction * tx).sum(1).mean();
    } else {
      const torch::Tensor sq = torch::autograd::grad({(**density)(tx).sum()}, {tx}, {}, true, true)[0];
      const torch::Tensor sp = s.Forward(tx, settings->score);
      tloss = 0.5 * (sq.pow(2).sum(1) - sp.pow(2).sum(1) + 2 * (Divergence(sq, tx) - Divergence(sp, tx))).mean();
    }
    tloss.backward();
    const std::string what = method + " " + family + (std::is_same_v<T, float> ? " float32" : " float64");
    EXPECT_NEAR(loss, tloss.item<double>(), bound * (1 + std::abs(loss))) << what;
    EXPECT_LT(MaxRelError(grad, FlatGradient(g)), bound) << what;
  }
}

TEST_P(SamplerGradientTest, MatchesAutograd) {
  CheckSamplerGradient<float>(GetParam(), 1e-4);
  CheckSamplerGradient<double>(GetParam(), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(BothMethods, SamplerGradientTest, ::testing::Values("kl", "fisher"));

class TrainerResumeTest : public ::testing::TestWithParam<std::string> {};

// Train k steps, serialise, restore into a fresh trainer, train k more: the same bits as 2k steps.
TEST_P(TrainerResumeTest, SerialisedStateResumesBitForBit) {
  auto target = Family("mixture");
  TrainConfig config = SmallConfig(GetParam());
  config.lr = 1e-3;
  auto settings = ResolveTrainConfig(config, *target);
  ASSERT_TRUE(settings.ok()) << settings.status();
  auto straight = MakeInitialTrainingState(*settings);
  ASSERT_TRUE(straight.ok());
  TrainingState resumed = *straight;
  auto t1 = CreateTrainer(*settings, target);
  ASSERT_TRUE(t1.ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE((*t1)->Step(*straight, nullptr).ok());

  auto t2 = CreateTrainer(*settings, target);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*t2)->Step(resumed, nullptr).ok());
  resumed.best_params = resumed.sampler.params;
  resumed.best_step = 3;
  resumed.best_metric = 0.25;
  auto parsed = ParseTrainingState(SerializeTrainingState(resumed));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->best_params, resumed.best_params);
  EXPECT_EQ(parsed->best_step, 3);
  EXPECT_EQ(parsed->best_metric, 0.25);
  auto t3 = CreateTrainer(*settings, target);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*t3)->Step(*parsed, nullptr).ok());
  EXPECT_EQ(parsed->step, 6);
  EXPECT_TRUE(parsed->sampler == straight->sampler);
  EXPECT_TRUE(parsed->score == straight->score);
  EXPECT_TRUE(parsed->rng == straight->rng);
}

INSTANTIATE_TEST_SUITE_P(BothMethods, TrainerResumeTest, ::testing::Values("kl", "fisher"));

TEST(TrainingStateTest, MalformedBytesAreRefused) {
  auto target = Family("gaussian");
  auto settings = ResolveTrainConfig(SmallConfig("kl"), *target);
  const std::string bytes = SerializeTrainingState(*MakeInitialTrainingState(*settings));
  EXPECT_EQ(ParseTrainingState("nonsense").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTrainingState(bytes.substr(0, bytes.size() / 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTrainingState(bytes + "x").status().code(), absl::StatusCode::kInvalidArgument);
}

// What a user gets wrong is refused with the right code and a message that names it.
TEST(TrainConfigTest, BadConfigurationsAreRefused) {
  auto target = Family("mixture");
  auto code_and_message = [&](const TrainConfig& c, const TrainLimits& limits = {}) {
    auto s = ResolveTrainConfig(c, *target, limits);
    EXPECT_FALSE(s.ok());
    return std::make_pair(s.status().code(), std::string(s.status().message()));
  };
  TrainConfig c = SmallConfig("fisher");
  c.score_activation = "leaky-relu";
  auto [code, message] = code_and_message(c);
  EXPECT_EQ(code, absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(message, HasSubstr("second derivative"));
  c = SmallConfig("kl");
  c.score_activation = "leaky-relu";  // KL differentiates s_phi once: allowed
  EXPECT_TRUE(ResolveTrainConfig(c, *target).ok());

  c = SmallConfig("langevin");
  EXPECT_THAT(code_and_message(c).second, HasSubstr("known: kl, fisher"));
  c = SmallConfig("kl");
  c.activation = "relu";
  EXPECT_EQ(code_and_message(c).first, absl::StatusCode::kInvalidArgument);
  c = SmallConfig("kl");
  c.batch = 0;
  EXPECT_THAT(code_and_message(c).second, HasSubstr("batch must be > 0"));
  c = SmallConfig("kl");
  c.lr = -1;
  EXPECT_THAT(code_and_message(c).second, HasSubstr("lr"));
  c = SmallConfig("kl");
  c.dsm_sigma = 0.5;
  EXPECT_THAT(code_and_message(c).second, HasSubstr("only with score_loss dsm"));
  c = SmallConfig("kl");
  c.hidden = std::vector<int64_t>{100000};
  TrainLimits limits;
  limits.max_width = 4096;
  auto [lcode, lmessage] = code_and_message(c, limits);
  EXPECT_EQ(lcode, absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(lmessage, HasSubstr("100000"));
  c = SmallConfig("kl");
  c.batch = 1 << 20;
  limits.max_batch = 65536;
  EXPECT_EQ(code_and_message(c, limits).first, absl::StatusCode::kResourceExhausted);

  auto data = EmpiricalTarget::Create(Random(10, 2, 1).cast<double>());
  ASSERT_TRUE(data.ok());
  auto s = ResolveTrainConfig(SmallConfig("kl"), **data);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("needs a target with a density"));
}

TEST(TrainConfigTest, DefaultsAreThoseOf003) {
  auto target = Family("mixture");
  TrainConfig c;
  c.method = "kl";
  auto s = ResolveTrainConfig(c, *target);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->sampler, (MlpShape{2, 2, {400, 400, 400}, Activation::kElu}));
  EXPECT_EQ(s->score, (MlpShape{2, 2, {400, 400, 400}, Activation::kElu}));
  EXPECT_EQ(s->batch, 5000);
  EXPECT_EQ(s->score_steps, 5);
  EXPECT_EQ(s->score_loss, ScoreLoss::kSsm);
  EXPECT_EQ(s->sampler_adam.lr, 2e-5);
  EXPECT_EQ(s->score_adam.lr, 2e-5);
}

// A run whose loss turns non-finite fails saying so and leaves the state as it was: the last finite weights.
TEST(TrainerTest, NonFiniteLossFailsAndKeepsTheLastFiniteState) {
  auto target = Family("gaussian");
  TrainConfig config = SmallConfig("kl");
  config.lr = 1e8;
  config.score_lr = 1e8;
  auto settings = ResolveTrainConfig(config, *target);
  auto state = MakeInitialTrainingState(*settings);
  auto trainer = CreateTrainer(*settings, target);
  absl::Status status;
  TrainingState before;
  for (int i = 0; i < 200 && status.ok(); ++i) {
    before = *state;
    status = (*trainer)->Step(*state, nullptr);
  }
  ASSERT_FALSE(status.ok()) << "the loss never turned non-finite";
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("non-finite"));
  EXPECT_TRUE(state->sampler == before.sampler);
  EXPECT_TRUE(state->score == before.score);
  EXPECT_EQ(state->step, before.step);
  for (float p : state->sampler.params) ASSERT_TRUE(std::isfinite(p));
}

class TrainerLearnsTest : public ::testing::TestWithParam<std::string> {};

// Both methods move a small sampler onto a correlated Gaussian (mean (-1, 1), precision [[3, -.5], [-.5, 1]]):
// mean within 0.1 and covariance entries within 0.1 of the target's after 1500 iterations (seeded).
TEST_P(TrainerLearnsTest, FitsAGaussian) {
  auto target = Family("gaussian");
  TrainConfig config = SmallConfig(GetParam());
  config.hidden = std::vector<int64_t>{32, 32};
  config.batch = 500;
  config.score_steps = 3;
  config.lr = 1e-3;
  auto settings = ResolveTrainConfig(config, *target);
  ASSERT_TRUE(settings.ok()) << settings.status();
  auto state = MakeInitialTrainingState(*settings);
  auto trainer = CreateTrainer(*settings, target);
  for (int i = 0; i < 1500; ++i) ASSERT_TRUE((*trainer)->Step(*state, nullptr).ok()) << i;
  const PointsF z = Random(20000, 2, 99);
  PointsF x;
  MlpForward<float>(settings->sampler, state->sampler.params, z, 2, nullptr, &x);
  const Eigen::RowVector2d mean = x.cast<double>().colwise().mean();
  const Points centred = x.cast<double>().rowwise() - mean;
  const Eigen::Matrix2d cov = centred.transpose() * centred / (x.rows() - 1.0);
  Eigen::Matrix2d precision;
  precision << 3, -0.5, -0.5, 1;
  const Eigen::Matrix2d expected = precision.inverse();
  EXPECT_NEAR(mean(0), -1.0, 0.1) << GetParam();
  EXPECT_NEAR(mean(1), 1.0, 0.1) << GetParam();
  EXPECT_LT((cov - expected).cwiseAbs().maxCoeff(), 0.1) << GetParam() << "\n" << cov;
}

INSTANTIATE_TEST_SUITE_P(BothMethods, TrainerLearnsTest, ::testing::Values("kl", "fisher"));

}  // namespace
}  // namespace sampled::training
