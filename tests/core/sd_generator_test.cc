// sd-generator (002 Alg. 2): its settings and refusals, the pieces of an iteration against closed forms, the
// nearest-mean noise level, resuming from a serialised state, and a linear generator learning x = B xi + mu
// (002 App. C.4 at a small size; the full size is tests/python/experiments/test_sd_generator.py).
#include "core/training/sd_generator.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"
#include "core/training/trainer.h"
#include "tests/core/training_test_util.h"

namespace sampled::training {
namespace {

using ::testing::HasSubstr;
using test_util::Data;

// x = B xi + mu with xi ~ N(0, I_k): the data of 002 App. C.4 at dimension d.
Points LinearData(int64_t n, int64_t d, int64_t k, uint64_t seed, Eigen::MatrixXd* b, Eigen::RowVectorXd* mu) {
  Rng rng(seed);
  *b = Eigen::MatrixXd(d, k);
  rng.FillNormal(b->data(), b->size());
  *b *= 0.5;  // entries of variance 0.25
  *mu = Eigen::RowVectorXd(d);
  rng.FillNormal(mu->data(), mu->size());
  mu->array() += 10.0;
  Eigen::MatrixXd xi(n, k);
  rng.FillNormal(xi.data(), xi.size());
  Points x = xi * b->transpose();
  x.rowwise() += *mu;
  return x;
}

TrainConfig GeneratorConfig() {
  TrainConfig c;
  c.method = "sd-generator";
  c.seed = 3;
  c.threads = 2;
  return c;
}

// 002 App. C.4's settings: a linear generator from weights of variance 0.01 and zero biases, nearest-mean:10.
TrainConfig C4Config(int64_t latent, int64_t batch) {
  TrainConfig c = GeneratorConfig();
  c.generator = "linear";
  c.latent = latent;
  c.batch = batch;
  c.noise = "nearest-mean:10";
  c.init_std = 0.1;
  return c;
}

TEST(SdGenerator, DefaultsAndRefusals) {
  auto data = Data(Points::Random(50, 3));
  auto s = ResolveTrainConfig(GeneratorConfig(), *data);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->generator, "mlp");
  EXPECT_EQ(s->sampler.in, 3);
  EXPECT_EQ(s->sampler.out, 3);
  EXPECT_EQ(s->batch, 1024);
  EXPECT_FALSE(s->sgd);  // Adam for an MLP
  EXPECT_DOUBLE_EQ(s->sampler_adam.lr, 1e-3);
  EXPECT_DOUBLE_EQ(s->eta, 1.0);
  EXPECT_EQ(s->score.parameter_count(), 0);  // no score network

  TrainConfig linear = GeneratorConfig();
  linear.generator = "linear";
  linear.latent = 2;
  s = ResolveTrainConfig(linear, *data);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->sampler.hidden.empty());
  EXPECT_EQ(s->sampler.parameter_count(), 3 * 2 + 3);
  EXPECT_TRUE(s->sgd);  // SGD for the linear generator, as 002 App. C.4

  const auto refused = [&](TrainConfig c, const Target& target, absl::StatusCode code, const std::string& says) {
    absl::Status st = ResolveTrainConfig(c, target).status();
    if (st.ok()) {
      auto settings = ResolveTrainConfig(c, target);
      st = CreateTrainer(*settings, data).status();
    }
    EXPECT_EQ(st.code(), code) << st;
    EXPECT_THAT(st.message(), HasSubstr(says));
  };
  auto density = CreateAnalyticTarget("gaussian", 2, {});
  ASSERT_TRUE(density.ok());
  refused(GeneratorConfig(), **density, absl::StatusCode::kFailedPrecondition, "trains from data");
  TrainConfig c = linear;
  c.hidden = std::vector<int64_t>{8};
  refused(c, *data, absl::StatusCode::kInvalidArgument, "no hidden layers");
  c = GeneratorConfig();
  c.score_steps = 3;
  refused(c, *data, absl::StatusCode::kInvalidArgument, "score_steps is not used by method 'sd-generator'");
  c = GeneratorConfig();
  c.optimizer = "lbfgs";
  refused(c, *data, absl::StatusCode::kInvalidArgument, "unknown optimizer 'lbfgs'");
  c = GeneratorConfig();
  c.eta = 0;
  refused(c, *data, absl::StatusCode::kInvalidArgument, "eta must be");
  c = GeneratorConfig();
  c.steps_per_batch = 0;
  refused(c, *data, absl::StatusCode::kInvalidArgument, "steps_per_batch");
  c = GeneratorConfig();
  c.noise = "nearest-mean:0";
  refused(c, *data, absl::StatusCode::kInvalidArgument, "nearest-mean:F needs a factor F > 0");
  c = GeneratorConfig();
  c.noise = "nearest-mean:10";
  c.bandwidth = "0.5";
  refused(c, *data, absl::StatusCode::kInvalidArgument, "sets the bandwidth too");
  c = GeneratorConfig();
  c.noise = "cosine:10,0.5";
  refused(c, *data, absl::StatusCode::kInvalidArgument, "no cosine schedule yet");
  c = GeneratorConfig();
  c.noise = "median-of-nothing";
  refused(c, *data, absl::StatusCode::kInvalidArgument, "noise");
  c = GeneratorConfig();
  c.generator = "flow";
  refused(c, *data, absl::StatusCode::kInvalidArgument, "unknown generator 'flow'");
  TrainConfig kl;
  kl.method = "kl";
  kl.eta = 2;
  refused(kl, **density, absl::StatusCode::kInvalidArgument, "eta is not used by method 'kl'");
}

TEST(SdGenerator, MeanNearestDistanceIsTheClosedForm) {
  Points x(3, 2);
  x << 0, 0, 10, 0, 0, 10;
  Points y(2, 2);
  y << 3, 4, 9, 1;  // nearest: (0, 0) at 5; (10, 0) at sqrt(2)
  EXPECT_NEAR(MeanNearestDistance(y, x), (5 + std::sqrt(2.0)) / 2, 1e-12);
}

// Past one block of rows (256) and of data (4096): the blocked minimum is the brute-force one.
TEST(SdGenerator, MeanNearestDistanceOverBlocksIsTheBruteForceOne) {
  Rng rng(4);
  Points x(9000, 3), y(300, 3);
  rng.FillNormal(x.data(), x.size());
  rng.FillNormal(y.data(), y.size());
  double total = 0;
  for (int64_t i = 0; i < y.rows(); ++i) total += std::sqrt((x.rowwise() - y.row(i)).rowwise().squaredNorm().minCoeff());
  EXPECT_NEAR(MeanNearestDistance(y, x), total / y.rows(), 1e-9);
}

// With eta = 0 the goal is y itself (zero loss and gradient); with all data at one point and a huge
// bandwidth the SD step moves each y halfway... toward the data mean minus the batch mean: y' - y =
// eta/2 (mean(x) - mean(y)) exactly as the bandwidth grows.
TEST(SdGenerator, GoalMatchesClosedFormsAtTheLimits) {
  Points data = Points::Random(64, 3);
  data.array() += 5.0;
  auto target = Data(data);
  TrainConfig c = GeneratorConfig();
  c.generator = "linear";
  c.batch = 64;
  c.eta = 0.8;
  auto s = ResolveTrainConfig(c, *target);
  ASSERT_TRUE(s.ok());
  auto state = MakeInitialTrainingState(*s);
  ASSERT_TRUE(state.ok());
  const std::vector<double> params(state->sampler.params.begin(), state->sampler.params.end());
  SdGeneratorGradients<double> g(*s);
  Points xi(64, 3);
  Rng rng(1);
  rng.FillNormal(xi.data(), xi.size());
  g.Forward(params, xi);
  const Points y = g.output();
  Points goal;
  g.Goal(data, Points::Zero(64, 3), /*bandwidth=*/1e6, /*noise=*/0, &goal);
  const Eigen::RowVectorXd shift = 0.5 * 0.8 * (data.colwise().mean() - y.colwise().mean());
  for (int64_t i = 0; i < 64; ++i) EXPECT_LT((goal.row(i) - y.row(i) - shift).norm(), 1e-6) << i;
  // The regression's gradient for a linear generator: dL/dW = sum_i (y_i - y'_i) xi_i^T, dL/db = sum_i (y_i - y'_i).
  std::vector<double> grad;
  const double loss = g.Regression(params, goal, &grad);
  const Points dy = y - goal;
  EXPECT_NEAR(loss, 0.5 * dy.squaredNorm(), 1e-9 * loss);
  const Eigen::MatrixXd dw = dy.transpose() * xi;
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t k = 0; k < 3; ++k) EXPECT_NEAR(grad[r * 3 + k], dw(r, k), 1e-9 * dw.norm());
    EXPECT_NEAR(grad[9 + r], dy.col(r).sum(), 1e-9 * dw.norm());
  }
}

TEST(SdGenerator, NearestMeanLevelIsFixedAtTheFirstIterationAndResumesExactly) {
  Eigen::MatrixXd b;
  Eigen::RowVectorXd mu;
  auto target = Data(LinearData(400, 6, 3, 5, &b, &mu));
  auto s = ResolveTrainConfig(C4Config(3, 128), *target);
  ASSERT_TRUE(s.ok()) << s.status();
  auto initial = MakeInitialTrainingState(*s);
  ASSERT_TRUE(initial.ok());
  for (int64_t l = 0; l < s->sampler.layers(); ++l) {  // biases 0, weights of about 0.1
    for (int64_t i = s->sampler.bias_offset(l); i < s->sampler.bias_offset(l) + s->sampler.out_of(l); ++i) {
      EXPECT_EQ(initial->sampler.params[i], 0.0f);
    }
  }
  auto trainer = CreateTrainer(*s, target);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  TrainingState straight = *initial;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*trainer)->Step(straight, nullptr).ok());
  ASSERT_EQ(straight.values.count("noise_sigma"), 1u);
  // sigma^2 = 10 x the mean distance of the first batch (outputs near 0) to the data (near mu): ~ 10 |mu|.
  const double sigma2 = straight.values["noise_sigma"] * straight.values["noise_sigma"];
  EXPECT_GT(sigma2, 5 * mu.norm());
  EXPECT_LT(sigma2, 15 * mu.norm());

  TrainingState half = *initial;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*trainer)->Step(half, nullptr).ok());
  auto parsed = ParseTrainingState(SerializeTrainingState(half));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->values, half.values);
  auto resumed_trainer = CreateTrainer(*s, target);
  ASSERT_TRUE(resumed_trainer.ok());
  TrainingState resumed = *parsed;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*resumed_trainer)->Step(resumed, nullptr).ok());
  EXPECT_EQ(resumed.sampler.params, straight.sampler.params);
  EXPECT_EQ(resumed.values, straight.values);
}

// A state written before the values existed (no trailing section) still reads.
TEST(SdGenerator, StatesWithoutValuesStillParse) {
  TrainingState s;
  s.sampler.params = {1, 2, 3};
  s.step = 4;
  const std::string bytes = SerializeTrainingState(s);  // no values: no section
  auto parsed = ParseTrainingState(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->step, 4);
  EXPECT_TRUE(parsed->values.empty());
}

// 002 App. C.4 at a small size: d = 10, k = 5, a linear generator from weights of variance 0.01 and mu_hat = 0,
// SGD 1e-3 on batches of 512, nearest-mean:10. The mean and the covariance B B^T are learnt.
TEST(SdGenerator, LinearGeneratorLearnsAGaussian) {
  Eigen::MatrixXd b;
  Eigen::RowVectorXd mu;
  auto target = Data(LinearData(2048, 10, 5, 11, &b, &mu));
  auto s = ResolveTrainConfig(C4Config(5, 512), *target);
  ASSERT_TRUE(s.ok()) << s.status();
  auto state = MakeInitialTrainingState(*s);
  auto trainer = CreateTrainer(*s, target);
  ASSERT_TRUE(state.ok() && trainer.ok());
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE((*trainer)->Step(*state, nullptr).ok()) << i;
  const std::vector<float>& p = state->sampler.params;
  Eigen::MatrixXd b_hat(10, 5);
  Eigen::RowVectorXd mu_hat(10);
  for (int r = 0; r < 10; ++r) {
    for (int k = 0; k < 5; ++k) b_hat(r, k) = p[r * 5 + k];
    mu_hat(r) = p[50 + r];
  }
  EXPECT_LT((mu_hat - mu).norm() / mu.norm(), 0.05);
  const Eigen::MatrixXd cov = b * b.transpose(), cov_hat = b_hat * b_hat.transpose();
  EXPECT_LT((cov_hat - cov).norm() / cov.norm(), 0.3);
}

}  // namespace
}  // namespace sampled::training
